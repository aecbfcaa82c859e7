/* Memory manager: Spark's UnifiedMemoryManager (an execution and a storage pool per mode that borrow from each
 * other), ExecutionMemoryPool's fair shares, TaskMemoryManager's consumers and spill order, and MemoryStore's
 * LRU eviction. The arithmetic is Spark's, integer division included; DESIGN.md states it.
 *
 * Lock order. One mutex per manager (mm->lock), and it is a leaf: while it is held nothing is called that can
 * call back into the manager or into host code -- no spill or evict callback, no ohm_buf_release or reclaim (a
 * page's free function takes mm->lock), no log message (the handler is the host's), no pool allocation. So a
 * callback may acquire, release, free pages, put or remove blocks without a deadlock (Spark's SPARK-27338 and
 * SPARK-39283 were deadlocks around spill and eviction run under a lock).
 *     mm->lock  ->  (nothing of ours; malloc, the thread-local error record)
 * What the lock cannot cover while a callback runs is held by marks taken under it: a block chosen for eviction
 * is marked `evicting` (it cannot be pinned, removed or chosen again), and the storage bytes an eviction is for
 * stay counted as used ("reserved") until the requester takes them, so no other thread can take them first.
 */
#define _GNU_SOURCE
#include "internal.h"

#include "buf.h"
#include "debug.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FOREVER UINT64_MAX

static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

struct mode_state {
    uint64_t max, region;          /* region = max * storage_fraction                       */
    uint64_t exec_pool, exec_used;
    uint64_t sto_pool, sto_used;   /* sto_used: blocks + unroll + bytes reserved by evictions */
    uint64_t ntasks;               /* tasks in this mode's fair share (Spark's memoryForTask keys) */
    ohm_debug_only(uint64_t reserved;) /* debug: the part of sto_used that evictions in progress hold */
};

typedef struct page {
    ohm_mm *mm;
    ohm_consumer *consumer;        /* NULL once detached by ohm_task_end (mm->lock)         */
    ohm_pool *pool;
    ohm_buf *buf;
    uint64_t buf_id;
    uint64_t size;                 /* bytes charged                                         */
    struct page *prev, *next;      /* the consumer's pages (mm->lock)                       */
} page;

struct ohm_consumer {
    ohm_task *task;
    ohm_mem_mode mode;
    char *name;
    ohm_spill_fn *spill;
    void *arg;
    ohm_consumer_free_fn *on_free;  /* called with arg when the consumer is freed, without the lock   */
    uint64_t used, peak, spills, spill_bytes, npages;
    uint64_t released;             /* bytes ever released: a spill is measured by how much this grows */
    page *pages;
    ohm_consumer *prev, *next;     /* the task's consumers, oldest first                    */
};

struct ohm_task {
    ohm_mm *mm;
    uint64_t id;
    uint64_t held[OHM_MM_MODES];
    bool registered[OHM_MM_MODES];
    uint64_t unroll[OHM_MM_MODES];
    uint64_t peak, spills, spill_bytes, waits, wait_ns, evictions, nconsumers;
    uint64_t timeout_ms;
    bool cancel, waiting;
    ohm_consumer *consumers, *consumers_tail;
    ohm_task *prev, *next;
};

typedef struct block {
    char *id, *group;
    ohm_mem_mode mode;
    uint64_t size;
    ohm_buf *buf;
    uint64_t buf_id;               /* buf's id when put: a host may reclaim the handle, and its header be reused */
    ohm_evict_fn *evict;
    void *arg;
    uint32_t pins;
    bool evicting;
    struct block *lru_prev, *lru_next; /* head = least recently used */
    struct block *hnext;
} block;

/* Gives back the block's reference, unless the host has reclaimed that buffer since (its handle may already be
 * another buffer's): a stale handle is never released. Called without mm->lock. */
static void block_release_buf(block *b)
{
    if (b->buf && ohm_buf_id(b->buf) == b->buf_id) ohm_buf_release(b->buf, 1);
}

struct ohm_mm {
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* Spark's lock.notifyAll(): any change a waiter may need  */
    unsigned waiting;              /* tasks blocked on cond (lock held)                       */
    struct mode_state m[OHM_MM_MODES];
    size_t page_size;
    ohm_pool *pool;
    uint64_t wait_timeout_ms;
    ohm_task *tasks;
    uint64_t ntasks, npages;
    block **buckets;
    size_t nbuckets, nblocks;
    uint64_t block_bytes;
    block *lru_head, *lru_tail;
    uint64_t evictions, evicted_bytes;
    ohm_debug_only(uint64_t detached_pages;) /* debug: pages of ended tasks not yet freed (in npages) */
};

static const char *mode_name(int mode) { return mode == OHM_OFF_HEAP ? "off_heap" : "on_heap"; }

/* ---- locking and the invariant ---- */

/* Wakes every waiting task, if there is one: a broadcast costs a futex call even with nobody waiting, and the
 * acquire/release pair made two of them (measured: most of ohm-bench mm's acquire-release). Lock held, which
 * is what makes the count exact: a task registers as waiting under the lock before it waits. */
static void wake_waiters(ohm_mm *mm)
{
    if (mm->waiting) pthread_cond_broadcast(&mm->cond);
}

static void mm_lock(ohm_mm *mm) { pthread_mutex_lock(&mm->lock); }

#ifdef OHM_DEBUG
static block *block_find(ohm_mm *mm, const char *id);

/* The manager's invariants, walked in full: every unlock (mm_unlock) is a moment other threads may see the
 * state, so each must hold there. O(tasks + consumers + pages + blocks), which the debug build affords; the
 * counts a walk cannot see (bytes reserved by evictions in flight, pages of ended tasks) are kept for it. */
