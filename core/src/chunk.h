/* Chunks: the unit the pool maps from the OS (chunk_size bytes, aligned to chunk_size), with their metadata
 * kept outside the chunk so that all of it is usable; and the address map that finds a chunk from any address.
 *
 * Every page of a chunk has a 32-bit entry (kind, size class, head page of its run) so that free() validates a
 * pointer and finds its class with one load, and a run record (one cache line), meaningful at a run's first page
 * only. A free run's last page entry also names its head (the boundary tag for coalescing). Page entries are
 * written under the arena lock and read lock-free by free() and lookups. Huge blocks (above the chunk size) are
 * chunks of their own kind. */
#ifndef OHM_CHUNK_H
#define OHM_CHUNK_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"
#include "sizeclass.h"

#pragma GCC visibility push(hidden)

struct arena;

enum { PG_FREE = 0, PG_SLAB, PG_RUN, PG_RUN_TAIL }; /* page entry kinds */
enum { RUN_FREE = 0, RUN_SLAB, RUN_LARGE };         /* run record states */
enum { CHUNK_ARENA = 0, CHUNK_HUGE };

typedef struct run run_t;

/* A slab's free bitmap holds 256 blocks: a one-page slab of the 16-byte class has the most (4096 / 16). Slabs of
 * several pages exist only for classes from 896 B up (one page would waste more than 1/16 there) and hold at most
 * nine. The size-class table's geometry never passes SC_SLAB_MAX_OBJS. */
#define RUN_SLAB_WORDS 4
_Static_assert(SC_SLAB_MAX_OBJS <= RUN_SLAB_WORDS * 64, "every slab's blocks fit a run's bitmap");

/* One cache line a page, as every run operation reads or writes only its own record: the fields each state of a
 * run uses overlap those the others leave alone. A free run uses its heap links, purge links and decay time; a
 * slab its partial-list links and bitmap. An empty slab (every block free, on the arena's empty list) has a
 * bitmap known from its class, so its list links and decay time take the place of the bitmap's words from the
 * second on; the first word, in the child slot that no slab uses, keeps its bits, and is all of the bitmap of a
 * slab of up to 64 blocks (arena.c: slab_take writes the other words back when the slab is used again). */
struct run {
    uint16_t npages; /* a chunk has at most SC_MAX_SIZE >> OHM_PAGE_SHIFT pages */
    uint8_t state;
    uint8_t cls;   /* slabs and large runs */
    uint8_t timed; /* free runs: on the purge list; slabs: on the empty list */
    union {
        uint16_t nfree;  /* slabs: free blocks */
        uint16_t ndirty; /* free runs: pages that may be resident (set in the chunk's map) */
    };
    struct chunk *chunk; /* set whenever the record becomes a head */
    run_t *next, *prev;  /* free runs: siblings in their bin's heap (prev is the parent of a
                               first child); slabs: the arena's partial-slab list              */
    union {
        uint64_t bitmap[RUN_SLAB_WORDS]; /* slabs that are not empty: 1 = free block */
        struct {
            run_t *child;         /* free runs: first child in their bin's heap */
            run_t *tnext, *tprev; /* free runs: purge list; empty slabs: empty list; oldest first */
            uint64_t freed_ms;    /* when the run became free, or the slab empty (decay) */
        };
    };
};

_Static_assert(sizeof(run_t) == 64 && offsetof(run_t, bitmap) == 32, "run_t: one cache line");
_Static_assert((SC_MAX_SIZE >> OHM_PAGE_SHIFT) <= UINT16_MAX, "a chunk's page count fits a run's npages");

/* Whether block idx of slab s is free: every block of an empty slab is, whose bitmap holds its list links. */
static inline bool run_slab_block_free(const run_t *s, size_t idx)
{
    return s->timed || ((s->bitmap[idx / 64] >> (idx % 64)) & 1);
}

