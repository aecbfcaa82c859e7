/* Deliberate misuse must be caught and reported, never corrupt the pool (after mimalloc's test-wrong.c):
 * foreign and interior pointers, double frees wherever the block sits, the wrong pool, NULL pools, bad
 * configurations, alignments and sizes, the default pool's destruction, error names, and OHM_* environment
 * parsing. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

static ohm_pool *make_pool(size_t cache_max)
{
    ohm_pool_config cfg = fixture_cache_config("misuse", 0, cache_max);
    return fixture_pool(&cfg);
}

/* The call returned EINVAL and left a message. */
static bool einval(int rc)
{
    bool ok = CHECK_EQ_INT(rc, OHM_EINVAL);
    ok &= CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    ok &= CHECK(ohm_last_error()[0] != '\0');
    return ok;
}

/* Allocates n blocks of size and checks that no address comes out twice (nor equals a live one). */
static void check_all_distinct(ohm_pool *pool, size_t size, unsigned n, void *const *live, unsigned nlive)
{
    void **p = malloc((n + nlive) * sizeof *p);
    if (!CHECK_NOT_NULL(p)) return;
    for (unsigned i = 0; i < n; i++) {
        p[i] = ohm_pool_alloc(pool, size);
        if (!CHECK_NOT_NULL(p[i])) {
            n = i;
            break;
        }
    }
    if (nlive) memcpy(p + n, live, nlive * sizeof *p);
    qsort(p, n + nlive, sizeof *p, fixture_cmp_ptr);
    unsigned dups = 0;
    for (unsigned i = 1; i < n + nlive; i++) dups += p[i] == p[i - 1];
    CHECK_EQ_INT(dups, 0);
    for (unsigned i = 0; i < n + nlive; i++) {
        bool is_live = false;
        for (unsigned j = 0; j < nlive; j++) is_live |= p[i] == live[j];
        if (!is_live) ohm_pool_free(pool, p[i]);
    }
    free(p);
}

/* ---- foreign and interior pointers ---- */

static int a_global[64];

static void test_free_of_foreign_pointers_is_einval_and_changes_nothing(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    void *live = ohm_pool_alloc(pool, 64);
    ohm_pool_stats before = fixture_stats(pool, -1);
    unsigned char stack[64];
    memset(stack, 0x3c, sizeof stack);
    unsigned char *heap = malloc(64);
    if (!CHECK_NOT_NULL(heap)) return;
    memset(heap, 0x3d, 64);
    void *mapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mapped != MAP_FAILED);
    void *foreign[] = {stack, a_global, heap, mapped, (void *)16, (void *)(uintptr_t)-4096};
    for (unsigned i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        einval(ohm_free(foreign[i]));
        einval(ohm_pool_free(pool, foreign[i]));
        CHECK_EQ_U64(ohm_usable_size(foreign[i]), 0);
    }
    for (unsigned i = 0; i < 64; i++) CHECK(stack[i] == 0x3c && heap[i] == 0x3d);
    ohm_pool_stats after = fixture_stats(pool, -1);
    CHECK_EQ_U64(after.frees, before.frees);
    CHECK_EQ_U64(after.active_blocks, before.active_blocks);
    CHECK_EQ_INT(ohm_pool_free(pool, live), OHM_OK);
    free(heap);
    munmap(mapped, 4096);
    ohm_pool_destroy(pool);
}

