/* Natives of the memory manager: managers, tasks, consumers whose spill() runs in Java, pages, and the block
 * cache with its eviction listener.
 *
 * Acquires return the bytes granted or a negative OHM_E* code instead of throwing: Java waits for a fair share
 * in short native waits (the task's wait timeout) so that Thread.interrupt() is seen between them, and raises
 * any other code through Native.raise right after. A spill round stays in native code, so the spill trampoline
 * looks at the interrupt itself, before and after each spill(). A Java exception thrown by spill() or by an
 * eviction listener is caught here (it must not unwind through C), kept for the thread, and rethrown by that
 * raise.
 */
#include "jni_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MM(h)       H2P(ohm_mm, h)
#define TASK(h)     H2P(ohm_task, h)
#define CONSUMER(h) H2P(ohm_consumer, h)

static int check_mode(jint mode)
{
    return mode == OHM_ON_HEAP || mode == OHM_OFF_HEAP ? 0 : ohm_bind_fail(OHM_EINVAL, "unknown memory mode");
}

/* 0 for a known mode and a size of 0 or more, else a code. */
static int check_request(jint mode, jlong n)
{
    int rc = check_mode(mode);
    return rc || n >= 0 ? rc : ohm_bind_fail(OHM_EINVAL, "size is negative");
}

/* ---- managers ---- */

/* A manager's configuration crosses as long[5]: max on-heap, max off-heap, page size, wait timeout (ms, -1 =
 * none), storage fraction (the double's bits). */
static jlongArray JNICALL n_mm_config_defaults(JNIEnv *env, jclass cls)
{
    (void)cls;
    ohm_mm_config c;
    ohm_mm_config_init(&c);
    double f = c.storage_fraction;
    jlong bits;
    memcpy(&bits, &f, sizeof bits);
    jlong v[5] = {(jlong)c.max_bytes[OHM_ON_HEAP], (jlong)c.max_bytes[OHM_OFF_HEAP], (jlong)c.page_size,
                  c.wait_timeout_ms == UINT64_MAX ? -1 : (jlong)c.wait_timeout_ms, bits};
    return jni_longs(env, v, 5);
}

/* Spark's on-heap sizing from a heap size: the max, or an IllegalArgumentException with Spark's message. */
static jlong JNICALL n_mm_on_heap_from_heap(JNIEnv *env, jclass cls, jlong heap, jdouble fraction)
{
    (void)cls;
    ohm_mm_config c;
    ohm_mm_config_init(&c);
    int rc = heap < 0 ? ohm_bind_fail(OHM_EINVAL, "heap size is negative")
                      : ohm_mm_config_from_heap(&c, (uint64_t)heap, fraction);
    if (jni_check(env, rc)) return 0;
    return (jlong)c.max_bytes[OHM_ON_HEAP];
}

static jlong JNICALL n_mm_create(JNIEnv *env, jclass cls, jlongArray cfg, jlong pool)
{
    (void)cls;
    jlong v[5];
    if ((*env)->GetArrayLength(env, cfg) != 5) {
        jni_throw_msg(env, J.errors[-OHM_EINVAL], "memory manager configuration has the wrong length");
        return 0;
    }
    (*env)->GetLongArrayRegion(env, cfg, 0, 5, v);
    ohm_mm_config c;
    ohm_mm_config_init(&c);
    size_t page;
    int rc = 0;
    if (v[0] < 0 || v[1] < 0) rc = ohm_bind_fail(OHM_EINVAL, "memory sizes must not be negative");
    if (!rc) rc = ohm_bind_size(v[2], 0, "page size", &page);
    if (jni_check(env, rc)) return 0;
    c.max_bytes[OHM_ON_HEAP] = (uint64_t)v[0];
    c.max_bytes[OHM_OFF_HEAP] = (uint64_t)v[1];
    c.page_size = page;
    c.wait_timeout_ms = v[3] < 0 ? UINT64_MAX : (uint64_t)v[3];
    memcpy(&c.storage_fraction, &v[4], sizeof c.storage_fraction);
    c.pool = H2P(ohm_pool, pool);
    ohm_mm *mm = ohm_mm_create(&c);
    return jni_made(env, mm);
}

