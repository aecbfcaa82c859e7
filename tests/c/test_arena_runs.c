/* White-box tests of an arena's page runs and slabs (arena.c): where runs land after splitting, coalescing and
 * aligning, how a slab fills and empties, and dirty versus clean (purged) free pages. Every pool here has one
 * arena and no thread cache, so each call reaches the arena and the layout inside a fresh chunk is exact. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "pool.h"

#include <stdlib.h>

/* A page-run class (slabs serve classes up to SC_SMALL_MAX): the unit of the run tests. */
#define RUN_SIZE       ((size_t)64 << 10)
#define RUN_SIZE_PAGES (RUN_SIZE / OHM_PAGE)
#define CHUNK          FIXTURE_CHUNK

/* The fixture's pool (one arena, purging only on trim) without thread caches. */
static ohm_pool *make_pool(void) { return fixture_flag_pool("runs", FIXTURE_NO_CACHE); }

/* Chunk facts read under the arena lock. */
static uint32_t free_pages_of(const void *p)
{
    chunk_t *c = chunk_of(p);
    pthread_mutex_lock(&c->arena->lock);
    uint32_t n = c->free_pages;
    pthread_mutex_unlock(&c->arena->lock);
    return n;
}

static unsigned page_kind(const void *p)
{
    chunk_t *c = chunk_of(p);
    pthread_mutex_lock(&c->arena->lock);
    unsigned k = pg_kind(pg_get(c, chunk_page_of(c, p)));
    pthread_mutex_unlock(&c->arena->lock);
    return k;
}

static uintptr_t chunk_base_of(const void *p) { return chunk_of(p)->base; }

static char *alloc_ok(ohm_pool *pool, size_t size)
{
    char *p = ohm_pool_alloc(pool, size);
    CHECK_NOT_NULL(p);
    return p;
}

/* ---- coalescing ---- */

static void test_freed_neighbour_runs_coalesce_into_one(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *a = alloc_ok(pool, RUN_SIZE), *b = alloc_ok(pool, RUN_SIZE), *c = alloc_ok(pool, RUN_SIZE);
    if (!a || !b || !c) return;
    CHECK_EQ_U64((uintptr_t)a, chunk_base_of(a)); /* a fresh chunk is used from its start */
    CHECK_EQ_U64((uintptr_t)a % CHUNK, 0);        /* and chunks are aligned to their size */
    CHECK(b == a + RUN_SIZE);
    CHECK(c == b + RUN_SIZE);
    uint32_t npages = chunk_of(a)->npages;
    CHECK_EQ_U64(npages, CHUNK / OHM_PAGE);
    CHECK_EQ_U64(free_pages_of(a), npages - 3 * RUN_SIZE_PAGES);

    /* B then A: the left neighbour merges with the free run on its right */
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK);
    CHECK_EQ_INT(page_kind(a), PG_FREE);
    char *d = alloc_ok(pool, 2 * RUN_SIZE);
    CHECK(d == a);
    CHECK_EQ_INT(ohm_pool_free(pool, d), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, c), OHM_OK);
    CHECK_EQ_U64(free_pages_of(a), npages);
    CHECK_EQ_U64(fixture_stats(pool, -1).chunks, 1); /* no purge delay has passed: the chunk stays */

    /* the same three again (from the dirty run just freed), then A, C, B: B merges with both sides */
    a = alloc_ok(pool, RUN_SIZE), b = alloc_ok(pool, RUN_SIZE), c = alloc_ok(pool, RUN_SIZE);
    if (!a || !b || !c) return;
    CHECK(a == d);
    CHECK(b == a + RUN_SIZE);
    CHECK(c == b + RUN_SIZE);
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, c), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK);
    char *e = alloc_ok(pool, 3 * RUN_SIZE);
    CHECK(e == a);
    CHECK_EQ_INT(ohm_pool_free(pool, e), OHM_OK);
    CHECK_EQ_U64(free_pages_of(a), npages);
    ohm_pool_destroy(pool);
}

/* ---- splitting ---- */

