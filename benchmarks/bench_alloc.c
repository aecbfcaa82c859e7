/* ohm-bench alloc: runs each workload over ohm and its peers and prints each peer's ratio to ohm.
 *
 * The parent never allocates on behalf of a workload: for each (workload, rep, impl) it starts a fresh child
 * (this binary, `--child`, with LD_PRELOAD naming the peer's library, or unset for ohm and glibc), reads the
 * one JSON line the child prints, and aggregates. Within a rep the impls run back to back, and the order
 * rotates from rep to rep, so the drift of a shared machine falls on all of them alike.
 *
 * Aggregation: ops/s is the best (max) over reps, the usual estimate of what an allocator can do when the
 * machine does not interfere; each RSS figure (and live_peak) is the median over reps, since memory use does
 * not get "better" by luck and the median ignores one odd run.
 */
#define _GNU_SOURCE
#include "bench_alloc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_util.h"

#define MAX_WORKLOADS 32
#define DEFAULT_TIMEOUT_S 600
#define PRELOAD_CAP 4096 /* a library path */

typedef struct alloc_options {
    bench_common c; /* --json, --verbose, --child, --list, --reps, --scale, --timeout */
    alloc_impl impls[ALLOC_IMPL_COUNT]; /* in the order to run and print */
    unsigned nimpls;
    const alloc_workload *workloads[MAX_WORKLOADS];
    unsigned nworkloads;
} alloc_options;

/* ---- the child ------------------------------------------------------------------------------------------- */

void alloc_mark_start(alloc_result *r)
{
    r->rss_before = harness_rss_bytes();
    harness_reset_peak_rss();
}

void *alloc_book(alloc_result *r, size_t size)
{
    if (r->book)
        bench_die(4, "a workload asked for bookkeeping twice");
    r->book = bench_map(size);
    r->book_size = size;
    return r->book;
}

void alloc_oom(const alloc_api *a, const char *workload, size_t size)
{
    bench_die(4, "%s, %s: allocating %zu bytes returned NULL", alloc_impl_name(a->impl), workload, size);
}

void alloc_corrupt(const alloc_api *a, const char *workload, const void *p, size_t size)
{
    bench_die(4, "%s, %s: the block at %p (%zu bytes) lost its stamp: memory handed out twice or corrupted",
              alloc_impl_name(a->impl), workload, p, size);
}

/* A few blocks of each size range, so that first-use setup (the thread cache, the first chunk, tables) is
 * already in rss_before and outside the timed part. */
static void warm_up(const alloc_api *a)
{
    static const size_t sizes[] = {16, 64, 256, 1024, 4096, 16384, 65536, 262144};
    void *held[8];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int i = 0; i < 8; i++) {
            held[i] = a->alloc(sizes[s]);
            if (!held[i])
                alloc_oom(a, "warm-up", sizes[s]);
            alloc_stamp(held[i], sizes[s], (uint64_t)i);
        }
        for (int i = 0; i < 8; i++)
            alloc_free(a, held[i]);
    }
}

static int child_main(const alloc_options *o)
{
    if (o->nimpls != 1 || o->nworkloads != 1)
        bench_die(2, "--child needs exactly one --impl and one --workload");
    const alloc_workload *w = o->workloads[0];
    alloc_api api;
    alloc_impl_bind(o->impls[0], &api);
    warm_up(&api);
    alloc_result r = {0};
    w->run(w, &api, o->c.scale, &r);
    if (r.rss_before == 0)
        bench_die(4, "%s did not mark its start, or /proc/self/statm is unreadable", w->name);
    r.peak_rss = harness_peak_rss_bytes();
    api.trim(&api);
    r.rss_after = harness_rss_bytes();
    bench_unmap(r.book, r.book_size);
    bench_run run = {
        .ok = true,
        .ops_per_sec = r.ns ? (double)r.ops * 1e9 / (double)r.ns : 0.0,
        .threads = w->threads,
        .peak_rss = r.peak_rss,
        .live_peak = r.live_peak,
        .rss_before = r.rss_before,
        .rss_after = r.rss_after,
    };
    bench_run_print("alloc", w->name, alloc_impl_name(o->impls[0]), &run, NULL);
    return 0;
}

/* ---- output ---------------------------------------------------------------------------------------------- */

static bool is_frag(const alloc_workload *w)
{
    return strcmp(w->name, "frag") == 0;
}

