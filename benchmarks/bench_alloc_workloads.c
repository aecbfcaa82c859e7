/* The workloads of ohm-bench alloc (names are the contract with RESULTS.md; sizes and counts chosen here and listed in
 * benchmarks/RESULTS.md).
 *
 * Every workload draws its sizes and choices from a PRNG with a fixed seed, so every allocator gets exactly
 * the same requests in the same order. Every block is written (a tag in its first and last 8 bytes) and the
 * tag is checked before the block is freed: the write makes the allocator hand out real memory, the check
 * catches an allocator that gives one block out twice. The timed part covers allocation, the writes, the
 * checks and the frees; the workloads' own bookkeeping comes from alloc_book, outside the allocator.
 */
#define _GNU_SOURCE
#include "bench_alloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "bench_util.h"

#define CACHE_LINE 64

/* ---- pair-*: one thread allocates a block, writes it and frees it, over and over ------------------------- */

/* ops = pairs. The fastest path of every allocator (a thread-cache hit on both sides); the sink keeps the
 * read-back alive. */
static void run_pair(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    void *(*alloc)(size_t) = a->alloc;
    const size_t size = w->size;
    const uint64_t n = bench_scaled(w->count, scale);
    uint64_t sum = 0;
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        char *p = alloc(size);
        if (__builtin_expect(!p, 0)) alloc_oom(a, w->name, size);
        alloc_stamp(p, size, i);
        uint64_t back;
        memcpy(&back, p + size - sizeof back, sizeof back);
        sum += back;
        alloc_free(a, p);
    }
    r->ns = harness_now_ns() - t0;
    r->ops = n;
    r->live_peak = size;
    bench_consume(sum);
}

/* ---- batch-*: 10,000 blocks of 16 B - 32 KiB, freed in LIFO, FIFO or random order, repeated --------------- */

enum { BATCH_LIFO, BATCH_FIFO, BATCH_RANDOM };
#define BATCH_BLOCKS 10000
#define BATCH_MIN    16
#define BATCH_MAX    32768

typedef struct batch_book {
    void *ptr[BATCH_BLOCKS];
    uint32_t size[BATCH_BLOCKS];
    uint32_t order[BATCH_BLOCKS]; /* the k-th block to free */
} batch_book;

/* Draws the round's sizes and free order (untimed); returns the round's live bytes. */
static uint64_t batch_plan(batch_book *b, unsigned variant, bench_rng *rng)
{
    uint64_t live = 0;
    for (uint32_t j = 0; j < BATCH_BLOCKS; j++) {
        b->size[j] = (uint32_t)bench_rng_range(rng, BATCH_MIN, BATCH_MAX);
        live += b->size[j];
        b->order[j] = variant == BATCH_LIFO ? BATCH_BLOCKS - 1 - j : j;
    }
    if (variant == BATCH_RANDOM)
        for (uint32_t j = BATCH_BLOCKS - 1; j > 0; j--) { /* Fisher-Yates */
            uint32_t k = (uint32_t)bench_rng_below(rng, j + 1);
            uint32_t t = b->order[j];
            b->order[j] = b->order[k];
            b->order[k] = t;
        }
    return live;
}

/* One timed round: allocate and stamp all blocks, then check and free them in plan order. */
static void batch_round(batch_book *b, const alloc_api *a, const char *name, uint64_t salt)
{
    for (uint32_t j = 0; j < BATCH_BLOCKS; j++) {
        void *p = a->alloc(b->size[j]);
        if (__builtin_expect(!p, 0)) alloc_oom(a, name, b->size[j]);
        alloc_stamp(p, b->size[j], alloc_tag(salt, j));
        b->ptr[j] = p;
    }
    for (uint32_t k = 0; k < BATCH_BLOCKS; k++) {
        uint32_t j = b->order[k];
        if (__builtin_expect(!alloc_stamp_ok(b->ptr[j], b->size[j], alloc_tag(salt, j)), 0))
            alloc_corrupt(a, name, b->ptr[j], b->size[j]);
        alloc_free(a, b->ptr[j]);
    }
}

