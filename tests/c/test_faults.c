/* Failure paths and OS options: the max_mapped cap, injected map failures (ohm_fault_inject), chunk hooks that
 * refuse, hooks that see every chunk once, pinned (hooked or locked) chunks that are never purged page by page,
 * mlock, MAP_HUGETLB with its fallback, THP and KSM hints, and the virtual-to-physical lookup. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK FIXTURE_CHUNK

static ohm_pool_config base_config(void)
{
    ohm_pool_config cfg = fixture_config("faults");
    cfg.cache_max_size = 0; /* frees reach the arena: chunk usage is exact */
    return cfg;
}

/* Runs fn in a child process, so that a crash in the allocator fails this test instead of ending the file. */
static void run_isolated(void (*fn)(void), const char *what)
{
    fflush(NULL);
    pid_t pid = fork();
    if (!CHECK(pid >= 0)) return;
    if (pid == 0) {
        unsigned long before = atomic_load(&check_state.failed_checks);
        fn();
        fflush(NULL);
        _exit(atomic_load(&check_state.failed_checks) == before ? 0 : 1);
    }
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fprintf(stderr, "  %s: the child died of signal %d\n", what, WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the cap ---- */

static void test_cap_refuses_allocations_beyond_max_mapped_and_recovers(void)
{
    ohm_pool_config cfg = base_config();
    cfg.max_mapped = 2 * CHUNK;
    ohm_pool *pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(pool)) return;
    void *runs[4];
    for (unsigned i = 0; i < 4; i++) { /* four 2 MiB runs fill both chunks */
        runs[i] = ohm_pool_alloc(pool, 2 * MIB);
        if (!CHECK_NOT_NULL(runs[i])) return;
        memset(runs[i], 1, 2 * MIB);
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, 2 * CHUNK);

    void *more = ohm_pool_alloc(pool, 2 * MIB);
    CHECK_NULL(more);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
    CHECK_STR_CONTAINS(ohm_last_error(), "max_mapped");
    CHECK_NULL(ohm_pool_alloc(pool, 64)); /* a new slab needs a new chunk, too */
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
    CHECK_NULL(ohm_pool_alloc(pool, CHUNK + 1)); /* the cap covers huge blocks */
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
    CHECK_STR_CONTAINS(ohm_last_error(), "max_mapped");
    CHECK_NULL(ohm_pool_alloc_aligned(pool, 64 * KIB, 64 * KIB));
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK(st.failed_allocs >= 3);
    CHECK_EQ_U64(st.mapped_bytes, 2 * CHUNK);
    CHECK_EQ_U64(st.active_blocks, 4);

    /* freed space serves again */
    CHECK_EQ_INT(ohm_pool_free(pool, runs[3]), OHM_OK);
    runs[3] = ohm_pool_alloc(pool, 2 * MIB);
    CHECK_NOT_NULL(runs[3]);
    for (unsigned i = 0; i < 4; i++) CHECK_EQ_INT(ohm_pool_free(pool, runs[i]), OHM_OK);

    /* free chunks count against the cap, but are given back on demand: no trim needed for a huge block */
    void *huge = ohm_pool_alloc(pool, 5 * MIB);
    if (CHECK_NOT_NULL(huge)) {
        memset(huge, 2, 5 * MIB);
        CHECK(fixture_stats(pool, -1).mapped_bytes <= 2 * CHUNK);
        CHECK_NULL(ohm_pool_alloc(pool, 4 * MIB)); /* 5 MiB + another chunk > 8 MiB */
        CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
        CHECK_NULL(ohm_pool_alloc(pool, 3 * MIB)); /* a run needs a chunk as well */
        CHECK_EQ_INT(ohm_pool_free(pool, huge), OHM_OK);
    }
    void *small = ohm_pool_alloc(pool, 64);
    CHECK_NOT_NULL(small);
    ohm_pool_free(pool, small);
    fixture_check_trims_to_nothing(pool);
    ohm_pool_destroy(pool);
}

/* ---- injected map failures ---- */

typedef struct tracked {
    unsigned char *p;
    size_t size;
} tracked;

static void injected_workload(uint64_t every_nth, double fraction, uint64_t seed, bool expect_success)
{
    ohm_pool_config cfg = base_config();
    cfg.chunk_size = 1 * MIB;
    cfg.cache_max_size = 64 * KIB; /* thread caches too: their refills meet the failures */
    ohm_pool *pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(pool)) return;
    enum { MAXLIVE = 256, OPS = 2000 };
    static tracked live[MAXLIVE];
    unsigned nlive = 0, failures = 0, successes = 0, bad_errors = 0;
    uint64_t injected_before = ohm_fault_injected(), x = seed | 1;

    ohm_fault_inject(every_nth, fraction, seed);
    for (unsigned op = 0; op < OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (nlive == MAXLIVE || (nlive > 0 && x % 3 == 0)) {
            unsigned i = (unsigned)(x >> 8) % nlive;
            if (ohm_pool_free(pool, live[i].p) != OHM_OK) bad_errors++;
            live[i] = live[--nlive];
            continue;
        }
        size_t size;
        switch ((x >> 4) % 20) {
        case 0: size = 1 * MIB + 1 + (x >> 20) % (256 * KIB); break; /* huge */
        case 1:
        case 2:
        case 3:
        case 4: size = 16 * KIB + (x >> 20) % (512 * KIB); break;
        default: size = 1 + (x >> 20) % 4000; break;
        }
        unsigned char *p = ohm_pool_alloc(pool, size);
        if (p) {
            for (size_t off = 0; off < size; off += OHM_PAGE) p[off] = 0x5c; /* usable memory: every page */
            p[size - 1] = 0x5c;
            live[nlive++] = (tracked){p, size};
            successes++;
        } else {
            failures++;
            if (ohm_last_error_code() != OHM_ENOMEM || ohm_last_error()[0] == '\0') {
                if (bad_errors++ < 5)
                    fprintf(stderr, "  NULL with code %d \"%s\"\n", ohm_last_error_code(), ohm_last_error());
            }
        }
    }
    ohm_fault_inject(0, 0, 0);
    CHECK_EQ_INT(bad_errors, 0);
    CHECK(failures > 0);
    if (expect_success) CHECK(successes > 0);
    CHECK(ohm_fault_injected() > injected_before);

    /* the pool is consistent: the walk and the stats agree with what the test holds */
    CHECK_EQ_U64(fixture_walk_count(pool), nlive);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.active_blocks, nlive);
    CHECK_EQ_U64(st.allocs, successes);
    for (unsigned i = 0; i < nlive; i++) {
        ohm_block_info info;
        if (CHECK_EQ_INT(ohm_lookup(live[i].p, &info), OHM_OK)) CHECK(info.live && info.base == live[i].p);
        CHECK(live[i].p[0] == 0x5c && live[i].p[live[i].size - 1] == 0x5c);
        CHECK_EQ_INT(ohm_pool_free(pool, live[i].p), OHM_OK);
    }
    /* and it serves normally again */
    for (unsigned i = 0; i < 500; i++) {
        void *p = ohm_pool_alloc(pool, 1 + (i * 977) % 300000);
        if (!CHECK_NOT_NULL(p)) break;
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    CHECK_EQ_U64(fixture_walk_count(pool), 0);
    CHECK_EQ_U64(fixture_stats(pool, -1).active_blocks, 0);
    fixture_check_trims_to_nothing(pool);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_every_nth_map_failing_gives_enomem_and_a_consistent_pool(void)
{
    /* every 2nd: a chunk needs two maps in a row (metadata, memory), so nothing can succeed, cleanly */
    for (uint64_t nth = 2; nth <= 6; nth++) injected_workload(nth, 0, 0, nth > 2);
}

static void test_random_map_failures_give_enomem_and_a_consistent_pool(void)
{
    injected_workload(0, 0.3, 12345, true);
    injected_workload(0, 0.7, 777, false);
}

/* The leak detector's records come from a pool made at the first tracked allocation. If making it fails, that
 * buffer is not tracked (tracking never fails an allocation), and the next tracked allocation tries again: one
 * transient failure must not end tracking for the process. Runs first, in a child: the records pool must not
 * exist yet. */
static void records_pool_failure_is_not_final(void)
{
    ohm_pool_config cfg = fixture_config("faults-leak");
    ohm_pool *pool = fixture_pool(&cfg);
    if (!pool) return;
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_buf *warm = ohm_buf_alloc(pool, 64); /* this thread's cache and header cache hold what the next ones need */
    if (!CHECK_NOT_NULL(warm)) return;
    CHECK_EQ_INT(ohm_buf_release(warm, 1), 1);
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_fault_inject(1, 0.0, 1); /* every map fails: the records pool cannot be made */
    ohm_buf *first = ohm_buf_alloc(pool, 64);
    ohm_fault_inject(0, 0.0, 0);
    if (!CHECK_NOT_NULL(first)) return;
    CHECK(!ohm_buf_tracked(first));
    ohm_buf *second = ohm_buf_alloc(pool, 64);
    if (!CHECK_NOT_NULL(second)) return;
    CHECK(ohm_buf_tracked(second));
    CHECK_EQ_INT(ohm_buf_release(first, 1), 1);
    CHECK_EQ_INT(ohm_buf_release(second, 1), 1);
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
    ohm_pool_destroy(pool);
}

static void test_a_failed_records_pool_is_made_again_later(void)
{
    run_isolated(records_pool_failure_is_not_final, "records pool failure");
}

static void test_pool_creation_under_map_failures_fails_cleanly(void)
{
    unsigned created = 0, refused = 0;
    for (unsigned round = 0; round < 40; round++) {
        if (round < 4) ohm_fault_inject(round + 1, 0, 0);
        else ohm_fault_inject(0, 0.5, round);
        ohm_pool_config cfg = base_config();
        cfg.cache_max_size = 256 * KIB;
        ohm__error_clear();
        ohm_pool *pool = ohm_pool_create(&cfg);
        void *p = pool ? ohm_pool_alloc(pool, 100) : NULL;
        int code = ohm_last_error_code();
        ohm_fault_inject(0, 0, 0);
        if (!pool) {
            refused++;
            CHECK_EQ_INT(code, OHM_ENOMEM);
            CHECK(ohm_last_error()[0] != '\0');
            continue;
        }
        created++;
        if (!p) CHECK_EQ_INT(code, OHM_ENOMEM);
        ohm_pool_free(pool, p);
        void *q = ohm_pool_alloc(pool, 100000);
        CHECK_NOT_NULL(q);
        ohm_pool_free(pool, q);
        CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    }
    CHECK(refused > 0); /* every_nth = 1 fails the very first map */
    CHECK(created > 0);
}

/* ---- chunk hooks ---- */

enum { MAXREC = 64 };

typedef struct hook_log {
    bool refuse;
    unsigned map_calls, maps, unmaps, unmapped_before_hook;
    void *map_addr[MAXREC], *unmap_addr[MAXREC];
    size_t map_size[MAXREC], unmap_size[MAXREC];
} hook_log;

static int on_map(void *arg, void *addr, size_t size)
{
    hook_log *h = arg;
    h->map_calls++;
    if (h->refuse) return -1;
    if (h->maps < MAXREC) {
        h->map_addr[h->maps] = addr;
        h->map_size[h->maps] = size;
    }
    h->maps++;
    return 0;
}

static void on_unmap(void *arg, void *addr, size_t size)
{
    hook_log *h = arg;
    /* the hook runs before the unmap: the range is still mapped (msync fails with ENOMEM otherwise) */
    if (msync(addr, size, MS_ASYNC) != 0 && errno == ENOMEM) h->unmapped_before_hook++;
    if (h->unmaps < MAXREC) {
        h->unmap_addr[h->unmaps] = addr;
        h->unmap_size[h->unmaps] = size;
    }
    h->unmaps++;
}

static ohm_pool *make_hooked_pool(hook_log *h)
{
    ohm_pool_config cfg = base_config();
    cfg.chunk_map = on_map;
    cfg.chunk_unmap = on_unmap;
    cfg.hook_arg = h;
    return fixture_pool(&cfg);
}

static void test_refusing_map_hook_fails_the_allocation_and_the_pool_recovers(void)
{
    static hook_log h;
    memset(&h, 0, sizeof h);
    ohm_pool *pool = make_hooked_pool(&h);
    if (!pool) return;
    h.refuse = true;
    CHECK_NULL(ohm_pool_alloc(pool, 64));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "hook");
    CHECK_NULL(ohm_pool_alloc(pool, 2 * CHUNK)); /* huge blocks are hooked too */
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ECALLBACK);
    CHECK_EQ_INT(h.map_calls, 2);
    CHECK_EQ_INT(h.unmaps, 0); /* a refused chunk was never registered: nothing to unregister */
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK(st.failed_allocs >= 2);
    h.refuse = false;
    void *p = ohm_pool_alloc(pool, 64);
    if (CHECK_NOT_NULL(p)) memset(p, 1, 64);
    CHECK_EQ_INT(h.maps, 1);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    CHECK_EQ_INT(h.unmaps, 1);
}

