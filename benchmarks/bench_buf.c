/* ohm-bench buf: what a reference-counted buffer costs, at each leak-detector level, against the raw pool.
 *
 * The same contract as ohm-bench alloc: one fresh child per (workload, rep, impl), impls interleaved with the
 * order rotating from rep to rep, best ops/s and median RSS over the reps, one JSON line per result with
 * --json, else a table per workload. Ratios are against ohm-off, and each table ends with the goals.
 *
 * impl: ohm-off / ohm-simple / ohm-advanced / ohm-paranoid run the workload through ohm_buf_* with the leak
 * level set by the child before it starts (sample interval 128); pool-raw runs ohm_pool_alloc/ohm_pool_free of
 * the same size from the same default pool, so the difference is the buffer object itself. pool-raw has no
 * counterpart for retain-release and slice-release and is skipped there. ohm-scope runs the workload inside a
 * leak scope (ohm_leak_scope_open after the warm-up, closed after the run, at the default level SIMPLE): every
 * allocation is tracked as PARANOID tracks it, which is the cost it is compared with. It applies where the
 * workload allocates (not retain-release).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_util.h"
#include "ohm.h"

#define DEFAULT_TIMEOUT_S 600
#define SLICE_RENEW       1024 /* slice-release: the parent is renewed after this many triples (see run_slice) */

/* ---- impls and workloads --------------------------------------------------------------------------------- */

typedef enum buf_impl {
    IMPL_OFF = 0,
    IMPL_SIMPLE,
    IMPL_ADVANCED,
    IMPL_PARANOID,
    IMPL_RAW,
    IMPL_SCOPE,
    IMPL_COUNT
} buf_impl;

static const char *const impl_names[IMPL_COUNT] = {"ohm-off",      "ohm-simple", "ohm-advanced",
                                                   "ohm-paranoid", "pool-raw",   "ohm-scope"};
static const ohm_leak_level impl_levels[IMPL_COUNT] = {OHM_LEAK_OFF,      OHM_LEAK_SIMPLE, OHM_LEAK_ADVANCED,
                                                       OHM_LEAK_PARANOID, OHM_LEAK_OFF,    OHM_LEAK_SIMPLE};

typedef struct buf_workload buf_workload;
struct buf_workload {
    const char *name;
    unsigned threads;
    size_t size;
    uint64_t count;   /* ops at --scale 1 */
    const char *unit; /* what one op is */
    bool raw;         /* pool-raw applies */
    const char *summary;
    void (*run)(const buf_workload *w, buf_impl impl, double scale, bench_result *r);
};

static ohm_buf *must_alloc(size_t size)
{
    ohm_buf *b = ohm_buf_alloc(NULL, size);
    if (!b) bench_die(4, "ohm_buf_alloc(%zu) failed: %s", size, ohm_last_error());
    return b;
}

static void must(int rc, int want, const char *what)
{
    if (__builtin_expect(rc != want, 0))
        bench_die(4, "%s returned %d, expected %d: %s", what, rc, want, ohm_last_error());
}

