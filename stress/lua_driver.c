/* ohm-stress --lua workload.lua: runs a user's Lua workload on N threads, one Lua state each, every iteration in
 * a leak scope, and fails the run on a leak, an error or steady growth.
 *
 * The script returns a table: iteration(ctx) (required), setup(ctx) and teardown(ctx) (optional). ctx.thread
 * (1..N) and ctx.iteration (1, 2, ... on each thread) are numbers; ctx:keep(buf) marks a buffer the workload keeps
 * across iterations: it is not an iteration's leak, and it must be released by teardown. setup runs before the
 * first iteration and outside any scope (a cache, a warm-up), teardown after the last.
 *
 * The states share one pool ("workload", given to the module as the embedder's shared pool), whose live bytes
 * the main thread samples with RSS and the memory managers' use (ohm_mm_used_all) every ~100 ms for the growth
 * trend and the HTML report. A workload that does not load, returns no iteration function or raises in setup
 * stops the run before any iteration: exit 2. */
#define _GNU_SOURCE
#include "workload.h"

#include "stress.h"

#include "harness.h"
#include "lohm.h"
#include "ohm.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#define MAX_SITES 256

int luaopen_ohm(lua_State *L); /* the module, linked in (ohm_lua_static) */

typedef struct lrun lrun;

typedef struct lthread {
    lrun *run;
    unsigned index;
    pthread_t th;
    uint64_t iterations;
    uint64_t *kept_ids; /* ids of the buffers given to ctx:keep */
    size_t nkept, kept_cap;
    bool setup_ok;
} lthread;

struct lrun {
    const char *path;
    unsigned threads;
    double duration_s;
    uint64_t iterations; /* per thread; 0 = run for duration_s */
    bool json;
    const char *report;
    ohm_pool *pool;
    pthread_barrier_t ready; /* every state loaded and set up (or failed) before any iteration */
    atomic_bool setup_failed, stop;
    atomic_uint running, iterating; /* threads not finished; threads not past their last iteration */
    pthread_mutex_t lock;           /* the result below */
    wl_result r;
    wl_site sites[MAX_SITES];
    bool load_error; /* the workload did not load or set up: exit 2 */
    char load_msg[512];
    lthread *ts;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ohm-stress --lua workload.lua [options]\n"
               "  --threads N       Lua states, one thread each (default 1)\n"
               "  --duration S      run for S seconds (default 10)\n"
               "  --iterations N    run N iterations on each thread instead of a duration\n"
               "  --json            print the summary as one JSON object\n"
               "  --report F.html   write an HTML report (leaks by site, memory over time, growth)\n"
               "The script returns {iteration = function(ctx) ... end [, setup = ..., teardown = ...]}.\n"
               "Exit status: 0 when clean; 1 for a leak, an iteration error or steady growth; 2 for a usage error\n"
               "or a workload that does not load, has no iteration function, or raises in setup, or a report that\n"
               "cannot be written.\n");
}

