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
#define NAME_MAX_LEN      48

typedef struct lua_workload {
    char name[NAME_MAX_LEN], unit[16], baseline[NAME_MAX_LEN], summary[160], ratio_head[NAME_MAX_LEN + 3];
    uint64_t count;
    unsigned nimpls;
    unsigned impls[BENCH_MAX_IMPLS]; /* indexes into impl_names, in the script's order */
} lua_workload;

/* The options of this subcommand alone, and the tables the script defines (loaded by the parent). */
static const char *script = OHM_BENCH_LUA_SCRIPT;
static bool incremental; /* the collector's mode: generational (lua5.4's, the default here) or incremental */
static lua_workload workloads[BENCH_MAX_WORKLOADS];
static char impl_store[BENCH_MAX_IMPLS][NAME_MAX_LEN];
static const char *impl_names[BENCH_MAX_IMPLS]; /* every workload's impls, each once */
static bench_suite suite;                       /* not const: load fills in the script's tables */

/* ---- the embedded state ---- */

static int l_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)harness_now_ns());
    return 1;
}

static int l_mark(lua_State *L)
{
    bench_mark_start(lua_touserdata(L, lua_upvalueindex(1)));
    return 0;
}

/* A state with the standard libraries, the ohm module and the bench table, and the script's table on top. The
 * collector runs in generational mode, as in the lua5.4 interpreter (lua.c switches to it); luaL_newstate's
 * incremental mode (--gc incremental) lets Lua 5.4 fall behind on objects with finalizers, so the userdata of
 * closed buffers pile up in the Lua heap (their native memory is freed by close either way). bench.mark marks r's
 * start. */
