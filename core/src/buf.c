/* Buffers: reference counts with Netty's rules, slices, checked access, the Cleaner protocol (see buf.h).
 *
 * Headers are type-stable: they come from blocks of the header allocator below, which are never unmapped, and
 * go back to a free list when a buffer ends. A header's generation changes at every free, so ids of dead
 * buffers never match again and CASes made through stale handles fail.
 *
 * Locks: the header allocator's global lock (only to refill or spill a thread's header cache, and to walk
 * blocks at pool destruction), and 16 striped locks for the lists of derived handles. Neither is held while
 * calling out (pool free, a release callback, the leak detector), except that a pool destruction that cannot
 * allocate its list of records closes them under the header lock (lifecycle.c's order allows it). */
#define _GNU_SOURCE
#include "buf.h"

#include "leak.h"
#include "os.h"
#include "poison.h"
#include "pool.h"

#include <stdlib.h>
#include <string.h>

/* ---- the header allocator ---- */

#define HDR_BLOCK_BYTES ((size_t)256 << 10)
#define HDR_CACHE       32

typedef struct hdr_block {
    struct hdr_block *next;
    size_t count;
    ohm_buf hdrs[];
} hdr_block;

static _Atomic size_t guard_min; /* debug guard pages for buffers this large; 0 = off */

static pthread_mutex_t hdr_lock = PTHREAD_MUTEX_INITIALIZER;
static hdr_block *hdr_blocks;   /* every block ever made (hdr_lock) */
static ohm_buf *hdr_free_list;  /* linked through next_derived (hdr_lock) */
static uint32_t hdr_next_index; /* hdr_lock */

/* This thread's free headers: one thread-local object, so the fast paths reach all of it from one TLS offset. */
typedef struct hdr_cache {
    unsigned n;
    unsigned cap;   /* HDR_CACHE once registered, else 0: hdr_free's one compare covers both */
    int registered; /* the thread-exit path will spill this thread's cache */
    ohm_buf *hdrs[HDR_CACHE];
} hdr_cache;
static OHM_TLS hdr_cache tl_hc;

static void hdr_spill(unsigned keep)
{
    pthread_mutex_lock(&hdr_lock);
    while (tl_hc.n > keep) {
        ohm_buf *h = tl_hc.hdrs[--tl_hc.n];
        h->next_derived = hdr_free_list;
        hdr_free_list = h;
    }
    pthread_mutex_unlock(&hdr_lock);
}

/* A header freed later on this thread (by another subsystem's exit step, or a host's thread-local destructor)
 * registers the thread again, and the thread-exit path runs once more for it. */
void buf_thread_exit(void)
{
    tl_hc.registered = 0;
    tl_hc.cap = 0;
    if (tl_hc.n) hdr_spill(0);
    leak_thread_exit(); /* its records go to the records pool's thread cache, which the next step flushes */
}

/* Makes sure this thread's cached headers go back at its exit: a thread may only ever free headers. */
static OHM_NOINLINE void hdr_register_thread(void)
{
    ohm__thread_init();
    tl_hc.registered = 1;
    tl_hc.cap = HDR_CACHE;
}

/* Moves up to HDR_CACHE/2 free headers into this thread's cache, carving a new block if none are free. */
static int hdr_refill(void)
{
    if (!tl_hc.registered) hdr_register_thread();
    pthread_mutex_lock(&hdr_lock);
    if (!hdr_free_list) {
        hdr_block *blk = os_meta_alloc(HDR_BLOCK_BYTES);
        if (!blk) {
            pthread_mutex_unlock(&hdr_lock);
            return OHM_ENOMEM;
        }
        blk->count = (HDR_BLOCK_BYTES - sizeof *blk) / sizeof(ohm_buf);
        for (size_t i = blk->count; i-- > 0;) {
            ohm_buf *h = &blk->hdrs[i];
            h->index = hdr_next_index + (uint32_t)i;
            atomic_init(&h->state, st_make(0, 0));
            h->next_derived = hdr_free_list;
            hdr_free_list = h;
        }
        hdr_next_index += (uint32_t)blk->count;
        blk->next = hdr_blocks;
        hdr_blocks = blk;
    }
    while (hdr_free_list && tl_hc.n < HDR_CACHE / 2) {
        tl_hc.hdrs[tl_hc.n++] = hdr_free_list;
        hdr_free_list = hdr_free_list->next_derived;
    }
    pthread_mutex_unlock(&hdr_lock);
    return 0;
}

/* Free headers keep derived == NULL, retained_children == 0, linked == 0 and track == NULL (whoever ends a
 * header leaves them so), so making one live writes only what differs between buffers. */
/* The header cache's top, with nh == tl_hc.n > 0. */
static inline ohm_buf *hdr_pop(unsigned nh)
{
    ohm_buf *h = tl_hc.hdrs[nh - 1];
    tl_hc.n = nh - 1;
    ohm_assert(!(st_gen(atomic_load_explicit(&h->state, memory_order_relaxed)) & 1) && "a cached header is free");
    ohm_assert(!atomic_load_explicit(&h->derived, memory_order_relaxed) && !h->linked && !h->track &&
               !atomic_load_explicit(&h->retained_children, memory_order_relaxed) &&
               "a free header has no derived handles, list link, leak record or retained children");
    return h;
}

static inline ohm_buf *hdr_take(void)
{
    if (ohm_unlikely(!tl_hc.n) && hdr_refill() != 0) return NULL;
    return hdr_pop(tl_hc.n);
}

/* The next generation of a free header: odd. */
static inline uint32_t hdr_next_gen(const ohm_buf *h)
{
    return st_gen(atomic_load_explicit(&((ohm_buf *)h)->state, memory_order_relaxed)) + 1;
}

/* A free header made live as its own count owner and root, with count. NULL (OHM_ENOMEM) only when no
 * metadata is left. */
/* root and pool are read by another thread's pool destruction (buf_pool_destroyed) while a header is being
 * reused: relaxed atomic stores there, plain loads everywhere else (the same instructions on x86-64). */
static inline void hdr_set_root(ohm_buf *h, ohm_buf *root) { __atomic_store_n(&h->root, root, __ATOMIC_RELAXED); }
static inline void hdr_set_pool(ohm_buf *h, struct ohm_pool *p) { __atomic_store_n(&h->pool, p, __ATOMIC_RELAXED); }

