/* ohm_bind — the host-neutral binding layer shared by the Java (jni/) and Lua (lua/) bindings.
 *
 * Everything a binding would otherwise write twice lives here, in C, and includes neither jni.h nor lua.h:
 *  - errors: one table from an OHM_E* code to the exception kind a host raises and the message it shows;
 *  - checked host integers: hosts pass signed 64-bit sizes and offsets (Java long, lua_Integer);
 *  - typed access: i8..u64, f32, f64 in little- and big-endian, bytes, bits, copy, fill, search, compare;
 *  - host-callback dispatch: spill, eviction, leak-report and closure callbacks run only on a thread the host
 *    can use, and a callback's failure comes back as an error code, never as an unwinding through C frames;
 *  - the libffi bridge: call any C function of any shared library from a signature string, with numbers,
 *    strings and ohm buffers (zero-copy), and closures that let C call back into the host.
 *
 * Conventions are ohm.h's: 0 or a negative OHM_E* code, NULL on failure, ohm_last_error() holds the message.
 * Every function is safe to call from many threads unless its comment says otherwise.
 */
#ifndef OHM_BIND_H
#define OHM_BIND_H

#include "ohm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------------
 * Errors: the one place that decides how a failure looks in each host
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_bind_error {
    int code;               /* the OHM_E* code (0 for OHM_OK) */
    const char *name;       /* "ERANGE": the code Lua returns as the third value of nil, msg, code */
    const char *java_class; /* the exception a Java binding throws ("java/lang/IndexOutOfBoundsException") */
    bool raise;             /* a programmer error: Lua raises it; false: a runtime failure, Lua returns nil,
                                message, code (ENOMEM, ELIMIT, ESYS, EPERM, ETIMEDOUT, ECANCELED, ECALLBACK) */
} ohm_bind_error;

/* How many codes OHM_ERRORS lists: the table is indexed by -code, 0 .. OHM_BIND_ERROR_COUNT - 1. */
enum {
#define OHM__BIND_COUNT_ONE(name, value, kind, text) +1
    OHM_BIND_ERROR_COUNT = 0 OHM_ERRORS(OHM__BIND_COUNT_ONE)
#undef OHM__BIND_COUNT_ONE
};

/* The table entry for code; an unknown code gets a generic entry (name "EUNKNOWN"). Never NULL. */
OHM_API const ohm_bind_error *ohm_bind_error_of(int code);
/* The message a host shows for a failure with code on this thread: ohm_last_error() when it holds a message
 * for that code, else ohm_strerror(code). Valid until the thread's next ohm call. */
OHM_API const char *ohm_bind_message(int code);
/* For hosts: sets this thread's error (code and message, copied) and returns code, so a host callback can say
 * why it failed ("spill of consumer 'sorter' failed: attempt to index a nil value"). */
OHM_API int ohm_bind_fail(int code, const char *message);

/* ---------------------------------------------------------------------------------------------------------
 * Checked host integers. Hosts have signed 64-bit integers; the core has size_t.
 * ------------------------------------------------------------------------------------------------------- */

/* A size from a host: OHM_EINVAL for a negative value ("size -1 is negative") or one above max (0 = no
 * limit beyond SIZE_MAX). what names the value in the message ("size", "capacity"). */
OHM_API int ohm_bind_size(int64_t value, uint64_t max, const char *what, size_t *out);
/* An (offset, length) range within size bytes: OHM_ERANGE for a negative offset or length, an overflow, or a
 * range past the end, with the numbers in the message ("offset 12 + length 8 exceeds buffer size 16"). */
OHM_API int ohm_bind_range(uint64_t size, int64_t off, int64_t len);

/* ---------------------------------------------------------------------------------------------------------
 * Typed access at checked offsets. Every call checks that the buffer is live (OHM_ESTATE) and the range
 * (OHM_ERANGE); negative offsets and lengths are OHM_ERANGE. Nothing is read or written on error.
 * ------------------------------------------------------------------------------------------------------- */

typedef enum ohm_bind_type {
    OHM_BT_I8 = 0,
    OHM_BT_U8,
    OHM_BT_I16,
    OHM_BT_U16,
    OHM_BT_I32,
    OHM_BT_U32,
    OHM_BT_I64,
    OHM_BT_U64,
    OHM_BT_F32,
    OHM_BT_F64
} ohm_bind_type;
#define OHM_BT_COUNT 10

