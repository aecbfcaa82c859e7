/* Buffers: the Luau buffer API over reference-counted ohm buffers, mapped files and shared memory.
 *
 * Every function works both ways, b:readu32(4) and ohm.readu32(b, 4): the metatable's __index is a table of
 * the same C functions the module exports. Offsets are 0-based, byte order little-endian unless the name ends
 * in "be". Integers are Lua integers: readu64/readi64 give the same 64 bits (u64 above 2^63 reads negative),
 * writes truncate to the width (two's complement, as Luau does). All the checking (liveness, overflow, bounds)
 * is the binding layer's (ohm_bind_*); this file turns its codes into Lua errors.
 *
 * Lifetime: a buffer userdata owns one reference of its buffer (a plain slice shares its parent's). release
 * and close give it back; __gc is the Cleaner: a buffer still referenced when the userdata is collected is
 * reclaimed by the core, which reports it as a leak (with the Lua traceback of its creation when the leak
 * detector tracked it).
 */
#include "lohm.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the checker ---- */

lbuf *lohm_testbuf(lua_State *L, int i)
{
    /* The hot path of every buffer function, so two API calls instead of luaL_testudata's five: a full userdata
     * (light ones have length 0) of exactly our size whose first word is our magic. Lua code cannot make a
     * userdata, and no other library's can pass for one by accident: it would need this size and this 64-bit
     * value where the buffer handle's magic is. */
    lbuf *u = lua_touserdata(L, i);
    if (u && lua_rawlen(L, i) == sizeof *u && u->magic == LBUF_MAGIC) return u;
    return NULL;
}

lbuf *lohm_checkbuf(lua_State *L, int i)
{
    lbuf *u = lohm_testbuf(L, i);
    if (!u) luaL_typeerror(L, i, LOHM_BUFFER_MT);
    return u;
}

ohm_buf *lohm_livebuf(lua_State *L, int i, const char *fname)
{
    lbuf *u = lohm_checkbuf(L, i);
    if (__builtin_expect(!u->b || ohm_buf_check(u->b, u->id) != 0, 0))
        luaL_error(L, "%s: buffer was released (use after release or close)", fname);
    return u->b;
}

lbuf *lohm_newbuf(lua_State *L)
{
    lbuf *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->magic = LBUF_MAGIC;
    u->b = NULL;
    u->id = 0;
    u->flags = 0;
    if (lua_type(L, lua_upvalueindex(2)) == LUA_TTABLE) {
        lua_pushvalue(L, lua_upvalueindex(2));
        lua_setmetatable(L, -2);
    } else {
        luaL_setmetatable(L, LOHM_BUFFER_MT);
    }
    return u;
}

void lohm_setbuf(lua_State *L, lbuf *u, ohm_buf *b)
{
    u->b = b;
    u->id = ohm_buf_id(b);
    if (!ohm_buf_tracked(b)) return;
    /* The site starts with the state's tag: a checkpoint reports only the buffers its own state made. */
    char tag[64], head[96];
    lohm_site_tag(lohm_getstate(L), tag, sizeof tag);
    snprintf(head, sizeof head, "%s ohm.buffer(%zu)", tag, ohm_buf_size(b));
    luaL_traceback(L, L, head, 1);
    ohm_buf_set_site(b, lua_tostring(L, -1));
    lua_pop(L, 1);
}

/* An access the binding layer refused. Outside the buffer, the message is Luau's with the layer's detail after
 * it ("readi8: buffer access out of bounds (offset 1024 + length 1, size 1024)"); anything else is lohm_fail's. */
__attribute__((cold)) static int access_fail(lua_State *L, int rc, const char *fname)
{
    if (rc != OHM_ERANGE) return lohm_fail(L, rc, fname);
    /* A copy: the detail is thread-local and a finalizer run by the GC inside luaL_error could replace it. */
    char detail[256];
    snprintf(detail, sizeof detail, "%s", ohm_bind_message(rc));
    int64_t off, len;
    uint64_t size;
    if (sscanf(detail, "offset %" SCNd64 " + length %" SCNd64 " exceeds buffer size %" SCNu64, &off, &len, &size) == 3)
        snprintf(detail, sizeof detail, "offset %" PRId64 " + length %" PRId64 ", size %" PRIu64, off, len, size);
    return luaL_error(L, "%s: buffer access out of bounds (%s)", fname, detail);
}