/* ops = pairs (rounds x 10,000). Only the alloc/free phases are timed, not the drawing of sizes. */
static void run_batch(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    batch_book *b = alloc_book(sizeof *b);
    bench_rng rng = bench_rng_seed(0xba7c4 + w->variant);
    const uint64_t rounds = bench_scaled(w->count, scale);
    bench_mark_start(r);
    for (uint64_t round = 0; round < rounds; round++) {
        uint64_t live = batch_plan(b, w->variant, &rng);
        if (live > r->live_peak) r->live_peak = live;
        uint64_t t0 = harness_now_ns();
        batch_round(b, a, w->name, round);
        r->ns += harness_now_ns() - t0;
    }
    r->ops = rounds * BATCH_BLOCKS;
}

/* ---- a start line and a barrier for the threaded workloads ------------------------------------------------ */

/* A phase-counting barrier that spins with sched_yield: no futex sleep inside the timed part, and on a
 * 2-core machine a yield lets the other thread run when both share a core. */
typedef struct spin_barrier {
    _Alignas(CACHE_LINE) atomic_uint arrived;
    atomic_uint phase;
    unsigned parties;
} spin_barrier;

static void spin_barrier_wait(spin_barrier *b)
{
    unsigned phase = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->parties) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->phase, 1, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&b->phase, memory_order_acquire) == phase) sched_yield();
}

typedef void *thread_fn(void *);

#define MAX_THREADS 8

/* Starts fn[i](arg[i]) on n threads that wait at the start line (go); marks the start, releases them, and returns
 * the wall time until all are done. The start line keeps thread creation out of the time and out of
 * rss_before. */
static uint64_t run_threads(unsigned n, thread_fn *const fn[], void *const arg[], atomic_int *go, bench_result *r)
{
    pthread_t t[MAX_THREADS];
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn[i], arg[i]) != 0) bench_die(4, "pthread_create failed");
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    atomic_store_explicit(go, 1, memory_order_release);
    for (unsigned i = 0; i < n; i++) pthread_join(t[i], NULL);
    return harness_now_ns() - t0;
}

/* The start of the state of a workload whose threads all run one function (its first member). */
typedef struct workers_common {
    _Alignas(CACHE_LINE) atomic_int go;
    const alloc_api *api;
    const char *name;
    uint64_t per_thread; /* each thread's share of the count at the run's scale (at least 1) */
} workers_common;

/* The workload's state (size bytes, workers_common first) from alloc_book, its common part filled in. */
static void *workers_book(size_t size, const alloc_workload *w, const alloc_api *a, double scale)
{
    workers_common *k = alloc_book(size);
    k->api = a;
    k->name = w->name;
    k->per_thread = bench_scaled(w->count, scale) / w->threads;
    if (k->per_thread == 0) k->per_thread = 1;
    return k;
}

/* What each of those threads gets: the shared state and its index. */
typedef struct worker_arg {
    void *state;
    unsigned id;
} worker_arg;

/* Runs fn on w->threads threads over state (see run_threads). */
static uint64_t run_workers(const alloc_workload *w, thread_fn *fn, void *state, bench_result *r)
{
    worker_arg arg[MAX_THREADS];
    thread_fn *fns[MAX_THREADS];
    void *argp[MAX_THREADS];
    for (unsigned i = 0; i < w->threads; i++) {
        arg[i] = (worker_arg){state, i};
        fns[i] = fn;
        argp[i] = &arg[i];
    }
    return run_threads(w->threads, fns, argp, &((workers_common *)state)->go, r);
}

static void wait_for_go(atomic_int *go)
{
    while (!atomic_load_explicit(go, memory_order_acquire)) sched_yield();
}

