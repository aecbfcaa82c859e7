/* Every promise of the pool API in ohm.h, one test each: sizes and alignment, zeroing, aligned and huge
 * allocation, routing of ohm_free, reverse lookup, the walk, and the stats counters. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

/* A private pool that behaves the same on every run: one arena, no background thread, purging only on trim.
 * cache_max 0 bypasses thread caches, so frees reach the arena at once. */
static ohm_pool *make_pool(size_t cache_max)
{
    ohm_pool_config cfg = fixture_cache_config("api", 64, cache_max);
    return fixture_pool(&cfg);
}

static bool all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return false;
    return true;
}

static size_t lowest_bit(size_t x) { return x & -x; }

/* ---- sizes and alignment ---- */

static void test_alloc_of_zero_gives_a_usable_16_byte_block(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned char *p = ohm_pool_alloc(pool, 0);
    if (CHECK_NOT_NULL(p)) {
        CHECK_EQ_U64(ohm_usable_size(p), 16);
        CHECK_EQ_U64((uintptr_t)p % 16, 0);
        memset(p, 0x5a, 16);
        CHECK(all_bytes(p, 16, 0x5a));
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    void *d = ohm_alloc(0);
    if (CHECK_NOT_NULL(d)) {
        CHECK_EQ_U64(ohm_usable_size(d), 16);
        CHECK_EQ_INT(ohm_free(d), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

static void test_usable_size_is_the_class_size(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t sizes[600];
    unsigned n = 0;
    for (size_t s = 1; s <= 1024; s += 7) sizes[n++] = s;
    for (unsigned c = 0; c < ohm_size_class_count(4 * MIB); c++) {
        size_t cs = ohm_size_class_size(c);
        sizes[n++] = cs - 1;
        sizes[n++] = cs;
        if (cs < 4 * MIB) sizes[n++] = cs + 1;
    }
    for (unsigned i = 0; i < n; i++) {
        void *p = ohm_pool_alloc(pool, sizes[i]);
        if (!CHECK_NOT_NULL(p)) break;
        size_t want = sc_size(sc_index(sizes[i]));
        if (!CHECK_EQ_U64(ohm_usable_size(p), want)) fprintf(stderr, "  size %zu\n", sizes[i]);
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    /* above the chunk: the page-rounded request */
    size_t huge[] = {4 * MIB + 1, 4 * MIB + 4096, 5 * MIB + 123};
    for (unsigned i = 0; i < 3; i++) {
        void *p = ohm_pool_alloc(pool, huge[i]);
        if (!CHECK_NOT_NULL(p)) continue;
        CHECK_EQ_U64(ohm_usable_size(p), (huge[i] + 4095) & ~(size_t)4095);
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

static void test_blocks_are_aligned_to_their_class(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned nclasses = ohm_size_class_count(4 * MIB);
    for (unsigned c = 0; c < nclasses; c++) {
        size_t size = ohm_size_class_size(c);
        size_t align = lowest_bit(size) < 4096 ? lowest_bit(size) : 4096;
        void *p[3];
        unsigned k = size >= 2 * MIB ? 1 : 3; /* several blocks, so not only a slab's first one is checked */
        for (unsigned i = 0; i < k; i++) {
            p[i] = ohm_pool_alloc(pool, size);
            if (!CHECK_NOT_NULL(p[i])) return;
            CHECK_EQ_U64((uintptr_t)p[i] % 16, 0);
            if (!CHECK_EQ_U64((uintptr_t)p[i] % align, 0)) fprintf(stderr, "  class %zu at %p\n", size, p[i]);
        }
        for (unsigned i = 0; i < k; i++) CHECK_EQ_INT(ohm_pool_free(pool, p[i]), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

/* ---- zeroing ---- */

static void test_alloc_zeroed_returns_zeros_even_for_reused_memory(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t sizes[] = {1, 16, 100, 4096, 14000, 20000, 200 * KIB, 300 * KIB, 3 * MIB, 5 * MIB};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        unsigned char *p = ohm_pool_alloc(pool, size);
        if (!CHECK_NOT_NULL(p)) continue;
        memset(p, 0xa5, ohm_usable_size(p));
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
        unsigned char *q = ohm_pool_alloc_zeroed(pool, size);
        if (!CHECK_NOT_NULL(q)) continue;
        if (size <= 256 * KIB) CHECK(q == p); /* a cached class: the very block just written */
        if (!CHECK(all_bytes(q, size, 0))) fprintf(stderr, "  size %zu\n", size);
        CHECK_EQ_INT(ohm_pool_free(pool, q), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

/* The pool's allocs and frees so far and its live blocks, as its stats count them. */
static void check_counts(const ohm_pool_stats *st, uint64_t allocs, uint64_t frees, uint64_t active_blocks)
{
    CHECK_EQ_U64(st->allocs, allocs);
    CHECK_EQ_U64(st->frees, frees);
    CHECK_EQ_U64(st->active_blocks, active_blocks);
}

static ohm_pool *make_zero_pool(void) { return fixture_flag_pool("api", FIXTURE_ZERO); }

static void test_zero_pool_returns_zeroed_blocks_after_reuse(void)
{
    ohm_pool *pool = make_zero_pool();
    if (!pool) return;
    size_t sizes[] = {1, 16, 24, 100, 1000, 4096, 14336, 20000, 256 * KIB, 1 * MIB, 5 * MIB};
    for (unsigned round = 0; round < 3; round++)
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = ohm_pool_alloc(pool, sizes[i]);
            if (!CHECK_NOT_NULL(p)) continue;
            size_t usable = ohm_usable_size(p);
            if (!CHECK(all_bytes(p, usable, 0))) fprintf(stderr, "  size %zu round %u\n", sizes[i], round);
            memset(p, 0xff, usable);
            CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
        }
    /* aligned allocations from a zeroing pool, too */
    for (unsigned round = 0; round < 2; round++) {
        unsigned char *p = ohm_pool_alloc_aligned(pool, 20000, 64 * KIB);
        if (!CHECK_NOT_NULL(p)) break;
        CHECK(all_bytes(p, ohm_usable_size(p), 0));
        memset(p, 0xff, ohm_usable_size(p));
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

/* A size-0 request gets a 16-byte block; in a zeroing pool all 16 bytes must be zero, also when the block
 * comes back from the thread cache. */
static void test_zero_pool_zeroes_the_whole_block_of_a_size_0_request(void)
{
    ohm_pool *pool = make_zero_pool();
    if (!pool) return;
    for (unsigned round = 0; round < 3; round++) {
        unsigned char *p = ohm_pool_alloc(pool, round == 0 ? 16 : 0);
        if (!CHECK_NOT_NULL(p)) break;
        if (!CHECK(all_bytes(p, 16, 0))) fprintf(stderr, "  round %u: %p holds stale bytes\n", round, (void *)p);
        memset(p, 0xff, 16);
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    }
    ohm_pool_destroy(pool);
}

/* ---- aligned allocation ---- */

static void check_aligned(ohm_pool *pool, size_t size, size_t align)
{
    unsigned char *p = ohm_pool_alloc_aligned(pool, size, align);
    if (!CHECK_NOT_NULL(p)) {
        fprintf(stderr, "  size %zu align %zu: %s\n", size, align, ohm_last_error());
        return;
    }
    if (!CHECK_EQ_U64((uintptr_t)p % align, 0)) fprintf(stderr, "  size %zu align %zu\n", size, align);
    CHECK(ohm_usable_size(p) >= size);
    ohm_block_info info;
    if (CHECK_EQ_INT(ohm_lookup(p + size - 1, &info), OHM_OK)) {
        CHECK(info.base == p);
        CHECK(info.live);
    }
    p[0] = 1;
    p[size - 1] = 2;
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
}

static void test_aligned_alloc_honours_every_alignment_from_32_to_2m(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t sizes[] = {1, 16, 100, 5000, 16 * KIB, 100 * KIB, 1 * MIB};
    for (size_t align = 32; align <= 2 * MIB; align *= 2)
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_aligned(pool, sizes[i], align);
    /* alignments up to 16 are plain allocations */
    for (size_t align = 1; align <= 16; align *= 2) check_aligned(pool, 24, align);
    /* huge blocks, aligned beyond the 1 MiB granule too */
    for (size_t align = 32; align <= 16 * MIB; align *= 4) check_aligned(pool, 4 * MIB + 1, align);
    check_aligned(pool, 9 * MIB, 8 * MIB);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_U64(st.huge_blocks, 0);
    ohm_pool_destroy(pool);
}

/* Every request at most a chunk with any alignment must be served, as a run or as a huge block. */
static void test_aligned_alloc_succeeds_for_every_run_size_and_alignment(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned nclasses = ohm_size_class_count(4 * MIB);
    for (unsigned c = SC_NSMALL; c < nclasses; c++) {
        size_t cs = ohm_size_class_size(c), prev = ohm_size_class_size(c - 1);
        for (size_t align = 8 * KIB; align <= 2 * MIB; align *= 2) {
            check_aligned(pool, cs, align);
            check_aligned(pool, prev + 4096, align); /* a page above the class below */
        }
    }
    ohm_pool_destroy(pool);
}

/* ---- huge blocks ---- */

static void test_huge_blocks_are_mapped_directly_and_unmapped_on_free(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    ohm_pool_stats before = fixture_stats(pool, -1);
    CHECK_EQ_U64(before.mapped_bytes, 0);
    size_t size = 4 * MIB + 1;
    unsigned char *p = ohm_pool_alloc(pool, size);
    if (!CHECK_NOT_NULL(p)) return;
    size_t usable = 4 * MIB + 4096;
    CHECK_EQ_U64(ohm_usable_size(p), usable);
    memset(p, 0x33, usable);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.huge_blocks, 1);
    CHECK_EQ_U64(st.huge_bytes, usable);
    CHECK_EQ_U64(st.chunks, 0); /* no arena chunk was involved */
    CHECK(st.mapped_bytes >= usable && st.mapped_bytes < usable + 2 * MIB);
    CHECK_EQ_U64(st.active_blocks, 1);
    CHECK_EQ_U64(st.active_bytes, usable);
    ohm_block_info info;
    if (CHECK_EQ_INT(ohm_lookup(p + usable - 1, &info), OHM_OK)) {
        CHECK(info.base == p);
        CHECK_EQ_INT(info.kind, OHM_BLOCK_HUGE);
        CHECK_EQ_INT(info.size_class, OHM_MAX_CLASSES);
        CHECK_EQ_U64(info.size, usable);
        CHECK(info.pool == pool);
        CHECK(info.live);
    }
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.huge_blocks, 0);
    CHECK_EQ_U64(st.huge_bytes, 0);
    CHECK_EQ_U64(st.mapped_bytes, 0); /* unmapped at once, no trim needed */
    CHECK_EQ_U64(st.allocs, 1);
    CHECK_EQ_U64(st.frees, 1);
    CHECK_EQ_INT(ohm_lookup(p, &info), OHM_EINVAL); /* the memory is gone from every pool */

    /* exactly the chunk size is still a run, not a huge block */
    void *r = ohm_pool_alloc(pool, 4 * MIB);
    if (CHECK_NOT_NULL(r) && CHECK_EQ_INT(ohm_lookup(r, &info), OHM_OK)) {
        CHECK_EQ_INT(info.kind, OHM_BLOCK_RUN);
        CHECK_EQ_U64(fixture_stats(pool, -1).huge_blocks, 0);
    }
    ohm_pool_free(pool, r);
    ohm_pool_destroy(pool);
}

/* ---- routing ---- */

static void test_ohm_free_routes_a_private_block_to_its_pool(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    ohm_pool_stats dflt_before = fixture_stats(ohm_pool_default(), -1);
    void *blocks[3] = {ohm_pool_alloc(pool, 64), ohm_pool_alloc(pool, 40000), ohm_pool_alloc(pool, 5 * MIB)};
    for (unsigned i = 0; i < 3; i++) {
        if (!CHECK_NOT_NULL(blocks[i])) return;
        CHECK(ohm_usable_size(blocks[i]) > 0);
        CHECK_EQ_INT(ohm_free(blocks[i]), OHM_OK);
        ohm_block_info info;
        int rc = ohm_lookup(blocks[i], &info);
        CHECK(rc == OHM_EINVAL || (rc == OHM_OK && !info.live && info.pool == pool));
    }
    ohm_pool_stats st = fixture_stats(pool, -1);
    check_counts(&st, 3, 3, 0);
    ohm_pool_stats dflt_after = fixture_stats(ohm_pool_default(), -1);
    CHECK_EQ_U64(dflt_after.frees, dflt_before.frees);
    /* the freed small block is reused by its own pool */
    void *again = ohm_pool_alloc(pool, 64);
    CHECK(again == blocks[0]);
    ohm_pool_free(pool, again);
    ohm_pool_destroy(pool);
}

/* ---- reverse lookup ---- */

static void check_lookup(ohm_pool *pool, const unsigned char *p, size_t off, size_t size, unsigned cls,
                         ohm_block_kind kind)
{
    ohm_block_info info;
    memset(&info, 0xee, sizeof info);
    if (!CHECK_EQ_INT(ohm_lookup(p + off, &info), OHM_OK)) return;
    if (!CHECK(info.base == p)) fprintf(stderr, "  offset %zu: base %p, block %p\n", off, info.base, (void *)p);
    CHECK_EQ_U64(info.size, size);
    CHECK_EQ_INT(info.size_class, cls);
    CHECK_EQ_INT(info.kind, kind);
    CHECK(info.pool == pool);
    CHECK_EQ_INT(info.arena, 0);
    CHECK(info.live);
}

static void test_lookup_finds_the_block_from_interior_addresses(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned char *s = ohm_pool_alloc(pool, 40);    /* class 48 */
    unsigned char *s2 = ohm_pool_alloc(pool, 40);   /* its neighbour */
    unsigned char *r = ohm_pool_alloc(pool, 50000); /* a run class (slabs end at 32 KiB) */
    unsigned char *h = ohm_pool_alloc(pool, 5 * MIB);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(s2) || !CHECK_NOT_NULL(r) || !CHECK_NOT_NULL(h)) return;
    for (size_t off = 0; off < 48; off++) check_lookup(pool, s, off, 48, sc_index(48), OHM_BLOCK_SMALL);
    size_t rsize = sc_size(sc_index(50000));
    size_t roffs[] = {0, 1, 4095, 4096, 12345, rsize - 1};
    for (unsigned i = 0; i < 6; i++) check_lookup(pool, r, roffs[i], rsize, sc_index(50000), OHM_BLOCK_RUN);
    size_t hoffs[] = {0, 1, 4 * MIB, 5 * MIB - 1};
    for (unsigned i = 0; i < 4; i++) check_lookup(pool, h, hoffs[i], 5 * MIB, OHM_MAX_CLASSES, OHM_BLOCK_HUGE);

    /* freed blocks (here into the thread cache) are reported, but not live */
    ohm_block_info info;
    CHECK_EQ_INT(ohm_pool_free(pool, s), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, r), OHM_OK);
    if (CHECK_EQ_INT(ohm_lookup(s + 7, &info), OHM_OK)) {
        CHECK(info.base == s);
        CHECK(!info.live);
    }
    if (CHECK_EQ_INT(ohm_lookup(r + 5000, &info), OHM_OK)) {
        CHECK(info.base == r);
        CHECK(!info.live);
    }
    check_lookup(pool, s2, 0, 48, sc_index(48), OHM_BLOCK_SMALL); /* the neighbour is untouched */
    CHECK_EQ_INT(ohm_pool_free(pool, h), OHM_OK);
    CHECK_EQ_INT(ohm_lookup(h, &info), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_free(pool, s2), OHM_OK);

    /* and with the cache bypassed: a small block free in its slab is not live; a freed run is free pages */
    ohm_pool *direct = make_pool(0);
    if (!direct) return;
    unsigned char *a = ohm_pool_alloc(direct, 40), *b = ohm_pool_alloc(direct, 40);
    unsigned char *c = ohm_pool_alloc(direct, 20000);
    if (CHECK_NOT_NULL(a) && CHECK_NOT_NULL(b) && CHECK_NOT_NULL(c)) {
        CHECK_EQ_INT(ohm_pool_free(direct, a), OHM_OK);
        CHECK_EQ_INT(ohm_pool_free(direct, c), OHM_OK);
        if (CHECK_EQ_INT(ohm_lookup(a + 3, &info), OHM_OK)) {
            CHECK(info.base == a);
            CHECK(!info.live);
        }
        int rc = ohm_lookup(c + 100, &info);
        CHECK(rc == OHM_EINVAL || (rc == OHM_OK && !info.live));
        check_lookup(direct, b, 47, 48, sc_index(48), OHM_BLOCK_SMALL);
        ohm_pool_free(direct, b);
    }
    /* addresses outside every pool, and a NULL out-parameter */
    int local = 0;
    CHECK_EQ_INT(ohm_lookup(&local, &info), OHM_EINVAL);
    CHECK_EQ_INT(ohm_lookup(NULL, &info), OHM_EINVAL);
    CHECK_EQ_INT(ohm_lookup(s2, NULL), OHM_EINVAL);
    ohm_pool_destroy(direct);
    ohm_pool_destroy(pool);
}

/* ---- the walk ---- */

typedef struct walked {
    ohm_pool *pool;
    ohm_block_info blocks[256];
    unsigned n;
} walked;

/* Keeps what the walk reports of each block: every one must be a live block of the walked pool. */
static int collect(void *arg, const ohm_block_info *b)
{
    walked *w = arg;
    if (CHECK(b->pool == w->pool && b->live && w->n < 256)) w->blocks[w->n++] = *b;
    return 0;
}

static void check_walk_matches(ohm_pool *pool, void **live, unsigned nlive)
{
    static walked w;
    memset(&w, 0, sizeof w);
    w.pool = pool;
    CHECK_EQ_INT(ohm_pool_walk(pool, collect, &w), 0);
    if (!CHECK_EQ_INT(w.n, nlive)) return;
    void *got[256], *want[256];
    for (unsigned i = 0; i < w.n; i++) {
        CHECK_EQ_U64(w.blocks[i].size, ohm_usable_size(w.blocks[i].base));
        got[i] = w.blocks[i].base;
    }
    if (nlive) memcpy(want, live, nlive * sizeof *live);
    qsort(want, nlive, sizeof *want, fixture_cmp_ptr);
    qsort(got, w.n, sizeof *got, fixture_cmp_ptr);
    for (unsigned i = 0; i < nlive; i++)
        if (!CHECK(got[i] == want[i])) return;
}

static int stop_at_first(void *arg, const ohm_block_info *b)
{
    (void)b;
    ++*(unsigned *)arg;
    return 42;
}

static void test_walk_reports_exactly_the_live_blocks(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    void *all[120], *live[120];
    unsigned n = 0, nlive = 0;
    size_t sizes[] = {16, 24, 48, 100, 512, 3000, 14336, 16384, 40000, 300 * KIB, 5 * MIB};
    for (unsigned i = 0; i < 110; i++) {
        size_t size = sizes[i % 11];
        if (size > 4 * MIB && i > 22) size = 64; /* two huge blocks are enough */
        all[n] = ohm_pool_alloc(pool, size);
        if (!CHECK_NOT_NULL(all[n])) return;
        n++;
    }
    for (unsigned i = 0; i < n; i++) {
        if (i % 3 == 1) CHECK_EQ_INT(ohm_pool_free(pool, all[i]), OHM_OK); /* cached, not live */
        else live[nlive++] = all[i];
    }
    check_walk_matches(pool, live, nlive);
    /* the same once the cache went back to the slabs */
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    check_walk_matches(pool, live, nlive);
    unsigned calls = 0;
    CHECK_EQ_INT(ohm_pool_walk(pool, stop_at_first, &calls), 42);
    CHECK_EQ_INT(calls, 1);
    for (unsigned i = 0; i < nlive; i++) CHECK_EQ_INT(ohm_pool_free(pool, live[i]), OHM_OK);
    check_walk_matches(pool, NULL, 0);
    CHECK_EQ_INT(ohm_pool_walk(NULL, collect, NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_walk(pool, NULL, NULL), OHM_EINVAL);
    ohm_pool_destroy(pool);
}

/* ---- stats ---- */

static void check_class(const ohm_pool_stats *st, size_t size, uint64_t allocs, uint64_t frees)
{
    const ohm_class_stats *cs = &st->classes[sc_index(size)];
    CHECK_EQ_U64(cs->size, sc_size(sc_index(size)));
    CHECK_EQ_U64(cs->allocs, allocs);
    CHECK_EQ_U64(cs->frees, frees);
    CHECK_EQ_U64(cs->active_blocks, allocs - frees);
    CHECK_EQ_U64(cs->active_bytes, (allocs - frees) * cs->size);
}

static void stats_sequence(size_t cache_max)
{
    ohm_pool *pool = make_pool(cache_max);
    if (!pool) return;
    void *a[100], *b[10], *h[2];
    for (unsigned i = 0; i < 100; i++) a[i] = ohm_pool_alloc(pool, 64);
    for (unsigned i = 0; i < 10; i++) b[i] = ohm_pool_alloc(pool, 20000);
    for (unsigned i = 0; i < 2; i++) h[i] = ohm_pool_alloc(pool, 5 * MIB);
    for (unsigned i = 0; i < 40; i++) CHECK_EQ_INT(ohm_pool_free(pool, a[i]), OHM_OK);
    for (unsigned i = 0; i < 3; i++) CHECK_EQ_INT(ohm_pool_free(pool, b[i]), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, h[0]), OHM_OK);

    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_INT(st.nclasses, ohm_size_class_count(4 * MIB));
    CHECK_EQ_INT(st.arenas, 1);
    check_class(&st, 64, 100, 40);
    check_class(&st, 20000, 10, 3);
    for (unsigned c = 0; c < st.nclasses; c++)
        if (c != sc_index(64) && c != sc_index(20000)) {
            CHECK_EQ_U64(st.classes[c].allocs, 0);
            CHECK_EQ_U64(st.classes[c].frees, 0);
        }
    check_counts(&st, 112, 44, 60 + 7 + 1);
    CHECK_EQ_U64(st.active_bytes, 60 * 64 + 7 * sc_size(sc_index(20000)) + 5 * MIB);
    CHECK_EQ_U64(st.huge_blocks, 1);
    CHECK_EQ_U64(st.failed_allocs, 0);
    CHECK_EQ_U64(st.threads, 1);

    for (unsigned i = 40; i < 100; i++) ohm_pool_free(pool, a[i]);
    for (unsigned i = 3; i < 10; i++) ohm_pool_free(pool, b[i]);
    ohm_pool_free(pool, h[1]);
    st = fixture_stats(pool, -1);
    check_counts(&st, 112, 112, 0);
    CHECK_EQ_U64(st.active_bytes, 0);
    ohm_pool_destroy(pool);
}

static void test_stats_count_allocs_frees_and_active_per_class_exactly(void) { stats_sequence(256 * KIB); }

static void test_stats_are_exact_with_the_thread_cache_bypassed(void) { stats_sequence(0); }

typedef struct exiting_worker {
    ohm_pool *pool;
    void *kept[20];
} exiting_worker;

static void *alloc_then_exit(void *arg)
{
    exiting_worker *w = arg;
    void *p[30];
    for (unsigned i = 0; i < 30; i++) p[i] = ohm_pool_alloc(w->pool, 64);
    for (unsigned i = 0; i < 10; i++) ohm_pool_free(w->pool, p[i]);
    for (unsigned i = 0; i < 20; i++) w->kept[i] = p[10 + i];
    return NULL;
}

static void test_stats_keep_the_counters_of_exited_threads(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    exiting_worker w = {.pool = pool};
    pthread_t t;
    if (!CHECK_EQ_INT(pthread_create(&t, NULL, alloc_then_exit, &w), 0)) return;
    pthread_join(t, NULL);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.threads, 0);
    check_class(&st, 64, 30, 10);
    check_counts(&st, 30, 10, 20);
    for (unsigned i = 0; i < 20; i++) {
        if (!CHECK_NOT_NULL(w.kept[i])) continue;
        CHECK_EQ_INT(ohm_pool_free(pool, w.kept[i]), OHM_OK); /* the survivors are still live */
    }
    st = fixture_stats(pool, -1);
    check_class(&st, 64, 30, 30);
    CHECK_EQ_U64(st.active_blocks, 0);
    ohm_pool_destroy(pool);
}

static void test_stats_count_cache_hits_on_reuse(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned cls = sc_index(64);
    void *p = ohm_pool_alloc(pool, 64);
    CHECK_EQ_U64(fixture_stats(pool, -1).classes[cls].cache_hits, 0); /* the first one had to fill the cache */
    ohm_pool_free(pool, p);
    void *q = ohm_pool_alloc(pool, 64);
    CHECK(q == p);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.classes[cls].cache_hits, 1);
    CHECK_EQ_U64(st.cache_hits, 1);
    for (unsigned i = 0; i < 10; i++) {
        ohm_pool_free(pool, q);
        q = ohm_pool_alloc(pool, 64);
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).classes[cls].cache_hits, 11);
    ohm_pool_free(pool, q);
    ohm_pool_destroy(pool);

    /* no cache, no hits */
    pool = make_pool(0);
    if (!pool) return;
    for (unsigned i = 0; i < 5; i++) {
        p = ohm_pool_alloc(pool, 64);
        ohm_pool_free(pool, p);
    }
    st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.cache_hits, 0);
    CHECK_EQ_U64(st.classes[cls].allocs, 5);
    ohm_pool_destroy(pool);
}

typedef struct arena_worker {
    ohm_pool *pool;
    pthread_barrier_t *ready, *go;
    size_t size_a, size_b;
    unsigned na, nb;
} arena_worker;

static void *alloc_and_hold(void *arg)
{
    arena_worker *w = arg;
    void *p[64];
    unsigned n = 0;
    pthread_barrier_wait(w->go); /* threads bind to arenas in turn: 0 first, then 1 */
    for (unsigned i = 0; i < w->na; i++) p[n++] = ohm_pool_alloc(w->pool, w->size_a);
    for (unsigned i = 0; i < w->nb; i++) p[n++] = ohm_pool_alloc(w->pool, w->size_b);
    ohm_pool_free(w->pool, p[0]);
    pthread_barrier_wait(w->ready); /* main reads the stats now */
    pthread_barrier_wait(w->go);
    for (unsigned i = 1; i < n; i++) ohm_pool_free(w->pool, p[i]);
    return NULL;
}

static void test_per_arena_stats_sum_to_the_whole(void)
{
    ohm_pool *pool = fixture_arenas_pool("api", 2);
    if (!pool) return;
    pthread_barrier_t ready, go0, go1;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&go0, NULL, 2);
    pthread_barrier_init(&go1, NULL, 2);
    arena_worker w[2] = {
        {pool, &ready, &go0, 64, 32 * KIB, 10, 2},
        {pool, &ready, &go1, 128, 64 * KIB, 7, 1},
    };
    pthread_t t[2];
    pthread_create(&t[0], NULL, alloc_and_hold, &w[0]);
    pthread_create(&t[1], NULL, alloc_and_hold, &w[1]);
    pthread_barrier_wait(&go0);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&go1);
    pthread_barrier_wait(&ready);

    static ohm_pool_stats whole, a0, a1;
    CHECK_EQ_INT(ohm_pool_stats_get(pool, -1, &whole), OHM_OK);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, 0, &a0), OHM_OK);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, 1, &a1), OHM_OK);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, 2, &a1), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, -2, &a1), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, -1, NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, 1, &a1), OHM_OK);

    CHECK_EQ_U64(whole.threads, 2);
    CHECK_EQ_U64(a0.threads, 1);
    CHECK_EQ_U64(a1.threads, 1);
    /* each arena shows exactly its thread's work */
    check_class(&a0, 64, 10, 1);
    check_class(&a0, 32 * KIB, 2, 0);
    check_class(&a1, 128, 7, 1);
    check_class(&a1, 64 * KIB, 1, 0);
    CHECK_EQ_U64(a0.allocs, 12);
    CHECK_EQ_U64(a1.allocs, 8);
    CHECK_EQ_U64(a0.allocs + a1.allocs, whole.allocs);
    CHECK_EQ_U64(a0.frees + a1.frees, whole.frees);
    CHECK_EQ_U64(a0.cache_hits + a1.cache_hits, whole.cache_hits);
    CHECK_EQ_U64(a0.active_blocks + a1.active_blocks, whole.active_blocks);
    CHECK_EQ_U64(a0.active_bytes + a1.active_bytes, whole.active_bytes);
    CHECK_EQ_U64(a0.mapped_bytes + a1.mapped_bytes, whole.mapped_bytes);
    CHECK_EQ_U64(a0.resident_bytes + a1.resident_bytes, whole.resident_bytes);
    CHECK_EQ_U64(a0.dirty_bytes + a1.dirty_bytes, whole.dirty_bytes);
    CHECK_EQ_U64(a0.purged_bytes + a1.purged_bytes, whole.purged_bytes);
    CHECK_EQ_U64(a0.chunks + a1.chunks, whole.chunks);
    CHECK_EQ_U64(a0.chunks_mapped + a1.chunks_mapped, whole.chunks_mapped);
    CHECK_EQ_U64(a0.chunks, 1); /* each arena mapped its own chunk */
    CHECK_EQ_U64(a1.chunks, 1);
    for (unsigned c = 0; c < whole.nclasses; c++) {
        CHECK_EQ_U64(a0.classes[c].allocs + a1.classes[c].allocs, whole.classes[c].allocs);
        CHECK_EQ_U64(a0.classes[c].frees + a1.classes[c].frees, whole.classes[c].frees);
        CHECK_EQ_U64(a0.classes[c].cache_hits + a1.classes[c].cache_hits, whole.classes[c].cache_hits);
    }

    pthread_barrier_wait(&go0);
    pthread_barrier_wait(&go1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, -1, &whole), OHM_OK);
    CHECK_EQ_U64(whole.allocs, 20);
    CHECK_EQ_U64(whole.frees, 20);
    CHECK_EQ_U64(whole.active_blocks, 0);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    CHECK_EQ_INT(ohm_pool_stats_get(pool, -1, &whole), OHM_OK);
    CHECK_EQ_U64(whole.mapped_bytes, 0);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go0);
    pthread_barrier_destroy(&go1);
    ohm_pool_destroy(pool);
}

