/* ohm-bench ffi: what a call through the libffi bridge (ohm_ffi_call) costs over a direct C call.
 *
 * The same contract as ohm-bench buf: one fresh child per (workload, rep, impl), impls interleaved with the order
 * rotating from rep to rep, best ops/s and median RSS over the reps, one JSON line per result with --json, else
 * a table per workload with the overhead column, and the goal after each table.
 *
 * impl: direct calls the C function from C (a plain call; the functions of our own are noipa, so the compiler
 * can neither inline them nor see what they return); ffi calls the same function through ohm_ffi_call with a
 * function prepared once, building the host's argument array for every call as a binding would. Both check every
 * result and the child dies on a wrong one, so neither can skip work. One op = one call.
 *
 * overhead: ffi ns/op - direct ns/op, from the best run of each. The goal: under 100 ns per call.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "bench.h"
#include "bench_util.h"
#include "ohm.h"
#include "ohm_bind.h"

#define DEFAULT_TIMEOUT_S 600
#define GOAL_OVERHEAD_NS  100.0
#define CRC_BYTES         64
#define STR_TEXT          "a host string of 32 characters!!" /* strlen: 32 */

typedef enum ffi_impl { IMPL_DIRECT = 0, IMPL_FFI, IMPL_COUNT } ffi_impl;

static const char *const impl_names[IMPL_COUNT] = {"direct", "ffi"};

typedef struct ffi_workload ffi_workload;
struct ffi_workload {
    const char *name;
    uint64_t count; /* calls at --scale 1 */
    const char *signature;
    const char *summary;
    void (*run)(const ffi_workload *w, ffi_impl impl, double scale, bench_result *r);
};

/* ---- the functions called ----------------------------------------------------------------------------------- */

__attribute__((noipa)) static int32_t fn_zero(void) { return 42; }

/* i32(ptr, u64, i32): reads the first byte behind p, so a buffer argument really reaches the callee. */
__attribute__((noipa)) static int32_t fn_three(void *p, uint64_t n, int32_t x)
{
    return x + (int32_t)n + *(const unsigned char *)p;
}

/* A pointer the compiler cannot see through: direct strlen of a constant would otherwise be folded away. */
static const char *launder(const char *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static ohm_ffi_fn *must_fn(ohm_ffi_lib *lib, void *code, const char *name, const char *sig)
{
    ohm_ffi_fn *fn = lib ? ohm_ffi_func(lib, name, sig) : ohm_ffi_func_ptr(code, name, sig);
    if (!fn) bench_die(4, "cannot prepare %s: %s", name, ohm_last_error());
    return fn;
}

static ohm_ffi_lib *must_open(const char *path)
{
    ohm_ffi_lib *lib = ohm_ffi_open(path);
    if (!lib) bench_die(4, "%s", ohm_last_error());
    return lib;
}

static ohm_buf *must_buf(size_t size)
{
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, size);
    if (!b) bench_die(4, "ohm_buf_alloc(%zu) failed: %s", size, ohm_last_error());
    return b;
}

static void wrong(const char *w, uint64_t i, uint64_t got, uint64_t want)
{
    bench_die(4, "%s: call %llu returned %llu, expected %llu", w, (unsigned long long)i, (unsigned long long)got,
              (unsigned long long)want);
}

/* Call i of workload w through the bridge; its result's 64 bits must equal want. Inline, as the direct loops' checks
 * are. */
static inline void must_return(const char *w, uint64_t i, const ohm_ffi_fn *fn, const ohm_ffi_arg *args, unsigned n,
                               uint64_t want)
{
    ohm_bind_value v;
    if (__builtin_expect(ohm_ffi_call(fn, args, n, &v) != 0, 0))
        bench_die(4, "ohm_ffi_call(%s) failed: %s", ohm_ffi_name(fn), ohm_last_error());
    if (__builtin_expect(v.u != want, 0)) wrong(w, i, v.u, want);
}

/* ---- workloads ---------------------------------------------------------------------------------------------- */

