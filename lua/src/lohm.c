/* require "ohm": the module's entry point, the per-state record, and the helpers every file uses.
 *
 * luaopen_ohm is the only symbol ohm.so exports. It creates (once per lua_State) the state userdata, kept in
 * the registry under a private key and finalized by lua_close after every ohm object of the state (objects are
 * finalized newest first, and the state is the oldest): its __gc destroys the state's own pool, reporting any
 * buffer still in it to the state's leak handler, then unregisters the host.
 *
 * An embedder can make states share a pool on purpose: before requiring the module, put the pool in the
 * registry as a light userdata under "ohm.sharedpool" (the embedder keeps ownership and destroys it after
 * closing the states). From Lua, ohm.pool("default") is the process-wide pool every state can share.
 */
#include "lohm.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 512

/* Registry key of the state userdata: the address of this constant, which no other library can use. */
static const char state_key = 0;

void lohm_push_state(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key); }

lstate *lohm_getstate(lua_State *L)
{
    if (lua_type(L, lua_upvalueindex(1)) == LUA_TUSERDATA) return lua_touserdata(L, lua_upvalueindex(1));
    lohm_push_state(L);
    lstate *st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return st;
}

/* ---- the core's log: Lua's warning channel ----
 *
 * The module writes nothing to stderr itself: the core's messages (a leak nobody tracked, a write after free, a
 * task's leaked memory) go to warn(), which a host turns on with warn("@on") or lua_setwarnf. The log handler is
 * process-wide, so it is the one global of the module: a message logged on a thread inside lohm_enter goes to
 * that state at once; one logged elsewhere (the background purger, a call that does not enter) waits in a small
 * queue for the next lohm_enter of any state on any thread (each lua_close enters), the oldest kept when it
 * overflows. An embedder that links the module in and keeps the log for itself sets the registry field "ohm.log"
 * to false before its first require; the module then leaves the handler alone in every state (log_setup). */

#define LOG_QUEUE   16
#define LOG_MSG_MAX 512

static _Thread_local lstate *tl_entered; /* the state whose host this thread runs, NULL outside */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_queue[LOG_QUEUE][LOG_MSG_MAX];
static unsigned log_queued, log_dropped; /* under log_lock; log_queued also read without it (atomically) */
static int log_threshold = OHM_LOG_WARN; /* written once, before the handler is installed */
static const char *const log_names[] = {"debug", "info", "warn", "error"};

static void warn_on(lua_State *L, const char *level, const char *msg)
{
    lua_warning(L, "ohm ", 1);
    lua_warning(L, level, 1);
    lua_warning(L, ": ", 1);
    lua_warning(L, msg, 0);
}

static void log_to_lua(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    if ((int)level < log_threshold || (unsigned)level > OHM_LOG_ERROR) return;
    lstate *st = tl_entered;
    if (st && st->L) {
        warn_on(st->L, log_names[level], message); /* lua_warning neither allocates nor raises */
        return;
    }
    pthread_mutex_lock(&log_lock);
    unsigned n = log_queued;
    if (n < LOG_QUEUE) {
        snprintf(log_queue[n], LOG_MSG_MAX, "%s: %s", log_names[level], message);
        __atomic_store_n(&log_queued, n + 1, __ATOMIC_RELAXED);
    } else {
        log_dropped++;
    }
    pthread_mutex_unlock(&log_lock);
}

/* Delivers the queued messages to L, the Lua thread of the state this thread has just entered. */
static void log_flush(lua_State *L)
{
    pthread_mutex_lock(&log_lock);
    for (unsigned i = 0; i < log_queued; i++) {
        lua_warning(L, "ohm ", 1);
        lua_warning(L, log_queue[i], 0);
    }
    if (log_dropped) {
        char msg[96];
        snprintf(msg, sizeof msg, "%u more messages were dropped", log_dropped);
        warn_on(L, "warn", msg);
    }
    log_dropped = 0;
    __atomic_store_n(&log_queued, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&log_lock);
}

static void log_install(void)
{
    const char *v = getenv("OHM_LOG_LEVEL"); /* the threshold the default handler would apply */
    if (v && strcmp(v, "off") == 0) log_threshold = OHM_LOG_ERROR + 1;
    for (int i = 0; v && i <= OHM_LOG_ERROR; i++)
        if (strcmp(v, log_names[i]) == 0) log_threshold = i;
    ohm_set_log_handler(log_to_lua, NULL);
}

/* The first require in the process decides, for every state after it: otherwise the first state made without
 * "ohm.log" = false (a library's own lua_State, say) would replace the embedder's handler. The core has no getter
 * for the current handler, so the embedder must say so. Under the lock, so that a concurrent require returns only
 * once the handler is in place. */
