/* The leak detector from Lua: per-state level and sampling (on the state's pool), a leak handler written in
 * Lua, and checkpoints.
 *
 * Reports reach the state through its host: the binding layer routes a report made while the state's host is
 * entered on this thread (a __gc reclaim, a pool destroyed, a task closed, a checkpoint) to lohm_leak_report,
 * which calls the Lua handler under lua_pcall. A handler that raises is counted (ohm.leak.stats) and the error
 * goes nowhere else: a finalizer cannot raise. Without a handler, the report's text goes to Lua's warning
 * channel (lua_warning: lua5.4 -W or warn("@on") shows it; an embedder's lua_setwarnf receives it).
 *
 * Checkpoints (ohm.leak.check) list the tracked buffers created since a mark that are still live, process
 * wide; each state reports only its own, told apart by the tag that starts their creation site.
 */
#include "lohm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"off", "simple", "advanced", "paranoid", NULL};

int lohm_checklevel(lua_State *L, int i, const char *fname)
{
    (void)fname;
    return luaL_checkoption(L, i, NULL, level_names);
}

const char *lohm_level_name(ohm_leak_level level)
{
    return (unsigned)level <= OHM_LEAK_PARANOID ? level_names[level] : "?";
}

void lohm_site_tag(lstate *st, char *out, size_t cap) { snprintf(out, cap, "ohm state %p:", (void *)st); }

static const char *reason_name(ohm_leak_reason r)
{
    switch (r) {
    case OHM_LEAK_GC: return "gc";
    case OHM_LEAK_POOL_DESTROY: return "pool";
    case OHM_LEAK_CHECKPOINT: return "checkpoint";
    }
    return "?";
}

/* ---- delivery ---- */

/* Protected: (report) -> calls the Lua handler with a table, or warns. */
static int deliver(lua_State *L)
{
    const ohm_bind_leak *rep = lua_touserdata(L, 1);
    lohm_push_state(L);
    if (lua_getiuservalue(L, -1, ST_UV_HANDLER) != LUA_TFUNCTION) {
        lua_warning(L, "ohm: ", 1);
        lua_warning(L, rep->text, 0);
        return 0;
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, reason_name(rep->reason));
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, (lua_Integer)rep->buffer_id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)rep->size);
    lua_setfield(L, -2, "size");
    if (rep->host_site) {
        lua_pushstring(L, rep->host_site);
        lua_setfield(L, -2, "site");
    }
    lua_pushstring(L, rep->text);
    lua_setfield(L, -2, "text");
    lua_pushstring(L, rep->json);
    lua_setfield(L, -2, "json");
    lua_call(L, 1, 0);
    return 0;
}

void lohm_leak_report(void *host_arg, const ohm_bind_leak *report)
{
    lstate *st = host_arg;
    st->leak_reports++;
    lua_State *L = st->L;
    /* The layer only calls this while the host is entered on this thread, so L is set; be safe anyway. */
    if (!L || !lua_checkstack(L, 8)) {
        st->leak_handler_errors++;
        snprintf(st->leak_last_error, sizeof st->leak_last_error, "no Lua stack to run the leak handler on");
        return;
    }
    lua_pushlightuserdata(L, (void *)report);
    if (lohm_pcall(L, deliver, 1, 0, "leak handler") != 0) {
        st->leak_handler_errors++;
        snprintf(st->leak_last_error, sizeof st->leak_last_error, "%s", ohm_last_error());
    }
}

/* ---- settings ---- */

/* ohm.leak.level([name]): this state's level ("off", "simple", "advanced", "paranoid"; "process" follows the
 * process-wide setting again). Returns the level in force. */
static int l_level(lua_State *L)
{
    lstate *st = lohm_state(L);
    if (!lua_isnoneornil(L, 1)) {
        int level = lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "process") == 0
                        ? -1
                        : lohm_checklevel(L, 1, "leak.level");
        uint32_t interval = level < 0 ? 0 : ohm_pool_get_leak_sample_interval(st->pool);
        int rc = ohm_pool_set_leak(st->pool, level, interval);
        if (rc) return lohm_fail(L, rc, "leak.level");
    }
    lua_pushstring(L, lohm_level_name(ohm_pool_get_leak_level(st->pool)));
    return 1;
}

