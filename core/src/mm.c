/* The memory manager: Spark's UnifiedMemoryManager (an execution and a storage pool per mode that borrow from
 * each other) and ExecutionMemoryPool's fair shares, with the manager's configuration, life, invariant check and
 * statistics. Tasks and consumers are in mm_task.c, the block store in mm_block.c; mm_internal.h has the lock
 * order all three follow. The arithmetic is Spark's, integer division included; DESIGN.md states it. */
#define _GNU_SOURCE
#include "mm_internal.h"

#include "debug.h"
#include "json.h"
#include "list.h"
#include "os.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the invariant (debug builds) ---- */

#ifdef OHM_DEBUG
/* The manager's invariants, walked in full: every unlock (mm_unlock) is a moment other threads may see the
 * state, so each must hold there. O(tasks + consumers + pages + blocks), which the debug build affords; the
 * counts a walk cannot see (bytes reserved by evictions in flight, pages of ended tasks) are kept for it. */
void mm_check(const ohm_mm *mm)
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
        ohm_assert(!t->fast_used[0] && !t->fast_used[1] && !t->fast_tasks[0] && !t->fast_tasks[1] &&
                   "task: the fast paths' changes are counted into the modes under the lock");
        ohm_assert(last == t->consumers_tail && nconsumers == t->nconsumers &&
                   "task: nconsumers and consumers_tail match its consumer list");
        for (int i = 0; i < OHM_MM_MODES; i++) {
            exec[i] += t->held[i];
            sto[i] += t->unroll[i];
            reg[i] += t->registered[i];
            ohm_assert((!t->held[i] || t->registered[i]) &&
                       "a task holding execution memory is in the mode's fair share");
        }
    }
    ohm_assert(ntasks == mm->ntasks && "manager: ntasks counts its task list");
    ohm_assert(npages + mm->detached_pages == mm->npages &&
               "manager: npages is its consumers' pages plus the pages of ended tasks not yet freed");
    uint64_t nblocks = 0, bytes = 0;
    for (const block *b = mm->lru_head, *bp = NULL; b; bp = b, b = b->lru_next) {
        ohm_assert(b->lru_prev == bp && (b->lru_next || b == mm->lru_tail) &&
                   "blocks: the LRU list is linked both ways");
        ohm_assert(block_find(mm, b->id) == b && "blocks: each LRU block is found in the table by its id");
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

/* ---- argument checks and callback errors ---- */

int check_size_failed(uint64_t n, const char *op)
{
    return ohm__error(OHM_EINVAL, "%s: %llu bytes is too large", op, (unsigned long long)n);
}

int check_mode_failed(int mode, const char *op) { return ohm__error(OHM_EINVAL, "%s: bad memory mode %d", op, mode); }

int callback_code(int64_t rc) { return rc < 0 && rc >= OHM_ECALLBACK ? (int)rc : OHM_ECALLBACK; }

/* Sets the error for a failed callback: what (a printf-ready "spill of consumer %s"), plus the callback's own
 * message when it set one with ohm_set_error (callers clear the thread's error before calling back). */
int callback_failed(int code, const char *what, const char *name)
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

/* ---- the locks ---- */

_Static_assert(offsetof(ohm_task, fast_used) + sizeof(((ohm_task *)0)->fast_used) <= 64,
               "what a task's fast path writes fits its first cache line");

/* Rounds of pause before a waiter for a task's lock yields the CPU: far more than a fast path's critical section
 * takes unless its thread was preempted (the machine may run more threads than it has cores). */
#define SPIN_ROUNDS 256

static void task_lock(ohm_task *t)
{
    for (unsigned i = 1; !task_trylock(t);)
        while (__atomic_load_n(&t->lock, __ATOMIC_RELAXED)) {
            if (i++ % SPIN_ROUNDS) cpu_relax();
            else sched_yield();
        }
}

void mm_tasks_lock(ohm_mm *mm)
{
    for (ohm_task *t = mm->tasks; t; t = t->next) {
        task_lock(t);
        for (int i = 0; i < OHM_MM_MODES; i++)
            if (t->fast_used[i] | t->fast_tasks[i]) {
                mm->m[i].exec_used += t->fast_used[i];
                mm->m[i].ntasks += (uint64_t)(int64_t)t->fast_tasks[i];
                t->fast_used[i] = t->fast_tasks[i] = 0;
            }
    }
}

void mm_lock(ohm_mm *mm)
{
    pthread_mutex_lock(&mm->lock);
    mm_tasks_lock(mm);
}

/* Each mode's fast limit for the state as it is: the smaller of Spark's max-share base and the pool, over the
 * open tasks. With every task within it, all of them together fit the pool and each is within max_per_task for
 * any number of tasks in the fair share (never more than are open), so a fast grant that keeps its task within
 * it is one Spark grants in full, no pool growth, in any order with the others. 0 -- no fast acquire -- while a
 * task waits (every change must then go by the mutex and wake it) or while some task holds more (as Spark lets a
 * task alone hold the whole pool). Written only when it changes: every fast path reads it. */
static void set_fast_limits(ohm_mm *mm)
{
    for (int i = 0; i < OHM_MM_MODES; i++) {
        const struct mode_state *s = &mm->m[i];
        uint64_t lim = 0;
        if (s->max && mm->ntasks && !mm->waiting) {
            lim = min64(s->max - min64(s->sto_used, s->region), s->exec_pool) / mm->ntasks;
            if (s->exec_used > lim) /* else no task can hold more */
                for (const ohm_task *t = mm->tasks; t && lim; t = t->next)
                    if (t->held[i] > lim) lim = 0;
        }
        if (mm->fast_limit[i] != lim) mm->fast_limit[i] = lim;
    }
}

void mm_tasks_unlock(ohm_mm *mm)
{
    set_fast_limits(mm);
    for (ohm_task *t = mm->tasks; t; t = t->next) task_unlock(t);
}

void mm_unlock(ohm_mm *mm)
{
    ohm_debug_only(mm_check(mm));
    mm_tasks_unlock(mm);
    pthread_mutex_unlock(&mm->lock);
}

/* ---- the manager ---- */

/* The condition waiting tasks sleep on, on the monotonic clock their deadlines use, and the lock. 0, or
 * nonzero when the condition cannot be made. */
static int mm_init_sync(ohm_mm *mm)
{
    int rc = os_cond_init_monotonic(&mm->cond);
    if (rc) return rc;
    /* Adaptive: spins briefly before sleeping. Critical sections here are a few dozen instructions, and with
     * the default mutex two threads acquiring at once spent most of their time in futex sleeps and wake-ups. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_MUTEX_ADAPTIVE_NP
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&mm->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    return 0;
}

/* A mode's pools as Spark starts them: storage holds its region, execution the rest. */
static void mode_init(struct mode_state *s, uint64_t max, double storage_fraction)
{
    s->max = max;
    s->region = (uint64_t)((double)max * storage_fraction); /* Spark's (max * fraction).toLong */
    if (s->region > s->max) s->region = s->max;
    s->sto_pool = s->region;
    s->exec_pool = s->max - s->region;
}

/* Every manager, for ohm_mm_used_all; taken before a manager's lock, never under it. A fork while another thread
 * holds it leaves it held in the child, as a manager's own lock would be (lifecycle.c). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ohm_mm *registry;

static void registry_add(ohm_mm *mm)
{
    pthread_mutex_lock(&registry_lock);
    LIST_PUSH_FRONT(registry, mm, reg_next, reg_prev);
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(ohm_mm *mm)
{
    pthread_mutex_lock(&registry_lock);
    LIST_UNLINK(registry, mm, reg_next, reg_prev);
    pthread_mutex_unlock(&registry_lock);
}

uint64_t ohm_mm_used_all(void)
{
    uint64_t used = 0;
    pthread_mutex_lock(&registry_lock);
    for (ohm_mm *mm = registry; mm; mm = mm->reg_next) {
        mm_lock(mm);
        for (int i = 0; i < OHM_MM_MODES; i++) used += mm->m[i].exec_used + mm->m[i].sto_used;
        mm_unlock(mm);
    }
    pthread_mutex_unlock(&registry_lock);
    return used;
}

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
    ohm_mm *mm = aligned_alloc(_Alignof(ohm_mm), sizeof *mm); /* a multiple of its alignment */
    if (!mm) goto nomem;
    memset(mm, 0, sizeof *mm);
    if (block_store_init(mm)) goto nomem;
    if (mm_init_sync(mm)) goto nomem;
    for (int i = 0; i < OHM_MM_MODES; i++) mode_init(&mm->m[i], cfg->max_bytes[i], cfg->storage_fraction);
    mm->page_size = cfg->page_size;
    mm->pool = pool;
    mm->wait_timeout_ms = cfg->wait_timeout_ms;
    registry_add(mm);
    return mm;
nomem:
    if (mm) block_store_destroy(mm); /* still empty: frees the table */
    free(mm);
    ohm__error(OHM_ENOMEM, "out of memory creating a memory manager");
    return NULL;
}

int ohm_mm_destroy(ohm_mm *mm)
{
    if (!mm) return ohm__error(OHM_EINVAL, "manager is NULL");
    mm_lock(mm);
    uint64_t tasks = mm->ntasks, pages = mm->npages;
    bool busy = block_store_busy(mm);
    mm_unlock(mm);
    if (tasks || pages || busy)
        return ohm__error(OHM_ESTATE, "memory manager still has %llu tasks, %llu pages%s", (unsigned long long)tasks,
                          (unsigned long long)pages, busy ? " and pinned blocks" : "");
    registry_remove(mm);
    block_store_destroy(mm);
    pthread_cond_destroy(&mm->cond);
    pthread_mutex_destroy(&mm->lock);
    free(mm);
    return 0;
}

/* ---- the pools of each mode (UnifiedMemoryManager) ---- */

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
int storage_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t n, const char *what)
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
                          (unsigned long long)n, mode_name(mode), (unsigned long long)(s->sto_pool - s->sto_used));
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
    t->waiting = true;
    t->waits++;
    /* Counted under every lock with the decision to wait: a fast path that changes the state after this sees a
     * waiter and takes the locked path, whose wake-up cannot come before the wait (it needs the mutex). */
    mm->waiting++;
    ohm_debug_only(mm_check(mm));
    mm_tasks_unlock(mm); /* with a waiter: no fast acquire, and no fast release, until it is gone */
    uint64_t start = os_now_ns();
    int rc = *have_deadline ? pthread_cond_timedwait(&mm->cond, &mm->lock, deadline)
                            : pthread_cond_wait(&mm->cond, &mm->lock);
    uint64_t waited = os_now_ns() - start;
    mm_tasks_lock(mm);
    t->wait_ns += waited;
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
int64_t exec_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n)
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
uint64_t exec_release_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n, bool *over, uint64_t *held)
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