static bool inside(const hook_log *h, const void *p, size_t size)
{
    for (unsigned i = 0; i < h->maps && i < MAXREC; i++)
        if ((uintptr_t)p >= (uintptr_t)h->map_addr[i] &&
            (uintptr_t)p + size <= (uintptr_t)h->map_addr[i] + h->map_size[i])
            return true;
    return false;
}

static void test_hooks_see_every_chunk_once_and_unmap_before_unmapping(void)
{
    static hook_log h;
    memset(&h, 0, sizeof h);
    ohm_pool *pool = make_hooked_pool(&h);
    if (!pool) return;
    void *runs[6];
    for (unsigned i = 0; i < 6; i++) runs[i] = ohm_pool_alloc(pool, 2 * MIB); /* three chunks */
    void *small = ohm_pool_alloc(pool, 100);                                  /* a fourth chunk */
    void *huge = ohm_pool_alloc(pool, 6 * MIB);                               /* a mapping of its own */
    CHECK_EQ_INT(h.maps, 5);
    for (unsigned i = 0; i < 4; i++) {
        CHECK_EQ_U64(h.map_size[i], CHUNK);
        CHECK_EQ_U64((uintptr_t)h.map_addr[i] % CHUNK, 0);
    }
    CHECK(h.map_size[4] >= 6 * MIB);
    for (unsigned i = 0; i < 6; i++)
        if (CHECK_NOT_NULL(runs[i])) CHECK(inside(&h, runs[i], 2 * MIB));
    if (CHECK_NOT_NULL(small)) CHECK(inside(&h, small, 100));
    if (CHECK_NOT_NULL(huge)) CHECK(inside(&h, huge, 6 * MIB));
    for (unsigned i = 0; i < h.maps; i++)
        for (unsigned j = 0; j < i; j++) CHECK(h.map_addr[i] != h.map_addr[j]); /* each chunk once */

    CHECK_EQ_INT(ohm_pool_free(pool, huge), OHM_OK); /* huge: unmapped at once, hook first */
    CHECK_EQ_INT(h.unmaps, 1);
    CHECK(h.unmap_addr[0] == h.map_addr[4] && h.unmap_size[0] == h.map_size[4]);
    for (unsigned i = 0; i < 6; i++) ohm_pool_free(pool, runs[i]);
    ohm_pool_free(pool, small);
    fixture_check_trims_to_nothing(pool);
    CHECK_EQ_INT(h.unmaps, h.maps);
    CHECK_EQ_INT(h.unmapped_before_hook, 0);
    for (unsigned i = 0; i < h.unmaps; i++) { /* every unmap names a mapped chunk, with its size */
        bool found = false;
        for (unsigned j = 0; j < h.maps; j++)
            found |= h.unmap_addr[i] == h.map_addr[j] && h.unmap_size[i] == h.map_size[j];
        CHECK(found);
    }
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);

    /* destroying a pool with live chunks runs the unmap hook for each */
    memset(&h, 0, sizeof h);
    pool = make_hooked_pool(&h);
    if (!pool) return;
    for (unsigned i = 0; i < 3; i++) CHECK_NOT_NULL(ohm_pool_alloc(pool, 3 * MIB));
    CHECK_NOT_NULL(ohm_pool_alloc(pool, 5 * MIB));
    CHECK_EQ_INT(h.maps, 4);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    CHECK_EQ_INT(h.unmaps, 4);
    CHECK_EQ_INT(h.unmapped_before_hook, 0);
}