static void mm_check(const ohm_mm *mm)
{
    uint64_t exec[OHM_MM_MODES] = {0}, sto[OHM_MM_MODES] = {0}, reg[OHM_MM_MODES] = {0};
    uint64_t ntasks = 0, npages = 0;
    for (const ohm_task *t = mm->tasks, *tp = NULL; t; tp = t, t = t->next) {
        ohm_assert(t->mm == mm && t->prev == tp && "tasks: the list's back links, each task of this manager");
        ntasks++;
        uint64_t nconsumers = 0;
        const ohm_consumer *last = NULL;
        for (const ohm_consumer *c = t->consumers; c; last = c, c = c->next) {
            ohm_assert(c->task == t && c->prev == last && "consumers: each in its task's list, linked both ways");
            nconsumers++;
            uint64_t cpages = 0;
            for (const page *p = c->pages, *pp = NULL; p; pp = p, p = p->next) {
                ohm_assert(p->consumer == c && p->mm == mm && p->prev == pp && "pages: each on its consumer's list");
                cpages++;
            }
            ohm_assert(cpages == c->npages && "consumer: npages counts its page list");
            npages += cpages;
        }
        ohm_assert(last == t->consumers_tail && nconsumers == t->nconsumers &&
                   "task: nconsumers and consumers_tail match its consumer list");
        for (int i = 0; i < OHM_MM_MODES; i++) {
            exec[i] += t->held[i];
            sto[i] += t->unroll[i];
            reg[i] += t->registered[i];
            ohm_assert((!t->held[i] || t->registered[i]) && "a task holding execution memory is in the mode's fair share");
        }
    }
    ohm_assert(ntasks == mm->ntasks && "manager: ntasks counts its task list");
    ohm_assert(npages + mm->detached_pages == mm->npages &&
               "manager: npages is its consumers' pages plus the pages of ended tasks not yet freed");
    uint64_t nblocks = 0, bytes = 0;
    for (const block *b = mm->lru_head, *bp = NULL; b; bp = b, b = b->lru_next) {
        ohm_assert(b->lru_prev == bp && (b->lru_next || b == mm->lru_tail) && "blocks: the LRU list is linked both ways");
        ohm_assert(block_find((ohm_mm *)mm, b->id) == b && "blocks: each LRU block is found in the table by its id");
        ohm_assert((!b->evicting || !b->pins) && "blocks: a block being evicted is not pinned");
        nblocks++;
        bytes += b->size;
        sto[b->mode] += b->size;
    }
    ohm_assert(nblocks == mm->nblocks && "block store: nblocks counts the cached blocks");
    ohm_assert(bytes == mm->block_bytes && "block store: block_bytes equals the sum of the cached blocks' sizes");
    for (int i = 0; i < OHM_MM_MODES; i++) {
        const struct mode_state *s = &mm->m[i];
        ohm_assert(s->exec_pool + s->sto_pool == s->max && "execution pool + storage pool == max, per mode");
        ohm_assert(s->exec_used <= s->exec_pool && "execution used <= execution pool");
        ohm_assert(s->sto_used <= s->sto_pool && "storage used <= storage pool");
        ohm_assert(s->region <= s->max && "the storage region lies within max");
        ohm_assert(exec[i] == s->exec_used && "execution used == the sum of the tasks' execution bytes");
        ohm_assert(reg[i] == s->ntasks && "ntasks counts the tasks registered in the mode's fair share");
        ohm_assert(sto[i] + s->reserved == s->sto_used &&
                   "storage used == cached blocks + tasks' unroll + bytes reserved by evictions in flight");
    }
}

/* The test seam of test_debug.c: a pointer to one of mm's counters ("exec_used", "sto_used", "exec_pool",
 * "block_bytes", "npages"), for a forked child to corrupt and see mm_check abort. NULL for another name. */
uint64_t *mm_debug_counter(ohm_mm *mm, int mode, const char *name)
{
    struct mode_state *s = &mm->m[mode];
    if (!strcmp(name, "exec_used")) return &s->exec_used;
    if (!strcmp(name, "sto_used")) return &s->sto_used;
    if (!strcmp(name, "exec_pool")) return &s->exec_pool;
    if (!strcmp(name, "block_bytes")) return &mm->block_bytes;
    if (!strcmp(name, "npages")) return &mm->npages;
    return NULL;
}
#endif

/* Every public call ends here, and every drop of the lock around a callback, so the debug build checks the
 * manager's invariants at each moment another thread could see its state. */
static void mm_unlock(ohm_mm *mm)
{
    ohm_debug_only(mm_check(mm));
    pthread_mutex_unlock(&mm->lock);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int check_size(uint64_t n, const char *op)
{
    if (n > (uint64_t)INT64_MAX) return ohm__error(OHM_EINVAL, "%s: %llu bytes is too large", op, (unsigned long long)n);
    return 0;
}

static int check_mode(int mode, const char *op)
{
    if (mode != OHM_ON_HEAP && mode != OHM_OFF_HEAP) return ohm__error(OHM_EINVAL, "%s: bad memory mode %d", op, mode);
    return 0;
}

/* A callback's failure as the code the caller gets: its own OHM_E* code, else OHM_ECALLBACK. */
static int callback_code(int64_t rc)
{
    return rc < 0 && rc >= OHM_ECALLBACK ? (int)rc : OHM_ECALLBACK;
}

/* Sets the error for a failed callback: what (a printf-ready "spill of consumer %s"), plus the callback's own
 * message when it set one with ohm_set_error (callers clear the thread's error before calling back). */
static int callback_failed(int code, const char *what, const char *name)
{
    char detail[512];
    detail[0] = '\0';
    if (ohm_last_error_code() == code && ohm_last_error()[0]) snprintf(detail, sizeof detail, "%s", ohm_last_error());
    if (detail[0]) return ohm__error(code, "%s %s failed: %s", what, name, detail);
    return ohm__error(code, "%s %s failed", what, name);
}

/* ---- configuration ---- */

static double env_fraction(const char *name, double dflt)
{
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= 0.0 && d <= 1.0)) {
        ohm__log(OHM_LOG_WARN, "%s=%s is not a fraction in [0,1]; using %g", name, v, dflt);
        return dflt;
    }
    return d;
}

void ohm_mm_config_init(ohm_mm_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->max_bytes[OHM_ON_HEAP] = ohm__env_size("OHM_MM_ON_HEAP", 0);
    cfg->max_bytes[OHM_OFF_HEAP] = ohm__env_size("OHM_MM_OFF_HEAP", 0);
    cfg->storage_fraction = env_fraction("OHM_MM_STORAGE_FRACTION", 0.5);
    cfg->page_size = ohm__env_size("OHM_MM_PAGE_SIZE", (size_t)1 << 20);
    cfg->wait_timeout_ms = ohm__env_u64("OHM_MM_WAIT_TIMEOUT_MS", FOREVER);
    cfg->pool = NULL;
}

int ohm_mm_config_from_heap(ohm_mm_config *cfg, uint64_t heap_bytes, double fraction)
{
    if (!cfg) return ohm__error(OHM_EINVAL, "config is NULL");
    if (fraction <= 0.0) fraction = 0.6;
    if (!(fraction <= 1.0)) return ohm__error(OHM_EINVAL, "memory fraction %g is above 1", fraction);
    /* Spark: minSystemMemory = ceil(reserved * 1.5) */
    uint64_t min_heap = OHM_MM_RESERVED_HEAP + OHM_MM_RESERVED_HEAP / 2;
    if (heap_bytes < min_heap)
        return ohm__error(OHM_EINVAL,
                          "System memory %llu must be at least %llu. Please increase heap size using the "
                          "--driver-memory option or spark.driver.memory in Spark configuration.",
                          (unsigned long long)heap_bytes, (unsigned long long)min_heap);
    cfg->max_bytes[OHM_ON_HEAP] = (uint64_t)((double)(heap_bytes - OHM_MM_RESERVED_HEAP) * fraction);
    return 0;
}

