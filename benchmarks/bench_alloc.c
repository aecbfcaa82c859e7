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

#define MAX_WORKLOADS     32
#define DEFAULT_TIMEOUT_S 600
#define PRELOAD_CAP       4096 /* a library path */

static char preload[ALLOC_IMPL_COUNT][PRELOAD_CAP]; /* the parent's: each impl's LD_PRELOAD ("" for none) */

/* ---- the child ------------------------------------------------------------------------------------------- */

static void *book; /* the child's workload's bookkeeping (alloc_book), unmapped after rss_after */
static size_t book_size;

void *alloc_book(size_t size)
{
    if (book) bench_die(4, "a workload asked for bookkeeping twice");
    book = bench_map(size);
    book_size = size;
    return book;
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
            if (!held[i]) alloc_oom(a, "warm-up", sizes[s]);
            alloc_stamp(held[i], sizes[s], (uint64_t)i);
        }
        for (int i = 0; i < 8; i++) alloc_free(a, held[i]);
    }
}

static int child_main(const bench_options *o)
{
    if (o->nimpls != 1 || o->nchosen != 1) bench_die(2, "--child needs exactly one --impl and one --workload");
    const alloc_workload *w = alloc_workload_at(o->chosen[0]);
    alloc_api api;
    alloc_impl_bind((alloc_impl)o->impls[0], &api);
    warm_up(&api);
    bench_result r = {0};
    w->run(w, &api, o->c.scale, &r);
    if (r.rss_before == 0) bench_die(4, "%s did not mark its start, or /proc/self/statm is unreadable", w->name);
    r.peak_rss = harness_peak_rss_bytes();
    api.trim(&api);
    r.rss_after = harness_rss_bytes();
    bench_unmap(book, book_size);
    bench_child_print("alloc", w->name, alloc_impl_name((alloc_impl)o->impls[0]), w->threads, &r);
    return 0;
}

/* ---- output ---------------------------------------------------------------------------------------------- */

static bool is_frag(const alloc_workload *w) { return strcmp(w->name, "frag") == 0; }

static unsigned columns(size_t wi) { return is_frag(alloc_workload_at(wi)) ? 3 : 1; }

/* "ohm ratio" (ohm's ops/s over the impl's), and for frag "peak/live" and "after/before". */
static void ratio_cell(bench_table *t, size_t wi, const bench_run *agg, const bool *ran, unsigned impl)
{
    (void)wi;
    (void)ran;
    const bench_run *ohm = agg[ALLOC_OHM].ok ? &agg[ALLOC_OHM] : NULL;
    const bench_run *a = &agg[impl];
    if (ohm && a->ops_per_sec > 0) bench_table_set(t, 8, "%.2fx", ohm->ops_per_sec / a->ops_per_sec);
    else bench_table_set(t, 8, "-");
    bench_table_set(t, 9, "%.2f", a->live_peak ? (double)a->peak_rss / (double)a->live_peak : 0.0);
    bench_table_set(t, 10, "%.2f", a->rss_before ? (double)a->rss_after / (double)a->rss_before : 0.0);
}

