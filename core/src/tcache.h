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
 * other (with the counts in one array and the slots in another, pair-64 lost a third of its speed to that).
 * Count and capacity are 64-bit so that the count indexes the slots with no zero extension. The class's block
 * check (sc_slab_block's two numbers) is copied here: the free path loads this line anyway, so the check costs
 * no load of the class table's line and no address arithmetic for it. Every class has its own stack header,
 * cached or not (uncached ones have capacity 0), so the copy is always the class's own. */
typedef struct tstack {
    _Atomic uint64_t n; /* written by the owner only (relaxed: plain moves), read by stats */
    uint64_t cap;       /* 0: class not cached */
    /* The block check: (offset from the run's head page) * block_magic < block_limit. Slab classes: sc_table's
     * block_magic and block_key_limit (sc_slab_block). Run classes: 1 and 1, offset 0 only (which also refuses
     * the tail pages of a run). The free pages' stack: 0 and 0, nothing. */
    uint64_t block_magic;
    uint64_t block_limit;
    ohm_counter pushes; /* frees into the stack */
    void *slots[];      /* stack; slots[n-1] is the most recently freed block */
} tstack_t;

/* Whether offset (< 2^32) from the head page of its run is a block start of the stack's class. */
static inline bool stack_block_start(const tstack_t *b, size_t offset)
{
    return (uint64_t)offset * b->block_magic < b->block_limit;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OHM_TSAN_BUILD 1
#endif
#endif
/* Where the helpers below may say in assembly what the C11 atomics mean (TSan must see the atomics). */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !defined(OHM_TSAN_BUILD)
#define OHM_PLAIN_X86 1
#endif

/* x < *a and x == *a, *a read as a 64-bit relaxed atomic (on x86 also acquire: loads are not reordered with later
 * loads). The compiler does not fold an atomic load into a compare, so the compare takes the memory operand
 * itself: one instruction instead of a load and a compare. */
#ifdef OHM_PLAIN_X86
#define ATOMIC_U64_COMPARE(name, cc, op)                                           \
    static inline bool name(const _Atomic uint64_t *a, uint64_t x)                 \
    {                                                                              \
        bool r;                                                                    \
        __asm__("cmpq %2, %1" : "=@cc" cc(r) : "r"(x), "m"(*(const uint64_t *)a)); \
        return r;                                                                  \
    }
#else
#define ATOMIC_U64_COMPARE(name, cc, op)                           \
    static inline bool name(const _Atomic uint64_t *a, uint64_t x) \
    {                                                              \
        return x op atomic_load_explicit(a, memory_order_acquire); \
    }
#endif
ATOMIC_U64_COMPARE(atomic_u64_above, "b", <)
ATOMIC_U64_COMPARE(atomic_u64_equals, "e", ==)
#undef ATOMIC_U64_COMPARE

/* One more push counted. Only the owning thread writes the counter and readers take whole 8-byte loads, so a
 * plain add to memory is enough; the compiler turns a relaxed atomic load and store into three instructions
 * (it does not fuse atomics), hence the one-instruction add written out where that is safe to do. */
static inline void stack_count_push(tstack_t *b)
{
#ifdef OHM_PLAIN_X86
    __asm__("addq $1, %0" : "+m"(*(uint64_t *)&b->pushes));
#else
    ohm_counter_add(&b->pushes, 1);
#endif
}

/* Per-class counters, written by the owner only. The fast paths count only pushes: pops follow from the
 * stack's own arithmetic, pops = pushes + refilled - flushed - n, which saves a counter on every allocation. */
typedef struct tstats {
    ohm_counter refilled;      /* blocks a refill brought in */
    ohm_counter flushed;       /* blocks sent back to arenas */
    ohm_counter misses;        /* allocations that had to refill first */
    ohm_counter direct_allocs; /* allocations that bypass the stack (uncached, aligned runs) */
    ohm_counter direct_frees;  /* frees of the cache's own arena's blocks that bypass the stack */
    uint64_t gc_refilled;      /* `refilled` when the trimmer last looked (owner only) */
} tstats_t;

/* Blocks of one class freed by this thread into another arena than its own, on their way back as one chain. They
 * count as frees of their arena: read here by stats while they wait, added to the arena's other_frees when sent. */
typedef struct toutbox {
    void *head, *tail;        /* linked through block_link */
    _Atomic(arena_t *) arena; /* arena and n: written by the owner only (relaxed: plain moves), read by stats */
    _Atomic uint32_t n;
} toutbox_t;

typedef struct tcache {
    uint64_t pool_id;
    struct ohm_pool *pool;
    arena_t *arena;
    /* The allocation fast path serves sizes below alloc_limit_all: the largest cached size + 1, or 0 for zeroing
     * pools (which allocate through the slow path). alloc_limit is the same bound capped at SC_LUT_MAX + 1: one
     * compare then says both "cached" and "classed by the lookup table", the common case; larger sizes try
     * alloc_limit_all next. A trim from another thread sets both to 0 next to flush_requested, so this thread's
     * very next allocation flushes, at no cost to the fast path. */
    _Atomic size_t alloc_limit;
    _Atomic size_t alloc_limit_all;
    /* The stack of each size up to SC_LUT_MAX by its 16-byte granule, (size + 15) >> 4: sc_lut's class and the
     * stacks' entry in one load, with no table address to form. */
    tstack_t *stack_by_granule[(SC_LUT_MAX >> 4) + 1];
    size_t alloc_limit_normal;
    _Atomic int flush_requested;
    _Atomic int dead; /* the pool was destroyed */
    unsigned gc_cursor, gc_ticks;
    struct tcache *pnext, *pprev; /* pool's list, under the pool-list lock */
    struct tcache *tnext;         /* this thread's list */
    size_t meta_size;
    uint64_t free_guess; /* pool.c's free_push: the stack index (page entry byte) of the last block it freed */
    /* Stacks by class; uncached classes have the process's stacks of capacity 0. The free path indexes them by a
     * page entry's low byte (pg_stack_index: the class + 1, 0 for a free page), whose entry 0 is a stack whose
     * block check nothing passes. */
    union {
        tstack_t *stacks_by_entry[SC_COUNT + 1];
        struct {
            tstack_t *stack_of_free_pages;
            tstack_t *stacks[SC_COUNT];
        };
    };
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
    uintptr_t key_secret; /* ohm__key_secret, read from this line rather than from the global's own */
} __attribute__((aligned(32))) tcache_memo;
extern OHM_TLS tcache_memo tcache_chunk;

/* The arena chunk of another arena than the thread's (any pool's) that the calling thread last freed a block of,
 * with chunk_epoch as it was before the lookup that found it: frees of blocks other threads allocated skip the
 * address map's two dependent loads (two cache lines) while they stay in one chunk. Only the epoch makes it
 * valid; it names no cache, so it is never cleared (epoch 0 never matches). */
typedef struct tcache_other {
    struct chunk *c;
    uint64_t epoch;
} tcache_other;
extern OHM_TLS tcache_other tcache_remote;

static inline uint32_t stack_n(tstack_t *b) { return (uint32_t)atomic_load_explicit(&b->n, memory_order_relaxed); }
static inline void stack_set_n(tstack_t *b, uint64_t n) { atomic_store_explicit(&b->n, n, memory_order_relaxed); }
/* The top block of stack b with its free-block key cleared (the allocation fast path's pop), NULL when b is
 * empty. */
static inline void *stack_pop(tstack_t *b)
{
    uint64_t n = atomic_load_explicit(&b->n, memory_order_relaxed); /* 64-bit: no truncation on the way */
    if (ohm_unlikely(n == 0)) return NULL;
    stack_set_n(b, --n);
    void *p = b->slots[n];
    *(uintptr_t *)p = 0; /* clear the free-block key */
    return p;
}

/* Pushes block p onto stack b, whose count is n (< its capacity), with key (block_key) in its first word: the
 * free fast paths' push (pool.c's free, buf.c's inline release). */
static inline void stack_push(tstack_t *b, uint64_t n, void *p, uintptr_t key)
{
    ohm_assert(n < b->cap && "a thread-cache stack never holds more than its capacity");
    *(uintptr_t *)p = key;
    b->slots[n] = p;
    stack_set_n(b, n + 1);
    stack_count_push(b);
}

/* Totals of one class of one cache (exact when its thread is quiet): allocations and frees of blocks of its own
 * arena; blocks it freed into other arenas are theirs (see tcache_add_outbox_frees). */
void tcache_class_totals(tcache_t *tc, unsigned cls, uint64_t *allocs, uint64_t *hits, uint64_t *frees);
/* Adds to frees[cls] the blocks waiting in tc's outboxes for arena a (for any arena when a is NULL). */
void tcache_add_outbox_frees(tcache_t *tc, const arena_t *a, uint64_t frees[SC_COUNT]);

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
 * remote-free list in a chain with others, never onto this thread's stack, and counts as a free of a. */
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