static void JNICALL n_mm_destroy(JNIEnv *env, jclass cls, jlong mm)
{
    (void)cls;
    jni_check(env, ohm_mm_destroy(MM(mm)));
}

/* ---- tasks ---- */

static jlong JNICALL n_task_create(JNIEnv *env, jclass cls, jlong mm, jlong id, jlong wait_ms)
{
    (void)cls;
    ohm_task *t = ohm_task_create(MM(mm), (uint64_t)id);
    if (!t) {
        jni_throw(env, ohm_last_error_code());
        return 0;
    }
    ohm_task_set_wait_timeout(t, wait_ms < 0 ? UINT64_MAX : (uint64_t)wait_ms);
    return P2H(t);
}

static void JNICALL n_task_set_wait_timeout(JNIEnv *env, jclass cls, jlong t, jlong ms)
{
    (void)env;
    (void)cls;
    ohm_task_set_wait_timeout(TASK(t), ms < 0 ? UINT64_MAX : (uint64_t)ms);
}

static jlong JNICALL n_task_end(JNIEnv *env, jclass cls, jlong t)
{
    (void)cls;
    return jni_count(env, ohm_task_end(TASK(t)));
}

/* Granted bytes or a negative code (Native.raise throws it). */
static jlong JNICALL n_task_acquire(JNIEnv *env, jclass cls, jlong t, jint mode, jlong n)
{
    (void)cls;
    jni_clear_kept(env);
    int rc = check_request(mode, n);
    if (rc) return rc;
    return ohm_task_acquire(TASK(t), (ohm_mem_mode)mode, (uint64_t)n);
}

static jlong JNICALL n_task_release(JNIEnv *env, jclass cls, jlong t, jint mode, jlong n)
{
    (void)cls;
    int rc = check_request(mode, n);
    int64_t r = rc ? rc : ohm_task_release(TASK(t), (ohm_mem_mode)mode, (uint64_t)n);
    return jni_count(env, r);
}

static jint JNICALL n_task_acquire_unroll(JNIEnv *env, jclass cls, jlong t, jint mode, jbyteArray group, jlong n)
{
    (void)cls;
    jni_clear_kept(env);
    int rc = check_request(mode, n);
    if (rc) return rc;
    char buf[256];
    int fail;
    char *g = jni_cstr(env, group, buf, sizeof buf, &fail);
    if (fail) return 0;
    rc = ohm_task_acquire_unroll(TASK(t), (ohm_mem_mode)mode, g, (uint64_t)n);
    jni_cstr_free(g, buf);
    return rc;
}

static jlong JNICALL n_task_release_unroll(JNIEnv *env, jclass cls, jlong t, jint mode, jlong n)
{
    (void)cls;
    int rc = check_request(mode, n);
    int64_t r = rc ? rc : ohm_task_release_unroll(TASK(t), (ohm_mem_mode)mode, (uint64_t)n);
    return jni_count(env, r);
}

static void JNICALL n_task_cancel(JNIEnv *env, jclass cls, jlong mm, jlong id)
{
    (void)cls;
    jni_check(env, ohm_mm_cancel_task(MM(mm), (uint64_t)id));
}

static jlongArray JNICALL n_task_stats(JNIEnv *env, jclass cls, jlong t)
{
    (void)cls;
    ohm_task_stats s;
    int rc = ohm_task_stats_get(TASK(t), &s);
    if (jni_check(env, rc)) return NULL;
    jlong v[] = {(jlong)s.id,
                 (jlong)s.used[OHM_ON_HEAP],
                 (jlong)s.used[OHM_OFF_HEAP],
                 (jlong)s.unroll[OHM_ON_HEAP],
                 (jlong)s.unroll[OHM_OFF_HEAP],
                 (jlong)s.peak,
                 (jlong)s.spills,
                 (jlong)s.spill_bytes,
                 (jlong)s.waits,
                 (jlong)s.wait_ns,
                 (jlong)s.evictions,
                 (jlong)s.consumers,
                 s.waiting};
    return jni_longs(env, v, (jsize)(sizeof v / sizeof v[0]));
}

