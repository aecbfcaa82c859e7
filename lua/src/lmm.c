/* The memory manager from Lua: managers, tasks, consumers with a Lua spill function, pages, and the block
 * cache with Lua eviction functions. Spark's semantics are the core's; this file maps them onto userdata.
 *
 * Ownership. A task anchors its manager, a consumer its task, a page its consumer (uservalue 1), so the GC
 * never finalizes an owner before what depends on it; lua_close finalizes newest first, which is the same
 * order. A task keeps its consumers (strongly) and its pages (weakly): closing the task reclaims the live pages
 * (reported as leaks, as the core does), destroys the consumers through the binding layer and ends the task.
 *
 * Callbacks. Every call that can spill or evict runs inside lohm_enter/lohm_leave; the spill and eviction
 * functions run under lua_pcall on the calling Lua thread. A Lua error becomes OHM_ECALLBACK with its message,
 * and the acquire (or put) that caused it returns nil, message, "ECALLBACK" with the accounting unchanged. What
 * a spill returns is checked by the core against what it released (a report above it is ECALLBACK too).
 *
 * Waiting. One lua_State is one thread: while a task waits for its fair share nothing in the state can release
 * memory, so a manager's waits time out at once (wait_timeout_ms = 0) unless OHM_MM_WAIT_TIMEOUT_MS or the
 * wait_timeout_ms option says otherwise (useful when several states on several threads share nothing but an
 * off-heap budget... which they cannot: a manager belongs to one state).
 */
#include "lohm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lmm {
    ohm_mm *mm;
    ohm_bind_evictor *evictor;
    lstate *st;
    uint64_t next_task_id;
    bool closed;
} lmm;

typedef struct ltask {
    ohm_task *t;
    lmm *mm;
    bool closed;
} ltask;

typedef struct lconsumer {
    ohm_consumer *c;
    ltask *task;
    lstate *st;
    bool closed;
    char name[64];
} lconsumer;

enum { MM_UV_EVICT = 1, MM_UV_POOL, MM_UV_COUNT = MM_UV_POOL };
enum { TASK_UV_MM = 1, TASK_UV_CONSUMERS, TASK_UV_PAGES, TASK_UV_COUNT = TASK_UV_PAGES };
enum { CONS_UV_SPILL = 1, CONS_UV_TASK, CONS_UV_COUNT = CONS_UV_TASK };

/* ---- checkers: one per type (the type), and its live variant (the type, not closed) ---- */

static lmm *checkmm(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_MM_MT); }
static ltask *checktask(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_TASK_MT); }
static lconsumer *checkconsumer(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_CONSUMER_MT); }

static lmm *livemm(lua_State *L, int i, const char *fname)
{
    lmm *m = checkmm(L, i);
    if (m->closed || !m->mm) luaL_error(L, "%s: memory manager was closed", fname);
    return m;
}

static ltask *livetask(lua_State *L, int i, const char *fname)
{
    ltask *t = checktask(L, i);
    if (t->closed || !t->t) luaL_error(L, "%s: task was closed", fname);
    return t;
}

static lconsumer *liveconsumer(lua_State *L, int i, const char *fname)
{
    lconsumer *c = checkconsumer(L, i);
    if (c->closed || !c->c) luaL_error(L, "%s: consumer was closed", fname);
    if (c->task->closed) luaL_error(L, "%s: consumer's task was closed", fname);
    return c;
}

static void register_object(lua_State *L, lstate *st, void *key, int idx)
{
    idx = lua_absindex(L, idx);
    lohm_push_objects(L, st);
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, key);
    lua_pop(L, 1);
}

/* Pushes the userdata registered for key (nil if collected). */
static void push_object(lua_State *L, const void *key)
{
    lohm_push_objects(L, NULL);
    lua_rawgetp(L, -1, key);
    lua_remove(L, -2);
}

static uint64_t checkbytes(lua_State *L, int i, const char *fname)
{
    return (uint64_t)lohm_checksize(L, i, INT64_MAX, fname, "size");
}

/* The arguments of the task's acquire and release methods: the task, a size and a memory mode. */
static ltask *task_args(lua_State *L, const char *fname, uint64_t *n, ohm_mem_mode *mode)
{
    ltask *t = livetask(L, 1, fname);
    *n = checkbytes(L, 2, fname);
    *mode = lohm_checkmode(L, 3, fname);
    return t;
}

/* Returns what an acquire or release method returns for the core's result r: the bytes, or a failure. */
static int push_bytes(lua_State *L, int64_t r, const char *fname)
{
    if (r < 0) return lohm_fail(L, (int)r, fname);
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
}

/* ---- callbacks ---- */