/* alloc-release-*: allocate, write 8 bytes (through ohm_buf_data, the same plain store pool-raw makes), release. */
static void run_alloc(const buf_workload *w, buf_impl impl, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    ohm_pool *pool = ohm_pool_default();
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    if (impl == IMPL_RAW) {
        for (uint64_t i = 0; i < n; i++) {
            void *p = ohm_pool_alloc(pool, w->size);
            if (__builtin_expect(!p, 0)) bench_die(4, "ohm_pool_alloc(%zu) failed: %s", w->size, ohm_last_error());
            memcpy(p, &i, sizeof i);
            must(ohm_pool_free(pool, p), 0, "ohm_pool_free");
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            ohm_buf *b = ohm_buf_alloc(pool, w->size);
            if (__builtin_expect(!b, 0)) bench_die(4, "ohm_buf_alloc(%zu) failed: %s", w->size, ohm_last_error());
            memcpy(ohm_buf_data(b), &i, sizeof i);
            must(ohm_buf_release(b, 1), 1, "ohm_buf_release");
        }
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    r->live_peak = w->size;
}

/* retain-release: retain 1 + release 1 of one buffer, from w->threads threads at once (a barrier starts them). */
static void *retain_loop(void *p)
{
    bench_thread *t = p;
    ohm_buf *b = t->arg;
    bench_thread_start(t);
    for (uint64_t i = 0; i < t->n; i++) {
        must(ohm_buf_retain(b, 1), 0, "ohm_buf_retain");
        must(ohm_buf_release(b, 1), 0, "ohm_buf_release");
    }
    bench_thread_end(t);
    return NULL;
}

static void run_retain(const buf_workload *w, buf_impl impl, double scale, bench_result *r)
{
    (void)impl;
    uint64_t per = bench_scaled(w->count, scale) / w->threads;
    if (per == 0) per = 1;
    ohm_buf *b = must_alloc(w->size);
    bench_thread t[8];
    for (unsigned i = 0; i < w->threads; i++) t[i] = (bench_thread){.arg = b, .n = per};
    r->ns = bench_run_threads(w->threads, retain_loop, t, r);
    r->ops = per * w->threads;
    r->live_peak = w->size;
    must(ohm_buf_release(b, 1), 1, "ohm_buf_release");
}

/* slice-release: retain(parent), slice, release(slice). A plain slice's handle lives until its count's owner
 * ends (or a host GC reclaims it), so a parent sliced forever would pile up handles; the parent is released and
 * a new one allocated every SLICE_RENEW triples, which ends that many slice handles at once. That cost is part
 * of the measured time (about 1/SLICE_RENEW of an alloc-release per op). */
static void run_slice(const buf_workload *w, buf_impl impl, double scale, bench_result *r)
{
    (void)impl;
    uint64_t n = bench_scaled(w->count, scale);
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    ohm_buf *p = must_alloc(w->size);
    for (uint64_t i = 0; i < n; i++) {
        if (i && i % SLICE_RENEW == 0) {
            must(ohm_buf_release(p, 1), 1, "ohm_buf_release (parent)");
            p = must_alloc(w->size);
        }
        must(ohm_buf_retain(p, 1), 0, "ohm_buf_retain");
        ohm_buf *s = ohm_buf_slice(p, 8, 64);
        if (__builtin_expect(!s, 0)) bench_die(4, "ohm_buf_slice failed: %s", ohm_last_error());
        must(ohm_buf_release(s, 1), 0, "ohm_buf_release (slice)");
    }
    must(ohm_buf_release(p, 1), 1, "ohm_buf_release (parent)");
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    r->live_peak = w->size;
}

static const buf_workload workloads[] = {
    {"alloc-release-64", 1, 64, 20000000, "pairs", true, "ohm_buf_alloc 64 B, write 8 bytes, release", run_alloc},
    {"alloc-release-4k", 1, 4096, 10000000, "pairs", true, "ohm_buf_alloc 4 KiB, write 8 bytes, release", run_alloc},
    {"retain-release", 1, 64, 50000000, "pairs", false, "retain 1 + release 1 of one buffer", run_retain},
    {"retain-release", 2, 64, 20000000, "pairs", false, "retain 1 + release 1, two threads on the same buffer",
     run_retain},
    {"slice-release", 1, 256, 10000000, "triples", false,
     "retain(parent), slice, release(slice); parent renewed every 1024", run_slice},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* ---- the child ----------------------------------------------------------------------------------------- */

static int child_main(const bench_options *o)
{
    const buf_workload *w = o->child_workload != SIZE_MAX ? &workloads[o->child_workload] : NULL;
    if (!w || o->nimpls != 1) bench_die(2, "--child needs exactly one --impl and one --workload");
    buf_impl impl = (buf_impl)o->impls[0];
    if (impl == IMPL_RAW && !w->raw) bench_die(2, "pool-raw does not apply to %s", w->name);
    if (impl == IMPL_SCOPE && w->run == run_retain) bench_die(2, "ohm-scope does not apply to %s", w->name);
    ohm_leak_set_sample_interval(128);
    ohm_leak_set_level(impl_levels[impl]);
    for (int i = 0; i < 64; i++) /* first-use setup (default pool, thread cache, headers) before the mark */
        must(ohm_buf_release(must_alloc(w->size), 1), 1, "ohm_buf_release (warm-up)");
    uint64_t scope = 0;
    if (impl == IMPL_SCOPE && !(scope = ohm_leak_scope_open()))
        bench_die(4, "ohm_leak_scope_open failed: %s", ohm_last_error());
    bench_result r = {0};
    w->run(w, impl, o->c.scale, &r);
    if (scope) must((int)ohm_leak_scope_close(scope, 0, NULL), 0, "ohm_leak_scope_close (buffers left live)");
    bench_child_report("buf", w->name, impl_names[impl], w->threads, &r);
    return 0;
}

/* ---- the parent ---------------------------------------------------------------------------------------- */

static bench_run run_child(const bench_options *o, size_t wi, unsigned impl, unsigned rep)
{
    const buf_workload *w = &workloads[wi];
    char threads[16];
    snprintf(threads, sizeof threads, "%u", w->threads);
    const char *argv[] = {"ohm-bench", "buf",       "--child", "--impl",  impl_names[impl], "--workload",
                          w->name,     "--threads", threads,   "--scale", o->scale_arg,     NULL};
    bench_child c = {argv, NULL, o->c.timeout_s};
    bench_run run = bench_child_result(&c, rep, w->name, w->threads, impl_names[impl]);
    if (run.ok && o->c.verbose)
        fprintf(stderr, "  %-16s %-13s rep %u: %.4g ops/s\n", w->name, impl_names[impl], rep + 1, run.ops_per_sec);
    return run;
}

/* One goal line: "goal  ohm-simple >= 0.95x ohm-off: 0.98x  met". */
static void print_goal(const bench_run *agg, buf_impl num, buf_impl den, double want)
{
    if (!agg[num].ok || !agg[den].ok || agg[den].ops_per_sec <= 0) return;
    double got = agg[num].ops_per_sec / agg[den].ops_per_sec;
    printf("goal  %s >= %.2fx %s: %.2fx  %s\n", impl_names[num], want, impl_names[den], got,
           got >= want ? "met" : "MISSED");
}

static void heading(const bench_options *o, size_t wi)
{
    const buf_workload *w = &workloads[wi];
    printf("\n%s (%u thread%s, %llu %s per run): %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
           (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit, w->summary);
}

/* "vs ohm-off": an impl's ops/s over ohm-off's. */
static void ratio_cell(bench_table *t, size_t wi, const bench_run *agg, const bool *ran, unsigned impl)
{
    (void)wi;
    (void)ran;
    const bench_run *off = agg[IMPL_OFF].ok ? &agg[IMPL_OFF] : NULL;
    if (off && off->ops_per_sec > 0) bench_table_set(t, 8, "%.2fx", agg[impl].ops_per_sec / off->ops_per_sec);
    else bench_table_set(t, 8, "-");
}

static void goals(const bench_options *o, size_t wi, const bench_run *agg, const bool *ran)
{
    (void)o;
    (void)ran;
    print_goal(agg, IMPL_SIMPLE, IMPL_OFF, 0.95);
    print_goal(agg, IMPL_PARANOID, IMPL_OFF, 0.33);
    print_goal(agg, IMPL_SCOPE, IMPL_PARANOID, 0.95); /* inside a scope: at most PARANOID's cost, within noise */
    if (strcmp(workloads[wi].name, "alloc-release-64") == 0) print_goal(agg, IMPL_OFF, IMPL_RAW, 0.77);
}

static const char *workload_name(size_t wi) { return workloads[wi].name; }

static unsigned workload_threads(size_t wi) { return workloads[wi].threads; }

/* pool-raw has no counterpart for retain-release and slice-release; a scope has nothing to track in
 * retain-release. */
static bool applies(size_t wi, unsigned impl)
{
    if (impl == IMPL_RAW) return workloads[wi].raw;
    if (impl == IMPL_SCOPE) return workloads[wi].run != run_retain;
    return true;
}

static void list(void)
{
    printf("%-17s %-9s %9s %-8s %s\n", "workload", "threads", "scale 1", "of", "what");
    for (size_t i = 0; i < NWORKLOADS; i++)
        printf("%-17s %-9u %9llu %-8s %s%s\n", workloads[i].name, workloads[i].threads,
               (unsigned long long)workloads[i].count, workloads[i].unit, workloads[i].summary,
               workloads[i].raw ? "" : " (no pool-raw)");
}

static const bench_suite suite = {
    .name = "buf",
    .usage = "usage: ohm-bench buf [options]\n" BENCH_USAGE_WORKLOAD
             "  --impl NAME[,NAME]      ohm-off, ohm-simple, ohm-advanced, ohm-paranoid, pool-raw, ohm-scope\n"
             "                          (default all)\n"
             "  --reps N                runs per workload and impl (default 3; best ops/s, median RSS)\n"
             "  --scale F               multiplies iteration counts (default 1)\n" BENCH_USAGE_JSON BENCH_USAGE_TIMEOUT
                 BENCH_USAGE_VERBOSE_LIST,
    .default_timeout_s = DEFAULT_TIMEOUT_S,
    .banner_ratio = "vs ohm-off = impl ops/s / ohm-off ops/s",
    .impl_names = impl_names,
    .nimpls = IMPL_COUNT,
    .impl_hint = "ohm-off, ohm-simple, ohm-advanced, ohm-paranoid, pool-raw, ohm-scope",
    .nworkloads = NWORKLOADS,
    BENCH_SUITE_FUNCTIONS,
    .workload_threads = workload_threads,
    .threads = BENCH_THREADS_CHILD,
    .applies = applies,
    .extra_headers = {"vs ohm-off"},
    .ratio_cell = ratio_cell,
    .goals = goals,
};

int bench_buf_main(int argc, char **argv) { return bench_suite_main(&suite, argc, argv); }
