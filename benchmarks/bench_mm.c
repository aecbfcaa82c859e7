/* ohm-bench mm: what the memory manager's accounting costs (ohm_mm_*, ohm_task_*, ohm_consumer_*, ohm_block_*).
 *
 * The same contract as ohm-bench alloc and buf: one fresh child per (workload, rep), best ops/s and median RSS
 * over the reps, one JSON line per result with --json, else a table per workload, and the goals after
 * the acquire-release tables. impl is ohm only (there is no peer to run the same API).
 *
 * Every workload checks in the child that it measured what it claims (every acquire granted in full, every
 * spill-storm op spilled, every evict-storm op evicted) and dies otherwise, so a run that silently took a cheaper
 * path fails instead of reporting a flattering number.
 *
 * live peak: the most bytes the manager accounted at once (execution + storage used); ON_HEAP is accounting
 * only, so for acquire-release and spill-storm no memory stands behind it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_util.h"
#include "ohm.h"

#define DEFAULT_TIMEOUT_S 600
#define AR_SIZE           1024                /* acquire-release: bytes per acquire */
#define AR_MAX            ((uint64_t)1 << 30) /* acquire-release: the manager's ON_HEAP max (no one ever waits) */
#define SPILL_CONSUMERS   4
#define SPILL_CHUNK       ((uint64_t)64 << 10) /* spill-storm: bytes per acquire; the manager holds 4 chunks per consumer */
#define EVICT_BLOCK       4096                 /* evict-storm: bytes per cached block (a pool buffer) */
#define EVICT_ROUND       256                  /* evict-storm: evicting acquires per round (storage refilled between) */
#define GOAL_NS           50.0                 /* acquire+release, one uncontended task */
#define GOAL_TWO_TASKS    2.0                  /* 2-thread ns/op at most this many times the 1-thread one */

static const char *const impl_name = "ohm";

typedef struct mm_workload mm_workload;
struct mm_workload {
    const char *name;
    unsigned threads;
    uint64_t count;   /* ops at --scale 1 */
    const char *unit; /* what one op is */
    const char *summary;
    void (*run)(const mm_workload *w, double scale, bench_result *r);
};

static void must(int64_t rc, int64_t want, const char *what)
{
    if (__builtin_expect(rc != want, 0))
        bench_die(4, "%s returned %lld, expected %lld: %s", what, (long long)rc, (long long)want, ohm_last_error());
}

static ohm_mm *must_mm(uint64_t on_heap, uint64_t off_heap, double storage_fraction)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = on_heap;
    cfg.max_bytes[OHM_OFF_HEAP] = off_heap;
    cfg.storage_fraction = storage_fraction;
    cfg.wait_timeout_ms = 10000; /* a wait would be a bug here: fail the run instead of hanging it */
    ohm_mm *mm = ohm_mm_create(&cfg);
    if (!mm) bench_die(4, "ohm_mm_create failed: %s", ohm_last_error());
    return mm;
}

static ohm_task *must_task(ohm_mm *mm, uint64_t id)
{
    ohm_task *t = ohm_task_create(mm, id);
    if (!t) bench_die(4, "ohm_task_create(%llu) failed: %s", (unsigned long long)id, ohm_last_error());
    return t;
}

static void end_task(ohm_task *t) { must(ohm_task_end(t), 0, "ohm_task_end"); }

static void destroy_mm(ohm_mm *mm) { must(ohm_mm_destroy(mm), 0, "ohm_mm_destroy"); }

/* ---- acquire-release: each thread its own task on one manager; acquire AR_SIZE, release it ------------------ */

static void *ar_loop(void *p)
{
    bench_thread *a = p;
    ohm_task *t = a->arg;
    for (int i = 0; i < 1000; i++) { /* warm-up: first-use paths before the barrier */
        must(ohm_task_acquire(t, OHM_ON_HEAP, AR_SIZE), AR_SIZE, "ohm_task_acquire (warm-up)");
        must(ohm_task_release(t, OHM_ON_HEAP, AR_SIZE), AR_SIZE, "ohm_task_release (warm-up)");
    }
    bench_thread_start(a);
    for (uint64_t i = 0; i < a->n; i++) {
        must(ohm_task_acquire(t, OHM_ON_HEAP, AR_SIZE), AR_SIZE, "ohm_task_acquire");
        must(ohm_task_release(t, OHM_ON_HEAP, AR_SIZE), AR_SIZE, "ohm_task_release");
    }
    bench_thread_end(a);
    return NULL;
}