static void run_call0(const ffi_workload *w, ffi_impl impl, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    ohm_ffi_fn *fn = must_fn(NULL, (void *)fn_zero, "fn_zero", w->signature);
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    if (impl == IMPL_DIRECT) {
        for (uint64_t i = 0; i < n; i++)
            if (__builtin_expect(fn_zero() != 42, 0)) wrong(w->name, i, 0, 42);
    } else {
        for (uint64_t i = 0; i < n; i++) must_return(w->name, i, fn, NULL, 0, 42);
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    ohm_ffi_func_free(fn);
}

/* call-3 passes an ohm buffer (retained for the call, checked, zero-copy); call-3-ptr the same memory as a raw
 * address, which shows what the buffer's retain/release and range check cost inside the bridge. */
static void run_call3(const ffi_workload *w, ffi_impl impl, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    bool raw = strcmp(w->name, "call-3-ptr") == 0;
    ohm_ffi_fn *fn = must_fn(NULL, (void *)fn_three, "fn_three", w->signature);
    ohm_buf *b = must_buf(64);
    unsigned char *data = ohm_buf_data(b);
    data[0] = 7;
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    if (impl == IMPL_DIRECT) {
        for (uint64_t i = 0; i < n; i++) {
            int32_t x = (int32_t)(i & 0xffff), got = fn_three(data, 1000, x);
            if (__builtin_expect(got != x + 1007, 0)) wrong(w->name, i, (uint64_t)got, (uint64_t)(x + 1007));
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            int32_t x = (int32_t)(i & 0xffff);
            ohm_ffi_arg args[3] = {
                raw ? (ohm_ffi_arg){.kind = OHM_FFI_ARG_PTR, .v.p = data}
                    : (ohm_ffi_arg){.kind = OHM_FFI_ARG_BUF, .buf = b, .off = 0},
                {.kind = OHM_FFI_ARG_INT, .v.i = 1000},
                {.kind = OHM_FFI_ARG_INT, .v.i = x},
            };
            must_return(w->name, i, fn, args, 3, (uint64_t)(x + 1007));
        }
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    r->live_peak = 64;
    if (ohm_buf_refcnt(b) != 1)
        bench_die(4, "%s: the buffer's count is %u after the calls, expected 1", w->name, ohm_buf_refcnt(b));
    ohm_buf_release(b, 1);
    ohm_ffi_func_free(fn);
}

/* zlib's crc32 over a 64 B ohm buffer, from libz.so.1 in both cases (ohm-bench links zlib; the bridge dlopens
 * the same library). */
static void run_crc32(const ffi_workload *w, ffi_impl impl, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    ohm_ffi_lib *z = must_open("libz.so.1");
    ohm_ffi_fn *fn = must_fn(z, NULL, "crc32", w->signature);
    ohm_buf *b = must_buf(CRC_BYTES);
    unsigned char *data = ohm_buf_data(b);
    for (int i = 0; i < CRC_BYTES; i++) data[i] = (unsigned char)(i * 37 + 11);
    uLong want = crc32(0, data, CRC_BYTES);
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    if (impl == IMPL_DIRECT) {
        for (uint64_t i = 0; i < n; i++) {
            uLong got = crc32(0, data, CRC_BYTES);
            if (__builtin_expect(got != want, 0)) wrong(w->name, i, got, want);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            ohm_ffi_arg args[3] = {
                {.kind = OHM_FFI_ARG_INT, .v.i = 0},
                {.kind = OHM_FFI_ARG_BUF, .buf = b, .off = 0},
                {.kind = OHM_FFI_ARG_INT, .v.i = CRC_BYTES},
            };
            must_return(w->name, i, fn, args, 3, want);
        }
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    r->live_peak = CRC_BYTES;
    ohm_buf_release(b, 1);
    ohm_ffi_func_free(fn);
    ohm_ffi_close(z);
}

/* libc's strlen of a host string (str argument, passed as is), found in the process (dlopen(NULL)). */
static void run_strlen(const ffi_workload *w, ffi_impl impl, double scale, bench_result *r)
{
    uint64_t n = bench_scaled(w->count, scale);
    ohm_ffi_lib *self = must_open(NULL);
    ohm_ffi_fn *fn = must_fn(self, NULL, "strlen", w->signature);
    const size_t want = sizeof STR_TEXT - 1;
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    if (impl == IMPL_DIRECT) {
        for (uint64_t i = 0; i < n; i++) {
            size_t got = strlen(launder(STR_TEXT));
            if (__builtin_expect(got != want, 0)) wrong(w->name, i, got, want);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            ohm_ffi_arg args[1] = {{.kind = OHM_FFI_ARG_STR, .str = launder(STR_TEXT)}};
            must_return(w->name, i, fn, args, 1, want);
        }
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    ohm_ffi_func_free(fn);
    ohm_ffi_close(self);
}

static const ffi_workload workloads[] = {
    {"call-0", 20000000, "i32()", "a function of ours with no arguments", run_call0},
    {"call-3", 20000000, "i32(ptr, u64, i32)", "a function of ours; the ptr is an ohm buffer (retained per call)",
     run_call3},
    {"call-3-ptr", 20000000, "i32(ptr, u64, i32)", "the same with the buffer's memory as a raw address", run_call3},
    {"crc32-64", 10000000, "ulong(ulong, ptr, uint)", "zlib crc32 over a 64 B ohm buffer (libz.so.1)", run_crc32},
    {"strlen", 10000000, "size(str)", "libc strlen of a 32-character host string", run_strlen},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* ---- the child ----------------------------------------------------------------------------------------- */

static int child_main(const bench_options *o)
{
    const ffi_workload *w = NULL;
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (o->want[i]) {
            if (w) bench_die(2, "--child needs exactly one workload");
            w = &workloads[i];
        }
    if (!w || o->nimpls != 1) bench_die(2, "--child needs exactly one --impl and one --workload");
    ffi_impl impl = (ffi_impl)o->impls[0];
    bench_result warm = {0}; /* first-use paths (dlopen, libffi, the default pool) before the measured run */
    w->run(w, impl, 1e-4, &warm);
    bench_result r = {0};
    w->run(w, impl, o->c.scale, &r);
    bench_child_report("ffi", w->name, impl_names[impl], 1, &r);
    return 0;
}

/* ---- the parent ---------------------------------------------------------------------------------------- */

static bench_run run_child(const bench_options *o, size_t wi, unsigned impl, unsigned rep)
{
    const ffi_workload *w = &workloads[wi];
    const char *argv[] = {"ohm-bench",  "ffi",   "--child", "--impl",     impl_names[impl],
                          "--workload", w->name, "--scale", o->scale_arg, NULL};
    bench_child c = {argv, NULL, o->c.timeout_s};
    bench_run run = bench_child_result(&c, rep, w->name, 0, impl_names[impl]);
    if (run.ok && o->c.verbose)
        fprintf(stderr, "  %-12s %-7s rep %u: %.4g ops/s\n", w->name, impl_names[impl], rep + 1, run.ops_per_sec);
    return run;
}

static double ns_per_op(const bench_run *r) { return r->ok && r->ops_per_sec > 0 ? 1e9 / r->ops_per_sec : -1.0; }

static void heading(const bench_options *o, size_t wi)
{
    const ffi_workload *w = &workloads[wi];
    printf("\n%s (%llu calls per run, %s): %s\n", w->name, (unsigned long long)bench_scaled(w->count, o->c.scale),
           w->signature, w->summary);
}

/* "overhead": an impl's ns/op minus direct's. */
static void ratio_cell(bench_table *t, size_t wi, const bench_run *agg, const bool *ran, unsigned impl)
{
    (void)wi;
    double direct = ran[IMPL_DIRECT] ? ns_per_op(&agg[IMPL_DIRECT]) : -1.0;
    if (impl != IMPL_DIRECT && direct >= 0) bench_table_set(t, 8, "%+.1f ns", ns_per_op(&agg[impl]) - direct);
    else bench_table_set(t, 8, "-");
}

static void goals(const bench_options *o, size_t wi, const bench_run *agg, const bool *ran)
{
    (void)o;
    (void)wi;
    double direct = ran[IMPL_DIRECT] ? ns_per_op(&agg[IMPL_DIRECT]) : -1.0;
    double ffi = ran[IMPL_FFI] ? ns_per_op(&agg[IMPL_FFI]) : -1.0;
    if (direct >= 0 && ffi >= 0)
        printf("goal  ffi - direct < %.0f ns per call: %.1f ns  %s\n", GOAL_OVERHEAD_NS, ffi - direct,
               ffi - direct < GOAL_OVERHEAD_NS ? "met" : "MISSED");
}

static const char *workload_name(size_t wi) { return workloads[wi].name; }

static void list(void)
{
    printf("%-12s %9s %-24s %s\n", "workload", "scale 1", "signature", "what (one op = one call)");
    for (size_t i = 0; i < NWORKLOADS; i++)
        printf("%-12s %9llu %-24s %s\n", workloads[i].name, (unsigned long long)workloads[i].count,
               workloads[i].signature, workloads[i].summary);
}

static const bench_suite suite = {
    .name = "ffi",
    .usage =
        "usage: ohm-bench ffi [options]\n" BENCH_USAGE_WORKLOAD "  --impl NAME[,NAME]      direct, ffi (default both)\n"
        "  --reps N                runs per workload and impl (default 3; best ops/s, median RSS)\n"
        "  --scale F               multiplies call counts (default 1)\n" BENCH_USAGE_JSON BENCH_USAGE_TIMEOUT
            BENCH_USAGE_VERBOSE_LIST,
    .default_timeout_s = DEFAULT_TIMEOUT_S,
    .banner_ratio = "overhead = ffi ns/op - direct ns/op (best run of each)",
    .impl_names = impl_names,
    .nimpls = IMPL_COUNT,
    .impl_hint = "direct, ffi",
    .nworkloads = NWORKLOADS,
    BENCH_SUITE_FUNCTIONS,
    .threads = BENCH_THREADS_NONE,
    .extra_headers = {"overhead"},
    .ratio_cell = ratio_cell,
    .goals = goals,
};

int bench_ffi_main(int argc, char **argv) { return bench_suite_main(&suite, argc, argv); }
