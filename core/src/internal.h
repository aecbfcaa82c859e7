/* Internal definitions shared by every core subsystem: branch hints, relaxed counters, error reporting and
 * logging. Nothing here is part of the public API.
 *
 * The layers of the core. Each calls only the layers below it; a lower layer learns of an upper one only
 * through a hook it exposes (chunk map/unmap hooks, the poison hooks), and a retry that needs an upper layer is
 * done by the upper layer after the lower one failed (the cap: chunk creation fails with ENOMEM, the pool's slow
 * path releases free chunks and tries once more).
 *
 *   leak.c  mm.c mm_task.c mm_block.c   the leak detector; the memory manager (Spark's pools, tasks, blocks)
 *   buf.c  map.c                        reference-counted buffers; mapped files and shared memory as buffers
 *   pool.c  options.c  purge.c          the pool: alloc/free/validation, huge blocks, trim; its options table;
 *   poison.c  introspect.c                the background purger; the poison debug option; lookup, walk, stats
 *   tcache.c                            per-thread caches of blocks, one per pool and thread
 *   arena.c                             runs and slabs inside chunks, free runs by size, decay purging
 *   chunk.c                             chunk-sized mappings, their records, the address map (a radix tree), the cap
 *   sizeclass.c                         the size-class table
 *   os.c  os_file.c                     the only files that talk to the kernel (mmap, madvise, files, shm)
 *   error.c                             errors, logging, environment parsing (used by every layer)
 *   list.h                              intrusive doubly-linked lists (used by every layer)
 *
 * lifecycle.c stands beside the stack: it knows every layer, and owns process start, the fork handlers (one lock
 * order for the whole runtime, written at its top), thread exit and the pool-destroy sequence. */
#ifndef OHM_INTERNAL_H
#define OHM_INTERNAL_H

#include "ohm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>

#pragma GCC visibility push(hidden)

#define ohm_likely(x)    __builtin_expect(!!(x), 1)
#define ohm_unlikely(x)  __builtin_expect(!!(x), 0)
#define OHM_NOINLINE     __attribute__((noinline))
#define OHM_COLD         __attribute__((cold, noinline))
#define OHM_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* Thread-locals of a library that JNI or Lua load with dlopen: initial-exec avoids a __tls_get_addr call on
 * every allocation. A dlopen'ed library with initial-exec accesses gets its whole TLS segment out of the little
 * spare static TLS glibc keeps for all such libraries of the process (about 1.6 KiB in all by default); past it,
 * dlopen fails with "cannot allocate memory in static TLS block". So thread-locals stay small, and large
 * per-thread state that only slow paths touch (the error message) lives on the heap behind a thread-local
 * pointer; the *_static_tls tests hold every shared object to 1 KiB. */
#define OHM_TLS _Thread_local __attribute__((tls_model("initial-exec")))

#define OHM_PAGE_SHIFT 12
#define OHM_PAGE       ((size_t)1 << OHM_PAGE_SHIFT)

/* Invariant checks (mimalloc's mi_assert_internal, Lua's lua_assert): compiled only with -DOHM_DEBUG=ON, where a
 * failed check is a bug of ohm's own, never a caller's mistake, so it reports and aborts. ohm_debug_only(x)
 * keeps code that exists for the checks (a counter, a walk) out of the normal build. */
#ifdef OHM_DEBUG
#define ohm_assert(cond)  (ohm_likely(cond) ? (void)0 : ohm__assert_fail(#cond, __FILE__, __LINE__, __func__))
#define ohm_debug_only(x) x
void ohm__assert_fail(const char *cond, const char *file, int line, const char *func) __attribute__((noreturn, cold));
#else
#define ohm_assert(cond) ((void)0)
#define ohm_debug_only(x)
#endif

static inline size_t ohm_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline bool ohm_is_pow2(size_t x) { return x && !(x & (x - 1)); }

/* A statistics counter written by one thread and read by any: the owner's relaxed load+store compiles to a
 * plain add (no lock prefix), and the readers' relaxed loads keep TSan quiet. */
typedef _Atomic uint64_t ohm_counter;
static inline void ohm_counter_add(ohm_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline uint64_t ohm_counter_get(const ohm_counter *c)
{
    return atomic_load_explicit((ohm_counter *)c, memory_order_relaxed);
}

/* Records code and a formatted detail message as this thread's last error; returns code so callers can write
 * `return ohm__error(OHM_EINVAL, "...")`. */
int ohm__error(int code, const char *fmt, ...) OHM_PRINTF(2, 3);
/* As ohm__error for OHM_ESYS/OHM_EPERM, keeping err as ohm_last_errno(). */
int ohm__error_sys(int code, int err, const char *fmt, ...) OHM_PRINTF(3, 4);
/* Clears this thread's last error. */
void ohm__error_clear(void);
/* Sends one message to the log handler when level passes the threshold. */
void ohm__log(ohm_log_level level, const char *fmt, ...) OHM_PRINTF(2, 3);
bool ohm__log_enabled(ohm_log_level level);

/* The process start and thread-exit doors of lifecycle.c, the module above all others. */
#include "lifecycle.h"

/* Environment helpers for OHM_* settings: each returns dflt when the variable is unset or malformed (and logs
 * the malformed value). Sizes accept K, M, G suffixes. */
uint64_t ohm__env_u64(const char *name, uint64_t dflt);
unsigned ohm__env_uint(const char *name, unsigned dflt, unsigned max); /* above max counts as malformed */
size_t ohm__env_size(const char *name, size_t dflt);
bool ohm__env_bool(const char *name, bool dflt);

#pragma GCC visibility pop

#endif
