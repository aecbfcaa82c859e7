/* Natives of the libffi bridge: libraries, functions called with numbers, strings and buffers (zero-copy, as
 * pointers), and callbacks from C into Java (org.ohm.NativeCallback).
 *
 * A call's arguments cross as parallel arrays (kinds, 64-bit values, buffer ids and offsets, string bytes), so a
 * call is one JNI crossing. A callback's Java exception is caught in the closure (it must not unwind through the
 * C function that called it). On a thread inside an ohm_ffi_call it is kept and rethrown by that call once the C
 * function has returned; on any other thread (one C started, or C calling the callback later) nothing would ever
 * rethrow it, so it is logged (NativeCallback.uncaught) instead of kept.
 */
#include "jni_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static jlong JNICALL n_ffi_open(JNIEnv *env, jclass cls, jbyteArray path)
{
    (void)cls;
    char buf[512];
    int fail;
    char *p = jni_cstr(env, path, buf, sizeof buf, &fail);
    if (fail) return 0;
    ohm_ffi_lib *lib = ohm_ffi_open(p);
    jni_cstr_free(p, buf);
    return jni_made(env, lib);
}

static void JNICALL n_ffi_close(JNIEnv *env, jclass cls, jlong lib)
{
    (void)cls;
    jni_check(env, ohm_ffi_close(H2P(ohm_ffi_lib, lib)));
}

/* A function from its name and signature (NUL-terminated UTF-8 arrays): the symbol looked up in the library
 * handle where, or the code at the address where. */
static jlong ffi_func(JNIEnv *env, bool at_address, jlong where, jbyteArray name, jbyteArray signature)
{
    char nb[256], gb[512];
    int fail;
    char *n = jni_cstr(env, name, nb, sizeof nb, &fail);
    if (fail) return 0;
    char *g = jni_cstr(env, signature, gb, sizeof gb, &fail);
    if (fail) {
        jni_cstr_free(n, nb);
        return 0;
    }
    ohm_ffi_fn *fn = NULL;
    if (!at_address) fn = ohm_ffi_func(H2P(ohm_ffi_lib, where), n, g);
    else if (where) fn = ohm_ffi_func_ptr(H2P(void, where), n, g);
    else ohm_bind_fail(OHM_EINVAL, "function address is NULL");
    jni_cstr_free(g, gb);
    jni_cstr_free(n, nb);
    return jni_made(env, fn);
}

static jlong JNICALL n_ffi_func(JNIEnv *env, jclass cls, jlong lib, jbyteArray symbol, jbyteArray signature)
{
    (void)cls;
    return ffi_func(env, false, lib, symbol, signature);
}

static jlong JNICALL n_ffi_func_ptr(JNIEnv *env, jclass cls, jlong address, jbyteArray name, jbyteArray signature)
{
    (void)cls;
    return ffi_func(env, true, address, name, signature);
}

static void JNICALL n_ffi_func_free(JNIEnv *env, jclass cls, jlong fn)
{
    (void)env;
    (void)cls;
    ohm_ffi_func_free(H2P(ohm_ffi_fn, fn));
}

/* The return type, then the argument types. */
static jintArray JNICALL n_ffi_types(JNIEnv *env, jclass cls, jlong f)
{
    (void)cls;
    const ohm_ffi_fn *fn = H2P(const ohm_ffi_fn, f);
    unsigned n = ohm_ffi_nargs(fn);
    jint v[OHM_FFI_MAX_ARGS + 1];
    v[0] = (jint)ohm_ffi_ret_type(fn);
    for (unsigned i = 0; i < n && i < OHM_FFI_MAX_ARGS; i++) v[i + 1] = (jint)ohm_ffi_arg_type(fn, i);
    jintArray a = (*env)->NewIntArray(env, (jsize)n + 1);
    if (a) (*env)->SetIntArrayRegion(env, a, 0, (jsize)n + 1, v);
    return a;
}

static int is_float_type(ohm_ffi_type t) { return t == OHM_FFI_F32 || t == OHM_FFI_F64; }

