/* The libffi bridge: the rules in ohm_bind.h's "The libffi bridge" section.
 *
 * A function is parsed and prepared once (ffi_prep_cif, the per-argument ffi_type table kept beside the cif);
 * ohm_ffi_call then converts the host's arguments into stack slots, checking each one against its type, and
 * calls ffi_call, or, for the small signatures most calls have, calls the function itself (see "the direct
 * path" below: libffi's per-call classification is most of a bridged call's cost). The call path allocates
 * nothing: every array is OHM_FFI_MAX_ARGS long and on the stack.
 *
 * Buffers are passed zero-copy: the argument is the buffer's data pointer at the given offset. Each buffer is
 * retained before the call and released after it, so a host (or a closure) releasing its own reference while
 * the C function runs cannot free memory under it. Every check happens before anything is called; a failed
 * check releases what was already retained, so refcounts are unchanged by a failed call.
 *
 * Closures: a C caller (qsort, a C library's callback) cannot receive a host error. The closure gives it a zero
 * result and records the failure in the frame of the innermost ohm_ffi_call running on this thread (a
 * thread-local pointer to a frame on that call's stack, so nested calls from inside a closure keep their own
 * failures); the call fails with it once the C function returns. The first failure in a call wins, and later
 * invocations of closures in the same call return zero at once without running host code: a host with a
 * pending error (a Java exception) must not be re-entered. A closure called outside any ohm_ffi_call (a C
 * library calling it later, on its own) can only leave its failure in that thread's ohm_last_error().
 */
#define _GNU_SOURCE
#include "bind_internal.h"

#include <dlfcn.h>
#include <ffi.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX   512 /* a closure's recorded failure; the core's error buffer is as long */
#define SIG_SHOW  120 /* characters of a signature quoted in an error message */
#define NAME_SHOW 64  /* characters of a function name in an error message */

/* ---- types ---------------------------------------------------------------------------------------------- */

static const char *const type_names[] = {"void", "i8",  "u8",  "i16", "u16", "i32", "u32",
                                         "i64",  "u64", "f32", "f64", "ptr", "str", "cptr"};
#define NTYPES (sizeof type_names / sizeof type_names[0])

static const struct {
    const char *word;
    ohm_ffi_type type;
} aliases[] = {
    {"char", OHM_FFI_I8},   {"short", OHM_FFI_I16},  {"int", OHM_FFI_I32},  {"uint", OHM_FFI_U32},
    {"long", OHM_FFI_I64},  {"ulong", OHM_FFI_U64},  {"size", OHM_FFI_U64}, {"ssize", OHM_FFI_I64},
    {"float", OHM_FFI_F32}, {"double", OHM_FFI_F64}, {"bool", OHM_FFI_U8},
};

/* The range of each integer type: the least value (0 for unsigned types) and the greatest, as unsigned. A
 * signed host value v fits when int_min <= v and (v < 0 or v <= int_max); an unsigned one when v <= int_max. */
static const int64_t int_min[NTYPES] = {
    [OHM_FFI_I8] = INT8_MIN,
    [OHM_FFI_I16] = INT16_MIN,
    [OHM_FFI_I32] = INT32_MIN,
    [OHM_FFI_I64] = INT64_MIN,
};
static const uint64_t int_max[NTYPES] = {
    [OHM_FFI_I8] = INT8_MAX,   [OHM_FFI_U8] = UINT8_MAX,   [OHM_FFI_I16] = INT16_MAX, [OHM_FFI_U16] = UINT16_MAX,
    [OHM_FFI_I32] = INT32_MAX, [OHM_FFI_U32] = UINT32_MAX, [OHM_FFI_I64] = INT64_MAX, [OHM_FFI_U64] = UINT64_MAX,
};

static inline bool is_int(ohm_ffi_type t) { return t >= OHM_FFI_I8 && t <= OHM_FFI_U64; }
static inline bool is_wide(ohm_ffi_type t) { return t == OHM_FFI_I64 || t == OHM_FFI_U64; }
static inline bool is_float(ohm_ffi_type t) { return t == OHM_FFI_F32 || t == OHM_FFI_F64; }
static inline bool is_pointer(ohm_ffi_type t) { return t == OHM_FFI_PTR || t == OHM_FFI_STR || t == OHM_FFI_CPTR; }
static inline bool is_signed(ohm_ffi_type t)
{
    return t == OHM_FFI_I8 || t == OHM_FFI_I16 || t == OHM_FFI_I32 || t == OHM_FFI_I64;
}

