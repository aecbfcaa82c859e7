/* ohm-stress: options, setup, the run, and the final checks.
 *
 * The order at the end matters: workers stop, empty their inboxes and release everything but the leaks they
 * injected; fault injection goes off; the leak checkpoint must then name exactly the injected leaks (each with
 * a creation site); those are released; the manager is destroyed and the pool trimmed, and the manager's
 * totals plus the pool's active bytes must be 0. */
#define _GNU_SOURCE
#include "stress.h"
#include "workload.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <math.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ohm-stress [options]\n"
               "  --threads N       worker threads (default 4)\n"
               "  --duration S      run for S seconds (default 20)\n"
               "  --ops N           run N operations in all instead of a duration\n"
               "  --seed S          seed of every thread's choices (thread i uses S + i; default 1)\n"
               "  --leak-rate R     leak this fraction of received buffers on purpose (default 0)\n"
               "  --max-leaks N     at most N injected leaks in all (default 2000)\n"
               "  --fail-rate R     fail this fraction of OS maps and of spill callbacks (default 0)\n"
               "  --leak-level L    the leak detector's level: off, simple, advanced or paranoid (default\n"
               "                    paranoid); below paranoid only the sampled buffers can be leaked\n"
               "  --mm-mib N        memory-manager max per mode, MiB (default 8)\n"
               "  --json            print the summary as one JSON object\n"
               "  --report F.html   write an HTML report with charts over time\n"
               "  --tmpdir D        where the temporary directory goes (default $TMPDIR or /tmp)\n"
               "  --lua F.lua ...   run a Lua workload instead (ohm-stress --lua F.lua --help)\n"
               "Exit status: 0 when clean; 1 for an integrity or API error, a missed or false leak, fewer leaks\n"
               "tracked than the leak level and fail rate allow, or accounting drift; 2 for a usage or setup error,\n"
               "or a report that cannot be written.\n");
}

static bool parse_level(const char *s, ohm_leak_level *out)
{
    for (int i = OHM_LEAK_OFF; i <= OHM_LEAK_PARANOID; i++)
        if (strcmp(s, leak_level_name((ohm_leak_level)i)) == 0) {
            *out = (ohm_leak_level)i;
            return true;
        }
    return false;
}