/* ---- consumers ---- */

/* Thread.currentThread() and Thread.isInterrupted(), looked up at load by jni_register_mm. The class is a
 * global reference for the life of the process (java.lang.Thread is never unloaded). */
static jclass thread_class;
static jmethodID thread_current, thread_is_interrupted;

/* Whether the calling thread's interrupt status is set (left as it is). No exception pending on entry; a
 * failing call (none is expected) counts as not interrupted, its exception cleared. */
static bool thread_interrupted(JNIEnv *env)
{
    jobject th = (*env)->CallStaticObjectMethod(env, thread_class, thread_current);
    jboolean r = JNI_FALSE;
    if (!(*env)->ExceptionCheck(env) && th) r = (*env)->CallBooleanMethod(env, th, thread_is_interrupted);
    if ((*env)->ExceptionCheck(env)) {
        (*env)->ExceptionClear(env);
        r = JNI_FALSE;
    }
    if (th) (*env)->DeleteLocalRef(env, th);
    return r == JNI_TRUE;
}

/* spill() of a Java MemoryConsumer, on the acquiring thread. ctx and trigger_ctx are global references to the
 * consumers. A Java exception is caught and kept (jni_callback_failed); a negative result is refused, since the
 * runtime would read it as an error code. An interrupted thread gets OHM_ECANCELED, which ends the round and
 * the acquire (OhmInterruptedException): before spill(), which is then not called, and after it, whatever it
 * returned (what it released stays released). */
static int64_t spill_trampoline(void *ctx, uint64_t size, void *trigger_ctx)
{
    JNIEnv *env = jni_env();
    if (!env) return ohm_bind_fail(OHM_ECALLBACK, "spill: this thread is not attached to the JVM");
    if (thread_interrupted(env)) return ohm_bind_fail(OHM_ECANCELED, "the thread was interrupted");
    if ((*env)->PushLocalFrame(env, 16) != 0) return jni_callback_failed(env, "spill()");
    jlong r = (*env)->CallLongMethod(env, (jobject)ctx, J.consumer_spill, (jlong)(size > INT64_MAX ? INT64_MAX : size),
                                     (jobject)trigger_ctx);
    int64_t out;
    if ((*env)->ExceptionCheck(env)) out = jni_callback_failed(env, "spill()");
    else if (r < 0) out = ohm_bind_fail(OHM_ECALLBACK, "spill() returned a negative number of bytes");
    else if (thread_interrupted(env)) out = ohm_bind_fail(OHM_ECANCELED, "the thread was interrupted during spill()");
    else out = r;
    (*env)->PopLocalFrame(env, NULL);
    return out;
}

/* ctx: a global reference to the Java consumer (Native.newGlobal), which Java deletes once the consumer is gone,
 * destroyed here or ended with its task. */
static jlong JNICALL n_consumer_create(JNIEnv *env, jclass cls, jlong t, jint mode, jbyteArray name, jlong ctx)
{
    (void)cls;
    int rc = check_mode(mode);
    if (jni_check(env, rc)) return 0;
    char buf[256];
    int fail;
    char *n = jni_cstr(env, name, buf, sizeof buf, &fail);
    if (fail) return 0;
    ohm_consumer *c =
        ohm_bind_consumer_create(J.host, TASK(t), (ohm_mem_mode)mode, n, spill_trampoline, H2P(void, ctx));
    jni_cstr_free(n, buf);
    return jni_made(env, c);
}

static jlong JNICALL n_new_global(JNIEnv *env, jclass cls, jobject o)
{
    (void)cls;
    jobject ref = (*env)->NewGlobalRef(env, o);
    if (!ref) jni_throw_msg(env, J.errors[1], "out of memory creating a global reference");
    return P2H(ref);
}

