/* The memory manager: Spark's rules with numbers small enough to check by hand (max 1000 bytes, storage
 * fraction 0.5 unless a test says otherwise), fair shares with real threads, spilling, pages and the block
 * cache. Threads meet at barriers or wait for a state the manager reports (a task's `waiting` flag); no test
 * sleeps to synchronize. */
#include "../check.h"
#include "fixture.h"

#include "ohm.h"

#include <pthread.h>
#include <sched.h>

/* ---- helpers ---- */

static fixture_log logged = FIXTURE_LOG(OHM_LOG_DEBUG);

static ohm_mm *make_mm(uint64_t on_heap, uint64_t off_heap, double storage_fraction)
{
    /* every field set here: no OHM_MM_* variable of the environment reaches these tests */
    ohm_mm_config cfg = {.max_bytes = {[OHM_ON_HEAP] = on_heap, [OHM_OFF_HEAP] = off_heap},
                         .storage_fraction = storage_fraction,
                         .page_size = 4096,
                         .wait_timeout_ms = UINT64_MAX,
                         .pool = NULL};
    ohm_mm *mm = ohm_mm_create(&cfg);
    CHECK_NOT_NULL(mm);
    return mm;
}

/* Ends the task (and t2, if given), each reporting the bytes it still held, then the manager, which must go. */
static void end_tasks_and_mm(ohm_mm *mm, ohm_task *t, int64_t held, ohm_task *t2, int64_t held2)
{
    CHECK_EQ_INT(ohm_task_end(t), held);
    if (t2) CHECK_EQ_INT(ohm_task_end(t2), held2);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

/* Pools of one mode, and execution + storage == max. */
#define CHECK_POOLS(mm, md, ep, eu, sp, su)                           \
    do {                                                              \
        ohm_mm_stats st_;                                             \
        CHECK_EQ_INT(ohm_mm_stats_get((mm), &st_), 0);                \
        const ohm_mm_mode_stats *m_ = &st_.mode[(md)];                \
        CHECK_EQ_U64(m_->execution_pool, (ep));                       \
        CHECK_EQ_U64(m_->execution_used, (eu));                       \
        CHECK_EQ_U64(m_->storage_pool, (sp));                         \
        CHECK_EQ_U64(m_->storage_used, (su));                         \
        CHECK_EQ_U64(m_->execution_pool + m_->storage_pool, m_->max); \
    } while (0)

static ohm_consumer_stats consumer_stats(ohm_consumer *c)
{
    ohm_consumer_stats cs;
    CHECK_EQ_INT(ohm_consumer_stats_get(c, &cs), 0);
    return cs;
}

static uint64_t task_used(ohm_task *t, ohm_mem_mode mode)
{
    ohm_task_stats ts;
    CHECK_EQ_INT(ohm_task_stats_get(t, &ts), 0);
    return ts.used[mode];
}

/* Spins (yielding) until the task is in a wait: a state the manager reports, not a guess about time. */
static void await_waiting(ohm_task *t)
{
    ohm_task_stats ts;
    for (;;) {
        ohm_task_stats_get(t, &ts);
        if (ts.waiting) return;
        sched_yield();
    }
}

/* A record of eviction callbacks. */
typedef struct evict_log {
    char order[256];
    int fail; /* returned instead of 0 when nonzero */
    int calls;
} evict_log;

static int on_evict(void *arg, const char *block_id, ohm_buf *buf)
{
    (void)buf;
    evict_log *e = arg;
    e->calls++;
    if (e->fail) return e->fail;
    strncat(e->order, block_id, sizeof e->order - strlen(e->order) - 2);
    strcat(e->order, " ");
    return 0;
}

/* ---- the manager's rules ---- */

static void test_pools_start_at_the_storage_region(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.25);
    ohm_mm_stats st;
    CHECK_EQ_INT(ohm_mm_stats_get(mm, &st), 0);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].max, 1000);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].storage_region, 250);
    CHECK_POOLS(mm, OHM_ON_HEAP, 750, 0, 250, 0);
    CHECK_POOLS(mm, OHM_OFF_HEAP, 0, 0, 0, 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_sizing_helper_follows_spark(void)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    /* (1 GiB - 300 MiB) * 0.6 = 759169024 * 0.6 = 455501414.4 -> 455501414 */
    CHECK_EQ_INT(ohm_mm_config_from_heap(&cfg, (uint64_t)1 << 30, 0), 0);
    CHECK_EQ_U64(cfg.max_bytes[OHM_ON_HEAP], 455501414);
    CHECK_EQ_INT(ohm_mm_config_from_heap(&cfg, (uint64_t)1 << 30, 0.5), 0);
    CHECK_EQ_U64(cfg.max_bytes[OHM_ON_HEAP], 379584512);
    CHECK_EQ_INT(ohm_mm_config_from_heap(&cfg, 471859200, 0), 0); /* exactly 1.5 x 300 MiB is enough */
    cfg.max_bytes[OHM_ON_HEAP] = 7;
    CHECK_EQ_INT(ohm_mm_config_from_heap(&cfg, 471859199, 0), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "System memory 471859199 must be at least 471859200. Please increase heap "
                                         "size using the --driver-memory option or spark.driver.memory");
    CHECK_EQ_U64(cfg.max_bytes[OHM_ON_HEAP], 7); /* unchanged */
}

static void test_execution_borrows_free_storage(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 1);
    /* free execution 500 < 800: 300 more come from free storage */
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 800), 800);
    CHECK_POOLS(mm, OHM_ON_HEAP, 800, 800, 200, 0);
    /* storage may only take max - execution.used = 200 */
    CHECK_EQ_INT(ohm_block_put(mm, "big", NULL, OHM_ON_HEAP, NULL, 300, NULL, NULL), OHM_ELIMIT);
    CHECK_EQ_INT(ohm_block_put(mm, "b", NULL, OHM_ON_HEAP, NULL, 150, NULL, NULL), 0);
    CHECK_POOLS(mm, OHM_ON_HEAP, 800, 800, 200, 150);
    CHECK_EQ_INT(ohm_task_release(t, OHM_ON_HEAP, 800), 800);
    end_tasks_and_mm(mm, t, 0, NULL, 0);
}

