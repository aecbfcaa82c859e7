/* Randomized multi-thread stress: threads allocate random sizes, fill each block with a pattern derived from its
 * address and a per-block seed, keep a random live set, hand some blocks to another thread to free, and verify
 * every block's pattern before freeing it. Afterwards the pool must be empty and give all its memory back.
 * Also: fork() while other threads allocate, the child using the allocator.
 *
 * Size with OHM_TEST_STRESS_OPS (operations per thread, default 12000) and OHM_TEST_STRESS_SEED. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4
#define MAXLIVE  256

typedef struct item {
    unsigned char *p;
    size_t size;
    uint64_t seed;
} item;

/* A mutex-protected inbound queue per thread: blocks other threads hand over to be verified and freed here. */
typedef struct queue {
    pthread_mutex_t lock;
    item *items;
    size_t n, cap;
} queue;

typedef struct shared {
    ohm_pool *pool;
    unsigned ops;
    uint64_t seed;
    queue inbox[NTHREADS];
    pthread_barrier_t done_producing;
    atomic_ulong allocs, frees, handed, received, bad_pattern, bad_free, failed_alloc, bad_size;
} shared;

typedef struct worker {
    shared *sh;
    unsigned id;
} worker;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t pattern_word(const item *it, size_t i)
{
    return ((uintptr_t)it->p ^ it->seed) + i * 0x9e3779b97f4a7c15ull;
}

static void fill(const item *it)
{
    size_t words = it->size / 8;
    uint64_t *w = (uint64_t *)it->p;
    for (size_t i = 0; i < words; i++) w[i] = pattern_word(it, i);
    for (size_t i = words * 8; i < it->size; i++) it->p[i] = (unsigned char)(it->seed >> (i % 8 * 8));
}

static bool intact(const item *it)
{
    size_t words = it->size / 8;
    const uint64_t *w = (const uint64_t *)it->p;
    for (size_t i = 0; i < words; i++)
        if (w[i] != pattern_word(it, i)) return false;
    for (size_t i = words * 8; i < it->size; i++)
        if (it->p[i] != (unsigned char)(it->seed >> (i % 8 * 8))) return false;
    return true;
}

/* Mostly small, some runs up to 1 MiB (the chunk size), a few huge blocks above it. */
static size_t random_size(uint64_t *s)
{
    uint64_t r = rnd(s);
    unsigned bucket = (unsigned)(r % 1000);
    r >>= 10;
    if (bucket < 700) return 1 + r % 256;
    if (bucket < 900) return 257 + r % 3840;
    if (bucket < 980) return 4 * KIB + r % (60 * KIB);
    if (bucket < 997) return 64 * KIB + r % (960 * KIB);
    return 1 * MIB + 1 + r % (1 * MIB);
}

static void verify_and_free(shared *sh, const item *it)
{
    if (!intact(it)) {
        if (atomic_fetch_add(&sh->bad_pattern, 1) < 3)
            fprintf(stderr, "  pattern broken in block %p (%zu bytes)\n", (void *)it->p, it->size);
    }
    if (ohm_pool_free(sh->pool, it->p) != OHM_OK) {
        if (atomic_fetch_add(&sh->bad_free, 1) < 3) fprintf(stderr, "  free failed: %s\n", ohm_last_error());
    }
    atomic_fetch_add(&sh->frees, 1);
}

static void drain_inbox(shared *sh, unsigned id)
{
    queue *q = &sh->inbox[id];
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (q->n == 0) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        item it = q->items[--q->n];
        pthread_mutex_unlock(&q->lock);
        atomic_fetch_add(&sh->received, 1);
        verify_and_free(sh, &it);
    }
}

static void hand_over(shared *sh, unsigned to, const item *it)
{
    queue *q = &sh->inbox[to];
    pthread_mutex_lock(&q->lock);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        item *grown = realloc(q->items, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&q->lock);
            verify_and_free(sh, it);
            return;
        }
        q->items = grown;
        q->cap = cap;
    }
    q->items[q->n++] = *it;
    pthread_mutex_unlock(&q->lock);
    atomic_fetch_add(&sh->handed, 1);
}

