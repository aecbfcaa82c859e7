/* The libffi bridge (ohm_bind.h, "The libffi bridge"): the signature grammar and its errors with positions,
 * libraries and symbols, calls into libc and zlib with ohm buffers passed zero-copy (results compared with
 * direct calls), strict argument checking (count, kind, integer ranges, whole floats), buffers retained for a
 * call and refcounts unchanged by every error path, misuse refused before the call (wrong sign or width from
 * signed and unsigned hosts, host strings and read-only buffers for writable pointers, released buffers, NULL
 * for numbers), cptr, return values widened per type, closures (qsort's
 * comparator, every argument and return type, failures, thread refusal, ANY_THREAD attach/detach, nesting),
 * and concurrent calls of one function. */
#include "../check.h"
#include "ohm.h"
#include "ohm_bind.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---- */

static bool error_is(int rc, int code) { return CHECK_EQ_INT(rc, code) && CHECK_EQ_INT(ohm_last_error_code(), code); }

static ohm_ffi_arg a_int(int64_t v) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_INT, .v.i = v}; }
static ohm_ffi_arg a_uint(uint64_t v) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_UINT, .v.u = v}; }
static ohm_ffi_arg a_flt(double v) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_FLOAT, .v.f = v}; }
static ohm_ffi_arg a_str(const char *s) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_STR, .str = s}; }
static ohm_ffi_arg a_buf(ohm_buf *b, uint64_t off)
{
    return (ohm_ffi_arg){.kind = OHM_FFI_ARG_BUF, .buf = b, .off = off};
}
static ohm_ffi_arg a_ptr(void *p) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_PTR, .v.p = p}; }
static ohm_ffi_arg a_null(void) { return (ohm_ffi_arg){.kind = OHM_FFI_ARG_NULL}; }

/* The process itself (dlopen(NULL)): libc's functions are in its global scope. */
static ohm_ffi_lib *self_lib(void)
{
    ohm_ffi_lib *lib = ohm_ffi_open(NULL);
    CHECK_NOT_NULL(lib);
    return lib;
}

static ohm_ffi_fn *must_func(ohm_ffi_lib *lib, const char *sym, const char *sig)
{
    ohm_ffi_fn *fn = ohm_ffi_func(lib, sym, sig);
    if (!CHECK_NOT_NULL(fn)) fprintf(stderr, "  %s: %s\n", sym, ohm_last_error());
    return fn;
}

static ohm_ffi_fn *must_ptr(void *code, const char *name, const char *sig)
{
    ohm_ffi_fn *fn = ohm_ffi_func_ptr(code, name, sig);
    if (!CHECK_NOT_NULL(fn)) fprintf(stderr, "  %s: %s\n", name, ohm_last_error());
    return fn;
}

static ohm_buf *must_buf(size_t size)
{
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, size);
    CHECK_NOT_NULL(b);
    return b;
}

/* A call that must fail with code, a message containing want, and no reference left behind on b (NULL: none). */
static void call_fails(const ohm_ffi_fn *fn, const ohm_ffi_arg *args, unsigned n, int code, const char *want,
                       ohm_buf *b)
{
    uint32_t before = b ? ohm_buf_refcnt(b) : 0;
    ohm_bind_value r = {.u = 0x5a5a5a5a5a5a5a5aull};
    if (!error_is(ohm_ffi_call(fn, args, n, &r), code)) fprintf(stderr, "  message: %s\n", ohm_last_error());
    CHECK_STR_CONTAINS(ohm_last_error(), want);
    CHECK_EQ_U64(r.u, 0x5a5a5a5a5a5a5a5aull); /* no result is written on failure */
    if (b) CHECK_EQ_U64(ohm_buf_refcnt(b), before);
}

/* Hosts. OWNER_THREAD hosts run only between enter and leave on a thread; ANY_THREAD hosts count attaches. */
static ohm_bind_host *owner_host(void)
{
    ohm_bind_host_ops ops = {.threads = OHM_BIND_OWNER_THREAD};
    ohm_bind_host *h = ohm_bind_host_create(&ops, NULL);
    CHECK_NOT_NULL(h);
    return h;
}

typedef struct attach_log {
    atomic_int attached, detached, refuse; /* refuse: attach fails with this code (0 = succeeds) */
} attach_log;

static int log_attach(void *arg, void **token)
{
    attach_log *l = arg;
    int refuse = atomic_load(&l->refuse);
    if (refuse) return ohm_bind_fail(refuse, "the JVM cannot attach this thread");
    atomic_fetch_add(&l->attached, 1);
    *token = l;
    return 0;
}

static void log_detach(void *arg, void *token)
{
    attach_log *l = arg;
    CHECK(token == l);
    atomic_fetch_add(&l->detached, 1);
}

static ohm_bind_host *any_thread_host(attach_log *l)
{
    ohm_bind_host_ops ops = {.threads = OHM_BIND_ANY_THREAD, .attach = log_attach, .detach = log_detach};
    ohm_bind_host *h = ohm_bind_host_create(&ops, l);
    CHECK_NOT_NULL(h);
    return h;
}

/* ---- functions of ours, called through the bridge ---- */

/* take_all's arguments as it received them, in order (i8 u8 i16 u16 i32 u32 i64 u64 f32 f64), each widened to
 * the member of its kind: the same index as the signature's argument. */
static ohm_bind_value seen[10];

static double take_all(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e, uint32_t f, int64_t g, uint64_t h,
                       float i, double j)
{
    memcpy(seen,
           (ohm_bind_value[10]){
               {.i = a}, {.u = b}, {.i = c}, {.u = d}, {.i = e}, {.u = f}, {.i = g}, {.u = h}, {.f = i}, {.f = j}},
           sizeof seen);
    return (double)a + b + c + d + e + f + (double)g + (double)h + i + j;
}

static int8_t ret_i8(void) { return -5; }
static uint8_t ret_u8(void) { return 250; }
static int16_t ret_i16(void) { return -300; }
static uint16_t ret_u16(void) { return 65000; }
static int32_t ret_i32(void) { return -70000; }
static uint32_t ret_u32(void) { return 4000000000u; }
static int64_t ret_i64(void) { return INT64_MIN + 1; }
static uint64_t ret_u64(void) { return UINT64_MAX - 1; }
static float ret_f32(void) { return 1.25f; }
static double ret_f64(void) { return -2.5e300; }
static bool ret_bool(void) { return true; }
static const char *ret_str(void) { return "from C"; }
static void *ret_null(void) { return NULL; }
static uint8_t add_u8(uint8_t a, uint8_t b) { return (uint8_t)(a + b); }
/* Narrow results computed from a 64-bit argument: the upper bits of the return register are left dirty, which
 * the bridge must ignore (only the type's width is the result). */
static int8_t dirty_i8(uint64_t x) { return (int8_t)x; }
static uint8_t dirty_u8(uint64_t x) { return (uint8_t)x; }
static int16_t dirty_i16(uint64_t x) { return (int16_t)x; }
static uint16_t dirty_u16(uint64_t x) { return (uint16_t)x; }
static int32_t dirty_i32(uint64_t x) { return (int32_t)x; }
static uint32_t dirty_u32(uint64_t x) { return (uint32_t)x; }
/* Integers and floats interleaved: each class takes its own registers in order. */
static double interleaved(float a, int8_t b, double c, uint16_t d, float e, void *p, int32_t f, double g, uint64_t h,
                          int16_t i)
{
    return a * 1e0 + b * 1e1 + c * 1e2 + d * 1e3 + e * 1e4 + (p ? 1e5 : 0) + f * 1e6 + g * 1e7 + (double)h * 1e8 +
           i * 1e9;
}
static float f32_of(float a, double b, int32_t c) { return a * 2.0f + (float)b + (float)c; }
static int64_t add_i64(int64_t a, int64_t b) { return a + b; }

/* The refcount of watched while the bridge runs us: 1 (the test's) + one per time it was passed. */
static ohm_buf *watched;
static uint32_t refcnt_during(void *p, void *q)
{
    (void)p;
    (void)q;
    return ohm_buf_refcnt(watched);
}

/* Calls cb() (a closure), then writes n bytes at p: the buffer behind p must still be alive after cb. */
static void call_then_write(void *p, uint64_t n, void (*cb)(void))
{
    cb();
    memset(p, 0x77, n);
}

/* ---- signatures ---- */

static void parse_fails(const char *sig, const char *want);

static void test_parse_accepts_the_grammar_with_free_whitespace_and_aliases(void)
{
    ohm_ffi_type r, a[OHM_FFI_MAX_ARGS];
    unsigned n = 99;
    if (!CHECK_EQ_INT(ohm_ffi_parse("i32(ptr, u64, str)", &r, a, &n), 0)) return;
    CHECK_EQ_INT(r, OHM_FFI_I32);
    CHECK_EQ_U64(n, 3);
    CHECK_EQ_INT(a[0], OHM_FFI_PTR);
    CHECK_EQ_INT(a[1], OHM_FFI_U64);
    CHECK_EQ_INT(a[2], OHM_FFI_STR);

    CHECK_EQ_INT(ohm_ffi_parse("cptr(cptr, ptr,str ,cptr)", &r, a, &n), 0);
    CHECK_EQ_INT(r, OHM_FFI_CPTR); /* a read-only pointer as a return type: an address, like ptr */
    if (CHECK_EQ_U64(n, 4)) {
        CHECK_EQ_INT(a[0], OHM_FFI_CPTR);
        CHECK_EQ_INT(a[1], OHM_FFI_PTR);
        CHECK_EQ_INT(a[2], OHM_FFI_STR);
        CHECK_EQ_INT(a[3], OHM_FFI_CPTR);
    }
    parse_fails("i32(cptrx)", "at 5: unknown type 'cptrx'");
    parse_fails("i32(const ptr)", "at 5: unknown type 'const'");

    CHECK_EQ_INT(ohm_ffi_parse(" \tvoid ( ) \n", &r, a, &n), 0);
    CHECK_EQ_INT(r, OHM_FFI_VOID);
    CHECK_EQ_U64(n, 0);

    static const ohm_ffi_type want[] = {OHM_FFI_I8,  OHM_FFI_I16, OHM_FFI_I32, OHM_FFI_U32, OHM_FFI_I64, OHM_FFI_U64,
                                        OHM_FFI_U64, OHM_FFI_I64, OHM_FFI_F32, OHM_FFI_F64, OHM_FFI_U8,  OHM_FFI_I8,
                                        OHM_FFI_U8,  OHM_FFI_I16, OHM_FFI_U16, OHM_FFI_U32, OHM_FFI_F32, OHM_FFI_F64};
    CHECK_EQ_INT(ohm_ffi_parse("size(char,short,int,uint,long,ulong,size,ssize,float,double,bool,"
                               "i8,u8,i16,u16,u32,f32,f64)",
                               &r, a, &n),
                 0);
    CHECK_EQ_INT(r, OHM_FFI_U64);
    if (CHECK_EQ_U64(n, sizeof want / sizeof want[0]))
        for (unsigned i = 0; i < n; i++) CHECK_EQ_INT(a[i], want[i]);

    /* Exactly 32 arguments is the limit; outputs may be NULL (a validity check only). */
    char sig[512] = "void(";
    for (int i = 0; i < OHM_FFI_MAX_ARGS; i++) strcat(sig, i ? ",i32" : "i32");
    strcat(sig, ")");
    CHECK_EQ_INT(ohm_ffi_parse(sig, &r, a, &n), 0);
    CHECK_EQ_U64(n, OHM_FFI_MAX_ARGS);
    CHECK_EQ_INT(ohm_ffi_parse(sig, NULL, NULL, NULL), 0);
}