static ohm_buf *hdr_alloc(uint32_t *gen_out)
{
    ohm_buf *h = hdr_take();
    if (!h) return NULL;
    uint32_t gen = hdr_next_gen(h);
    h->fast_pool = NULL;
    h->tc = NULL;
    h->flags = 0;
    h->parent = NULL;
    h->owner = h;
    h->owner_gen = gen;
    hdr_set_root(h, h);
    h->root_gen = gen;
    *gen_out = gen;
    return h;
}

/* Makes a header from hdr_alloc live, once all its fields are set: a pool destruction scans every header of the
 * process (buf_pool_destroyed) and must never see a live header whose root is not set yet. */
static inline void hdr_publish(ohm_buf *h, uint32_t gen, uint32_t count)
{
    ohm_assert((gen & 1) && h->root && h->owner && "a header is published live (odd generation) with its root set");
    ohm_assert(count <= INT32_MAX && "a count never passes INT32_MAX (derived handles publish 0)");
    atomic_store_explicit(&h->state, st_make(gen, count), memory_order_release);
}

/* Ends a header: its generation becomes even (stale ids and handles stop matching) and it is reused later. */
static void hdr_kill(ohm_buf *h)
{
    uint32_t gen = st_gen(atomic_load_explicit(&h->state, memory_order_relaxed));
    ohm_assert((gen & 1) && "only a live header is ended");
    atomic_store_explicit(&h->state, st_make(gen | 1u, 0) + ((uint64_t)1 << 32), memory_order_release);
}

static OHM_NOINLINE void hdr_free_slow(ohm_buf *h)
{
    if (!tl_hc.registered) hdr_register_thread();
    if (tl_hc.n == HDR_CACHE) hdr_spill(HDR_CACHE / 2);
    tl_hc.hdrs[tl_hc.n++] = h;
}

static inline void hdr_free(ohm_buf *h)
{
    if (ohm_unlikely(tl_hc.n >= tl_hc.cap)) {
        hdr_free_slow(h);
        return;
    }
    tl_hc.hdrs[tl_hc.n++] = h;
}

/* ---- ids and liveness ---- */

static inline uint64_t make_id(uint32_t gen, uint32_t index) { return (uint64_t)gen << 32 | index; }

uint64_t ohm_buf_id(const ohm_buf *b)
{
    if (!b) return 0;
    uint32_t gen = st_gen(atomic_load_explicit(&((ohm_buf *)b)->state, memory_order_acquire));
    return (gen & 1) ? make_id(gen, b->index) : 0;
}

/* The owner's state word if the handle is live, its owner still counts and its memory is still there (a retained
 * slice whose root was over-released by someone else must not read freed memory): otherwise 0. */
static inline uint64_t owner_state(const ohm_buf *b)
{
    uint64_t st = atomic_load_explicit(&((ohm_buf *)b)->state, memory_order_acquire);
    /* A root (root == b holds for roots alone) is its own count and memory owner, and its generation was odd when
     * its handle was made: the generation compare alone says it is live (count 0: parked). */
    if (ohm_likely(b->root == b)) return st_gen(st) == b->owner_gen && st_count(st) ? st : 0;
    if (!(st_gen(st) & 1)) return 0;
    /* A count owner's own word is the one just read. */
    if (b->owner != b) st = atomic_load_explicit(&b->owner->state, memory_order_acquire);
    if (st_gen(st) != b->owner_gen || !st_count(st)) return 0;
    if (b->root != b->owner) {
        uint64_t rst = atomic_load_explicit(&b->root->state, memory_order_acquire);
        if (st_gen(rst) != b->root_gen || !st_count(rst)) return 0;
    }
    return st;
}

int buf_check_live(const ohm_buf *b, const char *op)
{
    if (ohm_unlikely(!b)) return ohm__error(OHM_EINVAL, "%s: buffer is NULL", op);
    if (ohm_unlikely(!owner_state(b))) return ohm__error(OHM_ESTATE, "%s: buffer has been released", op);
    return 0;
}

int ohm_buf_check(const ohm_buf *b, uint64_t id)
{
    if (!b) return ohm__error(OHM_EINVAL, "buffer is NULL");
    if (ohm_buf_id(b) != id) return ohm__error(OHM_ESTATE, "buffer has been released (its handle was reused)");
    return buf_check_live(b, "check");
}

/* ---- derived handle lists (striped locks by owner address) ---- */

#define BUF_LOCK_STRIPES 16 /* few enough that fork can hold them all (TSan allows 64 locks held at once) */
static pthread_mutex_t stripes[BUF_LOCK_STRIPES] = {[0 ...(BUF_LOCK_STRIPES - 1)] = PTHREAD_MUTEX_INITIALIZER};

/* Fork: the stripes, then the header lock (lifecycle.c's order: nothing is taken while a stripe is held).
 * Headers cached by other threads are lost to the child, like their thread caches. */
void buf_prefork(void)
{
    for (unsigned i = 0; i < BUF_LOCK_STRIPES; i++) pthread_mutex_lock(&stripes[i]);
    pthread_mutex_lock(&hdr_lock);
}

void buf_postfork(void)
{
    pthread_mutex_unlock(&hdr_lock);
    for (unsigned i = BUF_LOCK_STRIPES; i-- > 0;) pthread_mutex_unlock(&stripes[i]);
}

void buf_init(void) { atomic_store_explicit(&guard_min, ohm__env_size("OHM_DEBUG_GUARD", 0), memory_order_relaxed); }

static pthread_mutex_t *stripe_of(const ohm_buf *owner) { return &stripes[((uintptr_t)owner >> 7) % BUF_LOCK_STRIPES]; }

static void derived_link(ohm_buf *owner, ohm_buf *d)
{
    pthread_mutex_t *m = stripe_of(owner);
    pthread_mutex_lock(m);
    ohm_buf *head = atomic_load_explicit(&owner->derived, memory_order_relaxed);
    d->prev_derived = NULL;
    d->next_derived = head;
    if (head) head->prev_derived = d;
    atomic_store_explicit(&owner->derived, d, memory_order_relaxed);
    d->linked = 1;
    pthread_mutex_unlock(m);
}

