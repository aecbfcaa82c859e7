/* Thread caches (see tcache.h).
 *
 * Life cycle: a cache is made the first time a thread allocates from or frees to a pool, bound to the arena
 * with the fewest threads, and listed both in the thread's list and in the pool's. At thread exit (lifecycle.c's
 * thread-exit path) every cache of the thread is flushed and its counters are folded into its arena. Destroying a pool
 * marks its caches dead; each thread frees its dead caches the next time it looks for a cache, or at exit. */
#include "tcache.h"

#include "list.h"
#include "os.h"
#include "poison.h"
#include "pool.h"

#include <string.h>

OHM_TLS tcache_slot tcache_last;
OHM_TLS tcache_slot tcache_slots[TCACHE_SLOTS];
OHM_TLS tcache_memo tcache_chunk;
OHM_TLS tcache_other tcache_remote;
static OHM_TLS tcache_t *tl_caches;
static OHM_TLS int tl_exiting; /* the thread-exit step ran: make no new caches on this thread */

/* Slots per class: the configured count for small blocks, bounded to 128 KiB of cached memory per class so
 * that a thread's cache stays a few MiB at most. */
static uint32_t bin_capacity(size_t size, unsigned slots)
{
    size_t by_bytes = ((size_t)128 << 10) / size;
    if (by_bytes < 1) by_bytes = 1;
    return (uint32_t)(slots < by_bytes ? slots : by_bytes);
}

static void slot_clear(const tcache_t *tc)
{
    for (unsigned i = 0; i < TCACHE_SLOTS; i++)
        if (tcache_slots[i].tc == tc) tcache_slots[i] = (tcache_slot){0, NULL};
    if (tcache_last.tc == tc) tcache_last = (tcache_slot){0, NULL};
    if (tcache_chunk.tc == tc) tcache_chunk = (tcache_memo){NULL, 0, NULL, 0}; /* epoch 0 never matches */
}

static void slot_install(tcache_t *tc)
{
    tcache_slots[tc->pool_id % TCACHE_SLOTS] = (tcache_slot){tc->pool_id, tc};
    tcache_last = (tcache_slot){tc->pool_id, tc};
}

void tcache_class_totals(tcache_t *tc, unsigned cls, uint64_t *allocs, uint64_t *hits, uint64_t *frees)
{
    tstats_t *st = &tc->stats[cls];
    uint64_t pushes = ohm_counter_get(&tc->stacks[cls]->pushes);
    uint64_t pops = pushes + ohm_counter_get(&st->refilled) - ohm_counter_get(&st->flushed) - stack_n(tc->stacks[cls]);
    *allocs = pops + ohm_counter_get(&st->direct_allocs);
    *hits = pops - ohm_counter_get(&st->misses);
    *frees = pushes + ohm_counter_get(&st->direct_frees);
}

void tcache_add_outbox_frees(tcache_t *tc, const arena_t *a, uint64_t frees[SC_COUNT])
{
    for (unsigned c = 0; c < SC_COUNT; c++) {
        toutbox_t *o = &tc->outbox[c];
        if (!a || atomic_load_explicit(&o->arena, memory_order_relaxed) == a)
            frees[c] += atomic_load_explicit(&o->n, memory_order_relaxed);
    }
}

/* The counters of a cache whose thread exits go on with its arena: blocks it allocated are freed later by others,
 * and those frees count on the arena too. Outboxes sent already. Pool-list lock held. */
static void retire_counters(tcache_t *tc)
{
    arena_t *a = tc->arena;
    for (unsigned c = 0; c < SC_COUNT; c++) {
        uint64_t allocs, hits, frees;
        tcache_class_totals(tc, c, &allocs, &hits, &frees);
        a->retired_allocs[c] += allocs;
        a->retired_hits[c] += hits;
        a->retired_frees[c] += frees;
    }
}

/* Unlinks a live cache from its pool, folding in its counters (its outboxes sent). Pool-list lock held. */
static void detach_from_pool(tcache_t *tc)
{
    retire_counters(tc);
    LIST_UNLINK(tc->pool->tcaches, tc, pnext, pprev);
    atomic_fetch_sub(&tc->arena->nthreads, 1);
}

