/* The memory manager (internal view): the structures and the functions its three files share. Spark's classes,
 * one concept per file; the arithmetic is Spark's, integer division included, and DESIGN.md states it.
 *     mm.c        the manager: configuration, create/destroy, the execution and storage pool of each mode that
 *                 borrow from each other (UnifiedMemoryManager), the fair shares (ExecutionMemoryPool), the
 *                 invariant check, stats and JSON
 *     mm_task.c   tasks, consumers, the spill order and pages (TaskMemoryManager)
 *     mm_block.c  the block store: table, LRU, pins, and eviction (MemoryStore)
 * The three are one layer above buf and pool: they call those, never the reverse.
 *
 * Lock order. One mutex per manager (mm->lock), and it is a leaf: while it is held nothing is called that can
 * call back into the manager or into host code -- no spill or evict callback, no ohm_buf_release or reclaim (a
 * page's free function takes mm->lock), no log message (the handler is the host's), no pool allocation. So a
 * callback may acquire, release, free pages, put or remove blocks without a deadlock (Spark's SPARK-27338 and
 * SPARK-39283 were deadlocks around spill and eviction run under a lock).
 *     mm->lock  ->  every task's lock, in list order  ->  (nothing of ours; malloc, the thread-local error record)
 * Every task has a spinlock of its own, on its own cache line, guarding what its fast path writes: its held and
 * registered bytes, its consumers' counts, and the fair-share changes not yet counted in the modes (fast_used,
 * fast_tasks). mm_lock takes the mutex and then every task's lock and counts those changes in, so the *_locked
 * functions see Spark's numbers exactly, as before. The fast paths of acquire and release take only their task's
 * lock: a release of what the task holds when nobody waits, and an acquire that keeps the task within
 * fast_limit, a share so small (the pool over all open tasks) that every task within it at once is within Spark's
 * max share of any moment and the pool's free bytes -- so Spark would grant it in full whatever the others do
 * meanwhile, and no two tasks share a cache line on the way. Whatever changes the limit holds every lock.
 * Whatever may sleep (the condition wait, an eviction or spill) holds the mutex and drops the tasks' locks.
 * Above it only the registry of managers (mm.c), which ohm_mm_used_all holds while it takes each manager's locks.
 * What the lock cannot cover while a callback runs is held by marks taken under it: a block chosen for eviction
 * is marked `evicting` (it cannot be pinned, removed or chosen again), and the storage bytes an eviction is for
 * stay counted as used ("reserved") until the requester takes them, so no other thread can take them first.
 *
 * Functions named *_locked, and those whose comment says so, are called with mm_lock held (the mutex and every
 * task's lock). */
#ifndef OHM_MM_INTERNAL_H
#define OHM_MM_INTERNAL_H

#include "internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

#define FOREVER UINT64_MAX

static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

struct mode_state {
    uint64_t max, region; /* region = max * storage_fraction */
    uint64_t exec_pool, exec_used;
    uint64_t sto_pool, sto_used;       /* sto_used: blocks + unroll + bytes reserved by evictions */
    uint64_t ntasks;                   /* tasks in this mode's fair share (Spark's memoryForTask keys) */
    ohm_debug_only(uint64_t reserved;) /* debug: the part of sto_used that evictions in progress hold */
};

typedef struct page {
    ohm_mm *mm;
    ohm_consumer *consumer; /* NULL once detached by ohm_task_end (mm->lock) */
    ohm_pool *pool;
    ohm_buf *buf;
    uint64_t buf_id;
    uint64_t size;            /* bytes charged */
    struct page *prev, *next; /* the consumer's pages (mm->lock) */
} page;

struct ohm_consumer {
    ohm_task *task;
    ohm_mem_mode mode;
    char *name;
    ohm_spill_fn *spill;
    void *arg;
    ohm_consumer_free_fn *on_free; /* called with arg when the consumer is freed, without the lock */
    uint64_t used, peak, spills, spill_bytes, npages;
    uint64_t released; /* bytes ever released: a spill is measured by how much this grows */
    page *pages;
    ohm_consumer *prev, *next; /* the task's consumers, oldest first */
};

/* Cache-line aligned (and allocated so): the fast path writes the first line on every call, and two tasks on two
 * threads must not share it. */