static void test_interior_pointers_are_einval(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    unsigned char *s = ohm_pool_alloc(pool, 48), *r = ohm_pool_alloc(pool, 40 * KIB);
    unsigned char *h = ohm_pool_alloc(pool, 5 * MIB);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(r) || !CHECK_NOT_NULL(h)) return;
    memset(s, 1, 48);
    size_t soffs[] = {1, 8, 16, 32, 47};
    for (unsigned i = 0; i < 5; i++) {
        einval(ohm_pool_free(pool, s + soffs[i]));
        einval(ohm_free(s + soffs[i]));
        CHECK_EQ_U64(ohm_usable_size(s + soffs[i]), 0);
    }
    size_t roffs[] = {1, 16, 4096, 8192, 40 * KIB - 16};
    for (unsigned i = 0; i < 5; i++) {
        einval(ohm_pool_free(pool, r + roffs[i]));
        einval(ohm_free(r + roffs[i]));
    }
    size_t hoffs[] = {1, 16, 4096, 1 * MIB, 5 * MIB - 4096};
    for (unsigned i = 0; i < 5; i++) {
        einval(ohm_pool_free(pool, h + hoffs[i]));
        einval(ohm_free(h + hoffs[i]));
    }
    /* nothing changed: all three are live, and free once */
    ohm_block_info info;
    unsigned char *blocks[] = {s, r, h};
    for (unsigned i = 0; i < 3; i++) {
        if (CHECK_EQ_INT(ohm_lookup(blocks[i], &info), OHM_OK)) CHECK(info.live);
        CHECK_EQ_INT(ohm_pool_free(pool, blocks[i]), OHM_OK);
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).active_blocks, 0);
    ohm_pool_destroy(pool);
}

/* The free path guesses a block's stack from the last free before its page entry confirms it: a bad pointer must
 * be refused whether the guess was right (the previous free was of the same class) or wrong. */
static void test_frees_are_checked_whatever_the_free_path_guessed(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    enum { N = 6 };
    unsigned char *a[N], *b[N];
    for (unsigned i = 0; i < N; i++) {
        a[i] = ohm_pool_alloc(pool, 48);
        b[i] = ohm_pool_alloc(pool, 1024);
        if (!CHECK_NOT_NULL(a[i]) || !CHECK_NOT_NULL(b[i])) return;
    }
    CHECK_EQ_INT(ohm_pool_free(pool, a[0]), OHM_OK); /* the guess: 48 B */
    einval(ohm_pool_free(pool, a[1] + 16));          /* guessed right, not a block start */
    einval(ohm_pool_free(pool, a[0]));               /* guessed right, already free */
    einval(ohm_pool_free(pool, b[1] + 8));           /* guessed wrong, not a block start */
    CHECK_EQ_INT(ohm_pool_free(pool, b[0]), OHM_OK); /* the guess: 1 KiB */
    einval(ohm_pool_free(pool, a[0]));               /* guessed wrong, already free */
    einval(ohm_pool_free(pool, b[0]));               /* guessed right, already free */
    einval(ohm_free(b[2] + 512));
    for (unsigned i = 1; i < N; i++) {
        CHECK_EQ_INT(ohm_pool_free(pool, a[i]), OHM_OK);
        CHECK_EQ_INT(ohm_free(b[i]), OHM_OK);
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).active_blocks, 0);
    ohm_pool_destroy(pool);
}

/* A pointer into the unused tail of a slab (past its last block) is not a block, even where its offset is a
 * multiple of the class size. Freeing it must fail and must not release the slab under a live block. */
static void test_pointer_past_the_last_block_of_a_slab_is_einval(void)
{
    ohm_pool *pool = make_pool(0);
    if (!pool) return;
    unsigned cls = sc_index(48);
    const sc_info *ci = &sc_table[cls];
    size_t tail = (size_t)ci->slab_objs * ci->size;
    if (!CHECK(tail < (size_t)ci->slab_pages * OHM_PAGE)) return; /* 85 blocks of 48 leave 16 bytes */
    unsigned char *p = ohm_pool_alloc(pool, 48);
    if (!CHECK_NOT_NULL(p)) return;
    chunk_t *c = chunk_of(p);
    unsigned char *slab = chunk_page_addr(c, pg_head(pg_get(c, chunk_page_of(c, p))));
    CHECK(p == slab);
    einval(ohm_pool_free(pool, slab + tail));
    einval(ohm_free(slab + tail));
    ohm_block_info info;
    CHECK_EQ_INT(ohm_lookup(slab + tail, &info), OHM_EINVAL);
    /* the live block's slab is intact: a run cannot be carved over it */
    memset(p, 0x99, 48);
    void *run = ohm_pool_alloc(pool, 64 * KIB);
    CHECK(run != NULL && (unsigned char *)run != slab);
    if (CHECK_EQ_INT(ohm_lookup(p, &info), OHM_OK)) CHECK(info.live && info.kind == OHM_BLOCK_SMALL);
    CHECK(p[0] == 0x99 && p[47] == 0x99);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    ohm_pool_free(pool, run);
    ohm_pool_destroy(pool);
}