static void test_a_run_split_from_a_larger_free_run_leaves_the_rest_usable(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *x = alloc_ok(pool, 4 * RUN_SIZE), *fence = alloc_ok(pool, RUN_SIZE);
    if (!x || !fence) return;
    CHECK(fence == x + 4 * RUN_SIZE);
    memset(x, 0x11, 4 * RUN_SIZE);
    CHECK_EQ_INT(ohm_pool_free(pool, x), OHM_OK);
    uint32_t npages = chunk_of(fence)->npages;
    CHECK_EQ_U64(free_pages_of(fence), npages - RUN_SIZE_PAGES);

    char *a = alloc_ok(pool, RUN_SIZE);     /* taken from the head of the free 4 runs */
    char *b = alloc_ok(pool, 3 * RUN_SIZE); /* exactly the remainder */
    CHECK(a == x);
    CHECK(b == x + RUN_SIZE);
    CHECK_EQ_U64(free_pages_of(fence), npages - 5 * RUN_SIZE_PAGES);
    CHECK_EQ_U64(ohm_usable_size(a), RUN_SIZE);
    CHECK_EQ_U64(ohm_usable_size(b), 3 * RUN_SIZE);
    memset(a, 0x22, RUN_SIZE);
    memset(b, 0x33, 3 * RUN_SIZE);
    /* the split pieces are independent runs */
    ohm_block_info info;
    if (CHECK_EQ_INT(ohm_lookup(b + 100, &info), OHM_OK)) CHECK(info.base == b);
    if (CHECK_EQ_INT(ohm_lookup(a + RUN_SIZE - 1, &info), OHM_OK)) CHECK(info.base == a);

    /* a split off the end of the chunk's big free run: consecutive, too */
    char *c = alloc_ok(pool, RUN_SIZE + RUN_SIZE / 4); /* a run class too */
    CHECK(c == fence + RUN_SIZE);
    ohm_pool_free(pool, a);
    ohm_pool_free(pool, b);
    ohm_pool_free(pool, c);
    ohm_pool_free(pool, fence);
    CHECK_EQ_U64(free_pages_of(fence), npages);
    ohm_pool_destroy(pool);
}

/* ---- aligned runs ---- */

static void test_aligned_runs_start_on_their_alignment_inside_a_chunk(void)
{
    for (size_t align = 2 * RUN_SIZE; align <= 1 * MIB; align *= 2) {
        ohm_pool *pool = make_pool();
        if (!pool) return;
        char *a = alloc_ok(pool, RUN_SIZE);
        char *p = ohm_pool_alloc_aligned(pool, RUN_SIZE, align);
        if (!a || !CHECK_NOT_NULL(p)) return;
        CHECK_EQ_U64((uintptr_t)p % align, 0);
        CHECK(chunk_of(p) == chunk_of(a));              /* a run of the same chunk, not a mapping of its own */
        CHECK(p == a + align - ((uintptr_t)a % align)); /* the first aligned page after A */
        CHECK_EQ_U64(ohm_usable_size(p), RUN_SIZE);
        ohm_block_info info;
        if (CHECK_EQ_INT(ohm_lookup(p + 1, &info), OHM_OK)) CHECK_EQ_INT(info.kind, OHM_BLOCK_RUN);
        uint32_t npages = chunk_of(a)->npages;
        CHECK_EQ_U64(free_pages_of(a), npages - 2 * RUN_SIZE_PAGES); /* the pages skipped to align stay free */
        CHECK_EQ_INT(page_kind(a + RUN_SIZE), PG_FREE);
        /* and usable: the next small run lands right after A */
        char *q = alloc_ok(pool, RUN_SIZE);
        CHECK(q == a + RUN_SIZE);
        memset(p, 1, RUN_SIZE);
        ohm_pool_free(pool, q);
        ohm_pool_free(pool, p);
        ohm_pool_free(pool, a);
        CHECK_EQ_U64(free_pages_of(a), npages);
        ohm_pool_destroy(pool);
    }
}

/* ---- slabs ---- */

static const run_t *slab_of(const void *p)
{
    chunk_t *c = chunk_of(p);
    return &c->runs[pg_head(pg_get(c, chunk_page_of(c, p)))];
}

