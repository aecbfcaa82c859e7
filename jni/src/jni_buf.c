/* Natives of pools, buffers, mapped files, shared memory and the leak detector.
 *
 * Buffers cross as (handle, id): every native checks the pair first (ohm_buf_check), so a stale handle from
 * Java is an IllegalStateException. The Java side reads and writes buffer memory itself (sun.misc.Unsafe) when
 * it can; the access natives here are its fallback and the route -Dohm.access=jni selects.
 */
#include "jni_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF(h) H2P(ohm_buf, h)

/* 0 if (h, id) is a live buffer; else throws IllegalStateException and returns nonzero. */
static int check(JNIEnv *env, jlong h, jlong id) { return jni_check(env, ohm_buf_check(BUF(h), (uint64_t)id)); }

/* Natives that store through a pointer of their own (not through ohm_buf_write, which checks this itself):
 * nonzero, with IllegalStateException thrown, for read-only memory, where the store would fault. */
static int refuse_readonly(JNIEnv *env, jlong h, const char *op)
{
    if (!ohm_buf_readonly(BUF(h))) return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "%s: buffer is read-only (a read-only mapping, or sealed)", op);
    jni_throw_msg(env, J.errors[-OHM_ESTATE], msg);
    return 1;
}

/* A new buffer handle, its values written to the caller's scratch; throws and returns 0 for NULL. */
static jlong new_buf(JNIEnv *env, ohm_buf *b, jlong scratch)
{
    if (!b) {
        jni_throw(env, ohm_last_error_code());
        return 0;
    }
    jni_out(scratch, b);
    return P2H(b);
}

/* ---- pools ---- */

/* A pool configuration crosses as a long[] in the order of OHM_POOL_OPTIONS (ohm.h); PoolConfig.PROPERTIES
 * names the same fields in the same order (tests/c/test_pool_options.c compares them). */
static jlongArray JNICALL n_pool_config_defaults(JNIEnv *env, jclass cls)
{
    (void)cls;
    ohm_pool_config c;
    ohm_pool_config_init(&c);
    jlong v[OHM_POOL_OPTION_COUNT];
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) v[i] = ohm_pool_config_get(&c, i);
    return jni_longs(env, v, OHM_POOL_OPTION_COUNT);
}

static jlong JNICALL n_pool_create(JNIEnv *env, jclass cls, jbyteArray name, jlongArray cfg)
{
    (void)cls;
    if ((*env)->GetArrayLength(env, cfg) != OHM_POOL_OPTION_COUNT) {
        jni_throw_msg(env, J.errors[-OHM_EINVAL], "pool configuration has the wrong length");
        return 0;
    }
    jlong v[OHM_POOL_OPTION_COUNT];
    (*env)->GetLongArrayRegion(env, cfg, 0, OHM_POOL_OPTION_COUNT, v);
    ohm_pool_config c;
    ohm_pool_config_init(&c);
    /* The core checks each value and words the message, as it does for C callers and Lua. */
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) {
        int rc = ohm_pool_config_set(&c, i, v[i]);
        if (rc) {
            jni_throw(env, rc);
            return 0;
        }
    }
    char nbuf[128];
    int fail;
    char *n = jni_cstr(env, name, nbuf, sizeof nbuf, &fail);
    if (fail) return 0;
    if (n) c.name = n;
    ohm_pool *p = ohm_pool_create(&c); /* copies the name */
    jni_cstr_free(n, nbuf);
    return jni_made(env, p);
}

static jlong JNICALL n_pool_default(JNIEnv *env, jclass cls)
{
    (void)cls;
    return jni_made(env, ohm_pool_default());
}

static void JNICALL n_pool_destroy(JNIEnv *env, jclass cls, jlong pool)
{
    (void)cls;
    jni_check(env, ohm_pool_destroy(H2P(ohm_pool, pool)));
}

static void JNICALL n_pool_trim(JNIEnv *env, jclass cls, jlong pool)
{
    (void)cls;
    jni_check(env, ohm_pool_trim(H2P(ohm_pool, pool)));
}

static void JNICALL n_pool_flush(JNIEnv *env, jclass cls, jlong pool)
{
    (void)cls;
    jni_check(env, ohm_pool_flush_thread_cache(H2P(ohm_pool, pool)));
}