static void JNICALL n_delete_global(JNIEnv *env, jclass cls, jlong ref)
{
    (void)cls;
    if (ref) (*env)->DeleteGlobalRef(env, H2P(struct _jobject, ref));
}

/* 0, or a code (OHM_ESTATE while the consumer has live pages). */
static jint JNICALL n_consumer_destroy(JNIEnv *env, jclass cls, jlong c)
{
    (void)env;
    (void)cls;
    return ohm_bind_consumer_destroy(CONSUMER(c));
}

static jlong JNICALL n_consumer_acquire(JNIEnv *env, jclass cls, jlong c, jlong n)
{
    (void)cls;
    jni_clear_kept(env);
    if (n < 0) return ohm_bind_fail(OHM_EINVAL, "size is negative");
    return ohm_consumer_acquire(CONSUMER(c), (uint64_t)n);
}

static jlong JNICALL n_consumer_release(JNIEnv *env, jclass cls, jlong c, jlong n)
{
    (void)cls;
    int64_t r = n < 0 ? ohm_bind_fail(OHM_EINVAL, "size is negative") : ohm_consumer_release(CONSUMER(c), (uint64_t)n);
    return jni_count(env, r);
}

static jlongArray JNICALL n_consumer_stats(JNIEnv *env, jclass cls, jlong c)
{
    (void)cls;
    ohm_consumer_stats s;
    int rc = ohm_consumer_stats_get(CONSUMER(c), &s);
    if (jni_check(env, rc)) return NULL;
    jlong v[] = {(jlong)s.used, (jlong)s.peak, (jlong)s.spills, (jlong)s.spill_bytes, (jlong)s.pages};
    return jni_longs(env, v, 5);
}

static jlong JNICALL n_consumer_used(JNIEnv *env, jclass cls, jlong c)
{
    (void)env;
    (void)cls;
    return (jlong)ohm_consumer_used(CONSUMER(c));
}

/* A page: the buffer handle (values in scratch), or a negative code. On OHM_ELIMIT, scratch[0] holds the bytes
 * that were available (from the runtime's message), for Spark's "Unable to acquire X bytes of memory, got Y". */
static jlong JNICALL n_consumer_alloc_page(JNIEnv *env, jclass cls, jlong c, jlong size, jlong scratch)
{
    (void)cls;
    jni_clear_kept(env);
    size_t n;
    int rc = ohm_bind_size(size, 0, "page size", &n);
    if (rc) return rc;
    ohm_buf *b = ohm_consumer_alloc_page(CONSUMER(c), n);
    if (!b) {
        int code = ohm_last_error_code();
        jlong *out = H2P(jlong, scratch);
        out[0] = 0;
        /* "consumer NAME: page of S bytes not granted (N bytes available)": the last '(' (a name may hold one). */
        const char *m = code == OHM_ELIMIT ? strrchr(ohm_last_error(), '(') : NULL;
        if (m) out[0] = strtoll(m + 1, NULL, 10);
        return code ? code : OHM_ENOMEM;
    }
    jni_out(scratch, b);
    return P2H(b);
}

/* ---- the block cache ---- */

/* An eviction, on the thread whose acquire or put caused it: MemoryManager.evictBlock(id) runs the block's
 * listener; returning lets the block go, an exception keeps it and fails that acquire. */
static int evict_listener(void *ctx, const char *block_id, ohm_buf *buf)
{
    (void)buf; /* Java finds the buffer by the block's id */
    JNIEnv *env = jni_env();
    if (!env) return ohm_bind_fail(OHM_ECALLBACK, "eviction: this thread is not attached to the JVM");
    if ((*env)->PushLocalFrame(env, 16) != 0) return jni_callback_failed(env, "eviction listener");
    int rc = 0;
    jstring id = jni_string(env, block_id);
    if (id) (*env)->CallVoidMethod(env, (jobject)ctx, J.mm_evict, id);
    if ((*env)->ExceptionCheck(env)) rc = jni_callback_failed(env, "eviction listener");
    (*env)->PopLocalFrame(env, NULL);
    return rc;
}

