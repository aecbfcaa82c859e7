/* Parked buffers (ohm.h): a host's magazine lends and parks pool roots by changing their state word itself. A
 * parked buffer is released to every ohm call, a reclaim leaves it alone, a pool destruction ends it without a
 * leak, ohm_buf_free_parked ends only the exact parked word, and ohm_buf_track gives a lent buffer a record. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <stdatomic.h>
#include <string.h>

static atomic_uint leaks;

static void count_leak(void *arg, const ohm_leak_report *report)
{
    (void)arg;
    (void)report;
    atomic_fetch_add(&leaks, 1);
}

static ohm_buf_layout layout(void)
{
    ohm_buf_layout l;
    ohm_buf_parked_layout(&l);
    return l;
}

static _Atomic uint64_t *word(const ohm_buf_parked *p) { return (_Atomic uint64_t *)((char *)p->buf + layout().state); }

/* The host's lend: the next generation and the size, then (g + 2, 1) over (g, 0). Updates p->id. */
static void lend(ohm_buf_parked *p, size_t size)
{
    ohm_buf_layout l = layout();
    uint32_t gen = (uint32_t)(atomic_load(word(p)) >> 32) + 2;
    memcpy((char *)p->buf + l.size, &size, sizeof size);
    memcpy((char *)p->buf + l.gen1, &gen, sizeof gen);
    memcpy((char *)p->buf + l.gen2, &gen, sizeof gen);
    atomic_store_explicit(word(p), (uint64_t)gen << 32 | 1, memory_order_release);
    p->id = (uint64_t)gen << 32 | (uint32_t)p->id;
}

/* The host's last release, parking it again: (g, 1) -> (g, 0). */
static bool park(const ohm_buf_parked *p)
{
    uint64_t st = (p->id >> 32) << 32 | 1;
    return atomic_compare_exchange_strong(word(p), &st, (p->id >> 32) << 32);
}

static void test_a_parked_buffer_is_released_to_every_call(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-released", FIXTURE_NO_CACHE);
    ohm_buf_parked p[4];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 100, p, 4), 4)) return;
    CHECK_EQ_U64(fixture_active_blocks(pool), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_NOT_NULL(p[i].data);
        CHECK((p[i].id >> 32) & 1);
        CHECK_EQ_INT(ohm_buf_check(p[i].buf, p[i].id), OHM_ESTATE);
        CHECK_EQ_U64(ohm_buf_refcnt(p[i].buf), 0);
        CHECK(ohm_buf_data(p[i].buf) == NULL);
        CHECK_EQ_INT(ohm_buf_retain(p[i].buf, 1), OHM_ESTATE);
        CHECK_EQ_INT(ohm_buf_release(p[i].buf, 1), OHM_ESTATE);
        CHECK(ohm_buf_slice(p[i].buf, 0, 1) == NULL);
        CHECK_EQ_INT(ohm_buf_reclaim(p[i].buf, p[i].id), 0);
        CHECK_EQ_INT(ohm_buf_track(p[i].buf), OHM_ESTATE);
    }
    CHECK_EQ_U64(fixture_active_blocks(pool), 4);
    CHECK_EQ_U64(ohm_buf_free_parked(p, 4), 4);
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    ohm_pool_destroy(pool);
}

static void test_a_lent_buffer_is_live_and_parks_again_or_ends_by_release(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-lend", FIXTURE_NO_CACHE);
    ohm_buf_parked p[2];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 2), 2)) return;
    lend(&p[0], 40);
    CHECK_EQ_INT(ohm_buf_check(p[0].buf, p[0].id), OHM_OK);
    CHECK_EQ_U64(ohm_buf_refcnt(p[0].buf), 1);
    CHECK_EQ_U64(ohm_buf_size(p[0].buf), 40);
    CHECK(ohm_buf_data(p[0].buf) == p[0].data);
    CHECK_EQ_INT(ohm_buf_write(p[0].buf, 0, "parked", 6), OHM_OK);
    CHECK_EQ_INT(ohm_buf_retain(p[0].buf, 2), OHM_OK);
    CHECK_EQ_INT(ohm_buf_release(p[0].buf, 2), 0);
    CHECK(park(&p[0]));
    CHECK_EQ_INT(ohm_buf_check(p[0].buf, p[0].id), OHM_ESTATE);
    /* lent again: a new generation, the same memory; the first lend's id is stale for good */
    uint64_t first = p[0].id;
    lend(&p[0], 64);
    CHECK_EQ_U64(ohm_buf_id(p[0].buf), p[0].id);
    CHECK(first != p[0].id);
    CHECK_EQ_INT(ohm_buf_check(p[0].buf, first), OHM_ESTATE);
    CHECK_EQ_U64(ohm_buf_refcnt(p[0].buf), 1);
    CHECK_EQ_INT(ohm_buf_retain(p[0].buf, 1), OHM_OK);
    CHECK_EQ_INT(ohm_buf_release(p[0].buf, 1), 0);
    CHECK_EQ_U64(ohm_buf_size(p[0].buf), 64);
    CHECK(park(&p[0]));
    /* a lent buffer's last release may also be the runtime's: it ends for good */
    lend(&p[1], 64);
    CHECK_EQ_INT(ohm_buf_release(p[1].buf, 1), 1);
    CHECK_EQ_U64(ohm_buf_id(p[1].buf), 0);
    CHECK_EQ_U64(fixture_active_blocks(pool), 1);
    CHECK_EQ_U64(ohm_buf_free_parked(p, 1), 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    ohm_pool_destroy(pool);
}

