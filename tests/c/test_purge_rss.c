/* Memory goes back to the OS: explicit trim brings RSS (from /proc/self/statm) back to where it started, decay
 * purging with a zero delay works on the free paths, pages younger than the delay are kept, and the background
 * purger gives memory back from a pool nobody calls. mincore() tells which pages are really resident. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static ohm_pool *make_pool(uint64_t delay_ms, bool background, size_t cache_max)
{
    ohm_pool_config cfg = fixture_cache_config("purge", 0, cache_max);
    cfg.purge_delay_ms = delay_ms;
    cfg.background_purge = background;
    return fixture_pool(&cfg);
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!CHECK_NOT_NULL(f)) return 0;
    CHECK_EQ_INT(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* ---- trim ---- */

static void test_trim_returns_rss_to_where_it_started(void)
{
    const char *env = getenv("OHM_TEST_RSS_MB");
    size_t target = (env ? strtoul(env, NULL, 10) : 64) * MIB;
    ohm_pool *pool = make_pool(UINT64_MAX, false, 256 * KIB);
    if (!pool) return;
    size_t cap = 65536;
    void **blocks = malloc(cap * sizeof *blocks);
    if (!CHECK_NOT_NULL(blocks)) return;
    memset(blocks, 0, cap * sizeof *blocks);       /* resident before the baseline */
    ohm_pool_free(pool, ohm_pool_alloc(pool, 16)); /* this thread's cache exists before the baseline */
    ohm_pool_trim(pool);

    size_t before = rss_bytes();
    uint64_t seed = 42;
    size_t total = 0, n = 0;
    while (total < target && n < cap) {
        uint64_t r = xorshift(&seed);
        size_t size;
        switch (r % 8) {
        case 0:
        case 1:
        case 2:
        case 3: size = 16 + (r >> 8) % 2048; break; /* small */
        case 4:
        case 5: size = 2048 + (r >> 8) % (14 * KIB); break;         /* larger slabs */
        case 6: size = 16 * KIB + (r >> 8) % (240 * KIB); break;    /* cached runs */
        default: size = 256 * KIB + (r >> 8) % (1792 * KIB); break; /* uncached runs */
        }
        unsigned char *p = ohm_pool_alloc(pool, size);
        if (!CHECK_NOT_NULL(p)) break;
        memset(p, (int)(n | 1), size);
        blocks[n++] = p;
        total += size;
    }
    size_t peak = rss_bytes();
    CHECK(peak >= before + total * 9 / 10); /* the memory really was touched */
    for (size_t i = 0; i < n; i++) CHECK_EQ_INT(ohm_pool_free(pool, blocks[i]), OHM_OK);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    size_t after = rss_bytes();
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.active_blocks, 0);
    if (!CHECK(after <= before + before / 10 + 2 * MIB))
        fprintf(stderr, "  RSS before %zu KiB, peak %zu KiB, after trim %zu KiB\n", before >> 10, peak >> 10,
                after >> 10);
    free(blocks);
    ohm_pool_destroy(pool);
}

/* ---- decay ---- */

static void test_freed_pages_stay_resident_until_purged(void)
{
    ohm_pool *pool = make_pool(UINT64_MAX, false, 0);
    if (!pool) return;
    unsigned char *run = ohm_pool_alloc(pool, 256 * KIB), *keep = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(run) || !CHECK_NOT_NULL(keep)) return;
    memset(run, 7, 256 * KIB);
    CHECK_EQ_U64(fixture_resident_pages(run, 256 * KIB), 64);
    CHECK_EQ_INT(ohm_pool_free(pool, run), OHM_OK);
    for (unsigned i = 0; i < 100; i++) ohm_pool_free(pool, ohm_pool_alloc(pool, 64)); /* free-path events */
    CHECK_EQ_U64(fixture_resident_pages(run, 256 * KIB), 64); /* delay "never": kept for reuse */
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 256 * KIB);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    CHECK_EQ_U64(fixture_resident_pages(run, 256 * KIB), 0); /* given back, while the chunk stays mapped */
    CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, 4 * MIB);
    ohm_pool_free(pool, keep);
    ohm_pool_destroy(pool);
}

/* Allocates n runs of 64 KiB, makes every page resident by writing byte, and frees them all: false (and a failed
 * check) if a run could not be allocated. */
static bool free_touched_runs(ohm_pool *pool, unsigned char **runs, unsigned n, int byte)
{
    for (unsigned i = 0; i < n; i++) {
        runs[i] = ohm_pool_alloc(pool, 64 * KIB);
        if (!CHECK_NOT_NULL(runs[i])) return false;
        memset(runs[i], byte, 64 * KIB);
    }
    for (unsigned i = 0; i < n; i++) CHECK_EQ_INT(ohm_pool_free(pool, runs[i]), OHM_OK);
    return true;
}

static void test_zero_purge_delay_purges_on_free_paths(void)
{
    ohm_pool *pool = make_pool(0, false, 0);
    if (!pool) return;
    unsigned char *runs[10], *keep = ohm_pool_alloc(pool, 64);
    if (!free_touched_runs(pool, runs, 10, 9)) return;
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.purged_bytes, 10 * 64 * KIB);
    CHECK_EQ_U64(st.mapped_bytes, 4 * MIB);
    for (unsigned i = 0; i < 10; i++) CHECK_EQ_U64(fixture_resident_pages(runs[i], 64 * KIB), 0);
    /* the last block out takes the chunk with it, without a trim */
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.chunks_unmapped, 1);
    ohm_pool_destroy(pool);

    /* with a thread cache: flushing it is the free path that purges */
    pool = make_pool(0, false, 256 * KIB);
    if (!pool) return;
    keep = ohm_pool_alloc(pool, 20000);
    for (unsigned i = 0; i < 10; i++) runs[i] = ohm_pool_alloc(pool, 64 * KIB);
    for (unsigned i = 0; i < 10; i++) ohm_pool_free(pool, runs[i]);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK(st.purged_bytes >= 10 * 64 * KIB);
    CHECK_EQ_U64(st.mapped_bytes, 4 * MIB);
    ohm_pool_free(pool, keep);
    ohm_pool_destroy(pool);
}