static void parse_fails(const char *sig, const char *want)
{
    ohm_ffi_type r = OHM_FFI_F64, a[OHM_FFI_MAX_ARGS];
    unsigned n = 77;
    if (!error_is(ohm_ffi_parse(sig, &r, a, &n), OHM_EINVAL)) fprintf(stderr, "  signature: %s\n", sig);
    CHECK_STR_CONTAINS(ohm_last_error(), want);
    CHECK_EQ_INT(r, OHM_FFI_F64); /* outputs untouched on error */
    CHECK_EQ_U64(n, 77);
}

static void test_bad_signatures_are_einval_naming_the_position(void)
{
    parse_fails("i32(ptr,", "signature 'i32(ptr,' at 9: expected a type"); /* the header's own example */
    parse_fails("i32(foo)", "signature 'i32(foo)' at 5: unknown type 'foo'");
    parse_fails("I32()", "at 1: unknown type 'I32'"); /* names are lower case */
    parse_fails("i32", "signature 'i32' at 4: expected '('");
    parse_fails("i32 ptr)", "at 5: expected '('");
    parse_fails("i32(ptr", "at 8: expected ',' or ')'");
    parse_fails("i32(ptr u64)", "at 9: expected ',' or ')'");
    parse_fails("i32(ptr,)", "at 9: expected a type");
    parse_fails("i32() x", "at 7: unexpected text after ')'");
    parse_fails("i32());", "at 6: unexpected text after ')'");
    parse_fails("i32(void)", "at 5: void is only a return type");
    parse_fails("i32(ptr, void)", "at 10: void is only a return type");
    parse_fails("", "at 1: expected a type");
    parse_fails("(i32)", "at 1: expected a type");
    parse_fails("i32(...)", "at 5: expected a type"); /* variadic functions are not supported */

    char sig[512] = "void(";
    for (int i = 0; i <= OHM_FFI_MAX_ARGS; i++) strcat(sig, i ? ", u8" : "u8");
    strcat(sig, ")");
    parse_fails(sig, "at 134: more than 32 arguments"); /* the 33rd type: after "void(" (5) and 32 * 4 */

    error_is(ohm_ffi_parse(NULL, NULL, NULL, NULL), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "signature is NULL");
}

static void test_a_long_bad_signature_is_cut_in_the_message(void)
{
    char sig[2048];
    memset(sig, 'x', sizeof sig - 1);
    sig[sizeof sig - 1] = '\0';
    error_is(ohm_ffi_parse(sig, NULL, NULL, NULL), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "...' at 1: unknown type 'xxxxxxxx");
    CHECK(strlen(ohm_last_error()) < 400);
}

/* ---- libraries and symbols ---- */

static void test_unknown_library_and_symbol_are_einval_with_dlerror_text(void)
{
    CHECK_NULL(ohm_ffi_open("libohm-no-such-library.so.9"));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "cannot open libohm-no-such-library.so.9: ");
    CHECK_STR_CONTAINS(ohm_last_error(), "libohm-no-such-library.so.9"); /* dlerror's own words follow */

    ohm_ffi_lib *z = ohm_ffi_open("libz.so.1");
    if (!CHECK_NOT_NULL(z)) return;
    CHECK_NULL(ohm_ffi_func(z, "crc32_ohm_no_such_symbol", "ulong(ulong, ptr, uint)"));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "unknown symbol 'crc32_ohm_no_such_symbol' in libz.so.1");
    /* A real symbol with a bad signature: the signature's error. */
    CHECK_NULL(ohm_ffi_func(z, "crc32", "ulong(ulong, ptr, uint"));
    CHECK_STR_CONTAINS(ohm_last_error(), "at 23: expected ',' or ')'");
    CHECK_NULL(ohm_ffi_func(NULL, "crc32", "ulong()"));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_ffi_func(z, NULL, "ulong()"));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_ffi_func_ptr(NULL, "nothing", "void()"));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_EQ_INT(ohm_ffi_close(z), 0);
    error_is(ohm_ffi_close(NULL), OHM_EINVAL);
}

static void test_a_function_reports_its_types_and_name(void)
{
    ohm_ffi_lib *z = ohm_ffi_open("libz.so.1");
    if (!CHECK_NOT_NULL(z)) return;
    ohm_ffi_fn *fn = must_func(z, "crc32", " ulong ( ulong , ptr , uint ) ");
    if (fn) {
        CHECK_EQ_INT(ohm_ffi_ret_type(fn), OHM_FFI_U64);
        CHECK_EQ_U64(ohm_ffi_nargs(fn), 3);
        CHECK_EQ_INT(ohm_ffi_arg_type(fn, 0), OHM_FFI_U64);
        CHECK_EQ_INT(ohm_ffi_arg_type(fn, 1), OHM_FFI_PTR);
        CHECK_EQ_INT(ohm_ffi_arg_type(fn, 2), OHM_FFI_U32);
        CHECK_EQ_INT(ohm_ffi_arg_type(fn, 3), OHM_FFI_VOID); /* past the end */
        CHECK(strcmp(ohm_ffi_name(fn), "crc32") == 0);
    }
    ohm_ffi_func_free(fn);
    ohm_ffi_func_free(NULL);
    ohm_ffi_fn *anon = must_ptr((void *)ret_i8, NULL, "i8()");
    if (anon) CHECK(strcmp(ohm_ffi_name(anon), "function") == 0);
    ohm_ffi_func_free(anon);
    ohm_ffi_close(z);
}

/* ---- libc through the bridge ---- */

/* A function of a library (NULL: this process) through the bridge, and a zeroed buffer of `size` bytes to pass
 * it (none at size 0). */
typedef struct lib_call {
    ohm_ffi_lib *lib;
    ohm_ffi_fn *fn;
    ohm_buf *b;
} lib_call;

/* Whether all of it was made (a check failed otherwise); lib_call_close ends what was, in every case. */
static bool lib_call_open(lib_call *c, const char *lib, const char *sym, const char *sig, size_t size)
{
    *c = (lib_call){ohm_ffi_open(lib), NULL, NULL};
    if (!CHECK_NOT_NULL(c->lib)) return false;
    c->fn = must_func(c->lib, sym, sig);
    c->b = size ? must_buf(size) : NULL;
    return c->fn && (c->b || !size);
}

static void lib_call_close(lib_call *c)
{
    if (c->b) ohm_buf_release(c->b, 1);
    ohm_ffi_func_free(c->fn);
    if (c->lib) ohm_ffi_close(c->lib);
}

static void test_memset_on_a_buffer_at_an_offset_matches_a_direct_memset(void)
{
    lib_call c;
    if (lib_call_open(&c, NULL, "memset", "ptr(ptr, int, size)", 64)) {
        unsigned char want[64] = {0};
        memset(want + 16, 0xAB, 32);
        ohm_ffi_arg args[] = {a_buf(c.b, 16), a_int(0xAB), a_int(32)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, args, 3, &r), 0);
        CHECK(r.p == (char *)ohm_buf_data(c.b) + 16); /* memset returns its first argument: the buffer, zero-copy */
        CHECK(memcmp(ohm_buf_data(c.b), want, 64) == 0);
        CHECK_EQ_U64(ohm_buf_refcnt(c.b), 1); /* the call's reference is gone */

        /* An offset at the very end is a valid empty range. */
        ohm_ffi_arg end[] = {a_buf(c.b, 64), a_int(0), a_int(0)};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, end, 3, &r), 0);
        CHECK(r.p == (char *)ohm_buf_data(c.b) + 64);
    }
    lib_call_close(&c);
}

static void test_strlen_of_a_string_and_of_a_buffer_matches_strlen(void)
{
    lib_call c;
    if (lib_call_open(&c, NULL, "strlen", "size(str)", 32)) {
        const char *s = "hello, off-heap world";
        ohm_ffi_arg a1[] = {a_str(s)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, a1, 1, &r), 0);
        CHECK_EQ_U64(r.u, strlen(s));

        memcpy(ohm_buf_data(c.b), "buffered", 9);
        ohm_ffi_arg a2[] = {a_buf(c.b, 0)};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, a2, 1, &r), 0);
        CHECK_EQ_U64(r.u, 8);
        ohm_ffi_arg a3[] = {a_buf(c.b, 3)};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, a3, 1, &r), 0);
        CHECK_EQ_U64(r.u, strlen((char *)ohm_buf_data(c.b) + 3));

        /* A str parameter needs a NUL before the buffer's end: strlen would read past it otherwise. */
        memset(ohm_buf_data(c.b), 'x', 32);
        call_fails(c.fn, a2, 1, OHM_ERANGE, "strlen: argument 1 (str): the buffer has no NUL byte from offset 0", c.b);
        CHECK_EQ_U64(ohm_buf_refcnt(c.b), 1);
        ohm_ffi_arg n1[] = {a_str(NULL)};
        call_fails(c.fn, n1, 1, OHM_EINVAL, "strlen: argument 1 (str): string is NULL", NULL);
    }
    lib_call_close(&c);
}

/* The comparator: ctx counts its calls; arguments arrive as pointers in v.p. */
static int cmp_i32(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret)
{
    atomic_int *calls = ctx;
    atomic_fetch_add(calls, 1);
    if (nargs != 2) return ohm_bind_fail(OHM_EINVAL, "cmp: wrong number of arguments");
    int32_t a, b;
    memcpy(&a, args[0].p, 4);
    memcpy(&b, args[1].p, 4);
    ret->i = (a > b) - (a < b);
    return 0;
}

static int cmp_direct(const void *x, const void *y)
{
    int32_t a, b;
    memcpy(&a, x, 4);
    memcpy(&b, y, 4);
    return (a > b) - (a < b);
}

#define SORT_N 1000

static void fill_random_i32(int32_t *v, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (int32_t)(seed >> 32);
    }
}