/* ohm.leak.sample([interval]): 1 in interval allocations tracked at SIMPLE and ADVANCED. */
static int l_sample(lua_State *L)
{
    lstate *st = lohm_state(L);
    if (!lua_isnoneornil(L, 1)) {
        size_t interval = lohm_checksize(L, 1, UINT32_MAX, "leak.sample", "interval");
        if (interval == 0) return luaL_error(L, "leak.sample: interval must be at least 1");
        int rc = ohm_pool_set_leak(st->pool, (int)ohm_pool_get_leak_level(st->pool), (uint32_t)interval);
        if (rc) return lohm_fail(L, rc, "leak.sample");
    }
    lua_pushinteger(L, (lua_Integer)ohm_pool_get_leak_sample_interval(st->pool));
    return 1;
}

/* ohm.leak.handler([fn]): sets the state's handler (nil or false: none, reports go to lua_warning); returns
 * the previous one. With no argument, only returns the current one. The handler gets one table: reason ("gc",
 * "pool", "checkpoint"), id, size, site (the Lua traceback of the creation, when tracked), text, json. */
static int l_handler(lua_State *L)
{
    int set = !lua_isnone(L, 1);
    if (set && !lua_isnil(L, 1) && !(lua_isboolean(L, 1) && !lua_toboolean(L, 1))) luaL_checktype(L, 1, LUA_TFUNCTION);
    lohm_push_state(L);
    lua_getiuservalue(L, -1, ST_UV_HANDLER);
    if (set) {
        if (lua_isfunction(L, 1)) lua_pushvalue(L, 1);
        else lua_pushnil(L);
        lua_setiuservalue(L, -3, ST_UV_HANDLER);
    }
    return 1;
}

/* ohm.leak.mark(): a checkpoint mark. */
static int l_mark(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ohm_leak_mark());
    return 1;
}

typedef struct check_ctx {
    lstate *st;
    char tag[64];
    size_t taglen;
    int64_t n;
} check_ctx;

static void check_one(void *arg, const ohm_leak_report *rep)
{
    check_ctx *c = arg;
    const char *site = rep->created.host_site;
    if (!site || strncmp(site, c->tag, c->taglen) != 0) return; /* another state's buffer, or none's */
    c->n++;
    char small[4096], *json = small;
    size_t need = ohm_leak_report_json(rep, small, sizeof small);
    if (need >= sizeof small && (json = malloc(need + 1)) != NULL) ohm_leak_report_json(rep, json, need + 1);
    if (!json) json = small; /* truncated JSON beats no report */
    ohm_bind_leak view = {rep->reason, rep->buffer_id, rep->size, site, rep->text, json};
    lohm_leak_report(c->st, &view);
    if (json != small) free(json);
}

/* ohm.leak.check(mark): reports to the handler every buffer this state created since mark that the leak
 * detector tracks and that is still live; returns how many. */
static int l_check(lua_State *L)
{
    lstate *st = lohm_state(L);
    lua_Integer mark = luaL_checkinteger(L, 1);
    check_ctx c = {.st = st};
    lohm_site_tag(st, c.tag, sizeof c.tag);
    c.taglen = strlen(c.tag);
    lua_State *prev = lohm_enter(st, L);
    int64_t rc = ohm_leak_check((uint64_t)mark, check_one, &c);
    lohm_leave(st, prev);
    if (rc < 0) return lohm_fail(L, (int)rc, "leak.check");
    lua_pushinteger(L, (lua_Integer)c.n);
    return 1;
}

/* ohm.leak.stats(): {reports = n, handler_errors = n, last_error = "..." or nil}. */
static int l_stats(lua_State *L)
{
    lstate *st = lohm_state(L);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st->leak_reports);
    lua_setfield(L, -2, "reports");
    lua_pushinteger(L, (lua_Integer)st->leak_handler_errors);
    lua_setfield(L, -2, "handler_errors");
    if (st->leak_last_error[0]) {
        lua_pushstring(L, st->leak_last_error);
        lua_setfield(L, -2, "last_error");
    }
    return 1;
}

void lohm_open_leak(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"level", l_level}, {"sample", l_sample}, {"handler", l_handler}, {"mark", l_mark},
        {"check", l_check}, {"stats", l_stats},   {NULL, NULL},
    };
    lua_newtable(L);
    lohm_setfuncs(L, funcs);
    lua_setfield(L, -2, "leak");
}