static void run_acquire_release(const mm_workload *w, double scale, bench_result *r)
{
    uint64_t per = bench_scaled(w->count, scale) / w->threads;
    if (per == 0) per = 1;
    ohm_mm *mm = must_mm(AR_MAX, 0, 0.5);
    bench_thread a[8];
    for (unsigned i = 0; i < w->threads; i++) a[i] = (bench_thread){.arg = must_task(mm, i + 1), .n = per};
    r->ns = bench_run_threads(w->threads, ar_loop, a, r);
    r->ops = per * w->threads;
    for (unsigned i = 0; i < w->threads; i++) {
        ohm_task_stats ts;
        must(ohm_task_stats_get(a[i].arg, &ts), 0, "ohm_task_stats_get");
        if (ts.waits)
            bench_die(4, "acquire-release: task %u waited %llu times (the manager is meant to be uncontended)", i + 1,
                      (unsigned long long)ts.waits);
        end_task(a[i].arg);
    }
    destroy_mm(mm);
    r->live_peak = (uint64_t)AR_SIZE * w->threads;
}

/* ---- spill-storm: one task, SPILL_CONSUMERS consumers filling a manager of SPILL_CONSUMERS^2 chunks -----------
 *
 * The manager is always full: each op is ohm_consumer_acquire(SPILL_CHUNK) by the consumer holding the least,
 * which Spark's order answers by asking another consumer to spill; its callback releases exactly what is missing
 * (ohm_consumer_release inside the callback), so the acquire is then granted in full and the manager is full
 * again. One op = one acquire that triggered (at least) one spill; the child checks spills == ops. */

typedef struct spill_consumer {
    ohm_consumer *c;
    uint64_t used; /* mirrors ohm_consumer_used without taking the lock */
} spill_consumer;

static int64_t spill_release(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)trigger;
    spill_consumer *s = arg;
    uint64_t n = size < s->used ? size : s->used;
    int64_t r = ohm_consumer_release(s->c, n);
    if (r > 0) s->used -= (uint64_t)r;
    return r;
}

static void run_spill_storm(const mm_workload *w, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    const uint64_t total = (uint64_t)SPILL_CONSUMERS * SPILL_CONSUMERS * SPILL_CHUNK;
    ohm_mm *mm = must_mm(total, 0, 0.0); /* execution only: no storage to borrow from or evict */
    ohm_task *t = must_task(mm, 1);
    spill_consumer sc[SPILL_CONSUMERS];
    for (unsigned i = 0; i < SPILL_CONSUMERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%u", i);
        sc[i].used = 0;
        sc[i].c = ohm_consumer_create(t, OHM_ON_HEAP, name, spill_release, &sc[i]);
        if (!sc[i].c) bench_die(4, "ohm_consumer_create failed: %s", ohm_last_error());
    }
    for (unsigned i = 0; i < SPILL_CONSUMERS; i++) { /* fill: every consumer holds SPILL_CONSUMERS chunks */
        must(ohm_consumer_acquire(sc[i].c, total / SPILL_CONSUMERS), (int64_t)(total / SPILL_CONSUMERS),
             "ohm_consumer_acquire (fill)");
        sc[i].used += total / SPILL_CONSUMERS;
    }
    uint64_t spills0 = 0;
    for (unsigned i = 0; i < SPILL_CONSUMERS; i++) {
        ohm_consumer_stats cs;
        must(ohm_consumer_stats_get(sc[i].c, &cs), 0, "ohm_consumer_stats_get");
        spills0 += cs.spills;
    }
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        unsigned k = 0; /* the consumer holding the least acquires: the others have something to spill */
        for (unsigned j = 1; j < SPILL_CONSUMERS; j++)
            if (sc[j].used < sc[k].used) k = j;
        must(ohm_consumer_acquire(sc[k].c, SPILL_CHUNK), (int64_t)SPILL_CHUNK, "ohm_consumer_acquire");
        sc[k].used += SPILL_CHUNK;
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    uint64_t spills = 0, held = 0;
    for (unsigned i = 0; i < SPILL_CONSUMERS; i++) {
        ohm_consumer_stats cs;
        must(ohm_consumer_stats_get(sc[i].c, &cs), 0, "ohm_consumer_stats_get");
        spills += cs.spills;
        held += cs.used;
    }
    spills -= spills0;
    if (spills < n || held != total)
        bench_die(4,
                  "spill-storm: %llu spills for %llu acquires, %llu of %llu bytes held (every acquire must spill "
                  "and the manager stay full)",
                  (unsigned long long)spills, (unsigned long long)n, (unsigned long long)held,
                  (unsigned long long)total);
    for (unsigned i = 0; i < SPILL_CONSUMERS; i++) must(ohm_consumer_destroy(sc[i].c), 0, "ohm_consumer_destroy");
    end_task(t);
    destroy_mm(mm);
    r->live_peak = total;
}