static void test_qsort_over_a_buffer_with_a_closure_comparator_matches_a_direct_qsort(void)
{
    ohm_bind_host *h = owner_host();
    ohm_ffi_lib *self = self_lib();
    ohm_ffi_fn *qs = self ? must_func(self, "qsort", "void(ptr, size, size, ptr)") : NULL;
    atomic_int calls = 0;
    ohm_ffi_closure *cmp = h ? ohm_ffi_closure_create(h, "int(ptr, ptr)", cmp_i32, &calls) : NULL;
    CHECK_NOT_NULL(cmp);
    ohm_buf *b = must_buf(SORT_N * 4);
    if (qs && cmp && b) {
        int32_t *want = malloc(SORT_N * 4);
        fill_random_i32(want, SORT_N, 42);
        memcpy(ohm_buf_data(b), want, SORT_N * 4);
        qsort(want, SORT_N, 4, cmp_direct);

        ohm_bind_host_enter(h); /* the host runs on this thread: its closure may be called here */
        ohm_ffi_arg args[] = {a_buf(b, 0), a_int(SORT_N), a_int(4), a_ptr(ohm_ffi_closure_code(cmp))};
        if (!CHECK_EQ_INT(ohm_ffi_call(qs, args, 4, NULL), 0)) fprintf(stderr, "  %s\n", ohm_last_error());
        ohm_bind_host_leave(h);
        CHECK(memcmp(ohm_buf_data(b), want, SORT_N * 4) == 0);
        CHECK(atomic_load(&calls) >= SORT_N - 1); /* every comparison went through the host function */
        CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
        free(want);
    }
    if (b) ohm_buf_release(b, 1);
    ohm_ffi_closure_free(cmp);
    ohm_ffi_func_free(qs);
    if (self) ohm_ffi_close(self);
    if (h) ohm_bind_host_destroy(h);
}

/* ---- zlib ---- */

static void fill_bytes(unsigned char *p, size_t n, uint64_t seed, bool compressible)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = compressible ? (unsigned char)("ohm off-heap "[(seed >> 60) % 13]) : (unsigned char)(seed >> 56);
    }
}

/* zlib's crc32 through the bridge, and a buffer of `size` bytes to pass it (none at size 0). */
static bool crc32_open(lib_call *c, size_t size)
{
    return lib_call_open(c, "libz.so.1", "crc32", "ulong(ulong, ptr, uint)", size);
}

static void test_zlib_crc32_of_a_buffer_range_matches_a_direct_crc32(void)
{
    lib_call c;
    if (crc32_open(&c, 1000)) {
        fill_bytes(ohm_buf_data(c.b), 1000, 7, false);
        const unsigned char *d = ohm_buf_data(c.b);
        ohm_ffi_arg args[] = {a_int(0), a_buf(c.b, 100), a_int(500)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, args, 3, &r), 0);
        CHECK_EQ_U64(r.u, crc32(0, d + 100, 500));
        /* Chained: the running crc as the first argument. */
        uLong part = crc32(0, d, 100);
        ohm_ffi_arg chained[] = {a_int((int64_t)part), a_buf(c.b, 100), a_int(900)};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, chained, 3, &r), 0);
        CHECK_EQ_U64(r.u, crc32(0, d, 1000));
        /* crc32(0, NULL, 0) is zlib's initial value. */
        ohm_ffi_arg init[] = {a_int(0), a_null(), a_int(0)};
        CHECK_EQ_INT(ohm_ffi_call(c.fn, init, 3, &r), 0);
        CHECK_EQ_U64(r.u, crc32(0, NULL, 0));
    }
    lib_call_close(&c);
}

static void test_zlib_compress2_between_buffers_then_uncompress_gives_the_input_back(void)
{
    ohm_ffi_lib *z = ohm_ffi_open("libz.so.1");
    if (!CHECK_NOT_NULL(z)) return;
    ohm_ffi_fn *bound = must_func(z, "compressBound", "ulong(ulong)");
    ohm_ffi_fn *comp = must_func(z, "compress2", "int(ptr, ptr, ptr, ulong, int)");
    const size_t n = 20000;
    ohm_buf *src = must_buf(n);
    ohm_bind_value r = {0};
    if (bound && comp && src) {
        fill_bytes(ohm_buf_data(src), n, 99, true);
        ohm_ffi_arg barg[] = {a_int((int64_t)n)};
        CHECK_EQ_INT(ohm_ffi_call(bound, barg, 1, &r), 0);
        CHECK_EQ_U64(r.u, compressBound(n));
        size_t cap = (size_t)r.u;
        ohm_buf *dst = must_buf(cap + 8);
        if (dst) {
            uLongf dlen = cap;
            /* dest at offset 8 of its buffer, destLen a raw address, source a whole buffer */
            ohm_ffi_arg args[] = {a_buf(dst, 8), a_ptr(&dlen), a_buf(src, 0), a_int((int64_t)n), a_int(6)};
            CHECK_EQ_INT(ohm_ffi_call(comp, args, 5, &r), 0);
            CHECK_EQ_INT(r.i, Z_OK);
            CHECK(dlen > 0 && dlen < n / 2); /* the input is compressible */
            unsigned char *back = malloc(n);
            uLongf blen = n;
            CHECK_EQ_INT(uncompress(back, &blen, (unsigned char *)ohm_buf_data(dst) + 8, dlen), Z_OK);
            CHECK_EQ_U64(blen, n);
            CHECK(memcmp(back, ohm_buf_data(src), n) == 0);
            free(back);
            CHECK_EQ_U64(ohm_buf_refcnt(dst), 1);
            CHECK_EQ_U64(ohm_buf_refcnt(src), 1);
            ohm_buf_release(dst, 1);
        }
    }
    if (src) ohm_buf_release(src, 1);
    ohm_ffi_func_free(bound);
    ohm_ffi_func_free(comp);
    ohm_ffi_close(z);
}

/* ---- argument checking ---- */

static void test_wrong_argument_count_is_einval(void)
{
    lib_call c;
    if (crc32_open(&c, 0)) {
        ohm_ffi_arg args[] = {a_int(0), a_null(), a_int(0), a_int(0)};
        call_fails(c.fn, args, 2, OHM_EINVAL, "crc32: expected 3 arguments (ulong(ulong, ptr, uint)), got 2", NULL);
        call_fails(c.fn, args, 4, OHM_EINVAL, "crc32: expected 3 arguments", NULL);
        call_fails(c.fn, NULL, 3, OHM_EINVAL, "crc32: arguments are NULL", NULL);
    }
    error_is(ohm_ffi_call(NULL, NULL, 0, NULL), OHM_EINVAL);
    lib_call_close(&c);
}

static void test_an_argument_whose_kind_does_not_fit_its_type_is_einval(void)
{
    lib_call c;
    if (crc32_open(&c, 16)) {
        ohm_ffi_arg num_for_ptr[] = {a_int(0), a_int(1234), a_int(0)};
        call_fails(c.fn, num_for_ptr, 3, OHM_EINVAL, "crc32: argument 2 is ptr, got a number", NULL);
        ohm_ffi_arg flt_for_ptr[] = {a_int(0), a_flt(1.0), a_int(0)};
        call_fails(c.fn, flt_for_ptr, 3, OHM_EINVAL, "crc32: argument 2 is ptr, got a number", NULL);
        ohm_ffi_arg str_for_int[] = {a_str("0"), a_null(), a_int(0)};
        call_fails(c.fn, str_for_int, 3, OHM_EINVAL, "crc32: argument 1 is u64, got a string", NULL);
        ohm_ffi_arg buf_for_int[] = {a_int(0), a_null(), a_buf(c.b, 0)};
        call_fails(c.fn, buf_for_int, 3, OHM_EINVAL, "crc32: argument 3 is u32, got a buffer", c.b);
        ohm_ffi_arg ptr_for_int[] = {a_ptr(c.b), a_null(), a_int(0)};
        call_fails(c.fn, ptr_for_int, 3, OHM_EINVAL, "crc32: argument 1 is u64, got a pointer", NULL);
        ohm_ffi_arg null_for_int[] = {a_null(), a_null(), a_int(0)};
        call_fails(c.fn, null_for_int, 3, OHM_EINVAL, "crc32: argument 1 is u64, got null", NULL);
        ohm_ffi_arg bad_kind[] = {a_int(0), {.kind = (ohm_ffi_arg_kind)42}, a_int(0)};
        call_fails(c.fn, bad_kind, 3, OHM_EINVAL, "crc32: argument 2 is ptr, got an unknown kind", NULL);
        ohm_ffi_arg null_buf[] = {a_int(0), a_buf(NULL, 0), a_int(0)};
        call_fails(c.fn, null_buf, 3, OHM_EINVAL, "crc32: argument 2 (ptr): buffer is NULL", NULL);
    }
    lib_call_close(&c);
}

static void int_out_of_range(const char *sig, ohm_ffi_arg a, const char *want)
{
    ohm_ffi_fn *fn = must_ptr((void *)add_u8, "f", sig); /* never called: the check fails first */
    if (!fn) return;
    ohm_ffi_arg args[] = {a};
    call_fails(fn, args, 1, OHM_EINVAL, want, NULL);
    ohm_ffi_func_free(fn);
}

static void test_integers_out_of_their_type_range_are_einval_with_the_value(void)
{
    ohm_ffi_fn *fn = must_ptr((void *)add_u8, "crc32", "u8(u8, u8)");
    if (fn) {
        ohm_ffi_arg args[] = {a_int(300), a_int(1)};
        call_fails(fn, args, 2, OHM_EINVAL, "crc32: argument 1 (u8) out of range: 300", NULL); /* the brief's message */
        ohm_ffi_arg edge[] = {a_int(255), a_int(0)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(fn, edge, 2, &r), 0);
        CHECK_EQ_U64(r.u, 255);
    }
    ohm_ffi_func_free(fn);
    int_out_of_range("void(u8)", a_int(-1), "f: argument 1 (u8) out of range: -1");
    int_out_of_range("void(i8)", a_int(128), "(i8) out of range: 128");
    int_out_of_range("void(i8)", a_int(-129), "(i8) out of range: -129");
    int_out_of_range("void(u16)", a_int(65536), "(u16) out of range: 65536");
    int_out_of_range("void(i16)", a_int(-32769), "(i16) out of range: -32769");
    int_out_of_range("void(i32)", a_int(2147483648ll), "(i32) out of range: 2147483648");
    int_out_of_range("void(u32)", a_int(-1), "(u32) out of range: -1");
    int_out_of_range("void(u32)", a_int(4294967296ll), "(u32) out of range: 4294967296");
    int_out_of_range("void(bool)", a_int(256), "(u8) out of range: 256"); /* bool is u8 */
    /* Floats: only whole numbers reach integer parameters, and within range. */
    int_out_of_range("void(i32)", a_flt(1.5), "f: argument 1 (i32) is not a whole number: 1.5");
    int_out_of_range("void(i32)", a_flt(0.1), "(i32) is not a whole number: 0.1");
    int_out_of_range("void(i64)", a_flt(NAN), "(i64) is not a whole number: nan");
    int_out_of_range("void(u64)", a_flt(INFINITY), "(u64) is not a whole number: inf");
    int_out_of_range("void(u8)", a_flt(256.0), "(u8) out of range: 256");
    int_out_of_range("void(u64)", a_flt(-1.0), "(u64) out of range: -1");
    int_out_of_range("void(u64)", a_flt(18446744073709551616.0), "(u64) out of range: 18446744073709551616");
    int_out_of_range("void(i64)", a_flt(9223372036854775808.0), "(i64) out of range: 9223372036854775808");
    int_out_of_range("void(f32)", a_flt(1e39), "(f32) out of range: 1e+39");
}

