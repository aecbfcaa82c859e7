/* Shared helpers of ohm-bench; see bench_util.h for which of them may allocate. */
#define _GNU_SOURCE
#include "bench_util.h"
#include "json.h"
#include "ohm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- failing loudly ------------------------------------------------------------------------------------- */

__attribute__((format(printf, 1, 0))) static void vwarn(const char *fmt, va_list ap)
{
    /* One fprintf per part; stderr is unbuffered, so a parent and its child may interleave only whole parts. */
    fputs("ohm-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void bench_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    exit(code);
}

void bench_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

/* ---- time and memory ------------------------------------------------------------------------------------ */

void *bench_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) bench_die(4, "mmap of %zu bytes for bookkeeping failed: %s", size, strerror(errno));
    return p;
}

void bench_unmap(void *p, size_t size)
{
    if (p) munmap(p, size);
}

uint64_t bench_scaled(uint64_t base, double scale)
{
    double v = nearbyint((double)base * scale);
    return v < 1.0 ? 1 : (uint64_t)v;
}

/* ---- child processes ------------------------------------------------------------------------------------ */

/* environ without LD_PRELOAD, plus LD_PRELOAD=preload when given. The strings are borrowed from environ and
 * from preload_kv; the array is malloc'ed (this runs in the parent). */
static char **child_environ(const char *preload, char *preload_kv, size_t kv_cap)
{
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
    if (preload) {
        snprintf(preload_kv, kv_cap, "LD_PRELOAD=%s", preload);
        env[k++] = preload_kv;
    }
    env[k] = NULL;
    return env;
}

/* Reads fd to EOF into buf (NUL-terminated, excess dropped). */
static void read_to_eof(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char scratch[4096];
    for (;;) {
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(buf + len, scratch, take);
        len += take;
    }
    buf[len] = '\0';
}

/* Copies the last line of out that starts with '{' into line; false if there is none. */
static bool last_json_line(const char *out, char *line, size_t cap)
{
    const char *found = NULL;
    for (const char *p = out; *p; p++)
        if (*p == '{' && (p == out || p[-1] == '\n')) found = p;
    if (!found) return false;
    size_t len = strcspn(found, "\n");
    if (len >= cap) return false;
    memcpy(line, found, len);
    line[len] = '\0';
    return true;
}

static void describe_status(int status, unsigned timeout_s, char *why, size_t cap)
{
    if (WIFEXITED(status)) snprintf(why, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) snprintf(why, cap, "timed out after %u s", timeout_s);
    else if (WIFSIGNALED(status))
        snprintf(why, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(why, cap, "ended with wait status %#x", (unsigned)status);
}

int bench_run_child(const bench_child *c, char *line, size_t line_cap, char *why, size_t why_cap)
{
    char preload_kv[4200];
    char **env = child_environ(c->preload, preload_kv, sizeof preload_kv);
    int fds[2];
    if (!env || pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, why_cap, "cannot prepare the child: %s", strerror(errno));
        free(env);
        return -1;
    }
    fflush(NULL); /* the child must not inherit unwritten stdio buffers */
    pid_t pid = fork();
    if (pid == 0) {
        /* dup2 clears close-on-exec on the new stdout; the pipe's own fds close at exec. alarm() survives
         * exec, so the limit holds even if the child hangs before main. */
        if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(127);
        if (c->timeout_s) alarm(c->timeout_s);
        execve("/proc/self/exe", (char *const *)c->argv, env);
        _exit(127);
    }
    free(env);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        snprintf(why, why_cap, "fork failed: %s", strerror(errno));
        return -1;
    }
    char out[65536];
    read_to_eof(fds[0], out, sizeof out);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, why_cap, "waitpid failed: %s", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        describe_status(status, c->timeout_s, why, why_cap);
        return -1;
    }
    if (!last_json_line(out, line, line_cap)) {
        snprintf(why, why_cap, "printed no result line");
        return -1;
    }
    return 0;
}

/* ---- one-line JSON -------------------------------------------------------------------------------------- */