static void *stress_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    uint64_t s = sh->seed * 0x100000001b3ull + w->id;
    item live[MAXLIVE];
    unsigned nlive = 0;
    for (unsigned op = 0; op < sh->ops; op++) {
        uint64_t r = rnd(&s);
        unsigned what = (unsigned)(r % 100);
        if (what < 55 && nlive < MAXLIVE) {
            item it = {NULL, random_size(&s), rnd(&s)};
            unsigned how = (unsigned)(r >> 8) % 16;
            if (how == 0) {
                it.p = ohm_pool_alloc_zeroed(sh->pool, it.size);
                if (it.p)
                    for (size_t i = 0; i < it.size; i++)
                        if (it.p[i]) {
                            atomic_fetch_add(&sh->bad_pattern, 1);
                            break;
                        }
            } else if (how == 1) {
                size_t align = (size_t)64 << ((r >> 16) % 12); /* 64 B .. 128 KiB */
                it.p = ohm_pool_alloc_aligned(sh->pool, it.size, align);
                if (it.p && (uintptr_t)it.p % align) atomic_fetch_add(&sh->bad_size, 1);
            } else {
                it.p = ohm_pool_alloc(sh->pool, it.size);
            }
            if (!it.p) {
                if (atomic_fetch_add(&sh->failed_alloc, 1) < 3)
                    fprintf(stderr, "  allocation of %zu bytes (mode %u) failed: %s\n", it.size, how, ohm_last_error());
                continue;
            }
            atomic_fetch_add(&sh->allocs, 1);
            if (ohm_usable_size(it.p) < it.size) atomic_fetch_add(&sh->bad_size, 1);
            fill(&it);
            live[nlive++] = it;
        } else if (nlive > 0) {
            unsigned i = (unsigned)((r >> 8) % nlive);
            item it = live[i];
            live[i] = live[--nlive];
            if ((r >> 40) % 4 == 0) hand_over(sh, (w->id + 1 + (unsigned)(r >> 50) % (NTHREADS - 1)) % NTHREADS, &it);
            else verify_and_free(sh, &it);
        }
        if (op % 64 == 0) drain_inbox(sh, w->id);
        if (op % 4096 == 4095) {
            if ((r >> 20) & 1) ohm_pool_flush_thread_cache(sh->pool);
            else ohm_pool_trim(sh->pool); /* while the others allocate */
        }
        if (op % 512 == 0 && nlive > 0) {
            ohm_block_info info;
            const item *it = &live[(r >> 12) % nlive];
            if (ohm_lookup(it->p + it->size / 2, &info) != OHM_OK || info.base != it->p || !info.live)
                atomic_fetch_add(&sh->bad_size, 1);
        }
    }
    for (unsigned i = 0; i < nlive; i++) verify_and_free(sh, &live[i]);
    pthread_barrier_wait(&sh->done_producing); /* nobody hands over anything after this */
    drain_inbox(sh, w->id);
    return NULL;
}

static void run_stress(uint64_t delay_ms, bool background, unsigned arenas)
{
    static shared sh;
    memset(&sh, 0, sizeof sh);
    const char *ops = getenv("OHM_TEST_STRESS_OPS"), *seed = getenv("OHM_TEST_STRESS_SEED");
    sh.ops = ops ? (unsigned)strtoul(ops, NULL, 10) : 12000;
    sh.seed = seed ? strtoull(seed, NULL, 10) : 20261124;
    ohm_pool_config cfg = fixture_config("stress");
    cfg.chunk_size = 1 * MIB;
    cfg.arenas = arenas;
    cfg.purge_delay_ms = delay_ms;
    cfg.background_purge = background;
    cfg.cache_slots = 32;
    sh.pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(sh.pool)) return;
    for (unsigned i = 0; i < NTHREADS; i++) pthread_mutex_init(&sh.inbox[i].lock, NULL);
    pthread_barrier_init(&sh.done_producing, NULL, NTHREADS);
    worker w[NTHREADS];
    pthread_t t[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        w[i] = (worker){&sh, i};
        if (!CHECK_EQ_INT(pthread_create(&t[i], NULL, stress_worker, &w[i]), 0)) return;
    }
    for (unsigned i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);

    CHECK_EQ_U64(atomic_load(&sh.bad_pattern), 0);
    CHECK_EQ_U64(atomic_load(&sh.bad_free), 0);
    CHECK_EQ_U64(atomic_load(&sh.bad_size), 0);
    CHECK_EQ_U64(atomic_load(&sh.failed_alloc), 0);
    CHECK_EQ_U64(atomic_load(&sh.handed), atomic_load(&sh.received));
    CHECK(atomic_load(&sh.handed) > 0);
    CHECK_EQ_U64(atomic_load(&sh.allocs), atomic_load(&sh.frees));
    ohm_pool_stats st = fixture_stats(sh.pool, -1);
    CHECK_EQ_U64(st.threads, 0);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_U64(st.active_bytes, 0);
    CHECK_EQ_U64(st.allocs, atomic_load(&sh.allocs));
    CHECK_EQ_U64(st.frees, atomic_load(&sh.frees));
    CHECK_EQ_U64(st.huge_blocks, 0);
    CHECK_EQ_U64(fixture_walk_count(sh.pool), 0);
    CHECK_EQ_INT(ohm_pool_trim(sh.pool), OHM_OK);
    st = fixture_stats(sh.pool, -1);
    CHECK_EQ_U64(st.mapped_bytes, 0);
    CHECK_EQ_U64(st.chunks, 0);
    CHECK_EQ_U64(st.dirty_bytes, 0);
    for (unsigned i = 0; i < NTHREADS; i++) {
        pthread_mutex_destroy(&sh.inbox[i].lock);
        free(sh.inbox[i].items);
    }
    pthread_barrier_destroy(&sh.done_producing);
    CHECK_EQ_INT(ohm_pool_destroy(sh.pool), OHM_OK);
}