/* The width of a type in bytes, and its name ("u16"). */
OHM_API unsigned ohm_bind_type_size(ohm_bind_type t);
OHM_API const char *ohm_bind_type_name(ohm_bind_type t);

/* Byte order of a typed access. */
#define OHM_BIND_LE 0
#define OHM_BIND_BE 1

/* A value crossing the layer: integers in i (signed types, sign-extended) or u (unsigned types, zero-extended;
 * i64/u64 share the bits), floating point in f (f32 widened exactly). */
typedef union ohm_bind_value {
    int64_t i;
    uint64_t u;
    double f;
    void *p;
} ohm_bind_value;

/* Reads a t at off in the given byte order. */
OHM_API int ohm_bind_get(const ohm_buf *b, int64_t off, ohm_bind_type t, int order, ohm_bind_value *out);
/* Writes v as a t at off: integers are truncated to the width (two's complement, as Luau and Java do), f32
 * rounds v.f to float. */
OHM_API int ohm_bind_set(ohm_buf *b, int64_t off, ohm_bind_type t, int order, ohm_bind_value v);

/* A checked pointer to [off, off+len): how a host copies bytes out (readstring) or in. Valid while the caller
 * holds a reference. len 0 gives a valid (possibly dangling-but-unused) pointer. */
OHM_API int ohm_bind_span(const ohm_buf *b, int64_t off, int64_t len, void **ptr);
/* Copies len bytes from src into b at off (writestring, bulk put). */
OHM_API int ohm_bind_write(ohm_buf *b, int64_t off, const void *src, int64_t len);
/* Copies len bytes of b at off into dst (bulk get). */
OHM_API int ohm_bind_read(const ohm_buf *b, int64_t off, void *dst, int64_t len);

/* Bits, least significant first from bit 0 of byte 0 (Luau's readbits/writebits): count in [0, 64];
 * the range is checked in bits ("bit offset 30 + count 8 exceeds 32 bits"). */
OHM_API int ohm_bind_get_bits(const ohm_buf *b, int64_t bit_off, int count, uint64_t *out);
OHM_API int ohm_bind_set_bits(ohm_buf *b, int64_t bit_off, int count, uint64_t value);

/* Copies len bytes between buffers (the same buffer, a slice of it, overlapping ranges: all safe). */
OHM_API int ohm_bind_copy(ohm_buf *dst, int64_t dst_off, const ohm_buf *src, int64_t src_off, int64_t len);
/* Sets len bytes at off to byte. */
OHM_API int ohm_bind_fill(ohm_buf *b, int64_t off, uint8_t byte, int64_t len);
/* The offset of the first occurrence of needle (nlen bytes) within [off, off+len) of b, or -1; negative
 * OHM_E* on error. An empty needle is found at off. */
OHM_API int64_t ohm_bind_find(const ohm_buf *b, int64_t off, int64_t len, const void *needle, size_t nlen);
/* Lexicographic comparison of [a_off, a_off+len) and [b_off, b_off+len) as unsigned bytes: *cmp is <0, 0
 * or >0. */
OHM_API int ohm_bind_compare(const ohm_buf *a, int64_t a_off, const ohm_buf *b, int64_t b_off, int64_t len, int *cmp);
/* Whole buffers: unsigned bytes, then the shorter first (Java's ByteBuffer.compareTo order). */
OHM_API int ohm_bind_compare_all(const ohm_buf *a, const ohm_buf *b, int *cmp);

/* ---------------------------------------------------------------------------------------------------------
 * Hosts and callback dispatch
 *
 * A host (one JVM, one lua_State) registers itself once with ohm_bind_host_create. Runtime callbacks (a
 * consumer's spill, the block cache's eviction, a closure called from C) and leak reports reach the host
 * through this layer, which guarantees:
 *  - a callback runs only on a thread the host can use. OHM_BIND_ANY_THREAD hosts (the JVM) make any thread
 *    usable through attach/detach. OHM_BIND_OWNER_THREAD hosts (a lua_State) run host code only on a thread
 *    that is inside ohm_bind_host_enter/leave for that host, i.e. the thread running the state right now.
 *    A synchronous callback (spill, eviction, closure) that would run anywhere else is not run: the call that
 *    caused it fails with OHM_ECALLBACK ("... cannot run on this thread: its host is not running here").
 *    A leak report that arrives anywhere else is copied and queued; the owner thread receives it at its next
 *    ohm_bind_host_enter (or ohm_bind_host_drain).
 *  - a host callback returns a result or a negative OHM_E* code (after ohm_bind_fail for the message); it
 *    must catch its own exceptions (Java) or run under lua_pcall (Lua). A closure called from C cannot return
 *    an error to its C caller: it returns a zero value, and the ohm_ffi_call that led to it fails with the
 *    closure's error once the C function has returned.
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_bind_host ohm_bind_host;

typedef enum ohm_bind_threads {
    OHM_BIND_ANY_THREAD = 0, /* attach makes any thread usable (a JVM) */
    OHM_BIND_OWNER_THREAD    /* only the thread inside ohm_bind_host_enter (a lua_State) */
} ohm_bind_threads;