/* ---- the manager ---- */

ohm_mm *ohm_mm_create(const ohm_mm_config *cfg)
{
    ohm_mm_config dflt;
    if (!cfg) {
        ohm_mm_config_init(&dflt);
        cfg = &dflt;
    }
    if (!(cfg->storage_fraction >= 0.0 && cfg->storage_fraction <= 1.0)) {
        ohm__error(OHM_EINVAL, "storage_fraction %g is outside [0,1]", cfg->storage_fraction);
        return NULL;
    }
    if (!cfg->page_size) {
        ohm__error(OHM_EINVAL, "page_size is 0");
        return NULL;
    }
    for (int i = 0; i < OHM_MM_MODES; i++)
        if (check_size(cfg->max_bytes[i], "mm create")) return NULL;
    ohm_pool *pool = cfg->pool;
    if (!pool && cfg->max_bytes[OHM_OFF_HEAP] && !(pool = ohm_pool_default())) return NULL;
    ohm_mm *mm = calloc(1, sizeof *mm);
    if (!mm) goto nomem;
    mm->nbuckets = 64;
    mm->buckets = calloc(mm->nbuckets, sizeof *mm->buckets);
    if (!mm->buckets) goto nomem;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&mm->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) goto nomem;
    /* Adaptive: spins briefly before sleeping. Critical sections here are a few dozen instructions, and with
     * the default mutex two threads acquiring at once spent most of their time in futex sleeps and wake-ups. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_MUTEX_ADAPTIVE_NP
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&mm->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    for (int i = 0; i < OHM_MM_MODES; i++) {
        struct mode_state *s = &mm->m[i];
        s->max = cfg->max_bytes[i];
        s->region = (uint64_t)((double)s->max * cfg->storage_fraction); /* Spark's (max * fraction).toLong */
        if (s->region > s->max) s->region = s->max;
        s->sto_pool = s->region;
        s->exec_pool = s->max - s->region;
    }
    mm->page_size = cfg->page_size;
    mm->pool = pool;
    mm->wait_timeout_ms = cfg->wait_timeout_ms;
    return mm;
nomem:
    if (mm) free(mm->buckets);
    free(mm);
    ohm__error(OHM_ENOMEM, "out of memory creating a memory manager");
    return NULL;
}

static void block_free(block *b)
{
    free(b->id);
    free(b->group);
    free(b);
}

int ohm_mm_destroy(ohm_mm *mm)
{
    if (!mm) return ohm__error(OHM_EINVAL, "manager is NULL");
    mm_lock(mm);
    uint64_t tasks = mm->ntasks, pages = mm->npages;
    int busy = 0;
    for (block *b = mm->lru_head; b; b = b->lru_next) busy |= b->pins || b->evicting;
    mm_unlock(mm);
    if (tasks || pages || busy)
        return ohm__error(OHM_ESTATE, "memory manager still has %llu tasks, %llu pages%s",
                          (unsigned long long)tasks, (unsigned long long)pages, busy ? " and pinned blocks" : "");
    for (block *b = mm->lru_head, *n; b; b = n) {
        n = b->lru_next;
        block_release_buf(b);
        block_free(b);
    }
    pthread_cond_destroy(&mm->cond);
    pthread_mutex_destroy(&mm->lock);
    free(mm->buckets);
    free(mm);
    return 0;
}

/* ---- the block table (mm->lock) ---- */

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static block *block_find(ohm_mm *mm, const char *id)
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

/* ---- eviction (MemoryStore.evictBlocksToFreeSpace) ---- */

static bool same_group(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* Frees at least `space` bytes of mode's storage by evicting least recently used blocks of that mode that are
 * not pinned, not being evicted and not of `group` -- all or nothing: if those blocks cannot free `space`, none
 * is evicted and *freed is 0. Called and returns with mm->lock held, dropping it around the callbacks; `reserve`
 * bytes of free storage are kept for the caller meanwhile. On return the evicted bytes and `reserve` are free
 * storage again, for the caller to take under the same hold of the lock. Returns 0 or the first failing
 * callback's error (blocks evicted before it stay evicted; the failing one and the rest stay cached). */
static int evict_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t space, uint64_t reserve,
                        uint64_t *freed)
{
    struct mode_state *s = &mm->m[mode];
    *freed = 0;
    size_t n = 0, cap = 0;
    uint64_t sum = 0;
    block **sel = NULL;
    for (block *b = mm->lru_head; b && sum < space; b = b->lru_next) {
        if ((int)b->mode != mode || b->pins || b->evicting || same_group(b->group, group)) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            block **ns = realloc(sel, nc * sizeof *ns);
            if (!ns) {
                free(sel);
                return ohm__error(OHM_ENOMEM, "out of memory choosing blocks to evict");
            }
            sel = ns;
            cap = nc;
        }
        sel[n++] = b;
        sum += b->size;
    }
    if (sum < space) { /* all or nothing */
        free(sel);
        return 0;
    }
    for (size_t i = 0; i < n; i++) sel[i]->evicting = true;
    s->sto_used += reserve;
    ohm_debug_only(s->reserved += reserve;)
    mm_unlock(mm);

    size_t done = 0;
    int rc = 0;
    for (; done < n; done++) {
        block *b = sel[done];
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
    if (rc) {
        ohm__log(OHM_LOG_WARN, "eviction of block %s failed (%d); %zu of %zu blocks were evicted", sel[done]->id,
                 rc, done, n);
        callback_failed(rc, "eviction of block", sel[done]->id);
    }

    mm_lock(mm);
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
    free(sel);
    *freed = bytes;
    return rc;
}

/* Spark's maybeGrowExecutionPool: take min(need, reclaimable) from storage, its free bytes first and then by
 * evicting; the pools are resized only after the eviction succeeded. Like freeSpaceToShrinkPool, storage
 * shrinks by everything the eviction freed, which can be more than was asked when blocks are larger.
 * mm->lock held (dropped while evicting). */
static int grow_execution(ohm_mm *mm, ohm_task *t, int mode, uint64_t need)
{
    struct mode_state *s = &mm->m[mode];
    uint64_t sfree = s->sto_pool - s->sto_used;
    uint64_t reclaimable = max64(sfree, s->sto_pool > s->region ? s->sto_pool - s->region : 0);
    if (!reclaimable) return 0;
    uint64_t want = min64(need, reclaimable);
    uint64_t from_free = min64(want, sfree), evicted = 0;
    if (want > from_free) {
        int rc = evict_locked(mm, t, mode, NULL, want - from_free, from_free, &evicted);
        if (rc) return rc;
    }
    uint64_t shrink = from_free + evicted;
    s->sto_pool -= shrink;
    s->exec_pool += shrink;
    return 0;
}