/* Ends every derived handle of an owner whose count reached 0. */
static void derived_kill_all(ohm_buf *owner)
{
    if (!atomic_load_explicit(&owner->derived, memory_order_acquire)) return;
    pthread_mutex_t *m = stripe_of(owner);
    pthread_mutex_lock(m);
    ohm_buf *d = atomic_load_explicit(&owner->derived, memory_order_relaxed);
    atomic_store_explicit(&owner->derived, NULL, memory_order_relaxed);
    for (ohm_buf *x = d; x; x = x->next_derived) {
        x->linked = 0;
        hdr_kill(x); /* under the lock, so a concurrent reclaim of x sees it dead */
    }
    pthread_mutex_unlock(m);
    while (d) {
        ohm_buf *next = d->next_derived;
        hdr_free(d);
        d = next;
    }
}

/* ---- life cycle ---- */

static void pool_block_free(void *ctx, void *data, size_t size)
{
    (void)size;
    ohm_pool_free(ctx, data);
}

static int release_owner(ohm_buf *o, uint32_t gen, uint32_t n, const char *op);

/* What holds of an owner whose count reached 0 (OHM_DEBUG builds check it; owner_end and the inline release). */
static inline void owner_end_check(const ohm_buf *o)
{
    ohm_assert(o->owner == o && "a count that reaches 0 is its own owner");
    ohm_assert(!st_count(atomic_load_explicit(&o->state, memory_order_relaxed)) && "an owner ends at count 0");
    ohm_assert(!!(o->flags & BUF_ROOT) != !!(o->flags & BUF_RETAINED) && "an owner is a root or a retained slice");
    (void)o;
}

/* An owner's count reached 0: end its derived handles, give back what it holds, end its header. */
static void owner_end(ohm_buf *o)
{
    owner_end_check(o);
    derived_kill_all(o);
    if (o->track) {
        leak_track_close(o->track); /* released properly (a reclaim took the record before) */
        o->track = NULL;
    }
    if (o->flags & BUF_RETAINED) {
        ohm_buf *parent = o->parent;
        uint32_t parent_gen = o->parent_gen;
        atomic_store_explicit(&o->retained_children, 0, memory_order_relaxed); /* a free header's invariant */
        hdr_kill(o);
        hdr_free(o);
        /* Only if the parent is still the buffer we hold a reference on: an over-released parent may have
         * ended, and its header may be another buffer now. */
        if (st_gen(atomic_load_explicit(&parent->state, memory_order_acquire)) == parent_gen)
            atomic_fetch_sub_explicit(&parent->retained_children, 1, memory_order_relaxed);
        release_owner(parent, parent_gen, 1, "release");
        return;
    }
    atomic_store_explicit(&o->retained_children, 0, memory_order_relaxed); /* a free header's invariant */
    void *data = o->data;
    size_t size = o->size;
    buf_free_fn *fn = o->free_fn;
    void *ctx = o->ctx;
    if (fn == pool_block_free) poison_name_block(ctx, data, make_id(o->owner_gen, o->index));
    hdr_kill(o);
    hdr_free(o);
    if (fn) fn(ctx, data, size);
}

/* Takes n from the count of owner o (generation gen). 1 when it reached 0 (and o ended), 0 otherwise. */
static int release_owner(ohm_buf *o, uint32_t gen, uint32_t n, const char *op)
{
    uint64_t st = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        if (st_gen(st) != gen || !st_count(st)) return ohm__error(OHM_ESTATE, "%s: buffer has been released", op);
        if (n > st_count(st))
            return ohm__error(OHM_EINVAL, "%s: decrement %u exceeds the reference count %u", op, n, st_count(st));
        if (atomic_compare_exchange_weak_explicit(&o->state, &st, st - n, memory_order_acq_rel, memory_order_acquire))
            break;
    }
    if (st_count(st) != n) return 0;
    owner_end(o);
    return 1;
}

ohm_buf *buf_root_new(void *data, size_t size, ohm_buf_origin origin, unsigned flags, buf_free_fn *free_fn, void *ctx,
                      struct ohm_pool *pool)
{
    uint32_t gen;
    ohm_buf *b = hdr_alloc(&gen);
    if (!b) return NULL;
    b->flags = BUF_ROOT | flags;
    b->data = data;
    b->size = size;
    b->origin = (uint8_t)origin;
    b->free_fn = free_fn;
    b->ctx = ctx;
    hdr_set_pool(b, pool);
    b->track = leak_track_maybe(pool ? atomic_load_explicit(&pool->leak_settings, memory_order_relaxed) : 0,
                                make_id(b->owner_gen, b->index), size, origin, pool ? pool->name : NULL);
    hdr_publish(b, gen, 1);
    return b;
}

ohm_buf *buf_root_of(const ohm_buf *b) { return b->root; }
void *buf_root_ctx(const ohm_buf *root) { return root->ctx; }

/* ---- guard pages (debug option) ---- */

void ohm_buf_set_guard(size_t min) { atomic_store_explicit(&guard_min, min, memory_order_relaxed); }
size_t ohm_buf_get_guard(void) { return atomic_load_explicit(&guard_min, memory_order_relaxed); }

/* The mapping of a guarded buffer: its pages up to the end of data, then the guard page. */
static void guard_span(const void *data, size_t size, uintptr_t *base, size_t *len)
{
    *base = (uintptr_t)data & ~(uintptr_t)(OHM_PAGE - 1);
    *len = ohm_align_up((uintptr_t)data + size - *base, OHM_PAGE) + OHM_PAGE;
}

static void guard_free(void *ctx, void *data, size_t size)
{
    (void)ctx;
    uintptr_t base;
    size_t len;
    guard_span(data, size, &base, &len);
    if (os_unmap((void *)base, len) != 0) ohm__log(OHM_LOG_ERROR, "%s", ohm_last_error());
}

/* A buffer whose last byte sits right before an inaccessible page: data starts 16-aligned, so at most 15
 * bytes of slack separate its end from the guard. */