static void slab_cycle(unsigned cls)
{
    const sc_info *ci = &sc_table[cls];
    size_t size = ci->size, sp = ci->slab_pages;
    unsigned objs = ci->slab_objs;
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *r = alloc_ok(pool, RUN_SIZE); /* a run at the chunk's start; the slab goes right after */
    char **blocks = calloc(objs, sizeof *blocks);
    if (!r || !CHECK_NOT_NULL(blocks)) return;
    for (unsigned i = 0; i < objs; i++) {
        blocks[i] = alloc_ok(pool, size);
        if (!blocks[i]) return;
        if (!CHECK(blocks[i] == r + RUN_SIZE + i * size)) {
            fprintf(stderr, "  class %zu block %u at %p, want %p\n", size, i, (void *)blocks[i],
                    (void *)(r + RUN_SIZE + i * size));
            return;
        }
    }
    chunk_t *c = chunk_of(r);
    pthread_mutex_lock(&c->arena->lock);
    const run_t *s = slab_of(blocks[0]);
    CHECK_EQ_INT(s->state, RUN_SLAB);
    CHECK_EQ_U64(s->npages, sp);
    CHECK_EQ_U64(s->nfree, 0); /* exactly full */
    for (unsigned w = 0; w < SC_SLAB_WORDS; w++) CHECK_EQ_U64(s->bitmap[w], 0);
    CHECK(c->arena->partial[cls] != s);
    pthread_mutex_unlock(&c->arena->lock);
    CHECK_EQ_INT(page_kind(blocks[objs - 1]), PG_SLAB);

    /* one freed in the middle is the next one handed out */
    unsigned mid = objs / 2;
    CHECK_EQ_INT(ohm_pool_free(pool, blocks[mid]), OHM_OK);
    pthread_mutex_lock(&c->arena->lock);
    CHECK_EQ_U64(s->nfree, 1);
    CHECK_EQ_U64(s->bitmap[mid / 64], 1ull << (mid % 64));
    pthread_mutex_unlock(&c->arena->lock);
    char *again = alloc_ok(pool, size);
    CHECK(again == blocks[mid]);
    blocks[mid] = again;

    /* emptied, the slab stays a slab, kept for reuse and counted as dirty until the pool purges it */
    CHECK_EQ_INT(ohm_pool_free(pool, r), OHM_OK);
    for (unsigned i = 0; i < objs; i++) CHECK_EQ_INT(ohm_pool_free(pool, blocks[i]), OHM_OK);
    CHECK_EQ_INT(page_kind(blocks[0]), PG_SLAB);
    CHECK_EQ_U64(free_pages_of(r), c->npages - sp);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, (RUN_SIZE_PAGES + sp) * OHM_PAGE);
    /* the next block of its class comes from it, lowest address first */
    char *reused = alloc_ok(pool, size);
    CHECK(reused == blocks[0]);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, RUN_SIZE_PAGES * OHM_PAGE);
    CHECK_EQ_INT(ohm_pool_free(pool, reused), OHM_OK);
    /* a trim turns empty slabs back into pages and gives everything back */
    fixture_check_trims_to_nothing(pool);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 0);
    free(blocks);
    ohm_pool_destroy(pool);
}

static void test_slab_fills_with_consecutive_blocks_and_empties_back_to_pages_at_trim(void)
{
    for (unsigned cls = 0; cls < SC_NSMALL; cls++) {
        unsigned long before = atomic_load(&check_state.failed_checks);
        slab_cycle(cls);
        if (atomic_load(&check_state.failed_checks) != before) {
            fprintf(stderr, "  (in class %u, %u bytes)\n", cls, sc_table[cls].size);
            return;
        }
    }
}

/* A slab with blocks still live keeps its pages; only the freed slots go back to its bitmap. */
static void test_partial_slab_keeps_its_pages(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    unsigned cls = sc_index(256);
    unsigned objs = sc_table[cls].slab_objs;
    char *b[512];
    for (unsigned i = 0; i < objs; i++) b[i] = alloc_ok(pool, 256);
    for (unsigned i = 0; i < objs; i += 2) CHECK_EQ_INT(ohm_pool_free(pool, b[i]), OHM_OK);
    CHECK_EQ_INT(page_kind(b[0]), PG_SLAB);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 0);
    /* refilling takes the freed slots, lowest address first */
    for (unsigned i = 0; i < objs; i += 2) {
        char *p = alloc_ok(pool, 256);
        CHECK(p == b[i]);
    }
    for (unsigned i = 0; i < objs; i++) ohm_pool_free(pool, b[i]);
    CHECK_EQ_INT(page_kind(b[0]), PG_SLAB); /* empty now: kept for reuse until purged */
    fixture_check_trims_to_nothing(pool);
    ohm_pool_destroy(pool);
}