static int parse_args(int argc, char **argv, stress_opts *o)
{
    enum {
        O_THREADS = 1,
        O_DURATION,
        O_OPS,
        O_SEED,
        O_LEAK,
        O_MAXLEAKS,
        O_FAIL,
        O_LEVEL,
        O_MM,
        O_JSON,
        O_REPORT,
        O_TMP,
        O_HELP
    };
    static const struct option opts[] = {{"threads", required_argument, 0, O_THREADS},
                                         {"duration", required_argument, 0, O_DURATION},
                                         {"ops", required_argument, 0, O_OPS},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"leak-rate", required_argument, 0, O_LEAK},
                                         {"max-leaks", required_argument, 0, O_MAXLEAKS},
                                         {"fail-rate", required_argument, 0, O_FAIL},
                                         {"leak-level", required_argument, 0, O_LEVEL},
                                         {"mm-mib", required_argument, 0, O_MM},
                                         {"json", no_argument, 0, O_JSON},
                                         {"report", required_argument, 0, O_REPORT},
                                         {"tmpdir", required_argument, 0, O_TMP},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    *o = (stress_opts){.threads = 4,
                       .duration_s = 20,
                       .seed = 1,
                       .max_leaks = 2000,
                       .leak_level = OHM_LEAK_PARANOID,
                       .mm_bytes = 8ull << 20};
    const char *t = getenv("TMPDIR");
    o->tmpdir = t && *t ? t : "/tmp";
    int c;
    uint64_t u;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case O_THREADS: ok = parse_u64(optarg, 1, 256, &u), o->threads = (unsigned)u; break;
        case O_DURATION: ok = parse_double(optarg, 0.01, 1e6, &o->duration_s); break;
        case O_OPS: ok = parse_u64(optarg, 1, UINT64_MAX, &o->ops); break;
        case O_SEED: ok = parse_u64(optarg, 0, UINT64_MAX, &o->seed); break;
        case O_LEAK: ok = parse_double(optarg, 0, 1, &o->leak_rate); break;
        case O_MAXLEAKS: ok = parse_u64(optarg, 0, 1000000, &o->max_leaks); break;
        case O_FAIL: ok = parse_double(optarg, 0, 1, &o->fail_rate); break;
        case O_LEVEL: ok = parse_level(optarg, &o->leak_level); break;
        case O_MM: ok = parse_u64(optarg, 1, 1 << 20, &u), o->mm_bytes = u << 20; break;
        case O_JSON: o->json = true; break;
        case O_REPORT: o->report = optarg; break;
        case O_TMP: o->tmpdir = optarg; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (!ok) {
            fprintf(stderr, "ohm-stress: bad value '%s' for --%s\n", optarg, opts[c - 1].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ohm-stress: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- the library's log and leak reports ---- */

#define KEPT_LOGS 5
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logs[KEPT_LOGS][320];
static unsigned nlogs;
static stress *g_stress; /* for the two process-wide handlers below only */

/* The library's warnings are expected under --fail-rate (injected map failures); they are counted and the
 * first few shown, instead of filling the terminal. */
static void on_log(void *arg, ohm_log_level level, const char *msg)
{
    (void)arg;
    if (level < OHM_LOG_WARN) return;
    atomic_fetch_add_explicit(&g_stress->c.log_warnings, 1, memory_order_relaxed);
    pthread_mutex_lock(&log_lock);
    if (nlogs < KEPT_LOGS) snprintf(logs[nlogs++], sizeof logs[0], "%s", msg);
    pthread_mutex_unlock(&log_lock);
}

static atomic_uint_fast64_t other_leak_reports;
/* Reports outside the checkpoint (a pool destroyed or a task ended with live buffers) mean the tool itself
 * lost a buffer. */
static void on_other_leak(void *arg, const ohm_leak_report *r)
{
    (void)arg;
    atomic_fetch_add(&other_leak_reports, 1);
    stress_error(g_stress, &g_stress->c.api_errors, "unexpected leak report (reason %d) for buffer %#llx",
                 (int)r->reason, (unsigned long long)r->buffer_id);
}

typedef struct leak_seen {
    uint64_t *ids;
    size_t n, cap;
    uint64_t no_site;
} leak_seen;

static void on_checkpoint(void *arg, const ohm_leak_report *r)
{
    leak_seen *ls = arg;
    if (r->created.nframes == 0) ls->no_site++;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 256;
        uint64_t *p = realloc(ls->ids, cap * sizeof *p);
        if (!p) return;
        ls->ids = p;
        ls->cap = cap;
    }
    ls->ids[ls->n++] = r->buffer_id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Compares the checkpoint's reports with the injected leaks, then releases the leaks. */
static void check_leaks(stress *s, uint64_t mark)
{
    leak_seen ls = {0};
    int64_t n = ohm_leak_check(mark, on_checkpoint, &ls);
    if (n < 0) stress_error(s, &s->c.api_errors, "ohm_leak_check: %s", ohm_last_error());
    s->leak_reports = ls.n;
    s->leaks_no_site = ls.no_site;
    size_t ninj = 0;
    for (unsigned i = 0; i < s->o.threads; i++) ninj += s->workers[i].nleaked;
    uint64_t *inj = malloc((ninj ? ninj : 1) * sizeof *inj);
    size_t k = 0;
    for (unsigned i = 0; i < s->o.threads && inj; i++)
        for (size_t j = 0; j < s->workers[i].nleaked; j++) inj[k++] = s->workers[i].leaked[j].id;
    if (inj) qsort(inj, ninj, sizeof *inj, cmp_u64);
    if (ls.n) qsort(ls.ids, ls.n, sizeof *ls.ids, cmp_u64);
    size_t a = 0, b = 0;
    while (inj && (a < ninj || b < ls.n)) {
        if (b == ls.n || (a < ninj && inj[a] < ls.ids[b])) {
            s->leaks_missed++;
            if (s->leaks_missed <= 3)
                stress_error(s, &s->c.api_errors, "injected leak %#llx was not reported", (unsigned long long)inj[a]);
            a++;
        } else if (a == ninj || ls.ids[b] < inj[a]) {
            s->leaks_false++;
            if (s->leaks_false <= 3)
                stress_error(s, &s->c.api_errors, "buffer %#llx reported as leaked but was not leaked",
                             (unsigned long long)ls.ids[b]);
            b++;
        } else {
            s->leaks_reported++;
            a++, b++;
        }
    }
    free(inj);
    free(ls.ids);
    /* Reclaim what was leaked on purpose, so the accounting can end at zero. */
    for (unsigned i = 0; i < s->o.threads; i++) {
        worker *w = &s->workers[i];
        for (size_t j = 0; j < w->nleaked; j++) {
            int rc = ohm_buf_release(w->leaked[j].b, 1);
            if (rc != 1)
                stress_error(s, &s->c.api_errors, "release of leaked buffer %#llx returned %d",
                             (unsigned long long)w->leaked[j].id, rc);
        }
        w->nleaked = 0;
    }
}

/* Binomial tails (Chernoff): ln P(Binomial(n, q) >= u) <= -n D(u/n || q) when u/n > q, D the relative entropy
 * of Bernoulli(u/n) from Bernoulli(q). 0 (no bound) when u/n <= q. */
static double tail_log_bound(uint64_t n, uint64_t u, double q)
{
    double x = (double)u / (double)n;
    if (x <= q) return 0;
    if (q <= 0) return -INFINITY;
    double d = x * log(x / q) + (x < 1 ? (1 - x) * log((1 - x) / (1 - q)) : 0);
    return -(double)n * d;
}

/* Most OS maps making one leak record can take: the records pool's arenas, a thread cache and its empty stacks,
 * a chunk's record, mapping and radix leaves, and all of the chunk's again if another thread took its run. */
#define RECORD_MAPS 16

/* Planted leaks check the detector only if it tracked them: a buffer chosen to leak but untracked is released
 * instead (workers.c), so a run whose chosen buffers all went untracked would pass having checked nothing.
 * What the settings allow, of the n buffers chosen (while a worker had leak budget left), u of them untracked:
 *  - off tracks nothing: a run that chose buffers to leak at off checked nothing, and fails.
 *  - paranoid gives every buffer a record unless making it failed, which it does only on an OS map failed on
 *    purpose (each failing one record at most) or a machine out of memory: u above the map faults injected is
 *    records lost some other way.
 *  - simple and advanced track one in interval of a thread's allocations. Which allocation the countdown picks
 *    and which buffers become chosen ones are decided by unrelated random draws (the op mix, the kinds, the
 *    receiver's leak coin), so a chosen buffer is sampled with probability about 1/interval: half that is used.
 *  - at --fail-rate F a record survives with probability at least (1-F)^RECORD_MAPS, each map failing on its
 *    own draw.
 * So each chosen buffer is untracked with probability at most q = 1 - sampled * (1-F)^RECORD_MAPS, whatever the
 * buffers before it did (the leak coin does not see whether a buffer is tracked), and u is stochastically at most
 * Binomial(n, q); the run fails when u is so far above n q that a run reaches it by chance with probability below
 * 2^-50. At paranoid without faults q is 0 and one untracked buffer fails the run; at fail rate 0.01 q is 0.15,
 * against none untracked in practice, and all n untracked fails from n = 19. */
static void check_tracking(stress *s)
{
    uint64_t untracked = atomic_load(&s->c.leaks_untracked), n = atomic_load(&s->c.leaks_injected) + untracked;
    const char *level = leak_level_name(s->o.leak_level);
    char *why = s->leaks_unchecked_why;
    size_t cap = sizeof s->leaks_unchecked_why;
    if (!n) return; /* nothing chosen: no budget (--leak-rate 0, --max-leaks 0) or too short a run */
    if (s->o.leak_level == OHM_LEAK_OFF) {
        s->leaks_unchecked = true;
        snprintf(why, cap,
                 "the leak detector tracked %llu of the %llu buffers chosen to leak at leak level off: "
                 "a run that plants leaks needs a level that tracks them",
                 (unsigned long long)(n - untracked), (unsigned long long)n);
        return;
    }
    if (s->o.leak_level == OHM_LEAK_PARANOID && untracked > s->map_faults) {
        s->leaks_unchecked = true;
        snprintf(why, cap,
                 "%llu of the %llu buffers chosen to leak were untracked at leak level paranoid, more "
                 "than the %llu OS maps failed on purpose can explain",
                 (unsigned long long)untracked, (unsigned long long)n, (unsigned long long)s->map_faults);
        return;
    }
    double sampled = s->o.leak_level == OHM_LEAK_PARANOID ? 1 : 0.5 / ohm_leak_get_sample_interval();
    double q = 1 - sampled * pow(1 - s->o.fail_rate, RECORD_MAPS);
    if (tail_log_bound(n, untracked, q) < -50 * log(2)) {
        s->leaks_unchecked = true;
        snprintf(why, cap,
                 "%llu of the %llu buffers chosen to leak were untracked, far more than leak level %s "
                 "and fail rate %g allow (at most a fraction %.3g each; chance below 2^-50)",
                 (unsigned long long)untracked, (unsigned long long)n, level, s->o.fail_rate, q);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static uint64_t mm_accounted(ohm_mm *mm)
{
    ohm_mm_stats st;
    if (ohm_mm_stats_get(mm, &st) != 0) return UINT64_MAX;
    uint64_t total = 0;
    for (int m = 0; m < OHM_MM_MODES; m++) total += st.mode[m].execution_used + st.mode[m].storage_used;
    return total;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--lua") == 0 || strncmp(argv[i], "--lua=", 6) == 0) {
#ifdef OHM_STRESS_LUA
            return lua_main(argc, argv);
#else
            fprintf(stderr, "ohm-stress: built without the Lua module (OHM_BUILD_LUA=OFF): --lua is not available\n");
            return 2;
#endif
        }
    static stress st;
    stress *s = &st;
    g_stress = s;
    if (parse_args(argc, argv, &s->o) != 0) return 2;
    char why[PATH_MAX + 16];
    const char *problem = s->o.report ? report_path_problem(s->o.report, why, sizeof why) : NULL;
    if (problem) {
        fprintf(stderr, "ohm-stress: cannot write the report %s: %s\n", s->o.report, problem);
        return 2;
    }

    ohm_set_log_handler(on_log, NULL);
    ohm_leak_set_handler(on_other_leak, NULL);
    /* By default every buffer is tracked, so that a leak of any of them can be named. */
    ohm_leak_set_level(s->o.leak_level);

    if ((size_t)snprintf(s->dir, sizeof s->dir, "%s/ohm-stress.XXXXXX", s->o.tmpdir) >= sizeof s->dir) {
        fprintf(stderr, "ohm-stress: --tmpdir is too long\n");
        return 2;
    }
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "ohm-stress: mkdtemp %s: %s\n", s->dir, strerror(errno));
        return 2;
    }
    ohm_pool_config pc;
    ohm_pool_config_init(&pc);
    pc.name = "ohm-stress";
    s->pool = ohm_pool_create(&pc);
    ohm_mm_config mc;
    ohm_mm_config_init(&mc);
    mc.max_bytes[OHM_ON_HEAP] = mc.max_bytes[OHM_OFF_HEAP] = s->o.mm_bytes;
    mc.storage_fraction = 0.5;
    mc.page_size = 16 << 10;
    mc.pool = s->pool;
    s->mm = s->pool ? ohm_mm_create(&mc) : NULL;
    if (!s->mm || workers_init(s) != 0 || pthread_barrier_init(&s->done, NULL, s->o.threads) != 0) {
        fprintf(stderr, "ohm-stress: setup failed: %s\n", ohm_last_error());
        return 2;
    }
    pthread_mutex_init(&s->samples_lock, NULL);
    s->progress = !s->o.json && isatty(STDOUT_FILENO);

    uint64_t mark = ohm_leak_mark();
    uint64_t faults0 = ohm_fault_injected();
    if (s->o.fail_rate > 0) ohm_fault_inject(0, s->o.fail_rate, s->o.seed);
    s->t0 = now_s();
    if (monitor_start(s) != 0) {
        fprintf(stderr, "ohm-stress: cannot start the monitor thread\n");
        return 2;
    }
    for (unsigned i = 0; i < s->o.threads; i++)
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            fprintf(stderr, "ohm-stress: cannot start worker %u\n", i);
            return 2; /* the barrier would never open: nothing to clean up in order */
        }
    while (!atomic_load(&s->stop)) {
        if (!s->o.ops && now_s() - s->t0 >= s->o.duration_s) atomic_store(&s->stop, true);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    s->elapsed = now_s() - s->t0;
    for (unsigned i = 0; i < s->o.threads; i++) pthread_join(s->workers[i].thread, NULL);
    ohm_fault_inject(0, 0, 0);
    /* injected: OS maps failed on purpose plus spill callbacks failed on purpose */
    s->map_faults = ohm_fault_injected() - faults0;
    s->faults_injected = s->map_faults + atomic_load(&s->c.spill_failures);
    check_tracking(s);
    monitor_stop(s);

    /* Everything but the injected leaks is released now: the manager must hold nothing. */
    ohm_mm_stats ms;
    ohm_mm_stats_get(s->mm, &ms);
    s->mm_left = mm_accounted(s->mm);
    if (ms.tasks || ms.blocks || ms.pages)
        stress_error(s, &s->c.api_errors, "after cleanup the manager still has %llu tasks, %llu blocks, %llu pages",
                     (unsigned long long)ms.tasks, (unsigned long long)ms.blocks, (unsigned long long)ms.pages);
    check_leaks(s, mark);
    if (ohm_mm_destroy(s->mm) != 0) stress_error(s, &s->c.api_errors, "ohm_mm_destroy: %s", ohm_last_error());
    ohm_pool_flush_thread_cache(s->pool);
    ohm_pool_stats *ps = calloc(1, sizeof *ps);
    if (ps && ohm_pool_stats_get(s->pool, -1, ps) == 0) s->pool_left = ps->active_bytes;
    free(ps);
    s->drift = (int64_t)(s->mm_left + s->pool_left);
    ohm_pool_trim(s->pool);
    s->peak_rss = harness_peak_rss_bytes();
    s->rss_after_trim = harness_rss_bytes();

    /* The report first, so that the summary names it only once it is there. */
    bool unwritten = false;
    if (s->o.report && report_html(s, s->o.report) != 0) {
        fprintf(stderr, "ohm-stress: cannot write the report %s: %s\n", s->o.report, strerror(errno));
        s->o.report = NULL;
        unwritten = true;
    }
    if (s->o.json) report_json(s);
    else report_summary(s);
    for (unsigned i = 0; i < nlogs; i++) fprintf(stderr, "ohm-stress: library said: %s\n", logs[i]);
    stress_print_errors();
    if (s->leaks_unchecked) fprintf(stderr, "ohm-stress: error: %s\n", s->leaks_unchecked_why);

    bool failed = stress_failed(s);
    workers_fini(s);
    if (ohm_pool_destroy(s->pool) != 0) fprintf(stderr, "ohm-stress: ohm_pool_destroy: %s\n", ohm_last_error());
    nftw(s->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < s->nsamples; i++) free(s->samples[i].task_used);
    free(s->samples);
    return failed ? 1 : unwritten ? 2 : 0;
}
