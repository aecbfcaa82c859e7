/* ohm-bench lua: ohm buffers from Lua against the Lua-native ways of holding bytes (string.pack, string.rep, a
 * table of bytes), and typed reads/writes per second. The workloads are Lua code (benchmarks/lua/bench.lua);
 * this file embeds Lua 5.4 with the ohm module linked in and runs them with ohm-bench's contract: one fresh
 * child per (workload, rep, impl), impls interleaved and rotated from rep to rep, best ops/s and median RSS
 * over the reps, one JSON line per result with --json, else a table per workload with each impl's ratio to the
 * workload's baseline (ohm, or ohm-method for the typed accesses).
 *
 * The parent loads the script too, only to read its workload table (names, counts, impls), so the script is
 * the one place that defines what runs.
 */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ohm.h"

int luaopen_ohm(lua_State *L);
int bench_lua_main(int argc, char **argv);

#define DEFAULT_TIMEOUT_S 600
#define MAX_WORKLOADS 16
#define MAX_IMPLS 8
#define NAME_MAX_LEN 48

typedef struct lua_workload {
    char name[NAME_MAX_LEN], unit[16], baseline[NAME_MAX_LEN], summary[160];
    uint64_t count;
    unsigned nimpls;
    char impls[MAX_IMPLS][NAME_MAX_LEN];
} lua_workload;

typedef struct lua_options {
    bench_common c; /* --json, --verbose, --child, --list, --reps, --scale, --timeout */
    bool incremental; /* the collector's mode: generational (lua5.4's, the default here) or incremental */
    const char *script;
    const char *workloads[MAX_WORKLOADS], *impls[MAX_IMPLS];
    unsigned nworkloads, nimpls;
} lua_options;

/* ---- the embedded state ---- */

static int l_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)harness_now_ns());
    return 1;
}

typedef struct marks {
    uint64_t rss_before;
} marks;

static int l_mark(lua_State *L)
{
    marks *m = lua_touserdata(L, lua_upvalueindex(1));
    m->rss_before = harness_rss_bytes();
    harness_reset_peak_rss();
    return 0;
}

/* A state with the standard libraries, the ohm module and the bench table, and the script's table on top. The
 * collector runs in generational mode, as in the lua5.4 interpreter (lua.c switches to it); luaL_newstate's
 * incremental mode (--gc incremental) lets Lua 5.4 fall behind on objects with finalizers, so the userdata of
 * closed buffers pile up in the Lua heap (their native memory is freed by close either way). */
static lua_State *open_script(const char *script, marks *m, bool incremental)
{
    lua_State *L = luaL_newstate();
    if (!L) bench_die(4, "cannot create a Lua state");
    if (!incremental) lua_gc(L, LUA_GCGEN, 0, 0);
    luaL_openlibs(L);
    luaL_requiref(L, "ohm", luaopen_ohm, 0);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    lua_pushlightuserdata(L, m);
    lua_pushcclosure(L, l_mark, 1);
    lua_setfield(L, -2, "mark");
    lua_setglobal(L, "bench");
    if (luaL_dofile(L, script) != LUA_OK) bench_die(2, "%s", lua_tostring(L, -1));
    if (!lua_istable(L, -1)) bench_die(2, "%s does not return a table", script);
    return L;
}

