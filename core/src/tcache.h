/* Thread caches: per thread and per pool, one bounded stack of free blocks per size class. The allocation fast
 * path pops, the free fast path pushes; neither takes a lock nor writes shared memory. An empty stack is refilled
 * from the arena (remote-free chains first, lock-free); a full stack flushes its older half to the blocks' arenas.
 * Statistics are per-stack counters that only the owning thread writes (see ohm_counter). */
#ifndef OHM_TCACHE_H
#define OHM_TCACHE_H

#include "arena.h"

#pragma GCC visibility push(hidden)

/* One stack: its count, capacity and push counter sit right in front of its own slots. Kept together, a stack's
 * hot loads and stores are never 4 KiB apart, so they cannot trip the CPU's store-to-load alias check on each
 * other (with the counts in one array and the slots in another, pair-64 lost a third of its speed to that). */
typedef struct tstack {
    _Atomic uint32_t n; /* written by the owner only (relaxed: plain moves), read by stats */
    uint32_t cap;       /* 0: class not cached */
    ohm_counter pushes; /* frees into the stack */
    void *slots[];      /* stack; slots[n-1] is the most recently freed block */
} tstack_t;

/* Per-class counters, written by the owner only. The fast paths count only pushes: pops follow from the
 * stack's own arithmetic, pops = pushes + refilled - flushed - n, which saves a counter on every allocation. */
typedef struct tstats {
    ohm_counter refilled;      /* blocks a refill brought in */
    ohm_counter flushed;       /* blocks sent back to arenas */
    ohm_counter misses;        /* allocations that had to refill first */
    ohm_counter direct_allocs; /* allocations that bypass the stack (uncached, aligned runs) */
    ohm_counter direct_frees;
    uint64_t gc_refilled; /* `refilled` when the trimmer last looked (owner only) */
} tstats_t;

/* Blocks of one class freed by this thread into another arena than its own, on their way back as one chain. */
typedef struct toutbox {
    void *head, *tail; /* linked through block_link */
    arena_t *arena;
    uint32_t n;
} toutbox_t;

typedef struct tcache {
    uint64_t pool_id;
    struct ohm_pool *pool;
    arena_t *arena;
    /* The allocation fast path serves sizes below alloc_limit: the largest cached size + 1, or 0 for zeroing
     * pools (which allocate through the slow path). A trim from another thread sets it to 0 next to
     * flush_requested, so this thread's very next allocation flushes, at no cost to the fast path. */
    _Atomic size_t alloc_limit;
    size_t alloc_limit_normal;
    _Atomic int flush_requested;
    _Atomic int dead; /* the pool was destroyed */
    unsigned gc_cursor, gc_ticks;
    struct tcache *pnext, *pprev; /* pool's list, under the pool-list lock */
    struct tcache *tnext;         /* this thread's list */
    size_t meta_size;
    tstack_t *stacks[SC_COUNT]; /* uncached classes share an empty stack of capacity 0 */
    tstats_t stats[SC_COUNT];
    toutbox_t outbox[SC_COUNT];
} tcache_t;

/* The calling thread's most recently used cache, and a small table by pool id behind it. Most programs use one
 * pool, whose cache the fast paths then find with one TLS compare. */
typedef struct tcache_slot {
    uint64_t pool_id;
    tcache_t *tc;
} tcache_slot;
extern OHM_TLS tcache_slot tcache_last; /* one TLS base for both fields */
#define TCACHE_SLOTS 8
extern OHM_TLS tcache_slot tcache_slots[TCACHE_SLOTS];

/* The chunk of its own arena the calling thread last freed into, the cache its blocks go to, and chunk_epoch as it
 * was before the address-map lookup that found the chunk (pool.c's free path; see chunk_epoch). Cleared with the
 * cache, so it never names a freed one. */
typedef struct tcache_memo {
    struct chunk *c;
    uint64_t epoch;
    tcache_t *tc;
} tcache_memo;
extern OHM_TLS tcache_memo tcache_chunk;

static inline uint32_t stack_n(tstack_t *b) { return atomic_load_explicit(&b->n, memory_order_relaxed); }
static inline void stack_set_n(tstack_t *b, uint32_t n) { atomic_store_explicit(&b->n, n, memory_order_relaxed); }
/* The top block of stack b with its free-block key cleared (the allocation fast path's pop), NULL when b is
 * empty. */
static inline void *stack_pop(tstack_t *b)
{
    uint32_t n = stack_n(b);
    if (ohm_unlikely(n == 0)) return NULL;
    void *p = b->slots[n - 1];
    stack_set_n(b, n - 1);
    *(uintptr_t *)p = 0;
    return p;
}

/* Totals of one class of one cache (exact when its thread is quiet). */
void tcache_class_totals(tcache_t *tc, unsigned cls, uint64_t *allocs, uint64_t *hits, uint64_t *frees);

/* The calling thread's cache for pool from the TLS table (making it the most recent), else created or found
 * through the slow path; NULL when none can be made (callers then work through an arena directly). */
tcache_t *tcache_get_or_create(struct ohm_pool *pool);
/* The calling thread's cache for pool if it has one; never creates one. */
tcache_t *tcache_find(struct ohm_pool *pool);
/* Refills stack cls, returning the number of blocks now in it (0 = out of memory, error set). */
unsigned tcache_refill(tcache_t *tc, unsigned cls);
/* Returns the count oldest blocks of stack cls to their arenas (at most the stack's fill). */
void tcache_flush_stack(tcache_t *tc, unsigned cls, uint32_t count);
/* Frees validated block p of class cls (cached), which belongs to arena a, not the cache's own: it goes back to a's
 * remote-free list in a chain with others, never onto this thread's stack. */
void tcache_free_remote(tcache_t *tc, arena_t *a, unsigned cls, void *p);
/* Flushes every stack and outbox. */
void tcache_flush(tcache_t *tc);
/* Periodic work done on slow paths: a pending flush request and incremental trimming. Returns true when it
 * honoured a flush request (the caller then should not refill right away). */
bool tcache_tick(tcache_t *tc);
/* Asks another thread's cache to flush at its next allocation (trim). Pool-list lock held. */
void tcache_request_flush(tcache_t *tc);
/* Marks every cache of a pool dead and frees the caller's own (pool destruction). Pool-list lock held. */
void tcache_kill_all(struct ohm_pool *pool);
/* Thread exit (lifecycle.c): flushes and frees every cache of the calling thread; it makes no new ones after. */
void tcache_thread_exit(void);

#pragma GCC visibility pop

#endif