bench_run bench_child_result(const bench_child *c, unsigned rep, const char *workload, unsigned threads,
                             const char *impl)
{
    char line[1024], why[256], n[32] = "";
    bench_run run = {0};
    const char *sep = impl ? ", " : "";
    if (threads) snprintf(n, sizeof n, " (%u threads)", threads);
    if (bench_run_child(c, line, sizeof line, why, sizeof why) != 0)
        bench_warn("%s%s%s%s, rep %u: the child %s", workload, n, sep, impl ? impl : "", rep + 1, why);
    else if (!bench_run_parse(line, &run))
        bench_warn("%s%s%s, rep %u: cannot parse the child's line: %s", workload, sep, impl ? impl : "", rep + 1, line);
    return run;
}

bool bench_write_all(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* The first character of key's value in line, or NULL. */
static const char *json_find(const char *line, const char *key)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(line, pattern);
    if (!p) return NULL;
    p += strlen(pattern);
    while (*p == ' ') p++;
    return p;
}

static bool json_value_ends(const char *end) { return *end == ',' || *end == '}' || *end == ' '; }

bool bench_json_get_f64(const char *line, const char *key, double *out)
{
    const char *p = json_find(line, key);
    if (!p) return false;
    char *end;
    double v = strtod(p, &end);
    if (end == p || !json_value_ends(end)) return false;
    *out = v;
    return true;
}

bool bench_json_get_u64(const char *line, const char *key, uint64_t *out)
{
    const char *p = json_find(line, key);
    if (!p || *p < '0' || *p > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || !json_value_ends(end)) return false;
    *out = v;
    return true;
}