struct ohm_task {
    _Alignas(64) unsigned lock; /* 0 free, 1 held (__atomic): this task's fields below, with mm_lock's holder */
    bool registered[OHM_MM_MODES];
    int8_t fast_tasks[OHM_MM_MODES]; /* ntasks change by fast paths not yet in the mode: -1, 0 or 1 */
    ohm_mm *mm;
    uint64_t held[OHM_MM_MODES];
    uint64_t peak;
    uint64_t fast_used[OHM_MM_MODES]; /* exec_used change by fast paths not yet in the mode (mod 2^64) */
    uint64_t id;
    uint64_t unroll[OHM_MM_MODES];
    uint64_t spills, spill_bytes, waits, wait_ns, evictions, nconsumers;
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
    uint64_t buf_id; /* buf's id when put: a host may reclaim the handle, and its header be reused */
    ohm_evict_fn *evict;
    void *arg;
    uint32_t pins;
    bool evicting;
    struct block *lru_prev, *lru_next; /* head = least recently used */
    struct block *hnext;
} block;

/* Cache-line aligned (and allocated so): the first line is what every fast path reads, written only when it
 * changes, so it stays in every core's cache. */
struct ohm_mm {
    _Alignas(64) uint64_t fast_limit[OHM_MM_MODES]; /* a task may hold this much by its fast path; 0: no fast acquire */
    unsigned waiting;                               /* tasks blocked on cond; a fast release needs it 0 */
    _Alignas(64) pthread_mutex_t lock;
    pthread_cond_t cond; /* Spark's lock.notifyAll(): any change a waiter may need */
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
    struct ohm_mm *reg_prev, *reg_next;      /* every manager, for ohm_mm_used_all (under mm.c's registry lock) */
};

static inline const char *mode_name(int mode) { return mode == OHM_OFF_HEAP ? "off_heap" : "on_heap"; }

/* ---- locking and argument checks (mm.c) ---- */

#ifdef OHM_DEBUG
/* Aborts unless every invariant of the manager holds. Lock held. */
void mm_check(const ohm_mm *mm);
#endif

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Takes a task's lock if it is free at once (the exchange first: uncontended, one trip for the line). */
static inline bool task_trylock(ohm_task *t) { return !__atomic_exchange_n(&t->lock, 1, __ATOMIC_ACQUIRE); }
static inline void task_unlock(ohm_task *t) { __atomic_store_n(&t->lock, 0, __ATOMIC_RELEASE); }

/* Takes the mutex and every task's lock, and counts the fast paths' changes into the modes. */
void mm_lock(ohm_mm *mm);
/* Sets the fast limits for the state as it is now, and releases what mm_lock took. Every public call ends here,
 * and every drop of the lock around a callback, so the debug build checks the manager's invariants at each
 * moment another thread could see its state. */
void mm_unlock(ohm_mm *mm);
/* The tasks' locks alone, for a wait on the condition (which drops and retakes the mutex itself). */
void mm_tasks_unlock(ohm_mm *mm);
void mm_tasks_lock(ohm_mm *mm);

/* Wakes every waiting task, if there is one: a broadcast costs a futex call even with nobody waiting, and the
 * acquire/release pair made two of them (measured: most of ohm-bench mm's acquire-release). Lock held, which
 * is what makes the count exact: a task registers as waiting under the lock before it waits. */
static inline void wake_waiters(ohm_mm *mm)
{
    if (mm->waiting) pthread_cond_broadcast(&mm->cond);
}

/* The argument checks of every acquire and release: inline, because they run on the hot path of other files
 * (mm_task.c); only the error is a call. */
OHM_COLD int check_size_failed(uint64_t n, const char *op);
OHM_COLD int check_mode_failed(int mode, const char *op);
/* 0, or OHM_EINVAL when n does not fit an int64_t (the return type of the calls that grant it). */
static inline int check_size(uint64_t n, const char *op)
{
    return ohm_likely(n <= (uint64_t)INT64_MAX) ? 0 : check_size_failed(n, op);
}
/* 0, or OHM_EINVAL when mode is neither OHM_ON_HEAP nor OHM_OFF_HEAP. */
static inline int check_mode(int mode, const char *op)
{
    return ohm_likely(mode == OHM_ON_HEAP || mode == OHM_OFF_HEAP) ? 0 : check_mode_failed(mode, op);
}
/* A callback's failure as the code the caller gets: its own OHM_E* code, else OHM_ECALLBACK. */
int callback_code(int64_t rc);
/* Sets the error for a failed callback and returns code; see mm.c. */
int callback_failed(int code, const char *what, const char *name);