static OHM_NOINLINE ohm_buf *guard_alloc(ohm_pool *pool, size_t size, int zero)
{
    size_t pages = ohm_align_up(size ? size : 1, OHM_PAGE);
    if (pages < size || pages + OHM_PAGE < pages) {
        ohm__error(OHM_EINVAL, "size %zu is too large", size);
        return NULL;
    }
    void *base;
    if (os_map(pages + OHM_PAGE, OHM_PAGE, 0, &base, NULL) != 0) return NULL;
    if (os_protect((char *)base + pages, OHM_PAGE, OS_PROT_NONE) != 0) {
        os_unmap(base, pages + OHM_PAGE);
        return NULL;
    }
    unsigned char *data = (unsigned char *)(((uintptr_t)base + pages - size) & ~(uintptr_t)15);
    (void)zero; /* fresh mappings are zero */
    ohm_buf *b = buf_root_new(data, size, OHM_ORIGIN_POOL, BUF_PAGES, guard_free, NULL, NULL);
    if (!b) {
        os_unmap(base, pages + OHM_PAGE);
        ohm__error(OHM_ENOMEM, "no memory for a buffer header");
        return NULL;
    }
    (void)pool;
    return b;
}

/* The fields of a pool root that depend on nothing but its pool (and BUF_POISON, from the pool's settings). */
static inline void pool_root_fields(ohm_buf *b, ohm_pool *pool, uint32_t flags)
{
    b->flags = flags;
    b->owner = b;
    hdr_set_root(b, b);
    b->origin = OHM_ORIGIN_POOL;
    b->free_fn = pool_block_free;
    b->ctx = pool;
    hdr_set_pool(b, pool);
}

/* The fields of a pool root that change with each block. */
static inline void pool_root_block(ohm_buf *b, void *data, size_t size, uint32_t gen, tcache_t *tc, unsigned cls)
{
    b->data = data;
    b->size = size;
    b->owner_gen = gen;
    b->root_gen = gen;
    b->tc = tc;
    b->cls = (uint8_t)cls;
}

/* Fills a header from hdr_take as a root over a block of pool, not yet published; returns its generation. */
static inline uint32_t pool_root_init(ohm_buf *b, ohm_pool *pool, void *data, size_t size)
{
    uint32_t gen = hdr_next_gen(b);
    /* BUF_POISON keeps it off the inline release */
    pool_root_fields(b, pool, BUF_ROOT | (poison_on(&pool->cfg) ? BUF_POISON : 0));
    b->fast_pool = NULL;
    pool_root_block(b, data, size, gen, NULL, 0);
    return gen;
}

/* Every allocation the fast path below does not serve. user_ret is the public function's return address, where
 * the leak detector's creation record starts. */
static OHM_NOINLINE ohm_buf *alloc_from_pool(ohm_pool *pool, size_t size, int zero, void *user_ret)
{
    if (ohm_unlikely(!pool) && !(pool = ohm_pool_default())) return NULL;
    size_t gmin = atomic_load_explicit(&guard_min, memory_order_relaxed);
    if (ohm_unlikely(gmin) && size >= gmin) return guard_alloc(pool, size, zero);
    void *data = zero ? ohm_pool_alloc_zeroed(pool, size) : ohm_pool_alloc(pool, size);
    if (ohm_unlikely(!data)) return NULL;
    ohm_buf *b = hdr_take();
    if (ohm_unlikely(!b)) {
        ohm_pool_free(pool, data);
        ohm__error(OHM_ENOMEM, "no memory for a buffer header");
        return NULL;
    }
    uint32_t gen = pool_root_init(b, pool, data, size);
    /* The block came through this cache (a poisoning pool's blocks go back through pool_block_free). */
    if (tcache_last.pool_id == pool->id && size <= pool->cache_max && !(b->flags & BUF_POISON)) {
        b->tc = tcache_last.tc;
        b->cls = (uint8_t)sc_index(size);
    }
    b->track = leak_track_sampled(atomic_load_explicit(&pool->leak_settings, memory_order_relaxed),
                                  make_id(gen, b->index), size, OHM_ORIGIN_POOL, pool->name, user_ret);
    atomic_store_explicit(&b->state, st_make(gen, 1), memory_order_release);
    return b;
}

/* The fast path's end when the leak detector must decide: b is a root of its pool with all its fields set but
 * track, not yet published. Out of line, so that the fast path calls nothing. */
static OHM_NOINLINE ohm_buf *alloc_sampled(ohm_buf *b, uint32_t gen, void *user_ret)
{
    ohm_pool *pool = b->ctx;
    b->track = leak_track_sampled(atomic_load_explicit(&pool->leak_settings, memory_order_relaxed),
                                  make_id(gen, b->index), b->size, OHM_ORIGIN_POOL, pool->name, user_ret);
    atomic_store_explicit(&b->state, st_make(gen, 1), memory_order_release);
    return b;
}

/* The fast path: the pool's thread cache is this thread's most recent, its stack for the class and the header
 * cache are not empty, and no guard pages; alloc_sampled ends it when the allocation may be tracked. The pool's own pop (pool.c's alloc_fast)
 * done here, so that the block's cache and class can be kept in the header for the release's push; and with no
 * call on this path, none of the slow path's register saves either. */
ohm_buf *ohm_buf_alloc(ohm_pool *pool, size_t size)
{
    unsigned nh = tl_hc.n;
    if (ohm_likely(pool != NULL) && ohm_likely(tcache_last.pool_id == pool->id) && ohm_likely(nh != 0)) {
        tcache_t *tc = tcache_last.tc;
        if (ohm_likely(size < atomic_load_explicit(&tc->alloc_limit, memory_order_acquire)) &&
            ohm_likely(!atomic_load_explicit(&guard_min, memory_order_relaxed))) {
            unsigned cls = sc_index(size);
            void *data = stack_pop(tc->stacks[cls]);
            if (ohm_likely(data != NULL)) {
                ohm_buf *b = hdr_pop(nh);
                uint32_t gen = hdr_next_gen(b);
                /* Headers are type-stable and this thread's cache hands back the ones it took last: most were
                 * roots of this pool made here, whose pool-only fields still hold what they would be set to. A
                 * poisoning pool caches no blocks, so never gets here: no BUF_POISON. */
                if (ohm_unlikely(b->fast_pool != pool)) {
                    pool_root_fields(b, pool, BUF_ROOT);
                    b->fast_pool = pool;
                }
                pool_root_block(b, data, size, gen, tc, cls);
                if (ohm_unlikely(atomic_load_explicit(&pool->leak_settings, memory_order_relaxed)) ||
                    ohm_unlikely(!leak_untracked_fast()))
                    return alloc_sampled(b, gen, __builtin_return_address(0));
                atomic_store_explicit(&b->state, st_make(gen, 1), memory_order_release);
                return b;
            }
        }
    }
    return alloc_from_pool(pool, size, 0, __builtin_return_address(0));
}