static void test_every_type_reaches_c_exactly(void)
{
    ohm_ffi_fn *fn = must_ptr((void *)take_all, "take_all", "f64(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64)");
    if (!fn) return;
    ohm_ffi_arg args[] = {a_int(-128),         a_int(255),       a_int(-32768),      a_int(65535), a_int(INT32_MIN),
                          a_int(4294967295ll), a_int(INT64_MIN), a_uint(UINT64_MAX), a_flt(0.5),   a_flt(-1e300)};
    ohm_bind_value r = {0};
    CHECK_EQ_INT(ohm_ffi_call(fn, args, 10, &r), 0);
    CHECK_EQ_INT(seen[0].i, -128);
    CHECK_EQ_U64(seen[1].u, 255);
    CHECK_EQ_INT(seen[2].i, -32768);
    CHECK_EQ_U64(seen[3].u, 65535);
    CHECK_EQ_INT(seen[4].i, INT32_MIN);
    CHECK_EQ_U64(seen[5].u, 4294967295u);
    CHECK_EQ_INT(seen[6].i, INT64_MIN);
    CHECK_EQ_U64(seen[7].u, UINT64_MAX);
    CHECK(seen[8].f == 0.5f);
    CHECK(seen[9].f == -1e300);
    CHECK(r.f == take_all(-128, 255, -32768, 65535, INT32_MIN, 4294967295u, INT64_MIN, UINT64_MAX, 0.5f, -1e300));

    /* Whole floats into integer parameters, integers into float parameters. */
    ohm_ffi_arg mixed[] = {a_flt(-3.0),
                           a_flt(200.0),
                           a_int(1),
                           a_int(2),
                           a_flt(-2147483648.0),
                           a_flt(4294967295.0),
                           a_flt(-9007199254740992.0),
                           a_flt(18446744073709549568.0),
                           a_int(3),
                           a_int(-7)};
    CHECK_EQ_INT(ohm_ffi_call(fn, mixed, 10, &r), 0);
    CHECK_EQ_INT(seen[0].i, -3);
    CHECK_EQ_U64(seen[1].u, 200);
    CHECK_EQ_INT(seen[4].i, INT32_MIN);
    CHECK_EQ_U64(seen[5].u, 4294967295u);
    CHECK_EQ_INT(seen[6].i, -9007199254740992ll);
    CHECK_EQ_U64(seen[7].u, 18446744073709549568ull);
    CHECK(seen[8].f == 3.0f);
    CHECK(seen[9].f == -7.0);
    ohm_ffi_func_free(fn);
}

static void test_returns_are_sign_or_zero_extended_per_type(void)
{
    static const struct {
        void *code;
        const char *sig;
        uint64_t want; /* the bits of ohm_bind_value for integers and pointers */
    } cases[] = {
        {(void *)ret_i8, "i8()", (uint64_t)-5},
        {(void *)ret_u8, "u8()", 250},
        {(void *)ret_i16, "i16()", (uint64_t)-300},
        {(void *)ret_u16, "u16()", 65000},
        {(void *)ret_i32, "i32()", (uint64_t)-70000},
        {(void *)ret_u32, "u32()", 4000000000u},
        {(void *)ret_i64, "i64()", (uint64_t)(INT64_MIN + 1)},
        {(void *)ret_u64, "u64()", UINT64_MAX - 1},
        {(void *)ret_bool, "bool()", 1},
        {(void *)ret_null, "ptr()", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ohm_ffi_fn *fn = must_ptr(cases[i].code, cases[i].sig, cases[i].sig);
        if (!fn) continue;
        ohm_bind_value r = {.u = 0xdeadbeefdeadbeefull}; /* every bit must be written */
        CHECK_EQ_INT(ohm_ffi_call(fn, NULL, 0, &r), 0);
        if (!CHECK_EQ_U64(r.u, cases[i].want)) fprintf(stderr, "  for %s\n", cases[i].sig);
        ohm_ffi_func_free(fn);
    }
    ohm_ffi_fn *f32 = must_ptr((void *)ret_f32, "f32", "float()");
    ohm_ffi_fn *f64 = must_ptr((void *)ret_f64, "f64", "f64()");
    ohm_ffi_fn *str = must_ptr((void *)ret_str, "str", "str()");
    ohm_bind_value r = {0};
    if (f32 && CHECK_EQ_INT(ohm_ffi_call(f32, NULL, 0, &r), 0)) CHECK(r.f == 1.25);
    if (f64 && CHECK_EQ_INT(ohm_ffi_call(f64, NULL, 0, &r), 0)) CHECK(r.f == -2.5e300);
    if (str && CHECK_EQ_INT(ohm_ffi_call(str, NULL, 0, &r), 0)) CHECK(r.p && strcmp(r.p, "from C") == 0);
    ohm_ffi_func_free(f32);
    ohm_ffi_func_free(f64);
    ohm_ffi_func_free(str);

    /* i64 and u64 share the bits: -1 + -1 as i64. */
    ohm_ffi_fn *add = must_ptr((void *)add_i64, "add_i64", "i64(i64, i64)");
    ohm_ffi_arg args[] = {a_int(-1), a_int(-1)};
    if (add && CHECK_EQ_INT(ohm_ffi_call(add, args, 2, &r), 0)) CHECK_EQ_INT(r.i, -2);
    ohm_ffi_func_free(add);
}

static void test_narrow_results_ignore_the_dirty_upper_bits_of_the_register(void)
{
    static const struct {
        void *code;
        const char *sig;
        uint64_t want;
    } cases[] = {
        {(void *)dirty_i8, "i8(u64)", (uint64_t)(int64_t)(int8_t)0x80},
        {(void *)dirty_u8, "u8(u64)", 0x80},
        {(void *)dirty_i16, "i16(u64)", (uint64_t)(int64_t)(int16_t)0x8080},
        {(void *)dirty_u16, "u16(u64)", 0x8080},
        {(void *)dirty_i32, "i32(u64)", (uint64_t)(int64_t)(int32_t)0x80808080},
        {(void *)dirty_u32, "u32(u64)", 0x80808080},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ohm_ffi_fn *fn = must_ptr(cases[i].code, cases[i].sig, cases[i].sig);
        if (!fn) continue;
        ohm_ffi_arg args[] = {{.kind = OHM_FFI_ARG_INT, .v.u = 0x7f7f7f7f80808080ull}};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(fn, args, 1, &r), 0);
        if (!CHECK_EQ_U64(r.u, cases[i].want)) fprintf(stderr, "  for %s\n", cases[i].sig);
        ohm_ffi_func_free(fn);
    }
}

static void test_interleaved_integer_and_float_arguments_reach_c_in_order(void)
{
    ohm_ffi_fn *fn =
        must_ptr((void *)interleaved, "interleaved", "f64(f32, i8, f64, u16, f32, ptr, i32, f64, u64, i16)");
    ohm_ffi_fn *f32 = must_ptr((void *)f32_of, "f32_of", "f32(f32, f64, i32)");
    if (fn) {
        ohm_ffi_arg args[] = {a_flt(1),     a_int(2), a_flt(3), a_int(4), a_int(5),
                              a_ptr(&seen), a_int(6), a_flt(7), a_int(8), a_int(9)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(fn, args, 10, &r), 0);
        CHECK(r.f == interleaved(1, 2, 3, 4, 5, &seen, 6, 7, 8, 9));
        CHECK(r.f == 9876154321.0); /* each argument in its own decimal digit */
    }
    if (f32) {
        ohm_ffi_arg args[] = {a_flt(1.5), a_flt(0.25), a_int(-10)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(f32, args, 3, &r), 0);
        CHECK(r.f == -6.75);
    }
    ohm_ffi_func_free(fn);
    ohm_ffi_func_free(f32);
}

/* ---- buffers: liveness, ranges, references ---- */

static void test_a_released_buffer_is_estate_and_an_offset_past_the_end_erange(void)
{
    ohm_ffi_lib *self = self_lib();
    ohm_ffi_fn *fn = self ? must_func(self, "memset", "ptr(ptr, int, size)") : NULL;
    ohm_buf *dead = must_buf(16), *b = must_buf(16);
    if (fn && dead && b) {
        CHECK_EQ_INT(ohm_buf_release(dead, 1), 1);
        ohm_ffi_arg a1[] = {a_buf(dead, 0), a_int(0), a_int(0)};
        call_fails(fn, a1, 3, OHM_ESTATE, "memset: argument 1 (ptr): ", NULL);
        CHECK_STR_CONTAINS(ohm_last_error(), "released");
        CHECK_EQ_U64(ohm_buf_refcnt(dead), 0);

        ohm_ffi_arg a2[] = {a_buf(b, 17), a_int(0), a_int(0)};
        call_fails(fn, a2, 3, OHM_ERANGE, "memset: argument 1 (ptr): offset 17 + length 0 exceeds buffer size 16", b);
        ohm_ffi_arg a3[] = {a_buf(b, UINT64_MAX), a_int(0), a_int(0)};
        call_fails(fn, a3, 3, OHM_ERANGE, "exceeds buffer size 16", b);
        CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    }
    if (b) ohm_buf_release(b, 1);
    ohm_ffi_func_free(fn);
    if (self) ohm_ffi_close(self);
}

/* ---- misuse: every way a host can pass the wrong thing, refused before C runs ---- */

static void never_called(void) { CHECK(!"a refused call reached C"); }

/* One row: sig's only parameter given a, which must fail with want in the message. */
static void refused(const char *sig, ohm_ffi_arg a, int code, const char *want)
{
    ohm_ffi_fn *fn = must_ptr((void *)never_called, "f", sig);
    if (!fn) return;
    ohm_ffi_arg args[] = {a};
    call_fails(fn, args, 1, code, want, a.kind == OHM_FFI_ARG_BUF ? a.buf : NULL);
    ohm_ffi_func_free(fn);
}

