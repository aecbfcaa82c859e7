/* Natives of leak scopes (org.ohm.test.LeakScope through org.ohm.LeakScopes). Java keeps which scope a thread
 * belongs to (an InheritableThreadLocal) and joins the core's scope lazily, at the thread's first allocation:
 * the core has no thread-start hook. Join and leave return codes; open and close throw.
 */
#include "jni_internal.h"

#include <stdio.h>
#include <string.h>

static jlong JNICALL n_scope_open(JNIEnv *env, jclass cls)
{
    (void)cls;
    uint64_t id = ohm_leak_scope_open();
    if (!id) jni_throw(env, OHM_ENOMEM);
    return (jlong)id;
}

static jint JNICALL n_scope_join(JNIEnv *env, jclass cls, jlong id)
{
    (void)env;
    (void)cls;
    return ohm_leak_scope_join((uint64_t)id);
}

static jint JNICALL n_scope_leave(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    return ohm_leak_scope_leave();
}

static jlong JNICALL n_scope_current(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    return (jlong)ohm_leak_scope_current();
}

/* One leaked buffer's hints (its access records' touch hints, oldest first), a line each. */
static void hints_of(const ohm_leak_report *r, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < r->nrecords && n < cap; i++) {
        if (!r->records[i].hint) continue;
        int w = snprintf(out + n, cap - n, "%s%s", n ? "\n" : "", r->records[i].hint);
        if (w < 0) break;
        n += (size_t)w;
    }
}

/* Closes the scope after waiting up to wait_ms; the buffers still live as 5 strings each: buffer id, size, the
 * Java site text (or null), the hints (a line each, or null), the core's report text. Throws for a negative
 * code. */
static jobjectArray JNICALL n_scope_close(JNIEnv *env, jclass cls, jlong id, jint wait_ms)
{
    (void)cls;
    ohm_leak_list *list = NULL;
    int64_t n = ohm_leak_scope_close((uint64_t)id, wait_ms < 0 ? 0 : (uint32_t)wait_ms, &list);
    if (n < 0) {
        ohm_leak_list_free(list);
        jni_throw(env, (int)n);
        return NULL;
    }
    size_t count = list ? list->count : 0;
    jobjectArray a = (*env)->NewObjectArray(env, (jsize)(count * 5), J.string_class, NULL);
    for (size_t i = 0; a && i < count; i++) {
        const ohm_leak_report *r = &list->reports[i];
        char bid[32], num[32], hints[1024];
        snprintf(bid, sizeof bid, "%llu", (unsigned long long)r->buffer_id);
        snprintf(num, sizeof num, "%zu", r->size);
        hints_of(r, hints, sizeof hints);
        const char *v[5] = {bid, num, r->created.host_site, hints[0] ? hints : NULL, r->text};
        for (int k = 0; k < 5; k++) {
            jstring s = jni_string(env, v[k]);
            if ((*env)->ExceptionCheck(env)) {
                a = NULL;
                break;
            }
            (*env)->SetObjectArrayElement(env, a, (jsize)(i * 5 + (size_t)k), s);
            if (s) (*env)->DeleteLocalRef(env, s);
        }
    }
    ohm_leak_list_free(list);
    return a;
}

static const JNINativeMethod methods[] = {
    {"scopeOpen", "()J", (void *)n_scope_open},
    {"scopeJoin", "(J)I", (void *)n_scope_join},
    {"scopeLeave", "()I", (void *)n_scope_leave},
    {"scopeCurrent", "()J", (void *)n_scope_current},
    {"scopeClose", "(JI)[Ljava/lang/String;", (void *)n_scope_close},
};

int jni_register_scope(JNIEnv *env, jclass cls) { return JNI_REGISTER(env, cls, methods); }
