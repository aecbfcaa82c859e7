/* Buffers: Netty's reference-count rules with every error case, slices and duplicates that share the count,
 * retained slices that hold their parent, checked access (bounds, overflow, overlap), ids that detect stale
 * handles, the Cleaner protocol (ohm_buf_reclaim), adopted memory (ohm_buf_wrap), pool destruction with live
 * buffers, and failures that leave nothing half made. The leak detector's reports are tested with leak.c;
 * here it is only switched between OFF and PARANOID to show the rules hold at both. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "buf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* The library never prints: its log lines come here, and tests that expect one can look. */
static fixture_log warnings = FIXTURE_LOG(OHM_LOG_WARN);

/* Fills b with 0, 1, 2, ... so a view's bytes tell their offset. */
static void fill_ramp(ohm_buf *b)
{
    unsigned char *p = ohm_buf_data(b);
    for (size_t i = 0; i < ohm_buf_size(b); i++) p[i] = (unsigned char)i;
}

/* A private pool (see buf_pool), its active block count before anything is allocated, and a first buffer of
 * `size` bytes in it: NULL when either failed (and a check failed). */
static ohm_buf *pool_buf(const char *name, size_t size, ohm_pool **pool, uint64_t *before)
{
    *pool = fixture_flag_pool(name, FIXTURE_NO_CACHE);
    if (!*pool) return NULL;
    *before = fixture_active_blocks(*pool);
    ohm_buf *b = ohm_buf_alloc(*pool, size);
    CHECK_NOT_NULL(b);
    return b;
}

/* A new buffer: allocated, with count 1, the requested size and data (even at size 0). False if b is NULL. */
static bool check_fresh(ohm_buf *b, size_t size)
{
    if (!CHECK_NOT_NULL(b)) return false;
    CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    CHECK_EQ_U64(ohm_buf_size(b), size);
    CHECK_NOT_NULL(ohm_buf_data(b));
    return true;
}

static bool error_is(int rc, int code) { return CHECK_EQ_INT(rc, code) && CHECK_EQ_INT(ohm_last_error_code(), code); }

/* ---- reference counts: Netty's rules ---- */

static void test_new_buffer_has_count_1_and_the_requested_size(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 100);
    if (!check_fresh(b, 100)) return;
    CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_POOL);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_retain_or_release_of_zero_is_einval_and_changes_nothing(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    error_is(ohm_buf_retain(b, 0), OHM_EINVAL);
    error_is(ohm_buf_release(b, 0), OHM_EINVAL);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_release_returns_1_only_on_the_call_that_reaches_zero(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_retain(b, 3), 0);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 4);
    CHECK_EQ_INT(ohm_buf_release(b, 2), 0);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 2);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 0);
    CHECK_NULL(ohm_buf_data(b));
    CHECK_EQ_U64(ohm_buf_size(b), 0);
}

static void test_releasing_more_than_the_count_is_einval_and_keeps_the_count(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_retain(b, 1), 0);
    error_is(ohm_buf_release(b, 3), OHM_EINVAL);
    error_is(ohm_buf_release(b, UINT32_MAX), OHM_EINVAL);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 2);
    CHECK_EQ_INT(ohm_buf_write(b, 0, "live", 4), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 2), 1);
}

static void test_retain_or_release_of_a_released_buffer_is_estate(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    error_is(ohm_buf_release(b, 1), OHM_ESTATE);
    error_is(ohm_buf_retain(b, 1), OHM_ESTATE);
    error_is(ohm_buf_release(b, 1), OHM_ESTATE); /* the failed retain did not revive it */
    CHECK_EQ_U64(ohm_buf_refcnt(b), 0);
}