/* ---- double frees ---- */

static void expect_double_free(int rc)
{
    if (einval(rc)) CHECK(strstr(ohm_last_error(), "free") != NULL);
}

static void test_double_free_is_caught_while_the_block_sits_in_the_cache(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t sizes[] = {16, 64, 1000, 14336, 40 * KIB, 256 * KIB};
    for (unsigned i = 0; i < 6; i++) {
        void *p = ohm_pool_alloc(pool, sizes[i]), *q = ohm_pool_alloc(pool, sizes[i]);
        void *r = ohm_pool_alloc(pool, sizes[i]);
        if (!CHECK_NOT_NULL(p) || !CHECK_NOT_NULL(q) || !CHECK_NOT_NULL(r)) return;
        CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
        expect_double_free(ohm_pool_free(pool, p)); /* at once */
        CHECK_EQ_INT(ohm_pool_free(pool, q), OHM_OK);
        CHECK_EQ_INT(ohm_pool_free(pool, r), OHM_OK);
        expect_double_free(ohm_pool_free(pool, p)); /* after other frees */
        expect_double_free(ohm_free(q));            /* through the routing entry point */
        CHECK_EQ_U64(ohm_usable_size(p), 0);        /* not a live block */
        check_all_distinct(pool, sizes[i], 200, NULL, 0);
    }
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_U64(st.allocs, st.frees);
    ohm_pool_destroy(pool);
}

static void test_double_free_is_caught_after_the_block_went_back_to_its_slab(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    void *keep = ohm_pool_alloc(pool, 64); /* keeps the slab alive */
    void *p = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(keep) || !CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    expect_double_free(ohm_pool_free(pool, p));
    expect_double_free(ohm_pool_free(pool, p));
    /* once the whole slab is free, its pages are free pages */
    CHECK_EQ_INT(ohm_pool_free(pool, keep), OHM_OK);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    einval(ohm_pool_free(pool, keep));
    einval(ohm_pool_free(pool, p));
    check_all_distinct(pool, 64, 1000, NULL, 0);
    ohm_pool_destroy(pool);

    /* without a thread cache the slab bitmap (or the free page) catches it */
    pool = make_pool(0);
    if (!pool) return;
    keep = ohm_pool_alloc(pool, 64);
    p = ohm_pool_alloc(pool, 64);
    void *run = ohm_pool_alloc(pool, 40 * KIB), *fence = ohm_pool_alloc(pool, 40 * KIB);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    expect_double_free(ohm_pool_free(pool, p));
    CHECK_EQ_INT(ohm_pool_free(pool, run), OHM_OK);
    einval(ohm_pool_free(pool, run));
    void *live[] = {keep, fence};
    check_all_distinct(pool, 64, 300, live, 2);
    check_all_distinct(pool, 40 * KIB, 20, live, 2);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.active_blocks, 2);
    ohm_pool_free(pool, keep);
    ohm_pool_free(pool, fence);
    ohm_pool_destroy(pool);
}

static void test_double_free_of_a_huge_block_is_einval(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    void *h = ohm_pool_alloc(pool, 5 * MIB);
    if (!CHECK_NOT_NULL(h)) return;
    CHECK_EQ_INT(ohm_pool_free(pool, h), OHM_OK);
    einval(ohm_pool_free(pool, h));
    einval(ohm_free(h));
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.frees, 1);
    CHECK_EQ_U64(st.huge_blocks, 0);
    ohm_pool_destroy(pool);
}

typedef struct remote_job {
    ohm_pool *pool;
    void *p;
} remote_job;

static void *free_and_flush_elsewhere(void *arg)
{
    remote_job *j = arg;
    ohm_pool_free(j->pool, j->p);
    ohm_pool_flush_thread_cache(j->pool); /* onto the owner arena's remote list */
    return NULL;
}

