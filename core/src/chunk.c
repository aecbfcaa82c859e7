/* Chunks and the address map (see chunk.h). */
#include "chunk.h"

#include "os.h"
#include "pool.h"

#include <pthread.h>
#include <string.h>

static _Atomic(chunk_t *) radix_empty_leaf[1u << RADIX_L2_BITS];
/* Statically initialized (a GNU range initializer), so lookups work before any constructor has run. */
_Atomic(_Atomic(chunk_t *) *) radix_root[1u << RADIX_L1_BITS] = {[0 ...(1u << RADIX_L1_BITS) - 1] = radix_empty_leaf};
static pthread_mutex_t radix_grow_lock = PTHREAD_MUTEX_INITIALIZER;

/* Leaves are created on demand and never freed: 128 KiB each, one per 16 GiB of address space in use. */
static _Atomic(chunk_t *) *radix_leaf(uintptr_t key)
{
    _Atomic(_Atomic(chunk_t *) *) *slot = &radix_root[key >> RADIX_L2_BITS];
    _Atomic(chunk_t *) *leaf = atomic_load_explicit(slot, memory_order_acquire);
    if (leaf != radix_empty_leaf) return leaf;
    pthread_mutex_lock(&radix_grow_lock);
    leaf = atomic_load_explicit(slot, memory_order_relaxed);
    if (leaf == radix_empty_leaf) {
        leaf = os_meta_alloc(sizeof(*leaf) << RADIX_L2_BITS);
        if (leaf) atomic_store_explicit(slot, leaf, memory_order_release);
    }
    pthread_mutex_unlock(&radix_grow_lock);
    return leaf;
}

void chunk_fork_lock(int lock)
{
    if (lock) pthread_mutex_lock(&radix_grow_lock);
    else pthread_mutex_unlock(&radix_grow_lock);
}

int addr_map_set(uintptr_t base, size_t size, chunk_t *c)
{
    /* chunk.h: chunks and huge mappings are whole granules, so no granule is ever shared */
    ohm_assert(((base | size) & (((uintptr_t)1 << RADIX_GRANULE_SHIFT) - 1)) == 0 && size &&
               "chunk_register: whole 1 MiB granules");
    uintptr_t first = base >> RADIX_GRANULE_SHIFT, last = (base + size - 1) >> RADIX_GRANULE_SHIFT;
    if (last >> (RADIX_L1_BITS + RADIX_L2_BITS))
        return ohm__error(OHM_ENOMEM, "address %p is above the 47-bit range ohm supports", (void *)base);
    /* Make every leaf first, so registration either covers the whole range or changes nothing. */
    for (uintptr_t k = first; k <= last; k++)
        if (!radix_leaf(k)) return ohm_last_error_code();
    for (uintptr_t k = first; k <= last; k++)
        atomic_store_explicit(&radix_leaf(k)[k & ((1u << RADIX_L2_BITS) - 1)], c, memory_order_release);
    return 0;
}

/* Chunk records do not start on a page boundary: the first block of a slab does, and the free path stores into
 * a block (its key) just before it loads the record's fields on the next free. With both at page offset 0 the
 * CPU's 4 KiB store-to-load alias check stalls every such load (pair-64 measured 24 ns instead of 13.5). At
 * this offset the hot fields (base, pool, kind) sit 8 bytes off any 16-byte block boundary, where the block
 * stores of the fast paths (word 0) never land. */
#define CHUNK_RECORD_OFFSET 0x7c8

static chunk_t *chunk_record_alloc(size_t size)
{
    char *meta = os_meta_alloc(CHUNK_RECORD_OFFSET + size);
    if (!meta) return NULL;
    chunk_t *c = (chunk_t *)(meta + CHUNK_RECORD_OFFSET);
    c->meta_size = CHUNK_RECORD_OFFSET + size;
    return c;
}

