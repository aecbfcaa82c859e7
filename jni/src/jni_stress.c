/* The report of org.ohm.stress.Main's runs: the Java driver hands its results to ohm-stress's report writer
 * (stress/workload.c, linked in as ohm_stress_report), so its summary, JSON object and HTML report are the Lua
 * driver's, to the byte. The native is org.ohm.stress.Report's, not org.ohm.Native's: it serves that package
 * only, and a jar without org.ohm.stress still loads the library. */
#define _GNU_SOURCE /* open_memstream */
#include "jni_internal.h"

#include "workload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* numbers[]: threads, iterations, leaks, leak bytes, integrity errors, pools, sites, then per site its count,
 * bytes and first iteration. */
enum { N_THREADS, N_ITERATIONS, N_LEAKS, N_LEAK_BYTES, N_INTEGRITY, N_POOLS, N_SITES, N_HEAD };
/* samples[]: per sample its time, RSS and manager use, then each pool's live bytes. */
enum { S_TIME, S_RSS, S_MM, S_HEAD };

typedef struct report_in {
    char *strings; /* NUL-separated: workload, first error, report path, pool names, sites */
    jlong *numbers;
    jdouble *samples;
    const char *path; /* the HTML report's, "" for none */
    wl_result r;
    char *text; /* the summary or the JSON object */
    size_t text_len;
} report_in;

static void report_free(report_in *in)
{
    free(in->strings);
    free(in->numbers);
    free(in->samples);
    free(in->r.sites);
    free(in->r.samples);
    free(in->text);
}

/* The next of the NUL-separated strings in [*p, end): "" past the end. */
static const char *next_string(char **p, const char *end)
{
    if (*p >= end) return "";
    char *s = *p;
    *p += strlen(s) + 1;
    return s;
}

/* Copies Java's arrays into in and fills in->r from them: 0, or -1 with an exception pending. */
static int report_read(JNIEnv *env, report_in *in, jbyteArray strings, jlongArray numbers, jdouble seconds,
                       jdoubleArray samples)
{
    jsize ns = (*env)->GetArrayLength(env, strings), nn = (*env)->GetArrayLength(env, numbers);
    jsize nx = (*env)->GetArrayLength(env, samples);
    in->strings = malloc((size_t)ns + 1);
    in->numbers = malloc(((size_t)nn + 1) * sizeof(jlong));
    in->samples = malloc(((size_t)nx + 1) * sizeof(jdouble));
    if (!in->strings || !in->numbers || !in->samples) {
        jni_throw_msg(env, J.errors[-OHM_ENOMEM], "out of memory copying a workload run's results");
        return -1;
    }
    (*env)->GetByteArrayRegion(env, strings, 0, ns, (jbyte *)in->strings);
    in->strings[ns] = '\0';
    (*env)->GetLongArrayRegion(env, numbers, 0, nn, in->numbers);
    (*env)->GetDoubleArrayRegion(env, samples, 0, nx, in->samples);
    const jlong *n = in->numbers;
    if (nn < N_HEAD || n[N_POOLS] < 0 || n[N_POOLS] > WL_MAX_POOLS || n[N_SITES] < 0 ||
        n[N_SITES] > (nn - N_HEAD) / 3) {
        jni_throw_msg(env, J.errors[-OHM_EINVAL], "malformed workload run results");
        return -1;
    }
    size_t npools = (size_t)n[N_POOLS], nsites = (size_t)n[N_SITES], stride = S_HEAD + npools;
    size_t nsamples = (size_t)nx / stride;
    in->r.sites = calloc(nsites + 1, sizeof *in->r.sites);
    in->r.samples = calloc(nsamples + 1, sizeof *in->r.samples);
    if (!in->r.sites || !in->r.samples) {
        jni_throw_msg(env, J.errors[-OHM_ENOMEM], "out of memory copying a workload run's results");
        return -1;
    }
    char *p = in->strings, *end = in->strings + ns;
    wl_result *r = &in->r;
    r->driver = "java";
    r->workload = next_string(&p, end);
    snprintf(r->first_error, sizeof r->first_error, "%s", next_string(&p, end));
    in->path = next_string(&p, end);
    r->threads = (unsigned)n[N_THREADS];
    r->seconds = seconds;
    r->iterations = (uint64_t)n[N_ITERATIONS];
    r->leaks = (uint64_t)n[N_LEAKS];
    r->leak_bytes = (uint64_t)n[N_LEAK_BYTES];
    r->integrity_errors = (uint64_t)n[N_INTEGRITY];
    r->npools = (unsigned)npools;
    for (size_t i = 0; i < npools; i++) r->pool_names[i] = next_string(&p, end);
    r->nsites = nsites;
    for (size_t i = 0; i < nsites; i++) {
        wl_site *s = &r->sites[i];
        snprintf(s->site, sizeof s->site, "%s", next_string(&p, end));
        s->count = (uint64_t)n[N_HEAD + 3 * i];
        s->bytes = (uint64_t)n[N_HEAD + 3 * i + 1];
        s->first_iteration = (uint64_t)n[N_HEAD + 3 * i + 2];
    }
    r->nsamples = nsamples;
    for (size_t i = 0; i < nsamples; i++) {
        const jdouble *x = &in->samples[i * stride];
        wl_sample *y = &r->samples[i];
        y->t = x[S_TIME];
        y->rss = (uint64_t)x[S_RSS];
        y->mm_used = (uint64_t)x[S_MM];
        for (size_t k = 0; k < npools; k++) y->pool_live[k] = (uint64_t)x[S_HEAD + k];
    }
    return 0;
}