static void test_double_free_is_caught_while_the_block_waits_on_a_remote_list(void)
{
    ohm_pool *pool = fixture_arenas_pool("misuse", 2);
    if (!pool) return;
    remote_job j = {pool, ohm_pool_alloc(pool, 64)};
    void *keep = ohm_pool_alloc(pool, 64);
    pthread_t t;
    pthread_create(&t, NULL, free_and_flush_elsewhere, &j);
    pthread_join(t, NULL);
    expect_double_free(ohm_pool_free(pool, j.p));
    void *live[] = {keep};
    check_all_distinct(pool, 64, 500, live, 1);
    ohm_pool_free(pool, keep);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.active_blocks, 0);
    fixture_check_trims_to_nothing(pool);
    ohm_pool_destroy(pool);
}

/* ---- wrong pool, NULL pool ---- */

static void test_block_of_another_pool_is_einval(void)
{
    ohm_pool *a = make_pool(256 * KIB), *b = make_pool(256 * KIB);
    if (!a || !b) return;
    void *blocks[] = {ohm_pool_alloc(a, 64), ohm_pool_alloc(a, 40 * KIB), ohm_pool_alloc(a, 5 * MIB)};
    for (unsigned i = 0; i < 3; i++) {
        if (!CHECK_NOT_NULL(blocks[i])) continue;
        if (einval(ohm_pool_free(b, blocks[i]))) CHECK_STR_CONTAINS(ohm_last_error(), "another pool");
        einval(ohm_pool_free(ohm_pool_default(), blocks[i]));
        ohm_block_info info;
        if (CHECK_EQ_INT(ohm_lookup(blocks[i], &info), OHM_OK)) CHECK(info.live && info.pool == a);
    }
    CHECK_EQ_U64(fixture_stats(b, -1).frees, 0);
    for (unsigned i = 0; i < 3; i++) CHECK_EQ_INT(ohm_pool_free(a, blocks[i]), OHM_OK);
    ohm_pool_destroy(a);
    ohm_pool_destroy(b);
}

static void test_null_pool_is_einval(void)
{
    ohm_pool_stats st;
    void *p = ohm_alloc(64);
    CHECK_NULL(ohm_pool_alloc(NULL, 64));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_pool_alloc(NULL, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_pool_alloc_zeroed(NULL, 64));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_pool_alloc_aligned(NULL, 64, 64));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_pool_alloc(NULL, 10 * MIB));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    einval(ohm_pool_free(NULL, p));
    einval(ohm_pool_destroy(NULL));
    einval(ohm_pool_trim(NULL));
    einval(ohm_pool_flush_thread_cache(NULL));
    einval(ohm_pool_stats_get(NULL, -1, &st));
    einval(ohm_pool_walk(NULL, NULL, NULL));
    CHECK_EQ_INT(ohm_free(p), OHM_OK); /* the failed calls did not touch it */
}

/* ---- bad arguments ---- */

static void test_bad_configs_are_refused_with_einval(void)
{
    for (unsigned i = 0; i < 11; i++) {
        ohm_pool_config cfg;
        ohm_pool_config_init(&cfg);
        cfg.background_purge = false;
        switch (i) {
        case 0: cfg.chunk_size = 3 * MIB; break;
        case 1: cfg.chunk_size = 512 * KIB; break;
        case 2: cfg.chunk_size = 128 * MIB; break;
        case 3: cfg.chunk_size = 0; break;
        case 4: cfg.cache_slots = 0; break;
        case 5: cfg.cache_slots = 1025; break;
        case 6: cfg.arenas = OHM_MAX_ARENAS + 1; break;
        case 7: cfg.chunk_map = (ohm_chunk_map_fn *)1; break; /* never called: refused first */
        case 8: cfg.chunk_unmap = (ohm_chunk_unmap_fn *)1; break;
        case 9: cfg.huge_pages = (ohm_huge_pages)7; break;
        case 10: cfg.chunk_size = 4 * MIB + 4096; break;
        }
        ohm_pool *pool = ohm_pool_create(&cfg);
        if (!CHECK_NULL(pool)) {
            fprintf(stderr, "  config %u was accepted\n", i);
            ohm_pool_destroy(pool);
            continue;
        }
        CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
        CHECK(ohm_last_error()[0] != '\0');
    }
    /* the limits themselves are fine */
    size_t chunks[] = {1 * MIB, 64 * MIB};
    for (unsigned i = 0; i < 2; i++) {
        ohm_pool_config cfg;
        ohm_pool_config_init(&cfg);
        cfg.background_purge = false;
        cfg.chunk_size = chunks[i];
        cfg.cache_slots = i ? 1024 : 1;
        cfg.arenas = i ? OHM_MAX_ARENAS : 1;
        ohm_pool *pool = ohm_pool_create(&cfg);
        if (!CHECK_NOT_NULL(pool)) continue;
        void *p = ohm_pool_alloc(pool, 100);
        CHECK_NOT_NULL(p);
        ohm_pool_free(pool, p);
        ohm_pool_destroy(pool);
    }
}

