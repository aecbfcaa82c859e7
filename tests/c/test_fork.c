/* The runtime's life cycle (lifecycle.c): fork while other threads hold and nest the runtime's locks, the child
 * that goes on using everything, and the one thread-exit path.
 *
 * A deadlock must fail the test, not hang it: every child arms its own alarm (SIGALRM kills it, and the parent
 * sees the signal), and the parent arms one for the whole file.
 *
 * Under ASan and TSan (gcc 12's runtimes) the other threads pause at each fork: those runtimes' malloc does not
 * lock itself around fork, so a child forked while another thread is inside malloc blocks forever in its own
 * first malloc (seen in SizeClassAllocator64::GetFromAllocator, called from the child's first fopen). That is
 * the sanitizer's limitation, not ohm's; forking while the threads hold ohm's locks is covered by the plain build,
 * and the sanitized builds still check the child, the threads' races between forks and the thread-exit path. */
#define _GNU_SOURCE
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUIESCE_AT_FORK 1
#else
#define QUIESCE_AT_FORK 0
#endif

#define FORKS         120
#define CHILD_SECONDS 20  /* a child that takes this long is stuck on a lock */
#define FILE_SECONDS  240 /* below ctest's 300 s timeout, so the alarm names the failure */

/* ---- the parent's leak handler: counts, and stays quiet ---- */

static atomic_ulong parent_reports[3];

static void parent_handler(void *arg, const ohm_leak_report *r)
{
    (void)arg;
    if ((unsigned)r->reason < 3) atomic_fetch_add(&parent_reports[r->reason], 1);
}

static ohm_pool *quiet_pool(const char *name)
{
    ohm_pool_config cfg = fixture_config(name);
    return ohm_pool_create(&cfg);
}

/* ---- what the parent's threads do while it forks ---- */

static atomic_int stop;

/* Sanitized builds only (see the top): each worker holds the gate for reading during one round of its loop, and
 * the forking thread takes it for writing (writers first, so the forks are not starved). */
static pthread_rwlock_t gate;

static void gate_init(void)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&gate, &attr);
    pthread_rwlockattr_destroy(&attr);
}

static void round_begin(void)
{
    if (QUIESCE_AT_FORK) pthread_rwlock_rdlock(&gate);
}

static void round_end(void)
{
    if (QUIESCE_AT_FORK) pthread_rwlock_unlock(&gate);
}

/* Pool destruction: reports live buffers and retained slices (header lock, then leak records) while forks take
 * every lock. */
static void *destroyer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop)) {
        round_begin();
        ohm_pool *p = quiet_pool("fork-destroyed");
        if (!p) {
            round_end();
            continue;
        }
        for (int i = 0; i < 24; i++) {
            ohm_buf *b = ohm_buf_alloc(p, 16 + (size_t)(rand_r(&seed) % 4096));
            if (!b) continue;
            ohm_buf_set_site(b, "at Destroyer.run(Destroyer.java:1)");
            ohm_buf *r = ohm_buf_retained_slice(b, 0, 8);
            if (i % 3 == 0) ohm_buf_release(b, 1); /* parent released: the slice is the leak */
            if (r && i % 3 == 1) ohm_buf_release(r, 1);
        }
        ohm_pool_destroy(p);
        round_end();
    }
    return NULL;
}

/* Leaks found by a GC (reclaim) and by checkpoints: leak stripes held while records are copied from the records
 * pool (registry, arena locks). */
#define REPORTER_LIVE 256

static void *reporter(void *arg)
{
    ohm_pool *p = arg;
    /* Live records enough that a checkpoint's copies refill the thread cache (arena lock) under a stripe lock. */
    ohm_buf *keep[REPORTER_LIVE];
    round_begin();
    for (int i = 0; i < REPORTER_LIVE; i++) keep[i] = ohm_buf_alloc(p, 48);
    round_end();
    while (!atomic_load(&stop)) {
        round_begin();
        uint64_t mark = ohm_leak_mark();
        ohm_buf *b = ohm_buf_alloc(p, 64);
        if (!b) {
            round_end();
            continue;
        }
        ohm_buf_set_site(b, "at Reporter.run(Reporter.java:2)");
        ohm_buf_touch(b, "reporter");
        ohm_buf *r = ohm_buf_retained_slice(b, 8, 16);
        ohm_buf_release(b, 1);
        if (r) ohm_buf_reclaim(r, ohm_buf_id(r));
        ohm_buf *live = ohm_buf_alloc(p, 32);
        ohm_leak_check(mark, parent_handler, NULL);
        if (live) ohm_buf_release(live, 1);
        ohm_leak_check(0, fixture_ignore_leak, NULL);
        round_end();
    }
    round_begin();
    for (int i = 0; i < REPORTER_LIVE; i++)
        if (keep[i]) ohm_buf_release(keep[i], 1);
    round_end();
    return NULL;
}