/* Protected: (consumer, size, trigger) -> bytes released. */
static int spill_protected(lua_State *L)
{
    const void *c = lua_touserdata(L, 1), *trigger = lua_touserdata(L, 3);
    lua_Integer size = lua_tointeger(L, 2);
    push_object(L, c);
    if (lua_isnil(L, -1)) { /* being finalized: it holds nothing a spill could free */
        lua_pushinteger(L, 0);
        return 1;
    }
    lua_getiuservalue(L, -1, CONS_UV_SPILL);
    lua_pushvalue(L, -2);
    lua_pushinteger(L, size);
    if (trigger) push_object(L, trigger);
    else lua_pushnil(L);
    lua_call(L, 3, 1);
    if (lua_isnil(L, -1)) {
        lua_pushinteger(L, 0);
        return 1;
    }
    /* A number only: lua_tointegerx would also read the string "100" as a count. */
    int isint = 0;
    lua_Integer n = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
    if (!isint || n < 0)
        return luaL_error(L, "a spill function must return the bytes it released (a non-negative integer), got %s",
                          lua_type(L, -1) == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL) : luaL_typename(L, -1));
    lua_pushinteger(L, n);
    return 1;
}

static int64_t spill_cb(void *ctx, uint64_t size, void *trigger_ctx)
{
    lconsumer *c = ctx;
    lua_State *L = c->st->L;
    if (!L || !lua_checkstack(L, 10)) return ohm_bind_fail(OHM_ECALLBACK, "no Lua stack to run the spill on");
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, (lua_Integer)(size > INT64_MAX ? INT64_MAX : size));
    lua_pushlightuserdata(L, trigger_ctx);
    int rc = lohm_pcall(L, spill_protected, 3, 1, "spill function");
    if (rc) return rc;
    int64_t r = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Protected: (manager, block id, buffer) -> true to let the block go, false to keep it. */
static int evict_protected(lua_State *L)
{
    const void *m = lua_touserdata(L, 1);
    const char *id = lua_touserdata(L, 2);
    ohm_buf *buf = lua_touserdata(L, 3);
    push_object(L, m);
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int mmud = lua_gettop(L);
    lua_getiuservalue(L, mmud, MM_UV_EVICT);
    int fns = lua_gettop(L);
    if (lua_getfield(L, fns, id) != LUA_TFUNCTION) { /* no listener: the block just goes */
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushstring(L, id);
    lbuf *u = NULL;
    if (buf) {
        /* Lent for the call: the cache releases its reference after it. retainedslice() keeps the data. */
        u = lohm_newbuf(L);
        u->b = buf;
        u->id = ohm_buf_id(buf);
        u->flags = LBUF_BORROWED;
    } else {
        lua_pushnil(L);
    }
    int status = lua_pcall(L, 2, 1, 0);
    if (u) u->b = NULL; /* whatever happened, the lent buffer is not usable after the call */
    if (status != LUA_OK) return lua_error(L);
    bool keep = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    if (!keep) {
        lua_pushnil(L);
        lua_setfield(L, fns, id);
    }
    lua_pushboolean(L, !keep);
    return 1;
}

static int evict_cb(void *ctx, const char *block_id, ohm_buf *buf)
{
    lmm *m = ctx;
    lua_State *L = m->st->L;
    if (!L || !lua_checkstack(L, 10)) return ohm_bind_fail(OHM_ECALLBACK, "no Lua stack to run the eviction on");
    lua_pushlightuserdata(L, m);
    lua_pushlightuserdata(L, (void *)block_id);
    lua_pushlightuserdata(L, buf);
    int rc = lohm_pcall(L, evict_protected, 3, 1, "eviction function");
    if (rc) return rc;
    bool go = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (go) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "the eviction function kept block '%.100s' (it returned false)", block_id);
    return ohm_bind_fail(OHM_ECALLBACK, msg);
}

/* ---- manager ---- */

static uint64_t opt_u64_field(lua_State *L, int t, const char *key, uint64_t def)
{
    uint64_t v = def;
    if (lua_getfield(L, t, key) != LUA_TNIL) v = (uint64_t)lohm_checksize(L, -1, INT64_MAX, "mm", key);
    lua_pop(L, 1);
    return v;
}