bool bench_json_get_str(const char *line, const char *key, char *out, size_t cap)
{
    const char *p = json_find(line, key);
    if (!p || *p != '"') return false;
    p++;
    size_t len = strcspn(p, "\"\\"); /* our own values never need escapes */
    if (p[len] != '"' || len >= cap) return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* ---- options -------------------------------------------------------------------------------------------- */

const char *bench_option_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

void bench_common_init(bench_common *c, unsigned timeout_s)
{
    memset(c, 0, sizeof *c);
    c->reps = 3;
    c->scale = 1.0;
    c->timeout_s = timeout_s;
}

int bench_common_option(int argc, char **argv, int *i, bench_common *c)
{
    const char *a = argv[*i], *v;
    uint64_t u;
    if (strcmp(a, "--json") == 0) {
        c->json = true;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
        c->verbose = true;
    } else if (strcmp(a, "--child") == 0) {
        c->child = true;
    } else if (strcmp(a, "--list") == 0) {
        c->list = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        return -1;
    } else if (bench_is_option(a, "--reps")) {
        if (!(v = bench_option_value(argc, argv, i, "--reps")) || !bench_parse_u64(v, 1, BENCH_MAX_REPS, &u)) {
            bench_warn("--reps needs a number from 1 to %d", BENCH_MAX_REPS);
            return 2;
        }
        c->reps = (unsigned)u;
    } else if (bench_is_option(a, "--scale")) {
        if (!(v = bench_option_value(argc, argv, i, "--scale")) || !bench_parse_f64(v, 1e-6, 1e3, &c->scale)) {
            bench_warn("--scale needs a number above 0 (up to 1000)");
            return 2;
        }
    } else if (bench_is_option(a, "--timeout")) {
        if (!(v = bench_option_value(argc, argv, i, "--timeout")) || !bench_parse_u64(v, 0, 86400, &u)) {
            bench_warn("--timeout needs a number of seconds (0 = none)");
            return 2;
        }
        c->timeout_s = (unsigned)u;
    } else {
        return 0;
    }
    return 1;
}

bool bench_is_option(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool bench_parse_f64(const char *s, double min, double max, double *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return false;
    *out = v;
    return true;
}

int bench_for_each_item(const char *list, int (*fn)(const char *item, void *arg), void *arg)
{
    while (*list) {
        size_t len = strcspn(list, ",");
        if (len > 0) {
            char item[64];
            size_t n = len < sizeof item - 1 ? len : sizeof item - 1;
            memcpy(item, list, n);
            item[n] = '\0';
            int rc = fn(item, arg);
            if (rc) return rc;
        }
        list += len;
        if (*list == ',') list++;
    }
    return 0;
}

/* ---- runs ----------------------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t bench_median_u64(uint64_t *v, unsigned n)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof v[0], cmp_u64);
    return v[(n - 1) / 2];
}

/* The median of the uint64_t field at offset off over the ok runs. */
static uint64_t median_field(const bench_run *runs, unsigned n, size_t off)
{
    uint64_t v[BENCH_MAX_REPS];
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < BENCH_MAX_REPS; i++)
        if (runs[i].ok) memcpy(&v[k++], (const char *)&runs[i] + off, sizeof v[0]);
    return bench_median_u64(v, k);
}

bench_run bench_run_aggregate(const bench_run *runs, unsigned n)
{
    bench_run a = {0};
    for (unsigned i = 0; i < n; i++)
        if (runs[i].ok && (!a.ok || runs[i].ops_per_sec > a.ops_per_sec)) {
            a.ok = true;
            a.ops_per_sec = runs[i].ops_per_sec;
            a.threads = runs[i].threads;
        }
    a.peak_rss = median_field(runs, n, offsetof(bench_run, peak_rss));
    a.live_peak = median_field(runs, n, offsetof(bench_run, live_peak));
    a.rss_before = median_field(runs, n, offsetof(bench_run, rss_before));
    a.rss_after = median_field(runs, n, offsetof(bench_run, rss_after));
    return a;
}

void bench_run_print(const char *bench, const char *workload, const char *impl, const bench_run *run, FILE *out)
{
    char buf[1024];
    json_writer j;
    json_init(&j, buf, sizeof buf);
    json_object_begin(&j);
    json_key(&j, "bench");
    json_str(&j, bench);
    json_key(&j, "workload");
    json_str(&j, workload);
    json_key(&j, "impl");
    json_str(&j, impl);
    json_key(&j, "threads");
    json_u64(&j, run->threads);
    json_key(&j, "ops_per_sec");
    json_f64(&j, run->ops_per_sec, 1);
    json_key(&j, "peak_rss_bytes");
    json_u64(&j, run->peak_rss);
    json_key(&j, "live_peak_bytes");
    json_u64(&j, run->live_peak);
    json_key(&j, "rss_before_bytes");
    json_u64(&j, run->rss_before);
    json_key(&j, "rss_after_bytes");
    json_u64(&j, run->rss_after);
    json_object_end(&j);
    const char *line = json_line(&j);
    if (out) {
        fputs(line, out);
        fflush(out);
    } else if (!bench_write_all(STDOUT_FILENO, line)) {
        bench_die(4, "cannot write the result line");
    }
}

void bench_mark_start(bench_result *r)
{
    r->rss_before = harness_rss_bytes();
    harness_reset_peak_rss();
}

void bench_thread_start(bench_thread *t)
{
    pthread_barrier_wait(t->start);
    t->t0 = harness_now_ns();
}

void bench_thread_end(bench_thread *t) { t->t1 = harness_now_ns(); }

uint64_t bench_run_threads(unsigned n, void *(*fn)(void *), bench_thread *t, bench_result *r)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n + 1);
    pthread_t id[8];
    for (unsigned i = 0; i < n; i++) {
        t[i].start = &start;
        if (pthread_create(&id[i], NULL, fn, &t[i]) != 0) bench_die(4, "cannot start a thread");
    }
    bench_mark_start(r);
    pthread_barrier_wait(&start);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(id[i], NULL);
        t0 = t[i].t0 < t0 ? t[i].t0 : t0;
        t1 = t[i].t1 > t1 ? t[i].t1 : t1;
    }
    pthread_barrier_destroy(&start);
    return t1 - t0;
}

void bench_child_report(const char *bench, const char *workload, const char *impl, unsigned threads, bench_result *r)
{
    r->peak_rss = harness_peak_rss_bytes();
    ohm_pool_trim(ohm_pool_default());
    r->rss_after = harness_rss_bytes();
    bench_child_print(bench, workload, impl, threads, r);
}