/* A registered chunk keeps its pages: free + trim purge nothing while the chunk is not wholly free. */
static void test_hooked_chunk_is_never_purged_page_by_page(void)
{
    static hook_log h;
    memset(&h, 0, sizeof h);
    ohm_pool *pool = make_hooked_pool(&h);
    if (!pool) return;
    unsigned char *run = ohm_pool_alloc(pool, 256 * KIB), *keep = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(run) || !CHECK_NOT_NULL(keep)) return;
    memset(run, 0x77, 256 * KIB);
    CHECK_EQ_INT(ohm_pool_free(pool, run), OHM_OK);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.purged_bytes, 0);
    CHECK_EQ_U64(st.mapped_bytes, CHUNK);
    CHECK_EQ_U64(fixture_resident_pages(run, 256 * KIB), 64); /* the device still sees the same pages */
    CHECK_EQ_INT(h.unmaps, 0);
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    CHECK_EQ_INT(h.unmaps, 1);
}

static ohm_pool *make_locked_pool(void)
{
    ohm_pool_config cfg = base_config();
    cfg.lock_memory = true;
    return fixture_pool(&cfg);
}

static void test_locked_pool_works_or_fails_with_a_clear_enomem(void)
{
    ohm_pool *pool = make_locked_pool();
    if (!pool) return;
    unsigned char *p = ohm_pool_alloc(pool, 64 * KIB), *keep = ohm_pool_alloc(pool, 64);
    if (!p) { /* no privilege to lock: a clear ENOMEM, and the pool stays usable */
        CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
        CHECK_STR_CONTAINS(ohm_last_error(), "mlock");
        CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, 0);
        CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
        return;
    }
    if (!CHECK_NOT_NULL(keep)) return;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) /* sanitizers make mlock a no-op */
    CHECK_EQ_U64(fixture_resident_pages((void *)chunk_of(p)->base, CHUNK), CHUNK / OHM_PAGE); /* locked in */