static double opt_num_field(lua_State *L, int t, const char *key, double def)
{
    double v = def;
    if (lua_getfield(L, t, key) != LUA_TNIL) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "mm: %s must be a number", key);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* ohm.mm{off_heap = bytes, on_heap = bytes, heap = bytes (Spark's sizing of on_heap), fraction = 0.6,
 * storage_fraction = 0.5, page_size = 1 MiB, wait_timeout_ms = 0, pool = p} */
static int l_mm(lua_State *L)
{
    lstate *st = lohm_state(L);
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    if (!getenv("OHM_MM_WAIT_TIMEOUT_MS")) cfg.wait_timeout_ms = 0;
    cfg.pool = st->pool;
    bool anchor = false;
    int pool_idx = 0;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        cfg.max_bytes[OHM_OFF_HEAP] = opt_u64_field(L, 1, "off_heap", cfg.max_bytes[OHM_OFF_HEAP]);
        cfg.max_bytes[OHM_ON_HEAP] = opt_u64_field(L, 1, "on_heap", cfg.max_bytes[OHM_ON_HEAP]);
        cfg.storage_fraction = opt_num_field(L, 1, "storage_fraction", cfg.storage_fraction);
        cfg.page_size = (size_t)opt_u64_field(L, 1, "page_size", cfg.page_size);
        cfg.wait_timeout_ms = opt_u64_field(L, 1, "wait_timeout_ms", cfg.wait_timeout_ms);
        if (lua_getfield(L, 1, "heap") != LUA_TNIL) {
            uint64_t heap = (uint64_t)lohm_checksize(L, -1, INT64_MAX, "mm", "heap");
            int rc = ohm_mm_config_from_heap(&cfg, heap, opt_num_field(L, 1, "fraction", 0.6));
            if (rc) return lohm_fail(L, rc, "mm");
        }
        lua_pop(L, 1);
        if (lua_getfield(L, 1, "pool") != LUA_TNIL) {
            cfg.pool = lohm_optpool(L, -1, &anchor);
            pool_idx = lua_gettop(L);
        } else {
            lua_pop(L, 1);
        }
    }
    if (st->closed) return luaL_error(L, "mm: the lua_State is closing");
    lmm *m = lua_newuserdatauv(L, sizeof *m, MM_UV_COUNT);
    memset(m, 0, sizeof *m);
    m->st = st;
    m->next_task_id = 1;
    m->closed = true; /* until created */
    luaL_setmetatable(L, LOHM_MM_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, MM_UV_EVICT);
    if (anchor) {
        lua_pushvalue(L, pool_idx);
        lua_setiuservalue(L, -2, MM_UV_POOL);
    }
    m->evictor = ohm_bind_evictor_create(st->host, evict_cb, m);
    if (!m->evictor) return lohm_fail(L, ohm_last_error_code(), "mm");
    m->mm = ohm_mm_create(&cfg);
    if (!m->mm) return lohm_fail(L, ohm_last_error_code(), "mm");
    m->closed = false;
    register_object(L, st, m, -1);
    return 1;
}

static void mm_free(lmm *m)
{
    if (m->evictor) ohm_bind_evictor_destroy(m->evictor);
    m->evictor = NULL;
    m->mm = NULL;
    m->closed = true;
}

/* mm:close(): raises while tasks are live. Cached blocks are dropped without their eviction functions. */
static int l_mm_close(lua_State *L)
{
    lmm *m = checkmm(L, 1);
    if (m->closed) return 0;
    lua_State *prev = lohm_enter(m->st, L);
    int rc = ohm_mm_destroy(m->mm);
    lohm_leave(m->st, prev);
    if (rc) return lohm_fail(L, rc, "mm:close");
    mm_free(m);
    lua_newtable(L);
    lua_setiuservalue(L, 1, MM_UV_EVICT);
    return 0;
}

static int l_mm_gc(lua_State *L)
{
    lmm *m = lua_touserdata(L, 1);
    if (m->closed) {
        if (m->evictor) mm_free(m);
        return 0;
    }
    /* Its tasks anchor it, so they were finalized (closed) first. If it still cannot go (a page of an ended
     * task is referenced from C), its memory stays with the core: better a leak than a crash. */
    lua_State *prev = lohm_enter(m->st, L);
    int rc = ohm_mm_destroy(m->mm);
    lohm_leave(m->st, prev);
    if (rc == 0) mm_free(m);
    return 0;
}

/* mm:task([id]): a new task; ids count up from 1 unless given. */
static int l_mm_task(lua_State *L)
{
    lmm *m = livemm(L, 1, "task");
    uint64_t id = lua_isnoneornil(L, 2) ? m->next_task_id++ : (uint64_t)luaL_checkinteger(L, 2);
    ltask *t = lua_newuserdatauv(L, sizeof *t, TASK_UV_COUNT);
    t->t = NULL;
    t->mm = m;
    t->closed = true;
    luaL_setmetatable(L, LOHM_TASK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, TASK_UV_MM);
    lua_newtable(L);
    lua_setiuservalue(L, -2, TASK_UV_CONSUMERS);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, -2, TASK_UV_PAGES);
    t->t = ohm_task_create(m->mm, id);
    if (!t->t) return lohm_fail(L, ohm_last_error_code(), "task");
    t->closed = false;
    return 1;
}

/* mm:put(id, buffer | nil [, {group = nil, mode = "off_heap", size = #buffer, evict = function(id, buffer)}]):
 * caches the buffer (the cache takes its own reference) under storage memory, evicting least recently used
 * blocks of other groups if needed. The eviction function gets the block's id and the buffer, lent for the call
 * (b:retainedslice() keeps the data); returning false keeps the block and fails the acquire that needed the
 * memory. Returns true, or nil, message, "ELIMIT" (does not fit) / "ECALLBACK" (an eviction function failed). */
