/* Introspection: reverse lookup, the walk over live blocks, and stats.
 *
 * A block is live when its slab bit (or its run) says allocated and its first word is not the free-block key:
 * blocks sitting in a thread cache or on a remote chain carry the key (see pool.h). Reading that word races
 * with a user writing a live block on another thread, so walks and lookups are exact only while the pool is
 * quiet, which is how diagnostics use them. */
#include "pool.h"

#include <string.h>

static void fill_info(ohm_block_info *info, chunk_t *c, void *base, size_t size, unsigned cls, ohm_block_kind kind,
                      int live)
{
    info->base = base;
    info->size = size;
    info->size_class = cls;
    info->kind = kind;
    info->pool = c->pool;
    info->arena = c->arena ? c->arena->index : 0;
    info->live = live;
}

static int block_is_cached(const void *p) { return block_word0(p) == block_key(p); }

/* Describes the block of an arena chunk containing addr. Arena lock held. */
static int lookup_in_chunk(chunk_t *c, const void *addr, ohm_block_info *info)
{
    size_t page = chunk_page_of(c, addr);
    uint32_t e = pg_get(c, page);
    size_t h = pg_head(e);
    unsigned cls = pg_cls(e);
    char *run = chunk_page_addr(c, h);
    switch (pg_kind(e)) {
    case PG_SLAB: {
        const run_t *s = &c->runs[h];
        ohm_assert(s->state == RUN_SLAB && s->cls == cls && "lookup: a PG_SLAB entry names a slab of its class");
        size_t size = sc_size(cls), idx = (size_t)((const char *)addr - run) / size;
        if (idx >= sc_table[cls].slab_objs) return ohm__error(OHM_EINVAL, "%p is in the unused tail of a slab", addr);
        char *block = run + idx * size;
        int free_in_slab = run_slab_block_free(s, idx);
        fill_info(info, c, block, size, cls, OHM_BLOCK_SMALL, !free_in_slab && !block_is_cached(block));
        return 0;
    }
    case PG_RUN_TAIL:
        if (!pg_tail_live(c, page, e)) break; /* left behind by a freed large run: free pages */
        /* fall through */
    case PG_RUN: fill_info(info, c, run, sc_size(cls), cls, OHM_BLOCK_RUN, !block_is_cached(run)); return 0;
    default: break;
    }
    return ohm__error(OHM_EINVAL, "%p is in free pages of pool '%s'", addr, c->pool->name);
}

int ohm_lookup(const void *addr, ohm_block_info *info)
{
    if (!info) return ohm__error(OHM_EINVAL, "info must not be NULL");
    chunk_t *c = chunk_of(addr);
    if (!c) return ohm__error(OHM_EINVAL, "%p is not in any pool's memory", addr);
    if (c->kind == CHUNK_HUGE) {
        if ((uintptr_t)addr >= c->base + c->usable)
            return ohm__error(OHM_EINVAL, "%p is in the unused tail of a huge mapping", addr);
        fill_info(info, c, (void *)c->base, c->usable, SC_COUNT, OHM_BLOCK_HUGE, 1);
        return 0;
    }
    pthread_mutex_lock(&c->arena->lock);
    int rc = lookup_in_chunk(c, addr, info);
    pthread_mutex_unlock(&c->arena->lock);
    return rc;
}

/* Reports the live blocks of one chunk in address order. Arena lock held. */
static int walk_chunk(chunk_t *c, ohm_walk_fn *fn, void *arg)
{
    ohm_block_info info;
    for (size_t page = 0; page < c->npages;) {
        uint32_t e = pg_get(c, page);
        const run_t *r = &c->runs[page];
        unsigned cls = pg_cls(e);
        char *run = chunk_page_addr(c, page);
        if (pg_kind(e) == PG_SLAB) {
            size_t size = sc_size(cls);
            for (unsigned i = 0; i < sc_table[cls].slab_objs; i++) {
                char *block = run + i * size;
                if (run_slab_block_free(r, i) || block_is_cached(block)) continue;
                fill_info(&info, c, block, size, cls, OHM_BLOCK_SMALL, 1);
                int rc = fn(arg, &info);
                if (rc) return rc;
            }
        } else if (pg_kind(e) == PG_RUN && !block_is_cached(run)) {
            fill_info(&info, c, run, sc_size(cls), cls, OHM_BLOCK_RUN, 1);
            int rc = fn(arg, &info);
            if (rc) return rc;
        }
        ohm_assert(r->npages >= 1 && page + r->npages <= c->npages && "walk: a run record's length moves the walk on");
        page += r->npages;
    }
    return 0;
}

int ohm_pool_walk(ohm_pool *pool, ohm_walk_fn *fn, void *arg)
{
    if (!pool || !fn) return ohm__error(OHM_EINVAL, "pool and fn must not be NULL");
    for (unsigned i = 0; i < pool->narenas; i++) {
        arena_t *a = &pool->arenas[i];
        pthread_mutex_lock(&a->lock);
        ohm_debug_only(arena_check(a)); /* a walk is O(pages) already: check what it is about to trust */
        int rc = 0;
        for (chunk_t *c = a->chunks; c && !rc; c = c->next) rc = walk_chunk(c, fn, arg);
        pthread_mutex_unlock(&a->lock);
        if (rc) return rc;
    }
    ohm_block_info info;
    pthread_mutex_lock(&pool->huge_lock);
    int rc = 0;
    for (chunk_t *c = pool->huge; c && !rc; c = c->next) {
        fill_info(&info, c, (void *)c->base, c->usable, SC_COUNT, OHM_BLOCK_HUGE, 1);
        rc = fn(arg, &info);
    }
    pthread_mutex_unlock(&pool->huge_lock);
    return rc;
}