/* A leak report as a host receives it: a copy, valid during the call only. */
typedef struct ohm_bind_leak {
    ohm_leak_reason reason;
    uint64_t buffer_id;
    size_t size;
    const char *host_site; /* the creation site text the host attached, or NULL */
    const char *text;      /* the whole report as text */
    const char *json;      /* the report as one JSON object */
} ohm_bind_leak;

typedef struct ohm_bind_host_ops {
    ohm_bind_threads threads;
    /* ANY_THREAD only: make the calling thread able to run host code; 0 and *token for detach, or a negative
     * OHM_E* code (after ohm_bind_fail). Either may be NULL (every thread usable). */
    int (*attach)(void *host_arg, void **token);
    void (*detach)(void *host_arg, void *token);
    /* Receives leak reports routed to this host; NULL = the log. Runs in host context. */
    void (*leak)(void *host_arg, const ohm_bind_leak *report);
} ohm_bind_host_ops;

/* Registers a host. ops is copied. NULL with OHM_ENOMEM/OHM_EINVAL. */
OHM_API ohm_bind_host *ohm_bind_host_create(const ohm_bind_host_ops *ops, void *host_arg);
/* Unregisters a host: queued reports are dropped (their count is logged); callbacks still registered through
 * it then fail with OHM_ECALLBACK. Must not be called while one of its callbacks runs. */
OHM_API int ohm_bind_host_destroy(ohm_bind_host *h);
/* OWNER_THREAD hosts: the calling thread runs h until the matching leave (nestable, per thread); enter
 * delivers queued leak reports first. Cheap: a thread-local push. */
OHM_API void ohm_bind_host_enter(ohm_bind_host *h);
OHM_API void ohm_bind_host_leave(ohm_bind_host *h);
/* Whether the calling thread may run h's code now (inside enter/leave, or an ANY_THREAD host). */
OHM_API bool ohm_bind_host_is_current(const ohm_bind_host *h);
/* Delivers h's queued leak reports if the calling thread may run h; returns how many were delivered. */
OHM_API int ohm_bind_host_drain(ohm_bind_host *h);
/* Leak reports go to the host current on the reporting thread, else to the default host (NULL = none: the
 * log). The layer installs its router as the core's leak handler at the first host creation. */
OHM_API void ohm_bind_host_set_default(ohm_bind_host *h);
/* ohm_leak_check delivering each report to h's leak callback on this thread (which must be able to run h).
 * Returns the number of buffers reported, or a negative code. */
OHM_API int64_t ohm_bind_leak_check(ohm_bind_host *h, uint64_t mark);

/* Consumers whose spill runs in a host. spill(ctx, size, trigger_ctx) returns the bytes released, 0, or a
 * negative OHM_E* code; trigger_ctx is the ctx of the consumer whose acquire asked (possibly ctx itself).
 * The returned consumer's arg is the binding's own record; use ohm_bind_consumer_ctx to get ctx back. */
typedef int64_t ohm_bind_spill_fn(void *ctx, uint64_t size, void *trigger_ctx);
OHM_API ohm_consumer *ohm_bind_consumer_create(ohm_bind_host *h, ohm_task *t, ohm_mem_mode mode, const char *name,
                                               ohm_bind_spill_fn *spill, void *ctx);
OHM_API void *ohm_bind_consumer_ctx(const ohm_consumer *c);
/* ohm_consumer_destroy plus the binding's record. ohm_task_end frees the records of consumers still there. */
OHM_API int ohm_bind_consumer_destroy(ohm_consumer *c);

/* An eviction listener for the block cache: pass ohm_bind_evict and the listener as ohm_block_put's evict and
 * arg. evict(ctx, block_id, buf) returns 0 to let the block go or a negative OHM_E* code to keep it. */