/* The count argument i, or when it is absent the bytes from off to the end of a size-byte buffer. An offset
 * outside the buffer defaults it to 0, so the range check blames the offset and not a count nobody passed. */
static lua_Integer optcount(lua_State *L, int i, size_t size, lua_Integer off)
{
    if (!lua_isnoneornil(L, i)) return luaL_checkinteger(L, i);
    return off >= 0 && (uint64_t)off <= size ? (lua_Integer)(size - (size_t)off) : 0;
}

/* A write that failed. Read-only memory (a read-only mapping or shared memory, or sealed) gets a message of its
 * own: the core's says "sealed" for all of it. */
__attribute__((cold)) static int write_fail(lua_State *L, const ohm_buf *b, int rc, const char *fname)
{
    if (rc == OHM_ESTATE && ohm_buf_readonly(b))
        return luaL_error(L, "%s: buffer is read-only (a read-only mapping or shared memory, or sealed)", fname);
    return access_fail(L, rc, fname);
}

static void check_owned(lua_State *L, lbuf *u, const char *fname)
{
    if (u->flags & LBUF_BORROWED)
        luaL_error(L,
                   "%s: this buffer is lent to a callback and not owned by it (keep a copy with "
                   "retainedslice)",
                   fname);
}

/* ---- creation ---- */

static int opt_bool_field(lua_State *L, int t, const char *key, int def)
{
    int r = def;
    if (lua_getfield(L, t, key) != LUA_TNIL) r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* The pool option of the options table at t: p's pool, or def without one. When buffers from it must anchor p (a
 * pool made by ohm.pool{}), p stays on the stack at *anchor_idx; else *anchor_idx is 0. */
static ohm_pool *opt_pool_field(lua_State *L, int t, ohm_pool *def, int *anchor_idx)
{
    *anchor_idx = 0;
    if (lua_getfield(L, t, "pool") == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    bool anchor = false;
    ohm_pool *pool = lohm_optpool(L, lua_gettop(L), &anchor);
    if (anchor) *anchor_idx = lua_gettop(L);
    return pool;
}

/* Gives b to the new buffer userdata u at the top, which anchors the pool userdata at anchor_idx (0: none). */
static int push_new_buf(lua_State *L, lbuf *u, ohm_buf *b, int anchor_idx)
{
    if (anchor_idx) {
        lua_pushvalue(L, anchor_idx);
        lua_setiuservalue(L, -2, 1);
    }
    lohm_setbuf(L, u, b);
    return 1;
}

/* ohm.alloc(size [, {zero = true, pool = p}]) and ohm.create: a zero-filled buffer, as Luau's buffer.create.
 * fname is the name the caller used, for the messages. */
static int alloc(lua_State *L, const char *fname)
{
    lstate *st = lohm_state(L);
    size_t n = lohm_checksize(L, 1, LOHM_MAX_SIZE, fname, "size");
    bool zero = true;
    ohm_pool *pool = st->pool;
    int anchor_idx = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        zero = opt_bool_field(L, 2, "zero", 1);
        pool = opt_pool_field(L, 2, pool, &anchor_idx);
    }
    if (st->closed) return luaL_error(L, "%s: the lua_State is closing", fname);
    lbuf *u = lohm_newbuf(L);
    ohm_buf *b = zero ? ohm_buf_alloc_zeroed(pool, n) : ohm_buf_alloc(pool, n);
    if (!b) return lohm_fail(L, ohm_last_error_code(), fname);
    return push_new_buf(L, u, b, anchor_idx);
}

static int l_alloc(lua_State *L) { return alloc(L, "alloc"); }
static int l_create(lua_State *L) { return alloc(L, "create"); }