void bench_child_print(const char *bench, const char *workload, const char *impl, unsigned threads,
                       const bench_result *r)
{
    bench_run run = {
        .ok = true,
        .ops_per_sec = r->ns ? (double)r->ops * 1e9 / (double)r->ns : 0.0,
        .threads = threads,
        .peak_rss = r->peak_rss,
        .live_peak = r->live_peak,
        .rss_before = r->rss_before,
        .rss_after = r->rss_after,
    };
    bench_run_print(bench, workload, impl, &run, NULL);
}

bool bench_run_parse(const char *line, bench_run *run)
{
    memset(run, 0, sizeof *run);
    run->ok = bench_json_get_f64(line, "ops_per_sec", &run->ops_per_sec) &&
              bench_json_get_u64(line, "threads", &run->threads) &&
              bench_json_get_u64(line, "peak_rss_bytes", &run->peak_rss) &&
              bench_json_get_u64(line, "live_peak_bytes", &run->live_peak) &&
              bench_json_get_u64(line, "rss_before_bytes", &run->rss_before) &&
              bench_json_get_u64(line, "rss_after_bytes", &run->rss_after);
    return run->ok;
}

/* ---- human-readable numbers and tables ------------------------------------------------------------------ */

const char *bench_fmt_bytes(char *buf, size_t cap, uint64_t bytes)
{
    static const char units[] = "BKMGTP";
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units - 1) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%lluB", (unsigned long long)bytes);
    else snprintf(buf, cap, v < 100.0 ? "%.1f%c" : "%.0f%c", v, units[u]);
    return buf;
}

const char *bench_fmt_rate(char *buf, size_t cap, double per_sec)
{
    static const char units[] = " kMGT";
    double v = per_sec;
    unsigned u = 0;
    while (v >= 1000.0 && u + 1 < sizeof units - 1) {
        v /= 1000.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%.1f", v);
    else snprintf(buf, cap, v < 100.0 ? "%.2f%c" : "%.1f%c", v, units[u]);
    return buf;
}

__attribute__((format(printf, 2, 0))) static void cell_set(char *cell, const char *fmt, va_list ap)
{
    vsnprintf(cell, BENCH_TABLE_CELL, fmt, ap);
}

void bench_table_init(bench_table *t, unsigned ncols, const char *const headers[])
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols < BENCH_TABLE_MAX_COLS ? ncols : BENCH_TABLE_MAX_COLS;
    for (unsigned c = 0; c < t->ncols; c++) snprintf(t->cells[0][c], BENCH_TABLE_CELL, "%s", headers[c]);
}

int bench_table_row(bench_table *t)
{
    if (t->nrows >= BENCH_TABLE_MAX_ROWS) return -1;
    return (int)++t->nrows;
}

void bench_table_set(bench_table *t, unsigned col, const char *fmt, ...)
{
    if (t->nrows == 0 || col >= t->ncols) return;
    va_list ap;
    va_start(ap, fmt);
    cell_set(t->cells[t->nrows][col], fmt, ap);
    va_end(ap);
}

void bench_table_print(const bench_table *t, FILE *out)
{
    size_t width[BENCH_TABLE_MAX_COLS] = {0};
    for (unsigned r = 0; r <= t->nrows; r++)
        for (unsigned c = 0; c < t->ncols; c++) {
            size_t w = strlen(t->cells[r][c]);
            if (w > width[c]) width[c] = w;
        }
    for (unsigned r = 0; r <= t->nrows; r++) {
        unsigned used = t->ncols; /* no padding after a row's last filled cell */
        while (used > 1 && !t->cells[r][used - 1][0]) used--;
        for (unsigned c = 0; c < used; c++) {
            int w = (int)width[c];
            if (c == 0) fprintf(out, "%-*s", w, t->cells[r][c]);
            else fprintf(out, "  %*s", w, t->cells[r][c]);
        }
        fputc('\n', out);
    }
}