/* Pool stats as a long[]: POOL_STATS_FIELDS values, then for each class 6 (size, allocs, frees, cache hits,
 * active blocks, active bytes). PoolStats reads the same order. */
#define POOL_STATS_FIELDS 19
static jlongArray JNICALL n_pool_stats(JNIEnv *env, jclass cls, jlong pool, jint arena)
{
    (void)cls;
    ohm_pool_stats *s = malloc(sizeof *s);
    if (!s) {
        jni_throw_msg(env, J.errors[1], "out of memory reading pool stats");
        return NULL;
    }
    int rc = ohm_pool_stats_get(H2P(ohm_pool, pool), arena, s);
    if (rc) {
        free(s);
        jni_throw(env, rc);
        return NULL;
    }
    unsigned nc = s->nclasses < OHM_MAX_CLASSES ? s->nclasses : OHM_MAX_CLASSES;
    jsize n = POOL_STATS_FIELDS + 6 * (jsize)nc;
    jlong v[POOL_STATS_FIELDS + 6 * OHM_MAX_CLASSES];
    jlong head[POOL_STATS_FIELDS] = {(jlong)s->mapped_bytes,
                                     (jlong)s->resident_bytes,
                                     (jlong)s->dirty_bytes,
                                     (jlong)s->purged_bytes,
                                     (jlong)s->chunks,
                                     (jlong)s->chunks_mapped,
                                     (jlong)s->chunks_unmapped,
                                     (jlong)s->huge_blocks,
                                     (jlong)s->huge_bytes,
                                     (jlong)s->allocs,
                                     (jlong)s->frees,
                                     (jlong)s->cache_hits,
                                     (jlong)s->active_blocks,
                                     (jlong)s->active_bytes,
                                     (jlong)s->failed_allocs,
                                     (jlong)s->poison_violations,
                                     (jlong)s->threads,
                                     (jlong)s->arenas,
                                     (jlong)nc};
    memcpy(v, head, sizeof head);
    for (unsigned i = 0; i < nc; i++) {
        const ohm_class_stats *c = &s->classes[i];
        jlong *o = v + POOL_STATS_FIELDS + 6 * i;
        o[0] = (jlong)c->size;
        o[1] = (jlong)c->allocs;
        o[2] = (jlong)c->frees;
        o[3] = (jlong)c->cache_hits;
        o[4] = (jlong)c->active_blocks;
        o[5] = (jlong)c->active_bytes;
    }
    free(s);
    return jni_longs(env, v, n);
}

/* ---- buffers: life cycle ---- */

static jlong JNICALL n_buf_alloc(JNIEnv *env, jclass cls, jlong pool, jlong size, jboolean zeroed, jlong scratch)
{
    (void)cls;
    size_t n;
    int rc = ohm_bind_size(size, 0, "size", &n);
    if (rc) {
        jni_throw(env, rc);
        return 0;
    }
    ohm_pool *p = H2P(ohm_pool, pool);
    return new_buf(env, zeroed ? ohm_buf_alloc_zeroed(p, n) : ohm_buf_alloc(p, n), scratch);
}

static jlong JNICALL n_buf_slice(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jlong len, jboolean retained,
                                 jlong scratch)
{
    (void)cls;
    if (check(env, h, id)) return 0;
    int rc = ohm_bind_range(ohm_buf_size(BUF(h)), off, len);
    if (jni_check(env, rc)) return 0;
    ohm_buf *s = retained ? ohm_buf_retained_slice(BUF(h), (size_t)off, (size_t)len)
                          : ohm_buf_slice(BUF(h), (size_t)off, (size_t)len);
    return new_buf(env, s, scratch);
}

static jlong JNICALL n_buf_duplicate(JNIEnv *env, jclass cls, jlong h, jlong id, jlong scratch)
{
    (void)cls;
    if (check(env, h, id)) return 0;
    return new_buf(env, ohm_buf_duplicate(BUF(h)), scratch);
}

/* Reference counts return codes (Java maps them onto Netty's exceptions). retain: 0 or a code. release: 1 when
 * this call freed the memory, 0, or a code. refCnt: the count, 0 for a stale handle. */
static jint JNICALL n_buf_retain(JNIEnv *env, jclass cls, jlong h, jlong id, jint n)
{
    (void)env;
    (void)cls;
    int rc = ohm_buf_check(BUF(h), (uint64_t)id);
    if (rc) return rc;
    if (n <= 0) return ohm_bind_fail(OHM_EINVAL, "increment must be positive");
    return ohm_buf_retain(BUF(h), (uint32_t)n);
}

