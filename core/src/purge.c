/* The background purger (purge.h). It holds a pool busy (bg_busy) while purging it, with the pool-list lock
 * dropped; pool destruction waits for that, so a pool is never freed under the purger. */
#include "purge.h"

#include "os.h"

#include <time.h>

static pthread_cond_t bg_cond;
static bool bg_cond_ready; /* pool-list lock */
static bool bg_running;    /* pool-list lock */
static pthread_t bg_thread;

/* Wakes at half the shortest delay of the pools it serves (at least every 10 ms, at most every second). */
static void bg_wait(uint64_t min_delay)
{
    uint64_t wait_ms = min_delay / 2 < 10 ? 10 : min_delay / 2;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pool_list_wait(&bg_cond, &ts);
}

static void *bg_main(void *unused)
{
    (void)unused;
    pool_list_lock();
    for (;;) {
        uint64_t min_delay = 1000;
        for (ohm_pool *p = pool_list(); p; p = p->next) {
            if (!purge_wanted(&p->cfg)) continue;
            if (p->cfg.purge_delay_ms < min_delay) min_delay = p->cfg.purge_delay_ms;
            p->bg_busy = true;
            pool_list_unlock();
            for (unsigned i = 0; i < p->narenas; i++) arena_purge(&p->arenas[i], false);
            pool_list_lock();
            p->bg_busy = false;
            pthread_cond_broadcast(&bg_cond);
        }
        bg_wait(min_delay);
    }
    return NULL;
}

void purge_start(void)
{
    if (bg_running) return;
    if (!bg_cond_ready) {
        os_cond_init_monotonic(&bg_cond);
        bg_cond_ready = true;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    if (pthread_create(&bg_thread, &attr, bg_main, NULL) == 0) bg_running = true;
    else ohm__log(OHM_LOG_WARN, "cannot start the background purge thread; pages are purged on allocation paths only");
    pthread_attr_destroy(&attr);
}

void purge_wait_idle(ohm_pool *pool)
{
    while (pool->bg_busy) pool_list_wait(&bg_cond, NULL);
}

void purge_postfork_child(void)
{
    /* No pool is busy with the purger, and its condition variable may count it as a waiter (a broadcast could
     * wait for it forever), so it starts afresh on the next pool creation or trim. */
    bg_running = false;
    for (ohm_pool *p = pool_list(); p; p = p->next) p->bg_busy = false;
    if (bg_cond_ready) os_cond_init_monotonic(&bg_cond);
}