/* One row that must reach C: take_all's parameter at index pos (the others given zeros) gets a. */
static void accepted_as(unsigned pos, ohm_ffi_arg a)
{
    static const char *const sig = "f64(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64)";
    ohm_ffi_fn *fn = must_ptr((void *)take_all, "take_all", sig);
    if (!fn) return;
    ohm_ffi_arg args[10];
    for (unsigned i = 0; i < 10; i++) args[i] = i == pos ? a : a_int(0);
    ohm_bind_value r = {0};
    if (!CHECK_EQ_INT(ohm_ffi_call(fn, args, 10, &r), 0)) fprintf(stderr, "  %s\n", ohm_last_error());
    ohm_ffi_func_free(fn);
}

static void test_every_integer_type_refuses_a_wrong_sign_or_width_from_signed_and_unsigned_hosts(void)
{
    /* A signed host integer (Java long, lua_Integer): negative into an unsigned type is out of range, never
     * 2^64 - v. */
    refused("void(u64)", a_int(-1), OHM_EINVAL, "f: argument 1 (u64) out of range: -1");
    refused("void(size)", a_int(INT64_MIN), OHM_EINVAL, "(u64) out of range: -9223372036854775808");
    refused("void(ulong)", a_int(-5), OHM_EINVAL, "(u64) out of range: -5");
    refused("void(u32)", a_int(-1), OHM_EINVAL, "(u32) out of range: -1");
    refused("void(u16)", a_int(-1), OHM_EINVAL, "(u16) out of range: -1");
    refused("void(u8)", a_int(-1), OHM_EINVAL, "(u8) out of range: -1");
    refused("void(bool)", a_int(-1), OHM_EINVAL, "(u8) out of range: -1");
    refused("void(u32)", a_int(1ll << 32), OHM_EINVAL, "(u32) out of range: 4294967296");
    refused("void(i32)", a_int(INT32_MIN - 1ll), OHM_EINVAL, "(i32) out of range: -2147483649");
    refused("void(i16)", a_int(32768), OHM_EINVAL, "(i16) out of range: 32768");
    refused("void(i8)", a_int(-129), OHM_EINVAL, "(i8) out of range: -129");
    /* An unsigned host integer: above a signed type's maximum is out of range, never negative. */
    refused("void(i64)", a_uint(1ull << 63), OHM_EINVAL, "(i64) out of range: 9223372036854775808");
    refused("void(ssize)", a_uint(UINT64_MAX), OHM_EINVAL, "(i64) out of range: 18446744073709551615");
    refused("void(i32)", a_uint(1u << 31), OHM_EINVAL, "(i32) out of range: 2147483648");
    refused("void(u32)", a_uint(1ull << 32), OHM_EINVAL, "(u32) out of range: 4294967296");
    refused("void(i16)", a_uint(32768), OHM_EINVAL, "(i16) out of range: 32768");
    refused("void(u16)", a_uint(65536), OHM_EINVAL, "(u16) out of range: 65536");
    refused("void(i8)", a_uint(128), OHM_EINVAL, "(i8) out of range: 128");
    refused("void(u8)", a_uint(256), OHM_EINVAL, "(u8) out of range: 256");
    /* Floats: the same ranges, whole numbers only. */
    refused("void(size)", a_flt(-1.0), OHM_EINVAL, "(u64) out of range: -1");
    refused("void(u32)", a_flt(-0.5), OHM_EINVAL, "(u32) is not a whole number: -0.5");
    refused("void(i8)", a_flt(-129.0), OHM_EINVAL, "(i8) out of range: -129");
    refused("void(u16)", a_flt(65536.0), OHM_EINVAL, "(u16) out of range: 65536");
    refused("void(i32)", a_flt(2147483648.0), OHM_EINVAL, "(i32) out of range: 2147483648");
    /* Every edge that fits reaches C. */
    accepted_as(7, a_int(INT64_MAX));
    CHECK_EQ_U64(seen[7].u, (uint64_t)INT64_MAX);
    accepted_as(7, a_uint(UINT64_MAX));
    CHECK_EQ_U64(seen[7].u, UINT64_MAX);
    accepted_as(6, a_uint((uint64_t)INT64_MAX));
    CHECK_EQ_INT(seen[6].i, INT64_MAX);
    accepted_as(6, a_int(INT64_MIN));
    CHECK_EQ_INT(seen[6].i, INT64_MIN);
    accepted_as(0, a_uint(127));
    CHECK_EQ_INT(seen[0].i, 127);
    accepted_as(1, a_uint(255));
    CHECK_EQ_U64(seen[1].u, 255);
    accepted_as(5, a_uint(UINT32_MAX));
    CHECK_EQ_U64(seen[5].u, UINT32_MAX);
    accepted_as(4, a_flt(-2147483648.0));
    CHECK_EQ_INT(seen[4].i, INT32_MIN);
    accepted_as(9, a_uint(UINT64_MAX)); /* an unsigned integer for f64: its value, not its bits */
    CHECK(seen[9].f == 18446744073709551615.0);
    accepted_as(9, a_int(-3));
    CHECK(seen[9].f == -3.0);
}

static void test_memset_with_a_negative_size_is_refused_before_the_call(void)
{
    lib_call c;
    if (lib_call_open(&c, NULL, "memset", "ptr(ptr, int, size)", 16)) {
        ohm_ffi_arg args[] = {a_buf(c.b, 0), a_int(0x41), a_int(-1)}; /* as 2^64-1, memset would run off the map */
        call_fails(c.fn, args, 3, OHM_EINVAL, "memset: argument 3 (u64) out of range: -1", c.b);
        CHECK_EQ_INT(((unsigned char *)ohm_buf_data(c.b))[0], 0);
    }
    lib_call_close(&c);
}

static void test_a_host_string_is_refused_for_ptr_and_taken_for_cptr_and_str(void)
{
    ohm_ffi_lib *self = self_lib();
    ohm_ffi_fn *ms = self ? must_func(self, "memset", "ptr(ptr, int, size)") : NULL;
    ohm_ffi_lib *z = ohm_ffi_open("libz.so.1");
    ohm_ffi_fn *crc = z ? must_func(z, "crc32", "ulong(ulong, cptr, uint)") : NULL;
    if (ms) {
        char text[] = "a host string";
        ohm_ffi_arg args[] = {a_str(text), a_int('x'), a_int(4)};
        call_fails(ms, args, 3, OHM_EINVAL,
                   "memset: argument 1 is ptr (writable), got a string; pass a buffer, or declare it cptr or str",
                   NULL);
        CHECK(strcmp(text, "a host string") == 0);
    }
    if (crc) {
        ohm_ffi_arg args[] = {a_int(0), a_str("hello"), a_int(5)};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(crc, args, 3, &r), 0);
        CHECK_EQ_U64(r.u, crc32(0, (const Bytef *)"hello", 5));
        ohm_ffi_arg null_str[] = {a_int(0), a_str(NULL), a_int(0)};
        call_fails(crc, null_str, 3, OHM_EINVAL, "crc32: argument 2 (cptr): string is NULL", NULL);
        ohm_ffi_arg null_buf[] = {a_int(0), a_buf(NULL, 0), a_int(0)};
        call_fails(crc, null_buf, 3, OHM_EINVAL, "crc32: argument 2 (cptr): buffer is NULL", NULL);
        ohm_ffi_arg null_ptr[] = {a_int(0), a_null(), a_int(0)}; /* NULL itself is C's to judge */
        CHECK_EQ_INT(ohm_ffi_call(crc, null_ptr, 3, &r), 0);
        CHECK_EQ_U64(r.u, crc32(0, NULL, 0));
    }
    ohm_ffi_func_free(crc);
    ohm_ffi_func_free(ms);
    if (z) ohm_ffi_close(z);
    if (self) ohm_ffi_close(self);
}

/* ptr refuses b (and a slice of it) naming cptr; cptr and str take it, zero-copy. */
static void read_only_rows(ohm_buf *b)
{
    ohm_ffi_lib *self = self_lib();
    ohm_ffi_fn *ms = self ? must_func(self, "memset", "ptr(ptr, int, size)") : NULL;
    ohm_ffi_fn *chr = self ? must_func(self, "memchr", "cptr(cptr, int, size)") : NULL;
    ohm_ffi_fn *len = self ? must_func(self, "strlen", "size(str)") : NULL;
    if (ms && chr && len) {
        CHECK(ohm_buf_readonly(b));
        unsigned char first = ((unsigned char *)ohm_buf_data(b))[0];
        ohm_ffi_arg args[] = {a_buf(b, 0), a_int(0), a_int(1)};
        call_fails(ms, args, 3, OHM_EINVAL,
                   "memset: argument 1 is ptr (writable), got a read-only buffer; declare it cptr", b);
        ohm_buf *s = ohm_buf_retained_slice(b, 1, 8);
        if (CHECK_NOT_NULL(s)) {
            ohm_ffi_arg sargs[] = {a_buf(s, 0), a_int(0), a_int(1)};
            call_fails(ms, sargs, 3, OHM_EINVAL, "got a read-only buffer; declare it cptr", s);
            ohm_buf_release(s, 1);
        }
        CHECK_EQ_INT(((unsigned char *)ohm_buf_data(b))[0], first);
        ohm_ffi_arg cargs[] = {a_buf(b, 0), a_int('o'), a_int((int64_t)ohm_buf_size(b))};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(chr, cargs, 3, &r), 0);
        CHECK(r.p == memchr(ohm_buf_data(b), 'o', ohm_buf_size(b))); /* a cptr result is an address */
        ohm_ffi_arg largs[] = {a_buf(b, 0)};
        CHECK_EQ_INT(ohm_ffi_call(len, largs, 1, &r), 0);
        CHECK_EQ_U64(r.u, strlen(ohm_buf_data(b)));
    }
    ohm_ffi_func_free(ms);
    ohm_ffi_func_free(chr);
    ohm_ffi_func_free(len);
    if (self) ohm_ffi_close(self);
}

static void test_a_read_only_buffer_is_refused_for_ptr_and_taken_for_cptr_and_str(void)
{
    /* A sealed buffer (guard pages make it own its pages). */
    ohm_buf_set_guard(1);
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, 5000);
    ohm_buf_set_guard(0);
    if (CHECK_NOT_NULL(b)) {
        memcpy(ohm_buf_data(b), "sealed words", 13);
        CHECK_EQ_INT(ohm_buf_seal(b, true), 0);
        read_only_rows(b);
        /* Unsealed, it is writable again. */
        CHECK_EQ_INT(ohm_buf_seal(b, false), 0);
        ohm_ffi_lib *self = self_lib();
        ohm_ffi_fn *ms = self ? must_func(self, "memset", "ptr(ptr, int, size)") : NULL;
        ohm_ffi_arg args[] = {a_buf(b, 0), a_int('w'), a_int(1)};
        if (ms) CHECK_EQ_INT(ohm_ffi_call(ms, args, 3, NULL), 0);
        CHECK_EQ_INT(((char *)ohm_buf_data(b))[0], 'w');
        ohm_ffi_func_free(ms);
        if (self) ohm_ffi_close(self);
        ohm_buf_release(b, 1);
    }
    /* Shared memory opened read-only. */
    char name[64];
    snprintf(name, sizeof name, "/ohm-test-ffi-ro-%d", (int)getpid());
    ohm_buf *w = ohm_buf_shm_create(name, 4096);
    if (CHECK_NOT_NULL(w)) {
        memcpy(ohm_buf_data(w), "shared words", 13);
        ohm_buf *r = ohm_buf_shm_open(name, false);
        if (CHECK_NOT_NULL(r)) {
            read_only_rows(r);
            ohm_buf_release(r, 1);
        }
        ohm_buf_release(w, 1);
        ohm_shm_unlink(name);
    }
}