static void log_setup(lua_State *L)
{
    static pthread_mutex_t decide_lock = PTHREAD_MUTEX_INITIALIZER;
    static bool decided;
    int t = lua_getfield(L, LUA_REGISTRYINDEX, "ohm.log");
    bool wanted = t == LUA_TNIL || lua_toboolean(L, -1);
    lua_pop(L, 1);
    pthread_mutex_lock(&decide_lock);
    if (!decided && wanted) log_install();
    decided = true;
    pthread_mutex_unlock(&decide_lock);
}

/* ---- entering the host ---- */

lua_State *lohm_enter(lstate *st, lua_State *L)
{
    lua_State *prev = st->L;
    st->L = L; /* before the enter: it may deliver queued leak reports, which run on L */
    tl_entered = st;
    if (__atomic_load_n(&log_queued, __ATOMIC_RELAXED)) log_flush(L);
    ohm_bind_host_enter(st->host);
    return prev;
}

void lohm_leave(lstate *st, lua_State *prev)
{
    ohm_bind_host_leave(st->host);
    st->L = prev;
    /* A nested enter of the same state still runs it; another state's enter around this one is forgotten (its
     * messages wait in the queue until its next enter). */
    tl_entered = prev ? st : NULL;
}

/* ---- errors ---- */

int lohm_fail(lua_State *L, int code, const char *what)
{
    const ohm_bind_error *e = ohm_bind_error_of(code);
    char msg[MSG_MAX];
    /* A copy: the message is thread-local and a GC step inside a Lua call could replace it. */
    snprintf(msg, sizeof msg, "%s", ohm_bind_message(code));
    /* The core names some failures itself ("seal: ..."): the function's name once, not twice. */
    size_t wlen = strlen(what);
    const char *sep = strncmp(msg, what, wlen) == 0 && msg[wlen] == ':' ? NULL : ": ";
    if (!sep) what = "";
    if (e->raise) return luaL_error(L, "%s%s%s", what, sep ? sep : "", msg);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s%s%s", what, sep ? sep : "", msg);
    lua_pushstring(L, e->name);
    return 3;
}

int lohm_pcall(lua_State *L, lua_CFunction fn, int nargs, int nresults, const char *what)
{
    /* lua_pushcfunction of a light C function and lua_rotate allocate nothing, so nothing here can raise. */
    lua_pushcfunction(L, fn);
    lua_rotate(L, -(nargs + 1), 1);
    int rc = lua_pcall(L, nargs, nresults, 0);
    if (rc == LUA_OK) return 0;
    char msg[MSG_MAX];
    if (lua_type(L, -1) == LUA_TSTRING) snprintf(msg, sizeof msg, "%s: %s", what, lua_tostring(L, -1));
    else snprintf(msg, sizeof msg, "%s: (error object is a %s value)", what, luaL_typename(L, -1));
    lua_pop(L, 1);
    return ohm_bind_fail(OHM_ECALLBACK, msg);
}

/* ---- argument helpers ---- */

size_t lohm_checksize(lua_State *L, int i, uint64_t max, const char *fname, const char *what)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    if (!ok) {
        if (i > 0) luaL_checkinteger(L, i); /* an argument: Lua's own "bad argument #i" message */
        luaL_error(L, "%s: %s must be an integer, got %s", fname, what,
                   lua_isnumber(L, i) ? "a number with a fraction" : luaL_typename(L, i));
    }
    size_t out;
    int rc = ohm_bind_size(v, max, what, &out);
    if (rc && i > 0) luaL_argerror(L, i, ohm_bind_message(rc)); /* "bad argument #i to 'f' (size -1 is negative)" */
    if (rc) lohm_fail(L, rc, fname);                            /* a table field: EINVAL, raises */
    return out;
}

ohm_mem_mode lohm_checkmode(lua_State *L, int i, const char *fname)
{
    if (lua_isnoneornil(L, i)) return OHM_OFF_HEAP;
    const char *s = lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
    if (s && strcmp(s, "off_heap") == 0) return OHM_OFF_HEAP;
    if (s && strcmp(s, "on_heap") == 0) return OHM_ON_HEAP;
    const char *got = s ? s : luaL_typename(L, i);
    if (i > 0) luaL_argerror(L, i, lua_pushfstring(L, "mode must be \"off_heap\" or \"on_heap\", got %s", got));
    luaL_error(L, "%s: mode must be \"off_heap\" or \"on_heap\", got %s", fname, got);
    return OHM_OFF_HEAP;
}