/* ---- xthread: one thread allocates, the other frees (Netty's event-loop hand-off) -------------------------- */

#define XTHREAD_RING   256 /* slots; a power of two */
#define XTHREAD_MIN    16
#define XTHREAD_MAX    4096
#define XTHREAD_SAMPLE 64 /* the producer samples live bytes every this many blocks */

/* A bounded single-producer/single-consumer ring. Each side owns one cache line of indices and caches the
 * other side's index, so the lines move only when the cached view runs out. */
typedef struct xthread_ring {
    _Alignas(CACHE_LINE) atomic_uint_fast64_t head; /* producer: blocks published */
    uint64_t tail_seen;                             /* producer's copy of tail */
    uint64_t live_peak;                             /* producer: sampled max of live bytes */
    _Alignas(CACHE_LINE) atomic_uint_fast64_t tail; /* consumer: blocks taken */
    atomic_uint_fast64_t freed_bytes;               /* consumer: bytes freed, on the line it writes anyway */
    uint64_t head_seen;                             /* consumer's copy of head */
    _Alignas(CACHE_LINE) void *slot[XTHREAD_RING];
    _Alignas(CACHE_LINE) atomic_int go;
    const alloc_api *api;
    const char *name;
    uint64_t blocks;
} xthread_ring;

#define XTHREAD_SEED 0x7872ull

static void *xthread_producer(void *arg)
{
    xthread_ring *q = arg;
    bench_rng rng = bench_rng_seed(XTHREAD_SEED);
    uint64_t produced = 0;
    wait_for_go(&q->go);
    for (uint64_t i = 0; i < q->blocks; i++) {
        size_t size = (size_t)bench_rng_range(&rng, XTHREAD_MIN, XTHREAD_MAX);
        void *p = q->api->alloc(size);
        if (__builtin_expect(!p, 0)) alloc_oom(q->api, q->name, size);
        alloc_stamp(p, size, alloc_tag(1, i));
        produced += size;
        if (i % XTHREAD_SAMPLE == 0) {
            uint64_t live = produced - atomic_load_explicit(&q->freed_bytes, memory_order_relaxed);
            if (live > q->live_peak) q->live_peak = live;
        }
        while (i - q->tail_seen >= XTHREAD_RING) { /* full */
            q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
            if (i - q->tail_seen >= XTHREAD_RING) sched_yield();
        }
        q->slot[i % XTHREAD_RING] = p;
        atomic_store_explicit(&q->head, i + 1, memory_order_release);
    }
    return NULL;
}

static void *xthread_consumer(void *arg)
{
    xthread_ring *q = arg;
    bench_rng rng = bench_rng_seed(XTHREAD_SEED); /* replays the producer's sizes */
    uint64_t freed = 0;
    wait_for_go(&q->go);
    for (uint64_t i = 0; i < q->blocks; i++) {
        size_t size = (size_t)bench_rng_range(&rng, XTHREAD_MIN, XTHREAD_MAX);
        while (q->head_seen <= i) { /* empty */
            q->head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
            if (q->head_seen <= i) sched_yield();
        }
        void *p = q->slot[i % XTHREAD_RING];
        if (__builtin_expect(!alloc_stamp_ok(p, size, alloc_tag(1, i)), 0)) alloc_corrupt(q->api, q->name, p, size);
        alloc_free(q->api, p);
        freed += size;
        atomic_store_explicit(&q->freed_bytes, freed, memory_order_relaxed);
        atomic_store_explicit(&q->tail, i + 1, memory_order_release);
    }
    return NULL;
}

/* ops = blocks handed over (each allocated by the producer and freed by the consumer). live_peak is sampled
 * every 64 blocks by the producer, so it may miss the true peak by a few blocks. */