static void heading(const bench_options *o, size_t wi)
{
    const alloc_workload *w = alloc_workload_at(wi);
    printf("\n%s (%u thread%s, %llu %s per run): %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
           (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit, w->summary);
}

static void banner(const bench_options *o)
{
    bench_print_banner("alloc", o->c.scale, o->c.reps, "ohm ratio = ohm ops/s / impl ops/s (>= 1: ohm faster)");
    for (unsigned k = 0; k < o->nimpls; k++)
        if (preload[o->impls[k]][0]) printf("%s: %s\n", alloc_impl_name((alloc_impl)o->impls[k]), preload[o->impls[k]]);
    fflush(stdout);
}

/* ---- the parent ------------------------------------------------------------------------------------------ */

/* Runs one child; returns its parsed result (ok false after a warning if it failed). */
static bench_run run_child(const bench_options *o, size_t wi, unsigned impl_index, unsigned rep)
{
    const alloc_workload *w = alloc_workload_at(wi);
    alloc_impl impl = (alloc_impl)impl_index;
    const char *argv[] = {"ohm-bench",  "alloc", "--child", "--impl",     alloc_impl_name(impl),
                          "--workload", w->name, "--scale", o->scale_arg, NULL};
    bench_child c = {argv, preload[impl][0] ? preload[impl] : NULL, o->c.timeout_s};
    bench_run run = bench_child_result(&c, rep, w->name, 0, alloc_impl_name(impl));
    if (run.ok && o->c.verbose)
        fprintf(stderr, "  %-12s %-9s rep %u: %.4g ops/s\n", w->name, alloc_impl_name(impl), rep + 1, run.ops_per_sec);
    return run;
}

/* Drops the impls whose library cannot be found (reported, not fatal); fills preload[impl]. */
static int prepare(bench_options *o)
{
    unsigned kept = 0;
    for (unsigned k = 0; k < o->nimpls; k++) {
        char why[512];
        if (alloc_impl_preload((alloc_impl)o->impls[k], preload[o->impls[k]], PRELOAD_CAP, why, sizeof why))
            o->impls[kept++] = o->impls[k];
        else bench_warn("%s", why);
    }
    o->nimpls = kept;
    if (o->nimpls == 0) {
        bench_warn("no allocator left to measure");
        return 1;
    }
    return 0;
}

/* ---- the descriptor -------------------------------------------------------------------------------------- */

static void list(void)
{
    const alloc_workload *w;
    printf("%-13s %-10s %9s %-12s %s\n", "workload", "threads", "scale 1", "of", "what");
    for (size_t i = 0; (w = alloc_workload_at(i)); i++)
        printf("%-13s %u thread%-2s %9llu %-12s %s\n", w->name, w->threads, w->threads == 1 ? "" : "s",
               (unsigned long long)w->count, w->unit, w->summary);
}

static const char *workload_name(size_t wi) { return alloc_workload_at(wi)->name; }

int bench_alloc_main(int argc, char **argv)
{
    static const char *impl_names[ALLOC_IMPL_COUNT];
    for (int i = 0; i < ALLOC_IMPL_COUNT; i++) impl_names[i] = alloc_impl_name((alloc_impl)i);
    size_t n = 0;
    while (alloc_workload_at(n)) n++;
    const bench_suite suite = {
        .name = "alloc",
        .usage = "usage: ohm-bench alloc [options]\n" BENCH_USAGE_WORKLOAD
                 "  --impl NAME[,NAME]      allocators, in this order (default ohm,glibc,jemalloc,mimalloc,tcmalloc)\n"
                 "  --reps N                runs per workload and allocator (default 3; best ops/s, median RSS)\n"
                 "  --scale F               multiplies iteration counts and frag's live target (default "
                 "1)\n" BENCH_USAGE_JSON BENCH_USAGE_TIMEOUT BENCH_USAGE_VERBOSE_LIST
                 "peer libraries: found in the multiarch/usual library directories, or set OHM_BENCH_JEMALLOC,\n"
                 "OHM_BENCH_MIMALLOC, OHM_BENCH_TCMALLOC to a path; OHM_* settings reach ohm's default pool.\n",
        .default_timeout_s = DEFAULT_TIMEOUT_S,
        .impl_names = impl_names,
        .nimpls = ALLOC_IMPL_COUNT,
        .impl_noun = "allocator",
        .impl_hint = "ohm, glibc, jemalloc, mimalloc, tcmalloc",
        .nworkloads = n < BENCH_MAX_WORKLOADS ? n : BENCH_MAX_WORKLOADS,
        BENCH_SUITE_FUNCTIONS,
        .threads = BENCH_THREADS_NONE,
        .given_order = true,
        .progress = true,
        .terse_option_errors = true,
        .prepare = prepare,
        .banner = banner,
        .extra_headers = {"ohm ratio", "peak/live", "after/before"},
        .columns = columns,
        .ratio_cell = ratio_cell,
    };
    return bench_suite_main(&suite, argc, argv);
}