/* ohm.fromstring(s [, opts]): a buffer holding a copy of s. */
static int l_fromstring(lua_State *L)
{
    lstate *st = lohm_state(L);
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    ohm_pool *pool = st->pool;
    int anchor_idx = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        pool = opt_pool_field(L, 2, pool, &anchor_idx);
    }
    if (st->closed) return luaL_error(L, "fromstring: the lua_State is closing");
    lbuf *u = lohm_newbuf(L);
    ohm_buf *b = ohm_buf_alloc(pool, len);
    if (!b) return lohm_fail(L, ohm_last_error_code(), "fromstring");
    if (len) memcpy(ohm_buf_data(b), s, len);
    return push_new_buf(L, u, b, anchor_idx);
}

static int l_isbuffer(lua_State *L)
{
    lua_pushboolean(L, lohm_testbuf(L, 1) != NULL);
    return 1;
}

/* ---- typed access ---- */

/* luaL_checkinteger without its extra call on the hot path (the same conversions: lua_tointegerx). */
static inline lua_Integer checkint(lua_State *L, int i)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    return ok ? v : luaL_checkinteger(L, i);
}

static int read_typed(lua_State *L, ohm_bind_type t, int order, const char *fname)
{
    ohm_buf *b = lohm_livebuf(L, 1, fname);
    lua_Integer off = checkint(L, 2);
    ohm_bind_value v;
    int rc = ohm_bind_get(b, off, t, order, &v);
    if (__builtin_expect(rc != 0, 0)) return access_fail(L, rc, fname);
    switch (t) {
    case OHM_BT_F32:
    case OHM_BT_F64: lua_pushnumber(L, v.f); break;
    case OHM_BT_I8:
    case OHM_BT_I16:
    case OHM_BT_I32: lua_pushinteger(L, (lua_Integer)v.i); break;
    default: lua_pushinteger(L, (lua_Integer)v.u); break; /* u64 keeps its 64 bits: it wraps into the sign */
    }
    return 1;
}

static int write_typed(lua_State *L, ohm_bind_type t, int order, const char *fname)
{
    ohm_buf *b = lohm_livebuf(L, 1, fname);
    lua_Integer off = checkint(L, 2);
    ohm_bind_value v;
    if (t == OHM_BT_F32 || t == OHM_BT_F64) v.f = luaL_checknumber(L, 3);
    else v.i = (int64_t)checkint(L, 3);
    int rc = ohm_bind_set(b, off, t, order, v);
    if (__builtin_expect(rc != 0, 0)) return write_fail(L, b, rc, fname);
    return 0;
}

#define ACCESSORS(name, T, ORDER)                                                           \
    static int l_read##name(lua_State *L) { return read_typed(L, T, ORDER, "read" #name); } \
    static int l_write##name(lua_State *L) { return write_typed(L, T, ORDER, "write" #name); }

ACCESSORS(i8, OHM_BT_I8, OHM_BIND_LE)
ACCESSORS(u8, OHM_BT_U8, OHM_BIND_LE)
ACCESSORS(i16, OHM_BT_I16, OHM_BIND_LE)
ACCESSORS(u16, OHM_BT_U16, OHM_BIND_LE)
ACCESSORS(i32, OHM_BT_I32, OHM_BIND_LE)
ACCESSORS(u32, OHM_BT_U32, OHM_BIND_LE)
ACCESSORS(i64, OHM_BT_I64, OHM_BIND_LE)
ACCESSORS(u64, OHM_BT_U64, OHM_BIND_LE)
ACCESSORS(f32, OHM_BT_F32, OHM_BIND_LE)
ACCESSORS(f64, OHM_BT_F64, OHM_BIND_LE)
ACCESSORS(i16be, OHM_BT_I16, OHM_BIND_BE)
ACCESSORS(u16be, OHM_BT_U16, OHM_BIND_BE)
ACCESSORS(i32be, OHM_BT_I32, OHM_BIND_BE)
ACCESSORS(u32be, OHM_BT_U32, OHM_BIND_BE)
ACCESSORS(i64be, OHM_BT_I64, OHM_BIND_BE)
ACCESSORS(u64be, OHM_BT_U64, OHM_BIND_BE)
ACCESSORS(f32be, OHM_BT_F32, OHM_BIND_BE)
ACCESSORS(f64be, OHM_BT_F64, OHM_BIND_BE)