static void test_alignment_that_is_not_a_power_of_two_is_einval(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t aligns[] = {0, 3, 24, 48, 1000, 4097, (size_t)3 << 20, SIZE_MAX};
    for (unsigned i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        CHECK_NULL(ohm_pool_alloc_aligned(pool, 64, aligns[i]));
        CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
        CHECK_STR_CONTAINS(ohm_last_error(), "power of two");
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).allocs, 0);
    ohm_pool_destroy(pool);
}

static void test_unrepresentable_sizes_fail_cleanly(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX / 2, (size_t)1 << 62, (size_t)1 << 50};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *(*fns[])(ohm_pool *, size_t) = {ohm_pool_alloc, ohm_pool_alloc_zeroed};
        for (unsigned f = 0; f < 2; f++) {
            CHECK_NULL(fns[f](pool, sizes[i]));
            int code = ohm_last_error_code();
            CHECK(code == OHM_ENOMEM || code == OHM_EINVAL);
            CHECK(ohm_last_error()[0] != '\0');
        }
        size_t aligns[] = {64, 64 * KIB, 8 * MIB, (size_t)1 << 62};
        for (unsigned a = 0; a < 4; a++) {
            CHECK_NULL(ohm_pool_alloc_aligned(pool, sizes[i], aligns[a]));
            int code = ohm_last_error_code();
            CHECK(code == OHM_ENOMEM || code == OHM_EINVAL);
        }
    }
    CHECK_NULL(ohm_pool_alloc_aligned(pool, 64, (size_t)1 << 62)); /* an alignment no mapping can meet */
    CHECK_NULL(ohm_alloc(SIZE_MAX));
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.allocs, 0);
    void *p = ohm_pool_alloc(pool, 100); /* still serves */
    CHECK_NOT_NULL(p);
    ohm_pool_free(pool, p);
    ohm_pool_destroy(pool);
}

static void test_default_pool_cannot_be_destroyed(void)
{
    ohm_pool *d = ohm_pool_default();
    if (!CHECK_NOT_NULL(d)) return;
    CHECK_EQ_INT(ohm_pool_destroy(d), OHM_ESTATE);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESTATE);
    CHECK_STR_CONTAINS(ohm_last_error(), "default");
    void *p = ohm_alloc(32); /* still alive */
    CHECK_NOT_NULL(p);
    CHECK_EQ_INT(ohm_free(p), OHM_OK);
}

static void test_strerror_names_every_code_and_an_unknown_one(void)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {OHM_OK, "OHM_OK"},
        {OHM_ENOMEM, "OHM_ENOMEM"},
        {OHM_EINVAL, "OHM_EINVAL"},
        {OHM_ESTATE, "OHM_ESTATE"},
        {OHM_ERANGE, "OHM_ERANGE"},
        {OHM_ELIMIT, "OHM_ELIMIT"},
        {OHM_ESYS, "OHM_ESYS"},
        {OHM_EPERM, "OHM_EPERM"},
        {OHM_ETIMEDOUT, "OHM_ETIMEDOUT"},
        {OHM_ECANCELED, "OHM_ECANCELED"},
        {OHM_ECALLBACK, "OHM_ECALLBACK"},
    };
    unsigned n = sizeof codes / sizeof codes[0];
    for (unsigned i = 0; i < n; i++) {
        const char *s = ohm_strerror(codes[i].code);
        if (!CHECK_NOT_NULL(s)) continue;
        CHECK_STR_CONTAINS(s, codes[i].name);
        CHECK(strlen(s) > strlen(codes[i].name) + 2); /* and says what it means */
        for (unsigned j = 0; j < i; j++) CHECK(strcmp(s, ohm_strerror(codes[j].code)) != 0);
    }
    int unknown[] = {-11, -99, 1, 12345, INT32_MIN};
    for (unsigned i = 0; i < 5; i++) {
        const char *s = ohm_strerror(unknown[i]);
        if (!CHECK_NOT_NULL(s)) continue;
        CHECK_STR_CONTAINS(s, "unknown");
    }
}