#endif
    memset(p, 1, 64 * KIB);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    CHECK_EQ_U64(fixture_stats(pool, -1).purged_bytes, 0); /* locked pages are not purged page by page */
    CHECK_EQ_U64(fixture_resident_pages(p, 64 * KIB), 16);
    CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, CHUNK);
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

/* A pinned (hooked or locked) chunk that trim unmapped whole must leave the pool serving again. */
static void pinned_pool_after_trim(ohm_pool *pool, hook_log *h)
{
    void *a = ohm_pool_alloc(pool, 16 * KIB), *keep = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(keep)) return;
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK); /* the chunk is wholly free: unmapped whole */
    if (h) CHECK_EQ_INT(h->unmaps, 1);
    CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, 0);
    for (unsigned i = 0; i < 3; i++) {
        unsigned char *b = ohm_pool_alloc(pool, 16 * KIB << i), *c = ohm_pool_alloc(pool, 100);
        if (!CHECK_NOT_NULL(b) || !CHECK_NOT_NULL(c)) return;
        memset(b, 1, 16 * KIB << i);
        memset(c, 2, 100);
        if (h) CHECK(inside(h, b, 16 * KIB << i) && inside(h, c, 100));
        CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK);
        CHECK_EQ_INT(ohm_pool_free(pool, c), OHM_OK);
    }
    if (h) CHECK_EQ_INT(h->maps, 2);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    if (h) CHECK_EQ_INT(h->unmaps, h->maps);
}