static lua_State *open_script(bench_result *r, bool incremental_gc)
{
    lua_State *L = luaL_newstate();
    if (!L) bench_die(4, "cannot create a Lua state");
    if (!incremental_gc) lua_gc(L, LUA_GCGEN, 0, 0);
    luaL_openlibs(L);
    luaL_requiref(L, "ohm", luaopen_ohm, 0);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    lua_pushlightuserdata(L, r);
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

/* The index of impl name in impl_names, added if new (dies past BENCH_MAX_IMPLS). */
static unsigned impl_index(bench_suite *s, const char *name)
{
    for (unsigned i = 0; i < s->nimpls; i++)
        if (strcmp(impl_names[i], name) == 0) return i;
    if (s->nimpls == BENCH_MAX_IMPLS) bench_die(2, "%s: more than %u impls", script, BENCH_MAX_IMPLS);
    snprintf(impl_store[s->nimpls], NAME_MAX_LEN, "%s", name);
    impl_names[s->nimpls] = impl_store[s->nimpls];
    return s->nimpls++;
}

/* Reads M.workloads into workloads[] and the suite's tables. */
static void read_workloads(lua_State *L, bench_suite *s)
{
    size_t n = 0;
    lua_getfield(L, -1, "workloads");
    for (lua_Integer i = 1; n < BENCH_MAX_WORKLOADS && lua_rawgeti(L, -1, i) == LUA_TTABLE; i++, n++) {
        int t = lua_gettop(L);
        lua_workload *w = &workloads[n];
        memset(w, 0, sizeof *w);
        field_str(L, t, "name", w->name, sizeof w->name);
        field_str(L, t, "unit", w->unit, sizeof w->unit);
        field_str(L, t, "baseline", w->baseline, sizeof w->baseline);
        field_str(L, t, "summary", w->summary, sizeof w->summary);
        snprintf(w->ratio_head, sizeof w->ratio_head, "vs %s", w->baseline);
        lua_getfield(L, t, "count");
        w->count = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, t, "impls");
        for (lua_Integer k = 1; w->nimpls < BENCH_MAX_IMPLS && lua_rawgeti(L, -1, k) == LUA_TSTRING; k++) {
            w->impls[w->nimpls++] = impl_index(s, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 3); /* the non-string, impls, the workload */
    }
    lua_pop(L, 2); /* the non-table, workloads */
    s->nworkloads = n;
}

/* ---- the child ---- */

/* The one name of a --workload or --impl list given to a child (which has no table to match it against). */
static const char *child_name(const bench_options *o, unsigned which)
{
    if (o->nlists[which] != 1 || strchr(o->lists[which][0], ','))
        bench_die(2, "--child needs exactly one --workload and one --impl");
    return o->lists[which][0];
}

static int child_main(const bench_options *o)
{
    const char *workload = child_name(o, 0), *impl = child_name(o, 1);
    bench_result r = {0};
    lua_State *L = open_script(&r, incremental);
    lua_getfield(L, -1, "run");
    lua_pushstring(L, workload);
    lua_pushstring(L, impl);
    lua_pushnumber(L, o->c.scale);
    if (lua_pcall(L, 3, 3, 0) != LUA_OK) bench_die(4, "%s", lua_tostring(L, -1));
    r.ops = (uint64_t)lua_tointeger(L, -3);
    r.ns = (uint64_t)lua_tointeger(L, -2);
    r.live_peak = (uint64_t)lua_tointeger(L, -1);
    r.peak_rss = harness_peak_rss_bytes();
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    ohm_pool_trim(ohm_pool_default());
    lua_close(L); /* the state's pool goes with it */
    r.rss_after = harness_rss_bytes();
    bench_child_print("lua", workload, impl, 1, &r);
    return 0;
}

/* ---- the parent ---- */

static bench_run run_child(const bench_options *o, size_t wi, unsigned impl, unsigned rep)
{
    const lua_workload *w = &workloads[wi];
    const char *argv[] = {"ohm-bench",
                          "lua",
                          "--child",
                          "--workload",
                          w->name,
                          "--impl",
                          impl_names[impl],
                          "--scale",
                          o->scale_arg,
                          "--script",
                          script,
                          "--gc",
                          incremental ? "incremental" : "generational",
                          NULL};
    bench_child c = {argv, NULL, o->c.timeout_s};
    bench_run run = bench_child_result(&c, rep, w->name, 0, impl_names[impl]);
    if (run.ok && o->c.verbose)
        fprintf(stderr, "  %-24s %-13s rep %u: %.4g ops/s\n", w->name, impl_names[impl], rep + 1, run.ops_per_sec);
    return run;
}

/* A workload's impls in the script's order, those chosen. */
static unsigned impl_order(const bench_options *o, size_t wi, unsigned *order)
{
    unsigned n = 0;
    for (unsigned k = 0; k < workloads[wi].nimpls; k++)
        for (unsigned i = 0; i < o->nimpls; i++)
            if (o->impls[i] == workloads[wi].impls[k]) order[n++] = o->impls[i];
    return n;
}

static const char *ratio_header(size_t wi) { return workloads[wi].ratio_head; }

static void ratio_cell(bench_table *t, size_t wi, const bench_run *agg, const bool *ran, unsigned impl)
{
    const bench_run *base = NULL;
    for (unsigned k = 0; k < workloads[wi].nimpls; k++) {
        unsigned b = workloads[wi].impls[k];
        if (ran[b] && agg[b].ok && strcmp(impl_names[b], workloads[wi].baseline) == 0) base = &agg[b];
    }
    if (base && base->ops_per_sec > 0) bench_table_set(t, 8, "%.2fx", agg[impl].ops_per_sec / base->ops_per_sec);
    else bench_table_set(t, 8, "-");
}

static void heading(const bench_options *o, size_t wi)
{
    const lua_workload *w = &workloads[wi];
    printf("\n%s (%llu %s per run): %s\n", w->name, (unsigned long long)bench_scaled(w->count, o->c.scale), w->unit,
           w->summary);
}

static void banner(const bench_options *o)
{
    bench_print_banner("lua", o->c.scale, o->c.reps, "vs X = impl ops/s / X ops/s (X: the workload's baseline)");
    printf("Lua collector: %s\n", incremental ? "incremental" : "generational (as lua5.4)");
    fflush(stdout);
}

static void list(void)
{
    printf("%-24s %10s %-8s %s\n", "workload", "scale 1", "of", "what (impls)");
    for (size_t i = 0; i < suite.nworkloads; i++) {
        const lua_workload *w = &workloads[i];
        printf("%-24s %10llu %-8s %s (", w->name, (unsigned long long)w->count, w->unit, w->summary);
        for (unsigned k = 0; k < w->nimpls; k++) printf("%s%s", k ? ", " : "", impl_names[w->impls[k]]);
        printf(")\n");
    }
}

static const char *workload_name(size_t wi) { return workloads[wi].name; }

/* ---- options ---- */

static int option(int argc, char **argv, int *i)
{
    const char *v;
    if ((v = bench_option_value(argc, argv, i, "--script"))) {
        script = v;
        return 1;
    }
    if (!(v = bench_option_value(argc, argv, i, "--gc"))) return 0;
    if (strcmp(v, "generational") != 0 && strcmp(v, "incremental") != 0) {
        bench_warn("--gc is generational or incremental");
        return 2;
    }
    incremental = strcmp(v, "incremental") == 0;
    return 1;
}

static int load(const bench_options *o)
{
    (void)o;
    bench_result unused = {0};
    lua_State *L = open_script(&unused, false);
    read_workloads(L, &suite);
    lua_close(L);
    return 0;
}

static bench_suite suite = {
    .name = "lua",
    .usage = "usage: ohm-bench lua [options]\n" BENCH_USAGE_WORKLOAD
             "  --impl NAME[,NAME]      impls to run where they apply (default all)\n"
             "  --reps N                runs per workload and impl (default 3; best ops/s, median RSS)\n"
             "  --scale F               multiplies iteration counts (default 1)\n" BENCH_USAGE_JSON BENCH_USAGE_TIMEOUT
             "  --script PATH           the workloads (default: " OHM_BENCH_LUA_SCRIPT ")\n"
             "  --gc MODE               the Lua collector: generational (default, as lua5.4) or "
             "incremental\n" BENCH_USAGE_VERBOSE_LIST,
    .default_timeout_s = DEFAULT_TIMEOUT_S,
    .impl_names = impl_names,
    BENCH_SUITE_FUNCTIONS,
    .impl_order = impl_order,
    .option = option,
    .load = load,
    .banner = banner,
    .ratio_header = ratio_header,
    .ratio_cell = ratio_cell,
};

int bench_lua_main(int argc, char **argv)
{
    if (getenv("OHM_BENCH_LUA_SCRIPT")) script = getenv("OHM_BENCH_LUA_SCRIPT");
    return bench_suite_main(&suite, argc, argv);
}