static void test_free_of_null_is_a_no_op(void)
{
    ohm_pool *pool = make_pool(256 * KIB);
    if (!pool) return;
    CHECK_EQ_INT(ohm_free(NULL), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, NULL), OHM_OK);
    CHECK_EQ_U64(ohm_usable_size(NULL), 0);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.frees, 0);
    ohm_pool_destroy(pool);
}

/* ---- environment ---- */

static const char *env_names[] = {
    "OHM_CHUNK_SIZE", "OHM_ARENAS", "OHM_CACHE_MAX", "OHM_CACHE_SLOTS", "OHM_PURGE_DELAY_MS", "OHM_BACKGROUND_PURGE",
    "OHM_MAX_MAPPED", "OHM_MLOCK",  "OHM_MERGEABLE", "OHM_ZERO",        "OHM_HUGE_PAGES",
};
#define NENV (sizeof env_names / sizeof env_names[0])

static char *saved_env[NENV];

static void save_env(void)
{
    for (unsigned i = 0; i < NENV; i++) {
        const char *v = getenv(env_names[i]);
        saved_env[i] = v ? strdup(v) : NULL;
        unsetenv(env_names[i]);
    }
}

static void restore_env(void)
{
    for (unsigned i = 0; i < NENV; i++) {
        if (saved_env[i]) setenv(env_names[i], saved_env[i], 1);
        else unsetenv(env_names[i]);
        free(saved_env[i]);
        saved_env[i] = NULL;
    }
}

static void test_environment_sets_the_config_defaults(void)
{
    save_env();
    ohm_pool_config dflt;
    ohm_pool_config_init(&dflt);
    setenv("OHM_CHUNK_SIZE", "2M", 1);
    setenv("OHM_ARENAS", "3", 1);
    setenv("OHM_CACHE_MAX", "64K", 1);
    setenv("OHM_CACHE_SLOTS", "16", 1);
    setenv("OHM_PURGE_DELAY_MS", "500", 1);
    setenv("OHM_BACKGROUND_PURGE", "0", 1);
    setenv("OHM_MAX_MAPPED", "1G", 1);
    setenv("OHM_MLOCK", "false", 1);
    setenv("OHM_MERGEABLE", "yes", 1);
    setenv("OHM_ZERO", "on", 1);
    setenv("OHM_HUGE_PAGES", "thp", 1);
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    CHECK_EQ_U64(cfg.chunk_size, 2 * MIB);
    CHECK_EQ_INT(cfg.arenas, 3);
    CHECK_EQ_U64(cfg.cache_max_size, 64 * KIB);
    CHECK_EQ_INT(cfg.cache_slots, 16);
    CHECK_EQ_U64(cfg.purge_delay_ms, 500);
    CHECK(!cfg.background_purge);
    CHECK_EQ_U64(cfg.max_mapped, (size_t)1 << 30);
    CHECK(!cfg.lock_memory);
    CHECK(cfg.mergeable);
    CHECK(cfg.zero);
    CHECK_EQ_INT(cfg.huge_pages, OHM_HUGE_THP);
    /* a pool created without a config takes the same settings */
    ohm_pool *pool = ohm_pool_create(NULL);
    if (CHECK_NOT_NULL(pool)) {
        ohm_pool_stats st = fixture_stats(pool, -1);
        CHECK_EQ_INT(st.arenas, 3);
        CHECK_EQ_INT(st.nclasses, ohm_size_class_count(2 * MIB));
        ohm_pool_destroy(pool);
    }
    /* other spellings */
    setenv("OHM_CHUNK_SIZE", "8MiB", 1);
    setenv("OHM_MAX_MAPPED", "1048576", 1);
    setenv("OHM_HUGE_PAGES", "HugeTLB", 1);
    setenv("OHM_ZERO", "1", 1);
    ohm_pool_config_init(&cfg);
    CHECK_EQ_U64(cfg.chunk_size, 8 * MIB);
    CHECK_EQ_U64(cfg.max_mapped, 1 * MIB);
    CHECK_EQ_INT(cfg.huge_pages, OHM_HUGE_HUGETLB);
    CHECK(cfg.zero);
    setenv("OHM_PURGE_DELAY_MS", "never", 1); /* purge only on trim */
    ohm_pool_config_init(&cfg);
    CHECK_EQ_U64(cfg.purge_delay_ms, UINT64_MAX);
    setenv("OHM_PURGE_DELAY_MS", "-1", 1);
    cfg.purge_delay_ms = 0;
    ohm_pool_config_init(&cfg);
    CHECK_EQ_U64(cfg.purge_delay_ms, UINT64_MAX);
    restore_env();
    ohm_pool_config_init(&cfg);
    CHECK_EQ_U64(cfg.chunk_size, dflt.chunk_size);
}