static void hooked_pool_after_trim(void)
{
    static hook_log h;
    memset(&h, 0, sizeof h);
    ohm_pool *pool = make_hooked_pool(&h);
    if (pool) pinned_pool_after_trim(pool, &h);
}

static void locked_pool_after_trim(void)
{
    ohm_pool *pool = make_locked_pool();
    if (!pool) return;
    void *probe = ohm_pool_alloc(pool, 64);
    if (!probe) { /* cannot lock here: nothing to check */
        ohm_pool_destroy(pool);
        return;
    }
    ohm_pool_free(pool, probe);
    ohm_pool_destroy(pool);
    pool = make_locked_pool();
    if (pool) pinned_pool_after_trim(pool, NULL);
}

/* Run in a child: the failure mode is a crash. */
static void test_pinned_pools_serve_again_after_trim_unmapped_their_chunk(void)
{
    run_isolated(hooked_pool_after_trim, "hooked pool");
    run_isolated(locked_pool_after_trim, "locked pool");
}

/* ---- OS options ---- */

static unsigned long meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long v = 0;
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') v = strtoul(line + klen + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

static void test_hugetlb_falls_back_to_normal_pages_when_none_are_reserved(void)
{
    ohm_pool_config cfg = base_config();
    cfg.huge_pages = OHM_HUGE_HUGETLB;
    ohm_pool *pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(pool)) return;
    bool none_reserved = meminfo("HugePages_Free") == 0;
    size_t sizes[] = {64, 100 * KIB, 3 * MIB, 6 * MIB};
    for (unsigned i = 0; i < 4; i++) {
        unsigned char *p = ohm_pool_alloc(pool, sizes[i]);
        if (!CHECK_NOT_NULL(p)) continue;
        memset(p, 0x42, sizes[i]);
        if (none_reserved) CHECK_EQ_INT(chunk_of(p)->hugetlb, 0);
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    if (!none_reserved) fprintf(stderr, "  (huge pages are reserved here: only allocation was checked)\n");
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_thp_and_mergeable_options_serve_normally(void)
{
    for (unsigned mode = 0; mode < 3; mode++) {
        ohm_pool_config cfg = base_config();
        cfg.huge_pages = mode == 1 || mode == 2 ? OHM_HUGE_THP : OHM_HUGE_NONE;
        cfg.mergeable = mode != 1;
        ohm_pool *pool = ohm_pool_create(&cfg);
        if (!CHECK_NOT_NULL(pool)) return;
        void *p[3] = {ohm_pool_alloc(pool, 64), ohm_pool_alloc(pool, 1 * MIB), ohm_pool_alloc(pool, 5 * MIB)};
        for (unsigned i = 0; i < 3; i++)
            if (CHECK_NOT_NULL(p[i])) memset(p[i], 7, ohm_usable_size(p[i]));
        for (unsigned i = 0; i < 3; i++) CHECK_EQ_INT(ohm_pool_free(pool, p[i]), OHM_OK);
        fixture_check_trims_to_nothing(pool);
        CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    }
}

static void test_virt_to_phys_gives_a_frame_or_says_it_lacks_the_privilege(void)
{
    unsigned char *p = ohm_alloc(8192);
    if (!CHECK_NOT_NULL(p)) return;
    memset(p, 1, 8192);
    uint64_t phys = 0, phys2 = 0;
    int rc = ohm_virt_to_phys(p + 123, &phys);
    if (rc == OHM_OK) {
        CHECK(phys != 0);
        CHECK_EQ_U64(phys % OHM_PAGE, (uintptr_t)(p + 123) % OHM_PAGE);
        uintptr_t page_end = ((uintptr_t)(p + 123) | (OHM_PAGE - 1));
        CHECK_EQ_INT(ohm_virt_to_phys((void *)page_end, &phys2), OHM_OK); /* same page, same frame */
        CHECK_EQ_U64(phys2 - phys, page_end - (uintptr_t)(p + 123));
    } else {
        CHECK_EQ_INT(rc, OHM_EPERM);
        CHECK_EQ_INT(ohm_last_error_code(), OHM_EPERM);
        CHECK_STR_CONTAINS(ohm_last_error(), "CAP_SYS_ADMIN");
    }
    ohm_free(p);

    /* a page that was never touched is not resident */
    void *fresh = mmap(NULL, 4 * OHM_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (CHECK(fresh != MAP_FAILED)) {
        CHECK_EQ_INT(ohm_virt_to_phys((char *)fresh + OHM_PAGE, &phys), OHM_EINVAL);
        CHECK_STR_CONTAINS(ohm_last_error(), "not resident");
        munmap(fresh, 4 * OHM_PAGE);
    }
    CHECK_EQ_INT(ohm_virt_to_phys(&phys, NULL), OHM_EINVAL);
}

int main(void)
{
    ohm__init();
    RUN(test_a_failed_records_pool_is_made_again_later); /* first: no tracked buffer may be made before it */
    RUN(test_cap_refuses_allocations_beyond_max_mapped_and_recovers);
    RUN(test_every_nth_map_failing_gives_enomem_and_a_consistent_pool);
    RUN(test_random_map_failures_give_enomem_and_a_consistent_pool);
    RUN(test_pool_creation_under_map_failures_fails_cleanly);
    RUN(test_refusing_map_hook_fails_the_allocation_and_the_pool_recovers);
    RUN(test_hooks_see_every_chunk_once_and_unmap_before_unmapping);
    RUN(test_hooked_chunk_is_never_purged_page_by_page);
    RUN(test_locked_pool_works_or_fails_with_a_clear_enomem);
    RUN(test_pinned_pools_serve_again_after_trim_unmapped_their_chunk);
    RUN(test_hugetlb_falls_back_to_normal_pages_when_none_are_reserved);
    RUN(test_thp_and_mergeable_options_serve_normally);
    RUN(test_virt_to_phys_gives_a_frame_or_says_it_lacks_the_privilege);
    return check_summary();
}