static void *short_lived(void *arg)
{
    ohm_pool *p = arg;
    for (int i = 0; i < 64; i++) {
        ohm_buf *b = ohm_buf_alloc(i & 1 ? p : NULL, 24 + (size_t)i * 8);
        void *raw = ohm_pool_alloc(p, 100);
        if (b) ohm_buf_release(b, 1);
        ohm_pool_free(p, raw);
    }
    return NULL; /* the thread-exit path gives back its headers and caches */
}

/* Allocation, and threads that start and end: the thread-exit path (header lock, registry, arena locks). */
static void *allocator(void *arg)
{
    ohm_pool *p = arg;
    while (!atomic_load(&stop)) {
        round_begin();
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, p) == 0) pthread_join(t, NULL);
        void *blocks[32];
        for (int i = 0; i < 32; i++) blocks[i] = ohm_alloc(16 + (size_t)i * 32);
        for (int i = 0; i < 32; i++) ohm_free(blocks[i]);
        round_end();
    }
    return NULL;
}

/* ---- the child ---- */

static struct {
    unsigned calls;
    ohm_leak_reason reason;
    size_t size;
    int site_ok;
} child_seen;

static char child_site[64];

static void child_handler(void *arg, const ohm_leak_report *r)
{
    (void)arg;
    child_seen.calls++;
    child_seen.reason = r->reason;
    child_seen.size = r->size;
    child_seen.site_ok = r->created.host_site && strcmp(r->created.host_site, child_site) == 0;
}

/* Runs in the child: allocates, releases, reports a leak through its handler, destroys a pool it inherited while
 * the purger may have been working on it. Returns the exit status: 0, or the number of the step that failed.
 * Creates no thread (a multi-threaded fork's child may not, under TSan). */
static int child_main(ohm_pool *inherited)
{
    alarm(CHILD_SECONDS);
    snprintf(child_site, sizeof child_site, "at Child.run(Child.java:%d)", (int)getpid());
    ohm_leak_set_handler(child_handler, NULL);
    ohm_pool *p = quiet_pool("fork-child");
    if (!p) return 1;
    ohm_buf *b = ohm_buf_alloc(p, 100), *d = ohm_buf_alloc(NULL, 200);
    if (!b || !d) return 2;
    if (ohm_buf_write(b, 0, "child", 5) != 0 || ohm_buf_release(b, 1) != 1 || ohm_buf_release(d, 1) != 1) return 3;
    ohm_buf *leaked = ohm_buf_alloc(p, 300);
    if (!leaked) return 4;
    ohm_buf_set_site(leaked, child_site);
    if (ohm_buf_reclaim(leaked, ohm_buf_id(leaked)) != 1) return 5;
    if (child_seen.calls != 1 || child_seen.reason != OHM_LEAK_GC || child_seen.size != 300 || !child_seen.site_ok)
        return 6;
    uint64_t mark = ohm_leak_mark();
    ohm_buf *live = ohm_buf_alloc(p, 400);
    if (!live) return 7;
    if (ohm_leak_check(mark, NULL, NULL) != 1 || child_seen.reason != OHM_LEAK_CHECKPOINT || child_seen.size != 400)
        return 8;
    if (ohm_pool_destroy(p) != 0 || child_seen.calls != 3 || child_seen.reason != OHM_LEAK_POOL_DESTROY) return 9;
    if (ohm_pool_destroy(inherited) != 0) return 10;
    return 0;
}

/* ---- tests ---- */