/* ---- dirty and clean ---- */

static void test_freed_pages_stay_dirty_until_trim_purges_them(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *runs[20];
    for (unsigned i = 0; i < 20; i++) {
        runs[i] = alloc_ok(pool, 64 * KIB);
        if (!runs[i]) return;
        memset(runs[i], 0xab, 64 * KIB);
    }
    char *keep = alloc_ok(pool, 64); /* a slab page after the runs keeps the chunk */
    if (!keep) return;
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, CHUNK);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.resident_bytes, 321 * OHM_PAGE); /* the pages ever handed out */
    for (unsigned i = 0; i < 20; i++) CHECK_EQ_INT(ohm_pool_free(pool, runs[i]), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, 20 * 64 * KIB);
    CHECK_EQ_U64(st.purged_bytes, 0);
    CHECK_EQ_U64(st.resident_bytes, 321 * OHM_PAGE);
    CHECK_EQ_U64(st.mapped_bytes, CHUNK);

    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.purged_bytes, 20 * 64 * KIB);
    CHECK_EQ_U64(st.resident_bytes, OHM_PAGE);
    CHECK_EQ_U64(st.mapped_bytes, CHUNK); /* the live block keeps its chunk */
    CHECK_EQ_U64(st.chunks, 1);

    /* purged pages come back zero */
    char *again = alloc_ok(pool, 64 * KIB);
    if (again) {
        CHECK(again == runs[0]);
        bool zero = true;
        for (size_t i = 0; i < 64 * KIB; i++) zero &= again[i] == 0;
        CHECK(zero);
        ohm_pool_free(pool, again);
    }

    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    CHECK(fixture_stats(pool, -1).dirty_bytes > 0);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.mapped_bytes, 0); /* an emptied pool maps nothing */
    CHECK_EQ_U64(st.resident_bytes, 0);
    CHECK_EQ_U64(st.chunks, 0);
    CHECK_EQ_U64(st.chunks_mapped, 1);
    CHECK_EQ_U64(st.chunks_unmapped, 1);
    ohm_pool_destroy(pool);
}

static void test_trim_unmaps_every_chunk_of_an_emptied_pool(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *p[12];
    for (unsigned i = 0; i < 12; i++) { /* 1.5 MiB runs: two per chunk */
        p[i] = alloc_ok(pool, 1536 * KIB);
        if (!p[i]) return;
        p[i][0] = 1;
    }
    char *small[100];
    for (unsigned i = 0; i < 100; i++) small[i] = alloc_ok(pool, 16 + i * 40);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK(st.chunks >= 6);
    CHECK_EQ_U64(st.mapped_bytes, st.chunks * CHUNK);
    for (unsigned i = 0; i < 12; i++) ohm_pool_free(pool, p[i]);
    for (unsigned i = 0; i < 100; i++) ohm_pool_free(pool, small[i]);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.chunks, 0);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_U64(st.chunks_mapped, st.chunks_unmapped);
    /* and the pool serves again afterwards */
    char *q = alloc_ok(pool, 100 * KIB);
    if (q) memset(q, 2, 100 * KIB);
    ohm_pool_free(pool, q);
    ohm_pool_destroy(pool);
}

/* ---- dirty and clean neighbours, and the order of reuse ---- */

/* Frees p and purges every free page (trim), so that p's pages are clean while the rest of the chunk lives on. */
static void free_and_purge(ohm_pool *pool, void *p)
{
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
}

