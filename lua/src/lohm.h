/* The Lua 5.4 module's inside: what its files share. Nothing here is visible outside ohm.so, which exports only
 * luaopen_ohm.
 *
 * State. Everything belongs to the lua_State that loaded the module: an lstate userdata, kept in the registry
 * and passed to every C function of the module as upvalue 1 (as lua-cjson passes its config), holds the
 * state's ohm_bind_host (OHM_BIND_OWNER_THREAD), its pool and its leak settings. There are no C globals, so
 * states on different threads share nothing unless they share a pool on purpose. Upvalue 2 of every function
 * is the buffer metatable, so the hot checker compares one pointer instead of looking a name up.
 *
 * Callbacks. Calls that can call back into Lua (an acquire's spill or eviction, a GC finalizer's leak report, a
 * closure called from C) run between lohm_enter and lohm_leave: the thread is marked as running the state's
 * host (so the binding layer lets callbacks through) and st->L names the Lua thread (coroutine) making the
 * call, which is the one the callback runs on. No Lua error may be raised between enter and leave: a longjmp
 * would skip the leave. Callbacks therefore run their Lua code under lua_pcall (lohm_pcall) and turn an error
 * into ohm_bind_fail(OHM_ECALLBACK, message) and a negative return.
 *
 * Errors. lohm_fail follows the binding layer's table: a programmer error (EINVAL, ESTATE, ERANGE) raises a
 * Lua error; a runtime failure (ENOMEM, ELIMIT, ESYS, ECALLBACK, ...) returns nil, message, name. Native memory
 * is always freed or owned by a userdata before anything can raise.
 */
#ifndef OHM_LUA_LOHM_H
#define OHM_LUA_LOHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "ohm.h"
#include "ohm_bind.h"

#define LOHM_STATE_MT    "ohm.state"
#define LOHM_BUFFER_MT   "ohm.buffer"
#define LOHM_POOL_MT     "ohm.pool"
#define LOHM_MM_MT       "ohm.mm"
#define LOHM_TASK_MT     "ohm.task"
#define LOHM_CONSUMER_MT "ohm.consumer"
#define LOHM_FFILIB_MT   "ohm.ffi.lib"
#define LOHM_FFIFN_MT    "ohm.ffi.func"
#define LOHM_CLOSURE_MT  "ohm.ffi.closure"

/* The largest buffer size the module accepts: 2^47 bytes (128 TiB) is the whole user address space of x86-64 and
 * of 4-level-page arm64, so a larger size is a programmer error (raised), not an allocation failure (returned).
 * Below it, what the OS or a pool's cap refuses is ENOMEM. */
#define LOHM_MAX_SIZE ((uint64_t)1 << 47)

/* Uservalue slots of the state userdata. */
enum { ST_UV_HANDLER = 1, ST_UV_OBJECTS, ST_UV_POOL, ST_UV_COUNT = ST_UV_POOL };

typedef struct lstate {
    ohm_bind_host *host;
    ohm_pool *pool;               /* the state's pool: ohm.alloc's default */
    bool own_pool;                /* created here (destroyed at lua_close) or attached (the host's) */
    bool closed;                  /* lua_close has torn the state down */
    lua_State *L;                 /* the Lua thread inside the current lohm_enter, NULL outside */
    uint64_t leak_reports;        /* reports received */
    uint64_t leak_handler_errors; /* reports whose Lua handler raised */
    char leak_last_error[256];    /* the last error a Lua leak handler raised */
} lstate;

/* A buffer userdata. The handle is checked against id (ohm_buf_check) on every use: a released handle's
 * memory is reused for later buffers, and the id tells them apart. Uservalue 1 anchors what the buffer's
 * memory depends on: the parent userdata of a slice (a plain slice's count owner must not be collected first; a
 * retained slice keeps its parent reachable as in Java), the pool userdata of a buffer from a pool made with
 * ohm.pool{}, the consumer of a page. */
#define LBUF_BORROWED 0x1 /* lent to a callback: no retain/release/close; invalid after the callback */
#define LBUF_MAGIC    UINT64_C(0x6f686d2e62756621) /* "ohm.buf!": how the checker recognizes a buffer userdata */
typedef struct lbuf {
    uint64_t magic;
    ohm_buf *b;
    uint64_t id;
    unsigned flags;
} lbuf;

#define lohm_state(L) ((lstate *)lua_touserdata((L), lua_upvalueindex(1)))

/* ---- lohm.c: state, errors, helpers ---- */

/* Marks the calling thread as running st's host, with L the Lua thread callbacks run on; returns the previous
 * st->L for lohm_leave. Nothing may raise a Lua error until the matching leave. */
lua_State *lohm_enter(lstate *st, lua_State *L);
void lohm_leave(lstate *st, lua_State *prev);
/* Raises (programmer errors) or pushes nil, "what: message", name and returns 3 (runtime failures), for a
 * failure with code on this thread. */