/* ---- evict-storm: execution acquires that evict cached pool buffers --------------------------------------------
 *
 * An OFF_HEAP manager of 2 * EVICT_ROUND blocks, storage region half of it. A round: put EVICT_ROUND blocks (each
 * a fresh EVICT_BLOCK pool buffer whose only reference is then the cache's), which fills storage and borrows all
 * of execution; then, timed, EVICT_ROUND execution acquires of EVICT_BLOCK, each of which must take its bytes back
 * from storage by evicting the least recently used block (the evict callback returns 0: the block is dropped and
 * the cache's release frees the buffer); then release them. One op = one evicting acquire; only the acquires are
 * timed (the refill and the release are not). The child checks evictions == ops. */

typedef struct evict_count {
    uint64_t n;
} evict_count;

static int evict_drop(void *arg, const char *block_id, ohm_buf *buf)
{
    (void)block_id;
    (void)buf;
    ((evict_count *)arg)->n++;
    return 0;
}

static void evict_put(ohm_mm *mm, uint64_t seq, evict_count *ec)
{
    char id[32];
    snprintf(id, sizeof id, "rdd_0_%llu", (unsigned long long)seq);
    ohm_buf *b = ohm_buf_alloc(NULL, EVICT_BLOCK);
    if (!b) bench_die(4, "ohm_buf_alloc(%d) failed: %s", EVICT_BLOCK, ohm_last_error());
    memcpy(ohm_buf_data(b), &seq, sizeof seq);
    must(ohm_block_put(mm, id, NULL, OHM_OFF_HEAP, b, 0, evict_drop, ec), 0, "ohm_block_put");
    must(ohm_buf_release(b, 1), 0, "ohm_buf_release (after put)");
}

static void run_evict_storm(const mm_workload *w, double scale, bench_result *r)
{
    uint64_t rounds = (bench_scaled(w->count, scale) + EVICT_ROUND - 1) / EVICT_ROUND;
    const uint64_t total = 2 * (uint64_t)EVICT_ROUND * EVICT_BLOCK;
    ohm_mm *mm = must_mm(0, total, 0.5);
    ohm_task *t = must_task(mm, 1);
    evict_count ec = {0};
    uint64_t seq = 0;
    for (unsigned i = 0; i < EVICT_ROUND; i++) /* fill the storage region (execution never shrinks storage below it) */
        evict_put(mm, seq++, &ec);
    ohm_mm_stats st0;
    must(ohm_mm_stats_get(mm, &st0), 0, "ohm_mm_stats_get");
    bench_mark_start(r);
    uint64_t ns = 0;
    for (uint64_t k = 0; k < rounds; k++) {
        for (unsigned i = 0; i < EVICT_ROUND; i++) /* borrow all of execution */
            evict_put(mm, seq++, &ec);
        uint64_t t0 = harness_now_ns();
        for (unsigned i = 0; i < EVICT_ROUND; i++)
            must(ohm_task_acquire(t, OHM_OFF_HEAP, EVICT_BLOCK), EVICT_BLOCK, "ohm_task_acquire");
        ns += harness_now_ns() - t0;
        must(ohm_task_release(t, OHM_OFF_HEAP, (uint64_t)EVICT_ROUND * EVICT_BLOCK), (int64_t)EVICT_ROUND * EVICT_BLOCK,
             "ohm_task_release");
    }
    r->ns = ns;
    r->ops = rounds * EVICT_ROUND;
    ohm_mm_stats st;
    must(ohm_mm_stats_get(mm, &st), 0, "ohm_mm_stats_get");
    if (st.evictions - st0.evictions != r->ops || ec.n != r->ops)
        bench_die(4, "evict-storm: %llu evictions (%llu callbacks) for %llu acquires (each must evict one block)",
                  (unsigned long long)(st.evictions - st0.evictions), (unsigned long long)ec.n,
                  (unsigned long long)r->ops);
    end_task(t);
    destroy_mm(mm); /* drops the EVICT_ROUND blocks still cached */
    r->live_peak = total;
}

