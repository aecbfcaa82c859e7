/* host_embed: a C program embedding Lua 5.4 with the ohm module linked in (luaopen_ohm through
 * luaL_requiref), the embedding case: states that keep their own settings, states that share a pool
 * on purpose, lua_close tearing everything down (leaks reported to the state's handler), leak reports without
 * a handler reaching lua_setwarnf, many states on many threads at once, and a Lua closure refused on a thread
 * where its state is not running. Output follows tests/check.h ("ok NAME", "N passed, N failed").
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "ohm.h"

int luaopen_ohm(lua_State *L);

/* ---- helpers ---- */

static lua_State *new_state_with(ohm_pool *shared)
{
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    luaL_openlibs(L);
    if (shared) {
        lua_pushlightuserdata(L, shared);
        lua_setfield(L, LUA_REGISTRYINDEX, "ohm.sharedpool");
    }
    luaL_requiref(L, "ohm", luaopen_ohm, 1); /* also the global "ohm" */
    lua_pop(L, 1);
    return L;
}

static lua_State *new_state(void) { return new_state_with(NULL); }

/* Runs chunk; on an error prints it and fails the check. */
static bool run_(lua_State *L, const char *chunk, const char *file, int line)
{
    if (luaL_dostring(L, chunk) == LUA_OK) return true;
    fprintf(stderr, "%s:%d: Lua error: %s\n", file, line, lua_tostring(L, -1));
    lua_pop(L, 1);
    return check_fail_();
}
#define RUN_LUA(L, chunk) run_((L), (chunk), __FILE__, __LINE__)

/* The value of a Lua expression as an integer (or -999999 on error) / a string copy (caller frees). */
static long long eval_int(lua_State *L, const char *expr)
{
    char chunk[512];
    snprintf(chunk, sizeof chunk, "return %s", expr);
    if (luaL_dostring(L, chunk) != LUA_OK) {
        fprintf(stderr, "eval_int(%s): %s\n", expr, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -999999;
    }
    long long v = lua_isinteger(L, -1) ? (long long)lua_tointeger(L, -1) : -999998;
    lua_pop(L, 1);
    return v;
}

static char *eval_str(lua_State *L, const char *expr)
{
    char chunk[512];
    snprintf(chunk, sizeof chunk, "return tostring(%s)", expr);
    if (luaL_dostring(L, chunk) != LUA_OK) {
        char *e = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        return e;
    }
    char *s = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return s;
}

#define CHECK_LUA_STR(L, expr, want)                                                                               \
    do {                                                                                                           \
        char *got_ = eval_str((L), (expr));                                                                        \
        if (strcmp(got_, (want)) != 0) {                                                                           \
            fprintf(stderr, "%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, (expr), (want), got_); \
            check_fail_();                                                                                         \
        }                                                                                                          \
        free(got_);                                                                                                \
    } while (0)

/* ---- tests ---- */

static void test_require_in_an_embedded_state(void)
{
    lua_State *L = new_state();
    if (!CHECK_NOT_NULL(L)) return;
    RUN_LUA(L, "b = ohm.alloc(8); b:writeu32(0, 7); b:writeu32be(4, 1)");
    CHECK_EQ_INT(eval_int(L, "b:readu32(0)"), 7);
    CHECK_EQ_INT(eval_int(L, "b:readu8(7)"), 1);
    CHECK_EQ_INT(eval_int(L, "require('ohm') == ohm and 1 or 0"), 1);
    /* opening the module a second time in the same state reuses the state's record */
    luaL_requiref(L, "ohm2", luaopen_ohm, 1);
    lua_pop(L, 1);
    RUN_LUA(L, "ohm2.leak.level('advanced')");
    CHECK_LUA_STR(L, "ohm.leak.level()", "advanced");
    CHECK_EQ_INT(eval_int(L, "ohm2.readu32(b, 0)"), 7);
    lua_close(L);
}

static void test_states_keep_their_own_leak_settings(void)
{
    lua_State *a = new_state(), *b = new_state();
    if (!CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(b)) return;
    RUN_LUA(a, "ohm.leak.level('paranoid'); ohm.leak.sample(3)");
    RUN_LUA(b, "ohm.leak.level('off'); ohm.leak.sample(99)");
    CHECK_LUA_STR(a, "ohm.leak.level()", "paranoid");
    CHECK_LUA_STR(b, "ohm.leak.level()", "off");
    CHECK_EQ_INT(eval_int(a, "ohm.leak.sample()"), 3);
    CHECK_EQ_INT(eval_int(b, "ohm.leak.sample()"), 99);
    CHECK_LUA_STR(a, "ohm.alloc(8):tracked()", "true");
    CHECK_LUA_STR(b, "ohm.alloc(8):tracked()", "false");
    /* a checkpoint in one state lists only that state's buffers */
    RUN_LUA(a, "m = ohm.leak.mark(); ka = ohm.alloc(1); ohm.leak.handler(function() end)");
    RUN_LUA(b, "ohm.leak.level('paranoid'); kb1 = ohm.alloc(1); kb2 = ohm.alloc(1); ohm.leak.handler(function() end)");
    lua_pushinteger(b, eval_int(a, "m"));
    lua_setglobal(b, "m");
    CHECK_EQ_INT(eval_int(a, "ohm.leak.check(m)"), 1);
    CHECK_EQ_INT(eval_int(b, "ohm.leak.check(m)"), 2);
    lua_close(a);
    lua_close(b);
}

static void test_states_share_a_pool_on_purpose(void)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "embedder";
    ohm_pool *pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(pool)) return;
    lua_State *a = new_state_with(pool), *b = new_state_with(pool), *c = new_state();
    RUN_LUA(a, "ohm.leak.level('advanced'); ohm.leak.sample(5)");
    CHECK_LUA_STR(b, "ohm.leak.level()", "advanced"); /* the same pool: the same settings */
    CHECK_EQ_INT(eval_int(b, "ohm.leak.sample()"), 5);
    CHECK(ohm_pool_get_leak_level(pool) == OHM_LEAK_ADVANCED);
    RUN_LUA(a, "x = ohm.alloc(100)");
    RUN_LUA(b, "y = ohm.alloc(100)");
    ohm_pool_stats st;
    ohm_pool_stats_get(pool, -1, &st);
    CHECK_EQ_U64(st.active_blocks, 2);
    RUN_LUA(c, "ohm.leak.level('off')"); /* a state with its own pool is not affected */
    CHECK(ohm_pool_get_leak_level(pool) == OHM_LEAK_ADVANCED);
    /* ohm.pool("default"): the process-wide pool, shared by every state that asks for it */
    RUN_LUA(a, "ohm.pool('default'):leak('simple', 17)");
    CHECK_LUA_STR(c, "select(1, ohm.pool('default'):leak())", "simple");
    CHECK_EQ_INT(eval_int(c, "select(2, ohm.pool('default'):leak())"), 17);
    RUN_LUA(c, "ohm.pool('default'):leak('process')");
    RUN_LUA(a, "x:release()");
    lua_close(a);
    lua_close(b); /* y is reclaimed by b's GC at close: the embedder's pool is not destroyed by a state */
    lua_close(c);
    ohm_pool_stats_get(pool, -1, &st);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
}

static int reports_at_close;

static int l_count_report(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "site");
    if (lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "stack traceback")) reports_at_close++;
    return 0;
}