static void field_str(lua_State *L, int t, const char *key, char *out, size_t cap)
{
    lua_getfield(L, t, key);
    snprintf(out, cap, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
}

/* Reads M.workloads into w[]; returns how many. */
static unsigned read_workloads(lua_State *L, lua_workload *w)
{
    unsigned n = 0;
    lua_getfield(L, -1, "workloads");
    for (lua_Integer i = 1; n < MAX_WORKLOADS && lua_rawgeti(L, -1, i) == LUA_TTABLE; i++, n++) {
        int t = lua_gettop(L);
        memset(&w[n], 0, sizeof w[n]);
        field_str(L, t, "name", w[n].name, sizeof w[n].name);
        field_str(L, t, "unit", w[n].unit, sizeof w[n].unit);
        field_str(L, t, "baseline", w[n].baseline, sizeof w[n].baseline);
        field_str(L, t, "summary", w[n].summary, sizeof w[n].summary);
        lua_getfield(L, t, "count");
        w[n].count = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, t, "impls");
        for (lua_Integer k = 1; w[n].nimpls < MAX_IMPLS && lua_rawgeti(L, -1, k) == LUA_TSTRING; k++) {
            snprintf(w[n].impls[w[n].nimpls++], NAME_MAX_LEN, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 3); /* the non-string, impls, the workload */
    }
    lua_pop(L, 2); /* the non-table, workloads */
    return n;
}

/* ---- the child ---- */

static int child_main(const lua_options *o)
{
    if (o->nworkloads != 1 || o->nimpls != 1) bench_die(2, "--child needs exactly one --workload and one --impl");
    marks m = {0};
    lua_State *L = open_script(o->script, &m, o->incremental);
    lua_getfield(L, -1, "run");
    lua_pushstring(L, o->workloads[0]);
    lua_pushstring(L, o->impls[0]);
    lua_pushnumber(L, o->c.scale);
    if (lua_pcall(L, 3, 3, 0) != LUA_OK) bench_die(4, "%s", lua_tostring(L, -1));
    uint64_t ops = (uint64_t)lua_tointeger(L, -3), ns = (uint64_t)lua_tointeger(L, -2);
    uint64_t live = (uint64_t)lua_tointeger(L, -1);
    uint64_t peak = harness_peak_rss_bytes();
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    ohm_pool_trim(ohm_pool_default());
    lua_close(L); /* the state's pool goes with it */
    bench_run run = {
        .ok = true,
        .ops_per_sec = ns ? (double)ops * 1e9 / (double)ns : 0.0,
        .threads = 1,
        .peak_rss = peak,
        .live_peak = live,
        .rss_before = m.rss_before,
        .rss_after = harness_rss_bytes(),
    };
    bench_run_print("lua", o->workloads[0], o->impls[0], &run, NULL);
    return 0;
}

/* ---- the parent ---- */

static bench_run run_child(const lua_options *o, const lua_workload *w, const char *impl, unsigned rep)
{
    char scale[32];
    snprintf(scale, sizeof scale, "%.17g", o->c.scale);
    const char *argv[] = {"ohm-bench", "lua", "--child", "--workload", w->name, "--impl", impl,
                          "--scale", scale, "--script", o->script, "--gc",
                          o->incremental ? "incremental" : "generational", NULL};
    bench_child c = {argv, NULL, o->c.timeout_s};
    char line[1024], why[256];
    bench_run run = {0};
    if (bench_run_child(&c, line, sizeof line, why, sizeof why) != 0)
        bench_warn("%s, %s, rep %u: the child %s", w->name, impl, rep + 1, why);
    else if (!bench_run_parse(line, &run))
        bench_warn("%s, %s, rep %u: cannot parse the child's line: %s", w->name, impl, rep + 1, line);
    else if (o->c.verbose)
        fprintf(stderr, "  %-24s %-13s rep %u: %.4g ops/s\n", w->name, impl, rep + 1, run.ops_per_sec);
    return run;
}

static bool wanted(const char *const *list, unsigned n, const char *name)
{
    if (n == 0) return true;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0 || strcmp(list[i], "all") == 0) return true;
    return false;
}

