/* A run of a user's workload (ohm-stress --lua, and the Java driver's Main): what the report writer needs, as a
 * plain struct any driver fills. Every form of the report comes from here, so the drivers' outputs agree.
 *
 * workload.c   the verdict, the growth trend, the summary, the JSON object and the HTML report; with chart.c the
 *              library ohm_stress_report (ReportLibrary.cmake), which libohm_jni.so links for the Java driver
 * lua_driver.c ohm-stress --lua: N Lua states on N threads, each iteration in a leak scope */
#ifndef OHM_STRESS_WORKLOAD_H
#define OHM_STRESS_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WL_MAX_POOLS 4
#define WL_SITE_MAX  192

/* The leaks of one creation site (the workload's source line). */
typedef struct wl_site {
    char site[WL_SITE_MAX];
    uint64_t count, bytes;
    uint64_t first_iteration; /* the iteration (of its thread) that leaked here first */
} wl_site;

typedef struct wl_sample {
    double t; /* seconds since the run started */
    uint64_t rss;
    uint64_t pool_live[WL_MAX_POOLS]; /* active bytes of each pool the driver watches */
    uint64_t mm_used;                 /* a memory manager's execution + storage use, 0 without one */
} wl_sample;

typedef struct wl_result {
    const char *driver;   /* "lua", "java" */
    const char *workload; /* the script or class */
    unsigned threads;
    double seconds;
    uint64_t iterations;
    uint64_t leaks, leak_bytes; /* buffers an iteration left live, kept buffers live after teardown */
    uint64_t integrity_errors;  /* iterations that raised, scopes that could not be closed */
    char first_error[512];
    wl_site *sites;
    size_t nsites;
    unsigned npools;
    const char *pool_names[WL_MAX_POOLS];
    wl_sample *samples;
    size_t nsamples;
    /* wl_growth fills these from the samples */
    double growth_bytes_per_s, rss_growth_bytes_per_s;
    bool growth, rss_growth, growth_known;
} wl_result;

/* The live-bytes and RSS trends over the second half of the run (least squares), and whether either grows
 * steadily: a correlation above 0.9 and a rise over that half above a quarter of the mean (1 MiB at least for
 * live bytes, 16 MiB for RSS). Unknown (no verdict) below 2 s or 10 samples. */
void wl_growth(wl_result *r);
bool wl_failed(const wl_result *r);
void wl_summary(FILE *f, const wl_result *r);
/* One JSON object and a newline: driver, workload, threads, seconds, iterations, leaks, leak_bytes,
 * leak_sites [{site, count, bytes, first_iteration}], integrity_errors, growth_bytes_per_s,
 * rss_growth_bytes_per_s, growth ("none", "growing", "unknown"), first_error, passed. */
void wl_json(FILE *f, const wl_result *r);
/* The HTML report into path: 0, or -1 with errno set (the file could not be written). */
int wl_html(const wl_result *r, const char *path);

/* ohm-stress --lua ... (lua_driver.c): the exit status. */
int lua_main(int argc, char **argv);

#endif /* OHM_STRESS_WORKLOAD_H */