static const mm_workload workloads[] = {
    {"acquire-release", 1, 50000000, "pairs", "ohm_task_acquire + ohm_task_release of 1 KiB, ON_HEAP, one task",
     run_acquire_release},
    {"acquire-release", 2, 20000000, "pairs", "the same, two threads, each its own task on one manager",
     run_acquire_release},
    {"spill-storm", 1, 5000000, "acquires",
     "4 consumers fill the manager; each acquire of 64 KiB makes another spill it", run_spill_storm},
    {"evict-storm", 1, 2000000, "acquires", "execution acquires of 4 KiB, each evicting one cached 4 KiB pool buffer",
     run_evict_storm},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* ---- the child ----------------------------------------------------------------------------------------- */

static int child_main(const bench_options *o)
{
    const mm_workload *w = o->child_workload != SIZE_MAX ? &workloads[o->child_workload] : NULL;
    if (!w) bench_die(2, "--child needs exactly one --workload");
    bench_result r = {0};
    w->run(w, o->c.scale, &r);
    bench_child_report("mm", w->name, impl_name, w->threads, &r);
    return 0;
}

/* ---- the parent ---------------------------------------------------------------------------------------- */

static bench_run run_child(const bench_options *o, size_t wi, unsigned impl, unsigned rep)
{
    (void)impl;
    const mm_workload *w = &workloads[wi];
    char threads[16];
    snprintf(threads, sizeof threads, "%u", w->threads);
    const char *argv[] = {"ohm-bench", "mm",        "--child", "--impl",  impl_name,    "--workload",
                          w->name,     "--threads", threads,   "--scale", o->scale_arg, NULL};
    bench_child c = {argv, NULL, o->c.timeout_s};
    bench_run run = bench_child_result(&c, rep, w->name, w->threads, NULL);
    if (run.ok && o->c.verbose)
        fprintf(stderr, "  %-16s %u thread%s rep %u: %.4g ops/s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
                rep + 1, run.ops_per_sec);
    return run;
}

static void heading(const bench_options *o, size_t wi)
{
    const mm_workload *w = &workloads[wi];
    printf("\n%s (%u thread%s, %llu %s per run): %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
           (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit, w->summary);
}

/* The goals, from the acquire-release aggregates (ns/op = 1e9 / ops/s over all threads). */
static void final_goals(const bench_options *o, const bench_run (*agg)[BENCH_MAX_IMPLS])
{
    (void)o;
    const bench_run *one = NULL, *two = NULL;
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (workloads[i].run == run_acquire_release && agg[i][0].ok && agg[i][0].ops_per_sec > 0) {
            if (workloads[i].threads == 1) one = &agg[i][0];
            else if (workloads[i].threads == 2) two = &agg[i][0];
        }
    if (!one && !two) return;
    printf("\n");
    if (one) {
        double ns1 = 1e9 / one->ops_per_sec;
        printf("goal  acquire-release, 1 task: acquire+release < %.0f ns: %.1f ns  %s\n", GOAL_NS, ns1,
               ns1 < GOAL_NS ? "met" : "MISSED");
    }
    if (one && two) {
        double ns1 = 1e9 / one->ops_per_sec, ns2 = 1e9 / two->ops_per_sec;
        printf("goal  acquire-release, 2 tasks on 2 threads: ns/op <= %.0fx the 1-thread ns/op: %.1f ns = %.2fx  %s\n",
               GOAL_TWO_TASKS, ns2, ns2 / ns1, ns2 <= GOAL_TWO_TASKS * ns1 ? "met" : "MISSED");
    }
    fflush(stdout);
}

static const char *workload_name(size_t wi) { return workloads[wi].name; }

static unsigned workload_threads(size_t wi) { return workloads[wi].threads; }

static void list(void)
{
    printf("%-17s %-9s %9s %-8s %s\n", "workload", "threads", "scale 1", "of", "what");
    for (size_t i = 0; i < NWORKLOADS; i++)
        printf("%-17s %-9u %9llu %-8s %s\n", workloads[i].name, workloads[i].threads,
               (unsigned long long)workloads[i].count, workloads[i].unit, workloads[i].summary);
}

static const bench_suite suite = {
    .name = "mm",
    .usage = "usage: ohm-bench mm [options]\n" BENCH_USAGE_WORKLOAD "  --impl NAME             ohm (the only one)\n"
             "  --threads N             only the workloads' N-thread variants\n"
             "  --reps N                runs per workload (default 3; best ops/s, median RSS)\n"
             "  --scale F               multiplies iteration counts (default 1)\n"
             "  --json                  one JSON object per line per workload instead of tables\n" BENCH_USAGE_TIMEOUT
                 BENCH_USAGE_VERBOSE_LIST,
    .default_timeout_s = DEFAULT_TIMEOUT_S,
    .banner_ratio = "impl ohm only, no ratio column; ns/op = 1e9 / ops/s (all threads)",
    .impl_names = &impl_name,
    .nimpls = 1,
    .impl_hint = "ohm is the only one",
    .nworkloads = NWORKLOADS,
    BENCH_SUITE_FUNCTIONS,
    .workload_threads = workload_threads,
    .threads = BENCH_THREADS_FILTER,
    .final_goals = final_goals,
};

int bench_mm_main(int argc, char **argv) { return bench_suite_main(&suite, argc, argv); }