/* UnifiedMemoryManager.acquireStorageMemory for n bytes of mode (group: the incoming block's). mm->lock held
 * (dropped while evicting). 0 with the bytes counted as storage used, or OHM_ELIMIT / an eviction's error. */
static int storage_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t n,
                                  const char *what)
{
    struct mode_state *s = &mm->m[mode];
    if (n > s->max - s->exec_used)
        return ohm__error(OHM_ELIMIT, "%s: %llu bytes exceed the %s storage limit of %llu bytes", what,
                          (unsigned long long)n, mode_name(mode), (unsigned long long)(s->max - s->exec_used));
    uint64_t borrowed = 0;
    if (n > s->sto_pool - s->sto_used) {
        borrowed = min64(s->exec_pool - s->exec_used, n - (s->sto_pool - s->sto_used));
        s->exec_pool -= borrowed;
        s->sto_pool += borrowed;
    }
    uint64_t sfree = s->sto_pool - s->sto_used;
    if (n > sfree) {
        uint64_t evicted;
        int rc = evict_locked(mm, t, mode, group, n - sfree, sfree, &evicted);
        if (rc) {
            /* A failed callback leaves the pools as they were: give the borrowed bytes back. */
            uint64_t back = min64(borrowed, s->sto_pool - s->sto_used);
            s->sto_pool -= back;
            s->exec_pool += back;
            return rc;
        }
    }
    if (n > s->sto_pool - s->sto_used)
        return ohm__error(OHM_ELIMIT, "%s: %llu bytes of %s storage do not fit (%llu free after eviction)", what,
                          (unsigned long long)n, mode_name(mode),
                          (unsigned long long)(s->sto_pool - s->sto_used));
    s->sto_used += n;
    return 0;
}

/* ---- execution memory (ExecutionMemoryPool) ---- */

static void task_add(ohm_task *t, int mode, uint64_t g)
{
    t->held[mode] += g;
    t->mm->m[mode].exec_used += g;
    t->peak = max64(t->peak, t->held[0] + t->held[1]);
}

static void task_register(ohm_mm *mm, ohm_task *t, int mode)
{
    if (t->registered[mode]) return;
    t->registered[mode] = true;
    mm->m[mode].ntasks++;
    wake_waiters(mm); /* a new task lowers everyone's share: waiters recompute */
}

/* Waits on the manager's condition: 0 when woken, OHM_ECANCELED / OHM_ETIMEDOUT. *deadline is set on the first
 * wait of an acquire, so the timeout bounds the whole call. */
static int task_wait(ohm_mm *mm, ohm_task *t, struct timespec *deadline, bool *have_deadline)
{
    if (t->cancel) {
        t->cancel = false;
        return ohm__error(OHM_ECANCELED, "task %llu: wait for memory cancelled", (unsigned long long)t->id);
    }
    if (t->timeout_ms != FOREVER && !*have_deadline) {
        clock_gettime(CLOCK_MONOTONIC, deadline);
        uint64_t ns = (uint64_t)deadline->tv_nsec + (t->timeout_ms % 1000) * 1000000u;
        deadline->tv_sec += (time_t)(t->timeout_ms / 1000 + ns / 1000000000u);
        deadline->tv_nsec = (long)(ns % 1000000000u);
        *have_deadline = true;
    }
    ohm_debug_only(mm_check(mm)); /* the wait drops the lock */
    t->waiting = true;
    t->waits++;
    mm->waiting++;
    uint64_t start = now_ns();
    int rc = *have_deadline ? pthread_cond_timedwait(&mm->cond, &mm->lock, deadline)
                            : pthread_cond_wait(&mm->cond, &mm->lock);
    t->wait_ns += now_ns() - start;
    mm->waiting--;
    t->waiting = false;
    if (t->cancel) {
        t->cancel = false;
        return ohm__error(OHM_ECANCELED, "task %llu: wait for memory cancelled", (unsigned long long)t->id);
    }
    if (rc == ETIMEDOUT)
        return ohm__error(OHM_ETIMEDOUT, "task %llu: no memory after waiting %llu ms", (unsigned long long)t->id,
                          (unsigned long long)t->timeout_ms);
    return 0;
}

/* ExecutionMemoryPool.acquireMemory, with the unified manager's pool growth. mm->lock held (dropped while
 * evicting and waiting). Returns the bytes granted or a negative code. */
static int64_t exec_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n)
{
    struct mode_state *s = &mm->m[mode];
    struct timespec deadline;
    bool have_deadline = false;
    for (;;) {
        task_register(mm, t, mode); /* again after a wait: a release to 0 on another thread unregisters */
        if (n > s->exec_pool - s->exec_used) {
            int rc = grow_execution(mm, t, mode, n - (s->exec_pool - s->exec_used));
            if (rc) return rc;
            task_register(mm, t, mode);
        }
        uint64_t tasks = s->ntasks, cur = t->held[mode];
        uint64_t max_per_task = (s->max - min64(s->sto_used, s->region)) / tasks;
        uint64_t min_per_task = s->exec_pool / (2 * tasks);
        uint64_t max_to_grant = min64(n, max_per_task > cur ? max_per_task - cur : 0);
        uint64_t to_grant = min64(max_to_grant, s->exec_pool - s->exec_used);
        if (to_grant < n && cur + to_grant < min_per_task) {
            int rc = task_wait(mm, t, &deadline, &have_deadline);
            if (rc) return rc;
            continue;
        }
        task_add(t, mode, to_grant);
        return (int64_t)to_grant;
    }
}

/* ExecutionMemoryPool.releaseMemory. *asked_over is set to what the task held when n was more. */
static uint64_t exec_release_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n, bool *over, uint64_t *held)
{
    struct mode_state *s = &mm->m[mode];
    uint64_t r = n;
    *held = t->held[mode];
    if (n > t->held[mode]) {
        *over = true;
        r = t->held[mode];
    }
    t->held[mode] -= r;
    s->exec_used -= r;
    if (!t->held[mode] && t->registered[mode]) {
        t->registered[mode] = false;
        s->ntasks--;
    }
    wake_waiters(mm);
    return r;
}

static void log_over_release(const char *who, unsigned long long id, uint64_t n, uint64_t held)
{
    ohm__log(OHM_LOG_WARN, "%s %llu released %llu bytes of execution memory but held only %llu; released those",
             who, id, (unsigned long long)n, (unsigned long long)held);
}

/* ---- tasks ---- */

