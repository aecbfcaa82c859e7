/* The libffi bridge from Lua: ohm.ffi.load(path):func(name, signature) gives a callable C function, and
 * ohm.ffi.closure(signature, fn) a C function pointer that runs a Lua function.
 *
 *   local z = ohm.ffi.load("libz.so.1")
 *   local crc32 = z:func("crc32", "u64(u64, ptr, u32)")
 *   print(crc32(0, buf, #buf))                 -- the buffer is passed zero-copy
 *
 * Arguments: integers, floats, booleans (0/1), strings (for str and cptr: C must not write into a Lua string),
 * buffers (their data pointer; use a slice for an offset; a read-only one only for cptr and str), closures
 * (their code pointer), light userdata (raw addresses) and nil (NULL). A Lua integer is signed 64-bit, and is
 * passed as such: -1 for a u64/size parameter is an error, not 2^64-1; u64 values from 2^63 on go as whole
 * floats (exact up to 2^53). The binding layer checks each against the signature (type, sign, width,
 * read-only-ness) before anything is called. Results: integers (a u64 from 2^63 on wraps into the negative
 * integers, as readu64 does), numbers, light userdata for ptr and cptr (nil for NULL), a copied string for str,
 * nothing for void.
 *
 * A closure runs only while its state runs on the calling thread (inside an ohm call such as the ffi call that
 * leads to it); anywhere else the C caller gets a zero result and the Lua function does not run. An error in
 * the Lua function gives the C caller a zero result too, and the surrounding ffi call returns nil, message,
 * "ECALLBACK" once the C function returns. A closure must stay referenced while C code may call it.
 */
#include "lohm.h"

#include <stdio.h>
#include <string.h>

typedef struct lfflib {
    ohm_ffi_lib *lib;
    bool closed;
} lfflib;

typedef struct lffn {
    ohm_ffi_fn *fn;
    lfflib *lib; /* NULL for a cast */
} lffn;

typedef struct lclosure {
    ohm_ffi_closure *c;
    lstate *st;
} lclosure;

/* ---- checkers: one per type ---- */

static lfflib *checklib(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_FFILIB_MT); }
static lffn *checkfn(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_FFIFN_MT); }
static lclosure *testclosure(lua_State *L, int i) { return luaL_testudata(L, i, LOHM_CLOSURE_MT); }
static lclosure *checkclosure(lua_State *L, int i) { return luaL_checkudata(L, i, LOHM_CLOSURE_MT); }

/* ---- libraries and functions ---- */

/* ohm.ffi.load([path]): dlopen (RTLD_NOW | RTLD_LOCAL); no path = the process itself. */
static int l_load(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    lfflib *l = lua_newuserdatauv(L, sizeof *l, 0);
    l->lib = NULL;
    l->closed = true;
    luaL_setmetatable(L, LOHM_FFILIB_MT);
    l->lib = ohm_ffi_open(path);
    if (!l->lib) return lohm_fail(L, ohm_last_error_code(), "ffi.load");
    l->closed = false;
    return 1;
}

static lfflib *livelib(lua_State *L, int i, const char *fname)
{
    lfflib *l = checklib(L, i);
    if (l->closed) luaL_error(L, "%s: library was closed", fname);
    return l;
}

static lffn *newfn(lua_State *L, int anchor)
{
    anchor = lua_absindex(L, anchor);
    lffn *f = lua_newuserdatauv(L, sizeof *f, 1);
    f->fn = NULL;
    f->lib = NULL;
    luaL_setmetatable(L, LOHM_FFIFN_MT);
    lua_pushvalue(L, anchor);
    lua_setiuservalue(L, -2, 1);
    return f;
}

/* lib:func(symbol, signature) */
static int l_lib_func(lua_State *L)
{
    lfflib *l = livelib(L, 1, "func");
    const char *sym = luaL_checkstring(L, 2), *sig = luaL_checkstring(L, 3);
    lffn *f = newfn(L, 1);
    f->lib = l;
    f->fn = ohm_ffi_func(l->lib, sym, sig);
    if (!f->fn) return lohm_fail(L, ohm_last_error_code(), "func");
    return 1;
}

/* lib:close(): its functions raise afterwards. */
static int l_lib_close(lua_State *L)
{
    lfflib *l = checklib(L, 1);
    if (l->closed) return 0;
    l->closed = true;
    ohm_ffi_close(l->lib);
    l->lib = NULL;
    return 0;
}

static int l_fn_gc(lua_State *L)
{
    lffn *f = lua_touserdata(L, 1);
    ohm_ffi_func_free(f->fn);
    f->fn = NULL;
    return 0;
}

