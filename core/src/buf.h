/* Buffers (internal view): the buffer header, its life cycle, and the constructor other subsystems use to turn
 * memory they own (mapped files, shared memory) into buffers.
 *
 * Headers come from a type-stable allocator (buf.c): 64-byte records in blocks that are never unmapped, so a
 * late call on a released handle reads a header that says so instead of faulting. A header's `gen` changes each
 * time it is freed, which is what ohm_buf_id() exposes.
 *
 * Count owner: every buffer points at the header whose count it uses: itself for roots and retained slices, the
 * parent's count owner for plain slices and duplicates. Memory owner: the root. */
#ifndef OHM_BUF_H
#define OHM_BUF_H

#include "internal.h"

#pragma GCC visibility push(hidden)

struct leak_track;

enum {
    BUF_ROOT = 1u << 0,     /* owns the memory */
    BUF_RETAINED = 1u << 1, /* a retained slice: own count, holds one ref on `parent` */
    BUF_DERIVED = 1u << 2,  /* a plain slice or duplicate: shares `owner`'s count */
    BUF_SEALED = 1u << 3,   /* read-only (mprotect) */
    BUF_PAGES = 1u << 4,    /* the memory is whole pages the buffer owns (seal allowed) */
    BUF_POISON = 1u << 5,   /* from a poisoning pool: named in its block when freed */
};

/* Releases a root's memory at its last release; ctx is what buf_root_new was given. */
typedef void buf_free_fn(void *ctx, void *data, size_t size);

/* state packs a generation (high 32 bits: odd while the header is live, even while free) and the count (low 32
 * bits, used by count owners). Retain and release CAS the whole word against the owner's generation that the
 * handle recorded, so a handle whose owner was freed and reused can never change the new buffer's count. */
static inline uint32_t st_gen(uint64_t st) { return (uint32_t)(st >> 32); }
static inline uint32_t st_count(uint64_t st) { return (uint32_t)st; }
static inline uint64_t st_make(uint32_t gen, uint32_t count) { return (uint64_t)gen << 32 | count; }

struct ohm_buf {
    _Atomic uint64_t state; /* generation | count (see above) */
    uint32_t index;         /* header number, fixed for the header's life (for ids) */
    uint32_t flags;
    unsigned char *data;
    size_t size;
    ohm_buf *owner;     /* count owner (self for roots and retained slices) */
    uint32_t owner_gen; /* the owner's generation when this handle was made */
    uint32_t parent_gen;
    uint32_t root_gen;        /* the root's generation when this handle was made */
    ohm_buf *parent;          /* retained slices: the count owner they hold a reference on */
    ohm_buf *root;            /* memory owner (self for roots) */
    struct leak_track *track; /* count owners (roots, retained slices): leak record, or NULL */
    /* roots only */
    buf_free_fn *free_fn;
    void *ctx;
    struct ohm_pool *pool;
    /* count owners: plain slices and duplicates made from them (stripe lock), and how many retained slices
     * hold a reference on them (references a GC reclaim must leave alone) */
    _Atomic(ohm_buf *) derived;
    ohm_buf *next_derived, *prev_derived;
    _Atomic uint32_t retained_children;
    uint8_t origin;             /* ohm_buf_origin */
    uint8_t linked;             /* derived: on its owner's list (stripe lock) */
    uint32_t host_gone_gen;     /* count owners: the generation whose handle the host reclaimed
                                    (stripe lock; a generation, so header reuse needs no reset)  */
    uint8_t cls;                /* pool roots with tc: the block's size class */
    struct ohm_pool *fast_pool; /* flags, owner, root, origin, free_fn, ctx and pool hold what buf.c's alloc fast
                                   path sets for this pool (it sets this; whoever sets them otherwise clears it) */
    struct tcache *tc;          /* pool roots of non-poisoning pools: the thread cache the block came through (buf.c's
                               fast paths), else NULL (every header's initialization sets it) */
};

/* A new live root over data/size with the given origin; free_fn(ctx, data, size) runs at the last release or
 * reclaim. pool is recorded for reports (may be NULL). On failure (no header) returns NULL without calling
 * free_fn. Leak tracking applies as for ohm_buf_alloc. */
ohm_buf *buf_root_new(void *data, size_t size, ohm_buf_origin origin, unsigned flags, buf_free_fn *free_fn, void *ctx,
                      struct ohm_pool *pool);
/* The root (memory owner) of any live buffer, and the context given to buf_root_new. */
ohm_buf *buf_root_of(const ohm_buf *b);
void *buf_root_ctx(const ohm_buf *root);
/* Offset of b's data inside its root's data. */
static inline size_t buf_offset_in_root(const ohm_buf *b, const ohm_buf *root)
{
    return (size_t)(b->data - root->data);
}
/* 0 if b is live, else OHM_ESTATE with a message naming the operation. */
int buf_check_live(const ohm_buf *b, const char *op);
/* Process start (lifecycle.c): reads OHM_DEBUG_GUARD. */
void buf_init(void);
/* Fork (lifecycle.c, in its lock order): prefork takes the derived-list stripes, then the header lock; postfork
 * (parent and child alike) releases them. */
void buf_prefork(void);
void buf_postfork(void);
/* Thread exit (lifecycle.c): gives this thread's cached headers back to the shared free list, and the leak
 * detector's cached records to its pool (leak_thread_exit). */
void buf_thread_exit(void);
/* The pool is being destroyed: reports its live buffers as leaks (each root or retained slice its users did not
 * release, as itself) and ends every header whose memory is in it. No other thread may use those buffers (as
 * for the pool itself). */
void buf_pool_destroyed(struct ohm_pool *pool);

#pragma GCC visibility pop

#endif
