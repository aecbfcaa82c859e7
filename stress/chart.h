/* The HTML reports' page head and line charts (chart.c): ohm-stress's built-in run and the workload drivers
 * (ohm-stress --lua, org.ohm.stress.Main through libohm_jni.so) draw with these. */
#ifndef OHM_STRESS_CHART_H
#define OHM_STRESS_CHART_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One line chart as inline SVG: n points of nseries series; value(ctx, i, k) is point i of series k, and its time
 * in seconds for k == CHART_TIME. */
#define CHART_TIME UINT_MAX
typedef double chart_value(const void *ctx, size_t i, unsigned series);
void svg_chart(FILE *f, const char *title, bool bytes, size_t n, unsigned nseries, const char *const *names,
               chart_value *value, const void *ctx);
/* The page's head and style, shared by the reports. */
void html_head(FILE *f, const char *title);
/* Why a report could not be written at path ("no directory D", "it is a directory", "permission denied"), or NULL
 * when it can: the drivers check before a run, so a bad path fails at once instead of after it (exit status 2).
 * The text is in buf (cap bytes). */
const char *report_path_problem(const char *path, char *buf, size_t cap);

#endif /* OHM_STRESS_CHART_H */