static jlong JNICALL n_ffi_call(JNIEnv *env, jclass cls, jlong f, jintArray kinds, jlongArray longs, jlongArray ids,
                                jlongArray offs, jobjectArray strs, jobjectArray str_out)
{
    (void)cls;
    const ohm_ffi_fn *fn = H2P(const ohm_ffi_fn, f);
    jsize n = (*env)->GetArrayLength(env, kinds);
    if (n > OHM_FFI_MAX_ARGS) {
        jni_throw_msg(env, J.errors[-OHM_EINVAL], "at most 32 arguments");
        return 0;
    }
    jint k[OHM_FFI_MAX_ARGS];
    jlong v[OHM_FFI_MAX_ARGS], id[OHM_FFI_MAX_ARGS], off[OHM_FFI_MAX_ARGS];
    (*env)->GetIntArrayRegion(env, kinds, 0, n, k);
    (*env)->GetLongArrayRegion(env, longs, 0, n, v);
    (*env)->GetLongArrayRegion(env, ids, 0, n, id);
    (*env)->GetLongArrayRegion(env, offs, 0, n, off);
    ohm_ffi_arg args[OHM_FFI_MAX_ARGS];
    char *owned[OHM_FFI_MAX_ARGS];
    int nowned = 0, rc = 0;
    memset(args, 0, sizeof args);
    for (jsize i = 0; i < n && !rc; i++) {
        args[i].kind = (ohm_ffi_arg_kind)k[i];
        switch (k[i]) {
        case OHM_FFI_ARG_INT: args[i].v.i = v[i]; break;
        case OHM_FFI_ARG_UINT: args[i].v.u = (uint64_t)v[i]; break;
        case OHM_FFI_ARG_FLOAT: memcpy(&args[i].v.f, &v[i], sizeof(double)); break;
        case OHM_FFI_ARG_PTR: args[i].v.p = H2P(void, v[i]); break;
        case OHM_FFI_ARG_NULL: break;
        case OHM_FFI_ARG_BUF:
            rc = ohm_buf_check(H2P(ohm_buf, v[i]), (uint64_t)id[i]);
            args[i].buf = H2P(ohm_buf, v[i]);
            args[i].off = (uint64_t)off[i];
            break;
        case OHM_FFI_ARG_STR: {
            jbyteArray s = (*env)->GetObjectArrayElement(env, strs, i);
            int fail;
            char *c = jni_cstr(env, s, NULL, 0, &fail);
            (*env)->DeleteLocalRef(env, s);
            if (fail) {
                while (nowned) free(owned[--nowned]);
                return 0; /* OutOfMemoryError pending */
            }
            if (c) owned[nowned++] = c;
            args[i].str = c;
            break;
        }
        default: rc = ohm_bind_fail(OHM_EINVAL, "unknown argument kind"); break;
        }
    }
    jni_clear_kept(env);
    ohm_bind_value ret = {0};
    if (!rc) rc = ohm_ffi_call(fn, args, (unsigned)n, &ret);
    while (nowned) free(owned[--nowned]);
    if (jni_check(env, rc)) return 0;
    ohm_ffi_type rt = ohm_ffi_ret_type(fn);
    if (rt == OHM_FFI_STR && ret.p) {
        jstring s = jni_string(env, ret.p);
        if (!s) return 0;
        (*env)->SetObjectArrayElement(env, str_out, 0, s);
    }
    jlong bits;
    if (is_float_type(rt)) memcpy(&bits, &ret.f, sizeof bits);
    else bits = ret.i; /* integers (sign- or zero-extended), or the pointer's address */
    return bits;
}

/* The pending exception of a callback that has nobody to rethrow it: cleared, handed to NativeCallback.uncaught
 * (which logs it and never throws), and turned into the closure's failure. */
static int callback_uncaught(JNIEnv *env, jobject callback)
{
    jthrowable ex = (*env)->ExceptionOccurred(env);
    (*env)->ExceptionClear(env);
    (*env)->CallVoidMethod(env, callback, J.callback_uncaught, ex);
    if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env); /* cannot happen; never left pending */
    if (ex) (*env)->DeleteLocalRef(env, ex);
    return ohm_bind_fail(OHM_ECALLBACK, "callback threw on a thread with no call to rethrow it (logged to org.ohm)");
}

/* A callback: each argument's 64 bits (a double's for f32/f64, an address for pointers and str) in a long[] to
 * NativeCallback.dispatch, whose long result is the return value's bits by the same rule. */