static void test_retain_past_int32_max_is_einval_and_keeps_the_count(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    error_is(ohm_buf_retain(b, INT32_MAX), OHM_EINVAL); /* 1 + INT32_MAX */
    error_is(ohm_buf_retain(b, UINT32_MAX), OHM_EINVAL);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    CHECK_EQ_INT(ohm_buf_retain(b, INT32_MAX - 1), 0); /* exactly INT32_MAX is allowed */
    CHECK_EQ_U64(ohm_buf_refcnt(b), INT32_MAX);
    error_is(ohm_buf_retain(b, 1), OHM_EINVAL);
    CHECK_EQ_U64(ohm_buf_refcnt(b), INT32_MAX);
    CHECK_EQ_INT(ohm_buf_release(b, INT32_MAX - 1), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_null_handles_are_einval(void)
{
    error_is(ohm_buf_retain(NULL, 1), OHM_EINVAL);
    error_is(ohm_buf_release(NULL, 1), OHM_EINVAL);
    error_is(ohm_buf_read(NULL, 0, NULL, 0), OHM_EINVAL);
    CHECK_NULL(ohm_buf_slice(NULL, 0, 0));
    CHECK_NULL(ohm_buf_duplicate(NULL));
    CHECK_EQ_U64(ohm_buf_refcnt(NULL), 0);
    CHECK_EQ_U64(ohm_buf_id(NULL), 0);
    CHECK_EQ_INT(ohm_buf_reclaim(NULL, 1), 0);
}

/* Four threads release the same count-1 buffer at once, started by a barrier; repeated many times. */
#define RACERS      4
#define RACE_ROUNDS 2000

static struct race {
    pthread_barrier_t start, done;
    ohm_buf *buf;
    int rc[RACERS];
    bool stop;
} race;

static void *race_releaser(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    for (;;) {
        pthread_barrier_wait(&race.start);
        if (race.stop) return NULL;
        race.rc[me] = ohm_buf_release(race.buf, 1);
        pthread_barrier_wait(&race.done);
    }
}

static void test_four_threads_releasing_count_1_see_exactly_one_free_and_three_estate(void)
{
    pthread_t t[RACERS];
    pthread_barrier_init(&race.start, NULL, RACERS + 1);
    pthread_barrier_init(&race.done, NULL, RACERS + 1);
    race.stop = false;
    for (unsigned i = 0; i < RACERS; i++) pthread_create(&t[i], NULL, race_releaser, (void *)(uintptr_t)i);
    unsigned bad_rounds = 0;
    for (unsigned round = 0; round < RACE_ROUNDS; round++) {
        race.buf = ohm_buf_alloc(NULL, 64);
        if (!CHECK_NOT_NULL(race.buf)) break;
        pthread_barrier_wait(&race.start);
        pthread_barrier_wait(&race.done);
        unsigned freed = 0, estate = 0;
        for (unsigned i = 0; i < RACERS; i++) {
            freed += race.rc[i] == 1;
            estate += race.rc[i] == OHM_ESTATE;
        }
        bad_rounds += !(freed == 1 && estate == RACERS - 1);
    }
    race.stop = true;
    pthread_barrier_wait(&race.start);
    for (unsigned i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race.start);
    pthread_barrier_destroy(&race.done);
    CHECK_EQ_U64(bad_rounds, 0);
}

#define CHURN_OPS 100000

static void *retain_release_churn(void *arg)
{
    ohm_buf *b = arg;
    uintptr_t errors = 0;
    for (unsigned i = 0; i < CHURN_OPS; i++) {
        errors += ohm_buf_retain(b, 1) != 0;
        errors += ohm_buf_release(b, 1) != 0; /* never 1: the main thread holds a reference */
    }
    return (void *)errors;
}

/* Runs churn on `threads` threads against one buffer the main thread holds, each returning its error count; no
 * errors, and the count back at 1, are the checks. */
static void check_churn_keeps_the_count(unsigned threads, void *(*churn)(void *))
{
    ohm_buf *b = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(b)) return;
    pthread_t t[16];
    for (unsigned i = 0; i < threads; i++) pthread_create(&t[i], NULL, churn, b);
    uintptr_t errors = 0;
    for (unsigned i = 0; i < threads; i++) {
        void *e;
        pthread_join(t[i], &e);
        errors += (uintptr_t)e;
    }
    CHECK_EQ_U64(errors, 0);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_concurrent_retain_and_release_keep_the_count_exact(void)
{
    check_churn_keeps_the_count(RACERS, retain_release_churn);
}

/* ---- slices and duplicates ---- */

static void test_slice_and_duplicate_share_the_parent_count_and_bytes(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(p)) return;
    fill_ramp(p);
    ohm_buf *s = ohm_buf_slice(p, 10, 20), *d = ohm_buf_duplicate(p);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(d)) return;
    CHECK_EQ_U64(ohm_buf_size(s), 20);
    CHECK_EQ_U64(ohm_buf_size(d), 64);
    CHECK(ohm_buf_data(s) == (char *)ohm_buf_data(p) + 10);
    CHECK(ohm_buf_data(d) == ohm_buf_data(p));
    unsigned char got[4];
    CHECK_EQ_INT(ohm_buf_read(s, 0, got, 4), 0);
    CHECK(got[0] == 10 && got[3] == 13);
    CHECK_EQ_INT(ohm_buf_write(s, 19, "\xAA", 1), 0); /* a write through the slice lands in the parent */
    CHECK_EQ_INT(ohm_buf_read(p, 29, got, 1), 0);
    CHECK_EQ_INT(got[0], 0xAA);
    CHECK_EQ_INT(ohm_buf_retain(s, 2), 0); /* one count for all three */
    CHECK_EQ_U64(ohm_buf_refcnt(p), 3);
    CHECK_EQ_U64(ohm_buf_refcnt(s), 3);
    CHECK_EQ_U64(ohm_buf_refcnt(d), 3);
    CHECK_EQ_INT(ohm_buf_release(d, 2), 0);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1);
    CHECK_EQ_INT(ohm_buf_origin_of(s), OHM_ORIGIN_POOL);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
}

static void test_releasing_through_a_slice_frees_the_parent_and_ends_every_view(void)
{
    ohm_pool *pool;
    uint64_t before;
    ohm_buf *p = pool_buf("buf-slice", 256, &pool, &before);
    if (!p) return;
    ohm_buf *s = ohm_buf_slice(p, 100, 50), *d = ohm_buf_duplicate(p);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(d)) return;
    CHECK_EQ_U64(fixture_active_blocks(pool), before + 1);
    CHECK_EQ_INT(ohm_buf_release(s, 1), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 0);
    char x;
    error_is(ohm_buf_read(p, 0, &x, 1), OHM_ESTATE);
    error_is(ohm_buf_read(d, 0, &x, 1), OHM_ESTATE);
    error_is(ohm_buf_read(s, 0, &x, 1), OHM_ESTATE);
    error_is(ohm_buf_release(p, 1), OHM_ESTATE); /* releasing a released slice's parent */
    error_is(ohm_buf_release(d, 1), OHM_ESTATE);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_slice_of_a_slice_sees_the_parent_bytes_at_the_summed_offset(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 200);
    if (!CHECK_NOT_NULL(p)) return;
    fill_ramp(p);
    ohm_buf *s = ohm_buf_slice(p, 50, 100);
    ohm_buf *ss = s ? ohm_buf_slice(s, 25, 10) : NULL;
    if (!CHECK_NOT_NULL(ss)) return;
    unsigned char got[10];
    CHECK_EQ_INT(ohm_buf_read(ss, 0, got, 10), 0);
    CHECK(got[0] == 75 && got[9] == 84);
    error_is(ohm_buf_read(ss, 5, got, 6), OHM_ERANGE); /* bounded by its own size, not the parent's */
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
}

static void test_slices_outside_the_buffer_are_erange(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_NULL(ohm_buf_slice(p, 8, 9));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_NULL(ohm_buf_slice(p, 17, 0));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_NULL(ohm_buf_slice(p, 8, SIZE_MAX - 4)); /* offset + length wraps around */
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_NULL(ohm_buf_retained_slice(p, 1, 16));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ERANGE);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1); /* the failed retained slice took no reference */
    ohm_buf *empty = ohm_buf_slice(p, 16, 0);
    CHECK_NOT_NULL(empty);
    CHECK_EQ_U64(ohm_buf_size(empty), 0);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
    CHECK_NULL(ohm_buf_slice(p, 0, 1));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESTATE);
    CHECK_NULL(ohm_buf_duplicate(p));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESTATE);
    CHECK_NULL(ohm_buf_retained_slice(p, 0, 1));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESTATE);
}