typedef struct chunk {
    uintptr_t base;
    size_t size; /* mapped bytes (chunk_size, or a huge block's whole mapping) */
    struct ohm_pool *pool;
    struct arena *arena; /* owner; NULL for huge blocks */
    uint8_t kind;
    uint8_t pinned; /* locked, hooked or hugetlb: never purged page by page */
    uint8_t hugetlb;
    uint8_t hooked; /* the map hook ran and succeeded: the unmap hook must run */
    uint32_t npages;
    uint32_t free_pages;       /* under the arena lock */
    size_t usable;             /* huge: bytes the caller may use */
    struct chunk *next, *prev; /* arena's chunk list, or the pool's huge list */
    run_t *runs;               /* run records, one per page (arena chunks) */
    uint64_t *dirty;           /* a bit per page: free and possibly resident (arena chunks) */
    size_t meta_size;
    _Atomic uint32_t pages[]; /* page entries (arena chunks): inline, so free() loads no pointer */
} chunk_t;

/* ---- page entries ---- */

/* An entry is cls + 1 | kind << 8 | head << 12. The low byte is the class + 1 in every entry of a block's pages
 * and 0 in a free page's: the free path indexes the thread cache's stacks with it directly
 * (tcache_t.stacks_by_entry, whose entry 0 never passes the block check), so it needs no test of the kind; and a
 * low byte zero-extends into any register. The head page sits at bit 12, so its offset in the chunk is one mask.
 * Never-written entries (zero) read as free pages. */
_Static_assert((SC_MAX_SIZE >> OHM_PAGE_SHIFT) < (1u << 20), "a chunk's page index fits the entry's 20 bits");
static inline uint32_t pg_make(unsigned kind, unsigned cls, unsigned head)
{
    return (kind == PG_FREE ? 0u : (uint32_t)cls + 1) | (uint32_t)kind << 8 | (uint32_t)head << OHM_PAGE_SHIFT;
}
static inline unsigned pg_kind(uint32_t e) { return (e >> 8) & 0xf; }
static inline unsigned pg_cls(uint32_t e) { return (e & 0xff) - 1u; } /* meaningless for free pages */
static inline unsigned pg_stack_index(uint32_t e) { return e & 0xff; }
static inline unsigned pg_head(uint32_t e) { return e >> OHM_PAGE_SHIFT; }
/* The offset of the head page in the chunk: the head sits at bit 12 so that this is one mask. */
static inline size_t pg_head_offset(uint32_t e) { return e & ~(uint32_t)(OHM_PAGE - 1); }
static inline uint32_t pg_get(const chunk_t *c, size_t page)
{
    return atomic_load_explicit(&c->pages[page], memory_order_relaxed);
}
static inline void pg_set(chunk_t *c, size_t page, uint32_t e)
{
    atomic_store_explicit(&c->pages[page], e, memory_order_relaxed);
}
/* Sets n entries from page to e, under the arena lock. Plain stores, two entries each (one relaxed atomic store
 * at a time was 1.2 ns an entry, 300 ns of a 1 MiB run's 360; now 145 ns in all): the pages being
 * written belong to a run nobody else can name yet, so no other thread reads these entries meanwhile, and
 * lookups of other pages take the arena lock. */
static inline void pg_fill(chunk_t *c, size_t page, size_t n, uint32_t e)
{
    uint32_t *restrict p = (uint32_t *)&c->pages[page];
    if (n && ((uintptr_t)p & 7)) *p++ = e, n--;
    typedef uint64_t __attribute__((may_alias)) pair_t;
    pair_t two = (uint64_t)e << 32 | e, *restrict q = (pair_t *)p; /* two entries a store */
    for (size_t i = 0; i < n / 2; i++) q[i] = two;
    if (n & 1) p[n - 1] = e;
}

/* Whether a PG_RUN_TAIL entry e of page belongs to a live large run: freed large runs leave their tails behind
 * (arena.c: run_free), so a tail counts only if its head is a live large run that reaches this page. */
static inline bool pg_tail_live(const chunk_t *c, size_t page, uint32_t e)
{
    size_t h = pg_head(e);
    uint32_t he = pg_get(c, h);
    return pg_kind(he) == PG_RUN && pg_cls(he) == pg_cls(e) && c->runs[h].state == RUN_LARGE &&
           page < h + c->runs[h].npages;
}
static inline size_t chunk_page_of(const chunk_t *c, const void *p)
{
    return ((uintptr_t)p - c->base) >> OHM_PAGE_SHIFT;
}
static inline void *chunk_page_addr(const chunk_t *c, size_t page)
{
    return (void *)(c->base + (page << OHM_PAGE_SHIFT));
}
static inline size_t chunk_run_index(const chunk_t *c, const run_t *r) { return (size_t)(r - c->runs); }

