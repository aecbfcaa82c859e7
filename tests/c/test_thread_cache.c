/* Thread caches (tcache.c): bounded bins, explicit flushing, incremental trimming of idle bins, the flush at
 * thread exit, and frees from other threads travelling back on the owning arena's remote-free chains. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

static ohm_pool *make_pool(unsigned arenas, unsigned slots, size_t cache_max)
{
    ohm_pool_config cfg = fixture_cache_config("tcache", slots, cache_max);
    cfg.arenas = arenas;
    return fixture_pool(&cfg);
}

/* Whether p is free in its slab's bitmap, i.e. it reached the arena (read under the arena lock). */
static bool free_in_slab(void *p)
{
    chunk_t *c = chunk_of(p);
    pthread_mutex_lock(&c->arena->lock);
    uint32_t e = pg_get(c, chunk_page_of(c, p));
    bool in = false;
    if (pg_kind(e) == PG_SLAB) {
        size_t h = pg_head(e), idx = sc_div(pg_cls(e), (uintptr_t)p - (uintptr_t)chunk_page_addr(c, h));
        in = (c->runs[h].bitmap[idx / 64] >> (idx % 64)) & 1;
    } else {
        in = pg_kind(e) == PG_FREE; /* the whole slab went back */
    }
    pthread_mutex_unlock(&c->arena->lock);
    return in;
}

static bool in_stack(const tstack_t *b, void *p)
{
    for (uint32_t i = 0; i < stack_n((tstack_t *)b); i++)
        if (b->slots[i] == p) return true;
    return false;
}

/* ---- bounds ---- */

static void test_bin_capacity_is_slots_bounded_by_128k_per_class(void)
{
    ohm_pool *pool = make_pool(1, 64, 256 * KIB);
    if (!pool) return;
    ohm_pool_free(pool, ohm_pool_alloc(pool, 16)); /* makes this thread's cache */
    tcache_t *tc = tcache_find(pool);
    if (!CHECK_NOT_NULL(tc)) return;
    for (unsigned c = 0; c < SC_COUNT; c++) {
        size_t size = sc_size(c);
        uint32_t want = 0;
        if (size <= 256 * KIB) {
            size_t by_bytes = (128 * KIB) / size;
            want = (uint32_t)(by_bytes < 1 ? 1 : by_bytes < 64 ? by_bytes : 64);
        }
        if (!CHECK_EQ_U64(tc->stacks[c]->cap, want)) fprintf(stderr, "  class %u (%zu bytes)\n", c, size);
    }
    ohm_pool_destroy(pool);
}

static void test_cache_never_holds_more_than_its_bin_capacity(void)
{
    ohm_pool *pool = make_pool(1, 16, 256 * KIB);
    if (!pool) return;
    enum { N = 200 };
    size_t sizes[] = {64, 1000, 40 * KIB};
    for (unsigned k = 0; k < 3; k++) {
        size_t size = sizes[k];
        unsigned cls = sc_index(size);
        void *p[N];
        for (unsigned i = 0; i < N; i++) p[i] = ohm_pool_alloc(pool, size);
        CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK); /* the bin will hold only blocks of p */
        tcache_t *tc = tcache_find(pool);
        if (!CHECK_NOT_NULL(tc)) return;
        tstack_t *b = tc->stacks[cls];
        uint32_t cap = b->cap;
        CHECK(cap >= 1 && cap <= 16);
        for (unsigned i = 0; i < N; i++) {
            CHECK_EQ_INT(ohm_pool_free(pool, p[i]), OHM_OK);
            if (!CHECK(stack_n(b) <= cap)) return;
        }
        uint32_t n = stack_n(b);
        CHECK(n >= 1);
        /* every freed block is either in the bin or back in its slab (or run) in the arena */
        unsigned in_arena = 0, cached = 0;
        for (unsigned i = 0; i < N; i++) {
            bool c = in_stack(b, p[i]);
            cached += c;
            if (!c) {
                ohm_block_info info;
                bool back =
                    sc_is_small(cls) ? free_in_slab(p[i]) : ohm_lookup(p[i], &info) == OHM_EINVAL; /* free pages */
                in_arena += back;
            }
        }
        CHECK_EQ_INT(cached, n);
        CHECK_EQ_INT(in_arena, N - n);
        CHECK_EQ_U64(fixture_stats(pool, -1).classes[cls].frees, N);
    }
    ohm_pool_destroy(pool);
}