void log_over_release(const char *who, unsigned long long id, uint64_t n, uint64_t held)
{
    ohm__log(OHM_LOG_WARN, "%s %llu released %llu bytes of execution memory but held only %llu; released those", who,
             id, (unsigned long long)n, (unsigned long long)held);
}

/* ---- observability ---- */

/* The counters the stats getters and the JSON snapshot both report, as X(field of the ohm_*_stats struct, which is
 * also its JSON key; field of the internal struct): one list each keeps the two in step. */
/* clang-format off */
#define MODE_COUNTERS(X) \
    X(max, max) X(storage_region, region) X(execution_pool, exec_pool) X(execution_used, exec_used) \
    X(storage_pool, sto_pool) X(storage_used, sto_used) X(tasks, ntasks)
/* clang-format on */
/* clang-format off */
#define MM_COUNTERS(X) \
    X(blocks, nblocks) X(block_bytes, block_bytes) X(evictions, evictions) X(evicted_bytes, evicted_bytes) \
    X(pages, npages)
/* clang-format on */
/* clang-format off */
#define TASK_COUNTERS(X) \
    X(peak, peak) X(spills, spills) X(spill_bytes, spill_bytes) X(waits, waits) X(wait_ns, wait_ns) \
    X(evictions, evictions)
/* clang-format on */
/* clang-format off */
#define CONSUMER_COUNTERS(X) \
    X(used, used) X(peak, peak) X(spills, spills) X(spill_bytes, spill_bytes) X(pages, npages)