ohm_task *ohm_task_create(ohm_mm *mm, uint64_t id)
{
    if (!mm) {
        ohm__error(OHM_EINVAL, "manager is NULL");
        return NULL;
    }
    ohm_task *t = calloc(1, sizeof *t);
    if (!t) {
        ohm__error(OHM_ENOMEM, "out of memory creating task %llu", (unsigned long long)id);
        return NULL;
    }
    t->mm = mm;
    t->id = id;
    mm_lock(mm);
    for (ohm_task *o = mm->tasks; o; o = o->next)
        if (o->id == id) {
            mm_unlock(mm);
            free(t);
            ohm__error(OHM_EINVAL, "task %llu exists", (unsigned long long)id);
            return NULL;
        }
    t->timeout_ms = mm->wait_timeout_ms;
    t->next = mm->tasks;
    if (mm->tasks) mm->tasks->prev = t;
    mm->tasks = t;
    mm->ntasks++;
    mm_unlock(mm);
    return t;
}

uint64_t ohm_task_id(const ohm_task *t) { return t ? t->id : 0; }

void ohm_task_set_wait_timeout(ohm_task *t, uint64_t timeout_ms)
{
    if (!t) return;
    mm_lock(t->mm);
    t->timeout_ms = timeout_ms;
    mm_unlock(t->mm);
}

int ohm_mm_cancel_task(ohm_mm *mm, uint64_t task_id)
{
    if (!mm) return ohm__error(OHM_EINVAL, "manager is NULL");
    mm_lock(mm);
    ohm_task *t = mm->tasks;
    while (t && t->id != task_id) t = t->next;
    if (t) {
        t->cancel = true;
        wake_waiters(mm);
    }
    mm_unlock(mm);
    return t ? 0 : ohm__error(OHM_EINVAL, "no live task %llu", (unsigned long long)task_id);
}

int64_t ohm_task_acquire(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "acquire");
    if (!rc) rc = check_size(n, "acquire");
    if (rc) return rc;
    if (!n) return 0;
    mm_lock(t->mm);
    int64_t g = exec_acquire_locked(t->mm, t, mode, n);
    mm_unlock(t->mm);
    return g;
}

int64_t ohm_task_release(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "release");
    if (!rc) rc = check_size(n, "release");
    if (rc) return rc;
    bool over = false;
    uint64_t held;
    mm_lock(t->mm);
    uint64_t r = exec_release_locked(t->mm, t, mode, n, &over, &held);
    mm_unlock(t->mm);
    if (over) log_over_release("task", t->id, n, held);
    return (int64_t)r;
}

int ohm_task_acquire_unroll(ohm_task *t, ohm_mem_mode mode, const char *group, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "unroll");
    if (!rc) rc = check_size(n, "unroll");
    if (rc || !n) return rc;
    mm_lock(t->mm);
    rc = storage_acquire_locked(t->mm, t, mode, group, n, "unroll");
    if (!rc) t->unroll[mode] += n;
    mm_unlock(t->mm);
    return rc;
}

int64_t ohm_task_release_unroll(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "unroll release");
    if (rc) return rc;
    mm_lock(t->mm);
    uint64_t r = min64(n, t->unroll[mode]);
    t->unroll[mode] -= r;
    t->mm->m[mode].sto_used -= r;
    wake_waiters(t->mm); /* Spark does not notify here; a waiter may gain from it, so we do */
    mm_unlock(t->mm);
    return (int64_t)r;
}

static void consumer_free(ohm_consumer *c)
{
    if (c->on_free) c->on_free(c->arg);
    free(c->name);
    free(c);
}

int64_t ohm_task_end(ohm_task *t)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    ohm_mm *mm = t->mm;
    mm_lock(mm);
    size_t npages = 0;
    for (ohm_consumer *c = t->consumers; c; c = c->next) npages += c->npages;
    struct { ohm_buf *buf; uint64_t id; } *live = npages ? malloc(npages * sizeof *live) : NULL;
    size_t k = 0;
    for (ohm_consumer *c = t->consumers, *cn; c; c = cn) {
        cn = c->next;
        for (page *p = c->pages; p; p = p->next) {
            p->consumer = NULL; /* the task's release below covers its bytes; the free only frees memory */
            ohm_debug_only(mm->detached_pages++;)
            if (live) {
                live[k].buf = p->buf;
                live[k++].id = p->buf_id;
            }
        }
    }
    ohm_consumer *ended = t->consumers; /* freed below, once the lock is dropped (their on_free hooks) */
    t->consumers = t->consumers_tail = NULL;
    uint64_t leaked = 0;
    for (int i = 0; i < OHM_MM_MODES; i++) {
        struct mode_state *s = &mm->m[i];
        leaked += t->held[i];
        s->exec_used -= t->held[i];
        s->sto_used -= t->unroll[i];
        if (t->registered[i]) s->ntasks--;
    }
    if (t->prev) t->prev->next = t->next;
    else mm->tasks = t->next;
    if (t->next) t->next->prev = t->prev;
    mm->ntasks--;
    wake_waiters(mm);
    mm_unlock(mm);

    if (leaked)
        ohm__log(OHM_LOG_WARN, "memory leak detected in task %llu: %llu bytes", (unsigned long long)t->id,
                 (unsigned long long)leaked);
    if (npages && !live)
        ohm__log(OHM_LOG_WARN, "task %llu: out of memory listing %zu pages to free; they are freed at their "
                 "last release", (unsigned long long)t->id, npages);
    for (size_t i = 0; i < k; i++) ohm_buf_reclaim(live[i].buf, live[i].id);
    free(live);
    for (ohm_consumer *c = ended, *cn; c; c = cn) {
        cn = c->next;
        consumer_free(c);
    }
    free(t);
    return (int64_t)leaked;
}

/* ---- consumers (TaskMemoryManager) ---- */

ohm_consumer *ohm_consumer_create(ohm_task *t, ohm_mem_mode mode, const char *name, ohm_spill_fn *spill, void *arg)
{
    if (!t) {
        ohm__error(OHM_EINVAL, "task is NULL");
        return NULL;
    }
    if (check_mode(mode, "consumer create")) return NULL;
    ohm_consumer *c = calloc(1, sizeof *c);
    char *nm = strdup(name ? name : "consumer");
    if (!c || !nm) {
        free(c);
        free(nm);
        ohm__error(OHM_ENOMEM, "out of memory creating a consumer");
        return NULL;
    }
    c->task = t;
    c->mode = mode;
    c->name = nm;
    c->spill = spill;
    c->arg = arg;
    mm_lock(t->mm);
    c->prev = t->consumers_tail;
    if (t->consumers_tail) t->consumers_tail->next = c;
    else t->consumers = c;
    t->consumers_tail = c;
    t->nconsumers++;
    mm_unlock(t->mm);
    return c;
}