static void test_retained_slice_has_count_1_and_holds_one_parent_reference_until_it_reaches_zero(void)
{
    ohm_pool *pool;
    uint64_t before;
    ohm_buf *p = pool_buf("buf-retained", 128, &pool, &before);
    if (!p) return;
    fill_ramp(p);
    ohm_buf *r = ohm_buf_retained_slice(p, 32, 16);
    if (!CHECK_NOT_NULL(r)) return;
    CHECK_EQ_U64(ohm_buf_refcnt(r), 1);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 2);
    unsigned char got;
    CHECK_EQ_INT(ohm_buf_read(r, 0, &got, 1), 0);
    CHECK_EQ_INT(got, 32);
    CHECK_EQ_INT(ohm_buf_retain(r, 1), 0); /* its own count: the parent's does not move */
    CHECK_EQ_U64(ohm_buf_refcnt(r), 2);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 2);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 0); /* the slice keeps the memory alive */
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1);
    CHECK_EQ_INT(ohm_buf_read(r, 15, &got, 1), 0);
    CHECK_EQ_INT(got, 47);
    CHECK_EQ_INT(ohm_buf_release(r, 1), 0);
    CHECK_EQ_U64(fixture_active_blocks(pool), before + 1);
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1); /* the slice's last release drops the parent's last reference */
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    error_is(ohm_buf_release(p, 1), OHM_ESTATE);
    error_is(ohm_buf_release(r, 1), OHM_ESTATE);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_releasing_a_released_retained_slices_parent_is_estate(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(p)) return;
    ohm_buf *r = ohm_buf_retained_slice(p, 0, 8);
    if (!CHECK_NOT_NULL(r)) return;
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1); /* the slice ends; the parent is back to 1 */
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
    error_is(ohm_buf_release(p, 1), OHM_ESTATE);
    error_is(ohm_buf_retain(r, 1), OHM_ESTATE);
}

static void test_over_releasing_the_root_makes_a_live_retained_slice_read_as_released(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(p)) return;
    ohm_buf *r = ohm_buf_retained_slice(p, 8, 8);
    ohm_buf *rs = r ? ohm_buf_slice(r, 0, 4) : NULL; /* a plain view of the retained slice */
    if (!CHECK_NOT_NULL(rs)) return;
    CHECK_EQ_INT(ohm_buf_release(p, 2), 1); /* the slice's reference too: the memory goes */
    char x;
    void *ptr = NULL;
    error_is(ohm_buf_read(r, 0, &x, 1), OHM_ESTATE);
    error_is(ohm_buf_write(r, 0, "x", 1), OHM_ESTATE);
    error_is(ohm_buf_span(r, 0, 1, &ptr), OHM_ESTATE);
    CHECK_NULL(ptr);
    error_is(ohm_buf_read(rs, 0, &x, 1), OHM_ESTATE);
    CHECK_NULL(ohm_buf_data(r));
    CHECK_NULL(ohm_buf_retained_slice(r, 0, 1));
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1); /* the slice's own count still ends it */
}

/* The over-released root's header is reused by the next buffer of this thread; the retained slice's last
 * release must not touch that new buffer (its reference belongs to the dead one). */
/* In a private pool, a root with a retained slice r, released twice (once too often, so it is freed while r still
 * holds it), then a new buffer n of its size: most likely the root's header again. before is the count with r
 * alone, id n's id. False (and a failed check) when any of it could not be made. */
typedef struct reused_header {
    ohm_pool *pool;
    ohm_buf *r, *n;
    uint64_t before, id;
} reused_header;

static bool reuse_over_released_root(const char *name, reused_header *u)
{
    u->pool = fixture_flag_pool(name, FIXTURE_NO_CACHE);
    if (!u->pool) return false;
    ohm_buf *p = ohm_buf_alloc(u->pool, 64);
    if (!CHECK_NOT_NULL(p)) return false;
    u->r = ohm_buf_retained_slice(p, 0, 8);
    if (!CHECK_NOT_NULL(u->r)) return false;
    CHECK_EQ_INT(ohm_buf_release(p, 2), 1);
    u->before = fixture_active_blocks(u->pool);
    u->n = ohm_buf_alloc(u->pool, 64);
    if (!CHECK_NOT_NULL(u->n)) return false;
    if (u->n != p) fprintf(stderr, "  note: the new buffer did not reuse the root's header\n");
    u->id = ohm_buf_id(u->n);
    return true;
}

static void test_a_retained_slice_ending_after_its_root_was_over_released_leaves_the_reused_header_alone(void)
{
    reused_header u;
    if (!reuse_over_released_root("buf-reuse", &u)) return;
    CHECK_EQ_INT(ohm_buf_release(u.r, 1), 1);
    CHECK_EQ_U64(ohm_buf_refcnt(u.n), 1);
    /* the new buffer is an ordinary unreleased buffer with no retained slice: the Cleaner must reclaim it. */
    CHECK_EQ_INT(ohm_buf_reclaim(u.n, u.id), 1);
    CHECK_EQ_U64(fixture_active_blocks(u.pool), u.before);
    CHECK_EQ_INT(ohm_buf_check(u.n, u.id), OHM_ESTATE);
    CHECK_EQ_INT(ohm_pool_destroy(u.pool), 0);
}

/* The same, with the Cleaner coming for the new buffer while the dead root's retained slice is still alive: the
 * slice's reference on the dead root must not count as a reference held on the new buffer. */
static void test_a_reused_header_does_not_inherit_the_dead_roots_retained_slices(void)
{
    reused_header u;
    if (!reuse_over_released_root("buf-reuse-live", &u)) return;
    CHECK_EQ_INT(ohm_buf_reclaim(u.n, u.id), 1);
    CHECK_EQ_U64(fixture_active_blocks(u.pool), u.before);
    CHECK_EQ_INT(ohm_buf_check(u.n, u.id), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_release(u.r, 1), 1);
    CHECK_EQ_INT(ohm_pool_destroy(u.pool), 0);
}

#define SLICERS   4
#define SLICE_OPS 20000