static void chunk_record_free(chunk_t *c)
{
    if (c) os_meta_free((char *)c - CHUNK_RECORD_OFFSET, c->meta_size);
}

/* Metadata of an arena chunk: the chunk record, then page entries, then run records, which start on a cache
 * line (absolute, not relative to the offset record) so that a record's hot fields share one line, then the
 * dirty map. All of it starts zero (fresh pages): no run, nothing dirty. */
static chunk_t *chunk_meta_new(unsigned npages)
{
    size_t size = sizeof(chunk_t) + npages * sizeof(uint32_t);
    size_t runs_off = ohm_align_up(CHUNK_RECORD_OFFSET + size, 64) - CHUNK_RECORD_OFFSET;
    size_t dirty_off = runs_off + npages * sizeof(run_t);
    size = dirty_off + (npages + 63) / 64 * sizeof(uint64_t);
    chunk_t *c = chunk_record_alloc(size);
    if (!c) return NULL;
    c->npages = npages;
    c->runs = (run_t *)((char *)c + runs_off);
    c->dirty = (uint64_t *)((char *)c + dirty_off);
    ohm_assert((uintptr_t)c->runs % 64 == 0 && (uintptr_t)c->dirty % 8 == 0 &&
               "chunk metadata: run records start on a cache line, the dirty map on a word");
    return c;
}

/* Applies the pool's per-chunk options; fails only for mlock and the map hook, which the user asked for. */
static int chunk_prepare(struct ohm_pool *pool, chunk_t *c)
{
    const ohm_pool_config *cfg = &pool->cfg;
    void *p = (void *)c->base;
    if (cfg->huge_pages == OHM_HUGE_THP && !c->hugetlb && os_advise_hugepage(p, c->size) != 0)
        ohm__log(OHM_LOG_DEBUG, "pool '%s': %s", pool->name, ohm_last_error());
    if (cfg->mergeable && os_advise_mergeable(p, c->size) != 0)
        ohm__log(OHM_LOG_DEBUG, "pool '%s': %s", pool->name, ohm_last_error());
    if (cfg->lock_memory) {
        int rc = os_lock(p, c->size);
        if (rc) return rc;
    }
    if (cfg->chunk_map) {
        if (cfg->chunk_map(cfg->hook_arg, p, c->size) != 0) {
            if (cfg->lock_memory) os_unlock(p, c->size);
            return ohm__error(OHM_ECALLBACK, "pool '%s': the chunk map hook refused chunk %p (%zu bytes)",
                              pool->name, p, c->size);
        }
        c->hooked = 1;
    }
    c->pinned = cfg->lock_memory || c->hooked || c->hugetlb;
    return 0;
}

/* ---- the cap ---- */

static OHM_TLS int cap_refused;

int chunk_cap_refused(void)
{
    int r = cap_refused;
    if (r) cap_refused = 0;
    return r;
}

/* Counts bytes against the pool's mapped bytes; OHM_ENOMEM with a message past max_mapped. */
static int reserve(struct ohm_pool *pool, size_t bytes)
{
    uint64_t cap = pool->cfg.max_mapped;
    uint64_t now = atomic_fetch_add(&pool->mapped, bytes) + bytes;
    if (!cap || now <= cap) return 0;
    atomic_fetch_sub(&pool->mapped, bytes);
    cap_refused = 1;
    return ohm__error(OHM_ENOMEM, "pool '%s': mapping %zu more bytes would exceed max_mapped %llu (mapped %llu)",
                      pool->name, bytes, (unsigned long long)cap, (unsigned long long)(now - bytes));
}

static void unreserve(struct ohm_pool *pool, size_t bytes) { atomic_fetch_sub(&pool->mapped, bytes); }

/* ---- creation ---- */