/* ---- trimming ---- */

static void test_flush_thread_cache_empties_the_callers_cache(void)
{
    ohm_pool *pool = make_pool(1, 64, 256 * KIB);
    if (!pool) return;
    void *p[300];
    for (unsigned i = 0; i < 300; i++) p[i] = ohm_pool_alloc(pool, 16 + (i % 40) * 48);
    for (unsigned i = 0; i < 300; i++) ohm_pool_free(pool, p[i]);
    tcache_t *tc = tcache_find(pool);
    if (!CHECK_NOT_NULL(tc)) return;
    uint64_t cached = 0;
    for (unsigned c = 0; c < SC_COUNT; c++) cached += stack_n(tc->stacks[c]);
    CHECK(cached > 0);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    for (unsigned c = 0; c < SC_COUNT; c++) CHECK_EQ_U64(stack_n(tc->stacks[c]), 0);
    for (unsigned i = 0; i < 300; i++)
        if (!CHECK(free_in_slab(p[i]))) break;
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.allocs, 300);
    CHECK_EQ_U64(st.frees, 300);
    CHECK_EQ_U64(st.active_blocks, 0);
    fixture_check_trims_to_nothing(pool);
    ohm_pool_destroy(pool);
}

/* This thread's cache of pool after n blocks of 64 bytes went through it (p holds them, all freed): NULL, and a
 * failed check, if there is none. */
static tcache_t *cycled_cache(ohm_pool *pool, void **p, unsigned n)
{
    for (unsigned i = 0; i < n; i++) p[i] = ohm_pool_alloc(pool, 64);
    for (unsigned i = 0; i < n; i++) ohm_pool_free(pool, p[i]);
    tcache_t *tc = tcache_find(pool);
    CHECK_NOT_NULL(tc);
    return tc;
}

/* An idle bin drains over slow-path events (here: allocations of a class the cache does not hold). */
static void test_idle_bin_is_trimmed_over_slow_path_events(void)
{
    ohm_pool *pool = make_pool(1, 64, 4 * KIB);
    if (!pool) return;
    void *p[64];
    tcache_t *tc = cycled_cache(pool, p, 64);
    if (!tc) return;
    tstack_t *b = tc->stacks[sc_index(64)];
    uint32_t start = stack_n(b);
    CHECK(start >= 32);
    /* each bin is visited once per 64 * SC_COUNT events and halves when idle: bound the loop generously */
    unsigned events = 0, limit = 64 * SC_COUNT * 20;
    uint32_t prev = start;
    unsigned drops = 0;
    bool monotone = true;
    while (stack_n(b) > 0 && events < limit) {
        void *q = ohm_pool_alloc(pool, 64 * KIB); /* uncached: one slow-path event each for alloc and free */
        if (!CHECK_NOT_NULL(q)) break;
        ohm_pool_free(pool, q);
        events += 2;
        monotone &= stack_n(b) <= prev;
        drops += stack_n(b) < prev;
        prev = stack_n(b);
    }
    CHECK_EQ_U64(stack_n(b), 0);
    CHECK(monotone);
    CHECK(drops >= 4); /* not all at once: a visit halves the bin, 64 -> 32 -> ... -> 0 */
    for (unsigned i = 0; i < 64; i++)
        if (!CHECK(free_in_slab(p[i]))) break;
    ohm_pool_destroy(pool);
}

/* A bin that keeps refilling is busy: the trimmer visits it repeatedly and leaves its fill alone. */
static void test_busy_bin_keeps_its_blocks(void)
{
    ohm_pool *pool = make_pool(1, 64, 4 * KIB);
    if (!pool) return;
    unsigned cls = sc_index(64);
    void *p[100];
    tcache_t *tc = cycled_cache(pool, p, 1);
    if (!tc) return;
    unsigned start = tc->gc_cursor, rounds = 0, trimmed = 0;
    /* until the trimmer has come round to every bin four times */
    while (tc->gc_cursor - start < 4 * SC_COUNT && rounds < 20000) {
        /* the working set is larger than the bin's 64 slots: every round refills it */
        for (unsigned i = 0; i < 100; i++) p[i] = ohm_pool_alloc(pool, 64);
        for (unsigned i = 0; i < 100; i++) ohm_pool_free(pool, p[i]);
        /* slow-path events of another class: only the trimmer could change the bin meanwhile */
        uint32_t before = stack_n(tc->stacks[cls]);
        for (unsigned i = 0; i < 20; i++) ohm_pool_free(pool, ohm_pool_alloc(pool, 64 * KIB));
        trimmed += stack_n(tc->stacks[cls]) != before;
        rounds++;
    }
    CHECK(tc->gc_cursor - start >= 4 * SC_COUNT);
    CHECK_EQ_INT(trimmed, 0);
    CHECK(stack_n(tc->stacks[cls]) >= 32);
    ohm_pool_destroy(pool);
}