static int l_mm_put(lua_State *L)
{
    lmm *m = livemm(L, 1, "put");
    const char *id = luaL_checkstring(L, 2);
    ohm_buf *buf = lua_isnoneornil(L, 3) ? NULL : lohm_livebuf(L, 3, "put");
    const char *group = NULL;
    ohm_mem_mode mode = OHM_OFF_HEAP;
    uint64_t size = 0;
    lua_settop(L, 4);
    lua_pushnil(L); /* 5: group */
    lua_pushnil(L); /* 6: mode */
    lua_pushnil(L); /* 7: evict */
    if (!lua_isnil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "group");
        lua_replace(L, 5);
        if (!lua_isnil(L, 5)) group = luaL_checkstring(L, 5);
        lua_getfield(L, 4, "mode");
        lua_replace(L, 6);
        mode = lohm_checkmode(L, 6, "put");
        size = opt_u64_field(L, 4, "size", 0);
        lua_getfield(L, 4, "evict");
        lua_replace(L, 7);
        if (!lua_isnil(L, 7)) luaL_checktype(L, 7, LUA_TFUNCTION);
    }
    if (!buf && size == 0) return luaL_error(L, "put: an accounting-only block (no buffer) needs a size");
    lua_getiuservalue(L, 1, MM_UV_EVICT); /* 8: listeners by id */
    lua_getfield(L, 8, id);               /* 9: the current one, restored if the put fails */
    lua_pushvalue(L, 7);
    lua_setfield(L, 8, id);
    /* The cache holds a retained slice, not the caller's buffer: the GC's reclaim of a buffer whose userdata is
     * unreachable drops every reference but those retained slices hold, and the cache's reference must survive
     * that (a buffer closed after the put, or never closed, is collected while the block is cached). */
    ohm_buf *held = buf ? ohm_buf_retained_slice(buf, 0, ohm_buf_size(buf)) : NULL;
    if (buf && !held) return lohm_fail(L, ohm_last_error_code(), "put");
    lua_State *prev = lohm_enter(m->st, L);
    int rc = ohm_block_put(m->mm, id, group, mode, held, size, ohm_bind_evict, m->evictor);
    lohm_leave(m->st, prev);
    if (held) ohm_buf_release(held, 1); /* the cache's own reference keeps it, or it ends here */
    if (rc) {
        lua_pushvalue(L, 9);
        lua_setfield(L, 8, id);
        return lohm_fail(L, rc, "put");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* mm:get(id): a buffer of its own (a retained slice of the cached buffer: release or close it), false for an
 * accounting-only block, nil when the block is not cached (or being evicted). */
static int l_mm_get(lua_State *L)
{
    lmm *m = livemm(L, 1, "get");
    const char *id = luaL_checkstring(L, 2);
    lbuf *u = lohm_newbuf(L);
    ohm_buf *buf;
    int rc = ohm_block_pin(m->mm, id, &buf);
    if (rc) {
        luaL_pushfail(L);
        return 1;
    }
    ohm_buf *s = buf ? ohm_buf_retained_slice(buf, 0, ohm_buf_size(buf)) : NULL;
    int code = buf && !s ? ohm_last_error_code() : 0;
    ohm_block_unpin(m->mm, id);
    if (code) return lohm_fail(L, code, "get");
    if (!buf) {
        lua_pushboolean(L, 0);
        return 1;
    }
    u->b = s;
    u->id = ohm_buf_id(s);
    return 1;
}

static int l_mm_has(lua_State *L)
{
    lmm *m = livemm(L, 1, "has");
    const char *id = luaL_checkstring(L, 2);
    ohm_buf *buf;
    bool cached = ohm_block_pin(m->mm, id, &buf) == 0;
    if (cached) ohm_block_unpin(m->mm, id);
    lua_pushboolean(L, cached);
    return 1;
}

/* mm:remove(id): true, or false if it is not cached; raises while it is pinned or being evicted. */
static int l_mm_remove(lua_State *L)
{
    lmm *m = livemm(L, 1, "remove");
    const char *id = luaL_checkstring(L, 2);
    int rc = ohm_block_remove(m->mm, id);
    if (rc == OHM_EINVAL) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rc) return lohm_fail(L, rc, "remove");
    lua_getiuservalue(L, 1, MM_UV_EVICT);
    lua_pushnil(L);
    lua_setfield(L, -2, id);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_mm_cancel(lua_State *L)
{
    lmm *m = livemm(L, 1, "cancel");
    int rc = ohm_mm_cancel_task(m->mm, (uint64_t)luaL_checkinteger(L, 2));
    if (rc) return lohm_fail(L, rc, "cancel");
    lua_pushboolean(L, 1);
    return 1;
}

#define MODE_COUNTER(f) LOHM_COUNTER(ohm_mm_mode_stats, f)
#define MM_COUNTER(f)   LOHM_COUNTER(ohm_mm_stats, f)
#define TASK_COUNTER(name, f)             \
    {                                     \
        name, offsetof(ohm_task_stats, f) \
    }
#define CONS_COUNTER(f) LOHM_COUNTER(ohm_consumer_stats, f)

static void push_mode_stats(lua_State *L, const ohm_mm_mode_stats *s)
{
    static const lohm_counter counters[] = {
        MODE_COUNTER(max),
        MODE_COUNTER(storage_region),
        MODE_COUNTER(execution_pool),
        MODE_COUNTER(execution_used),
        MODE_COUNTER(storage_pool),
        MODE_COUNTER(storage_used),
        MODE_COUNTER(tasks),
    };
    lua_createtable(L, 0, 7);
    lohm_set_counters(L, s, counters, LOHM_COUNTOF(counters));
}

static int l_mm_stats(lua_State *L)
{
    static const lohm_counter counters[] = {
        MM_COUNTER(tasks),     MM_COUNTER(blocks),        MM_COUNTER(block_bytes),
        MM_COUNTER(evictions), MM_COUNTER(evicted_bytes), MM_COUNTER(pages),
    };
    lmm *m = livemm(L, 1, "stats");
    ohm_mm_stats s;
    int rc = ohm_mm_stats_get(m->mm, &s);
    if (rc) return lohm_fail(L, rc, "stats");
    lua_createtable(L, 0, 8);
    lohm_set_counters(L, &s, counters, LOHM_COUNTOF(counters));
    push_mode_stats(L, &s.mode[OHM_ON_HEAP]);
    lua_setfield(L, -2, "on_heap");
    push_mode_stats(L, &s.mode[OHM_OFF_HEAP]);
    lua_setfield(L, -2, "off_heap");
    return 1;
}

static int l_mm_json(lua_State *L)
{
    lmm *m = livemm(L, 1, "json");
    luaL_Buffer b;
    char small[1024];
    size_t n = ohm_mm_snapshot_json(m->mm, small, sizeof small);
    if (n < sizeof small) {
        lua_pushlstring(L, small, n);
        return 1;
    }
    char *p = luaL_buffinitsize(L, &b, n + 1);
    size_t got = ohm_mm_snapshot_json(m->mm, p, n + 1);
    luaL_pushresultsize(&b, got < n ? got : n);
    return 1;
}

/* ---- tasks ---- */

/* Pushes the set (a table of userdata keys) in uservalue uv of the userdata at idx, then an array of its members;
 * returns the array's index and its length in *n. */
static int push_members(lua_State *L, int idx, int uv, lua_Integer *n)
{
    lua_getiuservalue(L, idx, uv);
    lua_newtable(L);
    int array = lua_gettop(L);
    *n = 0;
    for (lua_pushnil(L); lua_next(L, array - 1); lua_pop(L, 1)) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, array, ++*n);
    }
    return array;
}