static void run_xthread(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    xthread_ring *q = alloc_book(sizeof *q);
    q->api = a;
    q->name = w->name;
    q->blocks = bench_scaled(w->count, scale);
    thread_fn *const fn[2] = {xthread_producer, xthread_consumer};
    void *const arg[2] = {q, q};
    r->ns = run_threads(2, fn, arg, &q->go, r);
    r->ops = q->blocks;
    r->live_peak = q->live_peak;
}

/* ---- larson: a server simulation in which objects outlive their thread's turn ----------------------------- */

#define LARSON_SLOTS       1000  /* live blocks per set */
#define LARSON_ROUND_STEPS 50000 /* steps per thread between exchanges */
#define LARSON_MIN         16
#define LARSON_MAX         1024

/* A set of live blocks. Exactly one thread owns a set during a round; the sets change hands at the barrier
 * between rounds, so most blocks are freed by the thread that did not allocate them. */
typedef struct larson_set {
    _Alignas(CACHE_LINE) void *ptr[LARSON_SLOTS]; /* aligned: the two sets never share a cache line */
    uint32_t size[LARSON_SLOTS];
    uint64_t tag[LARSON_SLOTS];
    uint64_t bytes, peak; /* requested bytes live in this set, and their maximum */
    uint64_t stamps;      /* tags handed out so far; the salt keeps the two sets' tags apart */
} larson_set;

typedef struct larson_state {
    larson_set set[2];
    spin_barrier barrier;
    _Alignas(CACHE_LINE) atomic_int go;
    const alloc_api *api;
    const char *name;
    uint64_t rounds;
} larson_state;

typedef struct larson_thread {
    larson_state *s;
    unsigned id;
} larson_thread;

/* Puts a new block of a random size in slot i of set (whose slot is empty). */
static void larson_fill(larson_state *s, larson_set *set, unsigned salt, uint32_t i, bench_rng *rng)
{
    size_t size = (size_t)bench_rng_range(rng, LARSON_MIN, LARSON_MAX);
    void *p = s->api->alloc(size);
    if (__builtin_expect(!p, 0)) alloc_oom(s->api, s->name, size);
    uint64_t tag = alloc_tag(salt, set->stamps++);
    alloc_stamp(p, size, tag);
    set->ptr[i] = p;
    set->size[i] = (uint32_t)size;
    set->tag[i] = tag;
    set->bytes += size;
    if (set->bytes > set->peak) set->peak = set->bytes;
}

static void larson_drop(larson_state *s, larson_set *set, uint32_t i)
{
    if (__builtin_expect(!alloc_stamp_ok(set->ptr[i], set->size[i], set->tag[i]), 0))
        alloc_corrupt(s->api, s->name, set->ptr[i], set->size[i]);
    alloc_free(s->api, set->ptr[i]);
    set->bytes -= set->size[i];
}

static void *larson_worker(void *arg)
{
    larson_thread *t = arg;
    larson_state *s = t->s;
    bench_rng rng = bench_rng_seed(0x1a750 + t->id);
    wait_for_go(&s->go);
    for (uint32_t i = 0; i < LARSON_SLOTS; i++) larson_fill(s, &s->set[t->id], t->id, i, &rng);
    spin_barrier_wait(&s->barrier);
    for (uint64_t round = 0; round < s->rounds; round++) {
        unsigned which = (unsigned)((t->id + round) % 2); /* the sets swap owners every round */
        larson_set *set = &s->set[which];
        for (uint32_t k = 0; k < LARSON_ROUND_STEPS; k++) {
            uint32_t i = (uint32_t)bench_rng_below(&rng, LARSON_SLOTS);
            larson_drop(s, set, i);
            larson_fill(s, set, which, i, &rng);
        }
        spin_barrier_wait(&s->barrier);
    }
    larson_set *last = &s->set[(t->id + s->rounds) % 2]; /* the set the other thread used last */
    for (uint32_t i = 0; i < LARSON_SLOTS; i++) larson_drop(s, last, i);
    return NULL;
}