/* ---- thread exit ---- */

typedef struct exit_job {
    ohm_pool *pool;
    unsigned n;
    void **seen;
} exit_job;

static void *alloc_free_exit(void *arg)
{
    exit_job *j = arg;
    void **p = malloc(j->n * sizeof *p);
    if (!p) return NULL;
    for (unsigned i = 0; i < j->n; i++) {
        p[i] = ohm_pool_alloc(j->pool, 16 + (i % 64) * 64);
        j->seen[i] = p[i];
    }
    for (unsigned i = 0; i < j->n; i++) ohm_pool_free(j->pool, p[i]);
    free(p);
    return NULL;
}

static void test_thread_exit_flushes_its_cache(void)
{
    ohm_pool *pool = make_pool(2, 64, 256 * KIB);
    if (!pool) return;
    exit_job job = {pool, 2000, calloc(2000, sizeof(void *))};
    if (!CHECK_NOT_NULL(job.seen)) return;
    pthread_t t;
    if (!CHECK_EQ_INT(pthread_create(&t, NULL, alloc_free_exit, &job), 0)) return;
    pthread_join(t, NULL);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.threads, 0);
    CHECK_EQ_U64(st.allocs, job.n);
    CHECK_EQ_U64(st.frees, st.allocs);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_INT(fixture_walk_count(pool), 0);
    unsigned back = 0;
    for (unsigned i = 0; i < job.n; i++) back += job.seen[i] && free_in_slab(job.seen[i]);
    CHECK_EQ_INT(back, job.n); /* none left in a dead thread's cache */
    fixture_check_trims_to_nothing(pool);
    free(job.seen);
    ohm_pool_destroy(pool);
}

/* Many short-lived threads: every one leaves its counters and none leaves blocks. */
static void test_many_exiting_threads_leave_nothing_behind(void)
{
    ohm_pool *pool = make_pool(2, 32, 256 * KIB);
    if (!pool) return;
    enum { T = 16, N = 300 };
    void **seen = calloc((size_t)T * N, sizeof *seen);
    exit_job jobs[T];
    pthread_t t[T];
    for (unsigned i = 0; i < T; i++) {
        jobs[i] = (exit_job){pool, N, seen + (size_t)i * N};
        if (!CHECK_EQ_INT(pthread_create(&t[i], NULL, alloc_free_exit, &jobs[i]), 0)) return;
    }
    for (unsigned i = 0; i < T; i++) pthread_join(t[i], NULL);
    ohm_pool_stats st = fixture_stats(pool, -1);
    CHECK_EQ_U64(st.threads, 0);
    CHECK_EQ_U64(st.allocs, T * N);
    CHECK_EQ_U64(st.frees, T * N);
    CHECK_EQ_INT(fixture_walk_count(pool), 0);
    fixture_check_trims_to_nothing(pool);
    free(seen);
    ohm_pool_destroy(pool);
}

/* ---- cross-thread frees ---- */

enum { XN = 16 };

typedef struct xthread {
    ohm_pool *pool;
    pthread_barrier_t bar;
    void *blocks[XN];
    void *again[XN];
    unsigned arena_a, arena_b;
    bool remote_seen;
} xthread;

static void *owner_a(void *arg)
{
    xthread *x = arg;
    for (unsigned i = 0; i < XN; i++) x->blocks[i] = ohm_pool_alloc(x->pool, 64);
    ohm_pool_flush_thread_cache(x->pool); /* A's own bin is empty now */
    tcache_t *tc = tcache_find(x->pool);
    x->arena_a = tc ? tc->arena->index : 99;
    pthread_barrier_wait(&x->bar); /* 1: B may free them */
    pthread_barrier_wait(&x->bar); /* 2: B flushed them to A's arena */
    arena_t *a = &x->pool->arenas[x->arena_a % x->pool->narenas];
    x->remote_seen = atomic_load(&a->remote[sc_index(64)]) != NULL;
    for (unsigned i = 0; i < XN; i++) x->again[i] = ohm_pool_alloc(x->pool, 64);
    for (unsigned i = 0; i < XN; i++) ohm_pool_free(x->pool, x->again[i]);
    return NULL;
}