/* Reclaims the task's live pages, destroys its consumers, ends it. Returns the execution bytes it still held
 * (pages and consumers included), or -1 if it was closed already. Nothing here raises between enter and leave:
 * the page and consumer lists are copied into arrays first.
 *
 * Why not ohm_task_end alone: it frees the core's consumers but not the binding layer's record of each, which
 * only ohm_bind_consumer_destroy frees, and that refuses a consumer with live pages. Hence pages first (reclaimed,
 * reported as leaks, exactly as the core's task end would), consumers next, the task last. Returns -2 (and the
 * consumer's name) when a page is still held by a retained slice, unless force. */
static int64_t task_close(lua_State *L, ltask *t, int idx, bool force, const char **busy_name)
{
    if (t->closed) return -1;
    lstate *st = t->mm->st;
    idx = lua_absindex(L, idx);
    lua_Integer np, nc;
    int pages = push_members(L, idx, TASK_UV_PAGES, &np);
    int cons = push_members(L, idx, TASK_UV_CONSUMERS, &nc);
    /* What the task holds now, pages and consumers included: destroying the consumers below releases their
     * share before the core's task end counts (and logs) what is left, so the total is taken here. */
    ohm_task_stats ts;
    int64_t held = ohm_task_stats_get(t->t, &ts) == 0 ? (int64_t)(ts.used[OHM_ON_HEAP] + ts.used[OHM_OFF_HEAP]) : 0;
    lua_State *prev = lohm_enter(st, L);
    for (lua_Integer i = 1; i <= np; i++) {
        lua_rawgeti(L, pages, i);
        lbuf *u = lua_touserdata(L, -1);
        if (u && u->b) ohm_buf_reclaim(u->b, u->id); /* a live page is a leak; a stale id is a no-op */
        lua_pop(L, 1);
    }
    /* A page that a retained slice still holds survives its reclaim; its consumer cannot be destroyed through
     * the layer then, and ending the task anyway would leak the layer's record of it. Refuse before the
     * consumers and the task change (the reclaimed pages stay reclaimed: they were leaks either way). force:
     * the GC's finalizer, which cannot refuse, accepts that small leak; it can only happen to a task that was
     * resurrected, since a retained slice anchors its page, consumer and task. */
    const char *busy = NULL;
    for (lua_Integer i = 1; i <= nc && !busy; i++) {
        lua_rawgeti(L, cons, i);
        lconsumer *c = lua_touserdata(L, -1);
        ohm_consumer_stats cs;
        if (c && !c->closed && c->c && ohm_consumer_stats_get(c->c, &cs) == 0 && cs.pages) busy = c->name;
        lua_pop(L, 1);
    }
    if (busy && !force) {
        lohm_leave(st, prev);
        lua_settop(L, idx);
        *busy_name = busy;
        return -2;
    }
    for (lua_Integer i = 1; i <= nc; i++) {
        lua_rawgeti(L, cons, i);
        lconsumer *c = lua_touserdata(L, -1);
        if (c && !c->closed && c->c) ohm_bind_consumer_destroy(c->c);
        if (c) {
            c->closed = true;
            c->c = NULL;
        }
        lua_pop(L, 1);
    }
    int64_t leaked = ohm_task_end(t->t);
    lohm_leave(st, prev);
    if (leaked < held) leaked = held;
    t->t = NULL;
    t->closed = true;
    lua_settop(L, idx);
    return leaked;
}