static void test_storage_borrows_free_execution(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    /* free storage 500 < 700: borrow min(500 free execution, 200) */
    CHECK_EQ_INT(ohm_block_put(mm, "a", "g", OHM_ON_HEAP, NULL, 700, NULL, NULL), 0);
    CHECK_POOLS(mm, OHM_ON_HEAP, 300, 0, 700, 700);
    /* 400 more: borrow all 300 free execution, still 100 short, and nothing else may be evicted (same group) */
    CHECK_EQ_INT(ohm_block_put(mm, "b", "g", OHM_ON_HEAP, NULL, 400, NULL, NULL), OHM_ELIMIT);
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 700); /* Spark keeps the borrowed bytes in storage */
    CHECK_EQ_INT(ohm_block_remove(mm, "a"), 0);
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 0);
    /* execution takes all of the free storage back */
    ohm_task *t = ohm_task_create(mm, 1);
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 1000), 1000);
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    end_tasks_and_mm(mm, t, 1000, NULL, 0);
}

static void test_execution_evicts_storage_down_to_the_region(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    evict_log e = {0};
    CHECK_EQ_INT(ohm_block_put(mm, "A", "g1", OHM_ON_HEAP, NULL, 200, on_evict, &e), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "B", "g2", OHM_ON_HEAP, NULL, 500, on_evict, &e), 0); /* borrows 200 */
    CHECK_POOLS(mm, OHM_ON_HEAP, 300, 0, 700, 700);
    ohm_task *t = ohm_task_create(mm, 1);
    /* needs 200 more than free execution; reclaimable = max(0 free, 700 - 500) = 200: evict A (LRU), 200 */
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 500), 500);
    CHECK(!strcmp(e.order, "A "));
    CHECK_POOLS(mm, OHM_ON_HEAP, 500, 500, 500, 500);
    /* storage is at its region: B is safe, and the task gets 0 (it holds 500 >= min share 250) */
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 100), 0);
    CHECK(!strcmp(e.order, "A "));
    CHECK_POOLS(mm, OHM_ON_HEAP, 500, 500, 500, 500);
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.evictions, 1);
    CHECK_EQ_U64(st.evicted_bytes, 200);
    CHECK_EQ_U64(st.blocks, 1);
    ohm_task_stats ts;
    ohm_task_stats_get(t, &ts);
    CHECK_EQ_U64(ts.evictions, 1);
    CHECK_EQ_INT(ohm_task_release(t, OHM_ON_HEAP, 500), 500);
    end_tasks_and_mm(mm, t, 0, NULL, 0);
}

static void test_storage_never_evicts_execution(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 1);
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 900), 900);
    CHECK_POOLS(mm, OHM_ON_HEAP, 900, 900, 100, 0);
    CHECK_EQ_INT(ohm_block_put(mm, "x", "g", OHM_ON_HEAP, NULL, 200, NULL, NULL), OHM_ELIMIT);
    CHECK_EQ_INT(ohm_block_put(mm, "x", "g", OHM_ON_HEAP, NULL, 100, NULL, NULL), 0);
    /* 50 more: free execution is 0 and x is of the same group: no */
    CHECK_EQ_INT(ohm_block_put(mm, "y", "g", OHM_ON_HEAP, NULL, 50, NULL, NULL), OHM_ELIMIT);
    CHECK_EQ_INT(ohm_task_acquire_unroll(t, OHM_ON_HEAP, "g", 50), OHM_ELIMIT);
    CHECK_POOLS(mm, OHM_ON_HEAP, 900, 900, 100, 100);
    CHECK_EQ_U64(task_used(t, OHM_ON_HEAP), 900);
    end_tasks_and_mm(mm, t, 900, NULL, 0);
}

static void test_unroll_memory_follows_storage_rules(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    evict_log e = {0};
    ohm_task *t = ohm_task_create(mm, 3);
    CHECK_EQ_INT(ohm_block_put(mm, "old", "g1", OHM_ON_HEAP, NULL, 400, on_evict, &e), 0);
    /* 700 > 100 free: borrow min(500 free execution, 600) -> storage 1000, 600 free: evict "old" (400) */
    CHECK_EQ_INT(ohm_task_acquire_unroll(t, OHM_ON_HEAP, "g2", 700), 0);
    CHECK(!strcmp(e.order, "old "));
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 700);
    ohm_task_stats ts;
    ohm_task_stats_get(t, &ts);
    CHECK_EQ_U64(ts.unroll[OHM_ON_HEAP], 700);
    CHECK_EQ_INT(ohm_task_release_unroll(t, OHM_ON_HEAP, 200), 200);
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 500);
    CHECK_EQ_INT(ohm_task_end(t), 0); /* unroll memory goes back with the task, not as a leak */
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_release_more_than_held_releases_what_is_held(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 9);
    fixture_log_reset(&logged);
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 100), 100);
    CHECK_EQ_INT(ohm_task_release(t, OHM_ON_HEAP, 300), 100);
    CHECK(fixture_log_has(&logged, "released 300 bytes of execution memory but held only 100"));
    CHECK_POOLS(mm, OHM_ON_HEAP, 500, 0, 500, 0);
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].tasks, 0); /* a task at 0 leaves the fair share */
    CHECK_EQ_INT(ohm_task_end(t), 0);
    CHECK_EQ_INT(ohm_task_acquire(NULL, OHM_ON_HEAP, 1), OHM_EINVAL);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

/* ---- fair shares with threads ---- */

typedef struct share_arg {
    ohm_task *task;
    pthread_barrier_t *barrier;
    int64_t first, second;
} share_arg;

static void *share_thread(void *p)
{
    share_arg *a = p;
    a->first = ohm_task_acquire(a->task, OHM_ON_HEAP, 100); /* joins the fair share */
    pthread_barrier_wait(a->barrier);
    a->second = ohm_task_acquire(a->task, OHM_ON_HEAP, 1000);
    return NULL;
}