int main(void)
{
    ohm__init(); /* white-box checks read the class tables before any pool exists */
    RUN(test_alloc_of_zero_gives_a_usable_16_byte_block);
    RUN(test_usable_size_is_the_class_size);
    RUN(test_blocks_are_aligned_to_their_class);
    RUN(test_alloc_zeroed_returns_zeros_even_for_reused_memory);
    RUN(test_zero_pool_returns_zeroed_blocks_after_reuse);
    RUN(test_zero_pool_zeroes_the_whole_block_of_a_size_0_request);
    RUN(test_aligned_alloc_honours_every_alignment_from_32_to_2m);
    RUN(test_aligned_alloc_succeeds_for_every_run_size_and_alignment);
    RUN(test_huge_blocks_are_mapped_directly_and_unmapped_on_free);
    RUN(test_ohm_free_routes_a_private_block_to_its_pool);
    RUN(test_lookup_finds_the_block_from_interior_addresses);
    RUN(test_walk_reports_exactly_the_live_blocks);
    RUN(test_stats_count_allocs_frees_and_active_per_class_exactly);
    RUN(test_stats_are_exact_with_the_thread_cache_bypassed);
    RUN(test_stats_keep_the_counters_of_exited_threads);
    RUN(test_stats_count_cache_hits_on_reuse);
    RUN(test_per_arena_stats_sum_to_the_whole);
    return check_summary();
}
