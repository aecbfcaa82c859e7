/* The OS layer for files and shared memory: the second door to the kernel, beside os.h. Only os_file.c opens,
 * sizes, maps and syncs files and shared-memory objects; map.c builds buffers on top of it.
 *
 * Every int function returns 0 or a negative OHM_E* code with the last error set (errno kept for OHM_ESYS).
 * `what` is the name shown in messages: a path, a "/shm" name, or "memfd". File descriptors are O_CLOEXEC. */
#ifndef OHM_OS_FILE_H
#define OHM_OS_FILE_H

#include "internal.h"

#pragma GCC visibility push(hidden)

/* The page size mappings are aligned to (sysconf, read once). */
size_t os_file_page(void);

/* Opens path read-only or read-write, creating it (mode 0666 & ~umask) when create; needs a regular file
 * (OHM_EINVAL otherwise). *fd_out is set only on success. */
int os_file_open(const char *path, int writable, int create, int *fd_out);
/* The size of the open object fd. */
int os_file_size(int fd, const char *what, uint64_t *size_out);
/* Grows fd to at least size bytes with blocks reserved (posix_fallocate, so that a full disk fails here and not
 * as SIGBUS on first touch); never shrinks. Precondition: fd is open for writing. */
int os_file_extend(int fd, const char *what, uint64_t size);
/* Sets fd's size to exactly size (ftruncate; shared memory, whose pages come on first touch). */
int os_file_truncate(int fd, const char *what, uint64_t size);
/* Closes fd; a failure is logged, not returned (the descriptor is gone either way). */
void os_file_close(int fd);

/* Maps [offset, offset+length) of fd MAP_SHARED, PROT_READ or PROT_READ|PROT_WRITE. Precondition: length > 0
 * and the region is inside the object. The mapping starts at offset rounded down to the page: *base_out and
 * *map_len_out (a page multiple) are what os_file_unmap needs, and the region's first byte is
 * *base_out + offset % os_file_page(). */
int os_file_map(int fd, const char *what, uint64_t offset, size_t length, int writable, void **base_out,
                size_t *map_len_out);
/* Unmaps exactly what os_file_map returned. */
int os_file_unmap(void *base, size_t map_len);
/* The same on a failure path: a failure is logged and the last error (the failure being reported) is kept. */
void os_file_unmap_cleanup(void *base, size_t map_len);
/* msync(MS_SYNC) of the pages covering [p, p+len) (p need not be aligned). Precondition: they are mapped. */
int os_file_sync(void *p, size_t len, const char *what);

/* POSIX shared memory. name is "/name". create uses O_CREAT|O_EXCL (OHM_ESYS with EEXIST when taken) and mode
 * 0600; otherwise the object must exist. */
int os_shm_open(const char *name, int create, int writable, int *fd_out);
int os_shm_unlink(const char *name);
/* Removes a name this call created, on a failure path: logs a failure and keeps the last error. */
void os_shm_unlink_cleanup(const char *name);
/* An anonymous shared-memory object (memfd_create, or a POSIX shm object unlinked at once where memfd is
 * missing), open read-write with size 0. */
int os_memfd(int *fd_out);

#pragma GCC visibility pop

#endif