/* Frees go to the arenas without purging, so no unmap hook runs while the pool-list lock is held. */
void tcache_thread_exit(void)
{
    tl_exiting = 1;
    if (!tl_caches) return;
    pool_list_lock();
    for (tcache_t *tc = tl_caches, *next; tc; tc = next) {
        next = tc->tnext;
        if (!atomic_load(&tc->dead)) {
            tcache_flush(tc);
            detach_from_pool(tc);
        }
        slot_clear(tc);
        os_meta_free(tc, tc->meta_size);
    }
    tl_caches = NULL;
    pool_list_unlock();
}

/* Frees the thread's caches of destroyed pools. Pool-list lock held. */
static void prune_dead(void)
{
    for (tcache_t **pp = &tl_caches; *pp;) {
        tcache_t *tc = *pp;
        if (atomic_load(&tc->dead)) {
            *pp = tc->tnext;
            slot_clear(tc);
            os_meta_free(tc, tc->meta_size);
        } else {
            pp = &tc->tnext;
        }
    }
}

static arena_t *least_used_arena(struct ohm_pool *pool)
{
    arena_t *best = &pool->arenas[0];
    for (unsigned i = 1; i < pool->narenas; i++)
        if (atomic_load(&pool->arenas[i].nthreads) < atomic_load(&best->nthreads)) best = &pool->arenas[i];
    return best;
}

/* The stacks of uncached classes, one per class (capacity 0, so both fast paths fall through to the slow ones,
 * and the class's block check, which the free path reads from the stack). Made once under the pool-list lock,
 * before any cache that names them; never written after. */
static tstack_t *empty_stacks;

/* The stack the free path finds through a free page's entry: capacity 0 and a block check nothing passes. */
static tstack_t free_pages_stack;

static void stack_init(tstack_t *b, unsigned cls, uint32_t cap)
{
    b->cap = cap;
    b->block_magic = sc_is_small(cls) ? sc_table[cls].block_magic : 1;
    b->block_limit = sc_is_small(cls) ? sc_table[cls].block_key_limit : 1;
}

static tstack_t *empty_stack(unsigned cls) { return (tstack_t *)((char *)empty_stacks + cls * sizeof(tstack_t)); }

/* Both allocation limits (see tcache_t) from the limit of all cached sizes. */
static void limits_set(tcache_t *tc, size_t limit)
{
    atomic_store_explicit(&tc->alloc_limit_all, limit, memory_order_relaxed);
    atomic_store_explicit(&tc->alloc_limit, limit < SC_LUT_MAX + 1 ? limit : SC_LUT_MAX + 1, memory_order_relaxed);
}

static tcache_t *tcache_new(struct ohm_pool *pool)
{
    uint32_t caps[SC_COUNT] = {0};
    size_t size = sizeof(tcache_t);
    if (!empty_stacks) {
        tstack_t *e = os_meta_alloc(SC_COUNT * sizeof(tstack_t));
        if (!e) return NULL;
        empty_stacks = e;
        for (unsigned c = 0; c < SC_COUNT; c++) stack_init(empty_stack(c), c, 0);
    }
    /* A poisoning pool caches nothing (poison.h). */
    for (unsigned c = 0; !poison_on(&pool->cfg) && c < pool->nclasses && sc_size(c) <= pool->cache_max; c++) {
        caps[c] = bin_capacity(sc_size(c), pool->cfg.cache_slots);
        size += sizeof(tstack_t) + caps[c] * sizeof(void *);
    }
    tcache_t *tc = os_meta_alloc(size);
    if (!tc) return NULL;
    tc->meta_size = size;
    tc->pool = pool;
    tc->pool_id = pool->id;
    tc->alloc_limit_normal = pool->cfg.zero ? 0 : pool->cache_max + 1;
    limits_set(tc, tc->alloc_limit_normal);
    char *next = (char *)(tc + 1);
    tc->stack_of_free_pages = &free_pages_stack;
    for (unsigned c = 0; c < SC_COUNT; c++) {
        if (!caps[c]) {
            tc->stacks[c] = empty_stack(c);
            continue;
        }
        tc->stacks[c] = (tstack_t *)next;
        stack_init(tc->stacks[c], c, caps[c]);
        next += sizeof(tstack_t) + caps[c] * sizeof(void *);
    }
    for (unsigned g = 0; g <= SC_LUT_MAX >> 4; g++) tc->stack_by_granule[g] = tc->stacks[sc_lut[g]];
    tc->arena = least_used_arena(pool);
    atomic_fetch_add(&tc->arena->nthreads, 1);
    LIST_PUSH_FRONT(pool->tcaches, tc, pnext, pprev);
    tc->tnext = tl_caches;
    tl_caches = tc;
    return tc;
}

