/* Chunks and the address map (see chunk.h). */
#include "chunk.h"

#include "os.h"

#include <pthread.h>
#include <string.h>

static _Atomic(chunk_t *) radix_empty_leaf[1u << RADIX_L2_BITS];
/* Statically initialized (a GNU range initializer), so lookups work before any constructor has run. */
_Atomic(_Atomic(chunk_t *) *) radix_root[1u << RADIX_L1_BITS] = {[0 ...(1u << RADIX_L1_BITS) - 1] = radix_empty_leaf};
static pthread_mutex_t radix_grow_lock = PTHREAD_MUTEX_INITIALIZER;
struct chunk_epoch chunk_epoch = {1, {0}};

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

void chunk_fork_lock(bool lock)
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

/* Applies the space's per-chunk options; fails only for mlock and the map hook, which the user asked for. */
static int chunk_prepare(const chunk_space *space, chunk_t *c)
{
    const ohm_pool_config *cfg = space->cfg;
    void *p = (void *)c->base;
    if (cfg->huge_pages == OHM_HUGE_THP && !c->hugetlb && os_advise_hugepage(p, c->size) != 0)
        ohm__log(OHM_LOG_DEBUG, "pool '%s': %s", cfg->name, ohm_last_error());
    if (cfg->mergeable && os_advise_mergeable(p, c->size) != 0)
        ohm__log(OHM_LOG_DEBUG, "pool '%s': %s", cfg->name, ohm_last_error());
    if (cfg->lock_memory) {
        int rc = os_lock(p, c->size);
        if (rc) return rc;
    }
    if (cfg->chunk_map) {
        if (cfg->chunk_map(cfg->hook_arg, p, c->size) != 0) {
            if (cfg->lock_memory) os_unlock(p, c->size);
            return ohm__error(OHM_ECALLBACK, "pool '%s': the chunk map hook refused chunk %p (%zu bytes)", cfg->name, p,
                              c->size);
        }
        c->hooked = 1;
    }
    c->pinned = cfg->lock_memory || c->hooked || c->hugetlb;
    return 0;
}

/* ---- the cap ---- */

static OHM_TLS bool cap_refused;

bool chunk_cap_refused(void)
{
    bool r = cap_refused;
    if (r) cap_refused = false;
    return r;
}

/* Counts bytes against the space's mapped bytes; OHM_ENOMEM with a message past max_mapped. */
static int reserve(chunk_space *space, size_t bytes)
{
    uint64_t cap = space->cfg->max_mapped;
    uint64_t now = atomic_fetch_add(&space->mapped, bytes) + bytes;
    if (!cap || now <= cap) return 0;
    atomic_fetch_sub(&space->mapped, bytes);
    cap_refused = true;
    return ohm__error(OHM_ENOMEM, "pool '%s': mapping %zu more bytes would exceed max_mapped %llu (mapped %llu)",
                      space->cfg->name, bytes, (unsigned long long)cap, (unsigned long long)(now - bytes));
}

static void unreserve(chunk_space *space, size_t bytes) { atomic_fetch_sub(&space->mapped, bytes); }

/* ---- creation ---- */

/* Maps size bytes aligned to align for the record c (NULL: out of memory) and applies the space's options.
 * 0 with c->base set, or the error, with nothing left mapped. */
static int chunk_map_record(chunk_space *space, chunk_t *c, size_t size, size_t align)
{
    if (!c) return OHM_ENOMEM;
    void *p = NULL;
    int huge = 0;
    int rc = os_map(size, align, space->cfg->huge_pages == OHM_HUGE_HUGETLB ? OS_MAP_HUGETLB : 0, &p, &huge);
    if (rc) return rc;
    c->base = (uintptr_t)p;
    c->size = size;
    c->pool = space->owner;
    c->hugetlb = (uint8_t)huge;
    rc = chunk_prepare(space, c);
    if (rc) {
        os_unmap(p, size);
        c->base = 0;
    }
    return rc;
}

/* Undoes a creation that failed after the reservation of size bytes: a mapped chunk is destroyed (which runs
 * the unmap hook and returns the reservation), else the record is freed and the reservation returned. */
static void chunk_create_failed(chunk_space *space, chunk_t *c, size_t size)
{
    if (c && c->base) {
        chunk_destroy(space, c);
    } else {
        chunk_record_free(c);
        unreserve(space, size);
    }
    atomic_fetch_add_explicit(&space->failed_allocs, 1, memory_order_relaxed);
}

chunk_t *chunk_create(chunk_space *space, struct arena *arena)
{
    size_t size = space->chunk_size;
    if (reserve(space, size) != 0) return NULL;
    chunk_t *c = chunk_meta_new(space->chunk_pages);
    int rc = chunk_map_record(space, c, size, size);
    if (!rc) {
        c->arena = arena;
        c->kind = CHUNK_ARENA;
    }
    ohm_assert((rc || (c->base & (size - 1)) == 0) && "chunk_create: an arena chunk is aligned to its size");
    if (!rc) rc = addr_map_set(c->base, size, c);
    if (rc) {
        /* The unmap hook may overwrite the error: keep the one that explains the failure. */
        int code = ohm_last_error_code();
        char msg[512];
        strncpy(msg, ohm_last_error(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        chunk_create_failed(space, c, size);
        ohm__error(code ? code : OHM_ENOMEM, "%s", msg);
        return NULL;
    }
    return c;
}

chunk_t *chunk_create_huge(chunk_space *space, size_t size, size_t align)
{
    size_t granule = (size_t)1 << RADIX_GRANULE_SHIFT;
    size_t usable = ohm_align_up(size, OHM_PAGE);
    size_t mapped = ohm_align_up(usable, granule);
    if (usable < size || mapped < usable) {
        ohm__error(OHM_EINVAL, "size %zu is too large", size);
        return NULL;
    }
    if (align < granule) align = granule;
    if (reserve(space, mapped) != 0) return NULL;
    chunk_t *c = chunk_record_alloc(sizeof *c);
    int rc = chunk_map_record(space, c, mapped, align);
    if (!rc) {
        c->usable = usable;
        c->kind = CHUNK_HUGE;
    }
    ohm_assert((rc || ((c->base & (align - 1)) == 0 && c->size >= c->usable && c->usable >= size)) &&
               "chunk_create_huge: aligned, and the mapping covers the usable bytes, which cover the request");
    if (!rc) rc = addr_map_set(c->base, mapped, c);
    if (rc) {
        chunk_create_failed(space, c, mapped);
        return NULL;
    }
    return c;
}

void chunk_destroy(chunk_space *space, chunk_t *c)
{
    const ohm_pool_config *cfg = space->cfg;
    void *p = (void *)c->base;
    addr_map_set(c->base, c->size, NULL);
    /* After the unregistering (seq_cst: a thread that reads the new epoch then finds no chunk here) and before
     * the record is freed. Huge records are never remembered, so their end needs no bump. */
    if (c->kind == CHUNK_ARENA) atomic_fetch_add(&chunk_epoch.n, 1);
    if (c->hooked && cfg->chunk_unmap) cfg->chunk_unmap(cfg->hook_arg, p, c->size);
    if (cfg->lock_memory) os_unlock(p, c->size);
    if (os_unmap(p, c->size) != 0) ohm__log(OHM_LOG_ERROR, "pool '%s': %s", cfg->name, ohm_last_error());
    unreserve(space, c->size);
    chunk_record_free(c);
}