static void test_a_wholly_free_chunk_serves_a_chunk_sized_request(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    /* freed pages (dirty) beside pages never handed out (clean): the chunk is wholly free */
    char *p = alloc_ok(pool, 1 * MIB);
    if (!p) return;
    memset(p, 1, 1 * MIB);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 1 * MIB);
    char *whole = alloc_ok(pool, CHUNK);
    CHECK(whole == p);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.chunks, 1);
    CHECK_EQ_U64(st.chunks_mapped, 1);
    CHECK_EQ_U64(st.mapped_bytes, CHUNK);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    CHECK_EQ_INT(ohm_pool_free(pool, whole), OHM_OK);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, CHUNK);

    /* purged, dirty and fresh pages together: a request larger than any clean stretch still fits */
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    char *a = alloc_ok(pool, 1 * MIB), *b = alloc_ok(pool, 1 * MIB);
    if (!a || !b) return;
    CHECK(b == a + 1 * MIB);
    memset(a, 2, 1 * MIB);
    memset(b, 3, 1 * MIB);
    free_and_purge(pool, a);                      /* [a: clean][b: live][2 MiB never used] */
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK); /* [a: clean][b: dirty][2 MiB clean] */
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 1 * MIB);
    char *big = alloc_ok(pool, 3 * MIB);
    CHECK(big == a);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.chunks, 1);
    CHECK_EQ_U64(st.chunks_mapped, 2); /* the trim above unmapped the first one; nothing more was mapped */
    CHECK_EQ_U64(st.mapped_bytes, CHUNK);
    CHECK_EQ_INT(ohm_pool_free(pool, big), OHM_OK);
    ohm_pool_destroy(pool);
}

static void test_dirty_and_clean_neighbours_merge(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *a = alloc_ok(pool, RUN_SIZE), *b = alloc_ok(pool, RUN_SIZE), *fence = alloc_ok(pool, RUN_SIZE);
    if (!a || !b || !fence) return;
    CHECK(b == a + RUN_SIZE);
    CHECK(fence == b + RUN_SIZE);
    memset(a, 1, 2 * RUN_SIZE);
    uint32_t npages = chunk_of(a)->npages;

    /* a clean run on the right of a dirty one */
    free_and_purge(pool, b);
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, RUN_SIZE);
    char *d = alloc_ok(pool, 2 * RUN_SIZE);
    CHECK(d == a);
    CHECK_EQ_U64(free_pages_of(a), npages - 3 * RUN_SIZE_PAGES);
    CHECK_EQ_U64(fixture_stats(pool, -1).dirty_bytes, 0);
    CHECK_EQ_INT(ohm_pool_free(pool, d), OHM_OK);

    /* and on its left */
    a = alloc_ok(pool, RUN_SIZE), b = alloc_ok(pool, RUN_SIZE);
    if (!a || !b) return;
    CHECK(a == d);
    CHECK(b == a + RUN_SIZE);
    free_and_purge(pool, a);
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK);
    d = alloc_ok(pool, 2 * RUN_SIZE);
    CHECK(d == a);
    CHECK_EQ_INT(ohm_pool_free(pool, d), OHM_OK);

    /* the fence gone, everything is one free run again: the whole chunk */
    CHECK_EQ_INT(ohm_pool_free(pool, fence), OHM_OK);
    CHECK_EQ_U64(free_pages_of(a), npages);
    char *whole = alloc_ok(pool, CHUNK);
    CHECK(whole == a);
    CHECK_EQ_U64(fixture_stats(pool, -1).chunks_mapped, 1);
    ohm_pool_free(pool, whole);
    ohm_pool_destroy(pool);
}

static void test_equal_size_runs_are_reused_lowest_address_first(void)
{
    enum { N = 8 };
    ohm_pool *pool = make_pool();
    if (!pool) return;
    char *run[N], *fence[N];
    for (unsigned i = 0; i < N; i++) { /* a live fence after each run keeps the freed runs apart */
        run[i] = alloc_ok(pool, RUN_SIZE);
        fence[i] = alloc_ok(pool, RUN_SIZE);
        if (!run[i] || !fence[i]) return;
        CHECK(i == 0 || run[i] == fence[i - 1] + RUN_SIZE);
    }
    static const unsigned order[N] = {5, 2, 7, 0, 3, 6, 1, 4};
    for (unsigned i = 0; i < N; i++) CHECK_EQ_INT(ohm_pool_free(pool, run[order[i]]), OHM_OK);
    for (unsigned i = 0; i < N; i++) {
        char *p = alloc_ok(pool, RUN_SIZE);
        if (!CHECK(p == run[i])) fprintf(stderr, "  allocation %u got %p, want %p\n", i, (void *)p, (void *)run[i]);
    }

    /* whether the pages are resident or purged does not change the order */
    free_and_purge(pool, run[1]);
    free_and_purge(pool, run[3]);
    CHECK_EQ_INT(ohm_pool_free(pool, run[2]), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, run[0]), OHM_OK);
    for (unsigned i = 0; i < 4; i++) CHECK(alloc_ok(pool, RUN_SIZE) == run[i]);

    for (unsigned i = 0; i < N; i++) ohm_pool_free(pool, run[i]), ohm_pool_free(pool, fence[i]);
    CHECK_EQ_U64(free_pages_of(run[0]), chunk_of(run[0])->npages);
    ohm_pool_destroy(pool);
}