static void test_lua_close_frees_everything_and_reports_to_the_handler(void)
{
    lua_State *L = new_state();
    if (!CHECK_NOT_NULL(L)) return;
    lua_register(L, "count_report", l_count_report);
    reports_at_close = 0;
    RUN_LUA(L, "ohm.leak.level('paranoid')\n"
               "ohm.leak.handler(count_report)\n"
               "kept = ohm.alloc(10)\n" /* never released */
               "slice = kept:slice(2, 4)\n"
               "rs = ohm.alloc(20):retainedslice(0, 5)\n" /* parent and retained slice both unreleased */
               "mm = ohm.mm{off_heap = 8 << 20, page_size = 4096}\n"
               "t = mm:task()\n"
               "c = t:consumer{spill = function(self, n) return self:release(n) end}\n"
               "page = c:page(100)\n"
               "c:acquire(1 << 20)\n"
               "mm:put('blk', ohm.alloc(1 << 20), {evict = function() end})\n"
               "p = ohm.pool{name = 'extra'}\n"
               "inpool = ohm.alloc(30, {pool = p})\n"
               "cl = ohm.ffi.closure('int(int)', function(x) return x end)\n"
               "lib = ohm.ffi.load('libz.so.1')\n"
               "fn = lib:func('crc32', 'u64(u64, ptr, u32)')\n"
               "shm = ohm.shm.create(nil, 4096)\n");
    lua_close(L);
    /* kept, the retained slice's parent and the slice, the page (task end), the block's buffer is the cache's
     * (released by the manager's close), the extra pool's buffer: at least 4 tracked reports with a traceback */
    CHECK(reports_at_close >= 4);
}

typedef struct warn_capture {
    char text[8192];
    size_t len;
} warn_capture;

static void warnf(void *ud, const char *msg, int tocont)
{
    warn_capture *w = ud;
    (void)tocont;
    size_t n = strlen(msg);
    if (w->len + n < sizeof w->text) {
        memcpy(w->text + w->len, msg, n + 1);
        w->len += n;
    }
}

