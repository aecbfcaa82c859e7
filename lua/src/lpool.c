/* Pools: ohm.pool() is the state's own pool (where ohm.alloc allocates), ohm.pool("default") the process-wide
 * pool any state may share on purpose, ohm.pool{...} a new pool of this state, destroyed by p:close(), when
 * the GC collects it (buffers from it keep it alive), or at lua_close.
 *
 * Leak settings are a pool's (ohm_pool_set_leak): two states with their own pools never see each other's.
 */
#include "lohm.h"

#include <stdio.h>
#include <string.h>

typedef struct lpool {
    ohm_pool *pool;
    bool owned; /* made by ohm.pool{}: destroyed here */
    bool closed;
} lpool;

static lpool *checkpool(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_POOL_MT); }
static lpool *testpool(lua_State *L, int i) { return luaL_testudata(L, i, LOHM_POOL_MT); }

static ohm_pool *livepool(lua_State *L, int i, const char *fname)
{
    lpool *p = checkpool(L, i);
    if (p->closed || !p->pool) luaL_error(L, "%s: pool was closed", fname);
    return p->pool;
}

ohm_pool *lohm_optpool(lua_State *L, int i, bool *anchor)
{
    lstate *st = lohm_state(L);
    *anchor = false;
    if (lua_isnoneornil(L, i)) return st->pool;
    lpool *p = checkpool(L, i);
    if (p->closed || !p->pool) luaL_error(L, "pool was closed");
    *anchor = p->owned;
    return p->pool;
}

static lpool *newpool(lua_State *L, ohm_pool *pool, bool owned)
{
    lpool *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->pool = pool;
    p->owned = owned;
    p->closed = false;
    luaL_setmetatable(L, LOHM_POOL_MT);
    return p;
}

/* Sets every option of OHM_POOL_OPTIONS that table t names: an integer, a boolean, or text ("thp", "true").
 * The core checks the value and words the message (raised: a bad option is a programmer error). */
static void opt_fields(lua_State *L, int t, ohm_pool_config *cfg)
{
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) {
        const char *key = ohm_pool_option_name(i);
        int type = lua_getfield(L, t, key), rc = 0;
        if (type == LUA_TBOOLEAN) {
            rc = ohm_pool_config_set(cfg, i, lua_toboolean(L, -1));
        } else if (type == LUA_TNUMBER) {
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "pool: %s must be an integer, got a number with a fraction", key);
            rc = ohm_pool_config_set(cfg, i, (int64_t)v);
        } else if (type == LUA_TSTRING) {
            rc = ohm_pool_config_set_text(cfg, i, lua_tostring(L, -1));
        } else if (type != LUA_TNIL) {
            luaL_error(L, "pool: %s must be an integer, a boolean or a string, got %s", key, luaL_typename(L, -1));
        }
        if (rc) lohm_fail(L, rc, "pool"); /* EINVAL: raises */
        lua_pop(L, 1);
    }
}

/* ohm.pool() | ohm.pool("default") | ohm.pool{name=, and any option of OHM_POOL_OPTIONS by its field name (see
 * lua/README.md)} */
static int l_pool(lua_State *L)
{
    lstate *st = lohm_state(L);
    if (lua_isnoneornil(L, 1)) {
        lohm_push_state(L);
        if (lua_getiuservalue(L, -1, ST_UV_POOL) == LUA_TNIL) {
            lua_pop(L, 1);
            newpool(L, st->pool, false); /* the state destroys its own pool itself, after its buffers */
            lua_pushvalue(L, -1);
            lua_setiuservalue(L, -3, ST_UV_POOL);
        }
        return 1;
    }
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *which = lua_tostring(L, 1);
        if (strcmp(which, "default") != 0) return luaL_argerror(L, 1, "the only named pool is \"default\"");
        ohm_pool *pool = ohm_pool_default();
        if (!pool) return lohm_fail(L, ohm_last_error_code(), "pool");
        newpool(L, pool, false);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    char name[96];
    const char *given = "pool";
    if (lua_getfield(L, 1, "name") != LUA_TNIL) given = luaL_checkstring(L, -1);
    snprintf(name, sizeof name, "%s@lua:%p", given, (void *)st);
    lua_pop(L, 1);
    cfg.name = name;
    opt_fields(L, 1, &cfg);
    if (st->closed) return luaL_error(L, "pool: the lua_State is closing");
    lpool *p = newpool(L, NULL, true);
    p->pool = ohm_pool_create(&cfg);
    if (!p->pool) {
        p->closed = true;
        return lohm_fail(L, ohm_last_error_code(), "pool");
    }
    return 1;
}

