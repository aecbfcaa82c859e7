/* Helpers shared by every ohm-bench subcommand: time, memory readings, a seeded PRNG, an optimization sink,
 * child processes, one-line JSON, and aligned text tables.
 *
 * The measuring helpers (time, RSS, PRNG, sink) run inside a benchmark child while the allocator under test is
 * live, so they never call malloc, stdio or anything else that could allocate: their numbers must describe the
 * allocator, not the harness. The rest (children, JSON parsing, tables) runs in the parent and may allocate.
 */
#ifndef OHM_BENCH_UTIL_H
#define OHM_BENCH_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "harness.h"

/* ---- failing loudly ------------------------------------------------------------------------------------- */

/* Prints "ohm-bench: <message>" to stderr and exits with status code. For a harness, stopping at once with a
 * clear line is the useful reaction to a broken invariant (a corrupted block, an allocator that is not the
 * one asked for). */
__attribute__((noreturn, format(printf, 2, 3))) void bench_die(int code, const char *fmt, ...);
/* Prints "ohm-bench: <message>" to stderr and returns. */
__attribute__((format(printf, 1, 2))) void bench_warn(const char *fmt, ...);

/* ---- time and memory (allocation-free): the clock and RSS readings are harness.h's ---------------------- */

/* Zeroed, resident memory straight from mmap, for a workload's own bookkeeping, so that the allocator under
 * test neither serves it nor counts it. Never NULL (dies instead). */
void *bench_map(size_t size);
void bench_unmap(void *p, size_t size);

/* ---- seeded PRNG (splitmix64): the same sequence in every child, whatever the allocator ------------------ */

typedef struct bench_rng {
    uint64_t state;
} bench_rng;

static inline bench_rng bench_rng_seed(uint64_t seed)
{
    bench_rng r = {seed};
    return r;
}

static inline uint64_t bench_rng_next(bench_rng *r) { return harness_splitmix64(&r->state); }

__extension__ typedef unsigned __int128 bench_u128;