static int parse(int argc, char **argv, lrun *run)
{
    /* the values are the cases below */
    static const struct option opts[] = {{"lua", required_argument, 0, 1},      {"threads", required_argument, 0, 2},
                                         {"duration", required_argument, 0, 3}, {"iterations", required_argument, 0, 4},
                                         {"json", no_argument, 0, 5},           {"report", required_argument, 0, 6},
                                         {"help", no_argument, 0, 7},           {0, 0, 0, 0}};
    run->threads = 1;
    run->duration_s = 10;
    int c;
    uint64_t u;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = true;
        if (c == 1) run->path = optarg;
        else if (c == 2) ok = parse_u64(optarg, 1, 256, &u), run->threads = (unsigned)u;
        else if (c == 3) ok = parse_double(optarg, 0.01, 1e6, &run->duration_s);
        else if (c == 4) ok = parse_u64(optarg, 1, UINT64_MAX, &run->iterations);
        else if (c == 5) run->json = true;
        else if (c == 6) run->report = optarg;
        else if (c == 7) usage(stdout), exit(0);
        else return -1; /* getopt said what; the caller prints the usage */
        if (!ok) {
            fprintf(stderr, "ohm-stress: bad value '%s' for --%s\n", optarg, opts[c - 1].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ohm-stress: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return run->path ? 0 : -1;
}

/* ---- results ---- */

static void record_error(lrun *run, const char *what, const char *msg)
{
    pthread_mutex_lock(&run->lock);
    if (run->r.integrity_errors++ == 0) snprintf(run->r.first_error, sizeof run->r.first_error, "%s%s", what, msg);
    pthread_mutex_unlock(&run->lock);
}

static void record_leak(lrun *run, const char *site, uint64_t bytes, uint64_t iteration)
{
    pthread_mutex_lock(&run->lock);
    run->r.leaks++;
    run->r.leak_bytes += bytes;
    wl_site *w = NULL;
    for (size_t i = 0; i < run->r.nsites && !w; i++)
        if (strcmp(run->sites[i].site, site) == 0) w = &run->sites[i];
    if (!w && run->r.nsites < MAX_SITES) {
        w = &run->sites[run->r.nsites++];
        snprintf(w->site, sizeof w->site, "%s", site);
        w->first_iteration = iteration;
    }
    if (w) {
        w->count++;
        w->bytes += bytes;
        if (iteration < w->first_iteration) w->first_iteration = iteration;
    }
    pthread_mutex_unlock(&run->lock);
}

static void load_failed(lrun *run, const char *what, const char *msg)
{
    pthread_mutex_lock(&run->lock);
    if (!run->load_error) snprintf(run->load_msg, sizeof run->load_msg, "%s: %s%s", run->path, what, msg ? msg : "");
    run->load_error = true;
    pthread_mutex_unlock(&run->lock);
    atomic_store(&run->setup_failed, true);
}

/* ---- the context ---- */

/* ctx:keep(buf): the buffer stays across iterations; returns buf. */
static int l_keep(lua_State *L)
{
    lthread *t = lua_touserdata(L, lua_upvalueindex(1));
    lbuf *u = lohm_testbuf(L, 2);
    if (!u || !u->b) return luaL_error(L, "ctx:keep: a live ohm buffer expected");
    if (t->nkept == t->kept_cap) {
        size_t cap = t->kept_cap ? 2 * t->kept_cap : 16;
        uint64_t *p = realloc(t->kept_ids, cap * sizeof *p);
        if (!p) return luaL_error(L, "ctx:keep: out of memory");
        t->kept_ids = p;
        t->kept_cap = cap;
    }
    t->kept_ids[t->nkept++] = u->id;
    /* the buffer and where it was kept, for the check at teardown */
    lua_getfield(L, 1, "__kept");
    lua_pushvalue(L, 2);
    luaL_where(L, 1);
    lua_settable(L, -3);
    lua_pop(L, 1);
    lua_settop(L, 2);
    return 1;
}

static bool kept(const lthread *t, uint64_t id)
{
    for (size_t i = 0; i < t->nkept; i++)
        if (t->kept_ids[i] == id) return true;
    return false;
}

static const char *top_message(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    return m ? m : "(an error object that is not a string)";
}

/* ---- one thread ---- */

static void run_iterations(lthread *t, lua_State *L, int wl, int ctx)
{
    lrun *run = t->run;
    for (uint64_t k = 1; !atomic_load_explicit(&run->stop, memory_order_relaxed); k++) {
        if (run->iterations && k > run->iterations) break;
        lua_pushinteger(L, (lua_Integer)k);
        lua_setfield(L, ctx, "iteration");
        uint64_t scope = ohm_leak_scope_open();
        if (!scope) {
            record_error(run, "ohm_leak_scope_open: ", ohm_last_error());
            break;
        }
        lua_getfield(L, wl, "iteration");
        lua_pushvalue(L, ctx);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            record_error(run, "iteration raised: ", top_message(L));
            lua_pop(L, 1);
        }
        ohm_leak_list *l = NULL;
        int64_t n = ohm_leak_scope_close(scope, 0, &l);
        if (n < 0) {
            /* the iteration left a scope of its own open: this thread cannot go on */
            record_error(run, "closing the iteration's leak scope: ", ohm_last_error());
            break;
        }
        for (size_t i = 0; l && i < l->count; i++) {
            const ohm_leak_report *rep = &l->reports[i];
            if (kept(t, rep->buffer_id)) continue;
            char site[WL_SITE_MAX];
            lohm_site_line(rep->created.host_site, site, sizeof site);
            record_leak(run, site, rep->size, k);
        }
        ohm_leak_list_free(l);
        t->iterations = k;
    }
}

/* After teardown: every kept buffer must be released. */
static void check_kept(lthread *t, lua_State *L, int ctx)
{
    lua_getfield(L, ctx, "__kept");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lbuf *u = lohm_testbuf(L, -2);
        if (u && u->b && ohm_buf_check(u->b, u->id) == 0) {
            char site[WL_SITE_MAX];
            const char *where = lua_tostring(L, -1);
            size_t n = where ? strlen(where) : 0;
            while (n && (where[n - 1] == ' ' || where[n - 1] == ':')) n--;
            snprintf(site, sizeof site, "%.*s (kept, not released by teardown)", (int)n, where ? where : "?");
            record_leak(t->run, site, ohm_buf_size(u->b), t->iterations);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void *thread_main(void *arg)
{
    lthread *t = arg;
    lrun *run = t->run;
    lua_State *L = luaL_newstate();
    if (!L) {
        load_failed(run, "no memory for a Lua state", NULL);
        pthread_barrier_wait(&run->ready);
        return NULL;
    }
    luaL_openlibs(L);
    lua_pushlightuserdata(L, run->pool);
    lua_setfield(L, LUA_REGISTRYINDEX, "ohm.sharedpool");
    luaL_requiref(L, "ohm", luaopen_ohm, 1);
    lua_pop(L, 1);
    int wl = 0, ctx = 0;
    if (luaL_loadfile(L, run->path) != LUA_OK) {
        load_failed(run, "does not load: ", top_message(L));
    } else if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        load_failed(run, "raised while loading: ", top_message(L));
    } else if (!lua_istable(L, -1) || lua_getfield(L, -1, "iteration") != LUA_TFUNCTION) {
        load_failed(run, "must return a table with an iteration(ctx) function", NULL);
    } else {
        lua_pop(L, 1);
        wl = lua_gettop(L);
        lua_createtable(L, 0, 4);
        ctx = lua_gettop(L);
        lua_pushinteger(L, (lua_Integer)t->index + 1);
        lua_setfield(L, ctx, "thread");
        lua_pushinteger(L, 0);
        lua_setfield(L, ctx, "iteration");
        lua_pushlightuserdata(L, t);
        lua_pushcclosure(L, l_keep, 1);
        lua_setfield(L, ctx, "keep");
        lua_newtable(L);
        lua_setfield(L, ctx, "__kept");
        lua_getfield(L, wl, "setup");
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, ctx);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) load_failed(run, "setup raised: ", top_message(L));
            else t->setup_ok = true;
        } else {
            lua_pop(L, 1);
            t->setup_ok = true;
        }
    }
    pthread_barrier_wait(&run->ready);
    if (!atomic_load(&run->setup_failed)) run_iterations(t, L, wl, ctx);
    atomic_fetch_sub(&run->iterating, 1); /* teardown is not part of the trend */
    if (t->setup_ok) {
        lua_settop(L, ctx);
        lua_getfield(L, wl, "teardown");
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, ctx);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
                record_error(run, "teardown raised: ", top_message(L));
                lua_pop(L, 1);
            }
        } else {
            lua_pop(L, 1);
        }
        if (!atomic_load(&run->setup_failed)) check_kept(t, L, ctx);
    }
    lua_close(L); /* the state's buffers are released with it (the workload's leaks were counted already) */
    atomic_fetch_sub(&run->running, 1);
    return NULL;
}

