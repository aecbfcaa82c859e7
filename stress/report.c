/* The built-in run's summary (text or one JSON object), exit verdict and HTML report (drawn with chart.h). */
#include "stress.h"

#include "json.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define LD(x)     ((unsigned long long)(x))
#define GET(s, f) LD(atomic_load(&(s)->c.f))

bool stress_failed(const stress *s)
{
    return atomic_load(&s->c.integrity_errors) || atomic_load(&s->c.api_errors) || s->leaks_missed || s->leaks_false ||
           s->leaks_no_site || s->leaks_unchecked || s->drift != 0;
}

static double ops_per_sec(const stress *s) { return s->elapsed > 0 ? (double)atomic_load(&s->c.ops) / s->elapsed : 0; }

static const char *mib(uint64_t b, char *out, size_t cap)
{
    snprintf(out, cap, "%.1f MiB", (double)b / 1048576.0);
    return out;
}

void report_summary(const stress *s)
{
    char a[32], b[32], c[32];
    const stress_opts *o = &s->o;
    printf("ohm-stress: %u threads, %.1f s, seed %llu, leak-rate %g (level %s), fail-rate %g, manager %s per mode\n",
           o->threads, s->elapsed, LD(o->seed), o->leak_rate, leak_level_name(o->leak_level), o->fail_rate,
           mib(o->mm_bytes, a, sizeof a));
    printf("  ops              %llu (%.0f ops/s): buffers %llu, pool blocks %llu, manager %llu, block cache %llu, "
           "mapped files %llu\n",
           GET(s, ops), ops_per_sec(s), GET(s, buf_ops), GET(s, pool_ops), GET(s, mm_ops), GET(s, block_ops),
           GET(s, map_ops));
    printf("  hand-offs        %llu to other threads, %llu consumed by the sender (its target's queue was full)\n",
           GET(s, handoffs), GET(s, local_consumes));
    printf("  memory           peak live %s, peak RSS %s, RSS after trim %s\n", mib(s->peak_live, a, sizeof a),
           mib(s->peak_rss, b, sizeof b), mib(s->rss_after_trim, c, sizeof c));
    printf("  manager          tasks %llu, spills %llu (%s, %llu failed on purpose), read back %llu, "
           "evictions %llu, blocks cached %llu (refused %llu), not granted %llu, wait timeouts %llu\n",
           GET(s, tasks_ended), GET(s, spills), mib(atomic_load(&s->c.spill_bytes), a, sizeof a),
           GET(s, spill_failures), GET(s, restores), GET(s, evictions), GET(s, blocks_put), GET(s, blocks_refused),
           GET(s, mm_limited), GET(s, mm_timeouts));
    printf("  task share       min %.1f%% max %.1f%% of the OFF_HEAP max (fair share with %u tasks: 1/%u .. 1/%u "
           "of execution memory)\n",
           100 * s->share_min, 100 * s->share_max, o->threads, 2 * o->threads, o->threads);
    printf("  leaks            injected %llu, reported %llu, false %llu, missed %llu, without a creation site %llu; "
           "chosen but untracked %llu%s\n",
           GET(s, leaks_injected), LD(s->leaks_reported), LD(s->leaks_false), LD(s->leaks_missed), LD(s->leaks_no_site),
           GET(s, leaks_untracked), s->leaks_unchecked ? " (too many: the run fails)" : "");
    /* Not every injected fault reaches a worker: the library absorbs some (another chunk, a fallback, a retry)
     * without returning an error, and those need no surviving by the caller. */
    uint64_t seen = GET(s, faults_survived);
    uint64_t absorbed = s->faults_injected > seen ? s->faults_injected - seen : 0;
    printf("  faults           injected %llu: %llu reached a worker as an error it handled, %llu absorbed inside the "
           "library (no error returned); library warnings %llu\n",
           LD(s->faults_injected), LD(seen), LD(absorbed), GET(s, log_warnings));
    printf("  integrity errors %llu, API errors %llu\n", GET(s, integrity_errors), GET(s, api_errors));
    printf("  accounting drift %lld bytes (manager %llu + pool active %llu)\n", (long long)s->drift, LD(s->mm_left),
           LD(s->pool_left));
    if (s->o.report) printf("  report           %s\n", s->o.report);
    printf("%s\n", stress_failed(s) ? "FAILED" : "PASSED");
}