static bool push_closure_code(lua_State *L, int i, ohm_ffi_arg *a);

/* A failed call: the bridge's argument errors name the function already ("memset: argument 3 (u64) out of range:
 * -1") and are raised as they are; anything else gets the function's name in front, as lohm_fail does. */
static int fn_fail(lua_State *L, int rc, const char *name)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ohm_bind_message(rc)); /* a copy: raising allocates, a GC step may reset it */
    size_t n = strlen(name);
    if (ohm_bind_error_of(rc)->raise && strncmp(msg, name, n) == 0 && msg[n] == ':') return luaL_error(L, "%s", msg);
    return lohm_fail(L, rc, name);
}

/* An argument that is a value of the host (a number, a boolean, a raw address) of this kind. */
static inline void set_value(ohm_ffi_arg *a, ohm_ffi_arg_kind kind, ohm_bind_value v)
{
    a->kind = kind;
    a->v = v;
}

/* fn(...): arguments from index 2 on. */
static int l_fn_call(lua_State *L)
{
    lffn *f = checkfn(L, 1);
    if (!f->fn) return luaL_error(L, "ffi function was freed");
    if (f->lib && f->lib->closed) return luaL_error(L, "%s: its library was closed", ohm_ffi_name(f->fn));
    int n = lua_gettop(L) - 1;
    if (n > OHM_FFI_MAX_ARGS) return luaL_error(L, "%s: at most %d arguments", ohm_ffi_name(f->fn), OHM_FFI_MAX_ARGS);
    ohm_ffi_arg args[OHM_FFI_MAX_ARGS];
    memset(args, 0, sizeof args);
    for (int i = 0; i < n; i++) {
        int idx = i + 2;
        ohm_ffi_arg *a = &args[i];
        lbuf *u;
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx))
                set_value(a, OHM_FFI_ARG_INT, (ohm_bind_value){.i = (int64_t)lua_tointeger(L, idx)});
            else set_value(a, OHM_FFI_ARG_FLOAT, (ohm_bind_value){.f = lua_tonumber(L, idx)});
            break;
        case LUA_TBOOLEAN: set_value(a, OHM_FFI_ARG_INT, (ohm_bind_value){.i = lua_toboolean(L, idx)}); break;
        case LUA_TSTRING:
            a->kind = OHM_FFI_ARG_STR;
            a->str = lua_tostring(L, idx); /* valid: the string stays on the stack during the call; the layer
                                              passes it only to str and cptr, which C does not write */
            break;
        case LUA_TNIL: a->kind = OHM_FFI_ARG_NULL; break;
        case LUA_TLIGHTUSERDATA: set_value(a, OHM_FFI_ARG_PTR, (ohm_bind_value){.p = lua_touserdata(L, idx)}); break;
        case LUA_TUSERDATA:
            if ((u = lohm_testbuf(L, idx))) {
                if (!u->b || ohm_buf_check(u->b, u->id) != 0)
                    return luaL_error(L, "%s: argument %d: buffer was released (use after release or close)",
                                      ohm_ffi_name(f->fn), i + 1);
                a->kind = OHM_FFI_ARG_BUF;
                a->buf = u->b;
                a->off = 0;
                break;
            }
            if (push_closure_code(L, idx, a)) break;
            /* fall through */
        default:
            return luaL_error(L, "%s: argument %d: cannot pass a %s to C", ohm_ffi_name(f->fn), i + 1,
                              luaL_typename(L, idx));
        }
    }
    lstate *st = lohm_state(L);
    ohm_bind_value r;
    lua_State *prev = lohm_enter(st, L); /* closures it calls run in this state, on this Lua thread */
    int rc = ohm_ffi_call(f->fn, args, (unsigned)n, &r);
    lohm_leave(st, prev);
    if (rc) return fn_fail(L, rc, ohm_ffi_name(f->fn));
    switch (ohm_ffi_ret_type(f->fn)) {
    case OHM_FFI_VOID: return 0;
    case OHM_FFI_I8:
    case OHM_FFI_I16:
    case OHM_FFI_I32:
    case OHM_FFI_I64: lua_pushinteger(L, (lua_Integer)r.i); break;
    case OHM_FFI_U8:
    case OHM_FFI_U16:
    case OHM_FFI_U32:
    case OHM_FFI_U64:
        lua_pushinteger(L, (lua_Integer)r.u); /* u64 above 2^63 wraps into the sign, as readu64 does */
        break;
    case OHM_FFI_F32:
    case OHM_FFI_F64: lua_pushnumber(L, r.f); break;
    case OHM_FFI_PTR:
    case OHM_FFI_CPTR:
        if (r.p) lua_pushlightuserdata(L, r.p);
        else lua_pushnil(L);
        break;
    case OHM_FFI_STR:
        if (r.p) lua_pushstring(L, r.p);
        else lua_pushnil(L);
        break;
    }
    return 1;
}