/* ops = steps (free a random slot's block, allocate a new one) of both threads; the initial fill and final
 * drain (2 x 1,000 blocks) are timed but not counted. live_peak adds the two sets' peaks: an upper bound. */
static void run_larson(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    larson_state *s = alloc_book(sizeof *s);
    s->api = a;
    s->name = w->name;
    s->barrier.parties = 2;
    s->rounds = bench_scaled(w->count, scale) / (2 * LARSON_ROUND_STEPS);
    if (s->rounds == 0) s->rounds = 1;
    larson_thread t[2] = {{s, 0}, {s, 1}};
    thread_fn *const fn[2] = {larson_worker, larson_worker};
    void *const arg[2] = {&t[0], &t[1]};
    r->ns = run_threads(2, fn, arg, &s->go, r);
    r->ops = s->rounds * 2 * LARSON_ROUND_STEPS;
    r->live_peak = s->set[0].peak + s->set[1].peak;
}

/* ---- mixed-8t: 8 threads on the machine's cores, mixed sizes, a third of the blocks freed by another thread -- */

#define MIXED_THREADS 8
#define MIXED_SLOTS   512 /* live blocks a thread holds */
#define MIXED_RING    64  /* hand-over slots to the next thread; a power of two */
#define MIXED_MIN_LOG 4   /* sizes from 16 B ... */
#define MIXED_MAX_LOG 13  /* ... to just under 8 KiB, log-uniform */

typedef struct mixed_block {
    void *ptr;
    uint32_t size;
    uint64_t tag;
} mixed_block;

/* A single-producer/single-consumer ring from thread i to thread i + 1 (mod 8). The producer never waits: with
 * the ring full it frees the block itself, so no thread spins on another that the scheduler has parked. */
typedef struct mixed_ring {
    _Alignas(CACHE_LINE) atomic_uint_fast64_t head; /* producer */
    _Alignas(CACHE_LINE) atomic_uint_fast64_t tail; /* consumer */
    _Alignas(CACHE_LINE) mixed_block slot[MIXED_RING];
} mixed_ring;

typedef struct mixed_thread {
    _Alignas(CACHE_LINE) mixed_block held[MIXED_SLOTS];
    mixed_ring to_next;
    atomic_int done; /* this thread will hand over no more blocks */
    uint64_t peak;   /* requested bytes this thread held at most (its slots only) */
} mixed_thread;

typedef struct mixed_state {
    workers_common k; /* per_thread: steps */
    mixed_thread t[MIXED_THREADS];
} mixed_state;

static void mixed_free(const mixed_state *s, const mixed_block *b)
{
    if (__builtin_expect(!alloc_stamp_ok(b->ptr, b->size, b->tag), 0))
        alloc_corrupt(s->k.api, s->k.name, b->ptr, b->size);
    alloc_free(s->k.api, b->ptr);
}

/* Frees every block the previous thread has handed over so far. */
static void mixed_drain(const mixed_state *s, mixed_ring *in)
{
    uint64_t head = atomic_load_explicit(&in->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&in->tail, memory_order_relaxed);
    for (; tail < head; tail++) mixed_free(s, &in->slot[tail % MIXED_RING]);
    atomic_store_explicit(&in->tail, tail, memory_order_release);
}