static void test_malformed_environment_values_are_ignored_and_logged(void)
{
    save_env();
    ohm_pool_config dflt;
    ohm_pool_config_init(&dflt);
    static fixture_log log;
    log = (fixture_log)FIXTURE_LOG(OHM_LOG_DEBUG);
    ohm_set_log_handler(fixture_log_handler, &log);
    setenv("OHM_CHUNK_SIZE", "banana", 1);
    setenv("OHM_ARENAS", "-1", 1);
    setenv("OHM_CACHE_MAX", "12Q", 1);
    setenv("OHM_CACHE_SLOTS", "16x", 1);
    setenv("OHM_PURGE_DELAY_MS", "99999999999999999999999", 1);
    setenv("OHM_BACKGROUND_PURGE", "maybe", 1);
    setenv("OHM_MAX_MAPPED", "1T", 1);
    setenv("OHM_MLOCK", "2", 1);
    setenv("OHM_ZERO", "", 1); /* empty: unset */
    setenv("OHM_HUGE_PAGES", "giant", 1);
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    ohm_set_log_handler(NULL, NULL);
    CHECK_EQ_U64(cfg.chunk_size, dflt.chunk_size);
    CHECK_EQ_INT(cfg.arenas, dflt.arenas);
    CHECK_EQ_U64(cfg.cache_max_size, dflt.cache_max_size);
    CHECK_EQ_INT(cfg.cache_slots, dflt.cache_slots);
    CHECK_EQ_U64(cfg.purge_delay_ms, dflt.purge_delay_ms);
    CHECK_EQ_INT(cfg.background_purge, dflt.background_purge);
    CHECK_EQ_U64(cfg.max_mapped, dflt.max_mapped);
    CHECK_EQ_INT(cfg.lock_memory, dflt.lock_memory);
    CHECK_EQ_INT(cfg.zero, dflt.zero);
    CHECK_EQ_INT(cfg.huge_pages, dflt.huge_pages);
    const char *logged[] = {"OHM_CHUNK_SIZE",  "OHM_ARENAS",         "OHM_CACHE_MAX",
                            "OHM_CACHE_SLOTS", "OHM_PURGE_DELAY_MS", "OHM_BACKGROUND_PURGE",
                            "OHM_MAX_MAPPED",  "OHM_MLOCK",          "OHM_HUGE_PAGES"};
    for (unsigned i = 0; i < sizeof logged / sizeof logged[0]; i++) CHECK_STR_CONTAINS(log.text, logged[i]);
    restore_env();
}

