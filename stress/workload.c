/* The report of a user's workload run: the verdict, the growth trend, and the summary, JSON and HTML forms (the
 * HTML with the charts the built-in run's report draws, chart.h). The one writer of every driver: ohm-stress --lua
 * calls it directly, org.ohm.stress.Main through libohm_jni.so (jni/src/jni_stress.c). */
#include "workload.h"

#include "chart.h"
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LD(x) ((unsigned long long)(x))

static uint64_t live_of(const wl_sample *x, unsigned npools)
{
    uint64_t v = 0;
    for (unsigned p = 0; p < npools; p++) v += x->pool_live[p];
    return v;
}

/* Slope (per second) and correlation of y over the samples [from, n). */
static void trend(const wl_result *r, size_t from, bool rss, double *slope, double *corr, double *mean)
{
    double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t i = from; i < r->nsamples; i++) {
        double x = r->samples[i].t;
        double y = (double)(rss ? r->samples[i].rss : live_of(&r->samples[i], r->npools));
        n++, sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    double vx = n * sxx - sx * sx, vy = n * syy - sy * sy, cxy = n * sxy - sx * sy;
    *slope = vx > 0 ? cxy / vx : 0;
    *corr = vx > 0 && vy > 0 ? cxy / sqrt(vx * vy) : 0;
    *mean = n > 0 ? sy / n : 0;
}

void wl_growth(wl_result *r)
{
    r->growth_known = r->nsamples >= 10 && r->seconds >= 2;
    if (!r->nsamples) return;
    size_t from = r->nsamples / 2;
    double span = r->samples[r->nsamples - 1].t - r->samples[from].t;
    double slope, corr, mean;
    trend(r, from, false, &slope, &corr, &mean);
    r->growth_bytes_per_s = slope;
    r->growth = r->growth_known && corr > 0.9 && slope * span > fmax(1048576.0, mean / 4);
    trend(r, from, true, &slope, &corr, &mean);
    r->rss_growth_bytes_per_s = slope;
    r->rss_growth = r->growth_known && corr > 0.9 && slope * span > fmax(16.0 * 1048576.0, mean / 4);
}

bool wl_failed(const wl_result *r) { return r->leaks || r->integrity_errors || r->growth || r->rss_growth; }

static const char *growth_word(const wl_result *r)
{
    return !r->growth_known ? "unknown" : r->growth || r->rss_growth ? "growing" : "none";
}

void wl_summary(FILE *f, const wl_result *r)
{
    fprintf(f, "ohm-stress: %s workload %s, %u threads, %.1f s, %llu iterations\n", r->driver, r->workload, r->threads,
            r->seconds, LD(r->iterations));
    fprintf(f, "  leaks            %llu (%llu bytes) at %zu sites\n", LD(r->leaks), LD(r->leak_bytes), r->nsites);
    for (size_t i = 0; i < r->nsites && i < 20; i++)
        fprintf(f, "    %-40s %llu leaks, %llu bytes, first in iteration %llu\n", r->sites[i].site,
                LD(r->sites[i].count), LD(r->sites[i].bytes), LD(r->sites[i].first_iteration));
    fprintf(f, "  integrity errors %llu%s%s\n", LD(r->integrity_errors), r->first_error[0] ? ", the first: " : "",
            r->first_error);
    fprintf(f, "  growth           %s: live bytes %+.0f B/s, RSS %+.0f B/s (second half of the run)\n", growth_word(r),
            r->growth_bytes_per_s, r->rss_growth_bytes_per_s);
    fprintf(f, "%s\n", wl_failed(r) ? "FAILED" : "PASSED");
}

/* A key and its value. */
static void ku(json_writer *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_u64(j, v);
}