/* ---- the pools and fair shares (mm.c); all under mm_lock ---- */

/* UnifiedMemoryManager.acquireStorageMemory: 0 with n bytes counted as storage used, or OHM_ELIMIT / an
 * eviction's error. Drops the lock while evicting. */
int storage_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t n, const char *what);
/* ExecutionMemoryPool.acquireMemory: the bytes granted or a negative code. Drops the lock while evicting and
 * waiting. */
int64_t exec_acquire_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n);
/* The fast paths of ExecutionMemoryPool's acquireMemory and releaseMemory, under t's lock only: true when done
 * -- all n granted, or n released with nothing over -- and, when c is not NULL, counted to consumer c as well;
 * false with nothing changed when the call needs the locked path (which then decides from the start). Inline:
 * they are the whole of an uncontended acquire or release.
 * The acquire is exec_acquire_locked's full grant when the task stays within the fast limit (mm.c's
 * set_fast_limits says why Spark grants it whatever the other tasks do); its join to the fair share needs no
 * wake-up, as nobody waits while the limit is not 0. */
static inline bool exec_acquire_fast(ohm_task *t, ohm_consumer *c, int mode, uint64_t n)
{
    if (ohm_unlikely(!task_trylock(t))) return false;
    uint64_t held = t->held[mode] + n; /* both at most INT64_MAX */
    bool ok = held <= t->mm->fast_limit[mode];
    if (ok) {
        t->fast_tasks[mode] += !t->registered[mode];
        t->registered[mode] = true;
        t->held[mode] = held;
        t->fast_used[mode] += n;
        t->peak = max64(t->peak, t->held[0] + t->held[1]);
        if (c) {
            c->used += n;
            c->peak = max64(c->peak, c->used);
        }
    }
    task_unlock(t);
    return ok;
}

/* exec_release_locked for a release of no more than the task (and consumer c) holds, when nobody waits to be
 * woken by it (mm->waiting changes under every task's lock). */
static inline bool exec_release_fast(ohm_task *t, ohm_consumer *c, int mode, uint64_t n)
{
    if (ohm_unlikely(!task_trylock(t))) return false;
    bool ok = !t->mm->waiting && n <= t->held[mode] && (!c || n <= c->used);
    if (ok) {
        t->held[mode] -= n;
        t->fast_used[mode] -= n;
        if (!t->held[mode] && t->registered[mode]) {
            t->registered[mode] = false;
            t->fast_tasks[mode]--;
        }
        if (c) {
            c->used -= n;
            c->released += n;
        }
    }
    task_unlock(t);
    return ok;
}

/* ExecutionMemoryPool.releaseMemory: the bytes released; *over and *held say when n was more than t held. */
uint64_t exec_release_locked(ohm_mm *mm, ohm_task *t, int mode, uint64_t n, bool *over, uint64_t *held);
/* Logs a release of more execution memory than was held (without the lock: the log handler is the host's). */
void log_over_release(const char *who, unsigned long long id, uint64_t n, uint64_t held);

/* ---- the block store (mm_block.c) ---- */

/* Allocates the empty block table: 0, or nonzero when out of memory. */
int block_store_init(ohm_mm *mm);
/* Whether a block is pinned or being evicted. Lock held. */
bool block_store_busy(const ohm_mm *mm);
/* Releases and frees every cached block and the table. Only when no other thread uses the manager. */
void block_store_destroy(ohm_mm *mm);
/* The cached block with this id, or NULL. Lock held. */
block *block_find(const ohm_mm *mm, const char *id);
/* Frees at least `space` bytes of mode's storage by evicting blocks, all or nothing; see mm_block.c. */
int evict_locked(ohm_mm *mm, ohm_task *t, int mode, const char *group, uint64_t space, uint64_t reserve,
                 uint64_t *freed);

#pragma GCC visibility pop

#endif
