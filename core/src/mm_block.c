/* The memory manager's block store (Spark's MemoryStore): cached blocks by id in a hash table, kept in least
 * recently used order, pinned while the host reads them, and evicted to make room for storage or execution
 * memory. Eviction is three steps -- choose under the lock, call the hosts' evict callbacks without it, commit
 * under it again -- because a callback may call back into the manager (see the lock order in mm_internal.h). */
#define _GNU_SOURCE
#include "mm_internal.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* ---- a block's own memory ---- */

static void block_free(block *b)
{
    free(b->id);
    free(b->group);
    free(b);
}

/* Gives back the block's reference, unless the host has reclaimed that buffer since (its handle may already be
 * another buffer's): a stale handle is never released. Called without mm->lock. */
static void block_release_buf(block *b)
{
    if (b->buf && ohm_buf_id(b->buf) == b->buf_id) ohm_buf_release(b->buf, 1);
}

/* ---- the table and the LRU list (mm->lock) ---- */

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

block *block_find(const ohm_mm *mm, const char *id)
{
    for (block *b = mm->buckets[hash_str(id) & (mm->nbuckets - 1)]; b; b = b->hnext)
        if (!strcmp(b->id, id)) return b;
    return NULL;
}

static void lru_unlink(ohm_mm *mm, block *b)
{
    if (b->lru_prev) b->lru_prev->lru_next = b->lru_next;
    else mm->lru_head = b->lru_next;
    if (b->lru_next) b->lru_next->lru_prev = b->lru_prev;
    else mm->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = NULL;
}

static void lru_append(ohm_mm *mm, block *b)
{
    b->lru_prev = mm->lru_tail;
    b->lru_next = NULL;
    if (mm->lru_tail) mm->lru_tail->lru_next = b;
    else mm->lru_head = b;
    mm->lru_tail = b;
}

/* Doubling the table is best effort: a failed calloc leaves longer chains, never an error. */
static void table_grow(ohm_mm *mm)
{
    size_t n = mm->nbuckets * 2;
    block **nb = calloc(n, sizeof *nb);
    if (!nb) return;
    for (size_t i = 0; i < mm->nbuckets; i++)
        for (block *b = mm->buckets[i], *next; b; b = next) {
            next = b->hnext;
            size_t h = hash_str(b->id) & (n - 1);
            b->hnext = nb[h];
            nb[h] = b;
        }
    free(mm->buckets);
    mm->buckets = nb;
    mm->nbuckets = n;
}

static void block_insert(ohm_mm *mm, block *b)
{
    if (mm->nblocks >= mm->nbuckets) table_grow(mm);
    size_t h = hash_str(b->id) & (mm->nbuckets - 1);
    b->hnext = mm->buckets[h];
    mm->buckets[h] = b;
    lru_append(mm, b);
    mm->nblocks++;
    mm->block_bytes += b->size;
}

static void block_unlink(ohm_mm *mm, block *b)
{
    block **pp = &mm->buckets[hash_str(b->id) & (mm->nbuckets - 1)];
    while (*pp != b) pp = &(*pp)->hnext;
    *pp = b->hnext;
    lru_unlink(mm, b);
    mm->nblocks--;
    mm->block_bytes -= b->size;
}

/* ---- the store's life (called by ohm_mm_create and ohm_mm_destroy) ---- */

int block_store_init(ohm_mm *mm)
{
    mm->nbuckets = 64;
    mm->buckets = calloc(mm->nbuckets, sizeof *mm->buckets);
    return !mm->buckets;
}

bool block_store_busy(const ohm_mm *mm)
{
    int busy = 0;
    for (const block *b = mm->lru_head; b; b = b->lru_next) busy |= b->pins || b->evicting;
    return busy;
}

void block_store_destroy(ohm_mm *mm)
{
    for (block *b = mm->lru_head, *n; b; b = n) {
        n = b->lru_next;
        block_release_buf(b);
        block_free(b);
    }
    free(mm->buckets);
}

/* ---- eviction (MemoryStore.evictBlocksToFreeSpace) ---- */

static bool same_group(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* Step 1, under the lock: the least recently used blocks of mode that are not pinned, not being evicted and not
 * of `group`, oldest first, until they add up to `space`. All or nothing: *sel is NULL and *n 0 when all such
 * blocks together free less. 0, or OHM_ENOMEM. */
static int evict_choose(const ohm_mm *mm, int mode, const char *group, uint64_t space, block ***sel, size_t *n)
{
    size_t k = 0, cap = 0;
    uint64_t sum = 0;
    block **s = NULL;
    *sel = NULL;
    *n = 0;
    for (block *b = mm->lru_head; b && sum < space; b = b->lru_next) {
        if ((int)b->mode != mode || b->pins || b->evicting || same_group(b->group, group)) continue;
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 8;
            block **ns = realloc(s, nc * sizeof *ns);
            if (!ns) {
                free(s);
                return ohm__error(OHM_ENOMEM, "out of memory choosing blocks to evict");
            }
            s = ns;
            cap = nc;
        }
        s[k++] = b;
        sum += b->size;
    }
    if (sum < space) {
        free(s);
        return 0;
    }
    *sel = s;
    *n = k;
    return 0;
}