int ohm_consumer_destroy(ohm_consumer *c)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    ohm_task *t = c->task;
    ohm_mm *mm = t->mm;
    mm_lock(mm);
    if (c->npages) {
        uint64_t n = c->npages;
        mm_unlock(mm);
        return ohm__error(OHM_ESTATE, "consumer %s still has %llu pages", c->name, (unsigned long long)n);
    }
    bool over = false;
    uint64_t held;
    if (c->used) exec_release_locked(mm, t, c->mode, c->used, &over, &held);
    if (c->prev) c->prev->next = c->next;
    else t->consumers = c->next;
    if (c->next) c->next->prev = c->prev;
    else t->consumers_tail = c->prev;
    t->nconsumers--;
    mm_unlock(mm);
    consumer_free(c);
    return 0;
}

void ohm_consumer_on_free(ohm_consumer *c, ohm_consumer_free_fn *fn)
{
    if (c) c->on_free = fn;
}

void *ohm_consumer_arg(const ohm_consumer *c) { return c ? c->arg : NULL; }

uint64_t ohm_consumer_used(const ohm_consumer *c)
{
    if (!c) return 0;
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    uint64_t u = c->used;
    mm_unlock(mm);
    return u;
}

typedef struct candidate {
    ohm_consumer *c;
    uint64_t key;                  /* its usage when the round began (Spark's TreeMap key) */
    uint64_t low;                  /* its lowest usage after a spill in this round */
} candidate;

static int cmp_candidate(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* The consumer Spark asks next: the smallest key >= missing (ceilingEntry), else the largest (lastEntry);
 * among equal keys the last one of their list. The array is sorted by key, stably by creation. */
static size_t pick_candidate(const candidate *cand, size_t n, uint64_t missing)
{
    size_t i = 0;
    while (i < n && cand[i].key < missing) i++;
    if (i == n) return n - 1;
    while (i + 1 < n && cand[i + 1].key == cand[i].key) i++;
    return i;
}

/* A cancel (ohm_mm_cancel_task) is taken by the first wait or spill round that sees it. Lock held. */
static int take_cancel(ohm_task *t)
{
    if (!t->cancel) return 0;
    t->cancel = false;
    return ohm__error(OHM_ECANCELED, "task %llu: acquire cancelled while spilling", (unsigned long long)t->id);
}

/* Runs one spill without the lock and returns the bytes the victim released meanwhile, measured (what the
 * runtime trusts, whatever the callback says), or an error: the callback's own, or OHM_ECALLBACK when it
 * reported more than it released -- re-asking a consumer on the strength of such a report need never end.
 * Releases made by the callback stay made either way. */
static int64_t run_spill(ohm_mm *mm, ohm_consumer *victim, uint64_t size, ohm_consumer *trigger)
{
    uint64_t before = victim->released;
    mm_unlock(mm);
    ohm__error_clear();
    int64_t r = victim->spill(victim->arg, size, trigger);
    mm_lock(mm);
    uint64_t released = victim->released - before;
    victim->spills++;
    victim->task->spills++;
    victim->spill_bytes += released;
    victim->task->spill_bytes += released;
    if (r < 0) return callback_failed(callback_code(r), "spill of consumer", victim->name);
    if ((uint64_t)r > released)
        return ohm__error(OHM_ECALLBACK, "spill of consumer %s reported %lld bytes but released %llu", victim->name,
                          (long long)r, (unsigned long long)released);
    return (int64_t)released;
}

/* TaskMemoryManager.acquireExecutionMemory. mm->lock held (dropped around spills, evictions and waits).
 * Every round ends. Spark asks a consumer again as long as it reports bytes; here it stays in the round only
 * while each spill takes its usage below where any earlier one left it and the acquire after it grants the
 * requester something. Spark's rule asks a spill that releases and takes back forever, and one that releases
 * what is missing, 1 byte, once per byte its task holds above its fair share (nothing reaches the requester
 * until then). A cancel is seen before and after each spill. */
static int64_t consumer_acquire_locked(ohm_mm *mm, ohm_consumer *c, uint64_t n)
{
    ohm_task *t = c->task;
    int mode = c->mode;
    int64_t r = exec_acquire_locked(mm, t, mode, n);
    if (r < 0) return r;
    uint64_t got = (uint64_t)r;
    int err = 0;
    if (got < n) {
        size_t cap = 0;
        for (ohm_consumer *o = t->consumers; o; o = o->next) cap++;
        candidate *cand = cap ? malloc(cap * sizeof *cand) : NULL;
        size_t k = 0;
        if (cap && !cand) err = ohm__error(OHM_ENOMEM, "out of memory listing consumers to spill");
        for (ohm_consumer *o = cand ? t->consumers : NULL; o; o = o->next)
            if (o != c && o->used > 0 && (int)o->mode == mode && o->spill)
                cand[k++] = (candidate){o, o->used, o->used};
        /* insertion sort keeps creation order among equal keys (qsort is not stable) */
        for (size_t i = 1; i < k; i++)
            for (size_t j = i; j > 0 && cmp_candidate(&cand[j - 1], &cand[j]) > 0; j--) {
                candidate tmp = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = tmp;
            }
        while (!err && k > 0 && got < n && !(err = take_cancel(t))) {
            size_t i = pick_candidate(cand, k, n - got);
            ohm_consumer *victim = cand[i].c;
            int64_t released = run_spill(mm, victim, n - got, c);
            if (released < 0) {
                err = (int)released;
                break;
            }
            if ((err = take_cancel(t))) break;
            int64_t more = released > 0 ? exec_acquire_locked(mm, t, mode, n - got) : 0;
            if (more < 0) {
                err = (int)more;
                break;
            }
            got += (uint64_t)more;
            if (more > 0 && victim->used < cand[i].low) {
                cand[i].low = victim->used;
            } else { /* nothing new: not released, taken back, or not reaching the requester */
                memmove(&cand[i], &cand[i + 1], (k - i - 1) * sizeof *cand);
                k--;
            }
        }
        free(cand);
        if (!err && got < n && c->spill && !(err = take_cancel(t))) { /* the requester itself, last */
            int64_t released = run_spill(mm, c, n - got, c);
            if (released < 0) {
                err = (int)released;
            } else if (!(err = take_cancel(t)) && released > 0) {
                int64_t more = exec_acquire_locked(mm, t, mode, n - got);
                if (more < 0) err = (int)more;
                else got += (uint64_t)more;
            }
        }
    }
    if (err) { /* nothing granted: what this call got goes back, so the accounting is as before */
        bool over = false;
        uint64_t held;
        if (got) exec_release_locked(mm, t, mode, got, &over, &held);
        return err;
    }
    c->used += got;
    c->peak = max64(c->peak, c->used);
    return (int64_t)got;
}

int64_t ohm_consumer_acquire(ohm_consumer *c, uint64_t n)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    int rc = check_size(n, "consumer acquire");
    if (rc) return rc;
    if (!n) return 0;
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    int64_t g = consumer_acquire_locked(mm, c, n);
    mm_unlock(mm);
    return g;
}