static void print_table(const alloc_options *o, const alloc_workload *w, const bench_run *agg)
{
    static const char *const headers[] = {"impl",      "threads",    "ops/s",     "ns/op",
                                          "peak RSS",  "live peak",  "RSS before", "RSS after",
                                          "ohm ratio", "peak/live",  "after/before"};
    bench_table t;
    bench_table_init(&t, is_frag(w) ? 11 : 9, headers);
    const bench_run *ohm = agg[ALLOC_OHM].ok ? &agg[ALLOC_OHM] : NULL;
    for (unsigned k = 0; k < o->nimpls; k++) {
        alloc_impl impl = o->impls[k];
        const bench_run *a = &agg[impl];
        bench_table_row(&t);
        if (!bench_table_set_run(&t, alloc_impl_name(impl), a))
            continue;
        if (ohm && a->ops_per_sec > 0)
            bench_table_set(&t, 8, "%.2fx", ohm->ops_per_sec / a->ops_per_sec);
        else
            bench_table_set(&t, 8, "-");
        bench_table_set(&t, 9, "%.2f", a->live_peak ? (double)a->peak_rss / (double)a->live_peak : 0.0);
        bench_table_set(&t, 10, "%.2f", a->rss_before ? (double)a->rss_after / (double)a->rss_before : 0.0);
    }
    printf("\n%s (%u thread%s, %llu %s per run): %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
           (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit, w->summary);
    bench_table_print(&t, stdout);
    fflush(stdout);
}

static void print_header(const alloc_options *o, char preload[][PRELOAD_CAP])
{
    bench_print_banner("alloc", o->c.scale, o->c.reps, "ohm ratio = ohm ops/s / impl ops/s (>= 1: ohm faster)");
    for (unsigned k = 0; k < o->nimpls; k++)
        if (preload[o->impls[k]][0])
            printf("%s: %s\n", alloc_impl_name(o->impls[k]), preload[o->impls[k]]);
    fflush(stdout);
}

/* ---- the parent ------------------------------------------------------------------------------------------ */

/* Runs one child; returns its parsed result (ok false after a warning if it failed). */
static bench_run run_child(const alloc_options *o, const alloc_workload *w, alloc_impl impl, const char *preload,
                           unsigned rep)
{
    char scale[32];
    snprintf(scale, sizeof scale, "%.17g", o->c.scale);
    const char *argv[] = {"ohm-bench", "alloc", "--child", "--impl", alloc_impl_name(impl),
                          "--workload", w->name, "--scale", scale, NULL};
    bench_child c = {argv, preload[0] ? preload : NULL, o->c.timeout_s};
    char line[1024], why[256];
    bench_run run = {0};
    if (bench_run_child(&c, line, sizeof line, why, sizeof why) != 0)
        bench_warn("%s, %s, rep %u: the child %s", w->name, alloc_impl_name(impl), rep + 1, why);
    else if (!bench_run_parse(line, &run))
        bench_warn("%s, %s, rep %u: cannot parse the child's line: %s", w->name, alloc_impl_name(impl), rep + 1,
                   line);
    else if (o->c.verbose)
        fprintf(stderr, "  %-12s %-9s rep %u: %.4g ops/s\n", w->name, alloc_impl_name(impl), rep + 1,
                run.ops_per_sec);
    return run;
}

/* All reps of one workload, impls interleaved; returns the number of failed runs. */
static unsigned run_workload(const alloc_options *o, const alloc_workload *w, char preload[][PRELOAD_CAP])
{
    bench_run runs[ALLOC_IMPL_COUNT][BENCH_MAX_REPS]; /* ~28 KiB */
    unsigned failed = 0;
    bool progress = !o->c.verbose && isatty(STDERR_FILENO);
    memset(runs, 0, sizeof runs);
    for (unsigned rep = 0; rep < o->c.reps; rep++)
        for (unsigned k = 0; k < o->nimpls; k++) {
            alloc_impl impl = o->impls[(k + rep) % o->nimpls];
            if (progress)
                fprintf(stderr, "\r\033[K%s: rep %u/%u, %s", w->name, rep + 1, o->c.reps, alloc_impl_name(impl));
            runs[impl][rep] = run_child(o, w, impl, preload[impl], rep);
            failed += !runs[impl][rep].ok;
        }
    if (progress)
        fputs("\r\033[K", stderr);
    bench_run agg[ALLOC_IMPL_COUNT];
    for (unsigned i = 0; i < ALLOC_IMPL_COUNT; i++)
        agg[i] = bench_run_aggregate(runs[i], o->c.reps);
    if (!o->c.json) {
        print_table(o, w, agg);
        return failed;
    }
    for (unsigned k = 0; k < o->nimpls; k++)
        if (agg[o->impls[k]].ok)
            bench_run_print("alloc", w->name, alloc_impl_name(o->impls[k]), &agg[o->impls[k]], stdout);
    return failed;
}

/* Drops the impls whose library cannot be found (reported, not fatal); fills preload[impl]. */
static void resolve_impls(alloc_options *o, char preload[][PRELOAD_CAP])
{
    unsigned kept = 0;
    for (unsigned k = 0; k < o->nimpls; k++) {
        char why[512];
        if (alloc_impl_preload(o->impls[k], preload[o->impls[k]], PRELOAD_CAP, why, sizeof why))
            o->impls[kept++] = o->impls[k];
        else
            bench_warn("%s", why);
    }
    o->nimpls = kept;
}

static int parent_main(alloc_options *o)
{
    char preload[ALLOC_IMPL_COUNT][PRELOAD_CAP] = {{0}};
    resolve_impls(o, preload);
    if (o->nimpls == 0) {
        bench_warn("no allocator left to measure");
        return 1;
    }
    if (!o->c.json)
        print_header(o, preload);
    unsigned failed = 0;
    for (unsigned i = 0; i < o->nworkloads; i++)
        failed += run_workload(o, o->workloads[i], preload);
    if (failed)
        bench_warn("%u run%s failed (see above)", failed, failed == 1 ? "" : "s");
    return failed ? 1 : 0;
}

/* ---- options --------------------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs("usage: ohm-bench alloc [options]\n"
          "  --workload NAME[,NAME]  workloads to run (repeatable; default all; --list names them)\n"
          "  --impl NAME[,NAME]      allocators, in this order (default ohm,glibc,jemalloc,mimalloc,tcmalloc)\n"
          "  --reps N                runs per workload and allocator (default 3; best ops/s, median RSS)\n"
          "  --scale F               multiplies iteration counts and frag's live target (default 1)\n"
          "  --json                  one JSON object per line per (workload, impl) instead of tables\n"
          "  --timeout S             kill a run after S seconds (default 600; 0 = never)\n"
          "  --verbose               print every run's result on stderr\n"
          "  --list                  list the workloads and exit\n"
          "peer libraries: found in the multiarch/usual library directories, or set OHM_BENCH_JEMALLOC,\n"
          "OHM_BENCH_MIMALLOC, OHM_BENCH_TCMALLOC to a path; OHM_* settings reach ohm's default pool.\n",
          out);
}

static void list_workloads(void)
{
    const alloc_workload *w;
    printf("%-13s %-10s %9s %-12s %s\n", "workload", "threads", "scale 1", "of", "what");
    for (size_t i = 0; (w = alloc_workload_at(i)); i++)
        printf("%-13s %u thread%-2s %9llu %-12s %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
               (unsigned long long)w->count, w->unit, w->summary);
}

static int add_workload(const char *name, void *arg)
{
    alloc_options *o = arg;
    if (strcmp(name, "all") == 0) {
        const alloc_workload *w;
        for (size_t i = 0; (w = alloc_workload_at(i)); i++)
            if (add_workload(w->name, o) != 0)
                return 1;
        return 0;
    }
    const alloc_workload *w = alloc_workload_find(name);
    if (!w) {
        bench_warn("unknown workload '%s' (--list shows them)", name);
        return 1;
    }
    for (unsigned i = 0; i < o->nworkloads; i++)
        if (o->workloads[i] == w)
            return 0;
    if (o->nworkloads == MAX_WORKLOADS)
        return 1;
    o->workloads[o->nworkloads++] = w;
    return 0;
}

static int add_impl(const char *name, void *arg)
{
    alloc_options *o = arg;
    int impl = alloc_impl_parse(name);
    if (impl < 0) {
        bench_warn("unknown allocator '%s' (ohm, glibc, jemalloc, mimalloc, tcmalloc)", name);
        return 1;
    }
    for (unsigned i = 0; i < o->nimpls; i++)
        if (o->impls[i] == (alloc_impl)impl)
            return 0;
    o->impls[o->nimpls++] = (alloc_impl)impl;
    return 0;
}

/* Returns 0, or the exit status for a usage error (2) or --help (-1 meaning "exit 0"). */
static int parse_options(int argc, char **argv, alloc_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int shared = bench_common_option(argc, argv, &i, &o->c);
        if (shared == -1) {
            usage(stdout);
            return -1;
        }
        if (shared == 2)
            return 2;
        if (shared == 1)
            continue;
        if (bench_is_option(a, "--workload")) {
            if (!(v = bench_option_value(argc, argv, &i, "--workload")) || bench_for_each_item(v, add_workload, o))
                return 2;
        } else if (bench_is_option(a, "--impl")) {
            if (!(v = bench_option_value(argc, argv, &i, "--impl")) || bench_for_each_item(v, add_impl, o))
                return 2;
        } else {
            bench_warn("unknown option '%s'", a);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

static void default_options(alloc_options *o)
{
    memset(o, 0, sizeof *o);
    bench_common_init(&o->c, DEFAULT_TIMEOUT_S);
}

int bench_alloc_main(int argc, char **argv)
{
    alloc_options o;
    default_options(&o);
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (o.c.list) {
        list_workloads();
        return 0;
    }
    if (o.nimpls == 0)
        for (int i = 0; i < ALLOC_IMPL_COUNT; i++)
            o.impls[o.nimpls++] = (alloc_impl)i;
    if (o.nworkloads == 0)
        add_workload("all", &o);
    return o.c.child ? child_main(&o) : parent_main(&o);
}
