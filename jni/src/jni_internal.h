/* Inside libohm_jni.so: what its files share. The library is the JNI half of the Java library org.ohm; every
 * native is a static method of org.ohm.Native, registered with RegisterNatives in JNI_OnLoad (the only exported
 * symbols are JNI_OnLoad and JNI_OnUnload).
 *
 * Conventions of every native:
 *  - pointers cross as jlong; a buffer crosses as its (handle, id) pair, checked with ohm_buf_check first, so a
 *    stale handle is an IllegalStateException, never a crash;
 *  - a native that fails throws the class ohm_bind_error_of(code) names, with ohm_bind_message(code), and frees
 *    whatever native memory it owns before it throws (jni_check, jni_made and jni_count do this for the three
 *    ways an ohm call reports failure); no JNI function is called with an exception pending;
 *  - natives that return a negative OHM_E* code instead of throwing say so in their comment (acquires, whose
 *    timeouts Java loops on, and reference counts, which Java maps onto Netty's exceptions);
 *  - results that do not fit a return value go to the caller's per-thread scratch block (jni_out).
 */
#ifndef OHM_JNI_INTERNAL_H
#define OHM_JNI_INTERNAL_H

#include <jni.h>
#include <stdint.h>

#include "ohm_bind.h"

#pragma GCC visibility push(hidden)

#define JNI_VERSION JNI_VERSION_1_8

#define H2P(type, h) ((type *)(uintptr_t)(h))
#define P2H(p)       ((jlong)(uintptr_t)(p))

/* Classes and members cached at load (the JVM is one per process; these are its handles, not host state a
 * second JVM could need). */
typedef struct jni_cache {
    JavaVM *vm;
    ohm_bind_host *host;
    jclass native_class; /* org.ohm.Native */
    jclass string_class;
    jobject utf8;                /* java.nio.charset.StandardCharsets.UTF_8 */
    jmethodID string_from_bytes; /* String(byte[], Charset) */
    jmethodID throwable_to_string;
    jclass runtime_exception, error_class, callback_exception;
    jmethodID callback_exception_init;          /* OhmCallbackException(String, Throwable) */
    jclass errors[OHM_BIND_ERROR_COUNT];        /* by -code, as ohm_bind_error_of; [0]: an unknown code's */
    jmethodID error_init[OHM_BIND_ERROR_COUNT]; /* (String) */
    jmethodID leak_deliver;                     /* static Native.leak(int, long, long, String, String, String) */
    jmethodID log_deliver;                      /* static Native.log(int, String) */
    jmethodID consumer_spill;                   /* MemoryConsumer.spill(long, MemoryConsumer) */
    jmethodID mm_evict;                         /* MemoryManager.evictBlock(String) */
    jmethodID callback_call;                    /* NativeCallback.dispatch(long[] args): the result bits */
    jmethodID callback_uncaught;                /* NativeCallback.uncaught(Throwable): set by jni_register_ffi */
} jni_cache;

extern jni_cache J;

/* Throws the exception for an OHM_E* code with ohm_bind_message(code); an ECALLBACK with a Java exception kept
 * by a trampoline on this thread rethrows that exception (RuntimeException or Error) or wraps it (checked) in
 * OhmCallbackException. Must be called with no exception pending, right after the failing ohm call. */
void jni_throw(JNIEnv *env, int code);
/* The same exception, made but not thrown (NULL with an OutOfMemoryError pending). */
jthrowable jni_exception(JNIEnv *env, int code);
/* Throws cls (a cached class) with a C message. */
void jni_throw_msg(JNIEnv *env, jclass cls, const char *msg);
/* A Java string from a C string in UTF-8 (not modified UTF-8), or NULL for NULL; NULL with an
 * exception pending if the JVM is out of memory. */
jstring jni_string(JNIEnv *env, const char *s);

/* Throws the exception for rc when it is an OHM_E* code; returns rc, so that a native reads
 * `if (jni_check(env, rc)) return 0;`. */
static inline int jni_check(JNIEnv *env, int rc)
{
    if (rc) jni_throw(env, rc);
    return rc;
}

/* r from an ohm call that returns a count or a negative OHM_E* code: r, with the code's exception thrown when it
 * is one. */
static inline jlong jni_count(JNIEnv *env, int64_t r)
{
    if (r < 0) jni_throw(env, (int)r);
    return r;
}

/* The handle of what an ohm call made, or 0 with the exception for ohm_last_error_code() thrown when it made
 * nothing. */
static inline jlong jni_made(JNIEnv *env, const void *p)
{
    if (!p) jni_throw(env, ohm_last_error_code());
    return P2H(p);
}

/* A new long[] holding v[0..n-1]; NULL with OutOfMemoryError pending. */
jlongArray jni_longs(JNIEnv *env, const jlong *v, jsize n);

/* Java passes strings to C as NUL-terminated UTF-8 byte arrays (org.ohm.Native.cstr). Copies one into buf
 * when it fits, else into malloc'd memory; NULL for a null array (*fail false) or with OutOfMemoryError
 * pending (*fail true). Free with jni_cstr_free. */
char *jni_cstr(JNIEnv *env, jbyteArray a, char *buf, size_t cap, int *fail);
void jni_cstr_free(char *s, const char *buf);

/* The scratch block Java passes to natives that return more than one value: out[0] id, out[1] data address,
 * out[2] flags (bit 0 tracked, bit 1 read-only memory: Native.OUT_*), out[3] size. */
static inline void jni_out(jlong scratch, const ohm_buf *b)
{
    jlong *out = H2P(jlong, scratch);
    out[0] = (jlong)ohm_buf_id(b);
    out[1] = P2H(ohm_buf_data(b));
    out[2] = (jlong)ohm_buf_tracked(b) | (jlong)ohm_buf_readonly(b) << 1;
    out[3] = (jlong)ohm_buf_size(b);
}

/* A Java exception a trampoline caught on this thread (a spill, an eviction, an FFI callback): kept as a
 * global reference until jni_throw rethrows it or the next acquire clears it. */
void jni_keep_exception(JNIEnv *env, jthrowable ex);
void jni_clear_kept(JNIEnv *env);
/* Catches the exception pending on env, keeps it, and returns ohm_bind_fail(OHM_ECALLBACK, "<what> threw
 * <exception>"). */
int jni_callback_failed(JNIEnv *env, const char *what);

/* The JNIEnv of the calling thread, which the binding layer has attached (NULL if it is not attached). */
JNIEnv *jni_env(void);

/* The instance method name(sig) of the class class_name, or NULL with an exception pending (NoClassDefFoundError,
 * NoSuchMethodError). */
jmethodID jni_method(JNIEnv *env, const char *class_name, const char *name, const char *sig);

/* Registers a file's table of natives (an array, not a pointer) on cls: 0 or a JNI error. */
#define JNI_REGISTER(env, cls, table) \
    (*(env))->RegisterNatives(env, cls, table, (jint)(sizeof(table) / sizeof(table)[0]))

/* Registration of each file's natives on org.ohm.Native. 0 or a JNI error (exception pending). */
int jni_register_buf(JNIEnv *env, jclass cls);
int jni_register_mm(JNIEnv *env, jclass cls);
int jni_register_ffi(JNIEnv *env, jclass cls);
int jni_register_scope(JNIEnv *env, jclass cls);
/* org.ohm.stress.Report's native (jni_stress.c), on that class: 0 when it is not in the jar. */
int jni_register_stress(JNIEnv *env);

#pragma GCC visibility pop

#endif