static void *freer_b(void *arg)
{
    xthread *x = arg;
    pthread_barrier_wait(&x->bar);                       /* 1 */
    ohm_pool_free(x->pool, ohm_pool_alloc(x->pool, 32)); /* binds B's cache after A's */
    tcache_t *tc = tcache_find(x->pool);
    x->arena_b = tc ? tc->arena->index : 99;
    for (unsigned i = 0; i < XN; i++) ohm_pool_free(x->pool, x->blocks[i]);
    ohm_pool_flush_thread_cache(x->pool); /* to A's arena, as a remote chain */
    pthread_barrier_wait(&x->bar);        /* 2 */
    return NULL;
}

static void test_blocks_freed_by_another_thread_return_to_the_owner(void)
{
    xthread x = {.pool = make_pool(2, XN, 256 * KIB)};
    if (!x.pool) return;
    pthread_barrier_init(&x.bar, NULL, 2);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, owner_a, &x);
    pthread_create(&tb, NULL, freer_b, &x);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(x.arena_a != x.arena_b); /* two threads, two arenas */
    CHECK(x.remote_seen);          /* B's frees waited on A's remote list, not in A's slabs */
    /* A got back exactly its own blocks */
    qsort(x.blocks, XN, sizeof(void *), fixture_cmp_ptr);
    qsort(x.again, XN, sizeof(void *), fixture_cmp_ptr);
    for (unsigned i = 0; i < XN; i++)
        if (!CHECK(x.blocks[i] == x.again[i])) break;
    ohm_pool_stats st = fixture_stats(x.pool, -1);
    unsigned cls = sc_index(64);
    CHECK_EQ_U64(st.classes[cls].allocs, 2 * XN);
    CHECK_EQ_U64(st.classes[cls].frees, 2 * XN);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_U64(st.allocs, 2 * XN + 1);
    CHECK_EQ_INT(fixture_walk_count(x.pool), 0);
    fixture_check_trims_to_nothing(x.pool);
    pthread_barrier_destroy(&x.bar);
    ohm_pool_destroy(x.pool);
}

/* A block freed by a thread of another arena goes back to its own arena and is never that thread's next block:
 * reusing it would put the thread's writes on a cache line the owner's blocks share (false sharing). */
typedef struct handed {
    ohm_pool *pool;
    void *block; /* allocated by the main thread */
    void *next;  /* the freeing thread's next block of the same size */
    int again;   /* the second free of block */
    unsigned arena_b, arena_next;
} handed;

static void *free_then_alloc(void *arg)
{
    handed *h = arg;
    CHECK_EQ_INT(ohm_pool_free(h->pool, h->block), OHM_OK);
    h->again = ohm_pool_free(h->pool, h->block);
    h->next = ohm_pool_alloc(h->pool, 64);
    tcache_t *tc = tcache_find(h->pool);
    h->arena_b = tc ? tc->arena->index : 99;
    h->arena_next = h->next ? chunk_of(h->next)->arena->index : 98;
    ohm_pool_free(h->pool, h->next);
    return NULL;
}

static void test_a_block_freed_by_another_arenas_thread_is_not_its_next_block(void)
{
    handed h = {.pool = make_pool(2, 64, 256 * KIB)};
    if (!h.pool) return;
    h.block = ohm_pool_alloc(h.pool, 64); /* the main thread's cache takes the first arena */
    if (!CHECK_NOT_NULL(h.block)) return;
    pthread_t t;
    pthread_create(&t, NULL, free_then_alloc, &h);
    pthread_join(t, NULL);
    CHECK_EQ_INT(h.again, OHM_EINVAL); /* the double free is caught while the block waits to go back */
    CHECK(h.next != NULL && h.next != h.block);
    CHECK_EQ_U64(h.arena_next, h.arena_b); /* the thread allocates from its own arena */
    CHECK(h.arena_b != chunk_of(h.block)->arena->index);
    ohm_pool_stats st = fixture_stats(h.pool, -1);
    CHECK_EQ_U64(st.classes[sc_index(64)].allocs, 2);
    CHECK_EQ_U64(st.classes[sc_index(64)].frees, 2);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_INT(fixture_walk_count(h.pool), 0);
    fixture_check_trims_to_nothing(h.pool);
    ohm_pool_destroy(h.pool);
}