/* clang-format on */

/* From the internal struct s into the stats struct o. */
#define COPY_COUNTER(field, from) o->field = s->from;
/* From the internal struct s into the JSON writer j. */
#define JSON_COUNTER(field, from) kv_u64(j, #field, s->from);

static void mode_stats(const struct mode_state *s, ohm_mm_mode_stats *o) { MODE_COUNTERS(COPY_COUNTER) }

/* The manager's counters; its lock is held. */
static void mm_stats(const ohm_mm *s, ohm_mm_stats *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < OHM_MM_MODES; i++) mode_stats(&s->m[i], &o->mode[i]);
    o->tasks = s->ntasks;
    MM_COUNTERS(COPY_COUNTER)
}

int ohm_mm_stats_get(ohm_mm *mm, ohm_mm_stats *out)
{
    if (!mm || !out) return ohm__error(OHM_EINVAL, "stats: manager or out is NULL");
    mm_lock(mm);
    mm_stats(mm, out);
    mm_unlock(mm);
    return 0;
}

static void task_stats(const ohm_task *s, ohm_task_stats *o)
{
    memset(o, 0, sizeof *o);
    o->id = s->id;
    for (int i = 0; i < OHM_MM_MODES; i++) {
        o->used[i] = s->held[i];
        o->unroll[i] = s->unroll[i];
    }
    TASK_COUNTERS(COPY_COUNTER)
    o->consumers = s->nconsumers;
    o->waiting = s->waiting;
}

