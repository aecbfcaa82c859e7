/* Pools: life cycle, the cap, validation, the allocation and free paths, huge blocks, trimming and the pool's part
 * of fork safety (lifecycle.c drives it). Options are in options.c, the background purger in purge.c, the poison
 * option in poison.c.
 *
 * The fast paths are a TLS compare to find the thread's cache, then a pop or a push on a per-class stack. The
 * free path validates the pointer first (its chunk: the one remembered or an address-map lookup; page entry, block
 * alignment, free-block key), so a foreign, interior or already-free pointer is an error and never reaches a
 * cache. A block of another arena than the thread's goes back to that arena, never onto the thread's stack. */
#define _GNU_SOURCE
#include "pool.h"

#include "list.h"
#include "options.h"
#include "os.h"
#include "poison.h"
#include "purge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uintptr_t ohm__key_secret;

static pthread_mutex_t pool_list_mutex = PTHREAD_MUTEX_INITIALIZER;
static ohm_pool *pools;           /* every live pool */
static uint64_t next_pool_id = 1; /* pool-list lock */
static _Atomic(ohm_pool *) default_pool;
/* The default pool's id once it exists; until then UINT64_MAX, which no pool and no empty cache slot has. ohm_alloc
 * compares it with the thread's most recent cache and never loads the pool itself. */
static struct {
    _Alignas(64) _Atomic uint64_t n;
    char pad[56]; /* a cache line of its own, as chunk_epoch's */
} default_pool_id = {UINT64_MAX, {0}};
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER; /* creation of the default pool */

void pool_list_lock(void) { pthread_mutex_lock(&pool_list_mutex); }
void pool_list_unlock(void) { pthread_mutex_unlock(&pool_list_mutex); }
ohm_pool *pool_list(void) { return pools; }

void pool_list_wait(pthread_cond_t *cond, const struct timespec *deadline)
{
    if (deadline) pthread_cond_timedwait(cond, &pool_list_mutex, deadline);
    else pthread_cond_wait(cond, &pool_list_mutex);
}

void pool_init(void) { ohm__key_secret = (uintptr_t)os_random64() | 1; }

/* ---- life cycle ---- */

ohm_pool *ohm_pool_create(const ohm_pool_config *cfg_in)
{
    ohm_pool_config cfg;
    ohm__init();
    if (cfg_in) cfg = *cfg_in;
    else ohm_pool_config_init(&cfg);
    if (options_check(&cfg) != 0) return NULL;
    ohm_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        ohm__error(OHM_ENOMEM, "cannot allocate a pool record");
        return NULL;
    }
    pool->cfg = cfg;
    snprintf(pool->name, sizeof pool->name, "%s", cfg.name ? cfg.name : "pool");
    pool->cfg.name = pool->name;
    pool->space.owner = pool;
    pool->space.cfg = &pool->cfg;
    pool->space.chunk_size = cfg.chunk_size;
    pool->space.chunk_pages = (unsigned)(cfg.chunk_size >> OHM_PAGE_SHIFT);
    pool->nclasses = sc_count_for_chunk(cfg.chunk_size);
    pool->cache_max = cfg.cache_max_size > cfg.chunk_size ? cfg.chunk_size : cfg.cache_max_size;
    pool->narenas = cfg.arenas ? cfg.arenas : 2 * os_ncpus();
    if (pool->narenas > OHM_MAX_ARENAS) pool->narenas = OHM_MAX_ARENAS;
    pool->arenas_size = pool->narenas * sizeof(arena_t);
    pool->arenas = os_meta_alloc(pool->arenas_size);
    if (!pool->arenas || pthread_mutex_init(&pool->huge_lock, NULL) != 0) {
        os_meta_free(pool->arenas, pool->arenas_size);
        free(pool);
        return NULL;
    }
    for (unsigned i = 0; i < pool->narenas; i++) arena_init(&pool->arenas[i], &pool->space, i);
    atomic_store(&pool->magic, POOL_MAGIC_LIVE);
    pool_list_lock();
    pool->id = next_pool_id++;
    pool->next = pools;
    pools = pool;
    if (purge_wanted(&cfg)) purge_start();
    pool_list_unlock();
    return pool;
}

static int pool_check(const ohm_pool *pool)
{
    if (!pool) return ohm__error(OHM_EINVAL, "pool is NULL");
    if (atomic_load_explicit(&((ohm_pool *)pool)->magic, memory_order_relaxed) != POOL_MAGIC_LIVE)
        return ohm__error(OHM_ESTATE, "pool has been destroyed");
    return 0;
}