/* task:close(): ends the task; returns the bytes it still held (0 for a clean task). Closing twice is a no-op
 * returning 0. */
static int l_task_close(lua_State *L)
{
    ltask *t = checktask(L, 1);
    lua_settop(L, 1);
    const char *busy = NULL;
    int64_t leaked = task_close(L, t, 1, false, &busy);
    if (leaked == -2)
        return luaL_error(L,
                          "task:close: a page of consumer '%s' is still held by a retained slice; release the "
                          "slice first",
                          busy);
    lua_pushinteger(L, leaked < 0 ? 0 : (lua_Integer)leaked);
    return 1;
}

static int l_task_gc(lua_State *L)
{
    ltask *t = lua_touserdata(L, 1);
    const char *busy;
    if (!t->closed && !t->mm->closed) task_close(L, t, 1, true, &busy);
    return 0;
}

static int l_task_id(lua_State *L)
{
    ltask *t = livetask(L, 1, "id");
    lua_pushinteger(L, (lua_Integer)ohm_task_id(t->t));
    return 1;
}

/* task:acquire(n [, mode]): execution memory without a consumer: the bytes granted (0..n), or nil, message,
 * "ETIMEDOUT" / "ECANCELED" / "ECALLBACK" (an eviction function failed). */
static int l_task_acquire(lua_State *L)
{
    uint64_t n;
    ohm_mem_mode mode;
    ltask *t = task_args(L, "acquire", &n, &mode);
    lua_State *prev = lohm_enter(t->mm->st, L);
    int64_t got = ohm_task_acquire(t->t, mode, n);
    lohm_leave(t->mm->st, prev);
    return push_bytes(L, got, "acquire");
}

/* task:release(n [, mode]) and task:releaseunroll(n [, mode]): the bytes released, or nil, message, code. */
static int task_release(lua_State *L, const char *fname, int64_t (*release)(ohm_task *, ohm_mem_mode, uint64_t))
{
    uint64_t n;
    ohm_mem_mode mode;
    ltask *t = task_args(L, fname, &n, &mode);
    return push_bytes(L, release(t->t, mode, n), fname);
}

static int l_task_release(lua_State *L) { return task_release(L, "release", ohm_task_release); }