/* Uniform in [0, n) for n >= 1, by Lemire's multiply-shift; the tiny bias is irrelevant for workloads. */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n)
{
    return (uint64_t)(((bench_u128)bench_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t bench_rng_range(bench_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + bench_rng_below(r, hi - lo + 1);
}

/* Uniform in [0, 1). */
static inline double bench_rng_unit(bench_rng *r) { return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53; }

/* Forces the compiler to compute v without storing it anywhere: the empty asm "uses" it. */
static inline void bench_consume(uint64_t v) { __asm__ volatile("" : : "r"(v) : "memory"); }

/* max(1, round(base * scale)): iteration counts under --scale. */
uint64_t bench_scaled(uint64_t base, double scale);

/* ---- child processes ------------------------------------------------------------------------------------ */

typedef struct bench_child {
    const char *const *argv; /* argv[0] is only a name: the program run is always /proc/self/exe */
    const char *preload;     /* LD_PRELOAD for the child; NULL removes LD_PRELOAD from its environment */
    unsigned timeout_s;      /* SIGALRM kills the child after this long; 0 = no limit */
} bench_child;

/* Runs this same binary (/proc/self/exe) with c->argv and the environment changed as c says; its stdout
 * comes back through a pipe, its stderr is shared. Copies the last line of stdout that starts with '{' into
 * line. Returns 0 on success; otherwise -1 with why filled (spawn failure, exit status, signal, no line). */
int bench_run_child(const bench_child *c, char *line, size_t line_cap, char *why, size_t why_cap);

/* ---- one-line JSON: written with the core's json.h, read back here ------------------------------------------- */

/* Writes a whole line to fd with write(2) (no stdio buffer to allocate). false on failure. */
bool bench_write_all(int fd, const char *s);

/* Reads the value of "key" from a flat JSON object line as printed above. false if absent or malformed. */
bool bench_json_get_f64(const char *line, const char *key, double *out);
bool bench_json_get_u64(const char *line, const char *key, uint64_t *out);
bool bench_json_get_str(const char *line, const char *key, char *out, size_t cap);

/* ---- options -------------------------------------------------------------------------------------------- */

/* The value of option opt at argv[*i] ("--opt value" or "--opt=value"), advancing *i past it; NULL if argv[*i]
 * is not opt or has no value. */
const char *bench_option_value(int argc, char **argv, int *i, const char *opt);
/* Whether arg is option opt, with or without "=value" (so "--reps" and "--reps=3", not "--repsx"). */
bool bench_is_option(const char *arg, const char *opt);
/* The options every subcommand shares: --json, --verbose/-v, --child, --list, --reps N, --scale F, --timeout S. */
typedef struct bench_common {
    bool json, verbose, child, list;
    unsigned reps, timeout_s;
    double scale;
} bench_common;
/* Defaults: 3 reps, scale 1, the given timeout. */
void bench_common_init(bench_common *c, unsigned timeout_s);
/* Parses argv[*i] if it is a shared option (advancing *i past a value): 1 if it was, 0 if it is not one of them,
 * -1 for --help/-h (the caller prints its usage), 2 for a bad or missing value (already warned). */
int bench_common_option(int argc, char **argv, int *i, bench_common *c);
/* Strict number parsing for command-line values: the whole string must be a number in range. */
bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool bench_parse_f64(const char *s, double min, double max, double *out);
/* Calls fn(item, arg) for each non-empty item of a comma-separated list; stops at and returns the first
 * nonzero result. The item is a NUL-terminated copy (at most 63 characters; longer items are cut). */
int bench_for_each_item(const char *list, int (*fn)(const char *item, void *arg), void *arg);

/* The lines of a subcommand's --help that every subcommand words the same way. */
#define BENCH_USAGE_WORKLOAD "  --workload NAME[,NAME]  workloads to run (repeatable; default all; --list names them)\n"
#define BENCH_USAGE_JSON     "  --json                  one JSON object per line per (workload, impl) instead of tables\n"
#define BENCH_USAGE_TIMEOUT  "  --timeout S             kill a run after S seconds (default 600; 0 = never)\n"
#define BENCH_USAGE_VERBOSE_LIST                                     \
    "  --verbose               print every run's result on stderr\n" \
    "  --list                  list the workloads and exit\n"

/* ---- runs: one child's result, and their aggregate over the reps ---------------------------------------- */

#define BENCH_MAX_REPS 100 /* the most --reps a subcommand accepts: the bound of its per-rep arrays */

/* One (workload, impl) result: a child's, or the aggregate of several. ok is false for a failed run. */
typedef struct bench_run {
    bool ok;
    double ops_per_sec;
    uint64_t threads, peak_rss, live_peak, rss_before, rss_after;
} bench_run;

/* What one child measured. A workload fills ops, ns, live_peak and (by bench_mark_start) rss_before;
 * bench_child_report fills the rest. */
typedef struct bench_result {
    uint64_t ops;        /* operations in the timed part */
    uint64_t ns;         /* wall time of the timed part */
    uint64_t live_peak;  /* most bytes live at once */
    uint64_t rss_before; /* RSS when the workload marked its start */
    uint64_t peak_rss;   /* VmHWM, reset at rss_before when the kernel allows it */
    uint64_t rss_after;  /* RSS after the default pool was trimmed */
} bench_result;

/* A workload's start, after its setup: rss_before now, and the peak-RSS mark reset. Allocation-free. */
void bench_mark_start(bench_result *r);
/* A child's end: reads the peak RSS, trims ohm's default pool, reads rss_after, and prints the result line of
 * (bench, workload, impl) with write(2). */
void bench_child_report(const char *bench, const char *workload, const char *impl, unsigned threads, bench_result *r);
/* The printing half of bench_child_report, for a child that took peak_rss and rss_after itself (after its own
 * trim). */
void bench_child_print(const char *bench, const char *workload, const char *impl, unsigned threads,
                       const bench_result *r);

/* One thread of bench_run_threads: its work, and its times. Each thread times itself: the main thread may not run
 * again until they are done. */
typedef struct bench_thread {
    void *arg;  /* what the workload's thread works on */
    uint64_t n; /* how many operations it does */
    pthread_barrier_t *start;
    uint64_t t0, t1;
} bench_thread;

/* In a bench_run_threads thread, after its warm-up: waits for every other thread, then takes its start time. */
void bench_thread_start(bench_thread *t);
/* Takes the thread's end time. */
void bench_thread_end(bench_thread *t);
/* Starts n threads (at most 8), thread i running fn(&t[i]); marks r's start (bench_mark_start) once they all run,
 * then releases them together and joins them. Returns the time from the first thread's start to the last one's end,
 * in nanoseconds. Dies if a thread cannot start. */
uint64_t bench_run_threads(unsigned n, void *(*fn)(void *), bench_thread *t, bench_result *r);

/* The median of v[0..n) (the lower one for an even n, 0 for none); sorts v in place. */
uint64_t bench_median_u64(uint64_t *v, unsigned n);
/* Best (max) ops/s and the median of each RSS figure and live peak over the ok runs among runs[0..n), n at most
 * BENCH_MAX_REPS; ok is false if every run failed. */
bench_run bench_run_aggregate(const bench_run *runs, unsigned n);
/* Prints run as one JSON line: bench, workload, impl, threads, ops_per_sec, peak_rss_bytes, live_peak_bytes,
 * rss_before_bytes, rss_after_bytes. out NULL (a child): to stdout with write(2), which needs no stdio buffer from
 * the allocator under test and no flush before exit. */
void bench_run_print(const char *bench, const char *workload, const char *impl, const bench_run *run, FILE *out);
/* Reads a line printed by bench_run_print into run (zeroed first); run->ok and the result are false if a key is
 * missing. */
bool bench_run_parse(const char *line, bench_run *run);
/* Runs a benchmark child (bench_run_child) and reads its result line (bench_run_parse). A failed run has ok false
 * and was reported on stderr, named "<workload> (<threads> threads), <impl>, rep <rep+1>" (threads 0 or impl NULL:
 * that part left out; a line that does not parse leaves out the threads). */
bench_run bench_child_result(const bench_child *c, unsigned rep, const char *workload, unsigned threads,
                             const char *impl);

/* ---- human-readable numbers and tables ------------------------------------------------------------------ */

/* "512.0M", "3.2G", "812K", "96B": binary units, for table cells. Returns buf. */
const char *bench_fmt_bytes(char *buf, size_t cap, uint64_t bytes);
/* "123.4M", "5.67k": decimal units for rates. Returns buf. */
const char *bench_fmt_rate(char *buf, size_t cap, double per_sec);

#define BENCH_TABLE_MAX_COLS 16
#define BENCH_TABLE_MAX_ROWS 32
#define BENCH_TABLE_CELL     24

/* A text table whose columns are sized to their widest cell; the first column is left-aligned, the others
 * right-aligned (numbers). Rows beyond BENCH_TABLE_MAX_ROWS and text beyond a cell's size are cut. */
typedef struct bench_table {
    unsigned ncols, nrows;
    char cells[BENCH_TABLE_MAX_ROWS + 1][BENCH_TABLE_MAX_COLS][BENCH_TABLE_CELL]; /* row 0: headers */
} bench_table;

void bench_table_init(bench_table *t, unsigned ncols, const char *const headers[]);
/* Starts a new row and returns its index, or -1 if the table is full. */
int bench_table_row(bench_table *t);
/* Sets a cell of the current (last) row with printf formatting. */
__attribute__((format(printf, 3, 4))) void bench_table_set(bench_table *t, unsigned col, const char *fmt, ...);
void bench_table_print(const bench_table *t, FILE *out);

/* The first 8 columns of a result row in the current row of t: impl, threads, ops/s, ns/op, peak RSS, live
 * peak, RSS before, RSS after ("failed" after the impl if !run->ok). Returns run->ok. */
bool bench_table_set_run(bench_table *t, const char *impl, const bench_run *run);
/* The two opening lines of a report in tables, on stdout: "ohm-bench <bench>: scale, reps, CPUs, kernel", then
 * how bench_run_aggregate reads the reps and what the ratio column is (ratio, e.g. "vs x = impl / x"). */
void bench_print_banner(const char *bench, double scale, unsigned reps, const char *ratio);

/* ---- a subcommand as a descriptor: options, workload and impl choice, the rep loop, tables and JSON ---------- */

#define BENCH_MAX_WORKLOADS 32
#define BENCH_MAX_IMPLS     8

/* A subcommand's options as bench_suite_main parsed them. Workloads and impls are indexes into its tables. */
typedef struct bench_options {
    bench_common c;                       /* --json, --verbose, --child, --list, --reps, --scale, --timeout */
    bool want[BENCH_MAX_WORKLOADS];       /* the workloads chosen (all when none was named) */
    unsigned chosen[BENCH_MAX_WORKLOADS]; /* the same, in the order they were named */
    unsigned nchosen;
    unsigned impls[BENCH_MAX_IMPLS]; /* the impls chosen, in the order to run and print (all by default) */
    unsigned nimpls;
    unsigned threads; /* --threads N: only the N-thread variants (0 = any) */
    /* With a loaded table (bench_suite.load): each --workload and --impl value as given, matched after the load;
     * a child, which does not load, reads them as they are. */
    const char *lists[2][BENCH_MAX_WORKLOADS];
    unsigned nlists[2];
    /* In a child of a suite with workload_threads: the one chosen workload whose threads match --threads, if
     * given (several: the child dies with status 2); SIZE_MAX if none. */
    size_t child_workload;
    char scale_arg[32]; /* --scale for a child's command line, exact ("%.17g") */
} bench_options;

/* What --threads does in a subcommand. */
typedef enum bench_threads_option {
    BENCH_THREADS_NONE,   /* no such option */
    BENCH_THREADS_CHILD,  /* the parent passes it to pick a child's variant; the parent runs all variants */
    BENCH_THREADS_FILTER, /* as CHILD, and the parent runs only the N-thread variants */
} bench_threads_option;

/* One subcommand: its tables and the few steps that differ from one subcommand to another. Each run is a fresh
 * child (run_child); impls run interleaved, their order rotating from rep to rep; best ops/s and median RSS over
 * the reps; one JSON line per (workload, impl) with --json, else a table per workload with its goal lines. */
/* Every subcommand defines these five functions under these names (see bench_suite's fields for each one's
 * contract); its descriptor names them with BENCH_SUITE_FUNCTIONS. */
#define BENCH_SUITE_FUNCTIONS \
    .workload_name = workload_name, .list = list, .child = child_main, .run_child = run_child, .heading = heading

typedef struct bench_suite {
    const char *name;  /* "buf": the subcommand, and "bench" in its JSON lines */
    const char *usage; /* the whole --help text */
    unsigned default_timeout_s;
    const char *banner_ratio; /* the banner's second line's end: how to read the ratio column */
    const char *const *impl_names;
    unsigned nimpls;
    const char *impl_noun; /* "impl" (NULL) or what the subcommand calls one ("allocator") */
    const char *impl_hint; /* after "unknown impl 'x'": the valid names, in parentheses */
    size_t nworkloads;     /* at most BENCH_MAX_WORKLOADS */
    const char *(*workload_name)(size_t w);
    bench_threads_option threads;
    unsigned (*workload_threads)(size_t w);   /* a workload's threads (NULL: no variants by threads) */
    bool (*applies)(size_t w, unsigned impl); /* whether impl runs workload w; NULL: always */
    /* The impls to run on workload w, in the order to run and print them, into order[]; returns how many
     * (NULL: o->impls where applies). A workload with none is left out. */
    unsigned (*impl_order)(const bench_options *o, size_t w, unsigned *order);
    bool given_order; /* run the workloads in the order named, not in the table's */
    bool progress;    /* show "workload: rep i/n, impl" on stderr when it is a terminal */
    /* alloc's wording: "unknown option 'x'", and a known option missing its value exits with no message. */
    bool terse_option_errors;
    /* The subcommand's own options (NULL: none): 1 if argv[*i] was one (advancing *i past its value), 0 if not,
     * 2 for a bad value (already warned). */
    int (*option)(int argc, char **argv, int *i);
    /* A table known only at run time (NULL: the tables are static): in the parent, after the options, fills
     * nworkloads, workload_name, impl_names and nimpls of the suite (whose object is then not const); a nonzero
     * result is the exit status. Workload names are then checked against it; impl names are matched loosely (an
     * unknown one runs nothing, as an impl missing from a workload would). */
    int (*load)(const bench_options *o);
    /* Before the parent runs (NULL: nothing): may drop impls; a nonzero result is the exit status. */
    int (*prepare)(bench_options *o);
    void (*banner)(const bench_options *o); /* replaces the standard banner (NULL: bench_print_banner) */
    void (*list)(void);                     /* --list */
    int (*child)(const bench_options *o);   /* --child: runs one workload with one impl, prints its JSON line */
    /* Runs one child and reads its result (a failed run has ok false, and said why on stderr). */
    bench_run (*run_child)(const bench_options *o, size_t w, unsigned impl, unsigned rep);
    void (*heading)(const bench_options *o, size_t w); /* the line above a workload's table */
    const char *extra_headers[4];          /* the table's columns after the 8 of bench_table_set_run (NULL-ended) */
    const char *(*ratio_header)(size_t w); /* workload w's first extra header (NULL: extra_headers[0]) */
    unsigned (*columns)(size_t w);         /* how many of those columns workload w's table shows (NULL: all) */
    /* Fills the extra columns (8 on) of impl's row in workload w's table (only called for an ok run). */
    void (*ratio_cell)(bench_table *t, size_t w, const bench_run *agg, const bool *ran, unsigned impl);
    /* Goal lines under a workload's table (NULL: none); agg and ran are indexed by impl. */
    void (*goals)(const bench_options *o, size_t w, const bench_run *agg, const bool *ran);
    /* Goal lines after every table (NULL: none); agg[w][impl]. */
    void (*final_goals)(const bench_options *o, const bench_run (*agg)[BENCH_MAX_IMPLS]);
} bench_suite;

/* The whole subcommand: parses argv (argv[0] is the subcommand's name) and runs it. Returns the exit status:
 * 0, 1 if a run failed, 2 for a usage error. */
int bench_suite_main(const bench_suite *s, int argc, char **argv);

#endif /* OHM_BENCH_UTIL_H */