static void *slice_churn(void *arg)
{
    ohm_buf *p = arg;
    uintptr_t errors = 0;
    for (unsigned i = 0; i < SLICE_OPS; i++) {
        ohm_buf *r = ohm_buf_retained_slice(p, i % 32, 32);
        errors += !r || ohm_buf_release(r, 1) != 1;
        errors += ohm_buf_retain(p, 1) != 0;
        ohm_buf *s = ohm_buf_slice(p, 0, 8);
        errors += !s || ohm_buf_release(s, 1) != 0;
        if (s) ohm_buf_reclaim(s, ohm_buf_id(s)); /* as a GC would, so slice handles do not pile up */
    }
    return (void *)errors;
}

static void test_threads_making_and_ending_slices_of_one_parent_keep_its_count_exact(void)
{
    check_churn_keeps_the_count(SLICERS, slice_churn);
}

/* ---- checked access ---- */

static void test_write_read_fill_and_span_reach_the_right_bytes(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 32);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_fill(b, 0, 0x11, 32), 0);
    CHECK_EQ_INT(ohm_buf_write(b, 4, "abcd", 4), 0);
    CHECK_EQ_INT(ohm_buf_fill(b, 30, 0x22, 2), 0);
    char got[32];
    CHECK_EQ_INT(ohm_buf_read(b, 0, got, 32), 0);
    CHECK(got[3] == 0x11 && memcmp(got + 4, "abcd", 4) == 0 && got[8] == 0x11 && got[29] == 0x11 && got[30] == 0x22 &&
          got[31] == 0x22);
    void *ptr = NULL;
    CHECK_EQ_INT(ohm_buf_span(b, 4, 4, &ptr), 0);
    CHECK(ptr == (char *)ohm_buf_data(b) + 4);
    CHECK_EQ_INT(ohm_buf_span(b, 32, 0, &ptr), 0); /* an empty span at the end is in range */
    CHECK_EQ_INT(ohm_buf_read(b, 32, NULL, 0), 0);
    error_is(ohm_buf_read(b, 0, NULL, 1), OHM_EINVAL);
    error_is(ohm_buf_span(b, 0, 1, NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_access_past_the_end_is_erange_naming_offset_length_and_size(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    ohm_buf *o = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(b) || !CHECK_NOT_NULL(o)) return;
    char tmp[64] = {0};
    void *ptr = NULL;
    error_is(ohm_buf_read(b, 12, tmp, 8), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 12 + length 8 exceeds buffer size 16");
    error_is(ohm_buf_write(b, 12, tmp, 8), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 12 + length 8 exceeds buffer size 16");
    error_is(ohm_buf_fill(b, 17, 0, 0), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 17 + length 0 exceeds buffer size 16");
    error_is(ohm_buf_span(b, 0, 17, &ptr), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 0 + length 17 exceeds buffer size 16");
    CHECK_NULL(ptr);
    error_is(ohm_buf_copy(o, 0, b, 8, 9), OHM_ERANGE); /* source range */
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 8 + length 9 exceeds buffer size 16");
    error_is(ohm_buf_copy(b, 10, o, 0, 7), OHM_ERANGE); /* destination range */
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 10 + length 7 exceeds buffer size 16");
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_buf_release(o, 1), 1);
}

static void test_offset_plus_length_overflowing_size_max_is_erange_naming_offset_length_and_size(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    char tmp[8];
    char off[32], len[32];
    snprintf(off, sizeof off, "offset %zu", (size_t)8);
    snprintf(len, sizeof len, "length %zu", SIZE_MAX - 3);
    /* 8 + (SIZE_MAX - 3) wraps to 4, which a naive "off + len <= size" would accept */
    error_is(ohm_buf_read(b, 8, tmp, SIZE_MAX - 3), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), off);
    CHECK_STR_CONTAINS(ohm_last_error(), len);
    CHECK_STR_CONTAINS(ohm_last_error(), "size 16");
    error_is(ohm_buf_fill(b, SIZE_MAX, 0, 2), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "size 16");
    error_is(ohm_buf_copy(b, 8, b, 0, SIZE_MAX - 3), OHM_ERANGE);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_range_check_says_what_the_accessors_say(void)
{
    CHECK_EQ_INT(ohm_range_check(16, 0, 16), 0);
    CHECK_EQ_INT(ohm_range_check(16, 16, 0), 0);
    CHECK_EQ_INT(ohm_range_check(0, 0, 0), 0);
    error_is(ohm_range_check(16, 12, 8), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 12 + length 8 exceeds buffer size 16");
    error_is(ohm_range_check(16, 17, 0), OHM_ERANGE);
    error_is(ohm_range_check(SIZE_MAX, SIZE_MAX, 1), OHM_ERANGE);
    error_is(ohm_range_check(16, 2, SIZE_MAX - 1), OHM_ERANGE); /* wraps to 0 */
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 2");
    CHECK_STR_CONTAINS(ohm_last_error(), "size 16");
}

static void test_copy_between_overlapping_ranges_of_one_buffer_moves_like_memmove(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 32);
    if (!CHECK_NOT_NULL(b)) return;
    fill_ramp(b);
    unsigned char got[32];
    CHECK_EQ_INT(ohm_buf_copy(b, 4, b, 0, 16), 0); /* forward overlap */
    CHECK_EQ_INT(ohm_buf_read(b, 0, got, 32), 0);
    bool ok = got[3] == 3 && got[20] == 20;
    for (unsigned i = 0; i < 16; i++) ok &= got[4 + i] == i;
    CHECK(ok);
    fill_ramp(b);
    ohm_buf *lo = ohm_buf_slice(b, 0, 20), *hi = ohm_buf_slice(b, 6, 20); /* backward, through two views */
    if (!CHECK_NOT_NULL(lo) || !CHECK_NOT_NULL(hi)) return;
    CHECK_EQ_INT(ohm_buf_copy(lo, 0, hi, 0, 20), 0);
    CHECK_EQ_INT(ohm_buf_read(b, 0, got, 32), 0);
    ok = got[20] == 20;
    for (unsigned i = 0; i < 20; i++) ok &= got[i] == i + 6;
    CHECK(ok);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_every_access_after_release_is_estate(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16), *o = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b) || !CHECK_NOT_NULL(o)) return;
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    char tmp[4];
    void *ptr = NULL;
    error_is(ohm_buf_read(b, 0, tmp, 4), OHM_ESTATE);
    error_is(ohm_buf_write(b, 0, tmp, 4), OHM_ESTATE);
    error_is(ohm_buf_fill(b, 0, 1, 4), OHM_ESTATE);
    error_is(ohm_buf_span(b, 0, 4, &ptr), OHM_ESTATE);
    error_is(ohm_buf_copy(o, 0, b, 0, 4), OHM_ESTATE);
    error_is(ohm_buf_copy(b, 0, o, 0, 4), OHM_ESTATE);
    error_is(ohm_buf_read(b, 100, tmp, 4), OHM_ESTATE); /* liveness is checked before the range */
    error_is(ohm_buf_touch(b, "late"), OHM_ESTATE);
    CHECK_NULL(ptr);
    CHECK_EQ_INT(ohm_buf_release(o, 1), 1);
}

/* ---- ids ---- */

static void test_id_is_nonzero_while_live_and_check_fails_after_release(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    ohm_buf *s = ohm_buf_slice(b, 0, 4);
    if (!CHECK_NOT_NULL(s)) return;
    uint64_t id = ohm_buf_id(b), sid = ohm_buf_id(s);
    CHECK(id != 0 && sid != 0 && id != sid);
    CHECK_EQ_INT(ohm_buf_check(b, id), 0);
    CHECK_EQ_INT(ohm_buf_check(s, sid), 0);
    error_is(ohm_buf_check(b, sid), OHM_ESTATE); /* another buffer's id */
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_U64(ohm_buf_id(b), 0);
    CHECK_EQ_U64(ohm_buf_id(s), 0);
    error_is(ohm_buf_check(b, id), OHM_ESTATE);
    error_is(ohm_buf_check(s, sid), OHM_ESTATE);
}

#define REUSE_N 5000

static void test_check_still_fails_after_the_header_is_reused_by_new_buffers(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    ohm_buf **many = malloc(REUSE_N * sizeof *many);
    if (!CHECK_NOT_NULL(many)) return;
    bool reused = false;
    for (unsigned i = 0; i < REUSE_N; i++) {
        many[i] = ohm_buf_alloc(NULL, 16);
        if (!CHECK_NOT_NULL(many[i])) return;
        reused |= many[i] == b;
    }
    CHECK(reused); /* the test is only meaningful if the old handle now names a live buffer */
    error_is(ohm_buf_check(b, id), OHM_ESTATE);
    CHECK(ohm_buf_id(b) != id);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0); /* a stale id never reclaims the new buffer */
    for (unsigned i = 0; i < REUSE_N; i++) {
        CHECK_EQ_INT(ohm_buf_check(many[i], ohm_buf_id(many[i])), 0);
        CHECK_EQ_INT(ohm_buf_release(many[i], 1), 1);
    }
    free(many);
}

/* ---- the Cleaner protocol ---- */

static void test_reclaim_frees_a_live_unreleased_buffer_once(void)
{
    ohm_pool *pool;
    uint64_t before;
    ohm_buf *b = pool_buf("buf-reclaim", 1000, &pool, &before);
    if (!b) return;
    CHECK_EQ_INT(ohm_buf_retain(b, 2), 0); /* references the host forgot, all of them */
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_U64(fixture_active_blocks(pool), before + 1);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    error_is(ohm_buf_check(b, id), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_reclaim_after_release_or_with_a_stale_id_is_a_noop(void)
{
    ohm_pool *pool = fixture_flag_pool("buf-reclaim-noop", FIXTURE_NO_CACHE);
    if (!pool) return;
    ohm_buf *b = ohm_buf_alloc(pool, 64);
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0);
    ohm_buf *n = ohm_buf_alloc(pool, 64); /* may reuse b's header */
    if (!CHECK_NOT_NULL(n)) return;
    uint64_t before = fixture_active_blocks(pool);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0);
    CHECK_EQ_INT(ohm_buf_reclaim(n, ohm_buf_id(n) + 1), 0);
    CHECK_EQ_INT(ohm_buf_reclaim(n, 0), 0);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    CHECK_EQ_U64(ohm_buf_refcnt(n), 1);
    CHECK_EQ_INT(ohm_buf_release(n, 1), 1);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_reclaim_of_a_plain_slice_drops_only_the_slice_handle(void)
{
    ohm_pool *pool = fixture_flag_pool("buf-reclaim-slice", FIXTURE_NO_CACHE);
    if (!pool) return;
    ohm_buf *p = ohm_buf_alloc(pool, 64);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_buf_retain(p, 1), 0);
    ohm_buf *s = ohm_buf_slice(p, 4, 8), *s2 = ohm_buf_slice(p, 0, 8);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(s2)) return;
    uint64_t sid = ohm_buf_id(s), before = fixture_active_blocks(pool);
    CHECK(ohm_buf_reclaim(s, sid) >= 0);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 2);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    error_is(ohm_buf_check(s, sid), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_write(p, 0, "ok", 2), 0);
    CHECK_EQ_INT(ohm_buf_write(s2, 0, "ok", 2), 0); /* the other view is untouched */
    CHECK_EQ_INT(ohm_buf_reclaim(s, sid), 0);
    CHECK_EQ_INT(ohm_buf_release(p, 2), 1);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_reclaim_of_a_parent_leaves_its_retained_slice_usable_until_the_slice_is_released(void)
{
    ohm_pool *pool;
    uint64_t before;
    ohm_buf *p = pool_buf("buf-reclaim-retained", 64, &pool, &before);
    if (!p) return;
    fill_ramp(p);
    ohm_buf *r = ohm_buf_retained_slice(p, 16, 16);
    if (!CHECK_NOT_NULL(r)) return;
    CHECK_EQ_INT(ohm_buf_reclaim(p, ohm_buf_id(p)), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before + 1); /* the slice's reference keeps the memory */
    unsigned char got;
    CHECK_EQ_INT(ohm_buf_read(r, 0, &got, 1), 0);
    CHECK_EQ_INT(got, 16);
    CHECK_EQ_U64(ohm_buf_refcnt(r), 1);
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

/* The owner's handle is reclaimed while a retained slice keeps it alive; a plain slice of it then takes a
 * reference that nobody releases. When the GC finds that last plain slice too, the reference goes with it: what
 * the retained slice holds stays until the retained slice is released. */
static void test_reclaim_of_the_last_plain_slice_of_a_reclaimed_owner_reclaims_what_it_retained(void)
{
    ohm_pool *pool;
    uint64_t before;
    ohm_buf *p = pool_buf("buf-reclaim-slice-owner", 64, &pool, &before);
    if (!p) return;
    ohm_buf *r = ohm_buf_retained_slice(p, 0, 8), *s1 = ohm_buf_slice(p, 8, 8), *s2 = ohm_buf_duplicate(p);
    if (!CHECK_NOT_NULL(r) || !CHECK_NOT_NULL(s1) || !CHECK_NOT_NULL(s2)) return;
    CHECK_EQ_INT(ohm_buf_release(p, 1), 0);             /* p's own reference is gone: r's remains */
    CHECK_EQ_INT(ohm_buf_reclaim(p, ohm_buf_id(p)), 0); /* nothing to reclaim yet */
    CHECK_EQ_INT(ohm_buf_retain(s1, 2), 0);             /* references taken through the slices and forgotten */
    CHECK_EQ_U64(ohm_buf_refcnt(s1), 3);
    CHECK_EQ_INT(ohm_buf_reclaim(s1, ohm_buf_id(s1)), 0); /* s2 is still reachable: only s1's handle goes */
    CHECK_EQ_U64(ohm_buf_refcnt(s2), 3);
    CHECK_EQ_INT(ohm_buf_reclaim(s2, ohm_buf_id(s2)), 1); /* the last one: the forgotten references go */
    CHECK_EQ_U64(ohm_buf_refcnt(r), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before + 1); /* r still holds the memory */
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

/* A pool's destruction scans every buffer header of the process. Headers other threads are making at that
 * moment (slices of another pool's buffers) must not be taken for the dying pool's: a header becomes live only
 * once its root is set. Found by two Lua states on two threads, one closing while the other made slices. */
static atomic_int churn_stop;

static void *churn_pools(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        ohm_pool *p = fixture_flag_pool("buf-churn", FIXTURE_NO_CACHE);
        if (!p) break;
        for (int i = 0; i < 8; i++) ohm_buf_alloc(p, 64); /* left live: the destruction ends them */
        ohm_pool_destroy(p);
    }
    return NULL;
}

static void test_destroying_a_pool_never_ends_slices_another_thread_is_making(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(b)) return;
    pthread_t t;
    atomic_store(&churn_stop, 0);
    pthread_create(&t, NULL, churn_pools, NULL);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        ohm_buf *s = i & 1 ? ohm_buf_slice(b, 8, 8) : ohm_buf_retained_slice(b, 8, 8);
        if (!s) {
            bad++;
            continue;
        }
        uint64_t id = ohm_buf_id(s);
        bad += id == 0 || ohm_buf_check(s, id) != 0;
        if (i & 1) bad += ohm_buf_reclaim(s, id) != 0;
        else bad += ohm_buf_release(s, 1) != 1;
    }
    atomic_store(&churn_stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_reclaim_of_a_retained_slice_gives_back_its_parent_reference(void)
{
    ohm_buf *p = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(p)) return;
    ohm_buf *r = ohm_buf_retained_slice(p, 0, 8);
    if (!CHECK_NOT_NULL(r)) return;
    CHECK_EQ_U64(ohm_buf_refcnt(p), 2);
    CHECK_EQ_INT(ohm_buf_reclaim(r, ohm_buf_id(r)), 1);
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
}