int64_t ohm_consumer_release(ohm_consumer *c, uint64_t n)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    int rc = check_size(n, "consumer release");
    if (rc) return rc;
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    uint64_t had = c->used, r = min64(n, had), held;
    bool over = false;
    c->used -= r;
    c->released += r;
    exec_release_locked(mm, c->task, c->mode, r, &over, &held);
    mm_unlock(mm);
    if (n > had)
        ohm__log(OHM_LOG_WARN, "consumer %s released %llu bytes but held only %llu; released those", c->name,
                 (unsigned long long)n, (unsigned long long)had);
    if (over) log_over_release("task", c->task->id, r, held);
    return (int64_t)r;
}

/* A page's last release (buf_free_fn): returns its accounting unless its task ended, then frees the memory. */
static void page_free(void *ctx, void *data, size_t size)
{
    (void)size;
    page *p = ctx;
    ohm_mm *mm = p->mm;
    mm_lock(mm);
    ohm_consumer *c = p->consumer;
    if (c) {
        if (p->prev) p->prev->next = p->next;
        else c->pages = p->next;
        if (p->next) p->next->prev = p->prev;
        c->npages--;
        uint64_t r = min64(p->size, c->used);
        c->used -= r;
        c->released += r;
        bool over = false;
        uint64_t held;
        exec_release_locked(mm, c->task, c->mode, p->size, &over, &held);
    } else {
        ohm_debug_only(mm->detached_pages--;)
    }
    mm->npages--;
    mm_unlock(mm);
    ohm_pool_free(p->pool, data);
    free(p);
}

ohm_buf *ohm_consumer_alloc_page(ohm_consumer *c, size_t size)
{
    if (!c) {
        ohm__error(OHM_EINVAL, "consumer is NULL");
        return NULL;
    }
    if (c->mode != OHM_OFF_HEAP) {
        ohm__error(OHM_EINVAL, "consumer %s is ON_HEAP: its pages are allocated by the host", c->name);
        return NULL;
    }
    ohm_mm *mm = c->task->mm;
    uint64_t want = max64(size, mm->page_size);
    int64_t got = ohm_consumer_acquire(c, want);
    if (got < 0) return NULL;
    if (got == 0 || (uint64_t)got < size) {
        if (got) ohm_consumer_release(c, (uint64_t)got);
        ohm__error(OHM_ELIMIT, "consumer %s: page of %zu bytes not granted (%lld bytes available)", c->name, size,
                   (long long)got);
        return NULL;
    }
    page *p = calloc(1, sizeof *p);
    void *data = p ? ohm_pool_alloc(mm->pool, (size_t)got) : NULL;
    ohm_buf *b = data ? buf_root_new(data, (size_t)got, OHM_ORIGIN_POOL, 0, page_free, p, mm->pool) : NULL;
    if (!b) {
        if (data) ohm_pool_free(mm->pool, data);
        free(p);
        ohm_consumer_release(c, (uint64_t)got);
        ohm__error(OHM_ENOMEM, "consumer %s: out of memory allocating a page of %lld bytes", c->name,
                   (long long)got);
        return NULL;
    }
    p->mm = mm;
    p->pool = mm->pool;
    p->size = (uint64_t)got;
    p->buf = b;
    p->buf_id = ohm_buf_id(b);
    mm_lock(mm);
    p->consumer = c;
    p->next = c->pages;
    if (c->pages) c->pages->prev = p;
    c->pages = p;
    c->npages++;
    mm->npages++;
    mm_unlock(mm);
    return b;
}

/* ---- the block cache ---- */

int ohm_block_put(ohm_mm *mm, const char *block_id, const char *group, ohm_mem_mode mode, ohm_buf *buf,
                  uint64_t size, ohm_evict_fn *evict, void *arg)
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
    if (buf && (rc = ohm_buf_retain(buf, 1))) {
        block_free(b);
        return rc;
    }
    mm_lock(mm);
    if (block_find(mm, block_id)) {
        rc = ohm__error(OHM_EINVAL, "block put: %s is already cached", block_id);
    } else if (!(rc = storage_acquire_locked(mm, NULL, mode, group, size, block_id))) {
        if (block_find(mm, block_id)) { /* put by another thread while we evicted */
            mm->m[mode].sto_used -= size;
            rc = ohm__error(OHM_EINVAL, "block put: %s is already cached", block_id);
        } else {
            block_insert(mm, b);
        }
    }
    mm_unlock(mm);
    if (rc) {
        if (buf) ohm_buf_release(buf, 1);
        block_free(b);
    }
    return rc;
}

int ohm_block_pin(ohm_mm *mm, const char *block_id, ohm_buf **buf)
{
    if (!mm || !block_id) return ohm__error(OHM_EINVAL, "block pin: manager or block id is NULL");
    int rc = 0;
    mm_lock(mm);
    block *b = block_find(mm, block_id);
    if (!b) rc = ohm__error(OHM_EINVAL, "block %s is not cached", block_id);
    else if (b->evicting) rc = ohm__error(OHM_ESTATE, "block %s is being evicted", block_id);
    else if (b->pins == UINT32_MAX) rc = ohm__error(OHM_EINVAL, "block %s: too many pins", block_id);
    else if (b->buf && ohm_buf_id(b->buf) != b->buf_id)
        rc = ohm__error(OHM_ESTATE, "block %s: its buffer was reclaimed by the host", block_id);
    else {
        b->pins++;
        lru_unlink(mm, b); /* access order, as Spark's LinkedHashMap(accessOrder = true) */
        lru_append(mm, b);
        if (buf) *buf = b->buf;
    }
    mm_unlock(mm);
    return rc;
}

int ohm_block_unpin(ohm_mm *mm, const char *block_id)
{
    if (!mm || !block_id) return ohm__error(OHM_EINVAL, "block unpin: manager or block id is NULL");
    int rc = 0;
    mm_lock(mm);
    block *b = block_find(mm, block_id);
    if (!b) rc = ohm__error(OHM_EINVAL, "block %s is not cached", block_id);
    else if (!b->pins) rc = ohm__error(OHM_ESTATE, "block %s is not pinned", block_id);
    else b->pins--;
    mm_unlock(mm);
    return rc;
}

