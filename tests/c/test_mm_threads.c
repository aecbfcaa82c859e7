/* The memory manager under two threads at once: each its own task, acquiring and releasing as fast as it can,
 * while a third thread reads the manager. Every read must show an accounting Spark's pools could show: used
 * within the pool, the pools summing to max, at most the two tasks in the fair share, and the tasks' bytes
 * summing to the pool's used bytes (the JSON snapshot is read in one piece). The manager is small, so the calls
 * mix the lock-free-of-mutex fast path (a grant in full, a release within what is held) with the locked one
 * (partial grants under the fair share, waits for the other task's memory, a task joining and leaving). */
#include "../check.h"

#include "ohm.h"

#include <pthread.h>
#include <stdlib.h>

#define MAX   4096 /* ON_HEAP bytes, all execution: a task's share is 2048 with both tasks in it, 4096 alone */
#define OPS   200000
#define LIMIT 3000 /* a worker releases everything once it holds more */

typedef struct worker {
    ohm_task *task;
    ohm_consumer *c; /* NULL: the task acquires itself */
    unsigned seed;
    uint64_t held; /* what the worker's own count says it holds */
    uint64_t full, partial;
} worker;

static int done; /* workers finished (__atomic) */

static int64_t acquire(worker *w, uint64_t n)
{
    return w->c ? ohm_consumer_acquire(w->c, n) : ohm_task_acquire(w->task, OHM_ON_HEAP, n);
}

static int64_t release(worker *w, uint64_t n)
{
    return w->c ? ohm_consumer_release(w->c, n) : ohm_task_release(w->task, OHM_ON_HEAP, n);
}

static void *work(void *p)
{
    worker *w = p;
    for (int i = 0; i < OPS; i++) {
        uint64_t n = 1 + (uint64_t)rand_r(&w->seed) % 1500;
        if (w->held > LIMIT || (w->held && rand_r(&w->seed) % 2)) {
            uint64_t r = w->held > LIMIT ? w->held : 1 + (uint64_t)rand_r(&w->seed) % w->held;
            CHECK_EQ_INT(release(w, r), r);
            w->held -= r;
            continue;
        }
        int64_t g = acquire(w, n);
        if (!CHECK(g >= 0 && (uint64_t)g <= n)) break;
        w->held += (uint64_t)g;
        if ((uint64_t)g == n) w->full++;
        else w->partial++;
    }
    CHECK_EQ_INT(release(w, w->held), w->held); /* to 0: leaves the fair share, and wakes the other if it waits */
    w->held = 0;
    __atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The number after "key": in s at or after from, or UINT64_MAX when there is none. */
static uint64_t json_u64(const char *s, const char *key, const char **after)
{
    const char *k = strstr(s, key);
    if (!k) return UINT64_MAX;
    char *end;
    uint64_t v = strtoull(k + strlen(key), &end, 10);
    if (after) *after = end;
    return v;
}

/* One snapshot, read in one piece: the ON_HEAP pool's used bytes == the sum of the tasks' ON_HEAP bytes. */
static void check_snapshot(ohm_mm *mm, char *buf, size_t cap)
{
    size_t len = ohm_mm_snapshot_json(mm, buf, cap);
    if (!CHECK(len > 0 && len < cap)) return;
    const char *on = strstr(buf, "\"on_heap\":{");
    if (!CHECK_NOT_NULL(on)) return;
    uint64_t used = json_u64(on, "\"execution_used\":", NULL), tasks = json_u64(on, "\"tasks\":", NULL);
    uint64_t sum = 0, n = 0;
    const char *at = strstr(buf, "\"tasks\":[");
    if (!CHECK_NOT_NULL(at)) return;
    for (uint64_t v; (v = json_u64(at, "\"on_heap_used\":", &at)) != UINT64_MAX; n++) sum += v;
    CHECK_EQ_U64(n, 2);
    CHECK_EQ_U64(sum, used);
    CHECK(used <= MAX);
    CHECK(tasks <= 2);
}

static void *observe(void *p)
{
    ohm_mm *mm = p;
    char buf[4096];
    unsigned long reads = 0;
    while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < 2) {
        ohm_mm_stats st;
        CHECK_EQ_INT(ohm_mm_stats_get(mm, &st), 0);
        const ohm_mm_mode_stats *m = &st.mode[OHM_ON_HEAP];
        CHECK(m->execution_used <= m->execution_pool);
        CHECK_EQ_U64(m->execution_pool + m->storage_pool, m->max);
        CHECK(m->tasks <= 2);
        check_snapshot(mm, buf, sizeof buf);
        reads++;
    }
    CHECK(reads > 0);
    return NULL;
}