/* A free of a block whose chunk was given back after the thread last freed into it is an error, not a crash:
 * the thread's memory of that chunk dies with it. */
static void test_a_free_into_a_released_chunk_is_an_error(void)
{
    ohm_pool *pool = make_pool(1, 64, 256 * KIB);
    if (!pool) return;
    void *p = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK); /* remembers p's chunk */
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);    /* the chunk goes back to the OS */
    CHECK(chunk_of(p) == NULL);
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_EINVAL);
    CHECK_EQ_INT(ohm_free(p), OHM_EINVAL);
    ohm_pool_destroy(pool);
}

/* A producer/consumer pair through a ring: every block allocated on one side is freed on the other, and the
 * counts come out exact. */
enum { RING = 64 };

typedef struct ring {
    ohm_pool *pool;
    void *_Atomic slot[RING];
    unsigned total;
    atomic_uint bad;
} ring;

static void *producer(void *arg)
{
    ring *r = arg;
    for (unsigned i = 0; i < r->total; i++) {
        size_t size = 16 + (i % 20) * 24;
        unsigned char *p = ohm_pool_alloc(r->pool, size);
        if (!p) {
            atomic_fetch_add(&r->bad, 1);
            p = NULL;
        } else {
            memset(p, (int)(i & 0xff), size);
        }
        void *_Atomic *s = &r->slot[i % RING];
        while (atomic_load_explicit(s, memory_order_acquire) != NULL) sched_yield();
        atomic_store_explicit(s, p ? (void *)p : (void *)1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    ring *r = arg;
    for (unsigned i = 0; i < r->total; i++) {
        void *_Atomic *s = &r->slot[i % RING];
        void *p;
        while ((p = atomic_load_explicit(s, memory_order_acquire)) == NULL) sched_yield();
        atomic_store_explicit(s, NULL, memory_order_release);
        if (p == (void *)1) continue;
        size_t size = 16 + (i % 20) * 24;
        const unsigned char *b = p;
        for (size_t k = 0; k < size; k++)
            if (b[k] != (i & 0xff)) {
                atomic_fetch_add(&r->bad, 1);
                break;
            }
        if (ohm_pool_free(r->pool, p) != OHM_OK) atomic_fetch_add(&r->bad, 1);
    }
    return NULL;
}

static void test_producer_consumer_frees_are_counted_exactly(void)
{
    ring r = {.pool = make_pool(2, 32, 256 * KIB)};
    if (!r.pool) return;
    const char *env = getenv("OHM_TEST_XTHREAD_BLOCKS");
    r.total = env ? (unsigned)strtoul(env, NULL, 10) : 20000;
    pthread_t p, c;
    pthread_create(&p, NULL, producer, &r);
    pthread_create(&c, NULL, consumer, &r);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    CHECK_EQ_INT(atomic_load(&r.bad), 0);
    ohm_pool_stats st = fixture_stats(r.pool, -1);
    CHECK_EQ_U64(st.allocs, r.total);
    CHECK_EQ_U64(st.frees, r.total);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_INT(fixture_walk_count(r.pool), 0);
    fixture_check_trims_to_nothing(r.pool);
    ohm_pool_destroy(r.pool);
}

/* ---- other threads' caches: trim requests and pool destruction ---- */

typedef struct idle_job {
    ohm_pool *pool, *other;
    pthread_barrier_t bar;
    uint32_t cached_before, cached_after;
    bool other_ok;
} idle_job;

/* Starts fn on a thread of its own with j, both at barrier 1 when this returns. */
static pthread_t start_job(idle_job *j, void *(*fn)(void *))
{
    pthread_barrier_init(&j->bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, fn, j);
    pthread_barrier_wait(&j->bar); /* 1 */
    return t;
}

static uint32_t cached_blocks(ohm_pool *pool)
{
    tcache_t *tc = tcache_find(pool);
    uint32_t n = 0;
    if (tc)
        for (unsigned c = 0; c < SC_COUNT; c++) n += stack_n(tc->stacks[c]);
    return n;
}

static void *cache_then_allocate_once(void *arg)
{
    idle_job *j = arg;
    void *p[10];
    for (unsigned i = 0; i < 10; i++) p[i] = ohm_pool_alloc(j->pool, 64);
    for (unsigned i = 0; i < 10; i++) ohm_pool_free(j->pool, p[i]);
    j->cached_before = cached_blocks(j->pool);
    pthread_barrier_wait(&j->bar);         /* 1: main trims */
    pthread_barrier_wait(&j->bar);         /* 2 */
    void *q = ohm_pool_alloc(j->pool, 64); /* the next allocation */
    j->cached_after = cached_blocks(j->pool);
    ohm_pool_free(j->pool, q);
    pthread_barrier_wait(&j->bar); /* 3: main checks */
    return NULL;
}

/* ohm_pool_trim "asks other threads to flush theirs at their next allocation". */
static void test_trim_makes_other_threads_flush_at_their_next_allocation(void)
{
    idle_job j = {.pool = make_pool(1, 64, 256 * KIB)};
    if (!j.pool) return;
    pthread_t t = start_job(&j, cache_then_allocate_once); /* at 1 */
    CHECK_EQ_INT(ohm_pool_trim(j.pool), OHM_OK);
    pthread_barrier_wait(&j.bar); /* 2 */
    pthread_barrier_wait(&j.bar); /* 3 */
    pthread_join(t, NULL);
    CHECK(j.cached_before >= 10);
    if (!CHECK_EQ_INT(j.cached_after, 0))
        fprintf(stderr, "  %u blocks still cached after the next allocation\n", j.cached_after);
    pthread_barrier_destroy(&j.bar);
    ohm_pool_destroy(j.pool);
}

static void *cache_then_outlive_the_pool(void *arg)
{
    idle_job *j = arg;
    void *p[50];
    for (unsigned i = 0; i < 50; i++) p[i] = ohm_pool_alloc(j->pool, 16 + i * 100);
    for (unsigned i = 0; i < 50; i++) ohm_pool_free(j->pool, p[i]);
    pthread_barrier_wait(&j->bar); /* 1: main destroys the pool */
    pthread_barrier_wait(&j->bar); /* 2 */
    /* this thread's dead cache must be dropped quietly; another pool works as usual */
    bool ok = true;
    for (unsigned i = 0; i < 100; i++) {
        void *q = ohm_pool_alloc(j->other, 16 + i * 50);
        ok &= q != NULL && ohm_pool_free(j->other, q) == OHM_OK;
    }
    void *d = ohm_alloc(100);
    ok &= d != NULL && ohm_free(d) == OHM_OK;
    j->other_ok = ok;
    return NULL; /* and exiting with a dead cache is fine too */
}

static void test_destroying_a_pool_drops_other_threads_caches_safely(void)
{
    idle_job j = {.pool = make_pool(2, 64, 256 * KIB)};
    j.other = make_pool(2, 64, 256 * KIB);
    if (!j.pool || !j.other) return;
    pthread_t t = start_job(&j, cache_then_outlive_the_pool); /* at 1 */
    CHECK_EQ_INT(ohm_pool_destroy(j.pool), OHM_OK);
    pthread_barrier_wait(&j.bar); /* 2 */
    pthread_join(t, NULL);
    CHECK(j.other_ok);
    ohm_pool_stats st = fixture_stats(j.other, -1);
    CHECK_EQ_U64(st.allocs, 100);
    CHECK_EQ_U64(st.active_blocks, 0);
    CHECK_EQ_U64(st.threads, 0);
    pthread_barrier_destroy(&j.bar);
    ohm_pool_destroy(j.other);
}

int main(void)
{
    ohm__init(); /* white-box checks read the class tables before any pool exists */
    RUN(test_bin_capacity_is_slots_bounded_by_128k_per_class);
    RUN(test_cache_never_holds_more_than_its_bin_capacity);
    RUN(test_flush_thread_cache_empties_the_callers_cache);
    RUN(test_idle_bin_is_trimmed_over_slow_path_events);
    RUN(test_busy_bin_keeps_its_blocks);
    RUN(test_thread_exit_flushes_its_cache);
    RUN(test_many_exiting_threads_leave_nothing_behind);
    RUN(test_blocks_freed_by_another_thread_return_to_the_owner);
    RUN(test_producer_consumer_frees_are_counted_exactly);
    RUN(test_a_block_freed_by_another_arenas_thread_is_not_its_next_block);
    RUN(test_a_free_into_a_released_chunk_is_an_error);
    RUN(test_trim_makes_other_threads_flush_at_their_next_allocation);
    RUN(test_destroying_a_pool_drops_other_threads_caches_safely);
    return check_summary();
}
