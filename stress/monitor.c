/* The monitor thread: every ~100 ms a sample (RSS, live bytes, the manager's pools per mode, each worker's
 * task usage, spills and evictions) for the HTML report, the peak of live bytes and the range of task shares
 * for the summary, and a progress line when stdout is a terminal. */
#include "stress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SAMPLE_MS 100

static void take_sample(stress *s, ohm_pool_stats *ps)
{
    sample x = {.t = now_s() - s->t0};
    x.task_used = calloc(s->o.threads, sizeof *x.task_used);
    if (!x.task_used) return;
    x.ops = atomic_load_explicit(&s->c.ops, memory_order_relaxed);
    x.rss = harness_rss_bytes();
    if (ohm_pool_stats_get(s->pool, -1, ps) == 0) x.live = ps->active_bytes;
    ohm_mm_stats ms;
    if (ohm_mm_stats_get(s->mm, &ms) == 0) {
        for (int m = 0; m < OHM_MM_MODES; m++) {
            x.exec_used[m] = ms.mode[m].execution_used;
            x.storage_used[m] = ms.mode[m].storage_used;
        }
        x.evictions = ms.evictions;
    }
    x.spills = atomic_load_explicit(&s->c.spills, memory_order_relaxed);
    uint64_t max = s->o.mm_bytes;
    for (unsigned i = 0; i < s->o.threads; i++) {
        uint64_t off = atomic_load_explicit(&s->workers[i].task_used[OHM_OFF_HEAP], memory_order_relaxed);
        uint64_t on = atomic_load_explicit(&s->workers[i].task_used[OHM_ON_HEAP], memory_order_relaxed);
        x.task_used[i] = off + on;
        if (off) {
            double share = (double)off / (double)max;
            if (share < s->share_min || s->share_min == 0) s->share_min = share;
            if (share > s->share_max) s->share_max = share;
        }
    }
    if (x.live > s->peak_live) s->peak_live = x.live;
    pthread_mutex_lock(&s->samples_lock);
    if (s->nsamples == s->samples_cap) {
        size_t cap = s->samples_cap ? 2 * s->samples_cap : 256;
        sample *p = realloc(s->samples, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->samples_lock);
            free(x.task_used);
            return;
        }
        s->samples = p;
        s->samples_cap = cap;
    }
    s->samples[s->nsamples++] = x;
    pthread_mutex_unlock(&s->samples_lock);
}

static void progress_line(const stress *s, const sample *x)
{
    double rate = x->t > 0 ? (double)x->ops / x->t : 0;
    printf("\r[%6.1fs] %llu ops (%.0fk/s)  live %.1f MiB  rss %.1f MiB  spills %llu  evictions %llu  leaks %llu  "
           "faults %llu  errors %llu ",
           x->t, (unsigned long long)x->ops, rate / 1000, (double)x->live / 1048576.0, (double)x->rss / 1048576.0,
           (unsigned long long)x->spills, (unsigned long long)x->evictions,
           (unsigned long long)atomic_load(&s->c.leaks_injected), (unsigned long long)ohm_fault_injected(),
           (unsigned long long)(atomic_load(&s->c.integrity_errors) + atomic_load(&s->c.api_errors)));
    fflush(stdout);
}

static void *monitor_main(void *arg)
{
    stress *s = arg;
    ohm_pool_stats *ps = calloc(1, sizeof *ps); /* large (per-class arrays): not on this thread's stack */
    if (!ps) return NULL;
    unsigned n = 0;
    while (!atomic_load(&s->monitor_stop)) {
        nanosleep(&(struct timespec){0, SAMPLE_MS * 1000 * 1000}, NULL);
        take_sample(s, ps);
        if (s->progress && ++n % 5 == 0 && s->nsamples) progress_line(s, &s->samples[s->nsamples - 1]);
    }
    if (s->progress) printf("\n");
    free(ps);
    return NULL;
}

int monitor_start(stress *s) { return pthread_create(&s->monitor, NULL, monitor_main, s) != 0 ? -1 : 0; }

/* Stops the monitor after the workers have been joined (the last sample shows everything released). */
void monitor_stop(stress *s)
{
    atomic_store(&s->monitor_stop, true);
    pthread_join(s->monitor, NULL);
}