bool bench_table_set_run(bench_table *t, const char *impl, const bench_run *run)
{
    char b[5][24];
    bench_table_set(t, 0, "%s", impl);
    if (!run->ok) {
        bench_table_set(t, 1, "failed");
        return false;
    }
    bench_table_set(t, 1, "%llu", (unsigned long long)run->threads);
    bench_table_set(t, 2, "%s", bench_fmt_rate(b[0], sizeof b[0], run->ops_per_sec));
    bench_table_set(t, 3, "%.1f", run->ops_per_sec > 0 ? 1e9 / run->ops_per_sec : 0.0);
    bench_table_set(t, 4, "%s", bench_fmt_bytes(b[1], sizeof b[1], run->peak_rss));
    bench_table_set(t, 5, "%s", bench_fmt_bytes(b[2], sizeof b[2], run->live_peak));
    bench_table_set(t, 6, "%s", bench_fmt_bytes(b[3], sizeof b[3], run->rss_before));
    bench_table_set(t, 7, "%s", bench_fmt_bytes(b[4], sizeof b[4], run->rss_after));
    return true;
}

void bench_print_banner(const char *bench, double scale, unsigned reps, const char *ratio)
{
    struct utsname u;
    uname(&u);
    printf("ohm-bench %s: scale %g, %u rep%s, %ld CPUs, %s %s\n", bench, scale, reps, reps == 1 ? "" : "s",
           sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
    printf("ops/s: best of the reps; RSS: median of the reps; %s\n", ratio);
}

/* ---- a subcommand as a descriptor ----------------------------------------------------------------------- */

typedef struct suite_parse {
    const bench_suite *s;
    bench_options *o;
} suite_parse;

static int add_workload(const char *name, void *arg)
{
    suite_parse *p = arg;
    bool found = false;
    for (size_t i = 0; i < p->s->nworkloads; i++)
        if (strcmp(name, "all") == 0 || strcmp(name, p->s->workload_name(i)) == 0) {
            if (!p->o->want[i]) p->o->chosen[p->o->nchosen++] = (unsigned)i;
            found = p->o->want[i] = true;
        }
    if (!found) bench_warn("unknown workload '%s' (--list shows them)", name);
    return found ? 0 : 1;
}

static int add_impl(const char *name, void *arg)
{
    suite_parse *p = arg;
    for (unsigned i = 0; i < p->s->nimpls; i++)
        if (strcmp(name, p->s->impl_names[i]) == 0) {
            for (unsigned k = 0; k < p->o->nimpls; k++)
                if (p->o->impls[k] == i) return 0;
            p->o->impls[p->o->nimpls++] = i;
            return 0;
        }
    bench_warn("unknown %s '%s' (%s)", p->s->impl_noun ? p->s->impl_noun : "impl", name, p->s->impl_hint);
    return 1;
}

static bool defer_list(bench_options *o, unsigned which, const char *v)
{
    if (o->nlists[which] == BENCH_MAX_WORKLOADS) {
        bench_warn("too many names (at most %u)", BENCH_MAX_WORKLOADS);
        return false;
    }
    o->lists[which][o->nlists[which]++] = v;
    return true;
}

/* A loaded table's impl: chosen by its name or by "all"; an unknown name chooses nothing. */
static int add_loaded_impl(const char *name, void *arg)
{
    suite_parse *p = arg;
    for (unsigned i = 0; i < p->s->nimpls; i++)
        if (strcmp(name, "all") == 0 || strcmp(name, p->s->impl_names[i]) == 0) {
            bool known = false;
            for (unsigned k = 0; k < p->o->nimpls; k++) known |= p->o->impls[k] == i;
            if (!known) p->o->impls[p->o->nimpls++] = i;
        }
    return 0;
}

/* Loads the table of a suite with one and matches the deferred --workload and --impl names against it: 0, or the
 * exit status. */
static int suite_load(const bench_suite *s, bench_options *o)
{
    int rc = s->load(o);
    if (rc) return rc;
    suite_parse p = {s, o};
    for (unsigned i = 0; i < o->nlists[0]; i++)
        if (bench_for_each_item(o->lists[0][i], add_workload, &p)) return 2;
    for (unsigned i = 0; i < o->nlists[1]; i++) bench_for_each_item(o->lists[1][i], add_loaded_impl, &p);
    if (o->nlists[1] == 0) add_loaded_impl("all", &p);
    return 0;
}

/* Returns 0, or the exit status for a usage error (2) or --help (-1 meaning "exit 0"). */
static int suite_options(const bench_suite *s, int argc, char **argv, bench_options *o)
{
    suite_parse p = {s, o};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        uint64_t u;
        int rc;
        int shared = bench_common_option(argc, argv, &i, &o->c);
        if (shared == -1) {
            fputs(s->usage, stdout);
            return -1;
        }
        if (shared == 2) return 2;
        if (shared == 1) continue;
        const char *list = bench_is_option(a, "--workload") ? "--workload"
                           : bench_is_option(a, "--impl")   ? "--impl"
                                                            : NULL;
        if (list && (v = bench_option_value(argc, argv, &i, list))) {
            if (s->load && !defer_list(o, list[2] == 'w' ? 0 : 1, v)) return 2;
            if (!s->load && bench_for_each_item(v, list[2] == 'w' ? add_workload : add_impl, &p)) return 2;
        } else if (list && s->terse_option_errors) {
            return 2;
        } else if (s->threads != BENCH_THREADS_NONE && (v = bench_option_value(argc, argv, &i, "--threads"))) {
            if (!bench_parse_u64(v, 1, 8, &u)) {
                bench_warn("--threads needs a number from 1 to 8");
                return 2;
            }
            o->threads = (unsigned)u;
        } else if (s->option && (rc = s->option(argc, argv, &i)) != 0) {
            if (rc != 1) return rc;
        } else {
            bench_warn("%s '%s'", s->terse_option_errors ? "unknown option" : "unknown option or missing value", a);
            fputs(s->usage, stderr);
            return 2;
        }
    }
    return 0;
}