static tcache_t *tcache_get_slow(struct ohm_pool *pool)
{
    if (tl_exiting) return NULL;
    ohm__thread_init(); /* this thread's caches are flushed at its exit */
    pool_list_lock();
    prune_dead();
    tcache_t *tc = tl_caches;
    while (tc && tc->pool_id != pool->id) tc = tc->tnext;
    if (!tc) tc = tcache_new(pool);
    pool_list_unlock();
    if (tc) slot_install(tc);
    return tc;
}

tcache_t *tcache_get_or_create(struct ohm_pool *pool)
{
    tcache_slot *s = &tcache_slots[pool->id % TCACHE_SLOTS];
    if (s->pool_id == pool->id) {
        tcache_last = *s;
        return s->tc;
    }
    return tcache_get_slow(pool);
}

tcache_t *tcache_find(struct ohm_pool *pool)
{
    tcache_t *tc = tl_caches;
    while (tc && (tc->pool_id != pool->id || atomic_load(&tc->dead))) tc = tc->tnext;
    return tc;
}

void tcache_kill_all(struct ohm_pool *pool)
{
    for (tcache_t *tc = pool->tcaches; tc; tc = tc->pnext) atomic_store(&tc->dead, 1);
    pool->tcaches = NULL;
    prune_dead();
}

/* ---- refill and flush ---- */

unsigned tcache_refill(tcache_t *tc, unsigned cls)
{
    tstack_t *b = tc->stacks[cls];
    uint32_t n = stack_n(b);
    /* Blocks other threads freed to this arena come first: taking them is one exchange and no lock, which is
     * what keeps a producer/consumer pair off the arena lock. They already carry the free-block key. */
    void *chain = arena_remote_take(tc->arena, cls);
    while (chain && n < b->cap) {
        b->slots[n++] = chain;
        chain = *block_link(chain);
    }
    if (chain) {
        void *tail = chain;
        while (*block_link(tail)) tail = *block_link(tail);
        arena_remote_push(tc->arena, cls, chain, tail);
    }
    if (!n) {
        uint32_t want = b->cap / 2 ? b->cap / 2 : 1;
        n = arena_alloc_batch(tc->arena, cls, b->slots, want);
        /* Reverse so that the lowest address is popped first; mark each block free for double-free checks. */
        for (unsigned i = 0; i < n / 2; i++) {
            void *t = b->slots[i];
            b->slots[i] = b->slots[n - 1 - i];
            b->slots[n - 1 - i] = t;
        }
        for (unsigned i = 0; i < n; i++) *(uintptr_t *)b->slots[i] = block_key(b->slots[i]);
    }
    ohm_assert(n <= b->cap && n >= stack_n(b) && "a refill fills a stack up to its capacity at most");
    ohm_counter_add(&tc->stats[cls].refilled, n - stack_n(b));
    stack_set_n(b, n);
    return n;
}