static jint JNICALL n_buf_release(JNIEnv *env, jclass cls, jlong h, jlong id, jint n)
{
    (void)env;
    (void)cls;
    int rc = ohm_buf_check(BUF(h), (uint64_t)id);
    if (rc) return rc;
    if (n <= 0) return ohm_bind_fail(OHM_EINVAL, "decrement must be positive");
    return ohm_buf_release(BUF(h), (uint32_t)n);
}

static jint JNICALL n_buf_refcnt(JNIEnv *env, jclass cls, jlong h, jlong id)
{
    (void)env;
    (void)cls;
    if (ohm_buf_check(BUF(h), (uint64_t)id)) return 0;
    uint32_t c = ohm_buf_refcnt(BUF(h));
    return c > INT32_MAX ? INT32_MAX : (jint)c;
}

static jint JNICALL n_buf_reclaim(JNIEnv *env, jclass cls, jlong h, jlong id)
{
    (void)env;
    (void)cls;
    return ohm_buf_reclaim(BUF(h), (uint64_t)id);
}

static void JNICALL n_buf_touch(JNIEnv *env, jclass cls, jlong h, jlong id, jbyteArray hint)
{
    (void)cls;
    if (check(env, h, id)) return;
    char buf[256];
    int fail;
    char *s = jni_cstr(env, hint, buf, sizeof buf, &fail);
    if (fail) return;
    int rc = ohm_buf_touch(BUF(h), s);
    jni_cstr_free(s, buf);
    jni_check(env, rc);
}

/* Attaches the Java allocation site; a buffer that is no longer live is skipped (no exception): the Cleaner and
 * pool/task closing call it for buffers that may have died meanwhile. */
static void JNICALL n_buf_set_site(JNIEnv *env, jclass cls, jlong h, jlong id, jbyteArray site)
{
    (void)cls;
    if (ohm_buf_check(BUF(h), (uint64_t)id)) return;
    char buf[2048];
    int fail;
    char *s = jni_cstr(env, site, buf, sizeof buf, &fail);
    if (fail) return;
    ohm_buf_set_site(BUF(h), s);
    jni_cstr_free(s, buf);
}

static jint JNICALL n_buf_origin(JNIEnv *env, jclass cls, jlong h, jlong id)
{
    (void)cls;
    if (check(env, h, id)) return 0;
    return (jint)ohm_buf_origin_of(BUF(h));
}

static void JNICALL n_buf_seal(JNIEnv *env, jclass cls, jlong h, jlong id, jboolean sealed)
{
    (void)cls;
    if (check(env, h, id)) return;
    jni_check(env, ohm_buf_seal(BUF(h), sealed != 0));
}

/* ---- parked buffers: the Java magazines (ohm.h's contract; OhmBuffer lends and parks them) ---- */

/* Up to n parked buffers of size bytes of the pool, written to out as n ohm_buf_parked records (buffer, data,
 * id: 24 bytes each); how many. 0 for a pool that makes none (poison, zero, guard pages): Java then allocates
 * that size class through bufAlloc. */
static jint JNICALL n_mag_refill(JNIEnv *env, jclass cls, jlong pool, jlong size, jint n, jlong out)
{
    (void)env;
    (void)cls;
    if (size < 0 || n < 0) return 0;
    return (jint)ohm_buf_alloc_parked(H2P(ohm_pool, pool), (size_t)size, H2P(ohm_buf_parked, out), (size_t)n);
}

/* Ends n parked buffers whose records are at in; how many were ended. */
static jint JNICALL n_mag_flush(JNIEnv *env, jclass cls, jlong in, jint n)
{
    (void)env;
    (void)cls;
    return n > 0 ? (jint)ohm_buf_free_parked(H2P(const ohm_buf_parked, in), (size_t)n) : 0;
}

/* Offsets of the words a lend writes, and the record size: {state, size, gen1, gen2, sizeof(ohm_buf_parked)}. */
static jlongArray JNICALL n_buf_layout(JNIEnv *env, jclass cls)
{
    (void)cls;
    ohm_buf_layout l;
    ohm_buf_parked_layout(&l);
    jlong v[5] = {(jlong)l.state, (jlong)l.size, (jlong)l.gen1, (jlong)l.gen2, (jlong)sizeof(ohm_buf_parked)};
    return jni_longs(env, v, 5);
}