static void *mixed_worker(void *arg)
{
    mixed_state *s = ((worker_arg *)arg)->state;
    unsigned id = ((worker_arg *)arg)->id;
    mixed_thread *me = &s->t[id], *prev = &s->t[(id + MIXED_THREADS - 1) % MIXED_THREADS];
    mixed_ring *out = &me->to_next, *in = &prev->to_next;
    bench_rng rng = bench_rng_seed(0x313e0 + id);
    uint64_t held = 0, ring_seen = 0;
    wait_for_go(&s->k.go);
    for (uint64_t i = 0; i < s->k.per_thread; i++) {
        unsigned lg = (unsigned)bench_rng_range(&rng, MIXED_MIN_LOG, MIXED_MAX_LOG - 1);
        uint32_t size = (uint32_t)(((uint64_t)1 << lg) + bench_rng_below(&rng, (uint64_t)1 << lg));
        mixed_block b = {s->k.api->alloc(size), size, alloc_tag(id, i)};
        if (__builtin_expect(!b.ptr, 0)) alloc_oom(s->k.api, s->k.name, size);
        alloc_stamp(b.ptr, size, b.tag);
        uint64_t pick = bench_rng_below(&rng, 3 * MIXED_SLOTS);
        if (pick < MIXED_SLOTS) { /* a third go to the next thread */
            uint64_t head = atomic_load_explicit(&out->head, memory_order_relaxed);
            if (head - ring_seen >= MIXED_RING) ring_seen = atomic_load_explicit(&out->tail, memory_order_acquire);
            if (head - ring_seen < MIXED_RING) {
                out->slot[head % MIXED_RING] = b;
                atomic_store_explicit(&out->head, head + 1, memory_order_release);
            } else {
                mixed_free(s, &b);
            }
        } else { /* the rest replace one of this thread's blocks */
            mixed_block *slot = &me->held[pick % MIXED_SLOTS];
            if (slot->ptr) {
                held -= slot->size;
                mixed_free(s, slot);
            }
            *slot = b;
            held += size;
            if (held > me->peak) me->peak = held;
        }
        if (i % 16 == 0) mixed_drain(s, in);
    }
    atomic_store_explicit(&me->done, 1, memory_order_release);
    for (uint32_t k = 0; k < MIXED_SLOTS; k++)
        if (me->held[k].ptr) mixed_free(s, &me->held[k]);
    while (!atomic_load_explicit(&prev->done, memory_order_acquire)) {
        mixed_drain(s, in);
        sched_yield();
    }
    mixed_drain(s, in);
    return NULL;
}

/* ops = allocations of all threads; every block is freed inside the timed part. live_peak adds every thread's
 * peak and full rings of the largest blocks: an upper bound. */
static void run_mixed(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    mixed_state *s = workers_book(sizeof *s, w, a, scale);
    r->ns = run_workers(w, mixed_worker, s, r);
    r->ops = s->k.per_thread * MIXED_THREADS;
    for (unsigned i = 0; i < MIXED_THREADS; i++)
        r->live_peak += s->t[i].peak + (uint64_t)MIXED_RING * ((uint64_t)1 << MIXED_MAX_LOG);
}

/* ---- cache-scratch: small blocks handed between threads, then written hard (false sharing) --------------- */

#define SCRATCH_THREADS 2
#define SCRATCH_SIZE    8  /* Hoard's cache-scratch object size */
#define SCRATCH_WRITES  50 /* passes over the block per allocation */

typedef struct scratch_state {
    workers_common k;             /* per_thread: rounds */
    void *first[SCRATCH_THREADS]; /* allocated back to back by the main thread, one freed by each worker */
} scratch_state;

/* Frees the block the main thread gave it, then allocates, writes and frees blocks of the same size: an
 * allocator that hands this thread the freed block (or its neighbour), which shares a cache line with the
 * other thread's, makes both threads' writes bounce that line between the cores. */
static void *scratch_worker(void *arg)
{
    scratch_state *s = ((worker_arg *)arg)->state;
    unsigned id = ((worker_arg *)arg)->id;
    wait_for_go(&s->k.go);
    alloc_free(s->k.api, s->first[id]);
    for (uint64_t i = 0; i < s->k.per_thread; i++) {
        volatile char *p = s->k.api->alloc(SCRATCH_SIZE);
        if (__builtin_expect(!p, 0)) alloc_oom(s->k.api, s->k.name, SCRATCH_SIZE);
        for (unsigned w = 0; w < SCRATCH_WRITES; w++)
            for (unsigned k = 0; k < SCRATCH_SIZE; k++) p[k] = (char)(p[k] + 1);
        alloc_free(s->k.api, (void *)p);
    }
    return NULL;
}