/* p:close(): destroys a pool made by ohm.pool{}; its live buffers are reported to the leak handler and become
 * released. */
static int l_close(lua_State *L)
{
    lstate *st = lohm_state(L);
    lpool *p = checkpool(L, 1);
    if (!p->owned) return luaL_error(L, "pool:close: only a pool made by ohm.pool{...} can be closed");
    if (p->closed) return 0;
    p->closed = true;
    lua_State *prev = lohm_enter(st, L);
    ohm_pool_destroy(p->pool);
    lohm_leave(st, prev);
    p->pool = NULL;
    return 0;
}

/* __gc and __close: a pool of ohm.pool{} is destroyed; the state's and the shared ones are left alone. */
static int l_gc(lua_State *L)
{
    lpool *p = lua_touserdata(L, 1);
    if (!p->owned || p->closed) return 0;
    return l_close(L);
}

static int l_trim(lua_State *L)
{
    int rc = ohm_pool_trim(livepool(L, 1, "trim"));
    if (rc) return lohm_fail(L, rc, "trim");
    lua_settop(L, 1);
    return 1;
}

#define POOL_COUNTER(f) LOHM_COUNTER(ohm_pool_stats, f)

static int l_stats(lua_State *L)
{
    static const lohm_counter counters[] = {
        POOL_COUNTER(mapped_bytes), POOL_COUNTER(resident_bytes), POOL_COUNTER(dirty_bytes),
        POOL_COUNTER(purged_bytes), POOL_COUNTER(chunks),         POOL_COUNTER(allocs),
        POOL_COUNTER(frees),        POOL_COUNTER(cache_hits),     POOL_COUNTER(active_blocks),
        POOL_COUNTER(active_bytes), POOL_COUNTER(failed_allocs),
    };
    ohm_pool_stats s;
    int rc = ohm_pool_stats_get(livepool(L, 1, "stats"), -1, &s);
    if (rc) return lohm_fail(L, rc, "stats");
    lua_createtable(L, 0, 12);
    lohm_set_counters(L, &s, counters, LOHM_COUNTOF(counters));
    lua_pushinteger(L, (lua_Integer)s.arenas); /* unsigned, not a counter */
    lua_setfield(L, -2, "arenas");
    return 1;
}

/* p:leak([level [, interval]]): sets this pool's leak level ("off", "simple", "advanced", "paranoid", or
 * "process" to follow the process-wide level) and sample interval; returns the level and interval in force. */
static int l_leak(lua_State *L)
{
    ohm_pool *pool = livepool(L, 1, "leak");
    if (!lua_isnoneornil(L, 2) || !lua_isnoneornil(L, 3)) {
        int level;
        if (lua_isnoneornil(L, 2)) level = (int)ohm_pool_get_leak_level(pool);
        else if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "process") == 0) level = -1;
        else level = lohm_checklevel(L, 2, "leak");
        uint32_t interval = 0;
        if (!lua_isnoneornil(L, 3)) interval = (uint32_t)lohm_checksize(L, 3, UINT32_MAX, "leak", "interval");
        int rc = ohm_pool_set_leak(pool, level, interval);
        if (rc) return lohm_fail(L, rc, "leak");
    }
    lua_pushstring(L, lohm_level_name(ohm_pool_get_leak_level(pool)));
    lua_pushinteger(L, (lua_Integer)ohm_pool_get_leak_sample_interval(pool));
    return 2;
}

static int l_tostr(lua_State *L)
{
    lpool *p = checkpool(L, 1);
    if (p->closed) lua_pushliteral(L, "ohm.pool(closed)");
    else lua_pushfstring(L, "ohm.pool(%s): %p", p->owned ? "own" : "shared", (void *)p->pool);
    return 1;
}

static int l_eq(lua_State *L)
{
    lpool *a = testpool(L, 1), *b = testpool(L, 2);
    lua_pushboolean(L, a && b && !a->closed && !b->closed && a->pool == b->pool);
    return 1;
}

static const luaL_Reg methods[] = {
    {"close", l_close}, {"trim", l_trim}, {"stats", l_stats}, {"leak", l_leak}, {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostr}, {"__eq", l_eq}, {NULL, NULL},
};

void lohm_open_pools(lua_State *L)
{
    lohm_new_type(L, LOHM_POOL_MT, meta, methods);
    static const luaL_Reg funcs[] = {{"pool", l_pool}, {NULL, NULL}};
    lohm_setfuncs(L, funcs);
}