/* ---- adopted memory ---- */

static struct wrapped {
    unsigned calls;
    void *data;
    size_t size;
} wrapped;

static void count_release(void *arg, void *data, size_t size)
{
    ((struct wrapped *)arg)->calls++;
    ((struct wrapped *)arg)->data = data;
    ((struct wrapped *)arg)->size = size;
}

static void test_wrap_calls_release_exactly_once_at_the_last_release(void)
{
    static char mem[48];
    memset(&wrapped, 0, sizeof wrapped);
    ohm_buf *b = ohm_buf_wrap(mem, sizeof mem, count_release, &wrapped);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_origin_of(b), OHM_ORIGIN_FOREIGN);
    CHECK(ohm_buf_data(b) == mem);
    ohm_buf *s = ohm_buf_slice(b, 8, 8), *r = ohm_buf_retained_slice(b, 0, 8);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(r)) return;
    CHECK_EQ_INT(ohm_buf_write(s, 0, "wrapped!", 8), 0);
    CHECK(memcmp(mem + 8, "wrapped!", 8) == 0);
    CHECK_EQ_INT(ohm_buf_release(s, 1), 0); /* the retained slice still holds one */
    CHECK_EQ_U64(wrapped.calls, 0);
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    CHECK_EQ_U64(wrapped.calls, 1);
    CHECK(wrapped.data == mem && wrapped.size == sizeof mem);
    error_is(ohm_buf_release(b, 1), OHM_ESTATE);
    CHECK_EQ_U64(wrapped.calls, 1);
}