int lohm_fail(lua_State *L, int code, const char *what);
/* Registers funcs with the two module upvalues (state and buffer metatable) into the table at the top. */
void lohm_setfuncs(lua_State *L, const luaL_Reg *funcs);
/* Registers a userdata type: metatable tname with the metamethods meta and __index = a table of methods. */
void lohm_new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods);
/* Checks that argument i is a non-negative integer no larger than max (0 = SIZE_MAX): raises otherwise. */
size_t lohm_checksize(lua_State *L, int i, uint64_t max, const char *fname, const char *what);
/* Argument i as a memory mode ("off_heap" default, "on_heap"). */
ohm_mem_mode lohm_checkmode(lua_State *L, int i, const char *fname);
/* A uint64_t counter of a stats struct and the Lua field it becomes: the stats methods are tables of these. */
typedef struct lohm_counter {
    const char *name;
    size_t offset;
} lohm_counter;
/* A row of a counter list: the field's name as the Lua key, and where it is in a stats struct of type. */
/* clang-format off */
#define LOHM_COUNTER(type, f) { #f, offsetof(type, f) }
/* clang-format on */
/* Sets field name to the counter's value in the table at the top, for each of the n counters of the struct s. */
void lohm_set_counters(lua_State *L, const void *s, const lohm_counter *counters, size_t n);
#define LOHM_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))
/* Runs fn(L) with nargs arguments from the stack top under lua_pcall, from a callback between lohm_enter and
 * lohm_leave. On an error, sets this thread's ohm error to OHM_ECALLBACK with "<what>: <the Lua message>" and
 * returns OHM_ECALLBACK (nresults are not pushed); else 0 with nresults values on the stack. Never raises. */
int lohm_pcall(lua_State *L, lua_CFunction fn, int nargs, int nresults, const char *what);
/* Pushes the state's weak table of live userdata by address (consumers, closures: callbacks find their
 * userdata from the C pointer they get). */
void lohm_push_objects(lua_State *L, lstate *st);
/* Pushes the state userdata itself from the registry. */
void lohm_push_state(lua_State *L);
/* The state, from upvalue 1 in module functions or from the registry in callbacks (light C functions). */
lstate *lohm_getstate(lua_State *L);

/* ---- lbuf.c: buffers, mapped files, shared memory ---- */

void lohm_open_buffers(lua_State *L); /* module functions and the buffer metatable; table at top */
/* Argument i as a buffer userdata (type only), or raises "bad argument #i to 'fname' (ohm.buffer expected)". */
lbuf *lohm_checkbuf(lua_State *L, int i);
/* Argument i as a live buffer handle, or raises ("fname: buffer was released"). */
ohm_buf *lohm_livebuf(lua_State *L, int i, const char *fname);
/* The buffer userdata at i, or NULL if i is not one (no error). */
lbuf *lohm_testbuf(lua_State *L, int i);
/* Pushes a new buffer userdata (empty handle) with the buffer metatable; may raise (memory). */
lbuf *lohm_newbuf(lua_State *L);
/* Gives b to the userdata at the top (which now owns it) and, if the leak detector tracks b, attaches the
 * Lua traceback as its creation site, prefixed with the state's tag (lohm_site_tag). */
void lohm_setbuf(lua_State *L, lbuf *u, ohm_buf *b);

/* ---- lpool.c: pools ---- */

void lohm_open_pools(lua_State *L); /* ohm.pool; table at top */
/* Argument i as a pool (userdata) or the state's pool for none/nil; *anchor is true when buffers from it must
 * anchor the userdata at i (a pool made by ohm.pool{} that the GC may destroy). */
ohm_pool *lohm_optpool(lua_State *L, int i, bool *anchor);

/* ---- lleak.c: the leak detector ---- */

void lohm_open_leak(lua_State *L); /* ohm.leak; table at top */
/* The host's leak callback (ohm_bind_host_ops.leak). */
void lohm_leak_report(void *host_arg, const ohm_bind_leak *report);
/* "ohm state 0x...:": how a tracked buffer's site starts, so a checkpoint reports only its state's buffers. */
void lohm_site_tag(lstate *st, char *out, size_t cap);
/* Level names: "off", "simple", "advanced", "paranoid". */
int lohm_checklevel(lua_State *L, int i, const char *fname);
const char *lohm_level_name(ohm_leak_level level);

/* ---- lscope.c: leak scopes ---- */

void lohm_open_scopes(lua_State *L); /* ohm.leakscope, ohm.checkleaks; table at top */
/* The Lua line ("file.lua:12") a buffer's site names: its traceback's first Lua frame; "?" if none. Returns
 * the length, as snprintf. */
size_t lohm_site_line(const char *site, char *out, size_t cap);

/* ---- lmm.c: the memory manager ---- */

void lohm_open_mm(lua_State *L); /* ohm.mm; table at top */

/* ---- lffi.c: the libffi bridge ---- */

void lohm_open_ffi(lua_State *L); /* ohm.ffi; table at top */

#endif