typedef int ohm_bind_evict_listener_fn(void *ctx, const char *block_id, ohm_buf *buf);
typedef struct ohm_bind_evictor ohm_bind_evictor;
OHM_API ohm_bind_evictor *ohm_bind_evictor_create(ohm_bind_host *h, ohm_bind_evict_listener_fn *fn, void *ctx);
/* Frees the listener; blocks still cached with it must be removed first (their eviction would fail). */
OHM_API void ohm_bind_evictor_destroy(ohm_bind_evictor *e);
OHM_API int ohm_bind_evict(void *evictor, const char *block_id, ohm_buf *buf);

/* ---------------------------------------------------------------------------------------------------------
 * The libffi bridge
 *
 * Signature grammar (whitespace is free):
 *     signature := type '(' [ type { ',' type } ] ')'        e.g. "i32(ptr, u64, str)", "void()"
 *     type      := 'void' (return only) | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64'
 *                | 'f32' | 'f64' | 'ptr' | 'cptr' | 'str'
 *                | aliases: 'char'=i8 'short'=i16 'int'=i32 'uint'=u32 'long'=i64 'ulong'=u64
 *                  'size'=u64 'ssize'=i64 'float'=f32 'double'=f64 'bool'=u8 (LP64)
 * Pointer parameters, by what C may do through them:
 *  - 'ptr' (void *: C may write) takes a writable buffer (its data pointer plus an optional offset,
 *    zero-copy), a raw address or NULL. Never a host string (C would write into the host's copy) and never a
 *    read-only buffer (ohm_buf_readonly: a read-only mapping or a sealed buffer, whose pages fault on a write).
 *  - 'cptr' (const void *: C only reads) takes the same, a read-only buffer, or a host string's bytes.
 *  - 'str' (const char *) takes a NUL-terminated host string, any buffer (with a NUL before its end), a raw
 *    address or NULL. It is read-only by nature, so read-only buffers are accepted.
 * NULL reaches every pointer parameter as C's NULL: whether the function accepts it is the function's contract.
 * As a return type 'ptr' and 'cptr' give an address and 'str' a pointer to a NUL-terminated string (NULL for a
 * NULL return) that the host copies. At most 32 arguments; variadic functions are not supported.
 *
 * Integers from a host are checked against the parameter's type, sign and width, here and nowhere else: a host
 * passes a signed 64-bit integer (Java long, lua_Integer) as OHM_FFI_ARG_INT, so a u64 parameter takes 0 ..
 * 2^63-1 that way and a negative value is an error, never 2^64-1; the upper half of u64 needs an explicit
 * unsigned value (OHM_FFI_ARG_UINT) or a whole float.
 * ------------------------------------------------------------------------------------------------------- */

#define OHM_FFI_MAX_ARGS 32

typedef enum ohm_ffi_type {
    OHM_FFI_VOID = 0,
    OHM_FFI_I8,
    OHM_FFI_U8,
    OHM_FFI_I16,
    OHM_FFI_U16,
    OHM_FFI_I32,
    OHM_FFI_U32,
    OHM_FFI_I64,
    OHM_FFI_U64,
    OHM_FFI_F32,
    OHM_FFI_F64,
    OHM_FFI_PTR,
    OHM_FFI_STR,
    OHM_FFI_CPTR
} ohm_ffi_type; /* hosts mirror these numbers (NativeFunction.java): append, never renumber */

typedef struct ohm_ffi_lib ohm_ffi_lib;         /* a dlopen'ed library */
typedef struct ohm_ffi_fn ohm_ffi_fn;           /* a function with a prepared call interface */
typedef struct ohm_ffi_closure ohm_ffi_closure; /* a C function pointer that calls into a host */

/* Opens a shared library (dlopen, RTLD_NOW | RTLD_LOCAL); NULL path = the process itself. OHM_ESYS-like
 * failure is OHM_EINVAL with dlerror()'s text ("cannot open libfoo.so: ..."). */
OHM_API ohm_ffi_lib *ohm_ffi_open(const char *path);
/* Closes it; functions looked up from it must not be called afterwards. */
OHM_API int ohm_ffi_close(ohm_ffi_lib *lib);
/* Looks up symbol and prepares the call once. OHM_EINVAL for an unknown symbol or a bad signature (the message
 * names the position: "signature 'i32(ptr,' at 9: expected a type"). */