static void suite_table(const bench_suite *s, const bench_options *o, size_t w, const bench_run *agg, const bool *ran,
                        const unsigned *order, unsigned n)
{
    const char *headers[BENCH_TABLE_MAX_COLS] = {"impl",     "threads",   "ops/s",      "ns/op",
                                                 "peak RSS", "live peak", "RSS before", "RSS after"};
    unsigned ncols = 8;
    for (unsigned i = 0; i < 4 && s->extra_headers[i]; i++) headers[ncols++] = s->extra_headers[i];
    if (s->ratio_header) {
        headers[8] = s->ratio_header(w);
        ncols = ncols > 9 ? ncols : 9;
    }
    if (s->columns) ncols = 8 + s->columns(w);
    bench_table t;
    bench_table_init(&t, ncols, headers);
    for (unsigned k = 0; k < n; k++) {
        bench_table_row(&t);
        if (bench_table_set_run(&t, s->impl_names[order[k]], &agg[order[k]]) && s->ratio_cell)
            s->ratio_cell(&t, w, agg, ran, order[k]);
    }
    s->heading(o, w);
    bench_table_print(&t, stdout);
    if (s->goals) s->goals(o, w, agg, ran);
    fflush(stdout);
}

/* All reps of workload w, impls interleaved and rotated, into agg[impl]; returns the number of failed runs. */
static unsigned suite_workload(const bench_suite *s, const bench_options *o, size_t w, bench_run *agg)
{
    static bench_run runs[BENCH_MAX_IMPLS][BENCH_MAX_REPS];
    unsigned order[BENCH_MAX_IMPLS];
    bool ran[BENCH_MAX_IMPLS] = {false};
    unsigned n = 0, failed = 0;
    if (s->impl_order) {
        n = s->impl_order(o, w, order);
        if (n == 0) return 0;
    } else {
        for (unsigned k = 0; k < o->nimpls; k++)
            if (!s->applies || s->applies(w, o->impls[k])) order[n++] = o->impls[k];
    }
    for (unsigned k = 0; k < n; k++) ran[order[k]] = true;
    bool progress = s->progress && !o->c.verbose && isatty(STDERR_FILENO);
    memset(runs, 0, sizeof runs);
    for (unsigned rep = 0; rep < o->c.reps; rep++)
        for (unsigned k = 0; k < n; k++) {
            unsigned impl = order[(k + rep) % n];
            if (progress)
                fprintf(stderr, "\r\033[K%s: rep %u/%u, %s", s->workload_name(w), rep + 1, o->c.reps,
                        s->impl_names[impl]);
            runs[impl][rep] = s->run_child(o, w, impl, rep);
            failed += !runs[impl][rep].ok;
        }
    if (progress) fputs("\r\033[K", stderr);
    for (unsigned i = 0; i < s->nimpls; i++) agg[i] = bench_run_aggregate(runs[i], o->c.reps);
    if (!o->c.json) {
        suite_table(s, o, w, agg, ran, order, n);
        return failed;
    }
    for (unsigned k = 0; k < n; k++)
        if (agg[order[k]].ok)
            bench_run_print(s->name, s->workload_name(w), s->impl_names[order[k]], &agg[order[k]], stdout);
    return failed;
}