void wl_json(FILE *f, const wl_result *r)
{
    size_t cap = 4096 + r->nsites * (2 * WL_SITE_MAX + 128) + 2 * sizeof r->first_error;
    char *buf = malloc(cap);
    if (!buf) return;
    json_writer j;
    json_init(&j, buf, cap);
    json_object_begin(&j);
    json_key(&j, "driver");
    json_str(&j, r->driver);
    json_key(&j, "workload");
    json_str(&j, r->workload);
    ku(&j, "threads", r->threads);
    json_key(&j, "seconds");
    json_f64(&j, r->seconds, 3);
    ku(&j, "iterations", r->iterations);
    ku(&j, "leaks", r->leaks);
    ku(&j, "leak_bytes", r->leak_bytes);
    json_key(&j, "leak_sites");
    json_array_begin(&j);
    for (size_t i = 0; i < r->nsites; i++) {
        json_object_begin(&j);
        json_key(&j, "site");
        json_str(&j, r->sites[i].site);
        ku(&j, "count", r->sites[i].count);
        ku(&j, "bytes", r->sites[i].bytes);
        ku(&j, "first_iteration", r->sites[i].first_iteration);
        json_object_end(&j);
    }
    json_array_end(&j);
    ku(&j, "integrity_errors", r->integrity_errors);
    json_key(&j, "first_error");
    json_str(&j, r->first_error[0] ? r->first_error : NULL);
    json_key(&j, "growth_bytes_per_s");
    json_f64(&j, r->growth_bytes_per_s, 1);
    json_key(&j, "rss_growth_bytes_per_s");
    json_f64(&j, r->rss_growth_bytes_per_s, 1);
    json_key(&j, "growth");
    json_str(&j, growth_word(r));
    json_key(&j, "passed");
    json_bool(&j, !wl_failed(r));
    json_object_end(&j);
    fputs(json_line(&j), f);
    free(buf);
}

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

typedef struct wl_chart {
    const wl_result *r;
    int what; /* 0: RSS and total live; 1: live per pool; 2: the manager */
} wl_chart;

static double wl_value(const void *ctx, size_t i, unsigned k)
{
    const wl_chart *c = ctx;
    const wl_sample *x = &c->r->samples[i];
    if (k == CHART_TIME) return x->t;
    switch (c->what) {
    case 0: return (double)(k == 0 ? x->rss : live_of(x, c->r->npools));
    case 1: return (double)x->pool_live[k];
    default: return (double)x->mm_used;
    }
}

int wl_html(const wl_result *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    html_head(f, "ohm-stress workload report");
    fprintf(f, "<h1>ohm-stress: ");
    html_text(f, r->workload);
    fprintf(f, "</h1>\n<p class=\"%s\">%s</p>\n", wl_failed(r) ? "bad" : "good", wl_failed(r) ? "FAILED" : "PASSED");
    fprintf(f, "<table>\n<tr><td>driver, threads, seconds</td><td>%s, %u, %.1f</td></tr>\n", r->driver, r->threads,
            r->seconds);
    fprintf(f, "<tr><td>iterations</td><td>%llu</td></tr>\n", LD(r->iterations));
    fprintf(f, "<tr><td>leaks</td><td>%llu (%llu bytes)</td></tr>\n", LD(r->leaks), LD(r->leak_bytes));
    fprintf(f, "<tr><td>integrity errors</td><td>%llu ", LD(r->integrity_errors));
    html_text(f, r->first_error);
    fprintf(f, "</td></tr>\n");
    fprintf(f,
            "<tr><td>growth (second half)</td><td class=\"%s\">%s: live bytes %+.0f B/s, RSS %+.0f B/s</td></tr>\n"
            "</table>\n",
            r->growth || r->rss_growth ? "bad" : "", growth_word(r), r->growth_bytes_per_s, r->rss_growth_bytes_per_s);
    fprintf(f, "<h2>Leaks by site</h2>\n");
    if (!r->nsites) fprintf(f, "<p>none</p>\n");
    else fprintf(f, "<table>\n<tr><th>site</th><th>leaks</th><th>bytes</th><th>first iteration</th></tr>\n");
    for (size_t i = 0; i < r->nsites; i++) {
        fprintf(f, "<tr><td><code>");
        html_text(f, r->sites[i].site);
        fprintf(f, "</code></td><td>%llu</td><td>%llu</td><td>%llu</td></tr>\n", LD(r->sites[i].count),
                LD(r->sites[i].bytes), LD(r->sites[i].first_iteration));
    }
    if (r->nsites) fprintf(f, "</table>\n");
    static const char *const mem[] = {"RSS", "live bytes (all pools)"};
    wl_chart c0 = {r, 0}, c1 = {r, 1}, c2 = {r, 2};
    svg_chart(f, "Memory: RSS and live bytes", true, r->nsamples, 2, mem, wl_value, &c0);
    svg_chart(f, "Live bytes per pool", true, r->nsamples, r->npools, r->pool_names, wl_value, &c1);
    static const char *const mm[] = {"execution + storage used"};
    svg_chart(f, "Memory manager", true, r->nsamples, 1, mm, wl_value, &c2);
    fprintf(f, "<p style=\"font-size:12px\">Sampled every ~100 ms (%zu samples).</p>\n</body></html>\n", r->nsamples);
    return fclose(f) == 0 ? 0 : -1;
}