/* Checks the stats of a one-chunk pool: dirty_bytes is exactly dirty_pages, and resident_bytes counts the live
 * and the dirty pages only (purged and never-used free pages are not resident). */
static void check_dirty(ohm_pool *pool, size_t dirty_pages, size_t live_pages)
{
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.dirty_bytes, dirty_pages * OHM_PAGE);
    CHECK_EQ_U64(st.resident_bytes, (dirty_pages + live_pages) * OHM_PAGE);
}

static void test_dirty_bytes_stay_exact_through_merges_splits_and_purges(void)
{
    ohm_pool *pool = make_pool();
    if (!pool) return;
    const size_t R = RUN_SIZE_PAGES;
    char *a = alloc_ok(pool, RUN_SIZE), *b = alloc_ok(pool, RUN_SIZE), *c = alloc_ok(pool, RUN_SIZE);
    char *fence = alloc_ok(pool, RUN_SIZE);
    if (!a || !b || !c || !fence) return;
    memset(a, 1, 4 * RUN_SIZE);
    check_dirty(pool, 0, 4 * R);
    free_and_purge(pool, b);
    check_dirty(pool, 0, 3 * R);
    CHECK_EQ_U64(fixture_stats(pool, -1).purged_bytes, RUN_SIZE);

    /* [a dirty][b clean][c dirty] merge into one free run holding 2 runs' worth of dirty pages */
    CHECK_EQ_INT(ohm_pool_free(pool, a), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, c), OHM_OK);
    check_dirty(pool, 2 * R, R);
    CHECK_EQ_U64(free_pages_of(a), chunk_of(a)->npages - R);

    /* split again run by run: each piece takes exactly its own dirty pages with it */
    CHECK(alloc_ok(pool, RUN_SIZE) == a);
    check_dirty(pool, R, 2 * R);
    CHECK(alloc_ok(pool, RUN_SIZE) == b);
    check_dirty(pool, R, 3 * R);
    CHECK(alloc_ok(pool, RUN_SIZE) == c);
    check_dirty(pool, 0, 4 * R);

    /* a purge of a merged run counts only the pages that were dirty */
    CHECK_EQ_INT(ohm_pool_free(pool, b), OHM_OK);
    free_and_purge(pool, a);
    check_dirty(pool, 0, 2 * R);
    CHECK_EQ_U64(fixture_stats(pool, -1).purged_bytes, 3 * RUN_SIZE);
    CHECK_EQ_INT(ohm_pool_free(pool, c), OHM_OK);
    check_dirty(pool, R, R);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    check_dirty(pool, 0, R);
    CHECK_EQ_U64(fixture_stats(pool, -1).purged_bytes, 4 * RUN_SIZE);
    CHECK_EQ_U64(fixture_resident_pages(a, 3 * RUN_SIZE), 0);

    CHECK_EQ_INT(ohm_pool_free(pool, fence), OHM_OK);
    check_dirty(pool, R, 0);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    ohm_pool_destroy(pool);
}

int main(void)
{
    ohm__init(); /* white-box checks read the class tables before any pool exists */
    RUN(test_freed_neighbour_runs_coalesce_into_one);
    RUN(test_a_run_split_from_a_larger_free_run_leaves_the_rest_usable);
    RUN(test_aligned_runs_start_on_their_alignment_inside_a_chunk);
    RUN(test_slab_fills_with_consecutive_blocks_and_empties_back_to_pages_at_trim);
    RUN(test_partial_slab_keeps_its_pages);
    RUN(test_freed_pages_stay_dirty_until_trim_purges_them);
    RUN(test_trim_unmaps_every_chunk_of_an_emptied_pool);
    RUN(test_a_wholly_free_chunk_serves_a_chunk_sized_request);
    RUN(test_dirty_and_clean_neighbours_merge);
    RUN(test_equal_size_runs_are_reused_lowest_address_first);
    RUN(test_dirty_bytes_stay_exact_through_merges_splits_and_purges);
    return check_summary();
}