static int suite_parent(const bench_suite *s, bench_options *o)
{
    static bench_run agg[BENCH_MAX_WORKLOADS][BENCH_MAX_IMPLS];
    int rc = s->prepare ? s->prepare(o) : 0;
    if (rc) return rc;
    if (!o->c.json && s->banner) {
        s->banner(o);
    } else if (!o->c.json) {
        bench_print_banner(s->name, o->c.scale, o->c.reps, s->banner_ratio);
        fflush(stdout);
    }
    memset(agg, 0, sizeof agg);
    unsigned failed = 0;
    for (size_t i = 0; i < s->nworkloads; i++) {
        size_t w = s->given_order ? (i < o->nchosen ? o->chosen[i] : s->nworkloads) : i;
        if (w < s->nworkloads && o->want[w]) failed += suite_workload(s, o, w, agg[w]);
    }
    if (!o->c.json && s->final_goals) s->final_goals(o, (const bench_run(*)[BENCH_MAX_IMPLS])agg);
    if (failed) bench_warn("%u run%s failed (see above)", failed, failed == 1 ? "" : "s");
    return failed ? 1 : 0;
}

static size_t child_workload(const bench_options *o, size_t nworkloads, unsigned (*threads)(size_t w))
{
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < nworkloads; i++)
        if (o->want[i] && (!o->threads || threads(i) == o->threads)) {
            if (found != SIZE_MAX)
                bench_die(2, "--child needs exactly one workload (and --threads to pick its variant)");
            found = i;
        }
    return found;
}

int bench_suite_main(const bench_suite *s, int argc, char **argv)
{
    bench_options o;
    memset(&o, 0, sizeof o);
    bench_common_init(&o.c, s->default_timeout_s);
    int rc = suite_options(s, argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (s->load && !o.c.child && (rc = suite_load(s, &o)) != 0) return rc;
    if (o.c.list) {
        s->list();
        return 0;
    }
    if (o.nimpls == 0 && !s->load)
        for (unsigned i = 0; i < s->nimpls; i++) o.impls[o.nimpls++] = i;
    bool any = false;
    for (size_t i = 0; i < s->nworkloads; i++) any |= o.want[i];
    if (!any && s->nworkloads) /* (a child of a suite with a loaded table has none) */
        add_workload("all", &(suite_parse){s, &o});
    if (s->threads == BENCH_THREADS_FILTER && o.threads && !o.c.child) /* the parent narrows to those variants */
        for (size_t i = 0; i < s->nworkloads; i++) o.want[i] &= s->workload_threads(i) == o.threads;
    o.child_workload = SIZE_MAX;
    snprintf(o.scale_arg, sizeof o.scale_arg, "%.17g", o.c.scale);
    if (o.c.child && s->workload_threads) o.child_workload = child_workload(&o, s->nworkloads, s->workload_threads);
    return o.c.child ? s->child(&o) : suite_parent(s, &o);
}