static ffi_type *ffi_type_of(ohm_ffi_type t)
{
    switch (t) {
    case OHM_FFI_VOID: return &ffi_type_void;
    case OHM_FFI_I8: return &ffi_type_sint8;
    case OHM_FFI_U8: return &ffi_type_uint8;
    case OHM_FFI_I16: return &ffi_type_sint16;
    case OHM_FFI_U16: return &ffi_type_uint16;
    case OHM_FFI_I32: return &ffi_type_sint32;
    case OHM_FFI_U32: return &ffi_type_uint32;
    case OHM_FFI_I64: return &ffi_type_sint64;
    case OHM_FFI_U64: return &ffi_type_uint64;
    case OHM_FFI_F32: return &ffi_type_float;
    case OHM_FFI_F64: return &ffi_type_double;
    case OHM_FFI_PTR:
    case OHM_FFI_CPTR:
    case OHM_FFI_STR: return &ffi_type_pointer;
    }
    return NULL;
}

/* ---- signatures ----------------------------------------------------------------------------------------- */

/* A parse error: the signature (cut to SIG_SHOW characters), the 1-based column and what was expected there. */
static int sig_error(const char *sig, size_t pos, const char *what) BIND_COLD;
static int sig_error(const char *sig, size_t pos, const char *what)
{
    size_t n = strlen(sig);
    return ohm_set_errorf(OHM_EINVAL, "signature '%.*s%s' at %zu: %s", SIG_SHOW, sig, n > SIG_SHOW ? "..." : "",
                          pos + 1, what);
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static size_t skip_space(const char *s, size_t i)
{
    while (is_space(s[i])) i++;
    return i;
}

/* Reads the type word at *i (past it on success). */
static int parse_type(const char *sig, size_t *i, ohm_ffi_type *out)
{
    size_t b = *i, e = b;
    while (is_word(sig[e])) e++;
    if (e == b) return sig_error(sig, b, "expected a type");
    size_t len = e - b;
    for (size_t k = 0; k < NTYPES; k++)
        if (strlen(type_names[k]) == len && memcmp(sig + b, type_names[k], len) == 0) {
            *out = (ohm_ffi_type)k;
            *i = e;
            return 0;
        }
    for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
        if (strlen(aliases[k].word) == len && memcmp(sig + b, aliases[k].word, len) == 0) {
            *out = aliases[k].type;
            *i = e;
            return 0;
        }
    char what[96];
    snprintf(what, sizeof what, "unknown type '%.*s%s'", (int)(len > 32 ? 32 : len), sig + b, len > 32 ? "..." : "");
    return sig_error(sig, b, what);
}

int ohm_ffi_parse(const char *sig, ohm_ffi_type *ret, ohm_ffi_type *args, unsigned *nargs)
{
    if (!sig) return ohm_set_errorf(OHM_EINVAL, "signature is NULL");
    ohm_ffi_type r, t, a[OHM_FFI_MAX_ARGS];
    unsigned n = 0;
    size_t i = skip_space(sig, 0);
    int rc = parse_type(sig, &i, &r);
    if (rc) return rc;
    i = skip_space(sig, i);
    if (sig[i] != '(') return sig_error(sig, i, "expected '('");
    i = skip_space(sig, i + 1);
    if (sig[i] != ')') {
        for (;;) {
            size_t at = i;
            if ((rc = parse_type(sig, &i, &t))) return rc;
            if (t == OHM_FFI_VOID)
                return sig_error(sig, at, "void is only a return type (write '()' for no arguments)");
            if (n == OHM_FFI_MAX_ARGS) return sig_error(sig, at, "more than 32 arguments");
            a[n++] = t;
            i = skip_space(sig, i);
            if (sig[i] == ')') break;
            if (sig[i] != ',') return sig_error(sig, i, "expected ',' or ')'");
            i = skip_space(sig, i + 1);
        }
    }
    i = skip_space(sig, i + 1);
    if (sig[i]) return sig_error(sig, i, "unexpected text after ')'");
    if (ret) *ret = r;
    if (args) memcpy(args, a, n * sizeof a[0]);
    if (nargs) *nargs = n;
    return 0;
}

/* ---- libraries ------------------------------------------------------------------------------------------ */

struct ohm_ffi_lib {
    void *handle;
    char name[]; /* the path as given, "the process" for NULL: for messages */
};

ohm_ffi_lib *ohm_ffi_open(const char *path)
{
    const char *name = path ? path : "the process";
    size_t n = strlen(name);
    ohm_ffi_lib *lib = malloc(sizeof *lib + n + 1);
    if (!lib) {
        ohm_set_errorf(OHM_ENOMEM, "out of memory opening %s", name);
        return NULL;
    }
    dlerror();
    lib->handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : dlopen(NULL, RTLD_NOW);
    if (!lib->handle) {
        const char *why = dlerror();
        ohm_set_errorf(OHM_EINVAL, "cannot open %s: %s", name, why ? why : "dlopen failed");
        free(lib);
        return NULL;
    }
    memcpy(lib->name, name, n + 1);
    return lib;
}

int ohm_ffi_close(ohm_ffi_lib *lib)
{
    if (!lib) return ohm_set_errorf(OHM_EINVAL, "library is NULL");
    dlerror();
    int rc = dlclose(lib->handle);
    if (rc) {
        const char *why = dlerror();
        rc = ohm_set_errorf(OHM_EINVAL, "cannot close %s: %s", lib->name, why ? why : "dlclose failed");
    }
    free(lib);
    return rc;
}

/* ---- the direct path ------------------------------------------------------------------------------------
 *
 * ffi_call classifies every argument again on every call: on the 2-core machine it costs 12 ns for i32() and
 * 50-70 ns for i32(ptr, u64, i32) against 2 ns for the direct call, most of the bridge's cost. On x86-64
 * System V, a function whose integer and pointer arguments fit the 6 integer registers and whose float
 * arguments fit the 8 vector registers receives each class in order in its own register file, however the two
 * are interleaved, and nothing on the stack. So one C call through a prototype of 6 integers and 8 doubles puts
 * every argument where the callee reads it; the registers it does not read are ignored (the caller owns them).
 * C calls the function through another prototype, but at the ABI level the call is exact. Integers go
 * sign- or zero-extended to 64 bits (what clang-compiled callees assume for narrow types), an f32 in the low
 * half of its register; a narrow integer result is truncated to its type by take_result, an f32 result read
 * from the low half of xmm0. Every other function, and every function when OHM_FFI_DIRECT=0 (the tests run both
 * ways), goes through ffi_call. The one architecture test of this file is here; other ABIs just use libffi.
 */
#if defined(__x86_64__) && !defined(_WIN32)
#define DIRECT_INT_REGS 6
#define DIRECT_FP_REGS  8
typedef uint64_t direct_int_fn(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double, double, double,
                               double, double, double, double, double);
typedef double direct_fp_fn(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double, double, double, double,
                            double, double, double, double);
#else
#define DIRECT_INT_REGS 0
#define DIRECT_FP_REGS  0
#endif

/* ---- prepared functions --------------------------------------------------------------------------------- */

struct ohm_ffi_fn {
    ffi_cif cif;
    void (*code)(void);
    ohm_ffi_type ret;
    unsigned nargs;
    bool direct;                   /* called without libffi (see "the direct path") */
    uint8_t reg[OHM_FFI_MAX_ARGS]; /* direct: each argument's register within its class */
    ohm_ffi_type args[OHM_FFI_MAX_ARGS];
    ffi_type *atypes[OHM_FFI_MAX_ARGS]; /* the cif points here: it lives as long as the function */
    const char *name, *signature;       /* both in text */
    char text[];
};

/* Whether fn can take the direct path, and each argument's register. */
static bool direct_plan(ohm_ffi_fn *fn)
{
    unsigned ni = 0, nf = 0;
    for (unsigned i = 0; i < fn->nargs; i++) {
        bool fp = is_float(fn->args[i]);
        if (fp ? nf == DIRECT_FP_REGS : ni == DIRECT_INT_REGS) return false;
        fn->reg[i] = (uint8_t)(fp ? nf++ : ni++);
    }
    return DIRECT_INT_REGS > 0 && ohm_env_flag("OHM_FFI_DIRECT", true);
}

/* Fills fn (allocated by the caller with room for name and signature) and prepares its cif. */
static int fn_init(ohm_ffi_fn *fn, void *code, const char *name, const char *sig)
{
    int rc = ohm_ffi_parse(sig, &fn->ret, fn->args, &fn->nargs);
    if (rc) return rc;
    for (unsigned i = 0; i < fn->nargs; i++) fn->atypes[i] = ffi_type_of(fn->args[i]);
    ffi_status st = ffi_prep_cif(&fn->cif, FFI_DEFAULT_ABI, fn->nargs, ffi_type_of(fn->ret), fn->atypes);
    if (st != FFI_OK)
        return ohm_set_errorf(OHM_EINVAL, "%.*s: libffi cannot prepare a call for '%.*s' (ffi_status %d)", NAME_SHOW,
                              name, SIG_SHOW, sig, (int)st);
    size_t nl = strlen(name);
    memcpy(fn->text, name, nl + 1);
    memcpy(fn->text + nl + 1, sig, strlen(sig) + 1);
    fn->name = fn->text;
    fn->signature = fn->text + nl + 1;
    fn->code = (void (*)(void))code;
    fn->direct = direct_plan(fn);
    return 0;
}

static ohm_ffi_fn *fn_create(void *code, const char *name, const char *sig)
{
    if (!sig) {
        ohm_set_errorf(OHM_EINVAL, "signature is NULL");
        return NULL;
    }
    ohm_ffi_fn *fn = malloc(sizeof *fn + strlen(name) + strlen(sig) + 2);
    if (!fn) {
        ohm_set_errorf(OHM_ENOMEM, "out of memory preparing %.*s", NAME_SHOW, name);
        return NULL;
    }
    if (fn_init(fn, code, name, sig)) {
        free(fn);
        return NULL;
    }
    return fn;
}

ohm_ffi_fn *ohm_ffi_func(ohm_ffi_lib *lib, const char *symbol, const char *sig)
{
    if (!lib || !symbol) {
        ohm_set_errorf(OHM_EINVAL, "%s is NULL", lib ? "symbol" : "library");
        return NULL;
    }
    if (ohm_ffi_parse(sig, NULL, NULL, NULL)) return NULL;
    dlerror();
    void *code = dlsym(lib->handle, symbol);
    if (!code) {
        const char *why = dlerror();
        ohm_set_errorf(OHM_EINVAL, "unknown symbol '%.*s' in %s%s%s", NAME_SHOW, symbol, lib->name, why ? ": " : "",
                       why ? why : "");
        return NULL;
    }
    return fn_create(code, symbol, sig);
}

ohm_ffi_fn *ohm_ffi_func_ptr(void *code, const char *name, const char *sig)
{
    if (!code) {
        ohm_set_errorf(OHM_EINVAL, "function pointer is NULL");
        return NULL;
    }
    return fn_create(code, name ? name : "function", sig);
}

void ohm_ffi_func_free(ohm_ffi_fn *fn) { free(fn); }

ohm_ffi_type ohm_ffi_ret_type(const ohm_ffi_fn *fn) { return fn ? fn->ret : OHM_FFI_VOID; }
unsigned ohm_ffi_nargs(const ohm_ffi_fn *fn) { return fn ? fn->nargs : 0; }
ohm_ffi_type ohm_ffi_arg_type(const ohm_ffi_fn *fn, unsigned i)
{
    return fn && i < fn->nargs ? fn->args[i] : OHM_FFI_VOID;
}
const char *ohm_ffi_name(const ohm_ffi_fn *fn) { return fn ? fn->name : NULL; }

/* ---- calls ---------------------------------------------------------------------------------------------- */

/* One argument as libffi reads it: the member of the parameter's type, at offset 0. */
typedef union slot {
    int8_t i8;
    uint8_t u8;
    int16_t i16;
    uint16_t u16;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f32;
    double f64;
    void *p;
} slot;

/* The innermost ohm_ffi_call on this thread: where its closures record a failure (code 0: none yet). */
typedef struct call_frame {
    int code;
    char msg[MSG_MAX];
} call_frame;

static BIND_TLS call_frame *tl_frame;

static const char *kind_name(ohm_ffi_arg_kind k)
{
    switch (k) {
    case OHM_FFI_ARG_INT:
    case OHM_FFI_ARG_UINT:
    case OHM_FFI_ARG_FLOAT: return "a number";
    case OHM_FFI_ARG_STR: return "a string";
    case OHM_FFI_ARG_BUF: return "a buffer";
    case OHM_FFI_ARG_PTR: return "a pointer";
    case OHM_FFI_ARG_NULL: return "null";
    }
    return "an unknown kind";
}

static int arg_error(const ohm_ffi_fn *fn, unsigned i, int code, const char *fmt, ...) BIND_COLD BIND_PRINTF(4, 5);
static int arg_error(const ohm_ffi_fn *fn, unsigned i, int code, const char *fmt, ...)
{
    char detail[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap); /* detail may quote ohm_last_error(): copy it before formatting */
    va_end(ap);
    return ohm_set_errorf(code, "%.*s: argument %u %s", NAME_SHOW, fn->name, i + 1, detail);
}

static int mismatch(const ohm_ffi_fn *fn, unsigned i, ohm_ffi_arg_kind k) BIND_COLD;
static int mismatch(const ohm_ffi_fn *fn, unsigned i, ohm_ffi_arg_kind k)
{
    return arg_error(fn, i, OHM_EINVAL, "is %s, got %s", type_names[fn->args[i]], kind_name(k));
}

/* d as a reader would write it: whole numbers in full (up to 1e21), others in the fewest digits that read back
 * exactly ("1.5", "1e+39"). */
static const char *fmt_double(char *buf, size_t cap, double d)
{
    if (isfinite(d) && d == trunc(d) && fabs(d) < 1e21) {
        snprintf(buf, cap, "%.0f", d);
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (!isfinite(d) || strtod(buf, NULL) == d) break;
    }
    return buf;
}

/* Makes a slot holding a checked 64-bit integer hold it as the member of t, which libffi and the direct path read.
 * On a little-endian ABI that member already is the low bytes: nothing to do, and the compiler drops the rest. */
static inline int put_narrow(ohm_ffi_type t, slot *s)
{
    if (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) return 0;
    uint64_t v = s->u64;
    switch (t) {
    case OHM_FFI_I8: s->i8 = (int8_t)v; break;
    case OHM_FFI_U8: s->u8 = (uint8_t)v; break;
    case OHM_FFI_I16: s->i16 = (int16_t)v; break;
    case OHM_FFI_U16: s->u16 = (uint16_t)v; break;
    case OHM_FFI_I32: s->i32 = (int32_t)v; break;
    case OHM_FFI_U32: s->u32 = (uint32_t)v; break;
    default: break; /* i64, u64: all 64 bits */
    }
    return 0;
}

/* A number for a numeric parameter t: integers checked for sign and range, floats into integers only when whole
 * and in range. */
static int put_number(const ohm_ffi_fn *fn, unsigned i, const ohm_ffi_arg *a, slot *s)
{
    ohm_ffi_type t = fn->args[i];
    char num[40];
    if (a->kind != OHM_FFI_ARG_FLOAT) {
        bool neg = a->kind == OHM_FFI_ARG_INT && a->v.i < 0; /* INT is signed, UINT unsigned: the same bits */
        if (bind_likely(is_int(t))) { /* the common case first: an integer for an integer parameter */
            if (bind_unlikely(neg ? a->v.i < int_min[t] : a->v.u > int_max[t])) {
                if (neg) snprintf(num, sizeof num, "%" PRId64, a->v.i);
                else snprintf(num, sizeof num, "%" PRIu64, a->v.u);
                return arg_error(fn, i, OHM_EINVAL, "(%s) out of range: %s", type_names[t], num);
            }
            s->u64 = a->v.u;
            return put_narrow(t, s);
        }
        if (t == OHM_FFI_F64) return s->f64 = neg ? (double)a->v.i : (double)a->v.u, 0;
        return s->f32 = neg ? (float)a->v.i : (float)a->v.u, 0;
    }
    double d = a->v.f;
    if (t == OHM_FFI_F64) return s->f64 = d, 0;
    if (t == OHM_FFI_F32) {
        /* Converting a finite double beyond float's range is undefined in C; inf and nan convert. */
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return arg_error(fn, i, OHM_EINVAL, "(f32) out of range: %s", fmt_double(num, sizeof num, d));
        return s->f32 = (float)d, 0;
    }
    if (!isfinite(d) || d != trunc(d))
        return arg_error(fn, i, OHM_EINVAL, "(%s) is not a whole number: %s", type_names[t],
                         fmt_double(num, sizeof num, d));
    /* int_min and int_max as doubles are exact or round up to the next power of two, which is out of range */
    if (d < (double)int_min[t] || d >= (double)int_max[t] + 1.0)
        return arg_error(fn, i, OHM_EINVAL, "(%s) out of range: %s", type_names[t], fmt_double(num, sizeof num, d));
    if (d >= 0) s->u64 = (uint64_t)d;
    else s->i64 = (int64_t)d;
    return put_narrow(t, s);
}

/* A buffer for a pointer parameter: retained (the caller releases it after the call, or at once if a later
 * argument fails), then its data at off, checked as ohm_buf_span(b, off, size - off) checks it. A ptr parameter
 * refuses read-only memory: C may write through it, and a store into a sealed or read-only mapped page is a
 * SIGSEGV that kills a JVM. A str parameter also needs a NUL byte before the buffer's end, or the C function
 * would read past it. */
static int put_buffer(const ohm_ffi_fn *fn, unsigned i, const ohm_ffi_arg *a, slot *s, ohm_buf **held, unsigned *nheld)
{
    ohm_buf *b = a->buf;
    if (!b) return arg_error(fn, i, OHM_EINVAL, "(%s): buffer is NULL", type_names[fn->args[i]]);
    int rc = ohm_buf_retain(b, 1);
    if (rc) return arg_error(fn, i, rc, "(%s): %s", type_names[fn->args[i]], ohm_last_error());
    held[(*nheld)++] = b;
    if (bind_unlikely(fn->args[i] == OHM_FFI_PTR && ohm_buf_readonly(b)))
        return arg_error(fn, i, OHM_EINVAL, "is ptr (writable), got a read-only buffer; declare it cptr");
    size_t size = ohm_buf_size(b);
    uint64_t off = a->off;
    rc = ohm_buf_span(b, off, off <= size ? size - off : 0, &s->p);
    if (rc) return arg_error(fn, i, rc, "(%s): %s", type_names[fn->args[i]], ohm_last_error());
    if (fn->args[i] == OHM_FFI_STR && !(s->p && memchr(s->p, 0, size - off)))
        return arg_error(fn, i, OHM_ERANGE,
                         "(str): the buffer has no NUL byte from offset %" PRIu64 " to its end (%zu bytes)", off, size);
    return 0;
}

static void release_all(ohm_buf **held, unsigned n)
{
    while (n) ohm_buf_release(held[--n], 1); /* cannot fail: each holds the reference taken above */
}

/* The C result (libffi widens integers narrower than ffi_arg to a whole ffi_arg) into the host's value. */
static void take_result(ohm_ffi_type t, const void *rv, ohm_bind_value *ret)
{
    ffi_arg a;
    memcpy(&a, rv, sizeof a);
    switch (t) {
    case OHM_FFI_VOID: break;
    case OHM_FFI_I8: ret->i = (int8_t)a; break;
    case OHM_FFI_U8: ret->u = (uint8_t)a; break;
    case OHM_FFI_I16: ret->i = (int16_t)a; break;
    case OHM_FFI_U16: ret->u = (uint16_t)a; break;
    case OHM_FFI_I32: ret->i = (int32_t)a; break;
    case OHM_FFI_U32: ret->u = (uint32_t)a; break;
    case OHM_FFI_I64:
    case OHM_FFI_U64: ret->u = (uint64_t)a; break;
    case OHM_FFI_F32: ret->f = ((const slot *)rv)->f32; break;
    case OHM_FFI_F64: ret->f = ((const slot *)rv)->f64; break;
    case OHM_FFI_PTR:
    case OHM_FFI_CPTR:
    case OHM_FFI_STR: ret->p = ((const slot *)rv)->p; break;
    }
}

#if DIRECT_INT_REGS
/* An argument as its register holds it (see "the direct path"). */
static inline uint64_t int_image(ohm_ffi_type t, const slot *s)
{
    switch (t) {
    case OHM_FFI_I8: return (uint64_t)(int64_t)s->i8;
    case OHM_FFI_U8: return s->u8;
    case OHM_FFI_I16: return (uint64_t)(int64_t)s->i16;
    case OHM_FFI_U16: return s->u16;
    case OHM_FFI_I32: return (uint64_t)(int64_t)s->i32;
    case OHM_FFI_U32: return s->u32;
    case OHM_FFI_I64:
    case OHM_FFI_U64: return s->u64;
    default: return (uint64_t)(uintptr_t)s->p;
    }
}

static inline double fp_image(ohm_ffi_type t, const slot *s)
{
    union {
        double d;
        float f;
        uint64_t u;
    } x = {.u = 0};
    if (t == OHM_FFI_F32) x.f = s->f32;
    else x.d = s->f64;
    return x.d;
}

static void call_direct(const ohm_ffi_fn *fn, const slot *vals, slot *rv)
{
    uint64_t r[DIRECT_INT_REGS] = {0};
    double x[DIRECT_FP_REGS] = {0};
    for (unsigned i = 0; i < fn->nargs; i++) {
        ohm_ffi_type t = fn->args[i];
        if (is_float(t)) x[fn->reg[i]] = fp_image(t, &vals[i]);
        else r[fn->reg[i]] = int_image(t, &vals[i]);
    }
    if (is_float(fn->ret)) {
        double d = ((direct_fp_fn *)fn->code)(r[0], r[1], r[2], r[3], r[4], r[5], x[0], x[1], x[2], x[3], x[4], x[5],
                                              x[6], x[7]);
        memcpy(rv, &d, sizeof d); /* an f32 result is the low half */
    } else {
        rv->u64 = ((direct_int_fn *)fn->code)(r[0], r[1], r[2], r[3], r[4], r[5], x[0], x[1], x[2], x[3], x[4], x[5],
                                              x[6], x[7]);
    }
}
#else
static void call_direct(const ohm_ffi_fn *fn, const slot *vals, slot *rv)
{
    (void)fn, (void)vals, (void)rv; /* never: direct_plan says no on this ABI */
}
#endif

int ohm_ffi_call(const ohm_ffi_fn *fn, const ohm_ffi_arg *args, unsigned nargs, ohm_bind_value *ret)
{
    if (bind_unlikely(!fn)) return ohm_set_errorf(OHM_EINVAL, "function is NULL");
    if (bind_unlikely(nargs != fn->nargs))
        return ohm_set_errorf(OHM_EINVAL, "%.*s: expected %u argument%s (%s), got %u", NAME_SHOW, fn->name, fn->nargs,
                              fn->nargs == 1 ? "" : "s", fn->signature, nargs);
    if (bind_unlikely(nargs && !args))
        return ohm_set_errorf(OHM_EINVAL, "%.*s: arguments are NULL", NAME_SHOW, fn->name);

    slot vals[OHM_FFI_MAX_ARGS];
    void *avals[OHM_FFI_MAX_ARGS];
    ohm_buf *held[OHM_FFI_MAX_ARGS];
    unsigned nheld = 0;
    int rc = 0;
    for (unsigned i = 0; i < nargs && !rc; i++) {
        const ohm_ffi_arg *a = &args[i];
        ohm_ffi_type t = fn->args[i];
        avals[i] = &vals[i];
        if (!is_pointer(t)) { /* a number parameter takes numbers only */
            rc = a->kind <= OHM_FFI_ARG_FLOAT || a->kind == OHM_FFI_ARG_UINT ? put_number(fn, i, a, &vals[i])
                                                                             : mismatch(fn, i, a->kind);
            continue;
        }
        switch (a->kind) {
        case OHM_FFI_ARG_BUF: rc = put_buffer(fn, i, a, &vals[i], held, &nheld); break;
        case OHM_FFI_ARG_PTR: vals[i].p = a->v.p; break;
        case OHM_FFI_ARG_NULL: vals[i].p = NULL; break;
        case OHM_FFI_ARG_STR:
            /* A host string is the host's (or a temporary copy of it): C may read it, never write it. */
            vals[i].p = (void *)a->str;
            if (bind_unlikely(t == OHM_FFI_PTR))
                rc = arg_error(fn, i, OHM_EINVAL,
                               "is ptr (writable), got a string; pass a buffer, or declare it "
                               "cptr or str");
            else if (!a->str) rc = arg_error(fn, i, OHM_EINVAL, "(%s): string is NULL", type_names[t]);
            break;
        default: rc = mismatch(fn, i, a->kind); break;
        }
    }
    if (bind_unlikely(rc)) {
        release_all(held, nheld);
        return rc;
    }

    /* Room for any return: libffi writes a whole ffi_arg for narrower integers. */
    slot rv;
    call_frame frame, *outer = tl_frame;
    frame.code = 0;
    tl_frame = &frame;
    if (fn->direct) call_direct(fn, vals, &rv);
    else ffi_call((ffi_cif *)&fn->cif, fn->code, &rv, avals);
    tl_frame = outer;
    release_all(held, nheld);
    if (bind_unlikely(frame.code)) return ohm_set_error(frame.code, frame.msg);
    if (ret) take_result(fn->ret, &rv, ret);
    return 0;
}

/* ---- closures ------------------------------------------------------------------------------------------- */

struct ohm_ffi_closure {
    ffi_closure *closure;
    ohm_ffi_fn *sig;     /* named by its signature; its code is the closure's entry, so it can be called */
    ohm_bind_host *host; /* referenced (bind_host_ref) for the closure's life */
    ohm_ffi_closure_fn *fn;
    void *ctx;
};

/* Records a closure's failure for the surrounding ohm_ffi_call (the first one wins), and as this thread's
 * error for a caller outside any call. */
static void closure_failed(int code, const char *fmt, ...) BIND_COLD BIND_PRINTF(2, 3);
static void closure_failed(int code, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    call_frame *f = tl_frame;
    if (f && !f->code) {
        f->code = code;
        memcpy(f->msg, msg, sizeof msg);
    }
    ohm_set_error(code, msg);
}

/* A zero of the return type, written as libffi reads it back (a whole ffi_arg for narrow integers). */
static void zero_result(ohm_ffi_type t, void *ret)
{
    if (t == OHM_FFI_VOID) return;
    if (t == OHM_FFI_F32) *(float *)ret = 0.0f;
    else if (t == OHM_FFI_F64) *(double *)ret = 0.0;
    else if (is_pointer(t)) *(void **)ret = NULL;
    else *(ffi_arg *)ret = 0;
}

/* The host's result into the C return slot; narrower integers are range-checked like signed arguments and
 * widened to a whole ffi_arg. An i64/u64 result is taken as its 64 bits: a host returns the upper half of u64
 * as a negative integer (Java's unsigned longs, Lua's wrapped integers), and nothing is out of range there. */
static int give_result(const ohm_ffi_fn *sig, ohm_bind_value v, void *ret)
{
    ohm_ffi_type t = sig->ret;
    if (is_int(t) && !is_wide(t) && (v.i < int_min[t] || (v.i >= 0 && (uint64_t)v.i > int_max[t])))
        return ohm_set_errorf(OHM_EINVAL, "returned %" PRId64 ", out of range for %s", v.i, type_names[t]);
    if (t == OHM_FFI_F32 && isfinite(v.f) && fabs(v.f) > FLT_MAX) {
        char num[40];
        return ohm_set_errorf(OHM_EINVAL, "returned %s, out of range for f32", fmt_double(num, sizeof num, v.f));
    }
    switch (t) {
    case OHM_FFI_VOID: break;
    case OHM_FFI_F32: *(float *)ret = (float)v.f; break;
    case OHM_FFI_F64: *(double *)ret = v.f; break;
    case OHM_FFI_PTR:
    case OHM_FFI_CPTR:
    case OHM_FFI_STR: *(void **)ret = v.p; break;
    default:
        if (is_signed(t)) *(ffi_sarg *)ret = (ffi_sarg)v.i;
        else *(ffi_arg *)ret = (ffi_arg)v.u;
        break;
    }
    return 0;
}

static void closure_entry(ffi_cif *cif, void *ret, void **cargs, void *user)
{
    (void)cif;
    ohm_ffi_closure *c = user;
    const ohm_ffi_fn *sig = c->sig;
    zero_result(sig->ret, ret);
    call_frame *f = tl_frame;
    if (f && f->code) return; /* this call already failed: do not run host code again */

    /* The thread check: an OWNER_THREAD host must be entered here (ohm_bind_host_is_current); an ANY_THREAD
     * host is attached for the call's duration. */
    void *token;
    int rc = bind_host_call_begin(c->host, &token);
    if (rc) {
        char why[MSG_MAX];
        snprintf(why, sizeof why, "%s", ohm_last_error());
        closure_failed(rc, "closure '%.*s' refused: %s", SIG_SHOW, sig->name, why);
        return;
    }
    ohm_bind_value vals[OHM_FFI_MAX_ARGS], r = {0};
    for (unsigned i = 0; i < sig->nargs; i++) {
        const void *p = cargs[i];
        switch (sig->args[i]) {
        case OHM_FFI_I8: vals[i].i = *(const int8_t *)p; break;
        case OHM_FFI_U8: vals[i].u = *(const uint8_t *)p; break;
        case OHM_FFI_I16: vals[i].i = *(const int16_t *)p; break;
        case OHM_FFI_U16: vals[i].u = *(const uint16_t *)p; break;
        case OHM_FFI_I32: vals[i].i = *(const int32_t *)p; break;
        case OHM_FFI_U32: vals[i].u = *(const uint32_t *)p; break;
        case OHM_FFI_I64: vals[i].i = *(const int64_t *)p; break;
        case OHM_FFI_U64: vals[i].u = *(const uint64_t *)p; break;
        case OHM_FFI_F32: vals[i].f = *(const float *)p; break;
        case OHM_FFI_F64: vals[i].f = *(const double *)p; break;
        default: vals[i].p = *(void *const *)p; break; /* ptr, cptr, str: not converted */
        }
    }
    rc = c->fn(c->ctx, vals, sig->nargs, &r);
    if (rc >= 0) rc = give_result(sig, r, ret);
    char why[MSG_MAX];
    if (rc < 0) snprintf(why, sizeof why, "%s", ohm_bind_message(rc)); /* before the detach can touch it */
    bind_host_call_end(c->host, token);
    if (rc < 0) {
        zero_result(sig->ret, ret);
        closure_failed(rc, "closure '%.*s' failed: %s", SIG_SHOW, sig->name, why);
    }
}

ohm_ffi_closure *ohm_ffi_closure_create(ohm_bind_host *h, const char *sig, ohm_ffi_closure_fn *fn, void *ctx)
{
    if (!h || !fn) {
        ohm_set_errorf(OHM_EINVAL, "closure: %s is NULL", h ? "function" : "host");
        return NULL;
    }
    if (ohm_ffi_parse(sig, NULL, NULL, NULL)) return NULL;
    ohm_ffi_closure *c = malloc(sizeof *c);
    if (!c) {
        ohm_set_errorf(OHM_ENOMEM, "out of memory creating a closure");
        return NULL;
    }
    *c = (ohm_ffi_closure){NULL, NULL, h, fn, ctx};
    void *code = NULL;
    c->closure = ffi_closure_alloc(sizeof(ffi_closure), &code);
    if (!c->closure) {
        free(c);
        ohm_set_errorf(OHM_ENOMEM, "closure '%.*s': libffi cannot allocate a trampoline", SIG_SHOW, sig);
        return NULL;
    }
    c->sig = fn_create(code, sig, sig);
    ffi_status st = c->sig ? ffi_prep_closure_loc(c->closure, &c->sig->cif, closure_entry, c, code) : FFI_OK;
    if (!c->sig || st != FFI_OK) {
        if (c->sig)
            ohm_set_errorf(OHM_EINVAL, "closure '%.*s': libffi cannot prepare it (ffi_status %d)", SIG_SHOW, sig,
                           (int)st);
        ohm_ffi_func_free(c->sig);
        ffi_closure_free(c->closure);
        free(c);
        return NULL;
    }
    bind_host_ref(h);
    return c;
}

bool ohm_ffi_in_call(void) { return tl_frame != NULL; }

void *ohm_ffi_closure_code(const ohm_ffi_closure *c) { return c ? (void *)c->sig->code : NULL; }
const ohm_ffi_fn *ohm_ffi_closure_sig(const ohm_ffi_closure *c) { return c ? c->sig : NULL; }

void ohm_ffi_closure_free(ohm_ffi_closure *c)
{
    if (!c) return;
    ffi_closure_free(c->closure);
    ohm_ffi_func_free(c->sig);
    bind_host_unref(c->host);
    free(c);
}