int ohm_block_remove(ohm_mm *mm, const char *block_id)
{
    if (!mm || !block_id) return ohm__error(OHM_EINVAL, "block remove: manager or block id is NULL");
    int rc = 0;
    mm_lock(mm);
    block *b = block_find(mm, block_id);
    if (!b) rc = ohm__error(OHM_EINVAL, "block %s is not cached", block_id);
    else if (b->pins || b->evicting) rc = ohm__error(OHM_ESTATE, "block %s is pinned or being evicted", block_id);
    else {
        block_unlink(mm, b);
        mm->m[b->mode].sto_used -= b->size;
        wake_waiters(mm);
    }
    mm_unlock(mm);
    if (rc) return rc;
    block_release_buf(b);
    block_free(b);
    return 0;
}

/* ---- observability ---- */

static void mode_stats(const struct mode_state *s, ohm_mm_mode_stats *o)
{
    o->max = s->max;
    o->storage_region = s->region;
    o->execution_pool = s->exec_pool;
    o->execution_used = s->exec_used;
    o->storage_pool = s->sto_pool;
    o->storage_used = s->sto_used;
    o->tasks = s->ntasks;
}

int ohm_mm_stats_get(ohm_mm *mm, ohm_mm_stats *out)
{
    if (!mm || !out) return ohm__error(OHM_EINVAL, "stats: manager or out is NULL");
    memset(out, 0, sizeof *out);
    mm_lock(mm);
    for (int i = 0; i < OHM_MM_MODES; i++) mode_stats(&mm->m[i], &out->mode[i]);
    out->tasks = mm->ntasks;
    out->blocks = mm->nblocks;
    out->block_bytes = mm->block_bytes;
    out->evictions = mm->evictions;
    out->evicted_bytes = mm->evicted_bytes;
    out->pages = mm->npages;
    mm_unlock(mm);
    return 0;
}

static void task_stats(const ohm_task *t, ohm_task_stats *o)
{
    memset(o, 0, sizeof *o);
    o->id = t->id;
    for (int i = 0; i < OHM_MM_MODES; i++) {
        o->used[i] = t->held[i];
        o->unroll[i] = t->unroll[i];
    }
    o->peak = t->peak;
    o->spills = t->spills;
    o->spill_bytes = t->spill_bytes;
    o->waits = t->waits;
    o->wait_ns = t->wait_ns;
    o->evictions = t->evictions;
    o->consumers = t->nconsumers;
    o->waiting = t->waiting;
}

int ohm_task_stats_get(ohm_task *t, ohm_task_stats *out)
{
    if (!t || !out) return ohm__error(OHM_EINVAL, "stats: task or out is NULL");
    mm_lock(t->mm);
    task_stats(t, out);
    mm_unlock(t->mm);
    return 0;
}

int ohm_consumer_stats_get(ohm_consumer *c, ohm_consumer_stats *out)
{
    if (!c || !out) return ohm__error(OHM_EINVAL, "stats: consumer or out is NULL");
    mm_lock(c->task->mm);
    out->used = c->used;
    out->peak = c->peak;
    out->spills = c->spills;
    out->spill_bytes = c->spill_bytes;
    out->pages = c->npages;
    mm_unlock(c->task->mm);
    return 0;
}

typedef struct jbuf {
    char *out;
    size_t cap, len;
} jbuf;

static void OHM_PRINTF(2, 3) jput(jbuf *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = j->len < j->cap ? j->cap - j->len : 0;
    int n = vsnprintf(room ? j->out + j->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) j->len += (size_t)n;
}

static void jstr(jbuf *j, const char *s)
{
    jput(j, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') jput(j, "\\%c", ch);
        else if (ch < 0x20) jput(j, "\\u%04x", ch);
        else jput(j, "%c", ch);
    }
    jput(j, "\"");
}

size_t ohm_mm_snapshot_json(ohm_mm *mm, char *out, size_t cap)
{
    jbuf j = {out, out ? cap : 0, 0};
    if (j.cap) out[0] = 0;
    if (!mm) {
        ohm__error(OHM_EINVAL, "snapshot: manager is NULL");
        return 0;
    }
    mm_lock(mm);
    jput(&j, "{\"modes\":{");
    for (int i = 0; i < OHM_MM_MODES; i++) {
        const struct mode_state *s = &mm->m[i];
        jput(&j, "%s\"%s\":{\"max\":%llu,\"storage_region\":%llu,\"execution_pool\":%llu,\"execution_used\":%llu,"
             "\"storage_pool\":%llu,\"storage_used\":%llu,\"tasks\":%llu}", i ? "," : "", mode_name(i),
             (unsigned long long)s->max, (unsigned long long)s->region, (unsigned long long)s->exec_pool,
             (unsigned long long)s->exec_used, (unsigned long long)s->sto_pool, (unsigned long long)s->sto_used,
             (unsigned long long)s->ntasks);
    }
    jput(&j, "},\"blocks\":%llu,\"block_bytes\":%llu,\"evictions\":%llu,\"evicted_bytes\":%llu,\"pages\":%llu,"
         "\"tasks\":[", (unsigned long long)mm->nblocks, (unsigned long long)mm->block_bytes,
         (unsigned long long)mm->evictions, (unsigned long long)mm->evicted_bytes, (unsigned long long)mm->npages);
    for (ohm_task *t = mm->tasks; t; t = t->next) {
        jput(&j, "%s{\"id\":%llu,\"on_heap_used\":%llu,\"off_heap_used\":%llu,\"peak\":%llu,\"spills\":%llu,"
             "\"spill_bytes\":%llu,\"waits\":%llu,\"wait_ns\":%llu,\"evictions\":%llu,\"waiting\":%s,"
             "\"consumers\":[", t == mm->tasks ? "" : ",", (unsigned long long)t->id,
             (unsigned long long)t->held[OHM_ON_HEAP], (unsigned long long)t->held[OHM_OFF_HEAP],
             (unsigned long long)t->peak, (unsigned long long)t->spills, (unsigned long long)t->spill_bytes,
             (unsigned long long)t->waits, (unsigned long long)t->wait_ns, (unsigned long long)t->evictions,
             t->waiting ? "true" : "false");
        for (ohm_consumer *c = t->consumers; c; c = c->next) {
            jput(&j, "%s{\"name\":", c == t->consumers ? "" : ",");
            jstr(&j, c->name);
            jput(&j, ",\"mode\":\"%s\",\"used\":%llu,\"peak\":%llu,\"spills\":%llu,\"spill_bytes\":%llu,"
                 "\"pages\":%llu}", mode_name(c->mode), (unsigned long long)c->used, (unsigned long long)c->peak,
                 (unsigned long long)c->spills, (unsigned long long)c->spill_bytes, (unsigned long long)c->npages);
        }
        jput(&j, "]}");
    }
    jput(&j, "]}");
    mm_unlock(mm);
    return j.len;
}