/* N tasks each take 100, meet, then each asks 1000: each gets 1000/N - 100, whatever the order. */
static void fair_share(unsigned n)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, n);
    share_arg args[4];
    pthread_t th[4];
    for (unsigned i = 0; i < n; i++) {
        args[i] = (share_arg){ohm_task_create(mm, 100 + i), &barrier, 0, 0};
        pthread_create(&th[i], NULL, share_thread, &args[i]);
    }
    for (unsigned i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (unsigned i = 0; i < n; i++) {
        CHECK_EQ_INT(args[i].first, 100);
        CHECK_EQ_INT(args[i].second, 1000 / n - 100);
        CHECK_EQ_U64(task_used(args[i].task, OHM_ON_HEAP), 1000 / n);
    }
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    for (unsigned i = 0; i < n; i++) CHECK_EQ_INT(ohm_task_end(args[i].task), 1000 / n);
    pthread_barrier_destroy(&barrier);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_fair_share_between_two_tasks(void) { fair_share(2); }
static void test_fair_share_among_four_tasks(void) { fair_share(4); }

/* An acquire of n on a thread of its own: by the consumer c when set, otherwise by the task (ON_HEAP). */
typedef struct acquire_arg {
    ohm_task *task;
    ohm_consumer *c;
    uint64_t n;
    int64_t got;
} acquire_arg;

static void *acquire_thread(void *p)
{
    acquire_arg *a = p;
    a->got = a->c ? ohm_consumer_acquire(a->c, a->n) : ohm_task_acquire(a->task, OHM_ON_HEAP, a->n);
    return NULL;
}

/* In a manager of 1000 bytes, task 1 holds all of them; task 2 asks 300 on a thread of its own (a) and waits
 * (N = 2, min share 1000 / 4 = 250, nothing free). */
typedef struct waiter {
    ohm_mm *mm;
    ohm_task *t1, *t2;
    acquire_arg a;
    pthread_t th;
} waiter;

static void start_waiter(waiter *w)
{
    w->mm = make_mm(1000, 0, 0.5);
    w->t1 = ohm_task_create(w->mm, 1);
    w->t2 = ohm_task_create(w->mm, 2);
    CHECK_EQ_INT(ohm_task_acquire(w->t1, OHM_ON_HEAP, 1000), 1000);
    w->a = (acquire_arg){.task = w->t2, .n = 300};
    pthread_create(&w->th, NULL, acquire_thread, &w->a);
    await_waiting(w->t2);
}

static void test_waiting_task_woken_by_release(void)
{
    waiter w;
    start_waiter(&w);
    CHECK_EQ_INT(ohm_task_release(w.t1, OHM_ON_HEAP, 600), 600);
    pthread_join(w.th, NULL);
    CHECK_EQ_INT(w.a.got, 300);
    CHECK_POOLS(w.mm, OHM_ON_HEAP, 1000, 700, 0, 0);
    ohm_task_stats ts;
    ohm_task_stats_get(w.t2, &ts);
    CHECK(ts.waits >= 1);
    CHECK(ts.wait_ns > 0);
    CHECK(!ts.waiting);
    end_tasks_and_mm(w.mm, w.t1, 400, w.t2, 300);
}

static void test_waiting_task_woken_by_task_end(void)
{
    waiter w;
    start_waiter(&w);
    fixture_log_reset(&logged);
    CHECK_EQ_INT(ohm_task_end(w.t1), 1000);
    CHECK(fixture_log_has(&logged, "memory leak detected in task 1: 1000 bytes"));
    pthread_join(w.th, NULL);
    CHECK_EQ_INT(w.a.got, 300); /* alone again: up to 1000 */
    end_tasks_and_mm(w.mm, w.t2, 300, NULL, 0);
}

static void test_wait_times_out(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t1 = ohm_task_create(mm, 1), *t2 = ohm_task_create(mm, 2);
    CHECK_EQ_INT(ohm_task_acquire(t1, OHM_ON_HEAP, 1000), 1000);
    ohm_task_set_wait_timeout(t2, 30);
    CHECK_EQ_INT(ohm_task_acquire(t2, OHM_ON_HEAP, 300), OHM_ETIMEDOUT);
    CHECK_STR_CONTAINS(ohm_last_error(), "no memory after waiting 30 ms");
    ohm_task_stats ts;
    ohm_task_stats_get(t2, &ts);
    CHECK_EQ_U64(ts.used[OHM_ON_HEAP], 0);
    CHECK(ts.waits >= 1);
    CHECK(ts.wait_ns >= 20u * 1000 * 1000);
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    end_tasks_and_mm(mm, t1, 1000, t2, 0);
}

static void test_wait_is_cancelled(void)
{
    waiter w;
    start_waiter(&w);
    CHECK_EQ_INT(ohm_mm_cancel_task(w.mm, 2), 0);
    pthread_join(w.th, NULL);
    CHECK_EQ_INT(w.a.got, OHM_ECANCELED);
    CHECK_EQ_INT(ohm_mm_cancel_task(w.mm, 77), OHM_EINVAL);
    /* the cancel was consumed: with memory free, the next acquire succeeds */
    CHECK_EQ_INT(ohm_task_release(w.t1, OHM_ON_HEAP, 1000), 1000);
    CHECK_EQ_INT(ohm_task_acquire(w.t2, OHM_ON_HEAP, 300), 300);
    CHECK_POOLS(w.mm, OHM_ON_HEAP, 1000, 300, 0, 0);
    end_tasks_and_mm(w.mm, w.t1, 0, w.t2, 300);
}

/* ---- consumers and spilling ---- */

typedef struct spiller {
    ohm_consumer *self;
    char *order; /* shared: names appended in the order asked */
    const char *name;
    int64_t result; /* 0 = release all and report it; otherwise returned as is */
    ohm_consumer *trigger;
    ohm_buf *page; /* released by the spill, if set */
} spiller;

static int64_t on_spill(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)size;
    spiller *s = arg;
    strcat(s->order, s->name);
    strcat(s->order, " ");
    s->trigger = trigger;
    if (s->result) return s->result;
    if (s->page) { /* frees a page from inside the callback: its free function takes the manager's lock */
        uint64_t before = ohm_consumer_used(s->self);
        ohm_buf_release(s->page, 1);
        s->page = NULL;
        return (int64_t)(before - ohm_consumer_used(s->self));
    }
    return ohm_consumer_release(s->self, ohm_consumer_used(s->self)); /* re-enters the manager */
}