/* ---- the address map: address -> chunk, lock-free reads ----
 * A two-level radix tree over 1 MiB granules of the 47-bit user address space. Chunks and huge mappings are
 * whole granules, so no granule is ever shared. */

#define RADIX_GRANULE_SHIFT 20
#define RADIX_L2_BITS       14
#define RADIX_L1_BITS       (47 - RADIX_GRANULE_SHIFT - RADIX_L2_BITS)

/* Root slots without a leaf point at one shared, never-written leaf of NULLs, so a lookup needs no test. */
extern _Atomic(_Atomic(chunk_t *) *) radix_root[1u << RADIX_L1_BITS];

/* The chunk containing p, or NULL. Two dependent loads. */
static inline chunk_t *chunk_of(const void *p)
{
    uintptr_t key = (uintptr_t)p >> RADIX_GRANULE_SHIFT;
    if (ohm_unlikely(key >> (RADIX_L1_BITS + RADIX_L2_BITS))) return NULL;
    _Atomic(chunk_t *) *leaf = atomic_load_explicit(&radix_root[key >> RADIX_L2_BITS], memory_order_acquire);
    return atomic_load_explicit(&leaf[key & ((1u << RADIX_L2_BITS) - 1)], memory_order_acquire);
}

/* Bumped each time an arena chunk's record dies, after its address-map entries are gone. A thread that remembers
 * the last arena chunk it freed into (pool.c) trusts the memory only while the epoch it read before its lookup is
 * still current: one compare instead of the map's two dependent loads. Starts at 1 so a zeroed memo never
 * matches. */
struct chunk_epoch {
    _Alignas(64) _Atomic uint64_t n;
    char pad[56]; /* a cache line of its own: every free reads it, and a variable that other threads write
                     beside it in .data (the linker picks the neighbours) would make those reads miss */
};
extern struct chunk_epoch chunk_epoch;

/* Maps every granule of [base, base+size) to c (or to NULL to unregister). 0 or OHM_ENOMEM. */
int addr_map_set(uintptr_t base, size_t size, chunk_t *c);

/* Takes (lock != 0) or releases the address map's growth lock around fork. */
void chunk_fork_lock(bool lock);

/* What the chunk layer needs of the pool that owns the chunks: the options chunks are made with, the cap and
 * the bytes counted against it. The pool embeds one and passes it to every function below; nothing here knows
 * the pool itself. */
typedef struct chunk_space {
    struct ohm_pool *owner;     /* recorded in each chunk (chunk_t.pool), not dereferenced here */
    const ohm_pool_config *cfg; /* huge pages, mergeable, mlock, map hooks, max_mapped, name */
    size_t chunk_size;
    unsigned chunk_pages;
    _Atomic uint64_t mapped;        /* chunk and huge bytes mapped now, counted against cfg->max_mapped */
    _Atomic uint64_t failed_allocs; /* creations that failed, and cap refusals the pool could not cure */
} chunk_space;

/* Maps a new arena chunk of space (reserving it against max_mapped, applying huge pages, mlock, mergeable and
 * the map hook). Its run records are zero: the caller (the arena) makes the one free run. Called without
 * locks held. NULL with the error set; OHM_ENOMEM at the cap (then chunk_cap_refused() says so). */
chunk_t *chunk_create(chunk_space *space, struct arena *arena);
/* Maps a huge block of at least size bytes aligned to align. NULL with the error set. */
chunk_t *chunk_create_huge(chunk_space *space, size_t size, size_t align);
/* The cap: chunk creation refuses to pass a space's max_mapped and does nothing else about it (purging free
 * chunks is the pool's, a layer above). chunk_cap_refused says whether a creation on this thread was refused at
 * the cap since the last call, and forgets it. */
bool chunk_cap_refused(void);
/* Runs the unmap hook, unregisters and unmaps c and its metadata, and returns its bytes to the cap of space
 * (the one it was created in). Called without locks held. */
void chunk_destroy(chunk_space *space, chunk_t *c);

#pragma GCC visibility pop

#endif