/* ops = allocations of both threads (each with 50 passes of writes over its 8 bytes). */
static void run_scratch(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    scratch_state *s = workers_book(sizeof *s, w, a, scale);
    for (unsigned i = 0; i < SCRATCH_THREADS; i++)
        if (!(s->first[i] = a->alloc(SCRATCH_SIZE))) alloc_oom(a, w->name, SCRATCH_SIZE);
    r->ns = run_workers(w, scratch_worker, s, r);
    r->ops = s->k.per_thread * SCRATCH_THREADS;
    r->live_peak = SCRATCH_THREADS * SCRATCH_SIZE;
}

/* ---- frag: random sizes and lifetimes around a live-bytes target, then free all and trim ------------------- */

#define FRAG_TARGET     (512ull << 20) /* live bytes held at --scale 1 */
#define FRAG_MIN_TARGET (4ull << 20)   /* at small scales: room for several of the largest blocks */
#define FRAG_BYTES_PER_SLOT \
    32768 /* bookkeeping slots = target / this: 3x the blocks the target holds (the
                                    mean size is ~96 KiB), so the slot limit is never what stops an allocation */
#define FRAG_MIN_SLOTS 256
#define FRAG_MIN_LOG   4  /* sizes from 2^4 = 16 B ... */
#define FRAG_MAX_LOG   20 /* ... to just under 2^20 = 1 MiB */
#define FRAG_PAGE      4096

typedef struct frag_block {
    void *ptr;
    uint64_t size;
    uint64_t tag;
} frag_block;

typedef struct frag_book {
    uint64_t live;     /* requested bytes live */
    uint32_t n, slots; /* live blocks, capacity of block[] */
    frag_block block[];
} frag_book;

/* Log-uniform size: a power of two picked uniformly, then a uniform size within that octave. */
static size_t frag_size(bench_rng *rng)
{
    unsigned octave = (unsigned)bench_rng_range(rng, FRAG_MIN_LOG, FRAG_MAX_LOG - 1);
    size_t base = (size_t)1 << octave;
    return base + (size_t)bench_rng_below(rng, base);
}

/* Frees the block in slot j and moves the last one into its place. */
static void frag_drop(frag_book *b, const alloc_api *a, const char *name, uint32_t j)
{
    frag_block *blk = &b->block[j];
    if (__builtin_expect(!alloc_stamp_ok(blk->ptr, blk->size, blk->tag), 0))
        alloc_corrupt(a, name, blk->ptr, blk->size);
    alloc_free(a, blk->ptr);
    b->live -= blk->size;
    *blk = b->block[--b->n];
}

/* Unlike the other workloads, a frag block is written on every page: RSS is the point here, and a block of
 * which only the ends were touched would be resident only there. */
static void frag_touch(char *p, size_t size, uint64_t tag)
{
    for (size_t off = FRAG_PAGE; off + sizeof tag < size; off += FRAG_PAGE) memcpy(p + off, &tag, sizeof tag);
    alloc_stamp(p, size, tag);
}

/* ops = allocations. Each step draws a size, frees random live blocks (so lifetimes are random) until the
 * new one fits under the target, then allocates it and writes every page. The final free-all is not timed. */