chunk_t *chunk_create(struct ohm_pool *pool, struct arena *arena)
{
    size_t size = pool->chunk_size;
    if (reserve(pool, size) != 0) return NULL;
    chunk_t *c = chunk_meta_new(pool->chunk_pages);
    void *p = NULL;
    int huge = 0, rc = c ? 0 : OHM_ENOMEM;
    if (!rc) rc = os_map(size, size, pool->cfg.huge_pages == OHM_HUGE_HUGETLB ? OS_MAP_HUGETLB : 0, &p, &huge);
    if (!rc) {
        c->base = (uintptr_t)p;
        c->size = size;
        c->pool = pool;
        c->arena = arena;
        c->kind = CHUNK_ARENA;
        c->hugetlb = (uint8_t)huge;
        rc = chunk_prepare(pool, c);
        if (rc) {
            os_unmap(p, size);
            p = NULL;
        }
    }
    ohm_assert((rc || (c->base & (size - 1)) == 0) && "chunk_create: an arena chunk is aligned to its size");
    if (!rc) rc = addr_map_set(c->base, size, c);
    if (rc) {
        int code = ohm_last_error_code();
        char msg[512];
        strncpy(msg, ohm_last_error(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        if (p) {
            c->pool = pool;
            chunk_destroy(c); /* runs the unmap hook and returns the reservation */
        } else {
            chunk_record_free(c);
            unreserve(pool, size);
        }
        ohm__error(code ? code : OHM_ENOMEM, "%s", msg);
        atomic_fetch_add_explicit(&pool->failed_allocs, 1, memory_order_relaxed);
        return NULL;
    }
    return c;
}

chunk_t *chunk_create_huge(struct ohm_pool *pool, size_t size, size_t align)
{
    size_t granule = (size_t)1 << RADIX_GRANULE_SHIFT;
    size_t usable = ohm_align_up(size, OHM_PAGE);
    size_t mapped = ohm_align_up(usable, granule);
    if (usable < size || mapped < usable) {
        ohm__error(OHM_EINVAL, "size %zu is too large", size);
        return NULL;
    }
    if (align < granule) align = granule;
    if (reserve(pool, mapped) != 0) return NULL;
    chunk_t *c = chunk_record_alloc(sizeof *c);
    void *p = NULL;
    int huge = 0, rc = c ? 0 : OHM_ENOMEM;
    if (!rc) rc = os_map(mapped, align, pool->cfg.huge_pages == OHM_HUGE_HUGETLB ? OS_MAP_HUGETLB : 0, &p, &huge);
    if (!rc) {
        c->base = (uintptr_t)p;
        c->size = mapped;
        c->usable = usable;
        c->pool = pool;
        c->kind = CHUNK_HUGE;
        c->hugetlb = (uint8_t)huge;
        rc = chunk_prepare(pool, c);
        if (rc) {
            os_unmap(p, mapped);
            p = NULL;
        }
    }
    ohm_assert((rc || ((c->base & (align - 1)) == 0 && c->size >= c->usable && c->usable >= size)) &&
               "chunk_create_huge: aligned, and the mapping covers the usable bytes, which cover the request");
    if (!rc) rc = addr_map_set(c->base, mapped, c);
    if (rc) {
        if (p) {
            chunk_destroy(c);
        } else {
            chunk_record_free(c);
            unreserve(pool, mapped);
        }
        atomic_fetch_add_explicit(&pool->failed_allocs, 1, memory_order_relaxed);
        return NULL;
    }
    return c;
}

void chunk_destroy(chunk_t *c)
{
    struct ohm_pool *pool = c->pool;
    void *p = (void *)c->base;
    addr_map_set(c->base, c->size, NULL);
    if (c->hooked && pool->cfg.chunk_unmap) pool->cfg.chunk_unmap(pool->cfg.hook_arg, p, c->size);
    if (pool->cfg.lock_memory) os_unlock(p, c->size);
    if (os_unmap(p, c->size) != 0) ohm__log(OHM_LOG_ERROR, "pool '%s': %s", pool->name, ohm_last_error());
    unreserve(pool, c->size);
    chunk_record_free(c);
}