ohm_buf *ohm_buf_alloc_zeroed(ohm_pool *pool, size_t size)
{
    return alloc_from_pool(pool, size, 1, __builtin_return_address(0));
}

/* ---- parked buffers (ohm.h: a host's magazines) ----
 *
 * A parked header is a live pool root (odd generation) at count 0: to every ohm call it is released (owner_state
 * is 0), a reclaim finds nothing to drop, and a pool destruction ends it as no leak. Only the host that holds it
 * lends it, writing a new odd generation into owner_gen and root_gen before the state word (no derived handle or
 * retained slice can hold the old one: a buffer that had any is never parked again), and parks it again by its
 * own CAS when the last reference goes. */

size_t ohm_buf_alloc_parked(ohm_pool *pool, size_t size, ohm_buf_parked *out, size_t n)
{
    if (!pool && !(pool = ohm_pool_default())) return 0;
    if (!out && n) {
        ohm__error(OHM_EINVAL, "alloc_parked: out is NULL");
        return 0;
    }
    size_t gmin = atomic_load_explicit(&guard_min, memory_order_relaxed);
    /* Poisoning, zeroing and guard pages act at each allocation and free, which a host's lend and park skip. */
    if (poison_on(&pool->cfg) || pool->cfg.zero || (gmin && size >= gmin)) return 0;
    size_t i = 0;
    for (; i < n; i++) {
        void *data = ohm_pool_alloc(pool, size);
        if (ohm_unlikely(!data)) break;
        ohm_buf *b = hdr_take();
        if (ohm_unlikely(!b)) {
            ohm_pool_free(pool, data);
            ohm__error(OHM_ENOMEM, "no memory for a buffer header");
            break;
        }
        uint32_t gen = pool_root_init(b, pool, data, size);
        b->track = NULL;
        atomic_store_explicit(&b->state, st_make(gen, 0), memory_order_release);
        out[i].buf = b;
        out[i].data = data;
        out[i].id = make_id(gen, b->index);
    }
    return i;
}

size_t ohm_buf_free_parked(const ohm_buf_parked *in, size_t n)
{
    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
        ohm_buf *b = in[i].buf;
        uint32_t gen = (uint32_t)(in[i].id >> 32);
        uint64_t st = st_make(gen, 0);
        /* Only the exact parked word: a header that is lent, ended (a pool destruction) or another buffer now is
         * left alone. */
        if (!b || !(gen & 1) || b->index != (uint32_t)in[i].id || b->flags != BUF_ROOT ||
            b->free_fn != pool_block_free || b->track ||
            !atomic_compare_exchange_strong_explicit(&b->state, &st, st_make(gen + 1, 0), memory_order_acq_rel,
                                                     memory_order_relaxed)) {
            ohm__log(OHM_LOG_ERROR, "free_parked: buffer %p (id %llx) is not parked; left alone", (void *)b,
                     (unsigned long long)in[i].id);
            continue;
        }
        ohm_assert(!atomic_load_explicit(&b->derived, memory_order_relaxed) &&
                   !atomic_load_explicit(&b->retained_children, memory_order_relaxed) &&
                   "a parked buffer has no derived handles or retained slices");
        void *data = b->data;
        ohm_pool *pool = b->ctx;
        hdr_free(b);
        ohm_pool_free(pool, data);
        freed++;
    }
    return freed;
}

void ohm_buf_parked_layout(ohm_buf_layout *out)
{
    out->state = offsetof(ohm_buf, state);
    out->size = offsetof(ohm_buf, size);
    out->gen1 = offsetof(ohm_buf, owner_gen);
    out->gen2 = offsetof(ohm_buf, root_gen);
}

int ohm_buf_track(ohm_buf *b)
{
    int rc = buf_check_live(b, "track");
    if (rc) return rc;
    if (b->owner != b || !(b->flags & BUF_ROOT))
        return ohm__error(OHM_EINVAL, "track: only a root buffer gets a record of its own");
    if (b->track) return 0;
    ohm_pool *pool = b->pool;
    b->track = leak_track_new(pool ? atomic_load_explicit(&pool->leak_settings, memory_order_relaxed) : 0,
                              make_id(b->owner_gen, b->index), b->size, (ohm_buf_origin)b->origin,
                              pool ? pool->name : NULL, __builtin_return_address(0));
    return b->track ? 0 : ohm__error(OHM_ENOMEM, "track: no memory for a leak record");
}

ohm_buf *ohm_buf_wrap(void *data, size_t size, ohm_buf_release_fn *release, void *arg)
{
    if (!data && size) {
        ohm__error(OHM_EINVAL, "wrap: data is NULL with size %zu", size);
        return NULL;
    }
    ohm_buf *b = buf_root_new(data, size, OHM_ORIGIN_FOREIGN, 0, release, arg, NULL);
    if (!b) ohm__error(OHM_ENOMEM, "no memory for a buffer header");
    return b;
}

int ohm_buf_retain(ohm_buf *b, uint32_t n)
{
    if (!b) return ohm__error(OHM_EINVAL, "retain: buffer is NULL");
    if (!n) return ohm__error(OHM_EINVAL, "retain: increment must be > 0");
    if (!(st_gen(atomic_load_explicit(&b->state, memory_order_acquire)) & 1))
        return ohm__error(OHM_ESTATE, "retain: buffer has been released");
    ohm_buf *o = b->owner;
    uint64_t st = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        if (st_gen(st) != b->owner_gen || !st_count(st))
            return ohm__error(OHM_ESTATE, "retain: buffer has been released");
        if ((uint64_t)st_count(st) + n > INT32_MAX)
            return ohm__error(OHM_EINVAL, "retain: increment %u overflows the reference count %u", n, st_count(st));
        if (atomic_compare_exchange_weak_explicit(&o->state, &st, st + n, memory_order_acq_rel, memory_order_acquire))
            return 0;
    }
}