static ohm_consumer *make_consumer(ohm_task *t, ohm_mem_mode mode, spiller *s, const char *name, char *order,
                                   uint64_t use)
{
    *s = (spiller){NULL, order, name, 0, NULL, NULL};
    s->self = ohm_consumer_create(t, mode, name, on_spill, s);
    CHECK_NOT_NULL(s->self);
    if (use) CHECK_EQ_INT(ohm_consumer_acquire(s->self, use), use);
    return s->self;
}

/* In a manager of 1000 bytes, task 1's consumers A, B and C hold 100, 300 and 400; R holds nothing. */
typedef struct abcr {
    ohm_mm *mm;
    ohm_task *t;
    char order[128];
    spiller a, b, c, r;
} abcr;

static void make_abcr(abcr *x)
{
    x->mm = make_mm(1000, 0, 0.5);
    x->t = ohm_task_create(x->mm, 1);
    x->order[0] = '\0';
    make_consumer(x->t, OHM_ON_HEAP, &x->a, "A", x->order, 100);
    make_consumer(x->t, OHM_ON_HEAP, &x->b, "B", x->order, 300);
    make_consumer(x->t, OHM_ON_HEAP, &x->c, "C", x->order, 400);
    make_consumer(x->t, OHM_ON_HEAP, &x->r, "R", x->order, 0);
}

static void test_spill_picks_smallest_sufficient_consumer(void)
{
    abcr x;
    make_abcr(&x);
    /* 800 used; R asks 500, gets the last 200; missing 300: B (300) covers it, C (400) is not needed */
    CHECK_EQ_INT(ohm_consumer_acquire(x.r.self, 500), 500);
    CHECK(!strcmp(x.order, "B "));
    CHECK(x.b.trigger == x.r.self);
    CHECK_EQ_U64(ohm_consumer_used(x.a.self), 100);
    CHECK_EQ_U64(ohm_consumer_used(x.b.self), 0);
    CHECK_EQ_U64(ohm_consumer_used(x.c.self), 400);
    CHECK_EQ_U64(ohm_consumer_used(x.r.self), 500);
    ohm_consumer_stats cs = consumer_stats(x.b.self);
    CHECK_EQ_U64(cs.spills, 1);
    CHECK_EQ_U64(cs.spill_bytes, 300);
    CHECK_EQ_U64(cs.peak, 300);
    CHECK_POOLS(x.mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    end_tasks_and_mm(x.mm, x.t, 1000, NULL, 0);
}

static void test_spill_falls_back_to_largest_consumer(void)
{
    abcr x;
    make_abcr(&x);
    /* R asks 700: gets 200, missing 500: nobody has 500, so C (largest); then missing 100: A (100) */
    CHECK_EQ_INT(ohm_consumer_acquire(x.r.self, 700), 700);
    CHECK(!strcmp(x.order, "C A "));
    CHECK_EQ_U64(ohm_consumer_used(x.b.self), 300);
    ohm_task_stats ts;
    ohm_task_stats_get(x.t, &ts);
    CHECK_EQ_U64(ts.spills, 2);
    CHECK_EQ_U64(ts.spill_bytes, 500);
    end_tasks_and_mm(x.mm, x.t, 1000, NULL, 0);
}

static int64_t spill_nothing(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)size;
    (void)trigger;
    spiller *s = arg;
    strcat(s->order, s->name);
    strcat(s->order, " ");
    return 0;
}

static void test_spill_skips_consumer_that_releases_nothing_then_self(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 1);
    char order[128] = "";
    ohm_consumer *x = ohm_consumer_create(t, OHM_ON_HEAP, "X", NULL, NULL); /* no spill: never asked */
    CHECK_EQ_INT(ohm_consumer_acquire(x, 700), 700);
    spiller a = {NULL, order, "A", 0, NULL, NULL};
    a.self = ohm_consumer_create(t, OHM_ON_HEAP, "A", spill_nothing, &a);
    CHECK_EQ_INT(ohm_consumer_acquire(a.self, 100), 100);
    spiller r, off;
    make_consumer(t, OHM_ON_HEAP, &r, "R", order, 200);
    make_consumer(t, OHM_OFF_HEAP, &off, "OFF", order, 0); /* another mode: never asked */
    /* R asks 300: 0 free; A (largest, and only, candidate) releases nothing and is dropped; R spills itself
     * (releasing its 200) and gets those 200 */
    CHECK_EQ_INT(ohm_consumer_acquire(r.self, 300), 200);
    CHECK(!strcmp(order, "A R "));
    CHECK(r.trigger == r.self);
    CHECK_EQ_U64(ohm_consumer_used(r.self), 200);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 100);
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    CHECK_EQ_INT(ohm_consumer_destroy(x), 0);
    CHECK_EQ_INT(ohm_consumer_destroy(off.self), 0);
    end_tasks_and_mm(mm, t, 300, NULL, 0);
}

static void test_failing_spill_leaves_accounting_exact(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 1);
    char order[128] = "";
    ohm_consumer *x = ohm_consumer_create(t, OHM_ON_HEAP, "X", NULL, NULL);
    CHECK_EQ_INT(ohm_consumer_acquire(x, 600), 600);
    spiller a, r;
    make_consumer(t, OHM_ON_HEAP, &a, "A", order, 300);
    a.result = OHM_ESYS;
    make_consumer(t, OHM_ON_HEAP, &r, "R", order, 0);
    /* R asks 500: gets 100 first, then A's spill fails: the 100 go back */
    CHECK_EQ_INT(ohm_consumer_acquire(r.self, 500), OHM_ESYS);
    CHECK_STR_CONTAINS(ohm_last_error(), "spill of consumer A failed");
    CHECK(!strcmp(order, "A "));
    CHECK_EQ_U64(ohm_consumer_used(r.self), 0);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 300);
    CHECK_EQ_U64(task_used(t, OHM_ON_HEAP), 900);
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 900, 0, 0);
    a.result = 7; /* a positive "released" that is not an error */
    end_tasks_and_mm(mm, t, 900, NULL, 0);
}