void tcache_flush_stack(tcache_t *tc, unsigned cls, uint32_t count)
{
    tstack_t *b = tc->stacks[cls];
    uint32_t n = stack_n(b);
    if (count > n) count = n;
    /* Oldest first. Consecutive blocks of one arena go back together: to our own arena under its lock, to any
     * other arena as one lock-free chain. */
    for (uint32_t start = 0, i; start < count; start = i) {
        arena_t *a = chunk_of(b->slots[start])->arena;
        for (i = start + 1; i < count && chunk_of(b->slots[i])->arena == a; i++)
            *block_link(b->slots[i - 1]) = b->slots[i];
        if (a == tc->arena) arena_free_batch(a, b->slots + start, i - start, !tl_exiting);
        else arena_remote_push(a, cls, b->slots[start], b->slots[i - 1]);
    }
    memmove(b->slots, b->slots + count, (n - count) * sizeof(void *));
    ohm_counter_add(&tc->stats[cls].flushed, count);
    stack_set_n(b, n - count);
}

/* An outbox goes out after this many blocks or bytes: one exchange for many frees, and little memory held back. */
#define OUTBOX_MAX_BLOCKS 32
#define OUTBOX_MAX_BYTES  (64u << 10)

/* The chain's count moves from the outbox to its arena's frees with one add for the whole chain. */
static void outbox_send(toutbox_t *o, unsigned cls)
{
    uint32_t n = atomic_load_explicit(&o->n, memory_order_relaxed);
    if (!n) return;
    arena_t *a = atomic_load_explicit(&o->arena, memory_order_relaxed);
    arena_remote_push(a, cls, o->head, o->tail);
    atomic_fetch_add_explicit(&a->other_frees[cls], n, memory_order_relaxed);
    o->head = o->tail = NULL;
    atomic_store_explicit(&o->n, 0, memory_order_relaxed);
}

void tcache_free_remote(tcache_t *tc, arena_t *a, unsigned cls, void *p)
{
    toutbox_t *o = &tc->outbox[cls];
    if (atomic_load_explicit(&o->arena, memory_order_relaxed) != a) {
        outbox_send(o, cls);
        atomic_store_explicit(&o->arena, a, memory_order_relaxed);
    }
    uint32_t n = atomic_load_explicit(&o->n, memory_order_relaxed);
    *(uintptr_t *)p = block_key(p);
    *block_link(p) = o->head;
    if (!n) o->tail = p;
    o->head = p;
    atomic_store_explicit(&o->n, ++n, memory_order_relaxed);
    if (n >= OUTBOX_MAX_BLOCKS || n * sc_size(cls) >= OUTBOX_MAX_BYTES) outbox_send(o, cls);
}

void tcache_flush(tcache_t *tc)
{
    for (unsigned c = 0; c < SC_COUNT; c++) {
        if (stack_n(tc->stacks[c])) tcache_flush_stack(tc, c, stack_n(tc->stacks[c]));
        outbox_send(&tc->outbox[c], c);
    }
}

void tcache_request_flush(tcache_t *tc)
{
    /* The releases pair with the fast path's acquire loads of the limits: a thread that sees either drop also
     * sees the request. */
    atomic_store_explicit(&tc->flush_requested, 1, memory_order_relaxed);
    atomic_store_explicit(&tc->alloc_limit_all, 0, memory_order_release);
    atomic_store_explicit(&tc->alloc_limit, 0, memory_order_release);
}

/* Incremental trimming: every 64 slow-path events the trimmer visits one stack; a stack that needed no refill
 * since its last visit holds more than its thread uses, and gives half of it back. An idle class drains over
 * a few visits; a busy one, refilling, keeps its fill. */
bool tcache_tick(tcache_t *tc)
{
    if (ohm_unlikely(atomic_load_explicit(&tc->flush_requested, memory_order_relaxed))) {
        atomic_store_explicit(&tc->flush_requested, 0, memory_order_relaxed);
        limits_set(tc, tc->alloc_limit_normal);
        tcache_flush(tc);
        return true;
    }
    if (++tc->gc_ticks < 64) return false;
    tc->gc_ticks = 0;
    unsigned cls = tc->gc_cursor++ % SC_COUNT;
    tstats_t *st = &tc->stats[cls];
    uint64_t refilled = ohm_counter_get(&st->refilled);
    uint32_t n = stack_n(tc->stacks[cls]);
    if (refilled == st->gc_refilled && n) tcache_flush_stack(tc, cls, (n + 1) / 2);
    st->gc_refilled = refilled;
    return false;
}