static void test_released_buffers_are_refused_for_every_pointer_type(void)
{
    static const char *const sigs[] = {"void(ptr)", "void(cptr)", "void(str)"};
    for (size_t i = 0; i < 3; i++) {
        ohm_buf *dead = must_buf(16);
        if (!dead) return;
        CHECK_EQ_INT(ohm_buf_release(dead, 1), 1);
        refused(sigs[i], a_buf(dead, 0), OHM_ESTATE, "f: argument 1 (");
        CHECK_STR_CONTAINS(ohm_last_error(), "released");
    }
    /* NULL for a number, and a NULL buffer or string anywhere, are refused; NULL as a pointer is C's. */
    refused("void(size)", a_null(), OHM_EINVAL, "f: argument 1 is u64, got null");
    refused("void(f64)", a_null(), OHM_EINVAL, "f: argument 1 is f64, got null");
    refused("void(ptr)", a_buf(NULL, 0), OHM_EINVAL, "f: argument 1 (ptr): buffer is NULL");
    refused("void(str)", a_str(NULL), OHM_EINVAL, "f: argument 1 (str): string is NULL");
    refused("void(cptr)", a_int(1), OHM_EINVAL, "f: argument 1 is cptr, got a number");
    refused("void(cptr)", a_uint(1), OHM_EINVAL, "f: argument 1 is cptr, got a number");
    refused("void(u64)", a_str("1"), OHM_EINVAL, "f: argument 1 is u64, got a string");
}

static void test_error_paths_leave_every_refcount_as_it_was(void)
{
    ohm_ffi_fn *fn = must_ptr((void *)refcnt_during, "refcnt_during", "u32(ptr, ptr)");
    ohm_buf *b = must_buf(16), *c = must_buf(16), *dead = must_buf(16);
    if (fn && b && c && dead) {
        CHECK_EQ_INT(ohm_buf_retain(c, 2), 0); /* c at 3 */
        ohm_buf_release(dead, 1);
        /* The first argument is retained, then the second fails: the first's reference is given back. */
        ohm_ffi_arg late_dead[] = {a_buf(b, 0), a_buf(dead, 0)};
        call_fails(fn, late_dead, 2, OHM_ESTATE, "refcnt_during: argument 2 (ptr)", b);
        ohm_ffi_arg late_range[] = {a_buf(c, 0), a_buf(b, 99)};
        call_fails(fn, late_range, 2, OHM_ERANGE, "refcnt_during: argument 2 (ptr)", c);
        CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
        CHECK_EQ_U64(ohm_buf_refcnt(c), 3);
        ohm_ffi_arg late_kind[] = {a_buf(b, 0), a_int(5)};
        call_fails(fn, late_kind, 2, OHM_EINVAL, "refcnt_during: argument 2 is ptr, got a number", b);
    }
    ohm_ffi_fn *u8fn = must_ptr((void *)add_u8, "add_u8", "u8(ptr, u8)");
    if (u8fn && b) {
        ohm_ffi_arg late_int[] = {a_buf(b, 0), a_int(256)};
        call_fails(u8fn, late_int, 2, OHM_EINVAL, "add_u8: argument 2 (u8) out of range: 256", b);
    }
    ohm_ffi_func_free(u8fn);
    if (c) ohm_buf_release(c, 3);
    if (b) ohm_buf_release(b, 1);
    ohm_ffi_func_free(fn);
}

static void test_buffers_are_retained_for_the_call_and_released_after(void)
{
    ohm_ffi_fn *fn = must_ptr((void *)refcnt_during, "refcnt_during", "u32(ptr, ptr)");
    ohm_buf *b = must_buf(16), *other = must_buf(16);
    if (fn && b && other) {
        watched = b;
        ohm_bind_value r = {0};
        ohm_ffi_arg once[] = {a_buf(b, 0), a_buf(other, 0)};
        CHECK_EQ_INT(ohm_ffi_call(fn, once, 2, &r), 0);
        CHECK_EQ_U64(r.u, 2);
        ohm_ffi_arg twice[] = {a_buf(b, 0), a_buf(b, 8)};
        CHECK_EQ_INT(ohm_ffi_call(fn, twice, 2, &r), 0);
        CHECK_EQ_U64(r.u, 3);
        /* A slice shares its parent's count: retaining it for the call shows on the parent. */
        ohm_buf *s = ohm_buf_slice(b, 4, 8);
        ohm_ffi_arg slice[] = {a_buf(s, 0), a_null()};
        if (CHECK_NOT_NULL(s) && CHECK_EQ_INT(ohm_ffi_call(fn, slice, 2, &r), 0)) CHECK_EQ_U64(r.u, 2);
        CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
        CHECK_EQ_U64(ohm_buf_refcnt(other), 1);
        watched = NULL;
    }
    if (b) ohm_buf_release(b, 1);
    if (other) ohm_buf_release(other, 1);
    ohm_ffi_func_free(fn);
}

/* The host releases its only reference from inside the call (a closure): the call's reference keeps the memory
 * alive until the C function is done with it, and the last release after the call frees it. */
typedef struct release_ctx {
    ohm_buf *b;
    uint32_t refcnt_after_release;
} release_ctx;

static int release_inside(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret)
{
    (void)args;
    (void)nargs;
    (void)ret;
    release_ctx *rc = ctx;
    CHECK_EQ_INT(ohm_buf_release(rc->b, 1), 0); /* not the last reference: the call holds one */
    rc->refcnt_after_release = ohm_buf_refcnt(rc->b);
    return 0;
}

static void test_a_buffer_released_by_its_host_during_the_call_lives_until_the_call_returns(void)
{
    ohm_bind_host *h = owner_host();
    ohm_buf *b = must_buf(256);
    release_ctx ctx = {b, 99};
    ohm_ffi_closure *cb = h ? ohm_ffi_closure_create(h, "void()", release_inside, &ctx) : NULL;
    ohm_ffi_fn *fn = must_ptr((void *)call_then_write, "call_then_write", "void(ptr, u64, ptr)");
    if (cb && fn && b) {
        uint64_t id = ohm_buf_id(b);
        ohm_bind_host_enter(h);
        ohm_ffi_arg args[] = {a_buf(b, 0), a_int(256), a_ptr(ohm_ffi_closure_code(cb))};
        CHECK_EQ_INT(ohm_ffi_call(fn, args, 3, NULL), 0);
        ohm_bind_host_leave(h);
        CHECK_EQ_U64(ctx.refcnt_after_release, 1);      /* only the call's reference was left */
        CHECK_EQ_INT(ohm_buf_check(b, id), OHM_ESTATE); /* freed when the call released it */
        CHECK_EQ_U64(ohm_buf_refcnt(b), 0);
    }
    ohm_ffi_func_free(fn);
    ohm_ffi_closure_free(cb);
    if (h) ohm_bind_host_destroy(h);
}

/* ---- closures ---- */

typedef struct fail_ctx {
    atomic_int calls;
    int code;
    const char *message;
} fail_ctx;

static int cmp_fails(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret)
{
    (void)args;
    (void)nargs;
    ret->i = 12345; /* ignored: a failed closure returns zero to C */
    fail_ctx *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    return ohm_bind_fail(f->code, f->message);
}

static void sort_with(ohm_bind_host *h, ohm_ffi_closure_fn *fn, void *ctx, int want_rc, const char *want_msg)
{
    ohm_ffi_lib *self = self_lib();
    ohm_ffi_fn *qs = self ? must_func(self, "qsort", "void(ptr, size, size, ptr)") : NULL;
    ohm_ffi_closure *cmp = ohm_ffi_closure_create(h, "int(ptr, ptr)", fn, ctx);
    CHECK_NOT_NULL(cmp);
    ohm_buf *b = must_buf(64 * 4);
    if (qs && cmp && b) {
        fill_random_i32(ohm_buf_data(b), 64, 3);
        ohm_ffi_arg args[] = {a_buf(b, 0), a_int(64), a_int(4), a_ptr(ohm_ffi_closure_code(cmp))};
        if (want_rc) call_fails(qs, args, 4, want_rc, want_msg, b);
        else CHECK_EQ_INT(ohm_ffi_call(qs, args, 4, NULL), 0);
        CHECK_EQ_U64(ohm_buf_refcnt(b), 1);
    }
    if (b) ohm_buf_release(b, 1);
    ohm_ffi_closure_free(cmp);
    ohm_ffi_func_free(qs);
    if (self) ohm_ffi_close(self);
}

static void test_a_failing_closure_fails_the_call_with_its_code_and_message(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    ohm_bind_host_enter(h);
    fail_ctx f = {0, OHM_ECALLBACK, "cmp: attempt to compare nil with number"};
    sort_with(h, cmp_fails, &f, OHM_ECALLBACK,
              "closure 'int(ptr, ptr)' failed: cmp: attempt to compare nil with number");
    /* The host function ran once: after a failure the call's other comparisons return 0 without host code. */
    CHECK_EQ_INT(atomic_load(&f.calls), 1);

    /* The closure's own code is passed on. */
    fail_ctx g = {0, OHM_ELIMIT, "cmp: no memory for the key"};
    sort_with(h, cmp_fails, &g, OHM_ELIMIT, "failed: cmp: no memory for the key");
    CHECK_EQ_INT(atomic_load(&g.calls), 1);
    ohm_bind_host_leave(h);
    ohm_bind_host_destroy(h);
}

static void test_a_closure_whose_host_is_not_entered_on_this_thread_is_refused(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    atomic_int calls = 0;
    sort_with(h, cmp_i32, &calls, OHM_ECALLBACK, "closure 'int(ptr, ptr)' refused: ");
    CHECK_STR_CONTAINS(ohm_last_error(), "cannot run on this thread");
    CHECK_EQ_INT(atomic_load(&calls), 0); /* no host code ran */

    /* Entered and left again: refused again. Entered: runs. */
    ohm_bind_host_enter(h);
    ohm_bind_host_leave(h);
    sort_with(h, cmp_i32, &calls, OHM_ECALLBACK, "cannot run on this thread");
    CHECK_EQ_INT(atomic_load(&calls), 0);
    ohm_bind_host_enter(h);
    sort_with(h, cmp_i32, &calls, 0, NULL);
    ohm_bind_host_leave(h);
    CHECK(atomic_load(&calls) > 0);
    ohm_bind_host_destroy(h);
}

