/* The OS layer for files and shared memory (see os_file.h). Besides os.c, the only file that calls mmap, munmap,
 * msync, shm_open and memfd_create.
 *
 * Not behind os.c's fault-injection switch: that switch (fault_now) is private to os.c. File maps fail for
 * real reasons instead (missing files, permissions, a full disk), which the tests produce directly. */
#define _GNU_SOURCE
#include "os_file.h"
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

size_t os_file_page(void)
{
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (ohm_likely(p)) return p;
    long v = sysconf(_SC_PAGESIZE);
    p = v > 0 ? (size_t)v : OHM_PAGE;
    atomic_store_explicit(&page, p, memory_order_relaxed);
    return p;
}

/* ---- files ---- */

int os_file_open(const char *path, int writable, int create, int *fd_out)
{
    /* O_NONBLOCK: opening a FIFO by mistake must fail below (not a regular file), not hang; it changes
     * nothing for regular files. */
    int oflags = (writable ? O_RDWR : O_RDONLY) | (create ? O_CREAT : 0) | O_CLOEXEC | O_NONBLOCK;
    int fd = open(path, oflags, 0666);
    if (fd < 0)
        return ohm__error_sys(OHM_ESYS, errno, "cannot open '%s'%s%s", path, writable ? " for writing" : "",
                              create ? " (creating it)" : "");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return ohm__error_sys(OHM_ESYS, err, "cannot stat '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ohm__error(OHM_EINVAL, "cannot map '%s': not a regular file", path);
    }
    *fd_out = fd;
    return 0;
}

int os_file_size(int fd, const char *what, uint64_t *size_out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return ohm__error_sys(OHM_ESYS, errno, "cannot stat '%s'", what);
    *size_out = st.st_size > 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

int os_file_extend(int fd, const char *what, uint64_t size)
{
    uint64_t cur;
    int rc = os_file_size(fd, what, &cur);
    if (rc) return rc;
    if (cur >= size) return 0;
    if (size > (uint64_t)INT64_MAX)
        return ohm__error(OHM_ERANGE, "cannot extend '%s' to %" PRIu64 " bytes: larger than a file offset", what, size);
    int err = posix_fallocate(fd, (off_t)cur, (off_t)(size - cur));
    /* A file system without fallocate (and where glibc's emulation refuses): a sparse extension is all we can
     * do; a full disk then shows up as SIGBUS on first touch, as with any mmap. */
    if (err == EOPNOTSUPP) return os_file_truncate(fd, what, size);
    if (err)
        return ohm__error_sys(OHM_ESYS, err, "cannot extend '%s' from %" PRIu64 " to %" PRIu64 " bytes", what, cur,
                              size);
    return 0;
}

int os_file_truncate(int fd, const char *what, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX)
        return ohm__error(OHM_ERANGE, "cannot size '%s' to %" PRIu64 " bytes: larger than a file offset", what, size);
    if (ftruncate(fd, (off_t)size) != 0)
        return ohm__error_sys(OHM_ESYS, errno, "cannot size '%s' to %" PRIu64 " bytes", what, size);
    return 0;
}

void os_file_close(int fd)
{
    /* Linux releases the descriptor even when close reports an error, so retrying would close someone
     * else's; mappings made from fd are not affected. */
    if (close(fd) != 0 && errno != EINTR) ohm__log(OHM_LOG_WARN, "close(%d) failed: errno %d", fd, errno);
}

/* ---- mappings ---- */

int os_file_map(int fd, const char *what, uint64_t offset, size_t length, int writable, void **base_out,
                size_t *map_len_out)
{
    size_t page = os_file_page();
    uint64_t aligned = offset & ~(uint64_t)(page - 1);
    size_t delta = (size_t)(offset - aligned);
    if (length > SIZE_MAX - delta - page)
        return ohm__error(OHM_ERANGE, "cannot map '%s' [%" PRIu64 ", +%zu): too large for the address space", what,
                          offset, length);
    size_t map_len = ohm_align_up(delta + length, page);
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    if (os_fault_now())
        return ohm__error(OHM_ENOMEM, "cannot map '%s' [%" PRIu64 ", %" PRIu64 "): injected fault", what, offset,
                          offset + length);
    void *p = mmap(NULL, map_len, prot, MAP_SHARED, fd, (off_t)aligned);
    if (p == MAP_FAILED) {
        int err = errno;
        return ohm__error_sys(err == ENOMEM ? OHM_ENOMEM : OHM_ESYS, err,
                              "cannot map '%s' [%" PRIu64 ", %" PRIu64 ")%s", what, offset, offset + length,
                              writable ? " read-write" : "");
    }
    *base_out = p;
    *map_len_out = map_len;
    return 0;
}

int os_file_unmap(void *base, size_t map_len)
{
    if (munmap(base, map_len) != 0)
        return ohm__error_sys(OHM_ESYS, errno, "munmap(%p, %zu) of a mapped buffer failed", base, map_len);
    return 0;
}

void os_file_unmap_cleanup(void *base, size_t map_len)
{
    if (munmap(base, map_len) != 0)
        ohm__log(OHM_LOG_ERROR, "munmap(%p, %zu) on a failure path failed: errno %d", base, map_len, errno);
}

int os_file_sync(void *p, size_t len, const char *what)
{
    if (len == 0) return 0;
    size_t page = os_file_page();
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t end = ohm_align_up((uintptr_t)p + len, page);
    if (msync((void *)start, end - start, MS_SYNC) != 0)
        return ohm__error_sys(OHM_ESYS, errno, "cannot sync %zu bytes of '%s'", len, what);
    return 0;
}

/* ---- shared memory ---- */

int os_shm_open(const char *name, int create, int writable, int *fd_out)
{
    int oflags = (writable || create ? O_RDWR : O_RDONLY) | (create ? O_CREAT | O_EXCL : 0);
    int fd = shm_open(name, oflags, 0600); /* shm_open sets O_CLOEXEC itself */
    if (fd < 0)
        return ohm__error_sys(OHM_ESYS, errno, "cannot %s shared memory '%s'%s", create ? "create" : "open", name,
                              !create && writable ? " for writing" : "");
    *fd_out = fd;
    return 0;
}

int os_shm_unlink(const char *name)
{
    if (shm_unlink(name) != 0) return ohm__error_sys(OHM_ESYS, errno, "cannot unlink shared memory '%s'", name);
    return 0;
}

void os_shm_unlink_cleanup(const char *name)
{
    if (shm_unlink(name) != 0)
        ohm__log(OHM_LOG_WARN, "cannot unlink shared memory '%s' on a failure path: errno %d", name, errno);
}

int os_memfd(int *fd_out)
{
#ifdef OHM_HAVE_MEMFD_CREATE
    int fd = memfd_create("ohm", MFD_CLOEXEC);
    if (fd < 0) return ohm__error_sys(OHM_ESYS, errno, "memfd_create failed");
    *fd_out = fd;
    return 0;
#else
    /* A POSIX object under a random name, unlinked at once: nobody can open it by name, as with memfd. */
    for (int attempt = 0; attempt < 8; attempt++) {
        char name[64];
        snprintf(name, sizeof name, "/ohm-anon-%ld-%016" PRIx64, (long)getpid(), os_random64());
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return ohm__error_sys(OHM_ESYS, errno, "cannot create anonymous shared memory");
        shm_unlink(name);
        *fd_out = fd;
        return 0;
    }
    return ohm__error_sys(OHM_ESYS, EEXIST, "cannot create anonymous shared memory");
#endif
}