static int l_fn_name(lua_State *L)
{
    lffn *f = checkfn(L, 1);
    lua_pushstring(L, f->fn ? ohm_ffi_name(f->fn) : "?");
    return 1;
}

static int l_fn_tostr(lua_State *L)
{
    lffn *f = checkfn(L, 1);
    lua_pushfstring(L, "ohm.ffi.func(%s)", f->fn ? ohm_ffi_name(f->fn) : "?");
    return 1;
}

/* ohm.ffi.cast(signature, address | closure): a callable function for a C function pointer. */
static int l_cast(lua_State *L)
{
    const char *sig = luaL_checkstring(L, 1);
    void *code;
    lclosure *c = testclosure(L, 2);
    if (c) {
        if (!c->c) return luaL_error(L, "cast: closure was freed");
        code = ohm_ffi_closure_code(c->c);
    } else if (lua_type(L, 2) == LUA_TLIGHTUSERDATA) {
        code = lua_touserdata(L, 2);
    } else if (lua_isinteger(L, 2)) {
        code = (void *)(uintptr_t)lua_tointeger(L, 2);
    } else {
        return luaL_typeerror(L, 2, "address or ohm.ffi.closure");
    }
    if (!code) return luaL_error(L, "cast: the function pointer is NULL");
    lffn *f = newfn(L, 2);
    f->fn = ohm_ffi_func_ptr(code, "cast", sig);
    if (!f->fn) return lohm_fail(L, ohm_last_error_code(), "cast");
    return 1;
}

/* ---- closures ---- */

/* Protected: (closure, args, nargs, ret). */
static int closure_protected(lua_State *L)
{
    lclosure *c = lua_touserdata(L, 1);
    const ohm_bind_value *args = lua_touserdata(L, 2);
    unsigned nargs = (unsigned)lua_tointeger(L, 3);
    ohm_bind_value *ret = lua_touserdata(L, 4);
    lohm_push_objects(L, c->st);
    if (lua_rawgetp(L, -1, c) == LUA_TNIL) return luaL_error(L, "its closure was collected");
    lua_getiuservalue(L, -1, 1);
    const ohm_ffi_fn *sig = ohm_ffi_closure_sig(c->c);
    luaL_checkstack(L, (int)nargs + 2, "closure arguments");
    for (unsigned i = 0; i < nargs; i++) {
        switch (ohm_ffi_arg_type(sig, i)) {
        case OHM_FFI_I8:
        case OHM_FFI_I16:
        case OHM_FFI_I32:
        case OHM_FFI_I64: lua_pushinteger(L, (lua_Integer)args[i].i); break;
        case OHM_FFI_U8:
        case OHM_FFI_U16:
        case OHM_FFI_U32:
        case OHM_FFI_U64: lua_pushinteger(L, (lua_Integer)args[i].u); break;
        case OHM_FFI_F32:
        case OHM_FFI_F64: lua_pushnumber(L, args[i].f); break;
        default:
            if (args[i].p) lua_pushlightuserdata(L, args[i].p);
            else lua_pushnil(L);
            break;
        }
    }
    lua_call(L, (int)nargs, 1);
    ohm_ffi_type rt = ohm_ffi_ret_type(sig);
    int t = lua_type(L, -1);
    switch (rt) {
    case OHM_FFI_VOID: break;
    case OHM_FFI_F32:
    case OHM_FFI_F64:
        if (t != LUA_TNUMBER) return luaL_error(L, "a closure returning a number returned a %s", luaL_typename(L, -1));
        ret->f = lua_tonumber(L, -1);
        break;
    case OHM_FFI_PTR:
    case OHM_FFI_CPTR:
    case OHM_FFI_STR:
        if (t == LUA_TNIL) ret->p = NULL;
        else if (t == LUA_TLIGHTUSERDATA) ret->p = lua_touserdata(L, -1);
        else return luaL_error(L, "a closure returning a pointer returned a %s", luaL_typename(L, -1));
        break;
    default: {
        int isint = 0;
        if (t == LUA_TBOOLEAN) {
            ret->i = lua_toboolean(L, -1);
            break;
        }
        ret->i = (int64_t)lua_tointegerx(L, -1, &isint);
        if (!isint) return luaL_error(L, "a closure returning an integer returned a %s", luaL_typename(L, -1));
        break;
    }
    }
    return 0;
}

