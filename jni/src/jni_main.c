/* libohm_jni.so: load and unload, the cached classes, exceptions, strings, and the JVM as an ohm_bind host.
 *
 * The JVM is an OHM_BIND_ANY_THREAD host: a callback or leak report that arrives on a thread the JVM does not
 * know (a native thread of the runtime) attaches it as a daemon and detaches it afterwards; a Java thread is
 * used as it is. The host is the default one, so leak reports from any thread (the cleaner thread, a pool's
 * destruction) reach org.ohm.LeakDetector's listener. The core's log goes to System.Logger the same way.
 */
#include "jni_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

jni_cache J;

static _Thread_local jobject tl_kept; /* a trampoline's caught exception, global ref (see jni_keep_exception) */

/* ---- strings ---- */

jstring jni_string(JNIEnv *env, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii) return (*env)->NewStringUTF(env, s); /* ASCII is the same in modified UTF-8 */
    /* Real UTF-8 (a path, a message quoting one): decoded by Java, so 4-byte sequences and stray bytes are
     * handled as Java handles them instead of being misread as modified UTF-8. */
    if (n > INT32_MAX) n = INT32_MAX;
    jbyteArray a = (*env)->NewByteArray(env, (jsize)n);
    if (!a) return NULL;
    (*env)->SetByteArrayRegion(env, a, 0, (jsize)n, (const jbyte *)s);
    jstring r = (*env)->NewObject(env, J.string_class, J.string_from_bytes, a, J.utf8);
    (*env)->DeleteLocalRef(env, a);
    return r;
}

jlongArray jni_longs(JNIEnv *env, const jlong *v, jsize n)
{
    jlongArray a = (*env)->NewLongArray(env, n);
    if (a) (*env)->SetLongArrayRegion(env, a, 0, n, v);
    return a;
}

/* ---- classes ---- */

jmethodID jni_method(JNIEnv *env, const char *class_name, const char *name, const char *sig)
{
    jclass c = (*env)->FindClass(env, class_name);
    if (!c) return NULL;
    jmethodID m = (*env)->GetMethodID(env, c, name, sig);
    (*env)->DeleteLocalRef(env, c);
    return m;
}