/* readbits(b, bitOffset, bitCount): Luau allows 0..32 bits; here up to 64 (the result a Lua integer). */
static int checkbitcount(lua_State *L, int i)
{
    lua_Integer n = luaL_checkinteger(L, i);
    if (n < 0 || n > 64) luaL_argerror(L, i, lua_pushfstring(L, "bit count %I is outside [0, 64]", (LUAI_UACINT)n));
    return (int)n;
}

static int l_readbits(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "readbits");
    lua_Integer off = luaL_checkinteger(L, 2);
    int count = checkbitcount(L, 3);
    uint64_t v;
    int rc = ohm_bind_get_bits(b, off, count, &v);
    if (rc) return access_fail(L, rc, "readbits");
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int l_writebits(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "writebits");
    lua_Integer off = luaL_checkinteger(L, 2);
    int count = checkbitcount(L, 3);
    uint64_t v = (uint64_t)luaL_checkinteger(L, 4);
    int rc = ohm_bind_set_bits(b, off, count, v);
    if (rc) return write_fail(L, b, rc, "writebits");
    return 0;
}

/* ---- strings and bulk ---- */

static int l_len(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "len");
    lua_pushinteger(L, (lua_Integer)ohm_buf_size(b));
    return 1;
}

/* readstring(b, offset, count) */
static int l_readstring(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "readstring");
    lua_Integer off = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
    void *p;
    int rc = ohm_bind_span(b, off, count, &p);
    if (rc) return access_fail(L, rc, "readstring");
    lua_pushlstring(L, p, (size_t)count); /* b is argument 1: reachable, so no finalizer can free it meanwhile */
    return 1;
}

/* writestring(b, offset, s [, count]): count defaults to #s and may not exceed it. */
static int l_writestring(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "writestring");
    lua_Integer off = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    lua_Integer count = luaL_optinteger(L, 4, (lua_Integer)len);
    if (count < 0) return luaL_argerror(L, 4, lua_pushfstring(L, "count %I is negative", (LUAI_UACINT)count));
    if ((uint64_t)count > len)
        return luaL_argerror(
            L, 4, lua_pushfstring(L, "count %I exceeds the string's length %I", (LUAI_UACINT)count, (LUAI_UACINT)len));
    int rc = ohm_bind_write(b, off, s, count);
    if (rc) return write_fail(L, b, rc, "writestring");
    return 0;
}

/* tostring(b): the whole buffer as a string. */
static int l_tostring(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "tostring");
    void *p;
    size_t n = ohm_buf_size(b);
    int rc = ohm_bind_span(b, 0, (int64_t)n, &p);
    if (rc) return access_fail(L, rc, "tostring");
    lua_pushlstring(L, p, n);
    return 1;
}

/* copy(target, targetOffset, source [, sourceOffset = 0 [, count = #source - sourceOffset]]) */
static int l_copy(lua_State *L)
{
    ohm_buf *dst = lohm_livebuf(L, 1, "copy");
    lua_Integer doff = luaL_checkinteger(L, 2);
    ohm_buf *src = lohm_livebuf(L, 3, "copy");
    lua_Integer soff = luaL_optinteger(L, 4, 0);
    lua_Integer count = optcount(L, 5, ohm_buf_size(src), soff);
    int rc = ohm_bind_copy(dst, doff, src, soff, count);
    if (rc) return write_fail(L, dst, rc, "copy");
    return 0;
}