static void test_free_parked_refuses_a_lent_or_stale_word(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-stale", FIXTURE_NO_CACHE);
    ohm_buf_parked p[2];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 2), 2)) return;
    lend(&p[0], 64);
    CHECK_EQ_U64(ohm_buf_free_parked(&p[0], 1), 0); /* lent: not the holder's to end */
    CHECK_EQ_U64(ohm_buf_refcnt(p[0].buf), 1);
    CHECK_EQ_INT(ohm_buf_release(p[0].buf, 1), 1);
    CHECK_EQ_U64(ohm_buf_free_parked(&p[0], 1), 0); /* ended: its header may be another buffer */
    ohm_buf *other = ohm_buf_alloc(pool, 64);       /* likely the same header, a new generation */
    CHECK_EQ_U64(ohm_buf_free_parked(&p[0], 1), 0);
    CHECK_EQ_U64(ohm_buf_refcnt(other), 1);
    ohm_buf_release(other, 1);
    CHECK_EQ_U64(ohm_buf_free_parked(&p[1], 1), 1);
    CHECK_EQ_U64(ohm_buf_free_parked(&p[1], 1), 0); /* twice */
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    ohm_pool_destroy(pool);
}

static void test_destroying_a_pool_ends_parked_buffers_without_a_leak(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-destroy", FIXTURE_NO_CACHE);
    ohm_buf_parked p[8];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 256, p, 8), 8)) return;
    lend(&p[0], 256);
    CHECK(park(&p[0]));
    unsigned before = atomic_load(&leaks);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    CHECK_EQ_U64(atomic_load(&leaks), before);
    for (int i = 0; i < 8; i++) CHECK_EQ_U64(ohm_buf_id(p[i].buf), 0);
    CHECK_EQ_U64(ohm_buf_free_parked(p, 8), 0);
}

static void test_pools_that_act_at_each_allocation_make_no_parked_buffers(void)
{
    ohm_buf_parked p[1];
    ohm_pool_config cfg = fixture_config("parked-poison");
    cfg.poison = true;
    ohm_pool *pool = fixture_pool(&cfg);
    CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 1), 0);
    ohm_pool_destroy(pool);
    cfg = fixture_config("parked-zero");
    cfg.zero = true;
    pool = fixture_pool(&cfg);
    CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 1), 0);
    ohm_pool_destroy(pool);
    pool = fixture_flag_pool("parked-guard", FIXTURE_NO_CACHE);
    ohm_buf_set_guard(4096);
    CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 8192, p, 1), 0);
    CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 1), 1);
    ohm_buf_set_guard(0);
    CHECK_EQ_U64(ohm_buf_free_parked(p, 1), 1);
    ohm_pool_destroy(pool);
}

static void test_track_gives_a_lent_buffer_a_record_closed_by_its_release(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-track", FIXTURE_NO_CACHE);
    ohm_buf_parked p[1];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 1), 1)) return;
    lend(&p[0], 64);
    uint64_t mark = ohm_leak_mark();
    CHECK(!ohm_buf_tracked(p[0].buf));
    CHECK_EQ_INT(ohm_buf_track(p[0].buf), OHM_OK); /* level OFF: tracked all the same */
    CHECK(ohm_buf_tracked(p[0].buf));
    ohm_buf *s = ohm_buf_slice(p[0].buf, 0, 8);
    CHECK_EQ_INT(ohm_buf_track(s), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_check(mark, NULL, NULL), 1);
    CHECK_EQ_INT(ohm_buf_release(p[0].buf, 1), 1);
    CHECK_EQ_INT(ohm_leak_check(mark, NULL, NULL), 0);
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    ohm_pool_destroy(pool);
}

static void test_a_tracked_lent_buffer_that_leaks_is_reclaimed_and_reported(void)
{
    ohm_pool *pool = fixture_flag_pool("parked-leak", FIXTURE_NO_CACHE);
    ohm_buf_parked p[1];
    if (!CHECK_EQ_U64(ohm_buf_alloc_parked(pool, 64, p, 1), 1)) return;
    lend(&p[0], 64);
    CHECK_EQ_INT(ohm_buf_track(p[0].buf), OHM_OK);
    unsigned before = atomic_load(&leaks);
    CHECK_EQ_INT(ohm_buf_reclaim(p[0].buf, p[0].id), 1);
    CHECK_EQ_U64(atomic_load(&leaks), before + 1);
    CHECK_EQ_U64(fixture_active_blocks(pool), 0);
    ohm_pool_destroy(pool);
}

int main(void)
{
    ohm_set_log_handler(fixture_ignore_log, NULL);
    ohm_leak_set_handler(count_leak, NULL);
    ohm_leak_set_level(OHM_LEAK_OFF);
    RUN(test_a_parked_buffer_is_released_to_every_call);
    RUN(test_a_lent_buffer_is_live_and_parks_again_or_ends_by_release);
    RUN(test_free_parked_refuses_a_lent_or_stale_word);
    RUN(test_destroying_a_pool_ends_parked_buffers_without_a_leak);
    RUN(test_pools_that_act_at_each_allocation_make_no_parked_buffers);
    RUN(test_track_gives_a_lent_buffer_a_record_closed_by_its_release);
    RUN(test_a_tracked_lent_buffer_that_leaks_is_reclaimed_and_reported);
    return check_summary();
}