/* Step 2, without the lock: each chosen block's evict callback in order, then its buffer reference given back.
 * Stops at the first failing callback: *done says how many blocks were evicted; the failing one and the rest
 * stay cached. 0 or that callback's error (set as this thread's error). */
static int evict_call_out(block **sel, size_t n, size_t *done)
{
    int rc = 0;
    size_t i = 0;
    for (; i < n; i++) {
        block *b = sel[i];
        if (b->evict) {
            /* NULL when the host reclaimed the buffer meanwhile: its handle may be another buffer's now. */
            ohm__error_clear();
            int cb = b->evict(b->arg, b->id, b->buf && ohm_buf_id(b->buf) == b->buf_id ? b->buf : NULL);
            if (cb) {
                rc = callback_code(cb);
                break;
            }
        }
        block_release_buf(b);
    }
    *done = i;
    if (rc) {
        ohm__log(OHM_LOG_WARN, "eviction of block %s failed (%d); %zu of %zu blocks were evicted", sel[i]->id, rc, i,
                 n);
        callback_failed(rc, "eviction of block", sel[i]->id);
    }
    return rc;
}

/* Step 3, under the lock again: the first `done` chosen blocks leave the store, the rest lose their mark, and
 * their bytes and `reserve` are storage the caller may take. Returns the bytes evicted. */
static uint64_t evict_commit(ohm_mm *mm, ohm_task *t, int mode, block **sel, size_t n, size_t done, uint64_t reserve)
{
    struct mode_state *s = &mm->m[mode];
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        block *b = sel[i];
        b->evicting = false;
        if (i < done) {
            bytes += b->size;
            block_unlink(mm, b);
            block_free(b);
        }
    }
    s->sto_used -= reserve + bytes;
    ohm_debug_only(s->reserved -= reserve;)
    mm->evictions += done;
    mm->evicted_bytes += bytes;
    if (t) t->evictions += done;
    wake_waiters(mm);
    return bytes;
}

/* Frees at least `space` bytes of mode's storage by evicting least recently used blocks of that mode that are
 * not pinned, not being evicted and not of `group` -- all or nothing: if those blocks cannot free `space`, none
 * is evicted and *freed is 0. Called and returns with mm->lock held, dropping it around the callbacks; `reserve`
 * bytes of free storage are kept for the caller meanwhile. On return the evicted bytes and `reserve` are free
 * storage again, for the caller to take under the same hold of the lock. Returns 0 or the first failing
 * callback's error (blocks evicted before it stay evicted; the failing one and the rest stay cached). */
int evict_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t space, uint64_t reserve,
                 uint64_t *freed)
{
    struct mode_state *s = &mm->m[mode];
    block **sel;
    size_t n, done;
    *freed = 0;
    int rc = evict_choose(mm, mode, group, space, &sel, &n);
    if (rc || !sel) return rc;
    /* The marks that hold what the lock cannot while it is dropped (mm_internal.h). */
    for (size_t i = 0; i < n; i++) sel[i]->evicting = true;
    s->sto_used += reserve;
    ohm_debug_only(s->reserved += reserve;)
    mm_unlock(mm);
    rc = evict_call_out(sel, n, &done);
    mm_lock(mm);
    *freed = evict_commit(mm, t, mode, sel, n, done, reserve);
    free(sel);
    return rc;
}

/* ---- the block API ---- */