static void test_wrap_reclaim_calls_release_exactly_once(void)
{
    static char mem[16];
    memset(&wrapped, 0, sizeof wrapped);
    ohm_buf *b = ohm_buf_wrap(mem, sizeof mem, count_release, &wrapped);
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 1);
    CHECK_EQ_U64(wrapped.calls, 1);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0);
    error_is(ohm_buf_release(b, 1), OHM_ESTATE);
    CHECK_EQ_U64(wrapped.calls, 1);
}

static void test_wrap_that_fails_never_calls_release(void)
{
    memset(&wrapped, 0, sizeof wrapped);
    CHECK_NULL(ohm_buf_wrap(NULL, 8, count_release, &wrapped));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_EQ_U64(wrapped.calls, 0);
    ohm_buf *empty = ohm_buf_wrap(NULL, 0, count_release, &wrapped); /* nothing to adopt is allowed */
    if (!CHECK_NOT_NULL(empty)) return;
    CHECK_EQ_INT(ohm_buf_release(empty, 1), 1);
    CHECK_EQ_U64(wrapped.calls, 1);
}

/* ---- allocation, pools, faults, seal ---- */

static void test_alloc_of_size_0_gives_a_live_empty_buffer(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 0);
    if (!check_fresh(b, 0)) return;
    CHECK_EQ_INT(ohm_buf_read(b, 0, NULL, 0), 0);
    char x;
    error_is(ohm_buf_read(b, 0, &x, 1), OHM_ERANGE);
    ohm_buf *s = ohm_buf_slice(b, 0, 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_alloc_zeroed_gives_zeroed_bytes_and_huge_sizes_fail(void)
{
    ohm_buf *dirty = ohm_buf_alloc(NULL, 512);
    if (!CHECK_NOT_NULL(dirty)) return;
    CHECK_EQ_INT(ohm_buf_fill(dirty, 0, 0xEE, 512), 0);
    CHECK_EQ_INT(ohm_buf_release(dirty, 1), 1); /* likely reused below */
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, 512);
    if (!CHECK_NOT_NULL(b)) return;
    unsigned char got[512], zero[512] = {0};
    CHECK_EQ_INT(ohm_buf_read(b, 0, got, 512), 0);
    CHECK(memcmp(got, zero, 512) == 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_NULL(ohm_buf_alloc(NULL, SIZE_MAX));
    CHECK(ohm_last_error_code() == OHM_EINVAL || ohm_last_error_code() == OHM_ENOMEM);
}

static void test_destroying_a_pool_with_live_buffers_ends_them_and_only_them(void)
{
    ohm_pool *pool = fixture_flag_pool("buf-destroy", FIXTURE_NO_CACHE);
    if (!pool) return;
    ohm_buf *a = ohm_buf_alloc(pool, 64), *b = ohm_buf_alloc(pool, 100000), *keep = ohm_buf_alloc(NULL, 64);
    if (!CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(b) || !CHECK_NOT_NULL(keep)) return;
    ohm_buf *s = ohm_buf_slice(a, 0, 8), *r = ohm_buf_retained_slice(b, 0, 8);
    ohm_buf *ks = ohm_buf_slice(keep, 0, 8);
    if (!CHECK_NOT_NULL(s) || !CHECK_NOT_NULL(r) || !CHECK_NOT_NULL(ks)) return;
    unsigned warns = warnings.count;
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
    CHECK(warnings.count > warns); /* the live buffers were reported */
    char x;
    ohm_buf *dead[] = {a, b, s, r};
    for (unsigned i = 0; i < 4; i++) {
        error_is(ohm_buf_read(dead[i], 0, &x, 1), OHM_ESTATE);
        error_is(ohm_buf_release(dead[i], 1), OHM_ESTATE);
        error_is(ohm_buf_retain(dead[i], 1), OHM_ESTATE);
        CHECK_EQ_U64(ohm_buf_refcnt(dead[i]), 0);
        CHECK_EQ_U64(ohm_buf_id(dead[i]), 0);
        CHECK_EQ_INT(ohm_buf_reclaim(dead[i], 1), 0);
    }
    CHECK_EQ_INT(ohm_buf_write(ks, 0, "alive", 5), 0); /* another pool's buffer is untouched */
    CHECK_EQ_U64(ohm_buf_refcnt(keep), 1);
    CHECK_EQ_INT(ohm_buf_release(keep, 1), 1);
}

static void test_an_injected_map_failure_fails_alloc_with_enomem_and_makes_nothing(void)
{
    ohm_pool *pool = fixture_flag_pool("buf-fault", FIXTURE_NO_CACHE);
    if (!pool) return;
    uint64_t before = fixture_active_blocks(pool);
    ohm_fault_inject(1, 0.0, 1); /* every map fails: the empty pool cannot get a chunk */
    ohm_buf *b = ohm_buf_alloc(pool, 64);
    int code = ohm_last_error_code();
    ohm_buf *huge = ohm_buf_alloc(pool, 8 * MIB);
    int huge_code = ohm_last_error_code();
    ohm_fault_inject(0, 0.0, 0);
    CHECK_NULL(b);
    CHECK_EQ_INT(code, OHM_ENOMEM);
    CHECK_NULL(huge);
    CHECK_EQ_INT(huge_code, OHM_ENOMEM);
    CHECK_EQ_U64(fixture_active_blocks(pool), before);
    b = ohm_buf_alloc(pool, 64); /* and it recovers */
    if (CHECK_NOT_NULL(b)) CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

/* With maps failing, keep buffers alive until an allocation fails: the header allocator runs out of free headers
 * long before the pool's chunk runs out of 16-byte blocks, so the failure is the header's, after the pool block
 * was taken. That block must go back. */
#define EXHAUST_MAX 400000

static void test_a_failed_header_allocation_gives_the_pool_block_back(void)
{
    ohm_pool *pool = fixture_flag_pool("buf-exhaust", FIXTURE_NO_CACHE);
    if (!pool) return;
    ohm_buf *warm = ohm_buf_alloc(pool, 16); /* maps the chunk */
    if (!CHECK_NOT_NULL(warm)) return;
    ohm_buf **live = malloc(EXHAUST_MAX * sizeof *live);
    if (!CHECK_NOT_NULL(live)) return;
    size_t n = 0;
    ohm_fault_inject(1, 0.0, 1);
    while (n < EXHAUST_MAX && (live[n] = ohm_buf_alloc(pool, 16))) n++;
    int code = ohm_last_error_code();
    char msg[256];
    snprintf(msg, sizeof msg, "%s", ohm_last_error());
    ohm_fault_inject(0, 0.0, 0);
    CHECK(n < EXHAUST_MAX);
    CHECK_EQ_INT(code, OHM_ENOMEM);
    CHECK_STR_CONTAINS(msg, "header");
    CHECK_EQ_U64(fixture_active_blocks(pool), n + 1); /* the live buffers and warm, nothing half made */
    for (size_t i = 0; i < n; i++) CHECK_EQ_INT(ohm_buf_release(live[i], 1), 1);
    CHECK_EQ_INT(ohm_buf_release(warm, 1), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    free(live);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static void test_a_pool_buffer_cannot_be_sealed(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 8192);
    if (!CHECK_NOT_NULL(b)) return;
    error_is(ohm_buf_seal(b, true), OHM_EINVAL);
    CHECK_EQ_INT(ohm_buf_write(b, 0, "still writable", 14), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

/* A consumer thread that only releases (a Netty event loop freeing what another thread allocated) must not take
 * the headers it freed with it when it exits. */
static void *release_only(void *arg) { return (void *)(intptr_t)ohm_buf_release(arg, 1); }

#define FRESH_HEADERS 32 /* two refills of a thread's header cache from the shared free list */

static void *find_header(void *arg)
{
    ohm_buf *held[FRESH_HEADERS];
    bool found = false;
    for (unsigned i = 0; i < FRESH_HEADERS; i++) {
        held[i] = ohm_buf_alloc(NULL, 16);
        found |= held[i] == arg;
    }
    for (unsigned i = 0; i < FRESH_HEADERS; i++)
        if (held[i]) ohm_buf_release(held[i], 1);
    return (void *)(uintptr_t)found;
}

static void test_headers_freed_by_a_thread_that_never_allocated_are_reused_after_it_exits(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    pthread_t t;
    void *rc, *found;
    pthread_create(&t, NULL, release_only, b);
    pthread_join(t, &rc);
    CHECK_EQ_INT((intptr_t)rc, 1);
    pthread_create(&t, NULL, find_header, b); /* a fresh thread's first headers come from the shared list */
    pthread_join(t, &found);
    CHECK((uintptr_t)found);
}

/* ---- the same rules with every buffer tracked ---- */

static void test_paranoid_reclaim_frees_a_live_unreleased_buffer_once(void)
{
    test_reclaim_frees_a_live_unreleased_buffer_once();
}
static void test_paranoid_reclaim_of_a_parent_leaves_its_retained_slice_usable(void)
{
    test_reclaim_of_a_parent_leaves_its_retained_slice_usable_until_the_slice_is_released();
}
static void test_paranoid_destroying_a_pool_with_live_buffers_ends_them(void)
{
    test_destroying_a_pool_with_live_buffers_ends_them_and_only_them();
}
static void test_paranoid_retained_slice_holds_its_parent(void)
{
    test_retained_slice_has_count_1_and_holds_one_parent_reference_until_it_reaches_zero();
}

int main(void)
{
    ohm_set_log_handler(fixture_log_handler, &warnings);
    ohm_leak_set_handler(fixture_ignore_leak, NULL);
    ohm_leak_set_level(OHM_LEAK_OFF);

    RUN(test_new_buffer_has_count_1_and_the_requested_size);
    RUN(test_retain_or_release_of_zero_is_einval_and_changes_nothing);
    RUN(test_release_returns_1_only_on_the_call_that_reaches_zero);
    RUN(test_releasing_more_than_the_count_is_einval_and_keeps_the_count);
    RUN(test_retain_or_release_of_a_released_buffer_is_estate);
    RUN(test_retain_past_int32_max_is_einval_and_keeps_the_count);
    RUN(test_null_handles_are_einval);
    RUN(test_four_threads_releasing_count_1_see_exactly_one_free_and_three_estate);
    RUN(test_concurrent_retain_and_release_keep_the_count_exact);

    RUN(test_slice_and_duplicate_share_the_parent_count_and_bytes);
    RUN(test_releasing_through_a_slice_frees_the_parent_and_ends_every_view);
    RUN(test_slice_of_a_slice_sees_the_parent_bytes_at_the_summed_offset);
    RUN(test_slices_outside_the_buffer_are_erange);
    RUN(test_retained_slice_has_count_1_and_holds_one_parent_reference_until_it_reaches_zero);
    RUN(test_releasing_a_released_retained_slices_parent_is_estate);
    RUN(test_over_releasing_the_root_makes_a_live_retained_slice_read_as_released);
    RUN(test_a_retained_slice_ending_after_its_root_was_over_released_leaves_the_reused_header_alone);
    RUN(test_a_reused_header_does_not_inherit_the_dead_roots_retained_slices);
    RUN(test_threads_making_and_ending_slices_of_one_parent_keep_its_count_exact);

    RUN(test_write_read_fill_and_span_reach_the_right_bytes);
    RUN(test_access_past_the_end_is_erange_naming_offset_length_and_size);
    RUN(test_offset_plus_length_overflowing_size_max_is_erange_naming_offset_length_and_size);
    RUN(test_range_check_says_what_the_accessors_say);
    RUN(test_copy_between_overlapping_ranges_of_one_buffer_moves_like_memmove);
    RUN(test_every_access_after_release_is_estate);

    RUN(test_id_is_nonzero_while_live_and_check_fails_after_release);
    RUN(test_check_still_fails_after_the_header_is_reused_by_new_buffers);

    RUN(test_reclaim_frees_a_live_unreleased_buffer_once);
    RUN(test_reclaim_after_release_or_with_a_stale_id_is_a_noop);
    RUN(test_reclaim_of_a_plain_slice_drops_only_the_slice_handle);
    RUN(test_destroying_a_pool_never_ends_slices_another_thread_is_making);
    RUN(test_reclaim_of_the_last_plain_slice_of_a_reclaimed_owner_reclaims_what_it_retained);
    RUN(test_reclaim_of_a_parent_leaves_its_retained_slice_usable_until_the_slice_is_released);
    RUN(test_reclaim_of_a_retained_slice_gives_back_its_parent_reference);

    RUN(test_wrap_calls_release_exactly_once_at_the_last_release);
    RUN(test_wrap_reclaim_calls_release_exactly_once);
    RUN(test_wrap_that_fails_never_calls_release);

    RUN(test_alloc_of_size_0_gives_a_live_empty_buffer);
    RUN(test_alloc_zeroed_gives_zeroed_bytes_and_huge_sizes_fail);
    RUN(test_destroying_a_pool_with_live_buffers_ends_them_and_only_them);
    RUN(test_an_injected_map_failure_fails_alloc_with_enomem_and_makes_nothing);
    RUN(test_a_failed_header_allocation_gives_the_pool_block_back);
    RUN(test_a_pool_buffer_cannot_be_sealed);
    RUN(test_headers_freed_by_a_thread_that_never_allocated_are_reused_after_it_exits);

    ohm_leak_set_level(OHM_LEAK_PARANOID);
    RUN(test_paranoid_reclaim_frees_a_live_unreleased_buffer_once);
    RUN(test_paranoid_reclaim_of_a_parent_leaves_its_retained_slice_usable);
    RUN(test_paranoid_destroying_a_pool_with_live_buffers_ends_them);
    RUN(test_paranoid_retained_slice_holds_its_parent);
    ohm_leak_set_level(OHM_LEAK_OFF);
    return check_summary();
}
