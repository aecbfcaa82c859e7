/* Mapped files and shared memory as buffers.
 *
 * A mapping becomes a root buffer (buf_root_new) whose context remembers what to unmap: the page-aligned base and
 * length of the mapping, the flags, and the name for messages. The descriptor is closed as soon as the mapping
 * exists (a mapping outlives its descriptor), so a mapped buffer holds no fd. At the last release the mapping is
 * synced (OHM_MAP_SYNC_ON_RELEASE on a write mapping) and unmapped; a failure there can only be logged.
 *
 * Read-only mappings (and shared memory opened read-only) are BUF_SEALED, so buf.c refuses writes through
 * ohm_buf_* with OHM_ESTATE, and never BUF_PAGES, so ohm_buf_seal cannot unseal them: a read-only mapping of a
 * file opened read-write (OHM_MAP_CREATE without OHM_MAP_WRITE) could otherwise be mprotect'ed writable.
 *
 * Every failure path undoes what it made (descriptor, created shm name, mapping, context) before returning NULL.
 * One exception: a file that OHM_MAP_CREATE created or extended stays so (as after open(O_CREAT) + ftruncate);
 * unlinking a path that another process may already use would be worse.
 *
 * mmap's own hazard remains: if another process truncates a mapped file, touching the lost pages is SIGBUS. */
#include "buf.h"
#include "os_file.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAP_KNOWN_FLAGS (OHM_MAP_READ | OHM_MAP_WRITE | OHM_MAP_CREATE | OHM_MAP_SYNC_ON_RELEASE)

typedef struct map_ctx {
    void *base;     /* page-aligned start of the mapping; NULL for an empty region (nothing mapped) */
    size_t map_len; /* bytes to unmap: a page multiple */
    unsigned flags; /* OHM_MAP_* as given */
    char name[];    /* path, "/shm" name or "memfd", for messages */
} map_ctx;

/* The data pointer of empty regions: mmap cannot map 0 bytes, and a buffer's data is never NULL while live. */
static unsigned char map_empty[1];

/* buf_free_fn: runs once, at the last release or reclaim. */
static void map_release(void *arg, void *data, size_t size)
{
    map_ctx *ctx = arg;
    (void)data;
    (void)size;
    if (ctx->base) {
        unsigned want = OHM_MAP_WRITE | OHM_MAP_SYNC_ON_RELEASE;
        if ((ctx->flags & want) == want && os_file_sync(ctx->base, ctx->map_len, ctx->name) != 0)
            ohm__log(OHM_LOG_WARN, "at the last release: %s", ohm_last_error());
        if (os_file_unmap(ctx->base, ctx->map_len) != 0) ohm__log(OHM_LOG_WARN, "%s", ohm_last_error());
    }
    free(ctx);
}

/* Maps [offset, offset+length) of fd (the region is inside the object) and wraps it as a root buffer of the
 * given origin. Closes fd in every case. NULL with the error set; nothing is left behind. */
static ohm_buf *map_fd(int fd, const char *name, uint64_t offset, size_t length, unsigned flags, ohm_buf_origin origin)
{
    size_t name_len = strlen(name);
    map_ctx *ctx = malloc(sizeof *ctx + name_len + 1);
    if (!ctx) {
        os_file_close(fd);
        ohm__error(OHM_ENOMEM, "cannot allocate the mapping record for '%s'", name);
        return NULL;
    }
    memcpy(ctx->name, name, name_len + 1);
    ctx->base = NULL;
    ctx->map_len = 0;
    ctx->flags = flags;

    int writable = (flags & OHM_MAP_WRITE) != 0;
    void *data = map_empty;
    if (length > 0) {
        int rc = os_file_map(fd, name, offset, length, writable, &ctx->base, &ctx->map_len);
        os_file_close(fd);
        if (rc) {
            free(ctx);
            return NULL;
        }
        data = (unsigned char *)ctx->base + offset % os_file_page();
        ohm_assert(((uintptr_t)ctx->base | ctx->map_len) % os_file_page() == 0 &&
                   ctx->map_len >= offset % os_file_page() + length &&
                   "map_fd: a page-aligned mapping of whole pages that covers the region");
    } else {
        os_file_close(fd);
    }

    /* BUF_PAGES only when the buffer is exactly whole pages: sealing a partial page would protect bytes
     * outside the buffer (harmless here, but the flag promises exactness). */
    unsigned bflags = 0;
    size_t page = os_file_page();
    if (!writable) bflags |= BUF_SEALED;
    else if (length > 0 && offset % page == 0 && length % page == 0) bflags |= BUF_PAGES;

    ohm_buf *b = buf_root_new(data, length, origin, bflags, map_release, ctx, NULL);
    if (!b) {
        /* buf_root_new does not call map_release on failure; nothing was written, so no sync. */
        if (ctx->base) os_file_unmap_cleanup(ctx->base, ctx->map_len);
        free(ctx);
    }
    return b;
}

/* ---- files ---- */

/* The region [offset, offset+*length) checked against the file's size (extended with OHM_MAP_CREATE); a length
 * of 0 becomes "to the end". Precondition: offset + *length fits a file offset. */
static int map_region(int fd, const char *path, uint64_t offset, size_t *length, unsigned flags)
{
    uint64_t size;
    int rc = os_file_size(fd, path, &size);
    if (rc) return rc;
    uint64_t end = offset + *length;
    if (end > size) {
        if (!(flags & OHM_MAP_CREATE))
            return ohm__error(OHM_ERANGE,
                              "cannot map '%s' [%" PRIu64 ", %" PRIu64 "): the file has %" PRIu64
                              " bytes (OHM_MAP_CREATE extends it)",
                              path, offset, end, size);
        rc = os_file_extend(fd, path, end);
        if (rc) return rc;
        size = end;
    }
    if (*length == 0) {
        if (size - offset > SIZE_MAX)
            return ohm__error(OHM_ERANGE,
                              "cannot map '%s' from %" PRIu64 ": the rest of the file (%" PRIu64
                              " bytes) does not fit the address space",
                              path, offset, size - offset);
        *length = (size_t)(size - offset);
    }
    return 0;
}