/* A spill that misbehaves on purpose: each call releases `release` bytes (at most what it holds), and, when
 * `take_back` is set, acquires them again for itself, then returns `report`. Past `max_calls` it returns
 * OHM_ESYS, so that a runtime which kept asking it fails the test instead of spinning forever. */
typedef struct misspiller {
    ohm_consumer *self;
    int64_t report;
    uint64_t release;
    bool take_back;
    int calls, max_calls;
} misspiller;

static int64_t misbehaving_spill(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)size;
    (void)trigger;
    misspiller *s = arg;
    if (++s->calls > s->max_calls) return OHM_ESYS;
    uint64_t used = ohm_consumer_used(s->self), r = s->release < used ? s->release : used;
    if (r) CHECK_EQ_INT(ohm_consumer_release(s->self, r), r);
    if (r && s->take_back) CHECK_EQ_INT(ohm_consumer_acquire(s->self, r), r);
    return s->report;
}

/* Task 1: X holds 400 (no spill), A (misspiller) holds 600; R (no spill) is returned, holding nothing. */
static ohm_consumer *misspill_setup(ohm_task *t, misspiller *a, ohm_consumer **x)
{
    *x = ohm_consumer_create(t, OHM_ON_HEAP, "X", NULL, NULL);
    CHECK_EQ_INT(ohm_consumer_acquire(*x, 400), 400);
    a->max_calls = a->max_calls ? a->max_calls : 1000;
    a->self = ohm_consumer_create(t, OHM_ON_HEAP, "A", misbehaving_spill, a);
    CHECK_EQ_INT(ohm_consumer_acquire(a->self, 600), 600);
    return ohm_consumer_create(t, OHM_ON_HEAP, "R", NULL, NULL);
}

typedef struct misspill_run {
    ohm_mm *mm;
    ohm_task *t;
    ohm_consumer *x, *r;
} misspill_run;

/* The setup above in a manager of 1000 bytes, then R asks 300: `got` is what that must return, after A's spill
 * was called `calls` times. */
static misspill_run misspill_acquire(misspiller *a, int64_t got, int calls)
{
    misspill_run m;
    m.mm = make_mm(1000, 0, 0.5);
    m.t = ohm_task_create(m.mm, 1);
    m.r = misspill_setup(m.t, a, &m.x);
    CHECK_EQ_INT(ohm_consumer_acquire(m.r, 300), got);
    CHECK_EQ_INT(a->calls, calls);
    return m;
}

static void test_spill_reporting_bytes_it_did_not_release_is_a_callback_error(void)
{
    misspiller a = {.report = 500};
    misspill_run m = misspill_acquire(&a, OHM_ECALLBACK, 1);
    CHECK(!strcmp(ohm_last_error(), "spill of consumer A reported 500 bytes but released 0"));
    CHECK_STR_CONTAINS(ohm_last_error(), "spill of consumer A reported 500 bytes but released 0");
    CHECK_EQ_U64(ohm_consumer_used(a.self), 600);
    CHECK_EQ_U64(ohm_consumer_used(m.r), 0);
    CHECK_EQ_U64(task_used(m.t, OHM_ON_HEAP), 1000);
    CHECK_POOLS(m.mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    ohm_consumer_stats cs = consumer_stats(a.self);
    CHECK_EQ_U64(cs.spills, 1);
    CHECK_EQ_U64(cs.spill_bytes, 0); /* what it released, not what it said */
    end_tasks_and_mm(m.mm, m.t, 1000, NULL, 0);
}

static void test_spill_releasing_less_than_it_reports_is_a_callback_error(void)
{
    misspiller a = {.report = 300, .release = 100};
    misspill_run m = misspill_acquire(&a, OHM_ECALLBACK, 1);
    CHECK(!strcmp(ohm_last_error(), "spill of consumer A reported 300 bytes but released 100"));
    /* the 100 it did release stay released; the requester got nothing */
    CHECK_EQ_U64(ohm_consumer_used(a.self), 500);
    CHECK_EQ_U64(ohm_consumer_used(m.r), 0);
    CHECK_EQ_U64(ohm_consumer_used(m.x), 400);
    CHECK_EQ_U64(task_used(m.t, OHM_ON_HEAP), 900);
    CHECK_POOLS(m.mm, OHM_ON_HEAP, 1000, 900, 0, 0);
    ohm_task_stats ts;
    ohm_task_stats_get(m.t, &ts);
    CHECK_EQ_U64(ts.spill_bytes, 100);
    end_tasks_and_mm(m.mm, m.t, 900, NULL, 0);
}

static void test_spill_reporting_less_than_it_released_is_credited_what_it_released(void)
{
    misspiller a = {.report = 0, .release = 300};
    misspill_run m = misspill_acquire(&a, 300, 1);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 300);
    CHECK_EQ_U64(ohm_consumer_used(m.r), 300);
    ohm_consumer_stats cs = consumer_stats(a.self);
    CHECK_EQ_U64(cs.spill_bytes, 300);
    CHECK_POOLS(m.mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    end_tasks_and_mm(m.mm, m.t, 1000, NULL, 0);
}

static void test_spill_releasing_in_small_steps_is_asked_again_until_the_request_is_met(void)
{
    misspiller a = {.report = 100, .release = 100};
    misspill_run m = misspill_acquire(&a, 300, 3);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 300);
    end_tasks_and_mm(m.mm, m.t, 1000, NULL, 0);
}

static void test_spill_that_takes_back_what_it_released_ends_the_round(void)
{
    /* Honest about each release, but it acquires the bytes again: asking it again would never end. */
    misspiller a = {.report = 100, .release = 100, .take_back = true};
    misspill_run m = misspill_acquire(&a, 0, 1);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 600);
    CHECK_EQ_U64(ohm_consumer_used(m.r), 0);
    CHECK_POOLS(m.mm, OHM_ON_HEAP, 1000, 1000, 0, 0);
    end_tasks_and_mm(m.mm, m.t, 1000, NULL, 0);
}