/* The run's report: its verdict and growth trend computed here, the summary (or the JSON object with json) as
 * text, and the HTML report written to the path among the strings when there is one. Returns {text, "PASSED" or
 * "FAILED", null or why the HTML report could not be written}; throws only for malformed input or no memory. */
static jobjectArray JNICALL n_report_write(JNIEnv *env, jclass cls, jbyteArray strings, jlongArray numbers,
                                           jdouble seconds, jdoubleArray samples, jboolean json)
{
    (void)cls;
    report_in in = {0};
    jobjectArray out = NULL;
    if (report_read(env, &in, strings, numbers, seconds, samples) != 0) goto done;
    wl_growth(&in.r);
    FILE *f = open_memstream(&in.text, &in.text_len);
    if (!f) {
        jni_throw_msg(env, J.errors[-OHM_ENOMEM], "out of memory writing a workload run's report");
        goto done;
    }
    if (json) wl_json(f, &in.r);
    else wl_summary(f, &in.r);
    fclose(f);
    char why[1200] = "";
    if (in.path[0] && wl_html(&in.r, in.path) != 0)
        snprintf(why, sizeof why, "cannot write %s: %s", in.path, strerror(errno));
    const char *v[3] = {in.text ? in.text : "", wl_failed(&in.r) ? "FAILED" : "PASSED", why[0] ? why : NULL};
    out = (*env)->NewObjectArray(env, 3, J.string_class, NULL);
    for (int k = 0; out && k < 3; k++) {
        jstring s = jni_string(env, v[k]);
        if ((*env)->ExceptionCheck(env)) {
            out = NULL;
            break;
        }
        (*env)->SetObjectArrayElement(env, out, k, s);
        if (s) (*env)->DeleteLocalRef(env, s);
    }
done:
    report_free(&in);
    return out;
}

static const JNINativeMethod methods[] = {
    {"write", "([B[JD[DZ)[Ljava/lang/String;", (void *)n_report_write},
};

int jni_register_stress(JNIEnv *env)
{
    jclass cls = (*env)->FindClass(env, "org/ohm/stress/Report");
    if (!cls) { /* a jar without the stress driver: nothing to register */
        (*env)->ExceptionClear(env);
        return 0;
    }
    int rc = JNI_REGISTER(env, cls, methods);
    (*env)->DeleteLocalRef(env, cls);
    return rc;
}