OHM_API ohm_ffi_fn *ohm_ffi_func(ohm_ffi_lib *lib, const char *symbol, const char *signature);
/* The same for a function pointer the host already has (a closure's code, say). */
OHM_API ohm_ffi_fn *ohm_ffi_func_ptr(void *fn, const char *name, const char *signature);
OHM_API void ohm_ffi_func_free(ohm_ffi_fn *fn);
/* Its return type, argument count and types, name and signature as given. */
OHM_API ohm_ffi_type ohm_ffi_ret_type(const ohm_ffi_fn *fn);
OHM_API unsigned ohm_ffi_nargs(const ohm_ffi_fn *fn);
OHM_API ohm_ffi_type ohm_ffi_arg_type(const ohm_ffi_fn *fn, unsigned i);
OHM_API const char *ohm_ffi_name(const ohm_ffi_fn *fn);
/* Parses a signature without preparing anything: 0 or OHM_EINVAL with the position in the message. */
OHM_API int ohm_ffi_parse(const char *signature, ohm_ffi_type *ret, ohm_ffi_type *args, unsigned *nargs);

/* An argument as the host passes it. */
typedef enum ohm_ffi_arg_kind {
    OHM_FFI_ARG_INT = 0, /* v.i: a signed host integer, for any integer type (sign and range checked against
                             it: -1 is out of range for u64) or a float type                              */
    OHM_FFI_ARG_FLOAT,   /* v.f: f32/f64 (an integer type accepts it only if it is a whole number in range) */
    OHM_FFI_ARG_STR,     /* str: NUL-terminated, for str or cptr parameters (never ptr: C may write) */
    OHM_FFI_ARG_BUF,     /* buf + off: the buffer's data at off (checked), for pointer parameters; a
                             read-only buffer only for cptr or str; retained for the call's duration    */
    OHM_FFI_ARG_PTR,     /* v.p: a raw address (NULL allowed), for pointer parameters */
    OHM_FFI_ARG_NULL,    /* NULL, for pointer parameters */
    OHM_FFI_ARG_UINT     /* v.u: an unsigned host integer (Java's NativeFunction.unsigned): the whole
                             u64 range; checked against the type like INT                               */
} ohm_ffi_arg_kind;

typedef struct ohm_ffi_arg {
    ohm_ffi_arg_kind kind;
    ohm_bind_value v;
    const char *str;
    ohm_buf *buf;
    uint64_t off;
} ohm_ffi_arg;

/* Calls fn with nargs arguments; the result goes to *ret as ohm_bind_value (i/u by signedness, f, p; nothing
 * for void). Errors, all before the call is made: OHM_EINVAL for a wrong argument count or an argument whose
 * kind does not fit its type ("crc32: argument 2 is ptr, got a number"; "memset: argument 1 is ptr
 * (writable), got a read-only buffer; declare it cptr") or whose value is out of range for it, sign included
 * ("memset: argument 3 (u64) out of range: -1"), OHM_ESTATE/OHM_ERANGE for a released buffer or an offset past
 * its end (a 'str' parameter given a buffer also needs a NUL before the buffer's end). After the call: the first failure of a closure it called, with the
 * closure's code (OHM_ECALLBACK when the closure could not run on this thread) and message ("closure
 * 'i32(ptr, ptr)' failed: ..."). Thread-safe; a function may be called concurrently. */
OHM_API int ohm_ffi_call(const ohm_ffi_fn *fn, const ohm_ffi_arg *args, unsigned nargs, ohm_bind_value *ret);

/* A closure: a C function pointer with the given signature (no 'str' arguments are converted: they arrive as
 * pointers in v.p) that calls fn(ctx, args, nargs, ret) in host h. fn returns 0, or a negative OHM_E* code
 * (after ohm_bind_fail): then the C caller gets a zero result and the surrounding ohm_ffi_call on this thread
 * fails with it. A call on a thread where h cannot run is refused the same way. */
typedef int ohm_ffi_closure_fn(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret);
OHM_API ohm_ffi_closure *ohm_ffi_closure_create(ohm_bind_host *h, const char *signature, ohm_ffi_closure_fn *fn,
                                                void *ctx);
OHM_API void *ohm_ffi_closure_code(const ohm_ffi_closure *c);
OHM_API const ohm_ffi_fn *ohm_ffi_closure_sig(const ohm_ffi_closure *c);
OHM_API void ohm_ffi_closure_free(ohm_ffi_closure *c);
/* Whether the calling thread is inside ohm_ffi_call, so that a closure's failure here will fail that call and
 * reach its host. false on a thread C started itself, or when C calls a closure outside any call: a host then
 * has nobody to hand the failure to and must report it itself (the JVM logs it). */
OHM_API bool ohm_ffi_in_call(void);

#ifdef __cplusplus
}
#endif
#endif