/* Sums the counters of the selected arenas (all for arena -1): those of the caches bound to them, the blocks of
 * theirs waiting in any cache's outbox, and what each arena keeps itself (frees by other arenas' threads, calls
 * without a cache, exited threads' totals). Every block's allocation and free count on its own arena, so each
 * arena's figures balance once caches are quiet. Pool-list lock taken here. */
static void sum_counters(ohm_pool *pool, int arena, uint64_t *allocs, uint64_t *hits, uint64_t *frees,
                         uint64_t *threads)
{
    const arena_t *only = arena >= 0 ? &pool->arenas[arena] : NULL;
    pool_list_lock();
    for (tcache_t *tc = pool->tcaches; tc; tc = tc->pnext) {
        tcache_add_outbox_frees(tc, only, frees);
        if (only && tc->arena != only) continue;
        ++*threads;
        for (unsigned c = 0; c < SC_COUNT; c++) {
            uint64_t a, h, f;
            tcache_class_totals(tc, c, &a, &h, &f);
            allocs[c] += a;
            hits[c] += h;
            frees[c] += f;
        }
    }
    for (unsigned i = 0; i < pool->narenas; i++) {
        arena_t *a = &pool->arenas[i];
        if (only && a != only) continue;
        for (unsigned c = 0; c < SC_COUNT; c++) {
            allocs[c] += a->retired_allocs[c] + atomic_load_explicit(&a->other_allocs[c], memory_order_relaxed);
            hits[c] += a->retired_hits[c];
            frees[c] += a->retired_frees[c] + atomic_load_explicit(&a->other_frees[c], memory_order_relaxed);
        }
    }
    pool_list_unlock();
}

static void add_arena(ohm_pool_stats *out, arena_t *a, size_t chunk_size)
{
    pthread_mutex_lock(&a->lock);
    uint64_t free_pages = 0;
    for (chunk_t *c = a->chunks; c; c = c->next) free_pages += c->free_pages;
    out->chunks += a->nchunks;
    out->mapped_bytes += a->nchunks * chunk_size;
    out->resident_bytes += a->nchunks * chunk_size - (free_pages - a->dirty_pages) * OHM_PAGE;
    out->dirty_bytes += (a->dirty_pages + a->empty_pages) * OHM_PAGE; /* empty slabs wait for purging too */
    out->purged_bytes += a->purged_pages * OHM_PAGE;
    out->chunks_mapped += a->chunks_mapped;
    out->chunks_unmapped += a->chunks_unmapped;
    pthread_mutex_unlock(&a->lock);
}

int ohm_pool_stats_get(ohm_pool *pool, int arena, ohm_pool_stats *out)
{
    if (!pool || !out) return ohm__error(OHM_EINVAL, "pool and out must not be NULL");
    if (arena < -1 || arena >= (int)pool->narenas)
        return ohm__error(OHM_EINVAL, "arena %d is out of range (-1 .. %u)", arena, pool->narenas - 1);
    uint64_t allocs[SC_COUNT] = {0}, hits[SC_COUNT] = {0}, frees[SC_COUNT] = {0};
    memset(out, 0, sizeof *out);
    sum_counters(pool, arena, allocs, hits, frees, &out->threads);
    out->arenas = pool->narenas;
    out->nclasses = pool->nclasses;
    for (unsigned c = 0; c < pool->nclasses; c++) {
        ohm_class_stats *cs = &out->classes[c];
        cs->size = sc_size(c);
        cs->allocs = allocs[c];
        cs->frees = frees[c];
        cs->cache_hits = hits[c];
        cs->active_blocks = cs->allocs - cs->frees;
        cs->active_bytes = cs->active_blocks * cs->size;
        out->allocs += cs->allocs;
        out->frees += cs->frees;
        out->cache_hits += cs->cache_hits;
        out->active_blocks += cs->active_blocks;
        out->active_bytes += cs->active_bytes;
    }
    for (unsigned i = 0; i < pool->narenas; i++)
        if (arena < 0 || (unsigned)arena == i) add_arena(out, &pool->arenas[i], pool->space.chunk_size);
    if (arena < 0) {
        pthread_mutex_lock(&pool->huge_lock);
        uint64_t huge_mapped = 0;
        for (chunk_t *c = pool->huge; c; c = c->next) huge_mapped += c->size;
        out->huge_blocks = pool->huge_blocks;
        out->huge_bytes = pool->huge_bytes;
        out->allocs += pool->huge_allocs;
        out->frees += pool->huge_frees;
        out->active_blocks += pool->huge_blocks;
        out->active_bytes += pool->huge_bytes;
        pthread_mutex_unlock(&pool->huge_lock);
        out->mapped_bytes += huge_mapped;
        out->resident_bytes += huge_mapped;
        out->failed_allocs = atomic_load_explicit(&pool->space.failed_allocs, memory_order_relaxed);
        out->poison_violations = atomic_load_explicit(&pool->poison_violations, memory_order_relaxed);
    }
    return 0;
}