static void test_spill_whose_release_cannot_reach_the_requester_is_not_asked_again(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 1), *t2 = ohm_task_create(mm, 2);
    /* A releases exactly what is missing, 1 byte. Task 1 holds 900 when task 2 arrives: with two tasks its
     * share is 500, so no byte A releases reaches R until task 1 is below 500 -- 401 spills of 1 byte (at a
     * larger scale, billions: Spark's loop asks A again as long as it releases anything). */
    misspiller a = {.report = 1, .release = 1};
    ohm_consumer *x, *r = misspill_setup(t, &a, &x);
    CHECK_EQ_INT(ohm_consumer_release(x, 100), 100);
    CHECK_EQ_INT(ohm_task_acquire(t2, OHM_ON_HEAP, 100), 100);
    CHECK_EQ_INT(ohm_consumer_acquire(r, 1), 0);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_U64(ohm_consumer_used(a.self), 599);
    CHECK_EQ_U64(task_used(t, OHM_ON_HEAP), 899);
    end_tasks_and_mm(mm, t, 899, t2, 100);
}

/* A spill that parks until the test has cancelled its task, then releases 10 bytes honestly. */
typedef struct gated_spiller {
    ohm_consumer *self;
    pthread_mutex_t m;
    pthread_cond_t cv;
    bool in_spill, go;
    int calls;
} gated_spiller;

static int64_t gated_spill(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)size;
    (void)trigger;
    gated_spiller *g = arg;
    pthread_mutex_lock(&g->m);
    g->calls++;
    g->in_spill = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->go) pthread_cond_wait(&g->cv, &g->m);
    pthread_mutex_unlock(&g->m);
    return ohm_consumer_release(g->self, 10);
}

static void test_cancel_ends_an_acquire_in_the_middle_of_a_spill_round(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 3);
    ohm_consumer *x = ohm_consumer_create(t, OHM_ON_HEAP, "X", NULL, NULL);
    CHECK_EQ_INT(ohm_consumer_acquire(x, 400), 400);
    gated_spiller g = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    g.self = ohm_consumer_create(t, OHM_ON_HEAP, "A", gated_spill, &g);
    CHECK_EQ_INT(ohm_consumer_acquire(g.self, 600), 600);
    ohm_consumer *r = ohm_consumer_create(t, OHM_ON_HEAP, "R", NULL, NULL);
    acquire_arg a = {.c = r, .n = 300};
    pthread_t th;
    pthread_create(&th, NULL, acquire_thread, &a);
    pthread_mutex_lock(&g.m);
    while (!g.in_spill) pthread_cond_wait(&g.cv, &g.m);
    CHECK_EQ_INT(ohm_mm_cancel_task(mm, 3), 0); /* while A's spill runs */
    g.go = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.m);
    pthread_join(th, NULL);
    /* A released 10 and would be asked again (29 more times): the cancel ends the round after this spill */
    CHECK_EQ_INT(a.got, OHM_ECANCELED);
    CHECK_EQ_INT(g.calls, 1);
    CHECK_EQ_U64(ohm_consumer_used(g.self), 590);
    CHECK_EQ_U64(ohm_consumer_used(r), 0);
    CHECK_EQ_U64(task_used(t, OHM_ON_HEAP), 990);
    CHECK_POOLS(mm, OHM_ON_HEAP, 1000, 990, 0, 0);
    /* the cancel was consumed: the next acquire spills to the end */
    CHECK_EQ_INT(ohm_consumer_acquire(r, 30), 30);
    CHECK_EQ_INT(g.calls, 3);
    end_tasks_and_mm(mm, t, 1000, NULL, 0);
}

/* ---- pages ---- */

