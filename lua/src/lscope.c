/* Leak scopes from Lua: `local s <close> = ohm.leakscope()` and `ohm.checkleaks(fn, ...)`.
 *
 * A scope is the core's (ohm_leak_scope_*): every buffer this OS thread makes while it is open is tracked, so
 * lohm_setbuf attaches its Lua traceback; closing lists the buffers still live (and those the GC reclaimed
 * unreleased meanwhile) and raises an error naming each one's Lua line. A scope ended by an error that is already
 * propagating does not raise again: that error goes on (buffers left behind by an error are not the news).
 */
#include "lohm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOHM_SCOPE_MT "ohm.leakscope"

typedef struct lscope {
    uint64_t id; /* 0 once closed */
} lscope;

size_t lohm_site_line(const char *site, char *out, size_t cap)
{
    /* The site is "<tag> ohm.buffer(N)\nstack traceback:\n\t<frame>\n...": the first frame that is Lua code. */
    const char *p = site ? strstr(site, "\n\t") : NULL;
    while (p) {
        p += 2;
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n && p[0] != '[' && strncmp(p, "(...", 4) != 0) {
            /* "file.lua:12: in function 'f'": keep "file.lua:12". */
            const char *colon = memchr(p, ':', n);
            const char *colon2 = colon ? memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)) : NULL;
            size_t keep = colon2 ? (size_t)(colon2 - p) : n;
            return (size_t)snprintf(out, cap, "%.*s", (int)keep, p);
        }
        p = end ? end : NULL;
    }
    return (size_t)snprintf(out, cap, "?");
}

/* The message listing the leaks, malloc'd (NULL if out of memory). */
static char *leak_message(const ohm_leak_list *l, const char *what)
{
    size_t cap = 256 + l->count * 160, len = 0;
    char *msg = malloc(cap);
    if (!msg) return NULL;
    len += (size_t)snprintf(msg, cap, "%s: %zu buffer%s leaked (%llu bytes)", what, l->count, l->count == 1 ? "" : "s",
                            (unsigned long long)l->bytes);
    for (size_t i = 0; i < l->count && len < cap; i++) {
        const ohm_leak_report *r = &l->reports[i];
        char line[128];
        lohm_site_line(r->created.host_site, line, sizeof line);
        const char *why = r->reason == OHM_LEAK_GC             ? ", garbage-collected unreleased"
                          : r->reason == OHM_LEAK_POOL_DESTROY ? ", its pool was destroyed"
                                                               : "";
        len += (size_t)snprintf(msg + len, cap - len, "\n\t%s: ohm.buffer of %zu bytes%s", line, r->size, why);
        if (r->nrecords && r->records[r->nrecords - 1].hint && len < cap)
            len += (size_t)snprintf(msg + len, cap - len, " (last hint: %.40s)", r->records[r->nrecords - 1].hint);
    }
    return msg;
}

/* Closes scope *id (then 0); raises when it cannot be closed (*id kept), or when it had leaks and raise_leaks
 * is set. Returns the number of leaks. */
static int64_t close_scope(lua_State *L, uint64_t *id, bool raise_leaks, const char *what)
{
    ohm_leak_list *l = NULL;
    int64_t rc = ohm_leak_scope_close(*id, 0, raise_leaks ? &l : NULL);
    if (rc < 0 && rc != OHM_ENOMEM) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ohm_last_error()); /* thread-local: a GC step could replace it */
        luaL_error(L, "%s: %s", what, msg);
    }
    *id = 0;
    if (rc == 0 || !raise_leaks) {
        ohm_leak_list_free(l);
        return rc;
    }
    char *msg = l ? leak_message(l, what) : NULL;
    ohm_leak_list_free(l);
    if (!msg) luaL_error(L, "%s: buffers leaked (no memory to list them)", what);
    lua_pushstring(L, msg); /* may raise (memory): msg is lost then, a few bytes */
    free(msg);
    lua_error(L);
    return rc;
}

static lscope *check_scope(lua_State *L) { return luaL_checkudata(L, 1, LOHM_SCOPE_MT); }

/* ohm.leakscope(): a scope open on this thread until closed (<close>, s:close()). */
static int l_leakscope(lua_State *L)
{
    lscope *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->id = 0;
    luaL_setmetatable(L, LOHM_SCOPE_MT);
    s->id = ohm_leak_scope_open();
    if (!s->id) return luaL_error(L, "leakscope: %s", ohm_last_error());
    return 1;
}

/* s:close() / __close(s, err): ends the scope; raises listing the leaks (not while an error propagates). */
static int l_scope_close(lua_State *L)
{
    lscope *s = check_scope(L);
    if (!s->id) return 0; /* closed already: closing twice from Lua is harmless */
    bool erroring = !lua_isnoneornil(L, 2);
    int64_t n = close_scope(L, &s->id, !erroring, "leakscope");
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* __gc: a scope never closed (not declared <close>) ends quietly with its object. */
static int l_scope_gc(lua_State *L)
{
    lscope *s = check_scope(L);
    if (s->id) ohm_leak_scope_close(s->id, 0, NULL); /* may fail (not the innermost): nothing to raise to */
    s->id = 0;
    return 0;
}

/* s:id(): the core's scope id (0 once closed), for ohm_leak_scope_join from C. */
static int l_scope_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_scope(L)->id);
    return 1;
}

static int l_scope_tostring(lua_State *L)
{
    lscope *s = check_scope(L);
    if (s->id) lua_pushfstring(L, "ohm.leakscope %I", (lua_Integer)s->id);
    else lua_pushliteral(L, "ohm.leakscope (closed)");
    return 1;
}

/* ohm.checkleaks(fn, ...): runs fn(...) in a scope; returns its results, or raises fn's error, or raises the
 * list of the buffers fn left live. */
static int l_checkleaks(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    uint64_t id = ohm_leak_scope_open();
    if (!id) return luaL_error(L, "checkleaks: %s", ohm_last_error());
    int base = lua_gettop(L) - nargs - 1; /* results start above base */
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    if (rc != LUA_OK) {
        ohm_leak_scope_close(id, 0, NULL);
        return lua_error(L);
    }
    close_scope(L, &id, true, "checkleaks");
    return lua_gettop(L) - base;
}

void lohm_open_scopes(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__close", l_scope_close}, {"__gc", l_scope_gc}, {"__tostring", l_scope_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"close", l_scope_close}, {"id", l_scope_id}, {NULL, NULL}};
    lohm_new_type(L, LOHM_SCOPE_MT, meta, methods);
    static const luaL_Reg funcs[] = {{"leakscope", l_leakscope}, {"checkleaks", l_checkleaks}, {NULL, NULL}};
    lohm_setfuncs(L, funcs);
}