int ohm_task_stats_get(ohm_task *t, ohm_task_stats *out)
{
    if (!t || !out) return ohm__error(OHM_EINVAL, "stats: task or out is NULL");
    mm_lock(t->mm);
    task_stats(t, out);
    mm_unlock(t->mm);
    return 0;
}

static void consumer_stats(const ohm_consumer *s, ohm_consumer_stats *o) { CONSUMER_COUNTERS(COPY_COUNTER) }

int ohm_consumer_stats_get(ohm_consumer *c, ohm_consumer_stats *out)
{
    if (!c || !out) return ohm__error(OHM_EINVAL, "stats: consumer or out is NULL");
    mm_lock(c->task->mm);
    consumer_stats(c, out);
    mm_unlock(c->task->mm);
    return 0;
}

static void kv_u64(json_writer *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_u64(j, v);
}

static void kv_str(json_writer *j, const char *key, const char *v)
{
    json_key(j, key);
    json_str(j, v);
}

static void mode_json(json_writer *j, const char *name, const struct mode_state *s)
{
    json_key(j, name);
    json_object_begin(j);
    MODE_COUNTERS(JSON_COUNTER)
    json_object_end(j);
}

static void consumer_json(json_writer *j, const ohm_consumer *s)
{
    json_object_begin(j);
    kv_str(j, "name", s->name);
    kv_str(j, "mode", mode_name(s->mode));
    CONSUMER_COUNTERS(JSON_COUNTER)
    json_object_end(j);
}

static void task_json(json_writer *j, const ohm_task *s)
{
    json_object_begin(j);
    kv_u64(j, "id", s->id);
    kv_u64(j, "on_heap_used", s->held[OHM_ON_HEAP]);
    kv_u64(j, "off_heap_used", s->held[OHM_OFF_HEAP]);
    TASK_COUNTERS(JSON_COUNTER)
    json_key(j, "waiting");
    json_bool(j, s->waiting);
    json_key(j, "consumers");
    json_array_begin(j);
    for (const ohm_consumer *c = s->consumers; c; c = c->next) consumer_json(j, c);
    json_array_end(j);
    json_object_end(j);
}

static void snapshot_json(json_writer *j, const ohm_mm *s)
{
    json_object_begin(j);
    json_key(j, "modes");
    json_object_begin(j);
    for (int i = 0; i < OHM_MM_MODES; i++) mode_json(j, mode_name(i), &s->m[i]);
    json_object_end(j);
    MM_COUNTERS(JSON_COUNTER)
    json_key(j, "tasks");
    json_array_begin(j);
    for (const ohm_task *t = s->tasks; t; t = t->next) task_json(j, t);
    json_array_end(j);
    json_object_end(j);
}

size_t ohm_mm_snapshot_json(ohm_mm *mm, char *out, size_t cap)
{
    json_writer j;
    json_init(&j, out, cap);
    if (!mm) {
        ohm__error(OHM_EINVAL, "snapshot: manager is NULL");
        return 0;
    }
    mm_lock(mm);
    snapshot_json(&j, mm);
    mm_unlock(mm);
    return j.len;
}