void lohm_set_counters(lua_State *L, const void *s, const lohm_counter *counters, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer) * (const uint64_t *)((const char *)s + counters[i].offset));
        lua_setfield(L, -2, counters[i].name);
    }
}

void lohm_setfuncs(lua_State *L, const luaL_Reg *funcs)
{
    lohm_push_state(L);
    luaL_getmetatable(L, LOHM_BUFFER_MT);
    luaL_setfuncs(L, funcs, 2);
}

void lohm_new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, tname);
    lohm_setfuncs(L, meta);
    lua_newtable(L);
    lohm_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void lohm_push_objects(lua_State *L, lstate *st)
{
    (void)st;
    lohm_push_state(L);
    lua_getiuservalue(L, -1, ST_UV_OBJECTS);
    lua_remove(L, -2);
}

/* ---- the state ---- */

/* lua_close (or the registry entry's collection): everything of the state ends here. Every ohm object of the
 * state was finalized before (newest first), so what is left is the state's own pool and the host. */
static int state_gc(lua_State *L)
{
    lstate *st = lua_touserdata(L, 1);
    if (st->closed) return 0;
    st->closed = true;
    if (st->own_pool && st->pool) {
        /* Buffers still in the pool (no userdata owned them) are reported to this state's handler. */
        lua_State *prev = lohm_enter(st, L);
        ohm_pool_destroy(st->pool);
        lohm_leave(st, prev);
    }
    st->pool = NULL;
    if (st->host) ohm_bind_host_destroy(st->host);
    st->host = NULL;
    return 0;
}

static lstate *state_create(lua_State *L)
{
    lstate *st = lua_newuserdatauv(L, sizeof *st, ST_UV_COUNT);
    memset(st, 0, sizeof *st);
    /* The metatable first: from here on, lua_close finalizes the state whatever fails below. */
    luaL_newmetatable(L, LOHM_STATE_MT);
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "ohm.state");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);

    lua_newtable(L); /* objects: a weak-valued map from a C record's address to its userdata */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, ST_UV_OBJECTS);

    ohm_bind_host_ops ops = {.threads = OHM_BIND_OWNER_THREAD, .leak = lohm_leak_report};
    st->host = ohm_bind_host_create(&ops, st);
    if (!st->host) luaL_error(L, "ohm: cannot register the lua_State with the binding layer: %s", ohm_last_error());

    lua_getfield(L, LUA_REGISTRYINDEX, "ohm.sharedpool"); /* an embedder's pool, shared on purpose */
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
        st->pool = lua_touserdata(L, -1);
        st->own_pool = false;
    }
    lua_pop(L, 1);
    if (!st->pool) {
        char name[64];
        ohm_pool_config cfg;
        ohm_pool_config_init(&cfg);
        snprintf(name, sizeof name, "lua:%p", (void *)st);
        cfg.name = name;
        st->pool = ohm_pool_create(&cfg);
        if (!st->pool) luaL_error(L, "ohm: cannot create the state's pool: %s", ohm_last_error());
        st->own_pool = true;
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
    return st;
}

static int l_version(lua_State *L)
{
    lua_pushliteral(L, "0.1.0");
    return 1;
}

/* ohm.errors: the name of each code, as the third value of a runtime failure carries it. */
static void push_error_names(lua_State *L)
{
    lua_createtable(L, 0, OHM_BIND_ERROR_COUNT - 1);
    for (int i = 1; i < OHM_BIND_ERROR_COUNT; i++) { /* every code but OHM_OK */
        const ohm_bind_error *e = ohm_bind_error_of(-i);
        lua_pushboolean(L, e->raise);
        lua_setfield(L, -2, e->name); /* name -> whether it is raised (true) or returned (false) */
    }
}

__attribute__((visibility("default"))) int luaopen_ohm(lua_State *L);

int luaopen_ohm(lua_State *L)
{
    luaL_checkversion(L);
    log_setup(L);
    lohm_push_state(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        state_create(L);
    }
    lua_pop(L, 1);
    luaL_newmetatable(L, LOHM_BUFFER_MT); /* the upvalue every function gets; filled by lohm_open_buffers */
    lua_pop(L, 1);

    lua_newtable(L);
    lohm_open_buffers(L);
    lohm_open_pools(L);
    lohm_open_leak(L);
    lohm_open_scopes(L);
    lohm_open_mm(L);
    lohm_open_ffi(L);
    static const luaL_Reg funcs[] = {{"version", l_version}, {NULL, NULL}};
    lohm_setfuncs(L, funcs);
    push_error_names(L);
    lua_setfield(L, -2, "errors");
    return 1;
}