/* A number too large for its field is as malformed as a word: it must not wrap around to another valid value. */
static void test_out_of_range_environment_numbers_do_not_wrap(void)
{
    save_env();
    ohm_pool_config dflt;
    ohm_pool_config_init(&dflt);
    ohm_set_log_handler(fixture_log_handler, &(fixture_log)FIXTURE_LOG(OHM_LOG_DEBUG));
    setenv("OHM_CACHE_SLOTS", "4294967297", 1); /* 2^32 + 1 */
    setenv("OHM_ARENAS", "4294967298", 1);      /* 2^32 + 2 */
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    ohm_set_log_handler(NULL, NULL);
    if (!CHECK(cfg.cache_slots == dflt.cache_slots || cfg.cache_slots > 1024))
        fprintf(stderr, "  OHM_CACHE_SLOTS=4294967297 gave cache_slots %u\n", cfg.cache_slots);
    if (!CHECK(cfg.arenas == dflt.arenas || cfg.arenas > OHM_MAX_ARENAS))
        fprintf(stderr, "  OHM_ARENAS=4294967298 gave arenas %u\n", cfg.arenas);
    restore_env();
}

static void *fail_on_this_thread(void *arg)
{
    int *code = arg;
    int local;
    *code = ohm_free(&local);
    return NULL;
}

static void test_last_error_is_per_thread(void)
{
    void *p = ohm_alloc(SIZE_MAX / 4); /* ENOMEM on this thread */
    CHECK_NULL(p);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", ohm_last_error());
    int other = 0;
    pthread_t t;
    pthread_create(&t, NULL, fail_on_this_thread, &other); /* EINVAL on another */
    pthread_join(t, NULL);
    CHECK_EQ_INT(other, OHM_EINVAL);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ENOMEM); /* the other thread's failure left ours alone */
    CHECK(strcmp(mine, ohm_last_error()) == 0);
}

/* A thread's error message lives until the thread exits (then its buffer is freed: ASan's leak check runs on this
 * test) and a thread that never failed reads an empty message with code 0. */
static void *fail_and_read_message(void *arg)
{
    int *ok = arg;
    *ok = ohm_last_error_code() == OHM_OK && ohm_last_error()[0] == '\0';
    int local;
    *ok &= ohm_free(&local) == OHM_EINVAL && ohm_last_error_code() == OHM_EINVAL &&
           strstr(ohm_last_error(), "not a live block") != NULL;
    *ok &= ohm_set_error(OHM_ESTATE, "second") == OHM_ESTATE && strcmp(ohm_last_error(), "second") == 0;
    return NULL;
}

static void test_error_messages_are_per_thread_and_end_with_it(void)
{
    for (int i = 0; i < 64; i++) {
        pthread_t t;
        int ok = 0;
        if (!CHECK_EQ_INT(pthread_create(&t, NULL, fail_and_read_message, &ok), 0)) return;
        pthread_join(t, NULL);
        if (!CHECK(ok)) return;
    }
}

int main(void)
{
    ohm__init();
    RUN(test_free_of_foreign_pointers_is_einval_and_changes_nothing);
    RUN(test_interior_pointers_are_einval);
    RUN(test_frees_are_checked_whatever_the_free_path_guessed);
    RUN(test_pointer_past_the_last_block_of_a_slab_is_einval);
    RUN(test_double_free_is_caught_while_the_block_sits_in_the_cache);
    RUN(test_double_free_is_caught_after_the_block_went_back_to_its_slab);
    RUN(test_double_free_of_a_huge_block_is_einval);
    RUN(test_double_free_is_caught_while_the_block_waits_on_a_remote_list);
    RUN(test_block_of_another_pool_is_einval);
    RUN(test_null_pool_is_einval);
    RUN(test_bad_configs_are_refused_with_einval);
    RUN(test_alignment_that_is_not_a_power_of_two_is_einval);
    RUN(test_unrepresentable_sizes_fail_cleanly);
    RUN(test_default_pool_cannot_be_destroyed);
    RUN(test_strerror_names_every_code_and_an_unknown_one);
    RUN(test_free_of_null_is_a_no_op);
    RUN(test_last_error_is_per_thread);
    RUN(test_error_messages_are_per_thread_and_end_with_it);
    RUN(test_environment_sets_the_config_defaults);
    RUN(test_malformed_environment_values_are_ignored_and_logged);
    RUN(test_out_of_range_environment_numbers_do_not_wrap);
    return check_summary();
}