/* What a JSON key reads from the run, and how it is written. */
typedef enum field_kind {
    FIELD_UINT,    /* an unsigned at off */
    FIELD_U64,     /* a uint64_t at off */
    FIELD_COUNTER, /* a counter at off, loaded atomically */
    FIELD_F64,     /* a double at off, with decimals (-1: shortest) */
    FIELD_I64,     /* an int64_t at off */
    FIELD_RATE,    /* ops per second of the whole run */
    FIELD_BOOL,    /* a bool at off */
    FIELD_PASSED,  /* the verdict */
} field_kind;

typedef struct report_field {
    const char *key;
    field_kind kind;
    size_t off; /* offsetof(stress, ...) */
    int decimals;
} report_field;

#define U(key, f)                              \
    {                                          \
        key, FIELD_U64, offsetof(stress, f), 0 \
    }
#define C(key, f)                                    \
    {                                                \
        key, FIELD_COUNTER, offsetof(stress, c.f), 0 \
    }
#define F(key, f, d)                           \
    {                                          \
        key, FIELD_F64, offsetof(stress, f), d \
    }

/* The JSON object's keys, in the order the summary lists them. */
static const report_field json_fields[] = {
    {"threads", FIELD_UINT, offsetof(stress, o.threads), 0},
    F("seconds", elapsed, 3),
    U("seed", o.seed),
    F("leak_rate", o.leak_rate, -1),
    F("fail_rate", o.fail_rate, -1),
    C("ops", ops),
    {"ops_per_sec", FIELD_RATE, 0, 1},
    C("buffer_ops", buf_ops),
    C("pool_ops", pool_ops),
    C("mm_ops", mm_ops),
    C("block_ops", block_ops),
    C("map_ops", map_ops),
    C("handoffs", handoffs),
    C("integrity_errors", integrity_errors),
    C("api_errors", api_errors),
    C("leaks_injected", leaks_injected),
    U("leaks_reported", leaks_reported),
    U("leaks_false", leaks_false),
    U("leaks_missed", leaks_missed),
    U("leaks_without_site", leaks_no_site),
    C("leaks_untracked", leaks_untracked),
    {"leaks_unchecked", FIELD_BOOL, offsetof(stress, leaks_unchecked), 0},
    U("faults_injected", faults_injected),
    C("faults_survived", faults_survived),
    C("spills", spills),
    C("spill_bytes", spill_bytes),
    C("spill_failures", spill_failures),
    C("spill_reads", restores),
    C("evictions", evictions),
    C("tasks", tasks_ended),
    F("task_share_min", share_min, 4),
    F("task_share_max", share_max, 4),
    {"accounting_drift_bytes", FIELD_I64, offsetof(stress, drift), 0},
    U("peak_live_bytes", peak_live),
    U("peak_rss_bytes", peak_rss),
    U("rss_after_trim_bytes", rss_after_trim),
    C("library_warnings", log_warnings),
    {"passed", FIELD_PASSED, 0, 0},
};

#undef U
#undef C
#undef F

static void json_field(json_writer *j, const stress *s, const report_field *f)
{
    const void *p = (const char *)s + f->off;
    json_key(j, f->key);
    switch (f->kind) {
    case FIELD_UINT: json_u64(j, *(const unsigned *)p); break;
    case FIELD_U64: json_u64(j, *(const uint64_t *)p); break;
    case FIELD_COUNTER: json_u64(j, atomic_load((const counter *)p)); break;
    case FIELD_F64: json_f64(j, *(const double *)p, f->decimals); break;
    case FIELD_I64: json_i64(j, *(const int64_t *)p); break;
    case FIELD_RATE: json_f64(j, ops_per_sec(s), f->decimals); break;
    case FIELD_BOOL: json_bool(j, *(const bool *)p); break;
    case FIELD_PASSED: json_bool(j, !stress_failed(s)); break;
    }
}

void report_json(const stress *s)
{
    char buf[2048];
    json_writer j;
    json_init(&j, buf, sizeof buf);
    json_object_begin(&j);
    for (size_t i = 0; i < sizeof json_fields / sizeof json_fields[0]; i++) json_field(&j, s, &json_fields[i]);
    json_object_end(&j);
    fputs(json_line(&j), stdout);
}

typedef double value_fn(const sample *x, unsigned series);

/* The built-in run's charts: a value of its samples. */
typedef struct sample_chart {
    const sample *xs;
    value_fn *value;
} sample_chart;

static double sample_value(const void *ctx, size_t i, unsigned k)
{
    const sample_chart *c = ctx;
    return k == CHART_TIME ? c->xs[i].t : c->value(&c->xs[i], k);
}

static void chart(FILE *f, const stress *s, const char *title, bool bytes, unsigned nseries, const char *const *names,
                  value_fn *value)
{
    sample_chart c = {s->samples, value};
    svg_chart(f, title, bytes, s->nsamples, nseries, names, sample_value, &c);
}