static int closure_cb(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret)
{
    lclosure *c = ctx;
    lua_State *L = c->st->L;
    if (!L || !lua_checkstack(L, 8)) return ohm_bind_fail(OHM_ECALLBACK, "no Lua stack to run the closure on");
    lua_pushlightuserdata(L, c);
    lua_pushlightuserdata(L, (void *)args);
    lua_pushinteger(L, (lua_Integer)nargs);
    lua_pushlightuserdata(L, ret);
    return lohm_pcall(L, closure_protected, 4, 0, "Lua function");
}

/* ohm.ffi.closure(signature, fn) */
static int l_closure(lua_State *L)
{
    lstate *st = lohm_state(L);
    const char *sig = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lclosure *c = lua_newuserdatauv(L, sizeof *c, 1);
    c->c = NULL;
    c->st = st;
    luaL_setmetatable(L, LOHM_CLOSURE_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    lohm_push_objects(L, st);
    lua_pushvalue(L, -2);
    lua_rawsetp(L, -2, c);
    lua_pop(L, 1);
    c->c = ohm_ffi_closure_create(st->host, sig, closure_cb, c);
    if (!c->c) return lohm_fail(L, ohm_last_error_code(), "closure");
    return 1;
}

static bool push_closure_code(lua_State *L, int i, ohm_ffi_arg *a)
{
    lclosure *c = testclosure(L, i);
    if (!c) return false;
    if (!c->c) luaL_error(L, "argument %d: closure was freed", i - 1);
    a->kind = OHM_FFI_ARG_PTR;
    a->v.p = ohm_ffi_closure_code(c->c);
    return true;
}

static int l_closure_free(lua_State *L)
{
    lclosure *c = checkclosure(L, 1);
    ohm_ffi_closure_free(c->c);
    c->c = NULL;
    return 0;
}

/* closure:ptr(): its code as a light userdata; closure:address(): as an integer. */
static int l_closure_ptr(lua_State *L)
{
    lclosure *c = checkclosure(L, 1);
    if (!c->c) return luaL_error(L, "ptr: closure was freed");
    lua_pushlightuserdata(L, ohm_ffi_closure_code(c->c));
    return 1;
}

static int l_closure_address(lua_State *L)
{
    lclosure *c = checkclosure(L, 1);
    if (!c->c) return luaL_error(L, "address: closure was freed");
    lua_pushinteger(L, (lua_Integer)(uintptr_t)ohm_ffi_closure_code(c->c));
    return 1;
}

static int l_closure_tostr(lua_State *L)
{
    lclosure *c = checkclosure(L, 1);
    if (c->c) lua_pushfstring(L, "ohm.ffi.closure: %p", ohm_ffi_closure_code(c->c));
    else lua_pushliteral(L, "ohm.ffi.closure(freed)");
    return 1;
}

static int l_lib_tostr(lua_State *L)
{
    lfflib *l = checklib(L, 1);
    lua_pushstring(L, l->closed ? "ohm.ffi.lib(closed)" : "ohm.ffi.lib");
    return 1;
}

void lohm_open_ffi(lua_State *L)
{
    static const luaL_Reg lib_methods[] = {{"func", l_lib_func}, {"close", l_lib_close}, {NULL, NULL}};
    static const luaL_Reg lib_meta[] = {
        {"__gc", l_lib_close},
        {"__close", l_lib_close},
        {"__tostring", l_lib_tostr},
        {NULL, NULL},
    };
    static const luaL_Reg fn_methods[] = {{"name", l_fn_name}, {NULL, NULL}};
    static const luaL_Reg fn_meta[] = {
        {"__gc", l_fn_gc},
        {"__call", l_fn_call},
        {"__tostring", l_fn_tostr},
        {NULL, NULL},
    };
    static const luaL_Reg closure_methods[] = {
        {"ptr", l_closure_ptr},
        {"address", l_closure_address},
        {"free", l_closure_free},
        {NULL, NULL},
    };
    static const luaL_Reg closure_meta[] = {
        {"__gc", l_closure_free},
        {"__tostring", l_closure_tostr},
        {NULL, NULL},
    };
    lohm_new_type(L, LOHM_FFILIB_MT, lib_meta, lib_methods);
    lohm_new_type(L, LOHM_FFIFN_MT, fn_meta, fn_methods);
    lohm_new_type(L, LOHM_CLOSURE_MT, closure_meta, closure_methods);
    static const luaL_Reg funcs[] = {
        {"load", l_load},
        {"cast", l_cast},
        {"closure", l_closure},
        {NULL, NULL},
    };
    lua_newtable(L);
    lohm_setfuncs(L, funcs);
    lua_setfield(L, -2, "ffi");
}