/* A leak record for a lent buffer the Java sampler chose. */
static void JNICALL n_buf_track(JNIEnv *env, jclass cls, jlong h, jlong id)
{
    (void)cls;
    if (check(env, h, id)) return;
    jni_check(env, ohm_buf_track(BUF(h)));
}

/* ---- mapped files and shared memory ---- */

static jlong JNICALL n_map_file(JNIEnv *env, jclass cls, jbyteArray path, jlong off, jlong len, jint flags,
                                jlong scratch)
{
    (void)cls;
    size_t n;
    int rc = off < 0 ? ohm_bind_fail(OHM_EINVAL, "file offset is negative") : ohm_bind_size(len, 0, "length", &n);
    if (jni_check(env, rc)) return 0;
    char buf[512];
    int fail;
    char *p = jni_cstr(env, path, buf, sizeof buf, &fail);
    if (fail) return 0;
    ohm_buf *b = ohm_buf_map_file(p, (uint64_t)off, n, (unsigned)flags);
    jni_cstr_free(p, buf);
    return new_buf(env, b, scratch);
}

static void JNICALL n_buf_sync(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jlong len)
{
    (void)cls;
    if (check(env, h, id)) return;
    int rc = ohm_bind_range(ohm_buf_size(BUF(h)), off, len);
    if (!rc) rc = ohm_buf_sync(BUF(h), (size_t)off, (size_t)len);
    jni_check(env, rc);
}

static jlong JNICALL n_shm_create(JNIEnv *env, jclass cls, jbyteArray name, jlong size, jlong scratch)
{
    (void)cls;
    size_t n;
    int rc = ohm_bind_size(size, 0, "size", &n);
    if (jni_check(env, rc)) return 0;
    char buf[256];
    int fail;
    char *s = jni_cstr(env, name, buf, sizeof buf, &fail);
    if (fail) return 0;
    ohm_buf *b = ohm_buf_shm_create(s, n);
    jni_cstr_free(s, buf);
    return new_buf(env, b, scratch);
}

static jlong JNICALL n_shm_open(JNIEnv *env, jclass cls, jbyteArray name, jboolean writable, jlong scratch)
{
    (void)cls;
    char buf[256];
    int fail;
    char *s = jni_cstr(env, name, buf, sizeof buf, &fail);
    if (fail) return 0;
    ohm_buf *b = ohm_buf_shm_open(s, writable != 0);
    jni_cstr_free(s, buf);
    return new_buf(env, b, scratch);
}

static void JNICALL n_shm_unlink(JNIEnv *env, jclass cls, jbyteArray name)
{
    (void)cls;
    char buf[256];
    int fail;
    char *s = jni_cstr(env, name, buf, sizeof buf, &fail);
    if (fail) return;
    int rc = ohm_shm_unlink(s);
    jni_cstr_free(s, buf);
    jni_check(env, rc);
}

/* ---- access through JNI (the fallback of the Java-side access) ---- */

static jlong JNICALL n_buf_get(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jint type, jint order)
{
    (void)cls;
    if (check(env, h, id)) return 0;
    ohm_bind_value v;
    int rc = ohm_bind_get(BUF(h), off, (ohm_bind_type)type, order, &v);
    if (jni_check(env, rc)) return 0;
    if (type == OHM_BT_F32) {
        float f = (float)v.f;
        int32_t bits;
        memcpy(&bits, &f, 4);
        return bits;
    }
    return v.i; /* f64: the bits; integers: sign- or zero-extended by the layer */
}

static void JNICALL n_buf_set(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jint type, jint order, jlong bits)
{
    (void)cls;
    if (check(env, h, id)) return;
    ohm_bind_value v;
    if (type == OHM_BT_F32) {
        float f;
        int32_t b32 = (int32_t)bits;
        memcpy(&f, &b32, 4);
        v.f = f;
    } else {
        v.i = bits;
    }
    jni_check(env, ohm_bind_set(BUF(h), off, (ohm_bind_type)type, order, v));
}

/* Bulk copies between a buffer and a Java array or a direct ByteBuffer's address. The array range is checked by
 * Java; GetByteArrayRegion checks it again. */