typedef struct thread_call {
    ohm_bind_host *h;
    atomic_int calls;
    int rc;
    char msg[256];
} thread_call;

static void *sort_on_other_thread(void *p)
{
    thread_call *t = p;
    ohm_ffi_lib *self = ohm_ffi_open(NULL);
    ohm_ffi_fn *qs = self ? ohm_ffi_func(self, "qsort", "void(ptr, size, size, ptr)") : NULL;
    ohm_ffi_closure *cmp = ohm_ffi_closure_create(t->h, "int(ptr, ptr)", cmp_i32, &t->calls);
    int32_t v[16];
    fill_random_i32(v, 16, 5);
    ohm_ffi_arg args[] = {a_ptr(v), a_int(16), a_int(4), a_ptr(cmp ? ohm_ffi_closure_code(cmp) : NULL)};
    t->rc = qs && cmp ? ohm_ffi_call(qs, args, 4, NULL) : 1;
    snprintf(t->msg, sizeof t->msg, "%s", ohm_last_error());
    ohm_ffi_closure_free(cmp);
    ohm_ffi_func_free(qs);
    if (self) ohm_ffi_close(self);
    return NULL;
}

static void test_a_closure_called_on_a_thread_other_than_its_hosts_is_refused(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    ohm_bind_host_enter(h); /* running here, on the test's thread, not on the other one */
    thread_call t = {.h = h};
    pthread_t th;
    if (CHECK_EQ_INT(pthread_create(&th, NULL, sort_on_other_thread, &t), 0)) {
        pthread_join(th, NULL);
        CHECK_EQ_INT(t.rc, OHM_ECALLBACK);
        CHECK_STR_CONTAINS(t.msg, "cannot run on this thread: its host is not running here");
        CHECK_EQ_INT(atomic_load(&t.calls), 0);
    }
    ohm_bind_host_leave(h);
    ohm_bind_host_destroy(h);
}

static void test_an_any_thread_host_is_attached_around_each_closure_call(void)
{
    attach_log log = {0};
    ohm_bind_host *h = any_thread_host(&log);
    if (!h) return;
    atomic_int calls = 0;
    sort_with(h, cmp_i32, &calls, 0, NULL); /* no enter needed */
    CHECK(atomic_load(&calls) > 0);
    CHECK_EQ_INT(atomic_load(&log.attached), atomic_load(&calls));
    CHECK_EQ_INT(atomic_load(&log.detached), atomic_load(&calls));

    /* An attach that fails refuses the closure with the attach's code and message. */
    atomic_store(&log.refuse, OHM_ENOMEM);
    int before = atomic_load(&calls);
    sort_with(h, cmp_i32, &calls, OHM_ENOMEM, "closure 'int(ptr, ptr)' refused: the JVM cannot attach this thread");
    CHECK_EQ_INT(atomic_load(&calls), before);
    CHECK_EQ_INT(atomic_load(&log.attached), atomic_load(&log.detached));
    ohm_bind_host_destroy(h);
}

/* A closure over every type, called through ohm_ffi_call on its own signature and directly from C. */
static int echo_all(void *ctx, const ohm_bind_value *a, unsigned n, ohm_bind_value *ret)
{
    (void)ctx;
    CHECK_EQ_U64(n, 12);
    CHECK_EQ_INT(a[0].i, -100);
    CHECK_EQ_U64(a[1].u, 200);
    CHECK_EQ_INT(a[2].i, -30000);
    CHECK_EQ_U64(a[3].u, 60000);
    CHECK_EQ_INT(a[4].i, -2000000000);
    CHECK_EQ_U64(a[5].u, 4000000000u);
    CHECK_EQ_INT(a[6].i, INT64_MIN);
    CHECK_EQ_U64(a[7].u, UINT64_MAX);
    CHECK(a[8].f == 0.25);
    CHECK(a[9].f == 1e-300);
    CHECK(a[10].p == (void *)&seen);
    CHECK(a[11].p && strcmp(a[11].p, "str arrives as a pointer") == 0);
    ret->f = 6.5;
    return 0;
}

static int return_value(void *ctx, const ohm_bind_value *a, unsigned n, ohm_bind_value *ret)
{
    (void)a;
    (void)n;
    *ret = *(const ohm_bind_value *)ctx;
    return 0;
}

static void test_closures_convert_every_argument_and_return_type(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    ohm_bind_host_enter(h);
    ohm_ffi_closure *c =
        ohm_ffi_closure_create(h, "f64(i8,u8,i16,u16,i32,u32,i64,u64,f32,f64,ptr,str)", echo_all, NULL);
    if (CHECK_NOT_NULL(c)) {
        const ohm_ffi_fn *sig = ohm_ffi_closure_sig(c);
        CHECK_EQ_U64(ohm_ffi_nargs(sig), 12);
        CHECK_EQ_INT(ohm_ffi_ret_type(sig), OHM_FFI_F64);
        ohm_ffi_arg args[] = {a_int(-100),      a_int(200),         a_int(-30000),
                              a_int(60000),     a_int(-2000000000), a_int(4000000000ll),
                              a_int(INT64_MIN), a_uint(UINT64_MAX), a_flt(0.25),
                              a_flt(1e-300),    a_ptr(&seen),       a_str("str arrives as a pointer")};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(sig, args, 12, &r), 0);
        CHECK(r.f == 6.5);
        /* Directly from C, outside any ohm_ffi_call. */
        double (*f)(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t, float, double, void *,
                    const char *) = (double (*)(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t,
                                                uint64_t, float, double, void *, const char *))ohm_ffi_closure_code(c);
        CHECK(f(-100, 200, -30000, 60000, -2000000000, 4000000000u, INT64_MIN, UINT64_MAX, 0.25f, 1e-300, &seen,
                "str arrives as a pointer") == 6.5);
    }
    ohm_ffi_closure_free(c);

    static const struct {
        const char *sig;
        ohm_bind_value give;
        uint64_t want; /* the bits ohm_ffi_call returns */
    } rets[] = {
        {"i8()", {.i = -5}, (uint64_t)-5},
        {"u8()", {.u = 255}, 255},
        {"i16()", {.i = -32768}, (uint64_t)-32768},
        {"u16()", {.u = 65535}, 65535},
        {"i32()", {.i = -7}, (uint64_t)-7},
        {"u32()", {.u = 4294967295u}, 4294967295u},
        {"i64()", {.i = INT64_MIN}, (uint64_t)INT64_MIN},
        {"u64()", {.u = UINT64_MAX}, UINT64_MAX},
        {"ptr()", {.p = &seen}, (uint64_t)(uintptr_t)&seen},
    };
    for (size_t i = 0; i < sizeof rets / sizeof rets[0]; i++) {
        ohm_ffi_closure *rc = ohm_ffi_closure_create(h, rets[i].sig, return_value, (void *)&rets[i].give);
        if (!CHECK_NOT_NULL(rc)) continue;
        ohm_bind_value r = {.u = 0xdeadbeefdeadbeefull};
        CHECK_EQ_INT(ohm_ffi_call(ohm_ffi_closure_sig(rc), NULL, 0, &r), 0);
        if (!CHECK_EQ_U64(r.u, rets[i].want)) fprintf(stderr, "  for %s\n", rets[i].sig);
        ohm_ffi_closure_free(rc);
    }
    ohm_bind_value quarter = {.f = 0.25};
    ohm_ffi_closure *fc = ohm_ffi_closure_create(h, "f32()", return_value, &quarter);
    if (CHECK_NOT_NULL(fc)) {
        float (*f)(void) = (float (*)(void))ohm_ffi_closure_code(fc);
        CHECK(f() == 0.25f);
    }
    ohm_ffi_closure_free(fc);

    /* A result out of its type's range is the closure's failure. */
    ohm_bind_value big = {.i = 300};
    ohm_ffi_closure *bad = ohm_ffi_closure_create(h, "u8()", return_value, &big);
    if (CHECK_NOT_NULL(bad))
        call_fails(ohm_ffi_closure_sig(bad), NULL, 0, OHM_EINVAL,
                   "closure 'u8()' failed: returned 300, out of range for u8", NULL);
    ohm_ffi_closure_free(bad);
    ohm_bind_host_leave(h);
    ohm_bind_host_destroy(h);
}

/* A closure that notes whether it ran inside an ohm_ffi_call (ohm_ffi_in_call). */
static int note_in_call(void *ctx, const ohm_bind_value *a, unsigned n, ohm_bind_value *ret)
{
    (void)a;
    (void)n;
    *(int *)ctx = ohm_ffi_in_call() ? 1 : 0;
    ret->i = 7;
    return 0;
}

static void *call_code_on_this_thread(void *code)
{
    CHECK_EQ_INT(((int32_t(*)(void))code)(), 7);
    return NULL;
}

static void test_a_closure_knows_whether_a_call_on_its_thread_will_carry_its_failure(void)
{
    attach_log log = {0};
    ohm_bind_host *h = any_thread_host(&log);
    if (!h) return;
    int inside = -1;
    ohm_ffi_closure *c = ohm_ffi_closure_create(h, "i32()", note_in_call, &inside);
    if (CHECK_NOT_NULL(c)) {
        CHECK(!ohm_ffi_in_call());
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(ohm_ffi_closure_sig(c), NULL, 0, &r), 0);
        CHECK_EQ_INT(inside, 1);
        CHECK(!ohm_ffi_in_call()); /* the call is over */
        inside = -1;
        call_code_on_this_thread(ohm_ffi_closure_code(c)); /* C calls it on its own */
        CHECK_EQ_INT(inside, 0);
        inside = -1;
        pthread_t th; /* a thread C started: no call there, whatever this thread is doing */
        if (CHECK_EQ_INT(pthread_create(&th, NULL, call_code_on_this_thread, ohm_ffi_closure_code(c)), 0)) {
            pthread_join(th, NULL);
            CHECK_EQ_INT(inside, 0);
        }
    }
    ohm_ffi_closure_free(c);
    ohm_bind_host_destroy(h);
}

static void test_closure_creation_checks_its_arguments(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    CHECK_NULL(ohm_ffi_closure_create(NULL, "void()", return_value, NULL));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_ffi_closure_create(h, "void()", NULL, NULL));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_NULL(ohm_ffi_closure_create(h, "void(void)", return_value, NULL));
    CHECK_STR_CONTAINS(ohm_last_error(), "at 6: void is only a return type");
    CHECK_NULL(ohm_ffi_closure_code(NULL));
    CHECK_NULL(ohm_ffi_closure_sig(NULL));
    ohm_ffi_closure_free(NULL);
    ohm_bind_host_destroy(h);
}

/* A host function that itself calls through the bridge: the inner call's closure fails, the host function
 * swallows that error, and the outer call succeeds (each call keeps its own closure failures). */