static void hammer(bool with_consumer)
{
    ohm_mm_config cfg = {.max_bytes = {[OHM_ON_HEAP] = MAX},
                         .storage_fraction = 0,
                         .page_size = 4096,
                         .wait_timeout_ms = UINT64_MAX,
                         .pool = NULL};
    ohm_mm *mm = ohm_mm_create(&cfg);
    if (!CHECK_NOT_NULL(mm)) return;
    done = 0;
    worker w[2] = {{.task = ohm_task_create(mm, 1), .seed = 1}, {.task = ohm_task_create(mm, 2), .seed = 2}};
    if (with_consumer) w[1].c = ohm_consumer_create(w[1].task, OHM_ON_HEAP, "c", NULL, NULL);
    pthread_t th[3];
    pthread_create(&th[2], NULL, observe, mm);
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);

    /* quiescent: both tasks hold nothing, nobody is in the fair share, and the pool is whole */
    ohm_mm_stats st;
    CHECK_EQ_INT(ohm_mm_stats_get(mm, &st), 0);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].execution_used, 0);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].execution_pool, MAX);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].tasks, 0);
    for (int i = 0; i < 2; i++) {
        CHECK(w[i].full > 0);
        ohm_task_stats ts;
        CHECK_EQ_INT(ohm_task_stats_get(w[i].task, &ts), 0);
        CHECK_EQ_U64(ts.used[OHM_ON_HEAP], 0);
        CHECK(ts.peak <= MAX);
    }
    if (with_consumer) {
        ohm_consumer_stats cs;
        CHECK_EQ_INT(ohm_consumer_stats_get(w[1].c, &cs), 0);
        CHECK_EQ_U64(cs.used, 0);
        CHECK_EQ_INT(ohm_consumer_destroy(w[1].c), 0);
    }
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(ohm_task_end(w[i].task), 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void test_two_tasks_hammering_keep_the_accounting_exact(void) { hammer(false); }
static void test_a_task_and_a_consumer_hammering_keep_the_accounting_exact(void) { hammer(true); }

/* Quiescent sums after many holds: what each worker counted is what the manager says, task by task. */
static void test_held_bytes_match_each_workers_count(void)
{
    ohm_mm_config cfg = {.max_bytes = {[OHM_ON_HEAP] = 1 << 20}, .page_size = 4096, .wait_timeout_ms = UINT64_MAX};
    ohm_mm *mm = ohm_mm_create(&cfg);
    if (!CHECK_NOT_NULL(mm)) return;
    ohm_task *t[2] = {ohm_task_create(mm, 1), ohm_task_create(mm, 2)};
    for (int round = 0; round < 1000; round++)
        for (int i = 0; i < 2; i++) {
            CHECK_EQ_INT(ohm_task_acquire(t[i], OHM_ON_HEAP, 100 + (uint64_t)i), 100 + i);
            if (round % 3 == 0) CHECK_EQ_INT(ohm_task_release(t[i], OHM_ON_HEAP, 50), 50);
        }
    ohm_mm_stats st;
    CHECK_EQ_INT(ohm_mm_stats_get(mm, &st), 0);
    uint64_t want[2] = {1000 * 100 - 334 * 50, 1000 * 101 - 334 * 50};
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].execution_used, want[0] + want[1]);
    CHECK_EQ_U64(st.mode[OHM_ON_HEAP].tasks, 2);
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(ohm_task_end(t[i]), want[i]);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

int main(void)
{
    RUN(test_two_tasks_hammering_keep_the_accounting_exact);
    RUN(test_a_task_and_a_consumer_hammering_keep_the_accounting_exact);
    RUN(test_held_bytes_match_each_workers_count);
    return check_summary();
}