/* ---- the run ---- */

static void take_sample(lrun *run, double t0, size_t *cap)
{
    wl_result *r = &run->r;
    if (r->nsamples == *cap) {
        size_t ncap = *cap ? 2 * *cap : 256;
        wl_sample *p = realloc(r->samples, ncap * sizeof *p);
        if (!p) return;
        r->samples = p;
        *cap = ncap;
    }
    wl_sample x = {.t = (double)harness_now_ns() * 1e-9 - t0, .rss = harness_rss_bytes()};
    ohm_pool *pools[2] = {run->pool, ohm_pool_default()};
    ohm_pool_stats *ps = calloc(1, sizeof *ps);
    for (unsigned p = 0; p < 2 && ps; p++)
        if (ohm_pool_stats_get(pools[p], -1, ps) == 0) x.pool_live[p] = ps->active_bytes;
    free(ps);
    x.mm_used = ohm_mm_used_all(); /* the managers the states made (ohm.mm), which the driver never sees */
    r->samples[r->nsamples++] = x;
}

static void quiet_leak(void *arg, const ohm_leak_report *rep)
{
    (void)arg, (void)rep; /* a leaked buffer the GC reclaimed after its iteration: counted at the iteration */
}

int lua_main(int argc, char **argv)
{
    static lrun run_;
    lrun *run = &run_;
    if (parse(argc, argv, run) != 0) {
        usage(stderr);
        return 2;
    }
    char why[PATH_MAX + 16];
    const char *problem = run->report ? report_path_problem(run->report, why, sizeof why) : NULL;
    if (problem) {
        fprintf(stderr, "ohm-stress: cannot write the report %s: %s\n", run->report, problem);
        return 2;
    }
    ohm_leak_set_handler(quiet_leak, NULL);
    ohm_pool_config pc;
    ohm_pool_config_init(&pc);
    pc.name = "workload";
    run->pool = ohm_pool_create(&pc);
    run->ts = calloc(run->threads, sizeof *run->ts);
    if (!run->pool || !run->ts || pthread_barrier_init(&run->ready, NULL, run->threads + 1) != 0) {
        fprintf(stderr, "ohm-stress: setup failed: %s\n", ohm_last_error());
        return 2;
    }
    pthread_mutex_init(&run->lock, NULL);
    run->r = (wl_result){.driver = "lua",
                         .workload = run->path,
                         .threads = run->threads,
                         .sites = run->sites,
                         .npools = 2,
                         .pool_names = {"workload (the states' pool)", "default"}};
    atomic_store(&run->running, run->threads);
    atomic_store(&run->iterating, run->threads);
    for (unsigned i = 0; i < run->threads; i++) {
        run->ts[i] = (lthread){.run = run, .index = i};
        if (pthread_create(&run->ts[i].th, NULL, thread_main, &run->ts[i]) != 0) {
            fprintf(stderr, "ohm-stress: cannot start thread %u\n", i);
            exit(2); /* the barrier would never open */
        }
    }
    pthread_barrier_wait(&run->ready);
    double t0 = (double)harness_now_ns() * 1e-9;
    size_t cap = 0;
    unsigned ticks = 0;
    if (!atomic_load(&run->setup_failed)) take_sample(run, t0, &cap);
    while (atomic_load(&run->running) > 0) {
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        double now = (double)harness_now_ns() * 1e-9 - t0;
        if (!run->iterations && now >= run->duration_s) atomic_store(&run->stop, true);
        if (++ticks % 10 == 0 && !atomic_load(&run->setup_failed) && atomic_load(&run->iterating) > 0)
            take_sample(run, t0, &cap);
    }
    for (unsigned i = 0; i < run->threads; i++) {
        pthread_join(run->ts[i].th, NULL);
        run->r.iterations += run->ts[i].iterations;
        free(run->ts[i].kept_ids);
    }
    run->r.seconds = (double)harness_now_ns() * 1e-9 - t0;
    int status;
    if (run->load_error) {
        fprintf(stderr, "ohm-stress: %s\n", run->load_msg);
        status = 2;
    } else {
        wl_growth(&run->r);
        if (run->json) wl_json(stdout, &run->r);
        else wl_summary(stdout, &run->r);
        status = wl_failed(&run->r) ? 1 : 0;
        if (run->report && wl_html(&run->r, run->report) != 0) {
            fprintf(stderr, "ohm-stress: cannot write the report %s: %s\n", run->report, strerror(errno));
            status = 2;
        }
    }
    free(run->ts);
    free(run->r.samples);
    pthread_barrier_destroy(&run->ready);
    if (ohm_pool_destroy(run->pool) != 0) fprintf(stderr, "ohm-stress: ohm_pool_destroy: %s\n", ohm_last_error());
    return status;
}