typedef struct nest_ctx {
    ohm_ffi_closure *inner_cb;
    const ohm_ffi_fn *inner_call; /* void(ptr): calls its argument */
    int inner_rc;
} nest_ctx;

static int inner_fails(void *ctx, const ohm_bind_value *a, unsigned n, ohm_bind_value *ret)
{
    (void)ctx;
    (void)a;
    (void)n;
    (void)ret;
    return ohm_bind_fail(OHM_ECALLBACK, "inner failure");
}

static int outer_calls_inner(void *ctx, const ohm_bind_value *a, unsigned n, ohm_bind_value *ret)
{
    (void)a;
    (void)n;
    nest_ctx *c = ctx;
    ohm_ffi_arg args[] = {a_ptr(ohm_ffi_closure_code(c->inner_cb))};
    c->inner_rc = ohm_ffi_call(c->inner_call, args, 1, NULL);
    ret->i = 7;
    return 0;
}

static void call_it(void (*f)(void)) { f(); }
static int32_t call_it_i32(int32_t (*f)(void)) { return f(); }

static void test_nested_calls_keep_their_own_closure_failures(void)
{
    ohm_bind_host *h = owner_host();
    if (!h) return;
    ohm_bind_host_enter(h);
    ohm_ffi_fn *inner_call = must_ptr((void *)call_it, "call_it", "void(ptr)");
    ohm_ffi_fn *outer_call = must_ptr((void *)call_it_i32, "call_it_i32", "i32(ptr)");
    nest_ctx ctx = {ohm_ffi_closure_create(h, "void()", inner_fails, NULL), inner_call, 0};
    ohm_ffi_closure *outer = ohm_ffi_closure_create(h, "i32()", outer_calls_inner, &ctx);
    if (inner_call && outer_call && ctx.inner_cb && outer) {
        ohm_ffi_arg args[] = {a_ptr(ohm_ffi_closure_code(outer))};
        ohm_bind_value r = {0};
        CHECK_EQ_INT(ohm_ffi_call(outer_call, args, 1, &r), 0);
        CHECK_EQ_INT(r.i, 7);
        CHECK_EQ_INT(ctx.inner_rc, OHM_ECALLBACK);
        /* And a failure in a later, separate call does not linger into the next one. */
        ohm_ffi_arg again[] = {a_ptr(ohm_ffi_closure_code(ctx.inner_cb))};
        CHECK_EQ_INT(ohm_ffi_call(inner_call, again, 1, NULL), OHM_ECALLBACK);
        CHECK_EQ_INT(ohm_ffi_call(outer_call, args, 1, &r), 0);
    }
    ohm_ffi_closure_free(outer);
    ohm_ffi_closure_free(ctx.inner_cb);
    ohm_ffi_func_free(inner_call);
    ohm_ffi_func_free(outer_call);
    ohm_bind_host_leave(h);
    ohm_bind_host_destroy(h);
}

/* ---- threads ---- */

#define THREAD_CALLS 2000

typedef struct crc_thread {
    const ohm_ffi_fn *crc;
    const ohm_ffi_fn *sort;
    ohm_ffi_closure *cmp;
    ohm_buf *shared;
    unsigned bad;
} crc_thread;

static void *crc_loop(void *p)
{
    crc_thread *t = p;
    uLong want = crc32(0, ohm_buf_data(t->shared), (uInt)ohm_buf_size(t->shared));
    for (int i = 0; i < THREAD_CALLS; i++) {
        ohm_ffi_arg args[] = {a_int(0), a_buf(t->shared, 0), a_int((int64_t)ohm_buf_size(t->shared))};
        ohm_bind_value r = {0};
        if (ohm_ffi_call(t->crc, args, 3, &r) != 0 || r.u != want) t->bad++;
        if (i % 100 == 0) {
            int32_t v[32];
            fill_random_i32(v, 32, (uint64_t)i);
            ohm_ffi_arg sa[] = {a_ptr(v), a_int(32), a_int(4), a_ptr(ohm_ffi_closure_code(t->cmp))};
            if (ohm_ffi_call(t->sort, sa, 4, NULL) != 0) t->bad++;
            for (int k = 1; k < 32; k++) t->bad += v[k - 1] > v[k];
        }
    }
    return NULL;
}

static void test_one_function_and_closure_called_from_two_threads_at_once(void)
{
    attach_log log = {0};
    ohm_bind_host *h = any_thread_host(&log);
    ohm_ffi_lib *z = ohm_ffi_open("libz.so.1");
    ohm_ffi_lib *self = self_lib();
    CHECK_NOT_NULL(z);
    ohm_ffi_fn *crc = z ? must_func(z, "crc32", "ulong(ulong, ptr, uint)") : NULL;
    ohm_ffi_fn *qs = self ? must_func(self, "qsort", "void(ptr, size, size, ptr)") : NULL;
    atomic_int calls = 0;
    ohm_ffi_closure *cmp = h ? ohm_ffi_closure_create(h, "int(ptr, ptr)", cmp_i32, &calls) : NULL;
    ohm_buf *shared = must_buf(4096);
    if (h && crc && qs && cmp && shared) {
        fill_bytes(ohm_buf_data(shared), 4096, 11, false);
        crc_thread t[2] = {{crc, qs, cmp, shared, 0}, {crc, qs, cmp, shared, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&th[i], NULL, crc_loop, &t[i]), 0);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        CHECK_EQ_U64(t[0].bad + t[1].bad, 0);
        CHECK_EQ_U64(ohm_buf_refcnt(shared), 1);
        CHECK_EQ_INT(atomic_load(&log.attached), atomic_load(&calls));
    }
    if (shared) ohm_buf_release(shared, 1);
    ohm_ffi_closure_free(cmp);
    ohm_ffi_func_free(crc);
    ohm_ffi_func_free(qs);
    if (z) ohm_ffi_close(z);
    if (self) ohm_ffi_close(self);
    if (h) ohm_bind_host_destroy(h);
}

/* The bridge calls small signatures without libffi on x86-64 (ffi.c, "the direct path"); OHM_FFI_DIRECT=0, read
 * when a function is prepared, sends every call through ffi_call. The tests that prepare and call functions run
 * again that way, so both paths meet every check. */
static void test_every_call_again_through_libffi_only(void)
{
    setenv("OHM_FFI_DIRECT", "0", 1);
    test_memset_on_a_buffer_at_an_offset_matches_a_direct_memset();
    test_strlen_of_a_string_and_of_a_buffer_matches_strlen();
    test_qsort_over_a_buffer_with_a_closure_comparator_matches_a_direct_qsort();
    test_zlib_crc32_of_a_buffer_range_matches_a_direct_crc32();
    test_zlib_compress2_between_buffers_then_uncompress_gives_the_input_back();
    test_integers_out_of_their_type_range_are_einval_with_the_value();
    test_every_type_reaches_c_exactly();
    test_returns_are_sign_or_zero_extended_per_type();
    test_narrow_results_ignore_the_dirty_upper_bits_of_the_register();
    test_interleaved_integer_and_float_arguments_reach_c_in_order();
    test_every_integer_type_refuses_a_wrong_sign_or_width_from_signed_and_unsigned_hosts();
    test_a_host_string_is_refused_for_ptr_and_taken_for_cptr_and_str();
    test_a_read_only_buffer_is_refused_for_ptr_and_taken_for_cptr_and_str();
    test_error_paths_leave_every_refcount_as_it_was();
    test_buffers_are_retained_for_the_call_and_released_after();
    test_a_buffer_released_by_its_host_during_the_call_lives_until_the_call_returns();
    test_a_failing_closure_fails_the_call_with_its_code_and_message();
    test_an_any_thread_host_is_attached_around_each_closure_call();
    test_closures_convert_every_argument_and_return_type();
    test_nested_calls_keep_their_own_closure_failures();
    unsetenv("OHM_FFI_DIRECT");
}

int main(void)
{
    RUN(test_parse_accepts_the_grammar_with_free_whitespace_and_aliases);
    RUN(test_bad_signatures_are_einval_naming_the_position);
    RUN(test_a_long_bad_signature_is_cut_in_the_message);
    RUN(test_unknown_library_and_symbol_are_einval_with_dlerror_text);
    RUN(test_a_function_reports_its_types_and_name);
    RUN(test_memset_on_a_buffer_at_an_offset_matches_a_direct_memset);
    RUN(test_strlen_of_a_string_and_of_a_buffer_matches_strlen);
    RUN(test_qsort_over_a_buffer_with_a_closure_comparator_matches_a_direct_qsort);
    RUN(test_zlib_crc32_of_a_buffer_range_matches_a_direct_crc32);
    RUN(test_zlib_compress2_between_buffers_then_uncompress_gives_the_input_back);
    RUN(test_wrong_argument_count_is_einval);
    RUN(test_an_argument_whose_kind_does_not_fit_its_type_is_einval);
    RUN(test_integers_out_of_their_type_range_are_einval_with_the_value);
    RUN(test_every_type_reaches_c_exactly);
    RUN(test_returns_are_sign_or_zero_extended_per_type);
    RUN(test_narrow_results_ignore_the_dirty_upper_bits_of_the_register);
    RUN(test_interleaved_integer_and_float_arguments_reach_c_in_order);
    RUN(test_a_released_buffer_is_estate_and_an_offset_past_the_end_erange);
    RUN(test_every_integer_type_refuses_a_wrong_sign_or_width_from_signed_and_unsigned_hosts);
    RUN(test_memset_with_a_negative_size_is_refused_before_the_call);
    RUN(test_a_host_string_is_refused_for_ptr_and_taken_for_cptr_and_str);
    RUN(test_a_read_only_buffer_is_refused_for_ptr_and_taken_for_cptr_and_str);
    RUN(test_released_buffers_are_refused_for_every_pointer_type);
    RUN(test_error_paths_leave_every_refcount_as_it_was);
    RUN(test_buffers_are_retained_for_the_call_and_released_after);
    RUN(test_a_buffer_released_by_its_host_during_the_call_lives_until_the_call_returns);
    RUN(test_a_failing_closure_fails_the_call_with_its_code_and_message);
    RUN(test_a_closure_whose_host_is_not_entered_on_this_thread_is_refused);
    RUN(test_a_closure_called_on_a_thread_other_than_its_hosts_is_refused);
    RUN(test_an_any_thread_host_is_attached_around_each_closure_call);
    RUN(test_closures_convert_every_argument_and_return_type);
    RUN(test_a_closure_knows_whether_a_call_on_its_thread_will_carry_its_failure);
    RUN(test_closure_creation_checks_its_arguments);
    RUN(test_nested_calls_keep_their_own_closure_failures);
    RUN(test_one_function_and_closure_called_from_two_threads_at_once);
    RUN(test_every_call_again_through_libffi_only);
    return check_summary();
}