/* ctx: a global reference to the Java MemoryManager (Native.newGlobal), deleted by Java after evictorDestroy. */
static jlong JNICALL n_evictor_create(JNIEnv *env, jclass cls, jlong ctx)
{
    (void)cls;
    ohm_bind_evictor *e = ohm_bind_evictor_create(J.host, evict_listener, H2P(void, ctx));
    return jni_made(env, e);
}

static void JNICALL n_evictor_destroy(JNIEnv *env, jclass cls, jlong e)
{
    (void)env;
    (void)cls;
    ohm_bind_evictor_destroy(H2P(ohm_bind_evictor, e));
}

/* 0, or a code: OHM_ELIMIT (it does not fit), an eviction's OHM_ECALLBACK, ... Java raises all but ELIMIT. */
static jint JNICALL n_block_put(JNIEnv *env, jclass cls, jlong mm, jbyteArray id, jbyteArray group, jint mode, jlong h,
                                jlong bid, jlong size, jlong evictor)
{
    (void)cls;
    jni_clear_kept(env);
    int rc = check_mode(mode);
    if (rc) return rc;
    if (h && (rc = ohm_buf_check(H2P(ohm_buf, h), (uint64_t)bid))) return rc;
    if (size < 0) return ohm_bind_fail(OHM_EINVAL, "block size is negative");
    char ib[256], gb[256];
    int fail;
    char *i = jni_cstr(env, id, ib, sizeof ib, &fail);
    if (fail) return 0;
    char *g = jni_cstr(env, group, gb, sizeof gb, &fail);
    if (fail) {
        jni_cstr_free(i, ib);
        return 0;
    }
    rc = ohm_block_put(MM(mm), i, g, (ohm_mem_mode)mode, H2P(ohm_buf, h), (uint64_t)size, ohm_bind_evict,
                       H2P(ohm_bind_evictor, evictor));
    jni_cstr_free(g, gb);
    jni_cstr_free(i, ib);
    return rc;
}

typedef int block_op(ohm_mm *mm, const char *id);

static int pin_op(ohm_mm *mm, const char *id)
{
    ohm_buf *b;
    return ohm_block_pin(mm, id, &b);
}

static void block_call(JNIEnv *env, jlong mm, jbyteArray id, block_op *op)
{
    char ib[256];
    int fail;
    char *i = jni_cstr(env, id, ib, sizeof ib, &fail);
    if (fail) return;
    int rc = op(MM(mm), i);
    jni_cstr_free(i, ib);
    jni_check(env, rc);
}

static void JNICALL n_block_pin(JNIEnv *env, jclass cls, jlong mm, jbyteArray id)
{
    (void)cls;
    block_call(env, mm, id, pin_op);
}

static void JNICALL n_block_unpin(JNIEnv *env, jclass cls, jlong mm, jbyteArray id)
{
    (void)cls;
    block_call(env, mm, id, ohm_block_unpin);
}

static void JNICALL n_block_remove(JNIEnv *env, jclass cls, jlong mm, jbyteArray id)
{
    (void)cls;
    block_call(env, mm, id, ohm_block_remove);
}

static jlongArray JNICALL n_mm_stats(JNIEnv *env, jclass cls, jlong mm)
{
    (void)cls;
    ohm_mm_stats s;
    int rc = ohm_mm_stats_get(MM(mm), &s);
    if (jni_check(env, rc)) return NULL;
    jlong v[2 * 7 + 6];
    for (int m = 0; m < OHM_MM_MODES; m++) {
        const ohm_mm_mode_stats *ms = &s.mode[m];
        jlong *o = v + 7 * m;
        o[0] = (jlong)ms->max;
        o[1] = (jlong)ms->storage_region;
        o[2] = (jlong)ms->execution_pool;
        o[3] = (jlong)ms->execution_used;
        o[4] = (jlong)ms->storage_pool;
        o[5] = (jlong)ms->storage_used;
        o[6] = (jlong)ms->tasks;
    }
    jlong tail[6] = {(jlong)s.tasks,     (jlong)s.blocks,        (jlong)s.block_bytes,
                     (jlong)s.evictions, (jlong)s.evicted_bytes, (jlong)s.pages};
    memcpy(v + 14, tail, sizeof tail);
    return jni_longs(env, v, 20);
}