static void JNICALL n_buf_read_array(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jbyteArray dst,
                                     jint dst_off, jint len)
{
    (void)cls;
    if (check(env, h, id)) return;
    void *p;
    int rc = ohm_bind_span(BUF(h), off, len, &p);
    if (rc) {
        jni_throw(env, rc);
        return;
    }
    (*env)->SetByteArrayRegion(env, dst, dst_off, len, p);
}

static void JNICALL n_buf_write_array(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jbyteArray src,
                                      jint src_off, jint len)
{
    (void)cls;
    if (check(env, h, id) || refuse_readonly(env, h, "write")) return;
    void *p;
    int rc = ohm_bind_span(BUF(h), off, len, &p);
    if (rc) {
        jni_throw(env, rc);
        return;
    }
    (*env)->GetByteArrayRegion(env, src, src_off, len, p); /* a span is for reading: the check above is the write's */
}

static void JNICALL n_buf_copy(JNIEnv *env, jclass cls, jlong dh, jlong did, jlong doff, jlong sh, jlong sid,
                               jlong soff, jlong len)
{
    (void)cls;
    if (check(env, dh, did) || check(env, sh, sid)) return;
    jni_check(env, ohm_bind_copy(BUF(dh), doff, BUF(sh), soff, len));
}

static void JNICALL n_buf_fill(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jlong len, jbyte value)
{
    (void)cls;
    if (check(env, h, id)) return;
    jni_check(env, ohm_bind_fill(BUF(h), off, (uint8_t)value, len));
}

/* The first index of needle in [off, off+len), or -1. */
static jlong JNICALL n_buf_find(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jlong len, jbyteArray needle)
{
    (void)cls;
    if (check(env, h, id)) return -1;
    jsize n = (*env)->GetArrayLength(env, needle);
    jbyte small[256], *nb = n <= (jsize)sizeof small ? small : malloc((size_t)n);
    if (!nb) {
        jni_throw_msg(env, J.errors[1], "out of memory copying a search pattern");
        return -1;
    }
    (*env)->GetByteArrayRegion(env, needle, 0, n, nb);
    int64_t r = ohm_bind_find(BUF(h), off, len, nb, (size_t)n);
    if (nb != small) free(nb);
    if (r < -1) {
        jni_throw(env, (int)r);
        return -1;
    }
    return r;
}

static jint JNICALL n_buf_compare(JNIEnv *env, jclass cls, jlong ah, jlong aid, jlong bh, jlong bid)
{
    (void)cls;
    if (check(env, ah, aid) || check(env, bh, bid)) return 0;
    int cmp = 0;
    int rc = ohm_bind_compare_all(BUF(ah), BUF(bh), &cmp);
    jni_check(env, rc);
    return cmp;
}

/* A direct ByteBuffer over [off, off+len) of the buffer: no copy, valid while the buffer is. JNI makes only
 * writable ones: Java makes the view of read-only memory read-only (asReadOnlyBuffer), and a writable one is
 * refused here for such memory, where a store through it would kill the JVM. */
static jobject JNICALL n_buf_nio(JNIEnv *env, jclass cls, jlong h, jlong id, jlong off, jlong len, jboolean writable)
{
    (void)cls;
    if (check(env, h, id) || (writable && refuse_readonly(env, h, "nioBuffer"))) return NULL;
    if (len > INT32_MAX) {
        jni_throw_msg(env, J.errors[-OHM_EINVAL], "a ByteBuffer holds at most 2^31-1 bytes");
        return NULL;
    }
    void *p;
    int rc = ohm_bind_span(BUF(h), off, len, &p);
    if (jni_check(env, rc)) return NULL;
    static char empty[1]; /* NewDirectByteBuffer wants a non-NULL address, even for 0 bytes */
    return (*env)->NewDirectByteBuffer(env, p ? p : empty, len);
}

/* The address of a direct ByteBuffer (0 if it is not direct). */
static jlong JNICALL n_direct_address(JNIEnv *env, jclass cls, jobject bb)
{
    (void)cls;
    return P2H((*env)->GetDirectBufferAddress(env, bb));
}

/* ---- leak detector ---- */

static void JNICALL n_leak_set_level(JNIEnv *env, jclass cls, jint level)
{
    (void)env;
    (void)cls;
    ohm_leak_set_level((ohm_leak_level)level);
}

static jint JNICALL n_leak_get_level(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    return (jint)ohm_leak_get_level();
}