/* fill(b, offset, value [, count = #b - offset]): value is truncated to a byte, as in Luau. */
static int l_fill(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "fill");
    lua_Integer off = luaL_checkinteger(L, 2);
    lua_Integer value = luaL_checkinteger(L, 3);
    lua_Integer count = optcount(L, 4, ohm_buf_size(b), off);
    int rc = ohm_bind_fill(b, off, (uint8_t)value, count);
    if (rc) return write_fail(L, b, rc, "fill");
    return 0;
}

/* find(b, needle [, offset = 0 [, count]]): the offset of needle's first occurrence, or nil. */
static int l_find(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "find");
    size_t nlen;
    const char *needle = luaL_checklstring(L, 2, &nlen);
    lua_Integer off = luaL_optinteger(L, 3, 0);
    lua_Integer count = optcount(L, 4, ohm_buf_size(b), off);
    int64_t at = ohm_bind_find(b, off, count, needle, nlen);
    if (at < -1) return access_fail(L, (int)at, "find");
    if (at == -1) luaL_pushfail(L);
    else lua_pushinteger(L, (lua_Integer)at);
    return 1;
}

/* compare(a, b): -1, 0 or 1 over the unsigned bytes, then the shorter first. equals(a, b): the same bytes. */
static int compare(lua_State *L, const char *fname, bool equals)
{
    ohm_buf *a = lohm_livebuf(L, 1, fname), *b = lohm_livebuf(L, 2, fname);
    int cmp;
    int rc = ohm_bind_compare_all(a, b, &cmp);
    if (rc) return lohm_fail(L, rc, fname);
    if (equals) lua_pushboolean(L, cmp == 0);
    else lua_pushinteger(L, cmp);
    return 1;
}

static int l_compare(lua_State *L) { return compare(L, "compare", false); }
static int l_equals(lua_State *L) { return compare(L, "equals", true); }

/* ---- slices and reference counts ---- */

/* slice(b, offset [, count = #b - offset]): shares b's memory and b's count (Netty's slice).
 * retainedslice(b [, offset [, count]]): its own count of 1, holding one reference on b until released.
 * Either anchors b in uservalue 1. A plain slice needs it for the memory: the parent may not be collected (and
 * reclaimed) while its slice is in use. A retained slice holds a reference, but as in Java the parent stays
 * reachable from its slice: a page's parent anchors its consumer, task and manager, which must outlive the slice. */
static int slice(lua_State *L, const char *fname, bool retained)
{
    ohm_buf *b = lohm_livebuf(L, 1, fname);
    lua_Integer off = luaL_optinteger(L, 2, 0);
    lua_Integer count = optcount(L, 3, ohm_buf_size(b), off);
    int rc = ohm_bind_range(ohm_buf_size(b), off, count);
    if (rc) return access_fail(L, rc, fname);
    lbuf *u = lohm_newbuf(L);
    ohm_buf *s =
        retained ? ohm_buf_retained_slice(b, (size_t)off, (size_t)count) : ohm_buf_slice(b, (size_t)off, (size_t)count);
    if (!s) return lohm_fail(L, ohm_last_error_code(), fname);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    u->b = s;
    u->id = ohm_buf_id(s);
    return 1;
}

static int l_slice(lua_State *L) { return slice(L, "slice", false); }
static int l_retainedslice(lua_State *L) { return slice(L, "retainedslice", true); }

static uint32_t checkcount(lua_State *L, int i)
{
    lua_Integer n = luaL_optinteger(L, i, 1);
    if (n <= 0 || n > (lua_Integer)UINT32_MAX)
        luaL_argerror(L, i, lua_pushfstring(L, "count %I must be in 1..4294967295", (LUAI_UACINT)n));
    return (uint32_t)n;
}

/* The buffer retain and release act on: owned (not lent to a callback) and live. */
static ohm_buf *owned_buf(lua_State *L, const char *fname)
{
    check_owned(L, lohm_checkbuf(L, 1), fname);
    return lohm_livebuf(L, 1, fname);
}

/* retain(b [, n = 1]): returns b. */
static int l_retain(lua_State *L)
{
    ohm_buf *b = owned_buf(L, "retain");
    uint32_t n = checkcount(L, 2);
    int rc = ohm_buf_retain(b, n);
    if (rc) return lohm_fail(L, rc, "retain");
    lua_settop(L, 1);
    return 1;
}

