/* Mapped files and shared memory as buffers: read-only and read-write file mappings (writes reach the file,
 * msync on request and at the last release, unmapped at the last release), creating and extending files,
 * unaligned offsets, range and argument errors, POSIX shared memory seen by a second process, memfd shared
 * across fork, and failures that leave nothing behind (no mapping, no descriptor, no name). */
#define _GNU_SOURCE /* nftw */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE ((size_t)4096)

static char tmpdir[] = "/tmp/ohm-test-map-XXXXXX";

/* ---- helpers ---- */

static const char *path_in(const char *name)
{
    static char buf[4][256];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static unsigned char pattern(uint64_t i) { return (unsigned char)(i * 31 + 7); }

/* Writes n pattern bytes (pattern(0) first) to a new file. */
static bool write_pattern_file(const char *path, size_t n)
{
    unsigned char *bytes = malloc(n ? n : 1);
    if (!CHECK_NOT_NULL(bytes)) return false;
    for (size_t i = 0; i < n; i++) bytes[i] = pattern(i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    bool ok = CHECK(fd >= 0) && CHECK_EQ_INT(write(fd, bytes, n), (long long)n);
    if (fd >= 0) close(fd);
    free(bytes);
    return ok;
}

/* Reads n bytes at off with pread(2), bypassing every mapping. */
static bool pread_file(const char *path, uint64_t off, void *dst, size_t n)
{
    int fd = open(path, O_RDONLY);
    bool ok = CHECK(fd >= 0) && CHECK_EQ_INT(pread(fd, dst, n, (off_t)off), (long long)n);
    if (fd >= 0) close(fd);
    return ok;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (!CHECK_EQ_INT(stat(path, &st), 0)) return 0;
    return (uint64_t)st.st_size;
}

/* Lines of /proc/self/maps that mention needle: how many mappings of a file or shm object are alive. */
static int maps_count(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!CHECK_NOT_NULL(f)) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* Open descriptors of this process. */
static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!CHECK_NOT_NULL(d)) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Runs fn(arg) in a forked child, which exits 0 when fn returns true. Returns whether it did. */
static bool in_child(bool (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (!CHECK(pid >= 0)) return false;
    if (pid == 0) {
        unsigned long before = atomic_load(&check_state.failed_checks);
        bool ok = fn(arg);
        fflush(NULL);
        _exit(ok && atomic_load(&check_state.failed_checks) == before ? 0 : 1);
    }
    int status = 0;
    if (!CHECK_EQ_INT(waitpid(pid, &status, 0), pid)) return false;
    if (WIFSIGNALED(status)) fprintf(stderr, "  the child died of signal %d\n", WTERMSIG(status));
    return CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- file mappings ---- */

static void test_read_only_mapping_reads_the_file(void)
{
    const char *path = path_in("ro.bin");
    size_t n = 3 * PAGE + 100;
    if (!write_pattern_file(path, n)) return;
    ohm_buf *b = ohm_buf_map_file(path, 0, 0, OHM_MAP_READ);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_U64(ohm_buf_size(b), n);
    CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_FILE);
    const unsigned char *data = ohm_buf_data(b);
    CHECK_EQ_U64((uintptr_t)data % PAGE, 0);
    bool same = true;
    for (size_t i = 0; i < n; i++) same &= data[i] == pattern(i);
    CHECK(same);
    unsigned char got[200];
    CHECK_EQ_INT(ohm_buf_read(b, PAGE - 100, got, sizeof got), 0);
    for (size_t i = 0; i < sizeof got; i++) same &= got[i] == pattern(PAGE - 100 + i);
    CHECK(same);
    CHECK_EQ_INT(ohm_buf_read(b, n - 1, got, 2), OHM_ERANGE);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_read_only_mapping_rejects_writes(void)
{
    const char *path = path_in("ro-write.bin");
    if (!write_pattern_file(path, 2 * PAGE)) return;
    ohm_buf *b = ohm_buf_map_file(path, 0, 2 * PAGE, 0);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK(ohm_buf_readonly(b));
    CHECK_EQ_INT(ohm_buf_write(b, 0, "x", 1), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_fill(b, 10, 0xff, 10), OHM_ESTATE);
    ohm_buf *s = ohm_buf_slice(b, PAGE, 16);
    if (CHECK_NOT_NULL(s)) {
        CHECK(ohm_buf_readonly(s));
        CHECK_EQ_INT(ohm_buf_write(s, 0, "x", 1), OHM_ESTATE);
    }
    /* Unsealing would make a read-only mapping writable: refused. */
    CHECK(ohm_buf_seal(b, false) != 0);
    CHECK_EQ_INT(ohm_buf_write(b, 0, "x", 1), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK(!ohm_buf_readonly(b)); /* released */
    unsigned char first;
    if (pread_file(path, 0, &first, 1)) CHECK_EQ_INT(first, pattern(0));
}

/* Read-only even when CREATE opened the file read-write to extend it. */
static void test_create_without_write_maps_read_only(void)
{
    const char *path = path_in("create-ro.bin");
    ohm_buf *b = ohm_buf_map_file(path, 0, PAGE, OHM_MAP_CREATE);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_U64(file_size(path), PAGE);
    CHECK_EQ_INT(ohm_buf_write(b, 0, "x", 1), OHM_ESTATE);
    CHECK(ohm_buf_seal(b, false) != 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_write_mapping_reaches_the_file_at_release(void)
{
    const char *path = path_in("rw.bin");
    if (!write_pattern_file(path, 2 * PAGE)) return;
    ohm_buf *b = ohm_buf_map_file(path, 0, 0, OHM_MAP_WRITE | OHM_MAP_SYNC_ON_RELEASE);
    if (!CHECK_NOT_NULL(b)) return;
    static const char msg[] = "written through a mapped buffer, across a page boundary";
    CHECK_EQ_INT(ohm_buf_write(b, PAGE - 10, msg, sizeof msg), 0);
    CHECK_EQ_INT(ohm_buf_fill(b, 0, 0xab, 4), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    char got[sizeof msg];
    if (pread_file(path, PAGE - 10, got, sizeof got)) CHECK(memcmp(got, msg, sizeof msg) == 0);
    unsigned char head[5];
    if (pread_file(path, 0, head, 5)) {
        CHECK(head[0] == 0xab && head[3] == 0xab);
        CHECK_EQ_INT(head[4], pattern(4));
    }
    CHECK_EQ_U64(file_size(path), 2 * PAGE);
}

static void test_sync_of_a_slice(void)
{
    const char *path = path_in("sync.bin");
    if (!write_pattern_file(path, 4 * PAGE)) return;
    ohm_buf *b = ohm_buf_map_file(path, PAGE, 2 * PAGE, OHM_MAP_WRITE);
    if (!CHECK_NOT_NULL(b)) return;
    ohm_buf *s = ohm_buf_slice(b, 100, 5000);
    if (!CHECK_NOT_NULL(s)) {
        ohm_buf_release(b, 1);
        return;
    }
    CHECK_EQ_INT(ohm_buf_write(s, 4000, "synced", 6), 0);
    CHECK_EQ_INT(ohm_buf_sync(s, 3990, 20), 0);
    CHECK_EQ_INT(ohm_buf_sync(s, 0, 0), 0);
    CHECK_EQ_INT(ohm_buf_sync(s, 5000, 0), 0);
    CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), 0);
    CHECK_EQ_INT(ohm_buf_sync(s, 4990, 11), OHM_ERANGE);
    CHECK_EQ_INT(ohm_buf_sync(s, 5001, 0), OHM_ERANGE);
    CHECK_EQ_INT(ohm_buf_sync(s, SIZE_MAX, 2), OHM_ERANGE);
    char got[6];
    if (pread_file(path, PAGE + 100 + 4000, got, 6)) CHECK(memcmp(got, "synced", 6) == 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), OHM_ESTATE);
}

static void test_sync_refuses_buffers_that_are_not_mapped(void)
{
    ohm_pool *pool = fixture_named_pool("map");
    if (!pool) return;
    ohm_buf *b = ohm_buf_alloc(pool, 100);
    if (CHECK_NOT_NULL(b)) {
        CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), OHM_EINVAL);
        CHECK_STR_CONTAINS(ohm_last_error(), "not a mapped file");
        ohm_buf_release(b, 1);
    }
    CHECK_EQ_INT(ohm_buf_sync(NULL, 0, 0), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_create_extends_a_new_file_to_offset_plus_length(void)
{
    const char *path = path_in("created.bin");
    ohm_buf *b = ohm_buf_map_file(path, 2 * PAGE + 10, 100, OHM_MAP_WRITE | OHM_MAP_CREATE);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_U64(file_size(path), 2 * PAGE + 110);
    CHECK_EQ_U64(ohm_buf_size(b), 100);
    CHECK_EQ_U64((uintptr_t)ohm_buf_data(b) % PAGE, 10);
    CHECK_EQ_INT(ohm_buf_write(b, 0, "new", 3), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    char got[3];
    if (pread_file(path, 2 * PAGE + 10, got, 3)) CHECK(memcmp(got, "new", 3) == 0);
    unsigned char zero = 1;
    if (pread_file(path, 5, &zero, 1)) CHECK_EQ_INT(zero, 0);

    /* CREATE never shrinks: a smaller region of a larger file leaves its size. */
    b = ohm_buf_map_file(path, 0, 10, OHM_MAP_WRITE | OHM_MAP_CREATE);
    if (CHECK_NOT_NULL(b)) CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_U64(file_size(path), 2 * PAGE + 110);
    /* And it grows an existing file. */
    b = ohm_buf_map_file(path, 3 * PAGE, PAGE, OHM_MAP_WRITE | OHM_MAP_CREATE);
    if (CHECK_NOT_NULL(b)) CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_U64(file_size(path), 4 * PAGE);
}

static void test_unaligned_offset_points_at_the_right_byte(void)
{
    const char *path = path_in("unaligned.bin");
    if (!write_pattern_file(path, 4 * PAGE)) return;
    uint64_t off = PAGE + 123;
    ohm_buf *b = ohm_buf_map_file(path, off, 5000, OHM_MAP_WRITE);
    if (!CHECK_NOT_NULL(b)) return;
    const unsigned char *data = ohm_buf_data(b);
    CHECK_EQ_U64((uintptr_t)data % PAGE, 123);
    CHECK_EQ_INT(data[0], pattern(off));
    CHECK_EQ_INT(data[4999], pattern(off + 4999));
    CHECK_EQ_INT(ohm_buf_write(b, 0, "@", 1), 0);
    CHECK_EQ_INT(ohm_buf_sync(b, 0, 1), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    unsigned char got[2];
    if (pread_file(path, off - 1, got, 2)) {
        CHECK_EQ_INT(got[0], pattern(off - 1));
        CHECK_EQ_INT(got[1], '@');
    }
    /* Length 0 from an unaligned offset: the rest of the file. */
    b = ohm_buf_map_file(path, off, 0, 0);
    if (CHECK_NOT_NULL(b)) {
        CHECK_EQ_U64(ohm_buf_size(b), 4 * PAGE - off);
        CHECK_EQ_INT(((const unsigned char *)ohm_buf_data(b))[1], pattern(off + 1));
        CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    }
}

static void test_region_past_the_end_without_create_is_erange(void)
{
    const char *path = path_in("short.bin");
    if (!write_pattern_file(path, 1000)) return;
    int fds = fd_count();
    CHECK_NULL(ohm_buf_map_file(path, 0, 1001, OHM_MAP_WRITE));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), path);
    CHECK_STR_CONTAINS(ohm_last_error(), "1000 bytes");
    CHECK_NULL(ohm_buf_map_file(path, 1001, 0, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_NULL(ohm_buf_map_file(path, 4096, 1, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_EQ_U64(file_size(path), 1000);
    CHECK_EQ_INT(fd_count(), fds);
    CHECK_EQ_INT(maps_count(path), 0);

    /* The end itself is an empty region, as with FileChannel.map. */
    ohm_buf *b = ohm_buf_map_file(path, 1000, 0, 0);
    if (CHECK_NOT_NULL(b)) {
        CHECK_EQ_U64(ohm_buf_size(b), 0);
        CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), 0);
        CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    }
}

static void test_missing_file_is_esys_enoent_naming_the_path(void)
{
    const char *path = path_in("does-not-exist.bin");
    int fds = fd_count();
    CHECK_NULL(ohm_buf_map_file(path, 0, 0, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESYS);
    CHECK_EQ_INT(ohm_last_errno(), ENOENT);
    CHECK_STR_CONTAINS(ohm_last_error(), path);
    CHECK_STR_CONTAINS(ohm_last_error(), strerror(ENOENT));
    CHECK_NULL(ohm_buf_map_file(path, 0, 0, OHM_MAP_WRITE));
    CHECK_EQ_INT(ohm_last_errno(), ENOENT);
    CHECK_EQ_INT(fd_count(), fds);
}

static void test_unreadable_paths_fail_cleanly(void)
{
    int fds = fd_count();
    CHECK_NULL(ohm_buf_map_file(tmpdir, 0, 0, 0)); /* a directory */
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "not a regular file");
    CHECK_NULL(ohm_buf_map_file(tmpdir, 0, 0, OHM_MAP_WRITE));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESYS);
    CHECK_EQ_INT(ohm_last_errno(), EISDIR);
    const char *path = path_in("read-only-perm.bin");
    if (write_pattern_file(path, PAGE) && geteuid() != 0) { /* root ignores permissions */
        CHECK_EQ_INT(chmod(path, 0444), 0);
        CHECK_NULL(ohm_buf_map_file(path, 0, 0, OHM_MAP_WRITE));
        CHECK_EQ_INT(ohm_last_errno(), EACCES);
        ohm_buf *b = ohm_buf_map_file(path, 0, 0, 0);
        if (CHECK_NOT_NULL(b)) ohm_buf_release(b, 1);
    }
    CHECK_EQ_INT(fd_count(), fds);
}

static void test_bad_arguments_are_einval_or_erange(void)
{
    const char *path = path_in("args.bin");
    if (!write_pattern_file(path, PAGE)) return;
    CHECK_NULL(ohm_buf_map_file(NULL, 0, 0, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_buf_map_file("", 0, 0, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_buf_map_file(path, 0, 0, 0x100));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "0x100");
    CHECK_NULL(ohm_buf_map_file(path, UINT64_MAX, 1, OHM_MAP_CREATE | OHM_MAP_WRITE));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "overflows");
    CHECK_NULL(ohm_buf_map_file(path, INT64_MAX, 2, OHM_MAP_CREATE | OHM_MAP_WRITE));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_NULL(ohm_buf_map_file(path, 1, SIZE_MAX, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_EQ_U64(file_size(path), PAGE);

    static const char *bad_names[] = {"noslash", "/a/b", "/", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        CHECK_NULL(ohm_buf_shm_create(bad_names[i], PAGE));
        CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
        CHECK_NULL(ohm_buf_shm_open(bad_names[i], true));
        CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
        CHECK_EQ_INT(ohm_shm_unlink(bad_names[i]), OHM_EINVAL);
    }
    CHECK_NULL(ohm_buf_shm_open(NULL, true));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_EQ_INT(ohm_shm_unlink(NULL), OHM_EINVAL);
    CHECK_NULL(ohm_buf_shm_create(NULL, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
}

static void test_mapping_is_unmapped_at_the_last_release(void)
{
    const char *path = path_in("lifetime.bin");
    if (!write_pattern_file(path, 2 * PAGE)) return;
    int fds = fd_count();
    ohm_buf *b = ohm_buf_map_file(path, 0, 0, OHM_MAP_WRITE);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(fd_count(), fds); /* the descriptor is closed once mapped */
    CHECK_EQ_INT(maps_count(path), 1);
    void *data = ohm_buf_data(b);
    ohm_buf *rs = ohm_buf_retained_slice(b, 10, 10);
    CHECK_NOT_NULL(rs);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 0); /* the retained slice holds the root */
    CHECK_EQ_INT(maps_count(path), 1);
    CHECK_EQ_INT(msync(data, PAGE, MS_ASYNC), 0);
    CHECK_EQ_INT(ohm_buf_release(rs, 1), 1);
    CHECK_EQ_INT(maps_count(path), 0);
    errno = 0;
    CHECK_EQ_INT(msync(data, PAGE, MS_ASYNC), -1);
    CHECK_EQ_INT(errno, ENOMEM);
    CHECK_EQ_INT(fd_count(), fds);
}

/* Four threads map, write, sync and release their own page of one file at once. */
static char threads_path[256]; /* written before the threads start */

static void *thread_map_page(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    const char *path = threads_path;
    for (int round = 0; round < 50; round++) {
        ohm_buf *b = ohm_buf_map_file(path, i * PAGE, PAGE, OHM_MAP_WRITE | OHM_MAP_SYNC_ON_RELEASE);
        if (!CHECK_NOT_NULL(b)) return NULL;
        unsigned char v = (unsigned char)(i * 50 + (uintptr_t)round);
        CHECK_EQ_INT(ohm_buf_fill(b, 0, v, PAGE), 0);
        CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), 0);
        CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    }
    return NULL;
}

static void test_threads_map_one_file_at_once(void)
{
    const char *path = path_in("threads.bin");
    snprintf(threads_path, sizeof threads_path, "%s", path);
    if (!write_pattern_file(path, 4 * PAGE)) return;
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, thread_map_page, (void *)i), 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (uint64_t i = 0; i < 4; i++) {
        unsigned char v;
        if (pread_file(path, i * PAGE + PAGE - 1, &v, 1)) CHECK_EQ_INT(v, i * 50 + 49);
    }
    CHECK_EQ_INT(maps_count(path), 0);
}

/* With every metadata allocation failing, mapping fails with OHM_ENOMEM once buffer headers run out (the
 * header allocator maps through os_meta_alloc); each failure leaves no mapping and no descriptor. The file map
 * itself is not behind os.c's switch (fault_now is private to os.c). */
static void test_injected_faults_leave_nothing_behind(void)
{
    const char *path = path_in("faults.bin");
    if (!write_pattern_file(path, PAGE)) return;
    int fds = fd_count();
    enum { MAX_LIVE = 20000 };
    ohm_buf **live = calloc(MAX_LIVE, sizeof *live);
    if (!CHECK_NOT_NULL(live)) return;
    uint64_t injected = ohm_fault_injected();
    ohm_fault_inject(1, 0, 0);
    size_t n = 0;
    int failed_code = 0;
    while (n < MAX_LIVE) {
        ohm_buf *b = ohm_buf_map_file(path, 0, 0, OHM_MAP_WRITE);
        if (!b) {
            failed_code = ohm_last_error_code();
            break;
        }
        live[n++] = b;
    }
    ohm_fault_inject(0, 0, 0);
    CHECK(ohm_fault_injected() > injected);
    CHECK_EQ_INT(failed_code, OHM_ENOMEM);
    CHECK(n < MAX_LIVE);
    CHECK_EQ_INT(maps_count(path), (int)n); /* the failed attempt unmapped what it mapped */
    CHECK_EQ_INT(fd_count(), fds);
    for (size_t i = 0; i < n; i++) CHECK_EQ_INT(ohm_buf_release(live[i], 1), 1);
    free(live);
    CHECK_EQ_INT(maps_count(path), 0);
    ohm_buf *b = ohm_buf_map_file(path, 0, 0, 0); /* and mapping works again */
    if (CHECK_NOT_NULL(b)) ohm_buf_release(b, 1);
}

/* ---- shared memory ---- */

typedef struct shm_test {
    char name[64];
    size_t size;
} shm_test;

/* The second process: opens the object by name (nothing inherited is used), checks the first one's pattern
 * and answers in the second page. */
static bool shm_child(void *arg)
{
    shm_test *t = arg;
    ohm_buf *b = ohm_buf_shm_open(t->name, true);
    if (!CHECK_NOT_NULL(b)) return false;
    bool ok = CHECK_EQ_U64(ohm_buf_size(b), t->size) && CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_SHM);
    const unsigned char *data = ohm_buf_data(b);
    for (size_t i = 0; ok && i < PAGE; i++) ok = CHECK_EQ_INT(data[i], pattern(i));
    ok = ok && CHECK_EQ_INT(ohm_buf_write(b, PAGE, "answer", 6), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    return ok;
}

static void test_shm_by_name_is_shared_with_a_second_process(void)
{
    shm_test t = {.size = 2 * PAGE};
    snprintf(t.name, sizeof t.name, "/ohm-test-%ld", (long)getpid());
    ohm_buf *b = ohm_buf_shm_create(t.name, t.size);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_SHM);
    unsigned char *data = ohm_buf_data(b);
    CHECK_EQ_INT(data[0], 0);
    CHECK_EQ_INT(data[t.size - 1], 0); /* created zeroed */
    for (size_t i = 0; i < PAGE; i++) data[i] = pattern(i);
    CHECK(in_child(shm_child, &t));
    CHECK(memcmp(data + PAGE, "answer", 6) == 0);
    CHECK_EQ_INT(ohm_buf_sync(b, 0, 0), 0);

    /* The name is taken until unlinked; the mapping outlives the name. */
    CHECK_NULL(ohm_buf_shm_create(t.name, PAGE));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESYS);
    CHECK_EQ_INT(ohm_last_errno(), EEXIST);
    CHECK_STR_CONTAINS(ohm_last_error(), t.name);
    CHECK_EQ_INT(ohm_shm_unlink(t.name), 0);
    CHECK(memcmp(data + PAGE, "answer", 6) == 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(maps_count(t.name + 1), 0);

    CHECK_NULL(ohm_buf_shm_open(t.name, false));
    CHECK_EQ_INT(ohm_last_errno(), ENOENT);
    CHECK_EQ_INT(ohm_shm_unlink(t.name), OHM_ESYS);
    CHECK_EQ_INT(ohm_last_errno(), ENOENT);
}

static void test_shm_opened_read_only_rejects_writes(void)
{
    char name[64];
    snprintf(name, sizeof name, "/ohm-test-ro-%ld", (long)getpid());
    ohm_buf *w = ohm_buf_shm_create(name, PAGE);
    if (!CHECK_NOT_NULL(w)) return;
    CHECK_EQ_INT(ohm_buf_write(w, 0, "w", 1), 0);
    CHECK(!ohm_buf_readonly(w));
    ohm_buf *r = ohm_buf_shm_open(name, false);
    if (CHECK_NOT_NULL(r)) {
        CHECK(ohm_buf_readonly(r));
        CHECK_EQ_INT(ohm_buf_write(r, 0, "r", 1), OHM_ESTATE);
        char c = 0;
        CHECK_EQ_INT(ohm_buf_read(r, 0, &c, 1), 0);
        CHECK_EQ_INT(c, 'w');
        CHECK(ohm_buf_data(r) != ohm_buf_data(w)); /* two mappings of one object */
        CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    }
    CHECK_EQ_INT(ohm_buf_release(w, 1), 1);
    CHECK_EQ_INT(ohm_shm_unlink(name), 0);
}

static bool memfd_child(void *arg)
{
    ohm_buf *b = arg; /* inherited across fork: the same MAP_SHARED pages */
    const unsigned char *data = ohm_buf_data(b);
    bool ok = CHECK_EQ_INT(data[0], pattern(0)) && CHECK_EQ_INT(data[PAGE - 1], pattern(PAGE - 1));
    return ok && CHECK_EQ_INT(ohm_buf_write(b, 100, "child", 5), 0);
}

static void test_memfd_is_shared_across_fork(void)
{
    int before = maps_count("memfd:ohm");
    ohm_buf *b = ohm_buf_shm_create(NULL, PAGE);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_SHM);
    CHECK_EQ_INT(maps_count("memfd:ohm"), before + 1);
    unsigned char *data = ohm_buf_data(b);
    for (size_t i = 0; i < PAGE; i++) data[i] = pattern(i);
    CHECK(in_child(memfd_child, b));
    CHECK(memcmp(data + 100, "child", 5) == 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(maps_count("memfd:ohm"), before);
}

/* ---- main ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    if (!CHECK_NOT_NULL(mkdtemp(tmpdir))) return check_summary();
    /* Shared memory first: fork before any other test starts threads. */
    RUN(test_shm_by_name_is_shared_with_a_second_process);
    RUN(test_memfd_is_shared_across_fork);
    RUN(test_shm_opened_read_only_rejects_writes);
    RUN(test_read_only_mapping_reads_the_file);
    RUN(test_read_only_mapping_rejects_writes);
    RUN(test_create_without_write_maps_read_only);
    RUN(test_write_mapping_reaches_the_file_at_release);
    RUN(test_sync_of_a_slice);
    RUN(test_sync_refuses_buffers_that_are_not_mapped);
    RUN(test_create_extends_a_new_file_to_offset_plus_length);
    RUN(test_unaligned_offset_points_at_the_right_byte);
    RUN(test_region_past_the_end_without_create_is_erange);
    RUN(test_missing_file_is_esys_enoent_naming_the_path);
    RUN(test_unreadable_paths_fail_cleanly);
    RUN(test_bad_arguments_are_einval_or_erange);
    RUN(test_mapping_is_unmapped_at_the_last_release);
    RUN(test_threads_map_one_file_at_once);
    RUN(test_injected_faults_leave_nothing_behind);
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return check_summary();
}