static jstring JNICALL n_mm_snapshot(JNIEnv *env, jclass cls, jlong mm)
{
    (void)cls;
    char small[4096];
    size_t need = ohm_mm_snapshot_json(MM(mm), small, sizeof small);
    if (need < sizeof small) return jni_string(env, small);
    char *big = malloc(need + 1);
    if (!big) {
        jni_throw_msg(env, J.errors[1], "out of memory taking a snapshot");
        return NULL;
    }
    ohm_mm_snapshot_json(MM(mm), big, need + 1);
    jstring s = jni_string(env, big);
    free(big);
    return s;
}

static const JNINativeMethod methods[] = {
    {"mmConfigDefaults", "()[J", (void *)n_mm_config_defaults},
    {"mmOnHeapFromHeap", "(JD)J", (void *)n_mm_on_heap_from_heap},
    {"mmCreate", "([JJ)J", (void *)n_mm_create},
    {"mmDestroy", "(J)V", (void *)n_mm_destroy},
    {"mmStats", "(J)[J", (void *)n_mm_stats},
    {"mmSnapshot", "(J)Ljava/lang/String;", (void *)n_mm_snapshot},
    {"taskCreate", "(JJJ)J", (void *)n_task_create},
    {"taskEnd", "(J)J", (void *)n_task_end},
    {"taskSetWaitTimeout", "(JJ)V", (void *)n_task_set_wait_timeout},
    {"taskAcquire", "(JIJ)J", (void *)n_task_acquire},
    {"taskRelease", "(JIJ)J", (void *)n_task_release},
    {"taskAcquireUnroll", "(JI[BJ)I", (void *)n_task_acquire_unroll},
    {"taskReleaseUnroll", "(JIJ)J", (void *)n_task_release_unroll},
    {"taskCancel", "(JJ)V", (void *)n_task_cancel},
    {"taskStats", "(J)[J", (void *)n_task_stats},
    {"consumerCreate", "(JI[BJ)J", (void *)n_consumer_create},
    {"newGlobal", "(Ljava/lang/Object;)J", (void *)n_new_global},
    {"deleteGlobal", "(J)V", (void *)n_delete_global},
    {"consumerDestroy", "(J)I", (void *)n_consumer_destroy},
    {"consumerAcquire", "(JJ)J", (void *)n_consumer_acquire},
    {"consumerRelease", "(JJ)J", (void *)n_consumer_release},
    {"consumerStats", "(J)[J", (void *)n_consumer_stats},
    {"consumerUsed", "(J)J", (void *)n_consumer_used},
    {"consumerAllocPage", "(JJJ)J", (void *)n_consumer_alloc_page},
    {"evictorCreate", "(J)J", (void *)n_evictor_create},
    {"evictorDestroy", "(J)V", (void *)n_evictor_destroy},
    {"blockPut", "(J[B[BIJJJJ)I", (void *)n_block_put},
    {"blockPin", "(J[B)V", (void *)n_block_pin},
    {"blockUnpin", "(J[B)V", (void *)n_block_unpin},
    {"blockRemove", "(J[B)V", (void *)n_block_remove},
};

int jni_register_mm(JNIEnv *env, jclass cls)
{
    jclass th = (*env)->FindClass(env, "java/lang/Thread");
    if (!th) return JNI_ERR;
    thread_current = (*env)->GetStaticMethodID(env, th, "currentThread", "()Ljava/lang/Thread;");
    thread_is_interrupted = thread_current ? (*env)->GetMethodID(env, th, "isInterrupted", "()Z") : NULL;
    if (thread_is_interrupted && !thread_class) thread_class = (jclass)(*env)->NewGlobalRef(env, th);
    (*env)->DeleteLocalRef(env, th);
    if (!thread_is_interrupted || !thread_class) return JNI_ERR;
    return JNI_REGISTER(env, cls, methods);
}