/* release(b [, n = 1]): true when this call freed the memory. */
static int l_release(lua_State *L)
{
    ohm_buf *b = owned_buf(L, "release");
    uint32_t n = checkcount(L, 2);
    int rc = ohm_buf_release(b, n);
    if (rc < 0) return lohm_fail(L, rc, "release");
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* refcount(b): 0 once released. */
static int l_refcount(lua_State *L)
{
    lbuf *u = lohm_checkbuf(L, 1);
    bool live = u->b && ohm_buf_check(u->b, u->id) == 0;
    lua_pushinteger(L, live ? (lua_Integer)ohm_buf_refcnt(u->b) : 0);
    return 1;
}

/* close(b) and __close: releases one reference if the buffer is still live; closing a released (or lent)
 * buffer does nothing, as Closeable.close does, so a <close> variable may also be released by hand. */
static int l_close(lua_State *L)
{
    lbuf *u = lohm_checkbuf(L, 1);
    if ((u->flags & LBUF_BORROWED) || !u->b || ohm_buf_check(u->b, u->id) != 0) return 0;
    ohm_buf_release(u->b, 1);
    return 0;
}

/* __gc: the Cleaner. A no-op for a released handle or a stale id. */
static int l_gc(lua_State *L)
{
    lstate *st = lohm_state(L);
    lbuf *u = lua_touserdata(L, 1);
    if (!u->b || (u->flags & LBUF_BORROWED) || st->closed) return 0;
    if (ohm_buf_check(u->b, u->id) != 0) return 0; /* released (the usual case): nothing to reclaim */
    lua_State *prev = lohm_enter(st, L);           /* the leak report goes to this state's handler */
    ohm_buf_reclaim(u->b, u->id);
    lohm_leave(st, prev);
    u->b = NULL;
    return 0;
}

/* ---- identity, metamethods ---- */

static int l_tostr(lua_State *L)
{
    lbuf *u = lohm_checkbuf(L, 1);
    if (!u->b || ohm_buf_check(u->b, u->id) != 0) lua_pushliteral(L, "ohm.buffer(released)");
    else lua_pushfstring(L, "ohm.buffer(%I): %p", (LUAI_UACINT)ohm_buf_size(u->b), ohm_buf_data(u->b));
    return 1;
}

/* __eq: the same memory (data and size), like two Netty views of one region; Luau compares by identity, and
 * content equality is equals(). A released buffer equals only itself. */
static int l_eq(lua_State *L)
{
    lbuf *a = lohm_testbuf(L, 1), *b = lohm_testbuf(L, 2);
    bool eq = false;
    if (a && b && a->b && b->b && ohm_buf_check(a->b, a->id) == 0 && ohm_buf_check(b->b, b->id) == 0)
        eq = ohm_buf_data(a->b) == ohm_buf_data(b->b) && ohm_buf_size(a->b) == ohm_buf_size(b->b);
    lua_pushboolean(L, eq);
    return 1;
}

static int l_id(lua_State *L)
{
    lbuf *u = lohm_checkbuf(L, 1);
    bool live = u->b && ohm_buf_check(u->b, u->id) == 0;
    lua_pushinteger(L, live ? (lua_Integer)u->id : 0);
    return 1;
}

static int l_origin(lua_State *L)
{
    static const char *const names[] = {"pool", "file", "shm", "foreign"};
    ohm_buf *b = lohm_livebuf(L, 1, "origin");
    unsigned o = (unsigned)ohm_buf_origin_of(b);
    lua_pushstring(L, o < 4 ? names[o] : "?");
    return 1;
}

static int l_tracked(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "tracked");
    lua_pushboolean(L, ohm_buf_tracked(b));
    return 1;
}

/* touch(b [, hint]): an access record for the leak detector (ADVANCED and PARANOID). */
static int l_touch(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "touch");
    const char *hint = luaL_optstring(L, 2, NULL);
    int rc = ohm_buf_touch(b, hint);
    if (rc) return lohm_fail(L, rc, "touch");
    lua_settop(L, 1);
    return 1;
}