/* A new block record (id and group copied) holding a reference on buf. 0, or an error with nothing held. */
static int block_new(const char *block_id, const char *group, ohm_mem_mode mode, ohm_buf *buf, uint64_t size,
                     ohm_evict_fn *evict, void *arg, block **out)
{
    block *b = calloc(1, sizeof *b);
    if (b) {
        b->id = strdup(block_id);
        b->group = group ? strdup(group) : NULL;
    }
    if (!b || !b->id || (group && !b->group)) {
        if (b) block_free(b);
        return ohm__error(OHM_ENOMEM, "block put: out of memory");
    }
    b->mode = mode;
    b->size = size;
    b->buf = buf;
    b->buf_id = ohm_buf_id(buf);
    b->evict = evict;
    b->arg = arg;
    int rc = buf ? ohm_buf_retain(buf, 1) : 0;
    if (rc) {
        block_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

/* Takes storage for b and caches it, unless its id is cached already. Lock held (dropped while evicting). */
static int block_put_locked(ohm_mm *mm, block *b)
{
    if (block_find(mm, b->id)) return ohm__error(OHM_EINVAL, "block put: %s is already cached", b->id);
    int rc = storage_acquire_locked(mm, NULL, b->mode, b->group, b->size, b->id);
    if (rc) return rc;
    if (block_find(mm, b->id)) { /* put by another thread while we evicted */
        mm->m[b->mode].sto_used -= b->size;
        return ohm__error(OHM_EINVAL, "block put: %s is already cached", b->id);
    }
    block_insert(mm, b);
    return 0;
}

int ohm_block_put(ohm_mm *mm, const char *block_id, const char *group, ohm_mem_mode mode, ohm_buf *buf, uint64_t size,
                  ohm_evict_fn *evict, void *arg)
{
    if (!mm || !block_id) return ohm__error(OHM_EINVAL, "block put: manager or block id is NULL");
    int rc = check_mode(mode, "block put");
    if (rc) return rc;
    if (buf) {
        if ((rc = buf_check_live(buf, "block put"))) return rc;
        if (!size) size = ohm_buf_size(buf);
    } else if (!size) {
        return ohm__error(OHM_EINVAL, "block put: %s has neither a buffer nor a size", block_id);
    }
    if ((rc = check_size(size, "block put"))) return rc;
    block *b = NULL;
    if ((rc = block_new(block_id, group, mode, buf, size, evict, arg, &b))) return rc;
    mm_lock(mm);
    rc = block_put_locked(mm, b);
    mm_unlock(mm);
    if (rc) {
        if (buf) ohm_buf_release(buf, 1);
        block_free(b);
    }
    return rc;
}

/* What ohm_block_pin, _unpin and _remove do to the block they found, under the manager's lock; 0 or an error. */
typedef int block_op_fn(ohm_mm *mm, block *b, void *arg);

/* Finds block_id under the manager's lock and applies fn to it; op names the call in the errors. */
static int block_op(ohm_mm *mm, const char *block_id, const char *op, block_op_fn *fn, void *arg)
{
    if (!mm || !block_id) return ohm__error(OHM_EINVAL, "block %s: manager or block id is NULL", op);
    mm_lock(mm);
    block *b = block_find(mm, block_id);
    int rc = b ? fn(mm, b, arg) : ohm__error(OHM_EINVAL, "block %s is not cached", block_id);
    mm_unlock(mm);
    return rc;
}

static int pin_locked(ohm_mm *mm, block *b, void *arg)
{
    ohm_buf **buf = arg;
    if (b->evicting) return ohm__error(OHM_ESTATE, "block %s is being evicted", b->id);
    if (b->pins == UINT32_MAX) return ohm__error(OHM_EINVAL, "block %s: too many pins", b->id);
    if (b->buf && ohm_buf_id(b->buf) != b->buf_id)
        return ohm__error(OHM_ESTATE, "block %s: its buffer was reclaimed by the host", b->id);
    b->pins++;
    lru_unlink(mm, b); /* access order, as Spark's LinkedHashMap(accessOrder = true) */
    lru_append(mm, b);
    if (buf) *buf = b->buf;
    return 0;
}

int ohm_block_pin(ohm_mm *mm, const char *block_id, ohm_buf **buf)
{
    return block_op(mm, block_id, "pin", pin_locked, buf);
}

static int unpin_locked(ohm_mm *mm, block *b, void *arg)
{
    (void)mm;
    (void)arg;
    if (!b->pins) return ohm__error(OHM_ESTATE, "block %s is not pinned", b->id);
    b->pins--;
    return 0;
}

int ohm_block_unpin(ohm_mm *mm, const char *block_id) { return block_op(mm, block_id, "unpin", unpin_locked, NULL); }

/* Takes b out of the store; *arg gets it, to be freed once the lock is dropped. */
static int remove_locked(ohm_mm *mm, block *b, void *arg)
{
    if (b->pins || b->evicting) return ohm__error(OHM_ESTATE, "block %s is pinned or being evicted", b->id);
    block_unlink(mm, b);
    mm->m[b->mode].sto_used -= b->size;
    wake_waiters(mm);
    *(block **)arg = b;
    return 0;
}

int ohm_block_remove(ohm_mm *mm, const char *block_id)
{
    block *b = NULL;
    int rc = block_op(mm, block_id, "remove", remove_locked, &b);
    if (rc) return rc;
    block_release_buf(b);
    block_free(b);
    return 0;
}