/* task:acquireunroll(n [, mode [, group]]): true, or nil, message, "ELIMIT". */
static int l_task_acquire_unroll(lua_State *L)
{
    uint64_t n;
    ohm_mem_mode mode;
    ltask *t = task_args(L, "acquireunroll", &n, &mode);
    const char *group = luaL_optstring(L, 4, NULL);
    lua_State *prev = lohm_enter(t->mm->st, L);
    int rc = ohm_task_acquire_unroll(t->t, mode, group, n);
    lohm_leave(t->mm->st, prev);
    if (rc) return lohm_fail(L, rc, "acquireunroll");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_task_release_unroll(lua_State *L) { return task_release(L, "releaseunroll", ohm_task_release_unroll); }

static int l_task_settimeout(lua_State *L)
{
    ltask *t = livetask(L, 1, "settimeout");
    uint64_t ms = lua_isnil(L, 2) ? UINT64_MAX : (uint64_t)lohm_checksize(L, 2, 0, "settimeout", "timeout");
    ohm_task_set_wait_timeout(t->t, ms);
    lua_settop(L, 1);
    return 1;
}

static int l_task_stats(lua_State *L)
{
    static const lohm_counter counters[] = {
        TASK_COUNTER("id", id),
        TASK_COUNTER("on_heap", used[OHM_ON_HEAP]),
        TASK_COUNTER("off_heap", used[OHM_OFF_HEAP]),
        TASK_COUNTER("unroll_on_heap", unroll[OHM_ON_HEAP]),
        TASK_COUNTER("unroll_off_heap", unroll[OHM_OFF_HEAP]),
        TASK_COUNTER("peak", peak),
        TASK_COUNTER("spills", spills),
        TASK_COUNTER("spill_bytes", spill_bytes),
        TASK_COUNTER("waits", waits),
        TASK_COUNTER("evictions", evictions),
        TASK_COUNTER("consumers", consumers),
    };
    ltask *t = livetask(L, 1, "stats");
    ohm_task_stats s;
    int rc = ohm_task_stats_get(t->t, &s);
    if (rc) return lohm_fail(L, rc, "stats");
    lua_createtable(L, 0, 12);
    lohm_set_counters(L, &s, counters, LOHM_COUNTOF(counters));
    return 1;
}

/* task:consumer{mode = "off_heap", name = "consumer", spill = function(consumer, size, trigger) ... return
 * released end} */
static int l_task_consumer(lua_State *L)
{
    ltask *t = livetask(L, 1, "consumer");
    ohm_mem_mode mode = OHM_OFF_HEAP;
    const char *name = "consumer";
    bool has_spill = false;
    lua_settop(L, 2);
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "mode");
        mode = lohm_checkmode(L, -1, "consumer");
        if (lua_getfield(L, 2, "name") != LUA_TNIL) name = luaL_checkstring(L, -1);
        if (lua_getfield(L, 2, "spill") != LUA_TNIL) {
            luaL_checktype(L, -1, LUA_TFUNCTION);
            has_spill = true;
        }
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushnil(L);
    }
    int spill_idx = lua_gettop(L);
    lstate *st = t->mm->st;
    lconsumer *c = lua_newuserdatauv(L, sizeof *c, CONS_UV_COUNT);
    memset(c, 0, sizeof *c);
    c->task = t;
    c->st = st;
    c->closed = true;
    snprintf(c->name, sizeof c->name, "%s", name);
    luaL_setmetatable(L, LOHM_CONSUMER_MT);
    lua_pushvalue(L, spill_idx);
    lua_setiuservalue(L, -2, CONS_UV_SPILL);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, CONS_UV_TASK);
    register_object(L, st, c, -1);
    lua_getiuservalue(L, 1, TASK_UV_CONSUMERS); /* before the native consumer exists: this may raise */
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    c->c = ohm_bind_consumer_create(st->host, t->t, mode, name, has_spill ? spill_cb : NULL, c);
    if (!c->c) return lohm_fail(L, ohm_last_error_code(), "consumer");
    c->closed = false;
    return 1;
}

/* ---- consumers ---- */

/* c:acquire(n): the bytes granted (possibly fewer, after asking the task's other consumers to spill), or nil,
 * message, code: "ECALLBACK" when a spill function raised, "ETIMEDOUT", "ECANCELED". */
static int l_cons_acquire(lua_State *L)
{
    lconsumer *c = liveconsumer(L, 1, "acquire");
    uint64_t n = checkbytes(L, 2, "acquire");
    lua_State *prev = lohm_enter(c->st, L);
    int64_t got = ohm_consumer_acquire(c->c, n);
    lohm_leave(c->st, prev);
    return push_bytes(L, got, "acquire");
}

static int l_cons_release(lua_State *L)
{
    lconsumer *c = liveconsumer(L, 1, "release");
    uint64_t n = checkbytes(L, 2, "release");
    int64_t r = ohm_consumer_release(c->c, n);
    return push_bytes(L, r, "release");
}

/* c:page(size): a buffer of at least size bytes charged to c (off_heap consumers), or nil, message, "ELIMIT". */
static int l_cons_page(lua_State *L)
{
    lconsumer *c = liveconsumer(L, 1, "page");
    size_t size = lohm_checksize(L, 2, LOHM_MAX_SIZE, "page", "size");
    lua_getiuservalue(L, 1, CONS_UV_TASK);
    lua_getiuservalue(L, -1, TASK_UV_PAGES);
    int pages = lua_gettop(L);
    lbuf *u = lohm_newbuf(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the page anchors its consumer */
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, pages); /* before the page exists: this may raise; the empty userdata is harmless */
    lua_State *prev = lohm_enter(c->st, L);
    ohm_buf *b = ohm_consumer_alloc_page(c->c, size);
    lohm_leave(c->st, prev);
    if (!b) return lohm_fail(L, ohm_last_error_code(), "page");
    lohm_setbuf(L, u, b);
    return 1;
}

static int l_cons_used(lua_State *L)
{
    lconsumer *c = liveconsumer(L, 1, "used");
    lua_pushinteger(L, (lua_Integer)ohm_consumer_used(c->c));
    return 1;
}

static int l_cons_name(lua_State *L)
{
    lconsumer *c = checkconsumer(L, 1);
    lua_pushstring(L, c->name);
    return 1;
}