static void JNICALL n_leak_set_sample(JNIEnv *env, jclass cls, jint interval)
{
    (void)env;
    (void)cls;
    ohm_leak_set_sample_interval((uint32_t)interval);
}

static jint JNICALL n_leak_get_sample(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    uint32_t v = ohm_leak_get_sample_interval();
    return v > INT32_MAX ? INT32_MAX : (jint)v;
}

static jlong JNICALL n_leak_mark(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    return (jlong)ohm_leak_mark();
}

static jlong JNICALL n_leak_check(JNIEnv *env, jclass cls, jlong mark)
{
    (void)cls;
    int64_t n = ohm_bind_leak_check(J.host, (uint64_t)mark);
    return jni_count(env, n);
}

static const JNINativeMethod methods[] = {
    {"poolConfigDefaults", "()[J", (void *)n_pool_config_defaults},
    {"poolCreate", "([B[J)J", (void *)n_pool_create},
    {"poolDefault", "()J", (void *)n_pool_default},
    {"poolDestroy", "(J)V", (void *)n_pool_destroy},
    {"poolTrim", "(J)V", (void *)n_pool_trim},
    {"poolFlush", "(J)V", (void *)n_pool_flush},
    {"poolStats", "(JI)[J", (void *)n_pool_stats},
    {"bufAlloc", "(JJZJ)J", (void *)n_buf_alloc},
    {"bufSlice", "(JJJJZJ)J", (void *)n_buf_slice},
    {"bufDuplicate", "(JJJ)J", (void *)n_buf_duplicate},
    {"bufRetain", "(JJI)I", (void *)n_buf_retain},
    {"bufRelease", "(JJI)I", (void *)n_buf_release},
    {"bufRefCnt", "(JJ)I", (void *)n_buf_refcnt},
    {"bufReclaim", "(JJ)I", (void *)n_buf_reclaim},
    {"bufTouch", "(JJ[B)V", (void *)n_buf_touch},
    {"bufSetSite", "(JJ[B)V", (void *)n_buf_set_site},
    {"bufOrigin", "(JJ)I", (void *)n_buf_origin},
    {"bufSeal", "(JJZ)V", (void *)n_buf_seal},
    {"magRefill", "(JJIJ)I", (void *)n_mag_refill},
    {"magFlush", "(JI)I", (void *)n_mag_flush},
    {"bufLayout", "()[J", (void *)n_buf_layout},
    {"bufTrack", "(JJ)V", (void *)n_buf_track},
    {"mapFile", "([BJJIJ)J", (void *)n_map_file},
    {"bufSync", "(JJJJ)V", (void *)n_buf_sync},
    {"shmCreate", "([BJJ)J", (void *)n_shm_create},
    {"shmOpen", "([BZJ)J", (void *)n_shm_open},
    {"shmUnlink", "([B)V", (void *)n_shm_unlink},
    {"bufGet", "(JJJII)J", (void *)n_buf_get},
    {"bufSet", "(JJJIIJ)V", (void *)n_buf_set},
    {"bufReadArray", "(JJJ[BII)V", (void *)n_buf_read_array},
    {"bufWriteArray", "(JJJ[BII)V", (void *)n_buf_write_array},
    {"bufCopy", "(JJJJJJJ)V", (void *)n_buf_copy},
    {"bufFill", "(JJJJB)V", (void *)n_buf_fill},
    {"bufFind", "(JJJJ[B)J", (void *)n_buf_find},
    {"bufCompare", "(JJJJ)I", (void *)n_buf_compare},
    {"bufNio", "(JJJJZ)Ljava/nio/ByteBuffer;", (void *)n_buf_nio},
    {"directAddress", "(Ljava/nio/ByteBuffer;)J", (void *)n_direct_address},
    {"leakSetLevel", "(I)V", (void *)n_leak_set_level},
    {"leakGetLevel", "()I", (void *)n_leak_get_level},
    {"leakSetSample", "(I)V", (void *)n_leak_set_sample},
    {"leakGetSample", "()I", (void *)n_leak_get_sample},
    {"leakMark", "()J", (void *)n_leak_mark},
    {"leakCheck", "(J)J", (void *)n_leak_check},
};

int jni_register_buf(JNIEnv *env, jclass cls) { return JNI_REGISTER(env, cls, methods); }