static void test_fork_while_threads_destroy_pools_report_leaks_and_allocate(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_leak_set_handler(parent_handler, NULL);
    ohm_pool *shared = quiet_pool("fork-shared");
    if (!CHECK_NOT_NULL(shared)) return;
    gate_init();
    pthread_t th[4];
    atomic_store(&stop, 0);
    CHECK_EQ_INT(pthread_create(&th[0], NULL, destroyer, (void *)1), 0);
    CHECK_EQ_INT(pthread_create(&th[1], NULL, reporter, shared), 0);
    CHECK_EQ_INT(pthread_create(&th[2], NULL, allocator, shared), 0);
    CHECK_EQ_INT(pthread_create(&th[3], NULL, destroyer, (void *)2), 0);
    int failed = 0, signaled = 0, first_status = 0;
    for (int i = 0; i < FORKS; i++) {
        /* A pool the purger works on (1 ms delay: it wakes every 10 ms), for the child to destroy. */
        ohm_pool_config cfg = fixture_config("fork-purged");
        cfg.background_purge = true;
        cfg.purge_delay_ms = 1;
        ohm_pool *purged = ohm_pool_create(&cfg);
        if (!CHECK_NOT_NULL(purged)) break;
        void *blk = ohm_pool_alloc(purged, 8192);
        ohm_pool_free(purged, blk);
        usleep(200 * (unsigned)(i % 8)); /* fork at varying points of the other threads' work */
        if (QUIESCE_AT_FORK) pthread_rwlock_wrlock(&gate);
        pid_t pid = fork();
        if (pid == 0) _exit(child_main(purged));
        if (QUIESCE_AT_FORK) pthread_rwlock_unlock(&gate);
        if (!CHECK(pid > 0)) break;
        int st = 0;
        CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            signaled += WIFSIGNALED(st);
            if (!first_status) first_status = WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
        }
        CHECK_EQ_INT(ohm_pool_destroy(purged), 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    if (failed)
        fprintf(stderr, "%d of %d children failed (%d killed by a signal; first: %s %d)\n", failed, FORKS, signaled,
                first_status >= 1000 ? "signal" : "step", first_status % 1000);
    CHECK_EQ_INT(failed, 0);
    CHECK(atomic_load(&parent_reports[OHM_LEAK_GC]) > 0);
    CHECK(atomic_load(&parent_reports[OHM_LEAK_POOL_DESTROY]) > 0);
    CHECK(atomic_load(&parent_reports[OHM_LEAK_CHECKPOINT]) > 0);
    CHECK_EQ_INT(ohm_pool_destroy(shared), 0);
    ohm_leak_set_handler(NULL, NULL);
    ohm_leak_set_level(OHM_LEAK_OFF);
}

/* A thread's exit gives back its caches (one exit path for every subsystem), also for a thread that used only
 * buffers or only raw blocks. */
static void *buffers_only(void *arg)
{
    ohm_buf *b = ohm_buf_alloc(arg, 64);
    if (b) ohm_buf_release(b, 1);
    return NULL;
}

static void *blocks_only(void *arg)
{
    ohm_pool_free(arg, ohm_pool_alloc(arg, 64));
    return NULL;
}

static void test_thread_exit_detaches_the_threads_caches(void)
{
    ohm_pool *p = quiet_pool("fork-exit");
    if (!CHECK_NOT_NULL(p)) return;
    ohm_pool_stats st;
    void *(*fns[2])(void *) = {buffers_only, blocks_only};
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        CHECK_EQ_INT(pthread_create(&t, NULL, fns[i], p), 0);
        pthread_join(t, NULL);
        CHECK_EQ_INT(ohm_pool_stats_get(p, -1, &st), 0);
        CHECK_EQ_U64(st.threads, 0);
        CHECK_EQ_U64(st.active_blocks, 0);
    }
    CHECK_EQ_INT(ohm_pool_destroy(p), 0);
}

int main(void)
{
    alarm(FILE_SECONDS);
    /* One arena per pool: prefork holds every lock of every pool at once, and TSan's deadlock detector allows 64
     * locks held by one thread (the default of 2 arenas per CPU would pass it on a large machine). */
    setenv("OHM_ARENAS", "1", 1);
    ohm_set_log_handler(fixture_ignore_log, NULL);
    /* The leak detector is the first thing used, before any pool, as in a host that configures it at start. */
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    RUN(test_thread_exit_detaches_the_threads_caches);
    RUN(test_fork_while_threads_destroy_pools_report_leaks_and_allocate);
    return check_summary();
}