static OHM_COLD int release_misuse(const ohm_buf *b, uint32_t n)
{
    if (!b) return ohm__error(OHM_EINVAL, "release: buffer is NULL");
    if (!n) return ohm__error(OHM_EINVAL, "release: decrement must be > 0");
    return ohm__error(OHM_ESTATE, "release: buffer has been released");
}

/* The inline release's end when its own push does not apply. */
static OHM_NOINLINE int release_to_pool(ohm_buf *o, ohm_pool *pool, void *data)
{
    hdr_free(o);
    ohm_pool_free(pool, data);
    return 1;
}

/* A pool root whose header the caller ended (count 0, even generation) and owns, whose block came through cache tc
 * (not NULL): the header to this thread's cache, the block to its pool. That is the pool's own push (pool.c's free
 * fast path) when the block goes back to the cache it came from, which is this thread's cache for the pool now:
 * the block is known to be a live block of its class, so only a raw ohm_pool_free of it by its user (the
 * free-block key) is left to check. */
static inline __attribute__((always_inline)) int root_give_back(ohm_buf *o, tcache_t *tc)
{
    void *data = o->data;
    ohm_pool *pool = o->ctx;
    if (ohm_likely(tcache_last.tc == tc) && ohm_likely(tcache_last.pool_id == pool->id) &&
        ohm_likely(tl_hc.n < tl_hc.cap)) {
        tstack_t *stack = tc->stacks[o->cls];
        uint64_t sn = atomic_load_explicit(&stack->n, memory_order_relaxed);
        if (ohm_likely(sn < stack->cap) && ohm_likely(block_word0(data) != block_key(data))) {
            tl_hc.hdrs[tl_hc.n++] = o;
            stack_push(stack, sn, data, block_key(data));
            return 1;
        }
    }
    return release_to_pool(o, pool, data);
}

/* The inline release of a tracked root: released properly, so its record closes. */
static OHM_NOINLINE int release_tracked(ohm_buf *o, tcache_t *tc)
{
    leak_track_close(o->track);
    o->track = NULL;
    return root_give_back(o, tc);
}

/* The common case inline: a live pool root with no derived handles and no retained slices, released to 0 by one
 * CAS, goes straight back to its pool. */
int ohm_buf_release(ohm_buf *b, uint32_t n)
{
    if (ohm_unlikely(!b)) return release_misuse(b, n);
    uint64_t st = atomic_load_explicit(&b->state, memory_order_acquire);
    tcache_t *tc = b->tc;
    /* A pool root whose block came through a thread cache (tc, set for nothing else) at count n, with no
     * derived handle or retained slice: one CAS takes the count to 0 and ends the header (the next, even
     * generation). Its own generation matching rules out a released handle; n == 0 never matches, since the only
     * live roots at count 0 are parked ones, which have no tc. */
    if (ohm_likely(st == st_make(b->owner_gen, n)) && ohm_likely(b->owner == b) && ohm_likely(tc != NULL) &&
        !atomic_load_explicit(&b->derived, memory_order_relaxed) &&
        !atomic_load_explicit(&b->retained_children, memory_order_relaxed) &&
        atomic_compare_exchange_strong_explicit(&b->state, &st, (st | UINT32_MAX) + 1, memory_order_acq_rel,
                                                memory_order_relaxed)) {
        owner_end_check(b);
        if (ohm_unlikely(b->track != NULL)) return release_tracked(b, tc);
        return root_give_back(b, tc);
    }
    if (ohm_unlikely(!n) || ohm_unlikely(!(st_gen(st) & 1))) return release_misuse(b, n);
    return release_owner(b->owner, b->owner_gen, n, "release");
}

uint32_t ohm_buf_refcnt(const ohm_buf *b) { return b ? st_count(owner_state(b)) : 0; }

void *ohm_buf_data(const ohm_buf *b) { return b && owner_state(b) ? b->data : NULL; }
size_t ohm_buf_size(const ohm_buf *b) { return b && owner_state(b) ? b->size : 0; }
ohm_buf_origin ohm_buf_origin_of(const ohm_buf *b) { return b ? (ohm_buf_origin)b->root->origin : OHM_ORIGIN_POOL; }

/* ---- slices ---- */

int ohm_range_check(size_t size, size_t off, size_t len)
{
    if (ohm_unlikely(off > size || len > size - off)) {
        if (len > SIZE_MAX - off)
            return ohm__error(OHM_ERANGE, "offset %zu + length %zu overflows (buffer size %zu)", off, len, size);
        return ohm__error(OHM_ERANGE, "offset %zu + length %zu exceeds buffer size %zu", off, len, size);
    }
    return 0;
}

static ohm_buf *derive(ohm_buf *b, size_t off, size_t len, const char *op)
{
    int rc = buf_check_live(b, op);
    if (!rc) rc = ohm_range_check(b->size, off, len);
    if (rc) return NULL;
    uint32_t gen;
    ohm_buf *d = hdr_alloc(&gen);
    if (!d) {
        ohm__error(OHM_ENOMEM, "%s: no memory for a buffer header", op);
        return NULL;
    }
    d->flags = BUF_DERIVED | (b->root->flags & BUF_SEALED);
    d->data = b->data ? b->data + off : NULL; /* wrapped (NULL, 0): no arithmetic on NULL */
    d->size = len;
    d->owner = b->owner;
    d->owner_gen = b->owner_gen;
    hdr_set_root(d, b->root);
    d->root_gen = b->root_gen;
    ohm_assert((!len || (d->data >= b->root->data && d->data + len <= b->root->data + b->root->size)) &&
               "a slice's bytes lie inside its root's");
    hdr_publish(d, gen, 0); /* before linking: a kill of the owner's derived list must find it live */
    derived_link(b->owner, d);
    return d;
}

ohm_buf *ohm_buf_slice(ohm_buf *b, size_t off, size_t len) { return derive(b, off, len, "slice"); }

ohm_buf *ohm_buf_duplicate(ohm_buf *b) { return derive(b, 0, b && owner_state(b) ? b->size : 0, "duplicate"); }