static void run_frag(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r)
{
    bench_rng rng = bench_rng_seed(0xf7a9);
    uint64_t target = bench_scaled(FRAG_TARGET, scale);
    if (target < FRAG_MIN_TARGET) target = FRAG_MIN_TARGET;
    uint64_t slots = target / FRAG_BYTES_PER_SLOT < FRAG_MIN_SLOTS ? FRAG_MIN_SLOTS : target / FRAG_BYTES_PER_SLOT;
    if (slots > UINT32_MAX) slots = UINT32_MAX;
    frag_book *b = alloc_book(sizeof *b + slots * sizeof b->block[0]);
    b->slots = (uint32_t)slots;
    const uint64_t steps = bench_scaled(w->count, scale);
    bench_mark_start(r);
    uint64_t t0 = harness_now_ns();
    for (uint64_t i = 0; i < steps; i++) {
        size_t size = frag_size(&rng);
        while (b->n > 0 && (b->live + size > target || b->n == b->slots))
            frag_drop(b, a, w->name, (uint32_t)bench_rng_below(&rng, b->n));
        char *p = a->alloc(size);
        if (__builtin_expect(!p, 0)) alloc_oom(a, w->name, size);
        uint64_t tag = alloc_tag(2, i);
        frag_touch(p, size, tag);
        b->block[b->n++] = (frag_block){p, size, tag};
        b->live += size;
        if (b->live > r->live_peak) r->live_peak = b->live;
    }
    r->ns = harness_now_ns() - t0;
    r->ops = steps;
    while (b->n > 0) frag_drop(b, a, w->name, b->n - 1);
}

/* ---- the table -------------------------------------------------------------------------------------------- */

/* Counts at --scale 1 aim at 0.3-1 s per run for the common peers on a 2-core machine; a run that gives pages
 * back on every free (mimalloc on pair-256k) is slower. */
static const alloc_workload workloads[] = {
    {"pair-64", 1, 64, 0, 50000000, "pairs", "allocate 64 B, write it, free it", run_pair},
    {"pair-1k", 1, 1024, 0, 50000000, "pairs", "allocate 1 KiB, write it, free it", run_pair},
    {"pair-16k", 1, 16384, 0, 20000000, "pairs", "allocate 16 KiB, write it, free it", run_pair},
    {"pair-256k", 1, 262144, 0, 2000000, "pairs", "allocate 256 KiB, write it, free it", run_pair},
    {"batch-lifo", 1, 0, BATCH_LIFO, 100, "rounds",
     "allocate 10,000 blocks of 16 B-32 KiB (uniform), free them newest first; ops = pairs", run_batch},
    {"batch-fifo", 1, 0, BATCH_FIFO, 100, "rounds",
     "allocate 10,000 blocks of 16 B-32 KiB (uniform), free them oldest first; ops = pairs", run_batch},
    {"batch-random", 1, 0, BATCH_RANDOM, 100, "rounds",
     "allocate 10,000 blocks of 16 B-32 KiB (uniform), free them in random order; ops = pairs", run_batch},
    {"xthread", 2, 0, 0, 10000000, "blocks",
     "one thread allocates 16 B-4 KiB blocks, another frees them (256-slot ring)", run_xthread},
    {"larson", 2, 0, 0, 20000000, "steps",
     "2 threads replace random blocks (16 B-1 KiB) in 1,000-slot sets that swap owners every 50,000 steps", run_larson},
    {"mixed-8t", MIXED_THREADS, 0, 0, 20000000, "allocations",
     "8 threads allocate 16 B-8 KiB (log-uniform); a third of the blocks are freed by the next thread", run_mixed},
    {"cache-scratch", SCRATCH_THREADS, SCRATCH_SIZE, 0, 4000000, "allocations",
     "2 threads each free a block the main thread allocated, then allocate 8 B, write it 50 times, free it",
     run_scratch},
    {"frag", 1, 0, 0, 1000000, "allocations",
     "16 B-1 MiB (log-uniform), random lifetimes, 512 MiB live at scale 1; then free all and trim", run_frag},
};

const alloc_workload *alloc_workload_at(size_t i)
{
    return i < sizeof workloads / sizeof workloads[0] ? &workloads[i] : NULL;
}

const alloc_workload *alloc_workload_find(const char *name)
{
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(workloads[i].name, name) == 0) return &workloads[i];
    return NULL;
}