char *jni_cstr(JNIEnv *env, jbyteArray a, char *buf, size_t cap, int *fail)
{
    *fail = 0;
    if (!a) return NULL;
    jsize n = (*env)->GetArrayLength(env, a);
    char *s = (size_t)n + 1 <= cap ? buf : malloc((size_t)n + 1);
    if (!s) {
        *fail = 1;
        jni_throw_msg(env, J.errors[1], "out of memory copying a string");
        return NULL;
    }
    (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
    s[n] = 0; /* Native.cstr ends the array with a NUL already; this keeps C safe whatever Java passed */
    return s;
}

void jni_cstr_free(char *s, const char *buf)
{
    if (s != buf) free(s);
}

/* ---- exceptions ---- */

void jni_throw_msg(JNIEnv *env, jclass cls, const char *msg)
{
    jstring m = jni_string(env, msg);
    if (!m) return; /* OutOfMemoryError pending */
    jmethodID init = (*env)->GetMethodID(env, cls, "<init>", "(Ljava/lang/String;)V");
    jobject ex = init ? (*env)->NewObject(env, cls, init, m) : NULL;
    if (ex) (*env)->Throw(env, (jthrowable)ex);
    (*env)->DeleteLocalRef(env, m);
    if (ex) (*env)->DeleteLocalRef(env, ex);
}

static int error_index(int code) { return code < 0 && -code < OHM_BIND_ERROR_COUNT ? -code : 0; }

jthrowable jni_exception(JNIEnv *env, int code)
{
    if (code == OHM_ECALLBACK && tl_kept) {
        jobject kept = tl_kept;
        tl_kept = NULL;
        jthrowable ex = (jthrowable)(*env)->NewLocalRef(env, kept);
        (*env)->DeleteGlobalRef(env, kept);
        if (!ex) return NULL;
        /* Unchecked exceptions pass through as they were thrown; a checked one (spill() throws IOException) is
         * wrapped, with the runtime's message saying what failed. */
        if ((*env)->IsInstanceOf(env, ex, J.runtime_exception) || (*env)->IsInstanceOf(env, ex, J.error_class))
            return ex;
        jstring m = jni_string(env, ohm_bind_message(code));
        jobject w = m ? (*env)->NewObject(env, J.callback_exception, J.callback_exception_init, m, ex) : NULL;
        return (jthrowable)w;
    }
    int i = error_index(code);
    jstring m = jni_string(env, ohm_bind_message(code));
    return m ? (jthrowable)(*env)->NewObject(env, J.errors[i], J.error_init[i], m) : NULL;
}

void jni_throw(JNIEnv *env, int code)
{
    jthrowable ex = jni_exception(env, code);
    if (ex) (*env)->Throw(env, ex); /* else an OutOfMemoryError is pending already */
}

void jni_keep_exception(JNIEnv *env, jthrowable ex)
{
    if (tl_kept) (*env)->DeleteGlobalRef(env, tl_kept);
    tl_kept = ex ? (*env)->NewGlobalRef(env, ex) : NULL;
}

void jni_clear_kept(JNIEnv *env)
{
    if (tl_kept) {
        (*env)->DeleteGlobalRef(env, tl_kept);
        tl_kept = NULL;
    }
}

int jni_callback_failed(JNIEnv *env, const char *what)
{
    jthrowable ex = (*env)->ExceptionOccurred(env);
    (*env)->ExceptionClear(env);
    char msg[512];
    const char *text = NULL;
    jstring s = ex ? (*env)->CallObjectMethod(env, ex, J.throwable_to_string) : NULL;
    if ((*env)->ExceptionCheck(env)) { /* toString() itself threw: say what we can */
        (*env)->ExceptionClear(env);
        s = NULL;
    }
    if (s) text = (*env)->GetStringUTFChars(env, s, NULL);
    snprintf(msg, sizeof msg, "%s threw %s", what, text ? text : "a Java exception");
    if (text) (*env)->ReleaseStringUTFChars(env, s, text);
    if (s) (*env)->DeleteLocalRef(env, s);
    jni_keep_exception(env, ex);
    if (ex) (*env)->DeleteLocalRef(env, ex);
    return ohm_bind_fail(OHM_ECALLBACK, msg);
}

/* ---- the JVM as a host ---- */

JNIEnv *jni_env(void)
{
    JNIEnv *env = NULL;
    if (!J.vm || (*J.vm)->GetEnv(J.vm, (void **)&env, JNI_VERSION) != JNI_OK) return NULL;
    return env;
}

static int host_attach(void *arg, void **token)
{
    (void)arg;
    JNIEnv *env;
    *token = NULL;
    jint r = (*J.vm)->GetEnv(J.vm, (void **)&env, JNI_VERSION);
    if (r == JNI_OK) return 0;
    if (r == JNI_EDETACHED) {
        JavaVMAttachArgs args = {JNI_VERSION, "ohm-native", NULL};
        if ((*J.vm)->AttachCurrentThreadAsDaemon(J.vm, (void **)&env, &args) == JNI_OK) {
            *token = (void *)1; /* we attached it: detach at the end */
            return 0;
        }
    }
    return ohm_bind_fail(OHM_ECALLBACK, "cannot attach this thread to the JVM");
}

static void host_detach(void *arg, void *token)
{
    (void)arg;
    if (token) (*J.vm)->DetachCurrentThread(J.vm);
}

/* Runs a static void Java method for a report or a log line. An exception pending on the thread (a report made
 * while a native unwinds) is set aside and restored; one thrown by the Java side is dropped (Native.leak and
 * Native.log catch their listeners' exceptions; this covers an OutOfMemoryError on the way). */
typedef struct deliver_args {
    int kind; /* 0 leak, 1 log */
    const ohm_bind_leak *leak;
    int level;
    const char *message;
} deliver_args;

static void deliver(JNIEnv *env, const deliver_args *a)
{
    jthrowable pending = (*env)->ExceptionOccurred(env);
    if (pending) (*env)->ExceptionClear(env);
    if ((*env)->PushLocalFrame(env, 8) == 0) {
        if (a->kind == 0) {
            jstring site = jni_string(env, a->leak->host_site);
            jstring text = jni_string(env, a->leak->text);
            jstring json = jni_string(env, a->leak->json);
            if (!(*env)->ExceptionCheck(env))
                (*env)->CallStaticVoidMethod(env, J.native_class, J.leak_deliver, (jint)a->leak->reason,
                                             (jlong)a->leak->buffer_id, (jlong)a->leak->size, site, text, json);
        } else {
            jstring msg = jni_string(env, a->message);
            if (!(*env)->ExceptionCheck(env))
                (*env)->CallStaticVoidMethod(env, J.native_class, J.log_deliver, (jint)a->level, msg);
        }
        if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
        (*env)->PopLocalFrame(env, NULL);
    } else {
        (*env)->ExceptionClear(env);
    }
    if (pending) {
        (*env)->Throw(env, pending);
        (*env)->DeleteLocalRef(env, pending);
    }
}

static void host_leak(void *arg, const ohm_bind_leak *report)
{
    (void)arg;
    JNIEnv *env = jni_env(); /* the binding layer attached this thread */
    if (!env) return;
    deliver_args a = {0, report, 0, NULL};
    deliver(env, &a);
}

/* The core's log, to System.Logger (org.ohm.Native.log). Any thread may log: one the JVM does not know is
 * attached for the call. A thread that cannot be attached (the JVM is shutting down) falls back to stderr,
 * which is what the core's default handler does. */
static void jni_log(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    void *token = NULL;
    if (host_attach(NULL, &token) != 0) {
        fprintf(stderr, "ohm: %s\n", message);
        return;
    }
    JNIEnv *env = jni_env();
    if (env) {
        deliver_args a = {1, NULL, (int)level, message};
        deliver(env, &a);
    }
    host_detach(NULL, token);
}

static void JNICALL n_log_to_java(JNIEnv *env, jclass cls, jboolean on)
{
    (void)env;
    (void)cls;
    ohm_set_log_handler(on ? jni_log : NULL, NULL);
}

static jstring JNICALL n_strerror(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    return jni_string(env, ohm_strerror(code));
}

/* Throws the exception for code, with the message of this thread's last failure: how Java raises a code that a
 * native returned instead of throwing. */
static void JNICALL n_raise(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    jni_throw(env, code);
}

/* The exception for code, not thrown: for Java code that must clean up (natively) before throwing it. */
static jthrowable JNICALL n_error(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    return jni_exception(env, code);
}

static jstring JNICALL n_error_message(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    return jni_string(env, ohm_bind_message(code));
}

static const JNINativeMethod main_methods[] = {
    {"logToJava", "(Z)V", (void *)n_log_to_java},
    {"strerror", "(I)Ljava/lang/String;", (void *)n_strerror},
    {"raise", "(I)V", (void *)n_raise},
    {"error", "(I)Ljava/lang/Throwable;", (void *)n_error},
    {"errorMessage", "(I)Ljava/lang/String;", (void *)n_error_message},
};

/* ---- load and unload ---- */

static jclass global_class(JNIEnv *env, const char *name)
{
    jclass local = (*env)->FindClass(env, name);
    if (!local) return NULL;
    jclass g = (*env)->NewGlobalRef(env, local);
    (*env)->DeleteLocalRef(env, local);
    return g;
}

static void release_cache(JNIEnv *env)
{
    jobject *refs[] = {(jobject *)&J.native_class,      (jobject *)&J.string_class, &J.utf8,
                       (jobject *)&J.runtime_exception, (jobject *)&J.error_class,  (jobject *)&J.callback_exception};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        if (*refs[i]) {
            (*env)->DeleteGlobalRef(env, *refs[i]);
            *refs[i] = NULL;
        }
    for (size_t i = 0; i < sizeof J.errors / sizeof J.errors[0]; i++)
        if (J.errors[i]) {
            (*env)->DeleteGlobalRef(env, J.errors[i]);
            J.errors[i] = NULL;
        }
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved)
{
    (void)reserved;
    JNIEnv *env;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION) != JNI_OK) return JNI_ERR;
    memset(&J, 0, sizeof J);
    J.vm = vm;

    if (!(J.native_class = global_class(env, "org/ohm/Native"))) goto error;
    if (!(J.string_class = global_class(env, "java/lang/String"))) goto error;
    if (!(J.runtime_exception = global_class(env, "java/lang/RuntimeException"))) goto error;
    if (!(J.error_class = global_class(env, "java/lang/Error"))) goto error;
    if (!(J.callback_exception = global_class(env, "org/ohm/OhmCallbackException"))) goto error;
    if (!(J.string_from_bytes = (*env)->GetMethodID(env, J.string_class, "<init>", "([BLjava/nio/charset/Charset;)V")))
        goto error;
    if (!(J.callback_exception_init =
              (*env)->GetMethodID(env, J.callback_exception, "<init>", "(Ljava/lang/String;Ljava/lang/Throwable;)V")))
        goto error;
    {
        jclass charsets = (*env)->FindClass(env, "java/nio/charset/StandardCharsets");
        if (!charsets) goto error;
        jfieldID f = (*env)->GetStaticFieldID(env, charsets, "UTF_8", "Ljava/nio/charset/Charset;");
        jobject utf8 = f ? (*env)->GetStaticObjectField(env, charsets, f) : NULL;
        (*env)->DeleteLocalRef(env, charsets);
        if (!utf8) goto error;
        J.utf8 = (*env)->NewGlobalRef(env, utf8);
        (*env)->DeleteLocalRef(env, utf8);
        jclass throwable = (*env)->FindClass(env, "java/lang/Throwable");
        if (!throwable) goto error;
        J.throwable_to_string = (*env)->GetMethodID(env, throwable, "toString", "()Ljava/lang/String;");
        (*env)->DeleteLocalRef(env, throwable);
        if (!J.throwable_to_string) goto error;
    }
    /* One exception class per code, as the binding layer's table names them. */
    for (int i = 0; i < OHM_BIND_ERROR_COUNT; i++) {
        const char *name = ohm_bind_error_of(i ? -i : 1 /* unknown */)->java_class;
        if (!(J.errors[i] = global_class(env, name))) goto error;
        if (!(J.error_init[i] = (*env)->GetMethodID(env, J.errors[i], "<init>", "(Ljava/lang/String;)V"))) goto error;
    }
    if (!(J.leak_deliver = (*env)->GetStaticMethodID(env, J.native_class, "leak",
                                                     "(IJJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;)V")))
        goto error;
    if (!(J.log_deliver = (*env)->GetStaticMethodID(env, J.native_class, "log", "(ILjava/lang/String;)V"))) goto error;
    if (!(J.consumer_spill = jni_method(env, "org/ohm/MemoryConsumer", "spill", "(JLorg/ohm/MemoryConsumer;)J")))
        goto error;
    if (!(J.mm_evict = jni_method(env, "org/ohm/MemoryManager", "evictBlock", "(Ljava/lang/String;)V"))) goto error;
    if (!(J.callback_call = jni_method(env, "org/ohm/NativeCallback", "dispatch", "([J)J"))) goto error;

    if (JNI_REGISTER(env, J.native_class, main_methods) != 0) goto error;
    if (jni_register_buf(env, J.native_class) || jni_register_mm(env, J.native_class) ||
        jni_register_ffi(env, J.native_class) || jni_register_scope(env, J.native_class) || jni_register_stress(env))
        goto error;

    ohm_bind_host_ops ops = {OHM_BIND_ANY_THREAD, host_attach, host_detach, host_leak};
    J.host = ohm_bind_host_create(&ops, NULL);
    if (!J.host) {
        jni_throw(env, ohm_last_error_code());
        goto error;
    }
    ohm_bind_host_set_default(J.host);
    return JNI_VERSION;

error:
    /* An exception is pending (FindClass/GetMethodID/RegisterNatives failed): System.load throws it. */
    release_cache(env);
    return JNI_ERR;
}

JNIEXPORT void JNICALL JNI_OnUnload(JavaVM *vm, void *reserved)
{
    (void)reserved;
    JNIEnv *env;
    ohm_set_log_handler(NULL, NULL);
    if (J.host) {
        ohm_bind_host_set_default(NULL);
        ohm_bind_host_destroy(J.host);
        J.host = NULL;
    }
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION) == JNI_OK) release_cache(env);
}