ohm_buf *ohm_buf_retained_slice(ohm_buf *b, size_t off, size_t len)
{
    int rc = buf_check_live(b, "retained_slice");
    if (!rc) rc = ohm_range_check(b->size, off, len);
    if (!rc) rc = ohm_buf_retain(b, 1);
    if (rc) return NULL;
    uint32_t gen;
    ohm_buf *r = hdr_alloc(&gen);
    if (!r) {
        release_owner(b->owner, b->owner_gen, 1, "retained_slice");
        ohm__error(OHM_ENOMEM, "retained_slice: no memory for a buffer header");
        return NULL;
    }
    r->flags = BUF_RETAINED | (b->root->flags & BUF_SEALED);
    r->data = b->data ? b->data + off : NULL;
    r->size = len;
    r->parent = b->owner;
    r->parent_gen = b->owner_gen;
    hdr_set_root(r, b->root);
    r->root_gen = b->root_gen;
    /* Its own leak record, sampled as a new buffer of its pool would be: a retained slice is released on its
     * own, so it can leak on its own (its parent released properly), and Netty tracks it so (netty#13414).
     * Called from here, not from a helper, so the creation record starts at our caller (see leak.c capture). */
    struct ohm_pool *pool = b->root->pool;
    r->track = leak_track_maybe(pool ? atomic_load_explicit(&pool->leak_settings, memory_order_relaxed) : 0,
                                make_id(gen, r->index), len, (ohm_buf_origin)b->root->origin, pool ? pool->name : NULL);
    atomic_fetch_add_explicit(&b->owner->retained_children, 1, memory_order_relaxed);
    hdr_publish(r, gen, 1);
    return r;
}

/* ---- checked access ---- */

static inline int check_access(const ohm_buf *b, size_t off, size_t len, bool write, const char *op)
{
    int rc = buf_check_live(b, op);
    if (ohm_unlikely(rc)) return rc;
    if (ohm_unlikely(write && (b->root->flags & BUF_SEALED)))
        return ohm__error(OHM_ESTATE, "%s: buffer is sealed read-only", op);
    return ohm_range_check(b->size, off, len);
}

int ohm_buf_read(const ohm_buf *b, size_t off, void *dst, size_t len)
{
    int rc = check_access(b, off, len, false, "read");
    if (rc) return rc;
    if (len && !dst) return ohm__error(OHM_EINVAL, "read: destination is NULL");
    if (len) memcpy(dst, b->data + off, len);
    return 0;
}

int ohm_buf_write(ohm_buf *b, size_t off, const void *src, size_t len)
{
    int rc = check_access(b, off, len, true, "write");
    if (rc) return rc;
    if (len && !src) return ohm__error(OHM_EINVAL, "write: source is NULL");
    if (len) memcpy(b->data + off, src, len);
    return 0;
}

int ohm_buf_copy(ohm_buf *dst, size_t dst_off, const ohm_buf *src, size_t src_off, size_t len)
{
    int rc = check_access(src, src_off, len, false, "copy (source)");
    if (!rc) rc = check_access(dst, dst_off, len, true, "copy (destination)");
    if (rc) return rc;
    if (len) memmove(dst->data + dst_off, src->data + src_off, len);
    return 0;
}

int ohm_buf_fill(ohm_buf *b, size_t off, uint8_t byte, size_t len)
{
    int rc = check_access(b, off, len, true, "fill");
    if (rc) return rc;
    if (len) memset(b->data + off, byte, len);
    return 0;
}

int ohm_buf_span(const ohm_buf *b, size_t off, size_t len, void **ptr)
{
    if (!ptr) return ohm__error(OHM_EINVAL, "span: ptr is NULL");
    int rc = check_access(b, off, len, false, "span");
    if (rc) return rc;
    *ptr = b->data ? b->data + off : NULL; /* wrapped (NULL, 0): no arithmetic on NULL */
    return 0;
}

/* ---- the Cleaner protocol and the leak detector's hooks ---- */

/* A count owner nobody can release any more (its handle and every plain slice of it are unreachable): drop the
 * references its users forgot, but not those that retained slices hold (they are released through the slices).
 * gen is the owner's generation the caller saw, so an owner that ended meanwhile (and whose header is another
 * buffer now) is left alone. 1 when something was reclaimed. */
static int reclaim_owner(ohm_buf *b, uint32_t gen)
{
    uint64_t st = atomic_load_explicit(&b->state, memory_order_acquire);
    uint32_t held = atomic_load_explicit(&b->retained_children, memory_order_relaxed);
    if (st_gen(st) != gen || !(gen & 1) || st_count(st) <= held) return 0;
    uint32_t leaked = st_count(st) - held;
    if (b->track) {
        struct leak_track *t = b->track;
        b->track = NULL; /* reported here, so not closed when its count reaches 0 */
        leak_track_leaked(t, OHM_LEAK_GC);
    } else {
        leak_untracked(OHM_LEAK_GC, b->size);
    }
    return release_owner(b, gen, leaked, "reclaim") >= 0 ? 1 : 0;
}

int ohm_buf_reclaim(ohm_buf *b, uint64_t id)
{
    if (!b || !id || ohm_buf_id(b) != id) return 0;
    ohm_buf *o = b->owner;
    pthread_mutex_t *m = stripe_of(o);
    if (b->flags & BUF_DERIVED) {
        /* Only the handle goes; its owner is reclaimed (and reported) through its own handle. But when the
         * owner's handle went first (retained slices kept the owner alive) and this was its last plain slice,
         * nobody can release what was retained through the slices any more: reclaim the owner now. */
        pthread_mutex_lock(m);
        int mine = ohm_buf_id(b) == id && b->linked, last = 0;
        uint32_t gen = b->owner_gen;
        if (mine) {
            if (b->prev_derived) b->prev_derived->next_derived = b->next_derived;
            else atomic_store_explicit(&o->derived, b->next_derived, memory_order_relaxed);
            if (b->next_derived) b->next_derived->prev_derived = b->prev_derived;
            b->linked = 0;
            hdr_kill(b);
            last = o->host_gone_gen == gen && !atomic_load_explicit(&o->derived, memory_order_relaxed);
        }
        pthread_mutex_unlock(m);
        if (mine) hdr_free(b);
        return last ? reclaim_owner(o, gen) : 0;
    }
    /* The owner's handle: remembered, for its plain slices that may outlive it (above). */
    pthread_mutex_lock(m);
    int alive = ohm_buf_id(b) == id;
    if (alive) b->host_gone_gen = (uint32_t)(id >> 32);
    pthread_mutex_unlock(m);
    return alive ? reclaim_owner(b, (uint32_t)(id >> 32)) : 0;
}