static unsigned run_workload(const lua_options *o, const lua_workload *w)
{
    static bench_run runs[MAX_IMPLS][BENCH_MAX_REPS];
    unsigned order[MAX_IMPLS], n = 0, failed = 0;
    for (unsigned k = 0; k < w->nimpls; k++)
        if (wanted(o->impls, o->nimpls, w->impls[k])) order[n++] = k;
    if (n == 0) return 0;
    memset(runs, 0, sizeof runs);
    for (unsigned rep = 0; rep < o->c.reps; rep++)
        for (unsigned k = 0; k < n; k++) {
            unsigned impl = order[(k + rep) % n];
            runs[impl][rep] = run_child(o, w, w->impls[impl], rep);
            failed += !runs[impl][rep].ok;
        }
    bench_run agg[MAX_IMPLS];
    for (unsigned i = 0; i < w->nimpls; i++) agg[i] = bench_run_aggregate(runs[i], o->c.reps);
    if (o->c.json) {
        for (unsigned k = 0; k < n; k++)
            if (agg[order[k]].ok) bench_run_print("lua", w->name, w->impls[order[k]], &agg[order[k]], stdout);
        return failed;
    }
    const bench_run *base = NULL;
    for (unsigned k = 0; k < n; k++)
        if (strcmp(w->impls[order[k]], w->baseline) == 0 && agg[order[k]].ok) base = &agg[order[k]];
    char ratio_head[64];
    snprintf(ratio_head, sizeof ratio_head, "vs %s", w->baseline);
    const char *const headers[] = {"impl", "threads", "ops/s", "ns/op", "peak RSS", "live peak", "RSS before",
                                   "RSS after", ratio_head};
    bench_table t;
    bench_table_init(&t, 9, headers);
    for (unsigned k = 0; k < n; k++) {
        const bench_run *a = &agg[order[k]];
        bench_table_row(&t);
        if (!bench_table_set_run(&t, w->impls[order[k]], a)) continue;
        if (base && base->ops_per_sec > 0) bench_table_set(&t, 8, "%.2fx", a->ops_per_sec / base->ops_per_sec);
        else bench_table_set(&t, 8, "-");
    }
    printf("\n%s (%llu %s per run): %s\n", w->name, (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit,
           w->summary);
    bench_table_print(&t, stdout);
    fflush(stdout);
    return failed;
}

static int parent_main(const lua_options *o, const lua_workload *w, unsigned nw)
{
    if (!o->c.json) {
        bench_print_banner("lua", o->c.scale, o->c.reps, "vs X = impl ops/s / X ops/s (X: the workload's baseline)");
        printf("Lua collector: %s\n", o->incremental ? "incremental" : "generational (as lua5.4)");
        fflush(stdout);
    }
    unsigned failed = 0;
    for (unsigned i = 0; i < nw; i++)
        if (wanted(o->workloads, o->nworkloads, w[i].name)) failed += run_workload(o, &w[i]);
    if (failed) bench_warn("%u run%s failed (see above)", failed, failed == 1 ? "" : "s");
    return failed ? 1 : 0;
}

/* ---- options ---- */

static void usage(FILE *out)
{
    fputs("usage: ohm-bench lua [options]\n"
          BENCH_USAGE_WORKLOAD
          "  --impl NAME[,NAME]      impls to run where they apply (default all)\n"
          "  --reps N                runs per workload and impl (default 3; best ops/s, median RSS)\n"
          "  --scale F               multiplies iteration counts (default 1)\n"
          BENCH_USAGE_JSON
          BENCH_USAGE_TIMEOUT
          "  --script PATH           the workloads (default: " OHM_BENCH_LUA_SCRIPT ")\n"
          "  --gc MODE               the Lua collector: generational (default, as lua5.4) or incremental\n"
          BENCH_USAGE_VERBOSE_LIST,
          out);
}

typedef struct list_arg {
    const char **items;
    unsigned *n, max;
} list_arg;

static int add_item(const char *item, void *arg)
{
    list_arg *a = arg;
    if (*a->n >= a->max) {
        bench_warn("too many names (at most %u)", a->max);
        return 1;
    }
    char *copy = strdup(item);
    if (!copy) return 1;
    a->items[(*a->n)++] = copy;
    return 0;
}

static int parse_options(int argc, char **argv, lua_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int shared = bench_common_option(argc, argv, &i, &o->c);
        if (shared == -1) {
            usage(stdout);
            return -1;
        }
        if (shared == 2)
            return 2;
        if (shared == 1)
            continue;
        if ((v = bench_option_value(argc, argv, &i, "--workload"))) {
            list_arg la = {o->workloads, &o->nworkloads, MAX_WORKLOADS};
            if (bench_for_each_item(v, add_item, &la)) return 2;
        } else if ((v = bench_option_value(argc, argv, &i, "--impl"))) {
            list_arg la = {o->impls, &o->nimpls, MAX_IMPLS};
            if (bench_for_each_item(v, add_item, &la)) return 2;
        } else if ((v = bench_option_value(argc, argv, &i, "--script"))) {
            o->script = v;
        } else if ((v = bench_option_value(argc, argv, &i, "--gc"))) {
            if (strcmp(v, "generational") != 0 && strcmp(v, "incremental") != 0) {
                bench_warn("--gc is generational or incremental");
                return 2;
            }
            o->incremental = strcmp(v, "incremental") == 0;
        } else {
            bench_warn("unknown option or missing value '%s'", a);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

int bench_lua_main(int argc, char **argv)
{
    lua_options o;
    memset(&o, 0, sizeof o);
    bench_common_init(&o.c, DEFAULT_TIMEOUT_S);
    o.script = getenv("OHM_BENCH_LUA_SCRIPT") ? getenv("OHM_BENCH_LUA_SCRIPT") : OHM_BENCH_LUA_SCRIPT;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (o.c.child) return child_main(&o);

    static lua_workload w[MAX_WORKLOADS];
    marks m = {0};
    lua_State *L = open_script(o.script, &m, false);
    unsigned nw = read_workloads(L, w);
    lua_close(L);
    for (unsigned i = 0; i < o.nworkloads; i++) {
        bool known = strcmp(o.workloads[i], "all") == 0;
        for (unsigned k = 0; k < nw && !known; k++) known = strcmp(o.workloads[i], w[k].name) == 0;
        if (!known) {
            bench_warn("unknown workload '%s' (--list shows them)", o.workloads[i]);
            return 2;
        }
    }
    if (o.c.list) {
        printf("%-24s %10s %-8s %s\n", "workload", "scale 1", "of", "what (impls)");
        for (unsigned i = 0; i < nw; i++) {
            printf("%-24s %10llu %-8s %s (", w[i].name, (unsigned long long)w[i].count, w[i].unit, w[i].summary);
            for (unsigned k = 0; k < w[i].nimpls; k++) printf("%s%s", k ? ", " : "", w[i].impls[k]);
            printf(")\n");
        }
        return 0;
    }
    return parent_main(&o, w, nw);
}