static void test_pages_younger_than_the_purge_delay_are_kept(void)
{
    const uint64_t delay = 300;
    ohm_pool *pool = make_pool(delay, false, 0);
    if (!pool) return;
    /* A live block keeps the slab that the free-path events below use, so their frees never touch the run's
     * pages (a run that merges with a newly freed neighbour starts its delay again). */
    void *slab_keeper = ohm_pool_alloc(pool, 64);
    unsigned char *run = ohm_pool_alloc(pool, 128 * KIB), *keep = ohm_pool_alloc(pool, 20000);
    if (!CHECK_NOT_NULL(slab_keeper) || !CHECK_NOT_NULL(run) || !CHECK_NOT_NULL(keep)) return;
    memset(run, 1, 128 * KIB);
    uint64_t freed = now_ms();
    CHECK_EQ_INT(ohm_pool_free(pool, run), OHM_OK);
    ohm_pool_free(pool, ohm_pool_alloc(pool, 64));
    ohm_pool_stats st = fixture_stats(pool, -1);
    uint64_t checked = now_ms();
    if (checked - freed < delay / 2) { /* the machine did not stall in between: the run must still be there */
        CHECK_EQ_U64(st.dirty_bytes, 128 * KIB);
        CHECK_EQ_U64(st.purged_bytes, 0);
        CHECK_EQ_U64(fixture_resident_pages(run, 128 * KIB), 32);
    }
    /* later free-path events purge it: poll, as the feature is time-based */
    uint64_t deadline = freed + 5000, purged_at = 0;
    while (now_ms() < deadline) {
        ohm_pool_free(pool, ohm_pool_alloc(pool, 64));
        if (fixture_stats(pool, -1).purged_bytes >= 128 * KIB) {
            purged_at = now_ms();
            break;
        }
        pause_ms(2);
    }
    if (CHECK(purged_at != 0)) CHECK(purged_at - freed >= delay - 20); /* not before the delay (coarse clock) */
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 0);
    CHECK_EQ_U64(fixture_resident_pages(run, 128 * KIB), 0);
    ohm_pool_free(pool, keep);
    ohm_pool_free(pool, slab_keeper);
    ohm_pool_destroy(pool);
}

static void test_background_purger_gives_pages_back_without_calls(void)
{
    ohm_pool *pool = make_pool(50, true, 0);
    if (!pool) return;
    unsigned char *runs[8], *keep = ohm_pool_alloc(pool, 64);
    if (!free_touched_runs(pool, runs, 8, 3)) return;
    uint64_t deadline = now_ms() + 5000;
    ohm_pool_stats st = fixture_stats(pool, -1);
    while (st.dirty_bytes != 0 && now_ms() < deadline) {
        pause_ms(5);
        st = fixture_stats(pool, -1); /* only stats: no allocation or free runs the purge */
    }
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK(st.purged_bytes >= 8 * 64 * KIB);
    CHECK_EQ_U64(fixture_resident_pages(runs[0], 8 * 64 * KIB), 0);
    /* and an emptied chunk is unmapped by the purger */
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    deadline = now_ms() + 5000;
    while ((st = fixture_stats(pool, -1)).mapped_bytes != 0 && now_ms() < deadline) pause_ms(5);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

/* A dirty run freed between two purged ones merges with them; the decay purge then gives back (and counts)
 * only its own pages, and the chunk, wholly free once the last block goes, is unmapped on the free path. */
static void test_decay_purges_only_the_dirty_pages_of_a_merged_run(void)
{
    ohm_pool *pool = make_pool(0, false, 0);
    if (!pool) return;
    unsigned char *keep = ohm_pool_alloc(pool, 64), *a = ohm_pool_alloc(pool, 64 * KIB);
    unsigned char *b = ohm_pool_alloc(pool, 64 * KIB);
    if (!CHECK_NOT_NULL(keep) || !CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(b)) return;
    CHECK(b == a + 64 * KIB);
    memset(a, 5, 128 * KIB);
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK); /* purged at once (delay 0) */
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.purged_bytes, 64 * KIB);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK); /* merges with a and the never-used rest, then is purged */
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.purged_bytes, 128 * KIB);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.mapped_bytes, 4 * MIB);
    CHECK_EQ_U64(fixture_resident_pages(a, 128 * KIB), 0);
    /* the merged run is one: a request as large as the chunk's free pages fits without a second chunk */
    unsigned char *big = ohm_pool_alloc(pool, 2 * MIB);
    CHECK(big == a);
    CHECK_EQ_U64(fixture_stats(pool, -1).chunks_mapped, 1);
    ohm_pool_free(pool, big);
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.chunks_unmapped, 1);
    ohm_pool_destroy(pool);
}

int main(void)
{
    RUN(test_trim_returns_rss_to_where_it_started);
    RUN(test_freed_pages_stay_resident_until_purged);
    RUN(test_zero_purge_delay_purges_on_free_paths);
    RUN(test_pages_younger_than_the_purge_delay_are_kept);
    RUN(test_background_purger_gives_pages_back_without_calls);
    RUN(test_decay_purges_only_the_dirty_pages_of_a_merged_run);
    return check_summary();
}