/* address(b [, offset = 0]): a light userdata pointing into the buffer, for C functions (FFI). */
static int l_address(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "address");
    lua_Integer off = luaL_optinteger(L, 2, 0);
    void *p;
    int rc = ohm_bind_span(b, off, 0, &p);
    if (rc) return lohm_fail(L, rc, "address");
    lua_pushlightuserdata(L, p);
    return 1;
}

/* offsetof(b, ptr): the offset of a pointer into the buffer (a light userdata or an integer address), as a C
 * callback receives it; raises if ptr is not inside b. */
static int l_offsetof(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "offsetof");
    uintptr_t p;
    if (lua_type(L, 2) == LUA_TLIGHTUSERDATA) p = (uintptr_t)lua_touserdata(L, 2);
    else if (lua_isinteger(L, 2)) p = (uintptr_t)lua_tointeger(L, 2);
    else return luaL_typeerror(L, 2, "light userdata or integer address");
    uintptr_t base = (uintptr_t)ohm_buf_data(b);
    size_t size = ohm_buf_size(b);
    if (p < base || p - base > size)
        return luaL_error(L, "offsetof: address %p is not inside the buffer (%p, %I bytes)", (void *)p, (void *)base,
                          (LUAI_UACINT)size);
    lua_pushinteger(L, (lua_Integer)(p - base));
    return 1;
}

/* ---- mapped files and shared memory ---- */

static int push_mapped(lua_State *L, lbuf *u, ohm_buf *b, const char *fname)
{
    if (!b) return lohm_fail(L, ohm_last_error_code(), fname);
    lohm_setbuf(L, u, b);
    return 1;
}

/* mapfile(path [, {offset = 0, length = 0 (to the end), write = false, create = false, sync = false}]) */
static int l_mapfile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint64_t offset = 0;
    size_t length = 0;
    unsigned flags = OHM_MAP_READ;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "offset") != LUA_TNIL) offset = lohm_checksize(L, -1, 0, "mapfile", "offset");
        if (lua_getfield(L, 2, "length") != LUA_TNIL)
            length = lohm_checksize(L, -1, LOHM_MAX_SIZE, "mapfile", "length");
        lua_pop(L, 2);
        if (opt_bool_field(L, 2, "write", 0)) flags |= OHM_MAP_WRITE;
        if (opt_bool_field(L, 2, "create", 0)) flags |= OHM_MAP_CREATE | OHM_MAP_WRITE;
        if (opt_bool_field(L, 2, "sync", 0)) flags |= OHM_MAP_SYNC_ON_RELEASE;
    }
    lbuf *u = lohm_newbuf(L);
    ohm_buf *b = ohm_buf_map_file(path, offset, length, flags);
    struct stat st;
    if (!b && ohm_last_error_code() == OHM_EINVAL && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* The core calls a path that is not a regular file a bad argument; it is the file system's answer like
         * ENOENT, so a runtime failure here too (Java makes it OhmIOException). */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ohm_last_error());
        return lohm_fail(L, ohm_bind_fail(OHM_ESYS, msg), "mapfile");
    }
    return push_mapped(L, u, b, "mapfile");
}

/* sync(b [, offset = 0 [, count = 0 (all)]]): msync of a mapped buffer. */
static int l_sync(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "sync");
    size_t off = lua_isnoneornil(L, 2) ? 0 : lohm_checksize(L, 2, 0, "sync", "offset");
    size_t len = lua_isnoneornil(L, 3) ? 0 : lohm_checksize(L, 3, 0, "sync", "count");
    int rc = ohm_buf_sync(b, off, len);
    if (rc) return lohm_fail(L, rc, "sync");
    lua_pushboolean(L, 1);
    return 1;
}