static double v_memory(const sample *x, unsigned k) { return (double)(k == 0 ? x->rss : x->live); }
static double v_mode_off(const sample *x, unsigned k)
{
    return (double)(k == 0 ? x->exec_used[OHM_OFF_HEAP] : x->storage_used[OHM_OFF_HEAP]);
}
static double v_mode_on(const sample *x, unsigned k)
{
    return (double)(k == 0 ? x->exec_used[OHM_ON_HEAP] : x->storage_used[OHM_ON_HEAP]);
}
static double v_task(const sample *x, unsigned k) { return (double)x->task_used[k]; }
static double v_events(const sample *x, unsigned k) { return (double)(k == 0 ? x->spills : x->evictions); }

int report_html(const stress *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    char a[32], b[32], c[32];
    html_head(f, "ohm-stress report");
    fprintf(f, "<h1>ohm-stress</h1>\n<p class=\"%s\">%s</p>\n", stress_failed(s) ? "bad" : "good",
            stress_failed(s) ? "FAILED" : "PASSED");
    fprintf(f, "<table>\n<tr><td>threads, seconds, seed</td><td>%u, %.1f, %llu</td></tr>\n", s->o.threads, s->elapsed,
            LD(s->o.seed));
    fprintf(f, "<tr><td>leak rate, fail rate</td><td>%g, %g</td></tr>\n", s->o.leak_rate, s->o.fail_rate);
    fprintf(f, "<tr><td>operations</td><td>%llu (%.0f/s)</td></tr>\n", GET(s, ops), ops_per_sec(s));
    fprintf(f, "<tr><td>peak live, peak RSS, RSS after trim</td><td>%s, %s, %s</td></tr>\n",
            mib(s->peak_live, a, sizeof a), mib(s->peak_rss, b, sizeof b), mib(s->rss_after_trim, c, sizeof c));
    fprintf(f,
            "<tr><td>leaks injected / reported / false / missed; chosen but untracked</td><td>%llu / %llu / %llu / "
            "%llu; %llu%s</td></tr>\n",
            GET(s, leaks_injected), LD(s->leaks_reported), LD(s->leaks_false), LD(s->leaks_missed),
            GET(s, leaks_untracked), s->leaks_unchecked ? " (too many: the run fails)" : "");
    fprintf(f,
            "<tr><td>faults injected / handled by a worker (the rest absorbed by the library)</td><td>%llu / "
            "%llu</td></tr>\n",
            LD(s->faults_injected), GET(s, faults_survived));
    fprintf(f, "<tr><td>spills (failed on purpose), evictions</td><td>%llu (%llu), %llu</td></tr>\n", GET(s, spills),
            GET(s, spill_failures), GET(s, evictions));
    fprintf(f, "<tr><td>task share of the OFF_HEAP max</td><td>%.1f%% .. %.1f%%</td></tr>\n", 100 * s->share_min,
            100 * s->share_max);
    fprintf(f, "<tr><td>integrity errors, API errors</td><td>%llu, %llu</td></tr>\n", GET(s, integrity_errors),
            GET(s, api_errors));
    fprintf(f, "<tr><td>accounting drift</td><td>%lld bytes</td></tr>\n</table>\n", (long long)s->drift);

    static const char *const mem[] = {"RSS", "live bytes (pool active)"};
    static const char *const mode[] = {"execution used", "storage used"};
    static const char *const ev[] = {"spills (cumulative)", "evictions (cumulative)"};
    chart(f, s, "Memory: RSS and live bytes", true, 2, mem, v_memory);
    chart(f, s, "Memory manager, OFF_HEAP: execution vs storage", true, 2, mode, v_mode_off);
    chart(f, s, "Memory manager, ON_HEAP: execution vs storage", true, 2, mode, v_mode_on);
    char names[64][24];
    const char *tn[64];
    unsigned nt = s->o.threads < 64 ? s->o.threads : 64;
    for (unsigned i = 0; i < nt; i++) {
        snprintf(names[i], sizeof names[i], "task of worker %u", i);
        tn[i] = names[i];
    }
    chart(f, s, "Per-task execution memory (both modes)", true, nt, tn, v_task);
    chart(f, s, "Spills and evictions", false, 2, ev, v_events);
    fprintf(f, "<p style=\"font-size:12px\">Sampled every ~100 ms (%zu samples).</p>\n</body></html>\n", s->nsamples);
    return fclose(f) == 0 ? 0 : -1;
}