ohm_buf *ohm_buf_map_file(const char *path, uint64_t offset, size_t length, unsigned flags)
{
    if (!path || !*path) {
        ohm__error(OHM_EINVAL, "ohm_buf_map_file: the path must not be NULL or empty");
        return NULL;
    }
    if (flags & ~(unsigned)MAP_KNOWN_FLAGS) {
        ohm__error(OHM_EINVAL, "ohm_buf_map_file('%s'): unknown flags 0x%x", path, flags & ~(unsigned)MAP_KNOWN_FLAGS);
        return NULL;
    }
    if (offset > (uint64_t)INT64_MAX || (uint64_t)length > (uint64_t)INT64_MAX - offset) {
        ohm__error(OHM_ERANGE, "ohm_buf_map_file('%s'): offset %" PRIu64 " + length %zu overflows a file offset", path,
                   offset, length);
        return NULL;
    }
    /* CREATE needs a writable descriptor to extend the file, even for a read-only mapping. */
    int fd;
    if (os_file_open(path, (flags & (OHM_MAP_WRITE | OHM_MAP_CREATE)) != 0, (flags & OHM_MAP_CREATE) != 0, &fd))
        return NULL;
    if (map_region(fd, path, offset, &length, flags) != 0) {
        os_file_close(fd);
        return NULL;
    }
    return map_fd(fd, path, offset, length, flags, OHM_ORIGIN_FILE);
}

/* msync of [off, off+len) of b; len 0 means from off to the end of b (as length 0 in ohm_buf_map_file), so
 * (0, 0) is the whole buffer. b may be a slice: the range is b's, the pages are its root's mapping. */
int ohm_buf_sync(ohm_buf *b, size_t off, size_t len)
{
    if (!b) return ohm__error(OHM_EINVAL, "ohm_buf_sync: the buffer must not be NULL");
    int rc = buf_check_live(b, "ohm_buf_sync");
    if (rc) return rc;
    ohm_buf_origin origin = ohm_buf_origin_of(b);
    if (origin != OHM_ORIGIN_FILE && origin != OHM_ORIGIN_SHM)
        return ohm__error(OHM_EINVAL, "ohm_buf_sync: the buffer is not a mapped file or shared memory");
    size_t size = ohm_buf_size(b);
    rc = ohm_range_check(size, off, len);
    if (rc) return rc;
    if (len == 0) len = size - off;
    map_ctx *ctx = buf_root_ctx(buf_root_of(b));
    if (!ctx->base || len == 0) return 0; /* an empty region maps nothing */
    /* A slice's data lies inside its root's mapping, so its pages are the root's. */
    return os_file_sync((unsigned char *)ohm_buf_data(b) + off, len, ctx->name);
}

/* ---- shared memory ---- */

/* POSIX names: one leading slash, no other, at most NAME_MAX characters after it. */
static int shm_name_check(const char *name, const char *op)
{
    if (!name) return ohm__error(OHM_EINVAL, "%s: the name must not be NULL", op);
    size_t n = strlen(name);
    if (name[0] != '/' || n < 2 || n - 1 > NAME_MAX || strchr(name + 1, '/'))
        return ohm__error(OHM_EINVAL,
                          "%s: shared memory name '%s' must be \"/name\" (one leading slash, no other, "
                          "1 to %d characters)",
                          op, name, NAME_MAX);
    return 0;
}

ohm_buf *ohm_buf_shm_create(const char *name, size_t size)
{
    if (name && shm_name_check(name, "ohm_buf_shm_create")) return NULL;
    if (size == 0 || (uint64_t)size > (uint64_t)INT64_MAX) {
        ohm__error(size ? OHM_ERANGE : OHM_EINVAL, "ohm_buf_shm_create: size %zu must be between 1 and %" PRId64, size,
                   INT64_MAX);
        return NULL;
    }
    const char *what = name ? name : "memfd";
    int fd;
    if (name ? os_shm_open(name, 1, 1, &fd) : os_memfd(&fd)) return NULL;
    if (os_file_truncate(fd, what, size) != 0) {
        os_file_close(fd);
        if (name) os_shm_unlink_cleanup(name);
        return NULL;
    }
    ohm_buf *b = map_fd(fd, what, 0, size, OHM_MAP_WRITE, OHM_ORIGIN_SHM);
    if (!b && name) os_shm_unlink_cleanup(name);
    return b;
}

ohm_buf *ohm_buf_shm_open(const char *name, bool writable)
{
    if (shm_name_check(name, "ohm_buf_shm_open")) return NULL;
    int fd;
    if (os_shm_open(name, 0, writable, &fd)) return NULL;
    uint64_t size;
    if (os_file_size(fd, name, &size) != 0) {
        os_file_close(fd);
        return NULL;
    }
    if (size > SIZE_MAX) {
        os_file_close(fd);
        ohm__error(OHM_ERANGE, "ohm_buf_shm_open('%s'): %" PRIu64 " bytes do not fit the address space", name, size);
        return NULL;
    }
    return map_fd(fd, name, 0, (size_t)size, writable ? OHM_MAP_WRITE : 0, OHM_ORIGIN_SHM);
}

int ohm_shm_unlink(const char *name)
{
    int rc = shm_name_check(name, "ohm_shm_unlink");
    return rc ? rc : os_shm_unlink(name);
}