/* seal(b [, sealed = true]): read-only (mprotect) for a buffer that owns its pages (a read-write mapping). */
static int l_seal(lua_State *L)
{
    ohm_buf *b = lohm_livebuf(L, 1, "seal");
    bool sealed = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
    int rc = ohm_buf_seal(b, sealed);
    if (rc) return lohm_fail(L, rc, "seal");
    lua_settop(L, 1);
    return 1;
}

/* shm.create(name | nil, size): a new zeroed shared-memory buffer ("/name", or an anonymous memfd). */
static int l_shm_create(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    size_t size = lohm_checksize(L, 2, LOHM_MAX_SIZE, "shm.create", "size");
    lbuf *u = lohm_newbuf(L);
    return push_mapped(L, u, ohm_buf_shm_create(name, size), "shm.create");
}

/* shm.open(name [, writable = false]) */
static int l_shm_open(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    bool writable = lua_toboolean(L, 2);
    lbuf *u = lohm_newbuf(L);
    return push_mapped(L, u, ohm_buf_shm_open(name, writable), "shm.open");
}

static int l_shm_unlink(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int rc = ohm_shm_unlink(name);
    if (rc) return lohm_fail(L, rc, "shm.unlink");
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- registration ---- */

#define RW(name) \
    {"read" #name, l_read##name}, { "write" #name, l_write##name }

/* Functions that are methods as well. */
static const luaL_Reg buffer_methods[] = {
    RW(i8),
    RW(u8),
    RW(i16),
    RW(u16),
    RW(i32),
    RW(u32),
    RW(i64),
    RW(u64),
    RW(f32),
    RW(f64),
    RW(i16be),
    RW(u16be),
    RW(i32be),
    RW(u32be),
    RW(i64be),
    RW(u64be),
    RW(f32be),
    RW(f64be),
    {"readbits", l_readbits},
    {"writebits", l_writebits},
    {"len", l_len},
    {"readstring", l_readstring},
    {"writestring", l_writestring},
    {"tostring", l_tostring},
    {"copy", l_copy},
    {"fill", l_fill},
    {"find", l_find},
    {"compare", l_compare},
    {"equals", l_equals},
    {"slice", l_slice},
    {"retainedslice", l_retainedslice},
    {"retain", l_retain},
    {"release", l_release},
    {"refcount", l_refcount},
    {"close", l_close},
    {"id", l_id},
    {"origin", l_origin},
    {"tracked", l_tracked},
    {"touch", l_touch},
    {"address", l_address},
    {"offsetof", l_offsetof},
    {"sync", l_sync},
    {"seal", l_seal},
    {NULL, NULL},
};

static const luaL_Reg module_only[] = {
    {"alloc", l_alloc},       {"create", l_create},   {"fromstring", l_fromstring},
    {"isbuffer", l_isbuffer}, {"mapfile", l_mapfile}, {NULL, NULL},
};

static const luaL_Reg buffer_meta[] = {
    {"__gc", l_gc}, {"__close", l_close}, {"__len", l_len}, {"__tostring", l_tostr}, {"__eq", l_eq}, {NULL, NULL},
};

static const luaL_Reg shm_funcs[] = {
    {"create", l_shm_create},
    {"open", l_shm_open},
    {"unlink", l_shm_unlink},
    {NULL, NULL},
};

void lohm_open_buffers(lua_State *L)
{
    int module = lua_gettop(L);
    lohm_setfuncs(L, buffer_methods);
    lohm_setfuncs(L, module_only);
    lua_newtable(L);
    lohm_setfuncs(L, shm_funcs);
    lua_setfield(L, module, "shm");

    luaL_getmetatable(L, LOHM_BUFFER_MT);
    lohm_setfuncs(L, buffer_meta);
    /* The methods are the module's functions themselves (b.readu32 == ohm.readu32), so an argument error raised
     * through a method value that Lua cannot name from the call (pcall(b.readu32, ...)) still names 'ohm.readu32'. */
    lua_newtable(L);
    for (const luaL_Reg *r = buffer_methods; r->name; r++) {
        lua_getfield(L, module, r->name);
        lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, LOHM_BUFFER_MT);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}