static int l_cons_stats(lua_State *L)
{
    static const lohm_counter counters[] = {
        CONS_COUNTER(used), CONS_COUNTER(peak), CONS_COUNTER(spills), CONS_COUNTER(spill_bytes), CONS_COUNTER(pages),
    };
    lconsumer *c = liveconsumer(L, 1, "stats");
    ohm_consumer_stats s;
    int rc = ohm_consumer_stats_get(c->c, &s);
    if (rc) return lohm_fail(L, rc, "stats");
    lua_createtable(L, 0, 5);
    lohm_set_counters(L, &s, counters, LOHM_COUNTOF(counters));
    return 1;
}

/* Whether c's native consumer still exists: not closed, and not freed by its task's end. */
static bool consumer_open(const lconsumer *c) { return !c->closed && c->c && !c->task->closed; }

/* Destroys c's open native consumer and marks c closed when that succeeded. Returns 0 or the binding layer's
 * error (while c has live pages). */
static int consumer_destroy(lconsumer *c)
{
    int rc = ohm_bind_consumer_destroy(c->c);
    if (rc == 0) {
        c->closed = true;
        c->c = NULL;
    }
    return rc;
}

/* c:close(): releases what it holds and frees it; raises while it has live pages. */
static int l_cons_close(lua_State *L)
{
    lconsumer *c = checkconsumer(L, 1);
    if (!consumer_open(c)) return 0;
    int rc = consumer_destroy(c);
    if (rc) return lohm_fail(L, rc, "consumer:close");
    lua_getiuservalue(L, 1, CONS_UV_TASK);
    lua_getiuservalue(L, -1, TASK_UV_CONSUMERS);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -3);
    return 0;
}

static int l_cons_gc(lua_State *L)
{
    lconsumer *c = lua_touserdata(L, 1);
    if (consumer_open(c)) consumer_destroy(c); /* on failure, its task's end frees it */
    return 0;
}

static int l_tostr_mm(lua_State *L)
{
    lmm *m = checkmm(L, 1);
    lua_pushfstring(L, m->closed ? "ohm.mm(closed)" : "ohm.mm: %p", (void *)m->mm);
    return 1;
}

static int l_tostr_task(lua_State *L)
{
    ltask *t = checktask(L, 1);
    if (t->closed) lua_pushliteral(L, "ohm.task(closed)");
    else lua_pushfstring(L, "ohm.task(%I)", (LUAI_UACINT)ohm_task_id(t->t));
    return 1;
}

static int l_tostr_cons(lua_State *L)
{
    lconsumer *c = checkconsumer(L, 1);
    lua_pushfstring(L, c->closed ? "ohm.consumer(%s, closed)" : "ohm.consumer(%s)", c->name);
    return 1;
}

void lohm_open_mm(lua_State *L)
{
    static const luaL_Reg mm_methods[] = {
        {"task", l_mm_task},   {"put", l_mm_put},       {"get", l_mm_get},
        {"has", l_mm_has},     {"remove", l_mm_remove}, {"cancel", l_mm_cancel},
        {"stats", l_mm_stats}, {"json", l_mm_json},     {"close", l_mm_close},
        {NULL, NULL},
    };
    static const luaL_Reg mm_meta[] = {
        {"__gc", l_mm_gc},
        {"__close", l_mm_close},
        {"__tostring", l_tostr_mm},
        {NULL, NULL},
    };
    static const luaL_Reg task_methods[] = {
        {"id", l_task_id},
        {"acquire", l_task_acquire},
        {"release", l_task_release},
        {"acquireunroll", l_task_acquire_unroll},
        {"releaseunroll", l_task_release_unroll},
        {"settimeout", l_task_settimeout},
        {"stats", l_task_stats},
        {"consumer", l_task_consumer},
        {"close", l_task_close},
        {NULL, NULL},
    };
    static const luaL_Reg task_meta[] = {
        {"__gc", l_task_gc},
        {"__close", l_task_close},
        {"__tostring", l_tostr_task},
        {NULL, NULL},
    };
    static const luaL_Reg cons_methods[] = {
        {"acquire", l_cons_acquire}, {"release", l_cons_release}, {"page", l_cons_page},   {"used", l_cons_used},
        {"name", l_cons_name},       {"stats", l_cons_stats},     {"close", l_cons_close}, {NULL, NULL},
    };
    static const luaL_Reg cons_meta[] = {
        {"__gc", l_cons_gc},
        {"__close", l_cons_close},
        {"__tostring", l_tostr_cons},
        {NULL, NULL},
    };
    lohm_new_type(L, LOHM_MM_MT, mm_meta, mm_methods);
    lohm_new_type(L, LOHM_TASK_MT, task_meta, task_methods);
    lohm_new_type(L, LOHM_CONSUMER_MT, cons_meta, cons_methods);
    static const luaL_Reg funcs[] = {{"mm", l_mm}, {NULL, NULL}};
    lohm_setfuncs(L, funcs);
}
