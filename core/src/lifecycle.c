/* Life cycle: process start, fork, thread exit and pool destruction, across every subsystem (see lifecycle.h).
 * Models: mimalloc's init.c (one owner of process and thread start and end) and jemalloc's jemalloc_fork.c (one
 * prefork function that takes every lock, in an order written down beside it).
 *
 * Lock order. prefork takes every lock of the runtime from the top of this table down. Normal code nests them
 * only downward too: a thread that holds lock k takes only locks below k. So a thread that holds a lock prefork
 * still needs never waits for one prefork already holds, and the fork cannot deadlock.
 *
 *   #   lock                          owner     what normal code takes while holding it
 *   1   derived-list stripes [16]     buf.c     nothing (leaves; any position would do, first is simplest)
 *   2   header lock                   buf.c     5 and the records pool's 7-8 (a pool destroy that could not
 *                                               allocate its list of records closes them under the lock)
 *   3   leak handler lock             leak.c    nothing
 *   4   leak de-duplication lock      leak.c    nothing
 *   5   leak stripes [16]             leak.c    7-10: checkpoint copies come from the leak records pool (made at
 *                                               first use: pool creation takes the pool list)
 *   6   default pool creation lock    pool.c    7 (ohm_pool_create)
 *   7   pool list                     pool.c    8 (thread exit flushes caches to arenas)
 *   8   each pool's arena locks       arena.c   nothing of ours (chunks are mapped and unmapped unlocked)
 *   9   each pool's huge lock         pool.c    nothing
 *   10  address map growth lock       chunk.c   nothing
 *
 * Not taken: a memory manager's lock (mm.c) is per manager and never held while calling buffers or pools, so a
 * fork cannot deadlock on it; but a manager locked by another thread at the fork stays locked in the child, as
 * a host's own lock would (mm.c's registry of managers, for ohm_mm_used_all, is not locked at fork either: a fork
 * while another thread reads it leaves it held in the child). pthread_once controls need nothing: glibc
 * lets the child run an initialization the fork interrupted.
 *
 * Thread exit: one key, whose destructor runs the steps top-down, upper layers first, so what an upper layer gives
 * back on its way out can still reach the lower layers' per-thread state before that goes:
 *   1  buf_thread_exit     cached buffer headers back to the shared free list; then leak_thread_exit: the
 *                          thread's batch of released leak records and its record cache back to the records pool
 *   2  tcache_thread_exit  every thread cache flushed to its arenas and freed; no new cache after
 * Leak scopes a thread opened and left open end by a key of their own (leak.c, scope_thread_exit), in whatever
 * order the destructors run: a scope's end needs only the leak stripes and the records pool, which work without a
 * thread cache. mm.c keeps nothing per thread.
 *
 * Pool destruction: pool_destroy_begin (unlist the pool, kill its caches) -> buf_pool_destroyed (report live
 * buffers, end their handles) -> pool_destroy_end (unmap the memory). No lock is held between the steps. */
#define _GNU_SOURCE
#include "lifecycle.h"

#include "buf.h"
#include "chunk.h"
#include "leak.h"
#include "pool.h"
#include "sizeclass.h"

#include <pthread.h>

/* ---- threads ---- */

static pthread_key_t thread_key;
static OHM_TLS int tl_attached; /* thread_key is set for this thread */

static void thread_exit(void *unused)
{
    (void)unused;
    tl_attached = 0; /* a step that frees into a subsystem's cache attaches again: the key runs once more */
    buf_thread_exit();
    tcache_thread_exit();
}

void ohm__thread_init(void)
{
    if (ohm_likely(tl_attached)) return;
    ohm__init();
    tl_attached = 1;
    pthread_setspecific(thread_key, (void *)1);
}

/* ---- fork: the order of the table above ---- */

static void prefork(void)
{
    buf_prefork();         /* 1, 2 */
    leak_prefork();        /* 3-5 */
    pool_prefork();        /* 6-9 */
    chunk_fork_lock(true); /* 10 */
}

static void postfork_parent(void)
{
    chunk_fork_lock(false);
    pool_postfork_parent();
    leak_postfork();
    buf_postfork();
}

static void postfork_child(void)
{
    chunk_fork_lock(false);
    pool_postfork_child();
    leak_postfork();
    buf_postfork();
}

/* ---- process start ---- */

static void init_process(void)
{
    sc_init();
    pool_init();
    buf_init();
    leak_init();
    pthread_key_create(&thread_key, thread_exit);
    /* Last: once registered, the handler takes every lock above, all of which exist now. */
    pthread_atfork(prefork, postfork_parent, postfork_child);
}

void ohm__init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_process);
}

/* ---- pool destruction ---- */

int ohm_pool_destroy(ohm_pool *pool)
{
    int rc = pool_destroy_begin(pool);
    if (rc) return rc;
    buf_pool_destroyed(pool); /* reports live buffers and ends their handles before the memory goes */
    pool_destroy_end(pool);
    return 0;
}
