/* The HTML reports' drawing: self-contained pages with inline SVG line charts, no scripts and nothing fetched from
 * the network. Shared by the built-in run's report (report.c) and users' workload runs (workload.c), which
 * libohm_jni.so links too: this file needs nothing of ohm-stress. */
#include "chart.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CW 860
#define CH 240
#define ML 70 /* left margin: axis labels */
#define MR 10
#define MT 10
#define MB 28

static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static void axis_label(char *out, size_t cap, double v, bool bytes)
{
    if (!bytes) snprintf(out, cap, "%.0f", v);
    else if (v >= 1073741824.0) snprintf(out, cap, "%.1f GiB", v / 1073741824.0);
    else if (v >= 1048576.0) snprintf(out, cap, "%.1f MiB", v / 1048576.0);
    else if (v >= 1024.0) snprintf(out, cap, "%.0f KiB", v / 1024.0);
    else snprintf(out, cap, "%.0f B", v);
}

void svg_chart(FILE *f, const char *title, bool bytes, size_t n, unsigned nseries, const char *const *names,
               chart_value *value, const void *ctx)
{
    double tmax = n ? value(ctx, n - 1, CHART_TIME) : 1, ymax = 0;
    for (size_t i = 0; i < n; i++)
        for (unsigned k = 0; k < nseries; k++)
            if (value(ctx, i, k) > ymax) ymax = value(ctx, i, k);
    if (ymax <= 0) ymax = 1;
    if (tmax <= 0) tmax = 1;
    const double pw = CW - ML - MR, ph = CH - MT - MB;
    fprintf(f, "<h2>%s</h2>\n<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", title, CW, CH, CW,
            CH);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n", ML, MT,
            pw, ph);
    for (int g = 0; g <= 4; g++) { /* horizontal grid with labels */
        double y = MT + ph - ph * g / 4.0;
        char lab[32];
        axis_label(lab, sizeof lab, ymax * g / 4.0, bytes);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
                ML, y, ML + pw, y, ML - 4, y + 4, lab);
    }
    for (int g = 0; g <= 5; g++) { /* time axis */
        double x = ML + pw * g / 5.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.1f s</text>\n", x, CH - 8,
                tmax * g / 5.0);
    }
    for (unsigned k = 0; k < nseries; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"%s\" points=\"", colors[k % 10]);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%.1f,%.1f ", ML + pw * value(ctx, i, CHART_TIME) / tmax,
                    MT + ph - ph * value(ctx, i, k) / ymax);
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</svg>\n<p class=\"legend\">");
    for (unsigned k = 0; k < nseries; k++)
        fprintf(f, "<span style=\"color:%s\">&#9632;</span> %s &nbsp; ", colors[k % 10], names[k]);
    fprintf(f, "</p>\n");
}

void html_head(FILE *f, const char *title)
{
    fprintf(f,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n"
            "<style>body{font-family:sans-serif;max-width:900px;margin:1em auto;color:#222}"
            "td{padding:2px 12px 2px 0}h2{font-size:1.05em;margin-top:1.5em}.legend{font-size:12px}"
            ".bad{color:#c00;font-weight:bold}.good{color:#080;font-weight:bold}</style></head><body>\n",
            title);
}

const char *report_path_problem(const char *path, char *buf, size_t cap)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return "it is a directory";
        return access(path, W_OK) == 0 ? NULL : "permission denied";
    }
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", buf);
        snprintf(buf, cap, "no directory %s", dir);
        return buf;
    }
    return access(buf, W_OK) == 0 ? NULL : "permission denied";
}