static void test_random_multithread_blocks_keep_their_patterns(void)
{
    run_stress(UINT64_MAX, false, 2); /* purging only on the threads' trims */
}

static void test_random_multithread_with_decay_and_background_purge(void)
{
    run_stress(2, true, 0); /* default arenas; pages purged while the threads work */
}

/* ---- fork ---- */

typedef struct churn {
    ohm_pool *pool;
    atomic_bool stop;
    atomic_ulong rounds, bad;
} churn;

static void *churn_thread(void *arg)
{
    churn *c = arg;
    uint64_t s = (uint64_t)(uintptr_t)&s;
    void *held[32] = {0};
    while (!atomic_load(&c->stop)) {
        unsigned i = (unsigned)(rnd(&s) % 32);
        size_t size = random_size(&s);
        bool dflt = rnd(&s) & 1;
        if (held[i]) {
            if (ohm_free(held[i]) != OHM_OK) atomic_fetch_add(&c->bad, 1);
            held[i] = NULL;
        }
        held[i] = dflt ? ohm_alloc(size) : ohm_pool_alloc(c->pool, size);
        if (!held[i]) atomic_fetch_add(&c->bad, 1);
        else memset(held[i], 0x6b, size < 4096 ? size : 4096);
        atomic_fetch_add(&c->rounds, 1);
    }
    for (unsigned i = 0; i < 32; i++) ohm_free(held[i]);
    return NULL;
}

/* In the child: both pools serve, free and trim; a new pool can be made and destroyed. */
static int child_work(ohm_pool *pool)
{
    int bad = 0;
    size_t sizes[] = {8, 100, 3000, 20000, 300 * KIB, 1 * MIB, 3 * MIB};
    for (unsigned round = 0; round < 20; round++)
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *a = ohm_alloc(sizes[i]), *b = ohm_pool_alloc(pool, sizes[i]);
            if (!a || !b) return 1;
            memset(a, 1, sizes[i]);
            memset(b, 2, sizes[i]);
            bad |= a[sizes[i] - 1] != 1 || b[0] != 2;
            bad |= ohm_free(a) != OHM_OK;
            bad |= ohm_pool_free(pool, b) != OHM_OK;
        }
    bad |= ohm_pool_trim(pool) != OHM_OK;
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.background_purge = false; /* a forked child of a threaded process must not start threads */
    ohm_pool *fresh = ohm_pool_create(&cfg);
    if (!fresh) return 1;
    void *p = ohm_pool_alloc(fresh, 1000);
    bad |= p == NULL;
    bad |= ohm_pool_free(fresh, p) != OHM_OK;
    bad |= ohm_pool_destroy(fresh) != OHM_OK;
    return bad;
}

static void test_fork_while_threads_allocate_leaves_the_child_a_working_allocator(void)
{
    static churn c;
    memset(&c, 0, sizeof c);
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "fork";
    cfg.chunk_size = 1 * MIB;
    cfg.background_purge = false;
    cfg.purge_delay_ms = 0; /* purges (and unmaps) on the free paths: locks are taken often */
    c.pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(c.pool)) return;
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn_thread, &c);
    for (unsigned k = 0; k < 8; k++) {
        unsigned long seen = atomic_load(&c.rounds);
        while (atomic_load(&c.rounds) < seen + 200) sched_yield(); /* fork mid-churn */
        fflush(NULL);
        pid_t pid = fork();
        if (!CHECK(pid >= 0)) break;
        if (pid == 0) _exit(child_work(c.pool));
        int status = 0;
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "  fork %u: child status 0x%x\n", k, status);
    }
    atomic_store(&c.stop, true);
    for (unsigned i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK_EQ_U64(atomic_load(&c.bad), 0);
    CHECK_EQ_U64(fixture_stats(c.pool, -1).active_blocks, 0);
    CHECK_EQ_INT(ohm_pool_destroy(c.pool), OHM_OK);
}

int main(void)
{
    RUN(test_random_multithread_blocks_keep_their_patterns);
    RUN(test_random_multithread_with_decay_and_background_purge);
    RUN(test_fork_while_threads_allocate_leaves_the_child_a_working_allocator);
    return check_summary();
}