static void test_pages_are_charged_and_returned(void)
{
    ohm_mm *mm = make_mm(0, 1 << 20, 0.5);
    ohm_task *t = ohm_task_create(mm, 5);
    ohm_consumer *c = ohm_consumer_create(t, OHM_OFF_HEAP, "sorter", NULL, NULL);
    ohm_buf *p1 = ohm_consumer_alloc_page(c, 100); /* at least the page size */
    if (!CHECK_NOT_NULL(p1)) return;
    CHECK_EQ_U64(ohm_buf_size(p1), 4096);
    CHECK_EQ_INT(ohm_buf_fill(p1, 0, 0xab, 4096), 0);
    ohm_buf *p2 = ohm_consumer_alloc_page(c, 5000);
    if (!CHECK_NOT_NULL(p2)) return;
    CHECK_EQ_U64(ohm_buf_size(p2), 5000);
    CHECK_EQ_U64(ohm_consumer_used(c), 9096);
    CHECK_EQ_INT(ohm_buf_release(p2, 1), 1);
    CHECK_EQ_U64(ohm_consumer_used(c), 4096);
    CHECK_EQ_U64(task_used(t, OHM_OFF_HEAP), 4096);
    CHECK_EQ_INT(ohm_consumer_destroy(c), OHM_ESTATE); /* it still has a page */
    ohm_consumer *on = ohm_consumer_create(t, OHM_ON_HEAP, "heap", NULL, NULL);
    CHECK_NULL(ohm_consumer_alloc_page(on, 10));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    /* too large for the mode: ELIMIT, nothing stays charged */
    CHECK_NULL(ohm_consumer_alloc_page(c, 2 << 20));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ELIMIT);
    CHECK_EQ_U64(ohm_consumer_used(c), 4096);
    CHECK_EQ_INT(ohm_buf_release(p1, 1), 1);
    CHECK_EQ_U64(ohm_consumer_used(c), 0);
    CHECK_EQ_INT(ohm_consumer_destroy(c), 0);
    CHECK_EQ_INT(ohm_task_end(t), 0);
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.pages, 0);
    CHECK_EQ_U64(st.mode[OHM_OFF_HEAP].execution_used, 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_leaked_page_reported_at_task_end(void)
{
    ohm_mm *mm = make_mm(0, 1 << 20, 0.5);
    ohm_task *t = ohm_task_create(mm, 7);
    ohm_consumer *c = ohm_consumer_create(t, OHM_OFF_HEAP, "map", NULL, NULL);
    ohm_buf *p = ohm_consumer_alloc_page(c, 100);
    if (!CHECK_NOT_NULL(p)) return;
    uint64_t id = ohm_buf_id(p);
    fixture_log_reset(&logged);
    CHECK_EQ_INT(ohm_task_end(t), 4096);
    CHECK(fixture_log_has(&logged, "memory leak detected in task 7: 4096 bytes"));
    CHECK_EQ_INT(ohm_buf_check(p, id), OHM_ESTATE); /* the page was freed with its task */
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.pages, 0);
    CHECK_EQ_U64(st.tasks, 0);
    CHECK_POOLS(mm, OHM_OFF_HEAP, 524288, 0, 524288, 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_spill_callback_frees_a_page(void)
{
    ohm_mm *mm = make_mm(0, 8192, 0.0); /* all execution */
    ohm_task *t = ohm_task_create(mm, 1);
    char order[64] = "";
    spiller p, q;
    make_consumer(t, OHM_OFF_HEAP, &p, "P", order, 0);
    p.page = ohm_consumer_alloc_page(p.self, 8192);
    if (!CHECK_NOT_NULL(p.page)) return;
    make_consumer(t, OHM_OFF_HEAP, &q, "Q", order, 0);
    ohm_buf *qp = ohm_consumer_alloc_page(q.self, 4096);
    if (!CHECK_NOT_NULL(qp)) return;
    CHECK(!strcmp(order, "P "));
    CHECK_EQ_U64(ohm_consumer_used(p.self), 0);
    CHECK_EQ_U64(ohm_consumer_used(q.self), 4096);
    CHECK_POOLS(mm, OHM_OFF_HEAP, 8192, 4096, 0, 0);
    ohm_buf_release(qp, 1);
    end_tasks_and_mm(mm, t, 0, NULL, 0);
}

/* ---- the block cache ---- */

static void test_lru_eviction_skips_pinned_and_same_group_all_or_nothing(void)
{
    ohm_mm *mm = make_mm(1000, 1000, 1.0); /* all storage */
    evict_log e = {0};
    ohm_buf *abuf = ohm_buf_alloc(NULL, 300);
    if (!CHECK_NOT_NULL(abuf)) return;
    CHECK_EQ_INT(ohm_block_put(mm, "off", NULL, OHM_OFF_HEAP, NULL, 500, on_evict, &e), 0); /* other mode */
    CHECK_EQ_INT(ohm_block_put(mm, "A", "g1", OHM_ON_HEAP, abuf, 0, on_evict, &e), 0);
    CHECK_EQ_U64(ohm_buf_refcnt(abuf), 2); /* the cache holds its own reference */
    ohm_buf *got = NULL;
    CHECK_EQ_INT(ohm_block_pin(mm, "A", &got), 0);
    CHECK(got == abuf);
    CHECK_EQ_INT(ohm_block_put(mm, "B", "g2", OHM_ON_HEAP, NULL, 300, on_evict, &e), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "C", "g3", OHM_ON_HEAP, NULL, 300, on_evict, &e), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "C", "g3", OHM_ON_HEAP, NULL, 1, NULL, NULL), OHM_EINVAL);
    /* D (group g3) needs 200 more: A is pinned, C is of D's group: B goes */
    CHECK_EQ_INT(ohm_block_put(mm, "D", "g3", OHM_ON_HEAP, NULL, 300, on_evict, &e), 0);
    CHECK(!strcmp(e.order, "B "));
    CHECK_EQ_INT(ohm_block_remove(mm, "A"), OHM_ESTATE); /* pinned */
    /* E needs 700: only C and D (600) can go: nothing is evicted */
    CHECK_EQ_INT(ohm_block_put(mm, "E", "g9", OHM_ON_HEAP, NULL, 800, on_evict, &e), OHM_ELIMIT);
    CHECK(!strcmp(e.order, "B "));
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 900);
    /* unpinned, A is the least recently used: A, C, D go */
    CHECK_EQ_INT(ohm_block_unpin(mm, "A"), 0);
    CHECK_EQ_INT(ohm_block_unpin(mm, "A"), OHM_ESTATE);
    CHECK_EQ_INT(ohm_block_put(mm, "E", "g9", OHM_ON_HEAP, NULL, 800, on_evict, &e), 0);
    CHECK(!strcmp(e.order, "B A C D "));
    CHECK_EQ_U64(ohm_buf_refcnt(abuf), 1); /* the cache's reference went with A */
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 800);
    CHECK_POOLS(mm, OHM_OFF_HEAP, 0, 0, 1000, 500);
    CHECK_EQ_INT(ohm_block_pin(mm, "A", &got), OHM_EINVAL);
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.blocks, 2);
    CHECK_EQ_U64(st.block_bytes, 1300);
    CHECK_EQ_U64(st.evictions, 4);
    CHECK_EQ_U64(st.evicted_bytes, 1200);
    ohm_buf_release(abuf, 1);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_failing_eviction_leaves_pools_exact(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    evict_log bad = {.fail = 1}, good = {0};
    CHECK_EQ_INT(ohm_block_put(mm, "A", "g1", OHM_ON_HEAP, NULL, 400, on_evict, &bad), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "B", "g2", OHM_ON_HEAP, NULL, 400, on_evict, &good), 0); /* borrows 300 */
    CHECK_POOLS(mm, OHM_ON_HEAP, 200, 0, 800, 800);
    /* execution: reclaimable 300 -> evict A, whose callback fails: the error comes back, nothing moved */
    ohm_task *t = ohm_task_create(mm, 1);
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 500), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "eviction of block A failed");
    CHECK_EQ_INT(bad.calls, 1);
    CHECK_POOLS(mm, OHM_ON_HEAP, 200, 0, 800, 800);
    /* storage: borrows the 200 free execution, must evict 100: A again fails; the borrow is undone */
    CHECK_EQ_INT(ohm_block_put(mm, "C", "g3", OHM_ON_HEAP, NULL, 300, NULL, NULL), OHM_ECALLBACK);
    CHECK_EQ_INT(bad.calls, 2);
    CHECK_POOLS(mm, OHM_ON_HEAP, 200, 0, 800, 800);
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st);
    CHECK_EQ_U64(st.blocks, 2);
    CHECK_EQ_U64(st.evictions, 0);
    CHECK_EQ_INT(ohm_block_pin(mm, "A", NULL), 0); /* still cached, not left marked */
    CHECK_EQ_INT(ohm_block_unpin(mm, "A"), 0);
    /* reading A made it the most recently used, so B goes now, and the same acquire works */
    CHECK_EQ_INT(ohm_task_acquire(t, OHM_ON_HEAP, 500), 500);
    CHECK(!strcmp(good.order, "B "));
    CHECK_EQ_INT(bad.calls, 2);
    end_tasks_and_mm(mm, t, 500, NULL, 0);
}