int pool_destroy_begin(ohm_pool *pool)
{
    int rc = pool_check(pool);
    if (rc) return rc;
    if (pool->is_default) return ohm__error(OHM_ESTATE, "the default pool cannot be destroyed");
    pool_list_lock();
    purge_wait_idle(pool);
    for (ohm_pool **pp = &pools; *pp; pp = &(*pp)->next)
        if (*pp == pool) {
            *pp = pool->next;
            break;
        }
    tcache_kill_all(pool);
    pool_list_unlock();
    return 0;
}

void pool_destroy_end(ohm_pool *pool)
{
    for (unsigned i = 0; i < pool->narenas; i++) arena_destroy(&pool->arenas[i]);
    for (chunk_t *c = pool->huge, *next; c; c = next) {
        next = c->next;
        chunk_destroy(&pool->space, c);
    }
    pthread_mutex_destroy(&pool->huge_lock);
    os_meta_free(pool->arenas, pool->arenas_size);
    atomic_store(&pool->magic, POOL_MAGIC_DEAD);
    free(pool);
}

ohm_pool *ohm_pool_default(void)
{
    ohm_pool *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (ohm_likely(p != NULL)) return p;
    /* Read before the lock: a malformed setting is logged, and the log handler must not run under it. */
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "default";
    pthread_mutex_lock(&default_lock);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (!p) {
        p = ohm_pool_create(&cfg);
        if (p) {
            p->is_default = true;
            atomic_store_explicit(&default_pool, p, memory_order_release);
            atomic_store_explicit(&default_pool_id.n, p->id, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&default_lock);
    return p;
}

/* ---- the cap ----
 * chunk.c refuses a chunk past max_mapped. Free chunks count against the cap but serve nobody, so after a
 * refusal the pool gives them back and tries once more; a second refusal counts as a failed allocation.
 * A macro: the three callers try different things (an arena block, an aligned run, a huge mapping). */

static void release_free_chunks(ohm_pool *pool)
{
    for (unsigned i = 0; i < pool->narenas; i++) arena_purge(&pool->arenas[i], true);
}

#define CAP_RETRY(pool, p, attempt)                                                                  \
    do {                                                                                             \
        (void)chunk_cap_refused(); /* forget a refusal an earlier, partly served call left behind */ \
        (p) = (attempt);                                                                             \
        if (!(p) && chunk_cap_refused()) {                                                           \
            release_free_chunks(pool);                                                               \
            (p) = (attempt);                                                                         \
            if (!(p) && chunk_cap_refused())                                                         \
                atomic_fetch_add_explicit(&(pool)->space.failed_allocs, 1, memory_order_relaxed);    \
        }                                                                                            \
    } while (0)

/* ---- validation ---- */

static OHM_COLD int bad_pointer(const ohm_pool *pool, const void *p, const char *why)
{
    return ohm__error(OHM_EINVAL, "pool '%s': %p is not a live block of this pool (%s)", pool->name, p, why);
}

static OHM_COLD int double_free(const ohm_pool *pool, const void *p)
{
    return ohm__error(OHM_EINVAL, "pool '%s': double free of %p (the block is already free)", pool->name, p);
}

/* Validates p as the start of a live arena block of chunk c; sets *cls. About a dozen instructions: one page
 * entry load, a divisibility test for slab blocks, and the free-block key compare. */
static inline __attribute__((always_inline)) int check_arena_block(const ohm_pool *pool, const chunk_t *c,
                                                                   const void *p, unsigned *cls)
{
    uint32_t e = pg_get(c, chunk_page_of(c, p));
    *cls = pg_cls(e);
    if (ohm_likely(pg_kind(e) == PG_SLAB)) {
        size_t off = (uintptr_t)p - (uintptr_t)chunk_page_addr(c, pg_head(e));
        if (ohm_unlikely(!sc_divides(*cls, off))) return bad_pointer(pool, p, "it points inside a block");
        if (ohm_unlikely(off >= sc_table[*cls].slab_limit))
            return bad_pointer(pool, p, "it points into the unused tail of a slab");
    } else if (ohm_unlikely(pg_kind(e) != PG_RUN || ((uintptr_t)p & (OHM_PAGE - 1)))) {
        bool in_block = pg_kind(e) == PG_RUN || (pg_kind(e) == PG_RUN_TAIL && pg_tail_live(c, chunk_page_of(c, p), e));
        return bad_pointer(pool, p, in_block ? "it points inside a block" : "it points into free pages");
    }
    if (ohm_unlikely(block_word0(p) == block_key(p))) return double_free(pool, p);
    return 0;
}

int pool_check_block(ohm_pool *pool, void *p, chunk_t **chunk_out, unsigned *cls_out)
{
    chunk_t *c = chunk_of(p);
    if (!c) return ohm__error(OHM_EINVAL, "%p is not in any pool's memory", p);
    if (pool && c->pool != pool) return bad_pointer(pool, p, "it belongs to another pool");
    *chunk_out = c;
    if (c->kind == CHUNK_HUGE) {
        *cls_out = SC_COUNT;
        return (uintptr_t)p == c->base ? 0 : bad_pointer(c->pool, p, "it points inside a huge block");
    }
    return check_arena_block(c->pool, c, p, cls_out);
}

/* ---- huge blocks ---- */

static void *huge_alloc(ohm_pool *pool, size_t size, size_t align)
{
    chunk_t *c;
    CAP_RETRY(pool, c, chunk_create_huge(&pool->space, size, align));
    if (!c) return NULL;
    pthread_mutex_lock(&pool->huge_lock);
    LIST_PUSH_FRONT(pool->huge, c, next, prev);
    pool->huge_blocks++;
    pool->huge_bytes += c->usable;
    pool->huge_allocs++;
    pthread_mutex_unlock(&pool->huge_lock);
    return (void *)c->base; /* fresh mappings are zero: no memset needed even for zeroing pools */
}

static void huge_free(ohm_pool *pool, chunk_t *c)
{
    pthread_mutex_lock(&pool->huge_lock);
    LIST_UNLINK(pool->huge, c, next, prev);
    pool->huge_blocks--;
    pool->huge_bytes -= c->usable;
    pool->huge_frees++;
    pthread_mutex_unlock(&pool->huge_lock);
    chunk_destroy(&pool->space, c);
}

/* ---- allocation ---- */

static inline void *finish_alloc(void *p, size_t size, int zero)
{
    *(uintptr_t *)p = 0; /* clear the free-block key */
    if (ohm_unlikely(zero)) memset(p, 0, size);
    return p;
}

/* A block of class cls from the arenas: through the thread cache's stack (a refill) when it has one and no trim just
 * flushed it, else one block directly. NULL with the error set. */
static void *alloc_from_arena(ohm_pool *pool, tcache_t *tc, unsigned cls, int flushed)
{
    void *p = NULL;
    if (tc) {
        tstack_t *b = tc->stacks[cls];
        if (b->cap && !flushed) {
            uint32_t n = stack_n(b);
            if (!n) {
                n = tcache_refill(tc, cls);
                if (n) ohm_counter_add(&tc->stats[cls].misses, 1);
            }
            if (n) {
                p = b->slots[n - 1];
                stack_set_n(b, n - 1);
            }
        } else if (arena_alloc_batch(tc->arena, cls, &p, 1)) {
            ohm_counter_add(&tc->stats[cls].direct_allocs, 1);
        }
    } else if (arena_alloc_batch(&pool->arenas[0], cls, &p, 1)) {
        atomic_fetch_add_explicit(&pool->arenas[0].other_allocs[cls], 1, memory_order_relaxed);
    }
    return p;
}

/* Everything the fast path does not handle: a first call on this thread or another pool than the last one, an
 * empty stack, an uncached class, a zeroing pool, a pending flush request, a huge size, a NULL or destroyed
 * pool. */
static OHM_NOINLINE void *alloc_slow(ohm_pool *pool, size_t size)
{
    if (pool_check(pool) != 0) return NULL;
    if (size > pool->space.chunk_size) return huge_alloc(pool, size, 0);
    unsigned cls = sc_index(size);
    tcache_t *tc = tcache_get_or_create(pool);
    void *p = NULL;
    if (tc && size < atomic_load_explicit(&tc->alloc_limit_all, memory_order_acquire)) {
        /* Another pool was this thread's most recent (two pools used alternately): the lookup made this one
         * most recent; serve from its stack as the fast path would. */
        if ((p = stack_pop(tc->stacks[cls])) != NULL) return p;
    }
    /* Right after a trim flushed this cache, take one block rather than refilling a stack the trim emptied. */
    bool flushed = tc ? tcache_tick(tc) : false;
    CAP_RETRY(pool, p, alloc_from_arena(pool, tc, cls, flushed));
    if (!p) return NULL; /* the error was set where memory was refused */
    poison_on_alloc(&pool->cfg, pool, p, cls);
    return finish_alloc(p, sc_size(cls), pool->cfg.zero);
}

/* The fast path after the TLS compare: the size bound and class, a pop. No counter: pops are derived (see
 * tstats_t). NULL when it cannot serve the call. */
static inline __attribute__((always_inline)) void *pop_block(tcache_t *tc, size_t size)
{
    tstack_t *b;
    if (ohm_likely(atomic_u64_above(&tc->alloc_limit, size))) {
        b = tc->stack_by_granule[(size + 15) >> 4]; /* alloc_limit <= SC_LUT_MAX + 1 */
    } else {
        if (size >= atomic_load_explicit(&tc->alloc_limit_all, memory_order_acquire)) return NULL;
        b = tc->stacks[sc_index(size)];
    }
    return stack_pop(b);
}

static inline __attribute__((always_inline)) void *alloc_fast(const ohm_pool *pool, size_t size)
{
    if (ohm_likely(tcache_last.pool_id == pool->id)) return pop_block(tcache_last.tc, size);
    return NULL;
}

void *ohm_pool_alloc(ohm_pool *pool, size_t size)
{
    void *p;
    if (ohm_likely(pool != NULL) && ohm_likely((p = alloc_fast(pool, size)) != NULL)) return p;
    return alloc_slow(pool, size);
}

void *ohm_pool_alloc_zeroed(ohm_pool *pool, size_t size)
{
    void *p = ohm_pool_alloc(pool, size);
    if (p && !pool->cfg.zero && size <= pool->space.chunk_size) memset(p, 0, size);
    return p;
}

void *ohm_pool_alloc_aligned(ohm_pool *pool, size_t size, size_t align)
{
    if (pool_check(pool) != 0) return NULL;
    if (!ohm_is_pow2(align)) {
        ohm__error(OHM_EINVAL, "alignment %zu is not a power of two", align);
        return NULL;
    }
    if (align <= 16) return ohm_pool_alloc(pool, size);
    if (size > SIZE_MAX - align) {
        ohm__error(OHM_EINVAL, "size %zu with alignment %zu is too large", size, align);
        return NULL;
    }
    if (align <= OHM_PAGE) {
        /* Slabs start on a page and hold blocks at multiples of the class size, so a class whose size is a
         * multiple of align yields aligned blocks; run classes are page multiples. */
        if (size <= pool->space.chunk_size) {
            unsigned cls = sc_index(size);
            while (sc_is_small(cls) && sc_size(cls) % align) cls++;
            if (cls < pool->nclasses) return ohm_pool_alloc(pool, sc_size(cls));
        }
        return huge_alloc(pool, size, align);
    }
    /* A run of the size's class (at least the first run class) placed at an aligned page; when the class plus
     * the alignment slack does not fit in a chunk, a huge mapping aligned by the OS layer. */
    unsigned cls = size <= pool->space.chunk_size ? sc_index(size) : SC_COUNT;
    if (cls < SC_NSMALL) cls = SC_NSMALL;
    if (cls >= pool->nclasses || sc_size(cls) + align - OHM_PAGE > pool->space.chunk_size)
        return huge_alloc(pool, size, align);
    tcache_t *tc = tcache_get_or_create(pool);
    void *p;
    CAP_RETRY(pool, p, arena_alloc_aligned_run(tc ? tc->arena : &pool->arenas[0], cls, align));
    if (!p) return NULL;
    if (tc) ohm_counter_add(&tc->stats[cls].direct_allocs, 1);
    else atomic_fetch_add_explicit(&pool->arenas[0].other_allocs[cls], 1, memory_order_relaxed);
    return finish_alloc(p, sc_size(cls), pool->cfg.zero);
}

/* Out of line, so that ohm_alloc's fast path needs no stack frame. */
static OHM_NOINLINE void *alloc_default_slow(size_t size, ohm_pool *pool)
{
    if (!pool && !(pool = ohm_pool_default())) return NULL;
    return alloc_slow(pool, size);
}

void *ohm_alloc(size_t size)
{
    void *p;
    if (ohm_likely(tcache_last.pool_id == atomic_load_explicit(&default_pool_id.n, memory_order_relaxed)) &&
        ohm_likely((p = pop_block(tcache_last.tc, size)) != NULL))
        return p;
    return alloc_default_slow(size, atomic_load_explicit(&default_pool, memory_order_acquire));
}

/* ---- free ---- */

static int free_valid(void *p, ohm_pool *pool, chunk_t *c, unsigned cls);
static int free_to_other_arena(tcache_t *tc, arena_t *a, void *p, unsigned cls);

/* Everything the free fast path does not handle, with full validation and its messages: a huge block, an
 * invalid pointer, a poisoning pool. */
static OHM_NOINLINE int free_slow(void *p, ohm_pool *pool)
{
    chunk_t *c;
    unsigned cls;
    int rc = pool_check_block(pool, p, &c, &cls);
    if (rc) return rc;
    if (c->kind == CHUNK_HUGE) {
        huge_free(pool, c);
        return 0;
    }
    return free_valid(p, pool, c, cls);
}

/* A block the fast path validated, whose pool is not this thread's most recent, whose stack is full or whose
 * class is not cached (two pools used alternately land here on every free, so it must not validate again). A
 * block of another arena never goes onto this thread's stack: a block's allocation and free both count on its
 * own arena. */
static OHM_NOINLINE int free_valid(void *p, ohm_pool *pool, chunk_t *c, unsigned cls)
{
    int rc;
    poison_on_free(&pool->cfg, p, sc_size(cls));
    tcache_t *tc = tcache_get_or_create(pool);
    if (!tc) {
        arena_t *a = c->arena; /* the free may unmap c */
        rc = arena_free_one(a, p);
        if (rc == 0) atomic_fetch_add_explicit(&a->other_frees[cls], 1, memory_order_relaxed);
        return rc;
    }
    if (c->arena != tc->arena) return free_to_other_arena(tc, c->arena, p, cls);
    tstack_t *b = tc->stacks[cls];
    if (stack_n(b) < b->cap) { /* only the most-recent compare failed */
        stack_push(b, stack_n(b), p, block_key(p));
        return 0;
    }
    tcache_tick(tc);
    if (!b->cap) {
        rc = arena_free_one(c->arena, p);
        if (rc == 0) ohm_counter_add(&tc->stats[cls].direct_frees, 1);
        return rc;
    }
    if (stack_n(b) == b->cap) tcache_flush_stack(tc, cls, b->cap / 2 ? b->cap / 2 : 1);
    stack_push(b, stack_n(b), p, block_key(p));
    return 0;
}

/* A validated block of arena chunk c whose stack is full or whose class is not cached. */
static OHM_NOINLINE int free_full(void *p, chunk_t *c)
{
    return free_valid(p, c->pool, c, pg_cls(pg_get(c, chunk_page_of(c, p))));
}

/* The fast path: c is an arena chunk of tc's arena holding p, key is p's free-block key. The checks, then a push.
 * The page entry's class byte picks the stack, and the stack's block check accepts exactly the block starts of
 * its class measured from the entry's head page: a slab's blocks, a run's first byte, nothing in a run's tail
 * pages or in free pages (their byte picks a stack that accepts nothing). Then the free-block key. What fails
 * goes to free_slow, which re-runs the checks and says precisely what was wrong.
 * The fast path then pushes onto the stack (c of tc's arena); the pool is loaded only on the slow paths.
 * block_ok: whether p, at offset off in its chunk and with page entry e, is a block start that stack b's class
 * accepts and not already free (its first word is not its free-block key). */
static inline __attribute__((always_inline)) bool block_ok(const tstack_t *b, size_t off, uint32_t e, const void *p,
                                                           uintptr_t key)
{
    return ohm_likely(stack_block_start(b, off - pg_head_offset(e))) && ohm_likely(block_word0(p) != key);
}

static inline __attribute__((always_inline)) tstack_t *block_stack(const tcache_t *tc, const chunk_t *c, const void *p,
                                                                   uintptr_t key, uint32_t *entry)
{
    size_t off = (uintptr_t)p - c->base;
    uint32_t e = pg_get(c, off >> OHM_PAGE_SHIFT);
    tstack_t *b = tc->stacks_by_entry[pg_stack_index(e)];
    *entry = e;
    return block_ok(b, off, e, p, key) ? b : NULL;
}

/* The stack is guessed before the page entry says which it is: the next allocation's pop waits for this push, and
 * a stack found through the entry would put the entry's load and then the stack pointer's load on that path in
 * every pair of calls. With the guess (the stack of this cache's last free) the CPU predicts the branch that
 * checks it and goes on with the guessed stack's count while the entry is still on its way; a wrong guess costs
 * the stack pointer's load as before, plus a mispredicted branch when guesses alternate between right and wrong. */
static inline __attribute__((always_inline)) int free_push(tcache_t *tc, chunk_t *c, void *p, uintptr_t key)
{
    size_t off = (uintptr_t)p - c->base;
    uint64_t guess = tc->free_guess;
    tstack_t *b = tc->stacks_by_entry[guess];
    uint32_t e = pg_get(c, off >> OHM_PAGE_SHIFT);
    if (ohm_unlikely(pg_stack_index(e) != guess)) {
        guess = pg_stack_index(e);
        tc->free_guess = guess;
        b = tc->stacks_by_entry[guess];
    }
    if (ohm_unlikely(!block_ok(b, off, e, p, key))) return free_slow(p, c->pool);
    uint64_t n = atomic_load_explicit(&b->n, memory_order_relaxed);
    if (ohm_unlikely(n >= b->cap)) return free_full(p, c);
    stack_push(b, n, p, key);
    return 0;
}

/* The chunk of tcache_chunk if p is in it: while the epoch read before its lookup holds, the chunk is alive and
 * exactly the memory [base, base + size) maps to it, so a range compare stands in for the address map. Besides
 * the map's instructions, it takes the map's two dependent loads (and the load of the chunk's base) off the path
 * from the pointer to the stack it is pushed on: the next allocation's pop waits for that push, so that path is
 * what a pair of calls costs. The cache comes with it, so the fast path needs no TLS compare of pools either. */
static inline chunk_t *chunk_remembered(const void *p)
{
    chunk_t *c = tcache_chunk.c;
    if (ohm_likely(atomic_u64_equals(&chunk_epoch.n, tcache_chunk.epoch)) &&
        ohm_likely((uintptr_t)p - c->base < c->size))
        return c;
    return NULL;
}

static OHM_COLD int free_foreign(ohm_pool *pool, chunk_t *c, void *p)
{
    int rc = pool_check(pool);
    if (rc) return rc;
    return bad_pointer(pool, p, c ? "it belongs to another pool" : "it is in no pool's memory");
}

static OHM_COLD int free_nowhere(void *p)
{
    return ohm__error(OHM_EINVAL, "%p is not a live block of any pool (it is in no pool's memory)", p);
}

/* A block of another arena than this thread's cache's goes back to that arena (through the cache's outbox, in
 * chains), never onto this thread's stack: the thread would reuse it next, beside blocks that the arena's own
 * threads use, and the cache line they share would bounce between the cores (false sharing). The thread's own
 * allocations stay in its own arena's slabs. */
static OHM_NOINLINE int free_remote(ohm_pool *pool, tcache_t *tc, chunk_t *c, void *p)
{
    uint32_t e;
    tstack_t *b = block_stack(tc, c, p, block_key(p), &e);
    if (ohm_unlikely(!b)) return free_slow(p, pool);
    unsigned cls = pg_cls(e);
    poison_on_free(&pool->cfg, p, sc_size(cls));
    return free_to_other_arena(tc, c->arena, p, cls);
}

/* A validated block of class cls of arena a, not cache tc's arena: back to a, through the outbox when the class is
 * cached. Its free counts on a, where its allocation was counted. */
static int free_to_other_arena(tcache_t *tc, arena_t *a, void *p, unsigned cls)
{
    if (!tc->stacks[cls]->cap) {
        int rc = arena_free_one(a, p);
        if (rc == 0) atomic_fetch_add_explicit(&a->other_frees[cls], 1, memory_order_relaxed);
        return rc;
    }
    tcache_free_remote(tc, a, cls, p);
    return 0;
}

/* A free whose pointer is not in the remembered chunk: NULL, another chunk (then remembered: of this thread's
 * arena in tcache_chunk, of another in tcache_remote), a huge block, or no pool's memory. any: ohm_free, which
 * takes a block of any pool. */
static OHM_NOINLINE int free_lookup(void *p, ohm_pool *pool, bool any)
{
    if (ohm_unlikely(!p)) return 0;
    uint64_t epoch = atomic_load_explicit(&chunk_epoch.n, memory_order_acquire); /* before the lookup */
    /* The other arena's chunk last freed into, alive and exactly [base, base + size) while the epoch holds (see
     * chunk_remembered); else the address map. */
    chunk_t *c = tcache_remote.c;
    bool remembered = tcache_remote.epoch == epoch && (uintptr_t)p - c->base < c->size;
    if (!remembered) c = chunk_of(p);
    if (any && c) pool = c->pool;
    if (ohm_unlikely(!c)) return any ? free_nowhere(p) : free_foreign(pool, c, p);
    if (ohm_unlikely(c->pool != pool)) return free_foreign(pool, c, p);
    if (c->kind != CHUNK_ARENA) return free_slow(p, pool);
    tcache_t *tc = tcache_last.pool_id == pool->id ? tcache_last.tc : tcache_get_or_create(pool);
    if (!tc) return free_slow(p, pool);
    if (c->arena != tc->arena) {
        if (!remembered) tcache_remote = (tcache_other){c, epoch};
        return free_remote(pool, tc, c, p);
    }
    /* only chunks of this thread's own arena: the fast path need not ask */
    tcache_chunk = (tcache_memo){c, epoch, tc, ohm__key_secret};
    return free_push(tc, c, p, block_key(p));
}

int ohm_pool_free(ohm_pool *pool, void *p)
{
    chunk_t *c = chunk_remembered(p);
    if (ohm_unlikely(c == NULL) || ohm_unlikely(c->pool != pool)) return free_lookup(p, pool, false);
    return free_push(tcache_chunk.tc, c, p, tcache_chunk.key_secret ^ (uintptr_t)p);
}

int ohm_free(void *p)
{
    chunk_t *c = chunk_remembered(p);
    if (ohm_unlikely(c == NULL)) return free_lookup(p, NULL, true);
    return free_push(tcache_chunk.tc, c, p, tcache_chunk.key_secret ^ (uintptr_t)p);
}

size_t ohm_usable_size(const void *p)
{
    chunk_t *c;
    unsigned cls;
    if (!p || pool_check_block(NULL, (void *)p, &c, &cls) != 0) return 0;
    return c->kind == CHUNK_HUGE ? c->usable : sc_size(cls);
}

/* ---- flushing and trimming ---- */

int ohm_pool_flush_thread_cache(ohm_pool *pool)
{
    int rc = pool_check(pool);
    if (rc) return rc;
    tcache_t *tc = tcache_find(pool);
    if (tc) tcache_flush(tc);
    return 0;
}

int ohm_pool_trim(ohm_pool *pool)
{
    int rc = ohm_pool_flush_thread_cache(pool);
    if (rc) return rc;
    tcache_t *mine = tcache_find(pool);
    pool_list_lock();
    for (tcache_t *tc = pool->tcaches; tc; tc = tc->pnext)
        if (tc != mine) tcache_request_flush(tc);
    if (purge_wanted(&pool->cfg)) purge_start(); /* after a fork */
    pool_list_unlock();
    release_free_chunks(pool);
    return 0;
}

/* ---- fork (lifecycle.c calls these, in its global lock order) ----
 * In the child, other threads' caches stay listed (their blocks are lost to the child, as in every thread-caching
 * allocator) and the purger, which does not exist there, is restarted on the next pool creation or trim. */

static void for_each_pool_lock(int lock)
{
    for (ohm_pool *p = pools; p; p = p->next) {
        for (unsigned i = 0; i < p->narenas; i++) {
            if (lock) pthread_mutex_lock(&p->arenas[i].lock);
            else pthread_mutex_unlock(&p->arenas[i].lock);
        }
        if (lock) pthread_mutex_lock(&p->huge_lock);
        else pthread_mutex_unlock(&p->huge_lock);
    }
}

void pool_prefork(void)
{
    pthread_mutex_lock(&default_lock);
    pool_list_lock();
    for_each_pool_lock(1);
}

void pool_postfork_parent(void)
{
    for_each_pool_lock(0);
    pool_list_unlock();
    pthread_mutex_unlock(&default_lock);
}

void pool_postfork_child(void)
{
    for_each_pool_lock(0);
    purge_postfork_child();
    pool_list_unlock();
    pthread_mutex_unlock(&default_lock);
}