static int closure_cb(void *ctx, const ohm_bind_value *args, unsigned nargs, ohm_bind_value *ret)
{
    JNIEnv *env = jni_env();
    if (!env) return ohm_bind_fail(OHM_ECALLBACK, "callback: this thread is not attached to the JVM");
    if ((*env)->PushLocalFrame(env, 8) != 0) return jni_callback_failed(env, "callback");
    int rc = 0;
    jlong bits[OHM_FFI_MAX_ARGS];
    for (unsigned i = 0; i < nargs; i++) memcpy(&bits[i], &args[i], sizeof bits[i]);
    jlongArray a = (*env)->NewLongArray(env, (jsize)nargs);
    if (a) (*env)->SetLongArrayRegion(env, a, 0, (jsize)nargs, bits);
    jlong r = a ? (*env)->CallLongMethod(env, (jobject)ctx, J.callback_call, a) : 0;
    if ((*env)->ExceptionCheck(env))
        rc = ohm_ffi_in_call() ? jni_callback_failed(env, "callback") : callback_uncaught(env, (jobject)ctx);
    else memcpy(ret, &r, sizeof r);
    (*env)->PopLocalFrame(env, NULL);
    return rc;
}

/* ctx: a global reference to the NativeCallback (Native.newGlobal), deleted by Java after ffiClosureFree. */
static jlong JNICALL n_ffi_closure_create(JNIEnv *env, jclass cls, jbyteArray signature, jlong ctx)
{
    (void)cls;
    char gb[512];
    int fail;
    char *g = jni_cstr(env, signature, gb, sizeof gb, &fail);
    if (fail) return 0;
    ohm_ffi_closure *c = ohm_ffi_closure_create(J.host, g, closure_cb, H2P(void, ctx));
    jni_cstr_free(g, gb);
    return jni_made(env, c);
}

static jlong JNICALL n_ffi_closure_code(JNIEnv *env, jclass cls, jlong c)
{
    (void)env;
    (void)cls;
    return P2H(ohm_ffi_closure_code(H2P(ohm_ffi_closure, c)));
}

static jlong JNICALL n_ffi_closure_sig(JNIEnv *env, jclass cls, jlong c)
{
    (void)env;
    (void)cls;
    return P2H(ohm_ffi_closure_sig(H2P(ohm_ffi_closure, c)));
}

static void JNICALL n_ffi_closure_free(JNIEnv *env, jclass cls, jlong c)
{
    (void)env;
    (void)cls;
    ohm_ffi_closure_free(H2P(ohm_ffi_closure, c));
}

/* The NUL-terminated string at address (a str argument of a callback), or null. */
static jstring JNICALL n_ffi_string(JNIEnv *env, jclass cls, jlong address)
{
    (void)cls;
    return address ? jni_string(env, H2P(const char, address)) : NULL;
}

static const JNINativeMethod methods[] = {
    {"ffiOpen", "([B)J", (void *)n_ffi_open},
    {"ffiClose", "(J)V", (void *)n_ffi_close},
    {"ffiFunc", "(J[B[B)J", (void *)n_ffi_func},
    {"ffiFuncPtr", "(J[B[B)J", (void *)n_ffi_func_ptr},
    {"ffiFuncFree", "(J)V", (void *)n_ffi_func_free},
    {"ffiTypes", "(J)[I", (void *)n_ffi_types},
    {"ffiCall", "(J[I[J[J[J[[B[Ljava/lang/String;)J", (void *)n_ffi_call},
    {"ffiClosureCreate", "([BJ)J", (void *)n_ffi_closure_create},
    {"ffiClosureCode", "(J)J", (void *)n_ffi_closure_code},
    {"ffiClosureSig", "(J)J", (void *)n_ffi_closure_sig},
    {"ffiClosureFree", "(J)V", (void *)n_ffi_closure_free},
    {"ffiString", "(J)Ljava/lang/String;", (void *)n_ffi_string},
};

int jni_register_ffi(JNIEnv *env, jclass cls)
{
    J.callback_uncaught = jni_method(env, "org/ohm/NativeCallback", "uncaught", "(Ljava/lang/Throwable;)V");
    if (!J.callback_uncaught) return JNI_ERR;
    return JNI_REGISTER(env, cls, methods);
}