static void test_reports_without_a_handler_go_to_the_warning_function(void)
{
    lua_State *L = new_state();
    if (!CHECK_NOT_NULL(L)) return;
    warn_capture w = {.len = 0};
    w.text[0] = 0;
    lua_setwarnf(L, warnf, &w);
    RUN_LUA(L, "ohm.leak.level('paranoid'); do local b = ohm.alloc(77) end; collectgarbage(); collectgarbage()");
    CHECK_STR_CONTAINS(w.text, "ohm.buffer(77)");
    CHECK_STR_CONTAINS(w.text, "LEAK");
    lua_close(L);
}

static void test_a_spill_that_raises_in_an_embedded_state(void)
{
    lua_State *L = new_state();
    if (!CHECK_NOT_NULL(L)) return;
    RUN_LUA(L, "mm = ohm.mm{off_heap = 4 << 20}\n"
               "t = mm:task()\n"
               "bad = t:consumer{name = 'bad', spill = function() error('embedded spill boom') end}\n"
               "req = t:consumer{name = 'req'}\n"
               "bad:acquire(4 << 20)\n"
               "ok, msg, code = req:acquire(1 << 20)\n");
    CHECK_LUA_STR(L, "code", "ECALLBACK");
    CHECK_LUA_STR(L, "ok", "nil");
    CHECK_LUA_STR(L, "msg:find('embedded spill boom', 1, true) ~= nil", "true");
    CHECK_EQ_INT(eval_int(L, "req:used()"), 0);
    CHECK_EQ_INT(eval_int(L, "bad:release(4 << 20)"), 4 << 20);
    CHECK_EQ_INT(eval_int(L, "req:acquire(1 << 20)"), 1 << 20);
    lua_close(L);
}

/* ---- many states on many threads ---- */

#define NTHREADS 4
#define ROUNDS   300

static void *state_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    static const char *const levels[] = {"off", "simple", "advanced", "paranoid"};
    lua_State *L = new_state();
    if (!CHECK_NOT_NULL(L)) return NULL;
    char chunk[2048];
    snprintf(chunk, sizeof chunk,
             "local id, level, rounds = %d, '%s', %d\n"
             "ohm.leak.level(level); ohm.leak.sample(id + 1)\n"
             "local reports = 0\n"
             "ohm.leak.handler(function(r) reports = reports + 1 end)\n"
             "local mm = ohm.mm{off_heap = 4 << 20, page_size = 4096}\n"
             "local t = mm:task()\n"
             "local a = t:consumer{spill = function(self, n) return self:release(n) end}\n"
             "local b = t:consumer{}\n"
             "for i = 1, rounds do\n"
             "  local buf <close> = ohm.alloc(64 + (i %% 200))\n"
             "  buf:writeu32(0, id * 100000 + i)\n"
             "  buf:writef64(8, i / 3)\n"
             "  buf:writestring(16, 'state ' .. id)\n"
             "  assert(buf:readu32(0) == id * 100000 + i, 'read back another state\\'s value')\n"
             "  assert(buf:readf64(8) == i / 3)\n"
             "  local s = buf:slice(16, 8):tostring()\n"
             "  assert(s:sub(1, 6) == 'state ', s)\n"
             "  a:acquire(3 << 20); assert(b:acquire(2 << 20) == 2 << 20); b:release(2 << 20); a:release(a:used())\n"
             "  local p = b:page(100); p:writeu8(0, i & 255); p:release()\n"
             "  if i %% 50 == 0 then do local _ = ohm.alloc(10) end collectgarbage() end\n"
             "  assert(ohm.leak.level() == level, 'another state changed this one\\'s level')\n"
             "  assert(ohm.leak.sample() == id + 1)\n"
             "end\n"
             "t:close(); mm:close()\n"
             "result = ohm.leak.level() .. ':' .. ohm.leak.sample()\n",
             id, levels[id % 4], ROUNDS);
    RUN_LUA(L, chunk);
    char want[64];
    snprintf(want, sizeof want, "%s:%d", levels[id % 4], id + 1);
    CHECK_LUA_STR(L, "result", want);
    if (id % 2 == 0) { /* closed here, while other states still work: its pool's destruction runs beside them */
        lua_close(L);
        return NULL;
    }
    return L;
}

/* The states run at once. Half of them are closed by their own thread as soon as they finish, while the others
 * still allocate (closing destroys a state's pool, which scans every buffer header of the process: it must
 * never take another pool's half-made header for its own); the other half are closed afterwards by the main
 * thread, not the one that ran them. */