/* A buffer's leak record is its count owner's: a root's or a retained slice's own, shared by the plain slices and
 * duplicates made from it (as Netty's non-retained derived buffers share their parent's tracker). */
int ohm_buf_touch(ohm_buf *b, const char *hint)
{
    int rc = buf_check_live(b, "touch");
    if (rc) return rc;
    if (b->owner->track) leak_track_touch(b->owner->track, hint);
    return 0;
}

bool ohm_buf_tracked(const ohm_buf *b) { return b && owner_state(b) && b->owner->track; }

int ohm_buf_set_site(ohm_buf *b, const char *host_site)
{
    int rc = buf_check_live(b, "set_site");
    if (rc) return rc;
    if (b->owner->track && host_site) leak_track_set_site(b->owner->track, host_site);
    return 0;
}

int ohm_buf_seal(ohm_buf *b, bool sealed)
{
    int rc = buf_check_live(b, "seal");
    if (rc) return rc;
    ohm_buf *root = b->root;
    if (!(root->flags & BUF_PAGES) || b->data != root->data || b->size != root->size)
        return ohm__error(OHM_EINVAL, "seal: only a buffer that owns its pages (guarded or mapped) can be sealed");
    uintptr_t lo = (uintptr_t)root->data & ~(uintptr_t)(OHM_PAGE - 1);
    size_t len = ohm_align_up((uintptr_t)root->data + root->size - lo, OHM_PAGE);
    rc = len ? os_protect((void *)lo, len, sealed ? OS_PROT_READ : OS_PROT_RW) : 0;
    if (rc) return rc;
    if (sealed) root->flags |= BUF_SEALED;
    else root->flags &= ~(uint32_t)BUF_SEALED;
    return 0;
}

bool ohm_buf_readonly(const ohm_buf *b)
{
    if (!b || !owner_state(b)) return false;
    return (b->root->flags & BUF_SEALED) != 0;
}

/* ---- pool destruction ---- */

/* Whether h is a live buffer of pool. Other threads make and end buffers of other pools meanwhile, so the root
 * and its pool are read between two loads of h's state: the same odd generation both times means h was live
 * throughout, and a live handle's root (and the root's pool) never change. */
static bool dies_with(const ohm_buf *h, const struct ohm_pool *pool)
{
    _Atomic uint64_t *state = &((ohm_buf *)h)->state;
    uint64_t before = atomic_load_explicit(state, memory_order_acquire);
    if (!(st_gen(before) & 1)) return 0;
    ohm_buf *root = __atomic_load_n(&((ohm_buf *)h)->root, __ATOMIC_RELAXED);
    struct ohm_pool *p = __atomic_load_n(&root->pool, __ATOMIC_RELAXED);
    atomic_thread_fence(memory_order_acquire);
    return st_gen(atomic_load_explicit(state, memory_order_relaxed)) == st_gen(before) && p == pool;
}

/* Whether count owner h holds references of its own users (beyond those its retained slices hold): then it is
 * a leak when its pool goes; otherwise its users released it properly and the slices are the leaks. */
static bool holds_own_refs(ohm_buf *h)
{
    return st_count(atomic_load_explicit(&h->state, memory_order_relaxed)) >
           atomic_load_explicit(&h->retained_children, memory_order_relaxed);
}

/* The pool's memory is about to go at once: every live count owner of it (root or retained slice) that its users
 * did not release is a leak, and every header whose memory dies with it ends, so later calls get OHM_ESTATE.
 * The records are reported or closed after the scan, with no lock held: a report runs the host's handler, and
 * closing frees into the leak detector's own pool. */
void buf_pool_destroyed(struct ohm_pool *pool)
{
    size_t cap = 0, n = 0;
    leak_track **tracks = NULL; /* the dying records, each reported (leaked_flags[i]) or closed */
    uint8_t *leaked_flags = NULL;
    pthread_mutex_lock(&hdr_lock);
    for (hdr_block *blk = hdr_blocks; blk; blk = blk->next)
        for (size_t i = 0; i < blk->count; i++) {
            ohm_buf *h = &blk->hdrs[i];
            cap += dies_with(h, pool) && h->owner == h && h->track;
        }
    if (cap) {
        tracks = malloc(cap * sizeof *tracks);
        leaked_flags = malloc(cap);
        if (!tracks || !leaked_flags) { /* the records are closed unreported, under the lock */
            free(tracks);
            free(leaked_flags);
            tracks = NULL;
            leaked_flags = NULL;
        }
    }
    uint64_t untracked = 0;
    for (hdr_block *blk = hdr_blocks; blk; blk = blk->next)
        for (size_t i = 0; i < blk->count; i++) {
            ohm_buf *h = &blk->hdrs[i];
            if (!dies_with(h, pool)) continue;
            if (h->owner == h) { /* only count owners have records; plain slices share theirs */
                bool leaked = holds_own_refs(h);
                if (h->track && tracks && n < cap) {
                    leaked_flags[n] = (uint8_t)leaked;
                    tracks[n++] = h->track;
                } else if (h->track) {
                    leak_track_close(h->track);
                } else if (leaked) {
                    untracked++;
                }
                h->track = NULL;
            }
            /* Ended in place and handed to the free list directly: the stripe lists die with their owners. */
            atomic_store_explicit(&h->derived, NULL, memory_order_relaxed);
            atomic_store_explicit(&h->retained_children, 0, memory_order_relaxed);
            h->linked = 0;
            hdr_kill(h);
            h->next_derived = hdr_free_list;
            hdr_free_list = h;
        }
    pthread_mutex_unlock(&hdr_lock);
    size_t reported = 0;
    for (size_t i = 0; i < n; i++) {
        if (leaked_flags[i]) {
            leak_track_leaked(tracks[i], OHM_LEAK_POOL_DESTROY);
            reported++;
        } else {
            leak_track_close(tracks[i]);
        }
    }
    for (uint64_t i = 0; i < untracked; i++) leak_untracked(OHM_LEAK_POOL_DESTROY, 0);
    if (reported || untracked)
        ohm__log(OHM_LOG_WARN, "pool '%s' destroyed with %zu live buffers (%zu tracked)", pool->name,
                 (size_t)(reported + untracked), reported);
    free(tracks);
    free(leaked_flags);
}
