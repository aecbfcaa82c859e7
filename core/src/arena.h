/* Arenas: where blocks come from when a thread cache is empty and go back to when it overflows.
 *
 * An arena owns chunks. Inside a chunk, page runs are split and coalesced (boundary tags in the page entries);
 * free runs sit in size bins, lowest address first, and may hold resident (dirty) and purged (clean) pages
 * together: each chunk's dirty map says which. Small classes are carved from slabs: runs with a free bitmap, on
 * a per-class partial list while they have free blocks. A slab that becomes empty stays a slab for reuse until
 * purging (decay, the dirty bound, or trim) turns it back into pages.
 *
 * Locking: one mutex per arena guards everything here except the remote-free lists, which are lock-free
 * stacks that other threads' caches push chains of blocks onto; the arena's own threads take them back in one
 * exchange. OS calls that may be slow or run user hooks (mapping and unmapping chunks) happen with the lock
 * released; madvise for decay purging runs under it. Lock order: pool list -> arena -> address map. */
#ifndef OHM_ARENA_H
#define OHM_ARENA_H

#include <pthread.h>

#include "chunk.h"

#pragma GCC visibility push(hidden)

#define ARENA_EXACT_BINS 64  /* free runs of 1..64 pages: one bin each */
#define ARENA_BINS       128 /* then 4 bins per doubling up to 64 MiB / 4 KiB pages */

typedef struct arena {
    pthread_mutex_t lock;
    chunk_space *space;         /* the pool's: chunks come from it */
    const ohm_pool_config *cfg; /* the pool's options (space->cfg, one load nearer) */
    unsigned index;
    _Atomic unsigned nthreads; /* thread caches bound here (for least-used binding) */
    chunk_t *chunks;
    run_t *partial[SC_NSMALL]; /* slabs with at least one free block */
    run_t *bins[ARENA_BINS];   /* free runs by size: heaps ordered by address */
    uint64_t nonempty[ARENA_BINS / 64];
    run_t *timed_head, *timed_tail; /* purge candidates, roughly oldest first */
    run_t *empty_head, *empty_tail; /* slabs with every block free, oldest first: kept for
                                           reuse until purged like dirty pages                 */
    uint64_t empty_pages;           /* pages of those slabs */
    uint64_t dirty_pages;           /* free pages not purged: the bits of the dirty maps */
    uint64_t active_pages;          /* pages in slabs and allocated runs */
    uint64_t nchunks;
    _Atomic(void *) remote[SC_COUNT]; /* chains of blocks freed by other threads' caches */
    /* cumulative, read by stats under the lock */
    uint64_t purged_pages, chunks_mapped, chunks_unmapped;
    /* Statistics of this arena's blocks that no live cache of the arena counts (introspect.c adds its caches'):
     * frees by threads of other arenas and calls made without a thread cache (any thread adds to these), and the
     * counters of the arena's caches whose threads exited (pool-list lock). */
    _Atomic uint64_t other_allocs[SC_COUNT], other_frees[SC_COUNT];
    uint64_t retired_allocs[SC_COUNT], retired_hits[SC_COUNT], retired_frees[SC_COUNT];
    /* debug builds: the chunk the operation in progress changed, walked when it ends, and a count of
     * operations, every ARENA_CHECK_EVERY-th of which walks the whole arena (arena.c) */
    ohm_debug_only(chunk_t *dbg_touched; uint64_t dbg_ops;)
} arena_t;

int arena_init(arena_t *a, chunk_space *space, unsigned index);
/* Unmaps every chunk (pool destruction; no other thread may use the arena). */
void arena_destroy(arena_t *a);

/* Fills out[0..want) with free blocks of class cls (all marked allocated); returns how many (0 = the OS or
 * the cap refused; the error is set). Takes and releases the lock. */
unsigned arena_alloc_batch(arena_t *a, unsigned cls, void **out, unsigned want);
/* A run of class cls (a run class) whose start is aligned to align bytes (> page). NULL with the error set. */
void *arena_alloc_aligned_run(arena_t *a, unsigned cls, size_t align);
/* Returns n validated blocks that all belong to this arena. Takes and releases the lock. A block already free
 * in its slab is reported (double free) and skipped. With may_purge, expired pages are purged afterwards
 * (which may unmap chunks and run unmap hooks); without, nothing but the frees happens. */
void arena_free_batch(arena_t *a, void *const *blocks, unsigned n, bool may_purge);
/* Frees one validated block of this arena directly (no thread cache). OHM_EINVAL if it is already free in its
 * slab (a double free). */
int arena_free_one(arena_t *a, void *p);
/* Pushes a chain of blocks of class cls (linked through their second word) onto the remote-free list. */
void arena_remote_push(arena_t *a, unsigned cls, void *head, void *tail);
/* Takes the whole remote-free chain of class cls (or NULL). */
static inline void *arena_remote_take(arena_t *a, unsigned cls)
{
    if (!atomic_load_explicit(&a->remote[cls], memory_order_relaxed)) return NULL;
    return atomic_exchange_explicit(&a->remote[cls], NULL, memory_order_acquire);
}
/* The link word of a block on a remote chain (its first word holds the free-block key). */
static inline void **block_link(void *p) { return (void **)p + 1; }

/* Purges free runs that have been free for at least the pool's delay (all of them when force), and unmaps
 * chunks that became entirely free (all such chunks when force). Drains remote lists first. */
void arena_purge(arena_t *a, bool force);

#ifdef OHM_DEBUG
/* Debug builds: walk every chunk, bin, list and count of the arena and abort, naming the invariant, at the first
 * one that does not hold. Lock held. O(pages + free runs). */
void arena_check(arena_t *a);
/* The same for one chunk of the arena: its runs, tags, dirty bits and slab bitmaps. Lock held. O(pages). */
void arena_check_chunk(arena_t *a, chunk_t *c);
#endif

#pragma GCC visibility pop

#endif