static void test_many_states_on_many_threads(void)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, state_worker, (void *)(intptr_t)i), 0);
    lua_State *states[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], (void **)&states[i]);
    for (int i = 0; i < NTHREADS; i++)
        if (states[i]) lua_close(states[i]); /* closed by another thread than the one that ran it */
}

/* ---- callbacks refused where their state is not running ---- */

typedef struct foreign_call {
    intptr_t addr;
    int result;
    char code[32];
    char msg[512];
} foreign_call;

static void *call_raw(void *arg)
{
    foreign_call *fc = arg;
    int (*fn)(int) = (int (*)(int))fc->addr;
    fc->result = fn(5); /* a C thread calling state A's closure: A is not running here */
    return NULL;
}

static void *call_from_state_b(void *arg)
{
    foreign_call *fc = arg;
    lua_State *b = new_state();
    if (!CHECK_NOT_NULL(b)) return NULL;
    lua_pushinteger(b, (lua_Integer)fc->addr);
    lua_setglobal(b, "addr");
    RUN_LUA(b, "local f = ohm.ffi.cast('i32(i32)', addr)\n"
               "local r, msg, code = f(1)\n"
               "result_code, result_msg = tostring(code), tostring(msg)\n");
    char *code = eval_str(b, "result_code"), *msg = eval_str(b, "result_msg");
    snprintf(fc->code, sizeof fc->code, "%s", code);
    snprintf(fc->msg, sizeof fc->msg, "%s", msg);
    free(code);
    free(msg);
    lua_close(b);
    return NULL;
}

static void test_a_closure_is_refused_on_a_thread_where_its_state_is_not_running(void)
{
    lua_State *a = new_state();
    if (!CHECK_NOT_NULL(a)) return;
    RUN_LUA(a, "calls = 0\n"
               "cb = ohm.ffi.closure('i32(i32)', function(x) calls = calls + 1; return x + 1 end)\n"
               "addr = cb:address()\n");
    foreign_call fc = {.addr = (intptr_t)eval_int(a, "addr"), .result = -1};
    /* in its own state, on its own thread, through an ffi call: it runs */
    CHECK_EQ_INT(eval_int(a, "ohm.ffi.cast('i32(i32)', addr)(1)"), 2);
    CHECK_EQ_INT(eval_int(a, "calls"), 1);
    /* a bare C thread: the C caller gets 0 and the Lua function does not run */
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, call_raw, &fc), 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(fc.result, 0);
    CHECK_EQ_INT(eval_int(a, "calls"), 1);
    /* another state on another thread calling it through its own ffi: nil, message, ECALLBACK */
    CHECK_EQ_INT(pthread_create(&t, NULL, call_from_state_b, &fc), 0);
    pthread_join(t, NULL);
    CHECK(strcmp(fc.code, "ECALLBACK") == 0);
    CHECK_STR_CONTAINS(fc.msg, "not running");
    CHECK_EQ_INT(eval_int(a, "calls"), 1);
    /* and state A is still fine */
    CHECK_EQ_INT(eval_int(a, "ohm.ffi.cast('i32(i32)', addr)(41)"), 42);
    CHECK_EQ_INT(eval_int(a, "calls"), 2);
    lua_close(a);
}

/* The same closure called on A's own thread but outside any ohm call (a C library calling back later, on
 * its own): A is not "running" in ohm, so it is refused as well. */
static void test_a_closure_called_outside_an_ohm_call_is_refused(void)
{
    lua_State *a = new_state();
    if (!CHECK_NOT_NULL(a)) return;
    RUN_LUA(a, "calls = 0\n"
               "cb = ohm.ffi.closure('i32(i32)', function(x) calls = calls + 1; return x end)\n");
    int (*fn)(int) = (int (*)(int))(intptr_t)eval_int(a, "cb:address()");
    CHECK_EQ_INT(fn(9), 0);
    CHECK_EQ_INT(eval_int(a, "calls"), 0);
    CHECK_STR_CONTAINS(ohm_last_error(), "not running");
    lua_close(a);
}

int main(void)
{
    RUN(test_require_in_an_embedded_state);
    RUN(test_states_keep_their_own_leak_settings);
    RUN(test_states_share_a_pool_on_purpose);
    RUN(test_lua_close_frees_everything_and_reports_to_the_handler);
    RUN(test_reports_without_a_handler_go_to_the_warning_function);
    RUN(test_a_spill_that_raises_in_an_embedded_state);
    RUN(test_many_states_on_many_threads);
    RUN(test_a_closure_is_refused_on_a_thread_where_its_state_is_not_running);
    RUN(test_a_closure_called_outside_an_ohm_call_is_refused);
    return check_summary();
}