/* An eviction callback that itself uses the manager: removes another block and reads the stats. */
typedef struct reentrant {
    ohm_mm *mm;
    int rc;
} reentrant;

static int evict_reenters(void *arg, const char *block_id, ohm_buf *buf)
{
    (void)block_id;
    (void)buf;
    reentrant *r = arg;
    ohm_mm_stats st;
    r->rc = ohm_mm_stats_get(r->mm, &st);
    if (!r->rc) r->rc = ohm_block_remove(r->mm, "other");
    return 0;
}

static void test_eviction_callback_may_call_the_manager(void)
{
    ohm_mm *mm = make_mm(1000, 0, 1.0);
    reentrant r = {mm, -100};
    CHECK_EQ_INT(ohm_block_put(mm, "A", NULL, OHM_ON_HEAP, NULL, 600, evict_reenters, &r), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "other", NULL, OHM_ON_HEAP, NULL, 300, NULL, NULL), 0);
    /* "other" is more recent: A (600) covers the 500 needed */
    CHECK_EQ_INT(ohm_block_put(mm, "B", NULL, OHM_ON_HEAP, NULL, 600, NULL, NULL), 0);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_POOLS(mm, OHM_ON_HEAP, 0, 0, 1000, 600);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

/* ---- observability ---- */

static void test_json_snapshot_contains_the_numbers(void)
{
    ohm_mm *mm = make_mm(1000, 0, 0.5);
    ohm_task *t = ohm_task_create(mm, 42);
    ohm_consumer *c = ohm_consumer_create(t, OHM_ON_HEAP, "hash\"agg", NULL, NULL);
    CHECK_EQ_INT(ohm_consumer_acquire(c, 800), 800);
    CHECK_EQ_INT(ohm_block_put(mm, "rdd_1_0", "rdd_1", OHM_ON_HEAP, NULL, 150, NULL, NULL), 0);
    char small[16];
    size_t len = ohm_mm_snapshot_json(mm, small, sizeof small);
    CHECK(len > sizeof small);
    CHECK_EQ_U64(strlen(small), sizeof small - 1);
    char *json = malloc(len + 1);
    CHECK_EQ_U64(ohm_mm_snapshot_json(mm, json, len + 1), len);
    CHECK_STR_CONTAINS(json, "\"on_heap\":{\"max\":1000,\"storage_region\":500,\"execution_pool\":800,"
                             "\"execution_used\":800,\"storage_pool\":200,\"storage_used\":150,\"tasks\":1}");
    CHECK_STR_CONTAINS(json, "\"blocks\":1,\"block_bytes\":150");
    CHECK_STR_CONTAINS(json, "\"id\":42,\"on_heap_used\":800");
    CHECK_STR_CONTAINS(json, "{\"name\":\"hash\\\"agg\",\"mode\":\"on_heap\",\"used\":800,\"peak\":800");
    CHECK_EQ_U64(ohm_mm_snapshot_json(mm, NULL, 0), len);
    free(json);
    CHECK_EQ_INT(ohm_mm_destroy(mm), OHM_ESTATE); /* a live task */
    end_tasks_and_mm(mm, t, 800, NULL, 0);
}

int main(void)
{
    ohm_set_log_handler(fixture_log_handler, &logged);
    RUN(test_pools_start_at_the_storage_region);
    RUN(test_sizing_helper_follows_spark);
    RUN(test_execution_borrows_free_storage);
    RUN(test_storage_borrows_free_execution);
    RUN(test_execution_evicts_storage_down_to_the_region);
    RUN(test_storage_never_evicts_execution);
    RUN(test_unroll_memory_follows_storage_rules);
    RUN(test_release_more_than_held_releases_what_is_held);
    RUN(test_fair_share_between_two_tasks);
    RUN(test_fair_share_among_four_tasks);
    RUN(test_waiting_task_woken_by_release);
    RUN(test_waiting_task_woken_by_task_end);
    RUN(test_wait_times_out);
    RUN(test_wait_is_cancelled);
    RUN(test_spill_picks_smallest_sufficient_consumer);
    RUN(test_spill_falls_back_to_largest_consumer);
    RUN(test_spill_skips_consumer_that_releases_nothing_then_self);
    RUN(test_failing_spill_leaves_accounting_exact);
    RUN(test_spill_reporting_bytes_it_did_not_release_is_a_callback_error);
    RUN(test_spill_releasing_less_than_it_reports_is_a_callback_error);
    RUN(test_spill_reporting_less_than_it_released_is_credited_what_it_released);
    RUN(test_spill_releasing_in_small_steps_is_asked_again_until_the_request_is_met);
    RUN(test_spill_that_takes_back_what_it_released_ends_the_round);
    RUN(test_spill_whose_release_cannot_reach_the_requester_is_not_asked_again);
    RUN(test_cancel_ends_an_acquire_in_the_middle_of_a_spill_round);
    RUN(test_pages_are_charged_and_returned);
    RUN(test_leaked_page_reported_at_task_end);
    RUN(test_spill_callback_frees_a_page);
    RUN(test_lru_eviction_skips_pinned_and_same_group_all_or_nothing);
    RUN(test_failing_eviction_leaves_pools_exact);
    RUN(test_eviction_callback_may_call_the_manager);
    RUN(test_json_snapshot_contains_the_numbers);
    ohm_set_log_handler(NULL, NULL);
    return check_summary();
}
