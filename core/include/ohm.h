/* ohm — an off-heap memory runtime for managed languages.
 *
 * The one public header. Sections: errors and logging, pool (the allocator), introspection and stats, OS
 * helpers, buffers, the leak detector, mapped files and shared memory, the memory manager.
 *
 * Conventions, true of every function below unless its comment says otherwise:
 *  - a function returning a pointer returns NULL on failure; one returning int returns 0 (OHM_OK) or a negative
 *    OHM_E* code. Either way ohm_last_error() then holds a message for the calling thread.
 *  - nothing here prints or aborts on a caller's mistake; diagnostics go to the log handler.
 *  - every object is safe to use from many threads at once.
 */
#ifndef OHM_H
#define OHM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OHM_STATIC)
#define OHM_API
#elif defined(OHM_BUILDING)
#define OHM_API __attribute__((visibility("default")))
#else
#define OHM_API
#endif

/* ---------------------------------------------------------------------------------------------------------
 * Errors and logging
 * ------------------------------------------------------------------------------------------------------- */

/* Every error code, once. X(name, value, kind, text):
 *  - OHM_<name> is the constant, value its number (0, then dense from -1 down; bindings index tables by -code);
 *  - "<name>" is the short name hosts show (Lua's third value of nil, message, code);
 *  - kind is whose mistake it is: USAGE, the caller's (hosts raise it: Lua errors, Java throws an unchecked
 *    standard exception), or RUNTIME, the environment's (Lua returns nil, message, code);
 *  - text follows "OHM_<name>: " in ohm_strerror.
 * The bindings' exception table (ohm_bind.h) and Lua's ohm.errors are generated from this list; Java's
 * Native constants are checked against it by a test. A new code is a new row here plus its Java exception
 * class in bindings/src/errors.c (the build fails without one). */
/* clang-format off */
#define OHM_ERRORS(X) \
    X(OK,         0,  RUNTIME, "success") \
    /* the OS or a configured cap refused memory */ \
    X(ENOMEM,    -1,  RUNTIME, "out of memory (the OS or a configured cap refused)") \
    /* a bad argument: a size, an alignment, a pointer that is not a live block */ \
    X(EINVAL,    -2,  USAGE,   "invalid argument") \
    /* use after release, double release, a closed or destroyed object */ \
    X(ESTATE,    -3,  USAGE,   "object released, closed or in the wrong state") \
    /* an offset/length outside a buffer */ \
    X(ERANGE,    -4,  USAGE,   "offset or length out of range") \
    /* the memory manager could not grant */ \
    X(ELIMIT,    -5,  RUNTIME, "the memory manager could not grant the request") \
    /* an OS call failed; ohm_last_errno() keeps errno */ \
    X(ESYS,      -6,  RUNTIME, "an operating-system call failed") \
    /* the process lacks a privilege (e.g. frame numbers in /proc/self/pagemap) */ \
    X(EPERM,     -7,  RUNTIME, "the process lacks the privilege") \
    X(ETIMEDOUT, -8,  RUNTIME, "a wait timed out") \
    X(ECANCELED, -9,  RUNTIME, "a wait was cancelled") \
    /* a host callback (a spill, an eviction, an FFI closure) reported failure */ \
    X(ECALLBACK, -10, RUNTIME, "a callback reported failure")
/* clang-format on */

enum {
#define OHM__ERROR_CONSTANT(name, value, kind, text) OHM_##name = (value),
    OHM_ERRORS(OHM__ERROR_CONSTANT)
#undef OHM__ERROR_CONSTANT
};

/* The name and meaning of an error code ("OHM_ERANGE: offset or length out of range"). Never NULL. */
OHM_API const char *ohm_strerror(int code);
/* The detail message of the last failure on this thread ("" if none). Valid until the thread's next ohm call. */
OHM_API const char *ohm_last_error(void);
/* The code of the last failure on this thread (0 if none), and the errno kept with an OHM_ESYS/OHM_EPERM. */
OHM_API int ohm_last_error_code(void);
OHM_API int ohm_last_errno(void);
/* Sets this thread's error to code and message (copied, truncated to the message buffer) and returns code: how
 * a host callback (a spill, an eviction) says why it failed; the runtime passes the message on. */
OHM_API int ohm_set_error(int code, const char *message);
/* As ohm_set_error with a printf-style message. */
OHM_API int ohm_set_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef enum ohm_log_level { OHM_LOG_DEBUG = 0, OHM_LOG_INFO, OHM_LOG_WARN, OHM_LOG_ERROR } ohm_log_level;
/* A log handler receives one complete message per call, possibly from any thread at once. */
typedef void ohm_log_fn(void *arg, ohm_log_level level, const char *message);
/* Replaces the process-wide log handler (NULL restores the default, which writes WARN and above to stderr
 * unless OHM_LOG_LEVEL=off; OHM_LOG_LEVEL=debug|info|warn|error|off sets its threshold). */
OHM_API void ohm_set_log_handler(ohm_log_fn *fn, void *arg);
/* Sends one printf-style message (truncated to 1 KiB) to the log handler when level passes its threshold: how a
 * binding reports what it cannot return as an error (a leak report no host could take). Any thread. */
OHM_API void ohm_logf(ohm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An OHM_* on/off setting from the environment, read as the runtime reads its own: 1/true/on/yes or
 * 0/false/off/no (any case); unset or empty gives dflt, and so does a malformed value, which is logged. */
OHM_API bool ohm_env_flag(const char *name, bool dflt);

/* ---------------------------------------------------------------------------------------------------------
 * Pool: the allocator
 *
 * Sizes up to the chunk size come from size classes: 16-byte steps up to 128 B, then 4 classes per doubling.
 * Classes up to 32 KiB are carved from slabs (runs of pages with a free bitmap); larger ones are page runs
 * split and coalesced inside chunks. Sizes above the chunk size are mapped directly and unmapped on free.
 * Each thread keeps a bounded cache per class; frees from other threads reach the owning arena lock-free.
 * Free pages go back to the OS after purge_delay_ms; fully free chunks are unmapped.
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_pool ohm_pool;

/* The option tables below are aligned by hand: a column of defaults and environment variables. */
/* clang-format off */
typedef enum ohm_huge_pages {
    OHM_HUGE_NONE = 0,   /* normal 4 KiB pages                                                     */
    OHM_HUGE_THP,        /* madvise(MADV_HUGEPAGE) on every chunk (transparent huge pages)        */
    OHM_HUGE_HUGETLB     /* MAP_HUGETLB chunks; falls back to normal pages when none are reserved */
} ohm_huge_pages;

/* Chunk hooks, for users that register memory with a device (DMA/RDMA). map runs after a chunk is mapped and
 * before any block of it is handed out; a nonzero return fails the allocation and the chunk is unmapped (the
 * error is OHM_ECALLBACK). unmap runs before the chunk is unmapped. A chunk with hooks is never purged page by
 * page (the device would keep the old pages); it is only unmapped whole. Hooks run without pool locks held. */
typedef int ohm_chunk_map_fn(void *arg, void *addr, size_t size);
typedef void ohm_chunk_unmap_fn(void *arg, void *addr, size_t size);

typedef struct ohm_pool_config {
    const char *name;            /* for stats and reports; copied                         default "pool"   */
    size_t chunk_size;           /* power of two, 1 MiB .. 64 MiB                        OHM_CHUNK_SIZE 4M  */
    unsigned arenas;             /* 1 .. OHM_MAX_ARENAS; 0 = 2 x online cores           OHM_ARENAS        */
    size_t cache_max_size;       /* largest size class kept in thread caches; 0 = none OHM_CACHE_MAX 256K */
    unsigned cache_slots;        /* slots per small class in a thread cache (1..1024)   OHM_CACHE_SLOTS 64 */
    uint64_t purge_delay_ms;     /* free pages older than this are purged; UINT64_MAX = only on trim
                                                                                        OHM_PURGE_DELAY_MS 2000 */
    unsigned dirty_ratio;        /* also purge free pages older than purge_delay_ms/16 while they exceed
                                    active/dirty_ratio + one chunk (bounds RSS under churn); 0 = off
                                                                                        OHM_DIRTY_RATIO 8   */
    bool background_purge;       /* a process-wide thread purges expired pages of idle pools
                                                                                        OHM_BACKGROUND_PURGE 1 */
    size_t max_mapped;           /* hard cap on bytes mapped by this pool; 0 = none     OHM_MAX_MAPPED      */
    ohm_huge_pages huge_pages;   /*                                                    OHM_HUGE_PAGES none|thp|hugetlb */
    bool lock_memory;            /* mlock every chunk (for DMA)                         OHM_MLOCK 0         */
    bool mergeable;              /* madvise(MADV_MERGEABLE) on chunks (KSM)             OHM_MERGEABLE 0     */
    bool zero;                   /* every allocation returns zeroed memory              OHM_ZERO 0          */
    bool poison;                 /* debug: fill freed blocks with 0xDE past their first 24 bytes and, for
                                    classes up to 32 KiB, verify the pattern when a block is handed out again; a
                                    change (a write after free) is logged at ERROR with the block, the offset and
                                    the id of the buffer that last owned it, and counted in
                                    stats.poison_violations. Bypasses thread caches and keeps empty slabs (a
                                    block's memory is only reused by its own class).
                                                                                        OHM_POISON 0        */
    ohm_chunk_map_fn *chunk_map;
    ohm_chunk_unmap_fn *chunk_unmap;
    void *hook_arg;
} ohm_pool_config;
/* clang-format on */

#define OHM_MAX_ARENAS  256
#define OHM_MAX_CLASSES 84 /* 16 B .. 64 MiB */

/* The pool options, one row each, in the order hosts pass them (JNI's long[], PoolConfig.PROPERTIES, Lua's
 * ohm.pool{} keys are the field names): X(field, environment variable, kind, default, min, max, env_max).
 * The core generates ohm_pool_config_init, the range checks of ohm_pool_create and the environment parsing
 * from it; hosts set fields through ohm_pool_config_set, so every host reports the core's message.
 * Kinds: POW2 (a size that must be a power of two in [min, max]), SIZE (bytes; k/m/g suffixes in the
 * environment), UINT (in [min, max]; the environment also refuses values above env_max), MS (milliseconds;
 * UINT64_MAX, a negative value given to ohm_pool_config_set, or "never" or "-1" in the environment and to
 * ohm_pool_config_set_text, means never), BOOL, HUGE (none, thp or hugetlb). */
/* clang-format off */
#define OHM_POOL_OPTIONS(X)                                                                                      \
    X(chunk_size, "OHM_CHUNK_SIZE", POW2, (size_t)4 << 20, (size_t)1 << 20, (size_t)64 << 20, 0)                 \
    X(arenas, "OHM_ARENAS", UINT, 0, 0, OHM_MAX_ARENAS, OHM_MAX_ARENAS)                                         \
    X(cache_max_size, "OHM_CACHE_MAX", SIZE, (size_t)256 << 10, 0, SIZE_MAX, 0)                                 \
    X(cache_slots, "OHM_CACHE_SLOTS", UINT, 64, 1, 1024, 1024)                                                  \
    X(purge_delay_ms, "OHM_PURGE_DELAY_MS", MS, 2000, 0, UINT64_MAX, 0)                                         \
    X(dirty_ratio, "OHM_DIRTY_RATIO", UINT, 8, 0, UINT32_MAX, 1u << 20)                                         \
    X(background_purge, "OHM_BACKGROUND_PURGE", BOOL, 1, 0, 1, 0)                                               \
    X(max_mapped, "OHM_MAX_MAPPED", SIZE, 0, 0, SIZE_MAX, 0)                                                    \
    X(huge_pages, "OHM_HUGE_PAGES", HUGE, OHM_HUGE_NONE, OHM_HUGE_NONE, OHM_HUGE_HUGETLB, 0)                    \
    X(lock_memory, "OHM_MLOCK", BOOL, 0, 0, 1, 0)                                                               \
    X(mergeable, "OHM_MERGEABLE", BOOL, 0, 0, 1, 0)                                                             \
    X(zero, "OHM_ZERO", BOOL, 0, 0, 1, 0)                                                                       \
    X(poison, "OHM_POISON", BOOL, 0, 0, 1, 0)
/* clang-format on */

#define OHM_POOL_OPTION_INDEX(field, ...) OHM_POOL_OPTION_##field,
enum { OHM_POOL_OPTIONS(OHM_POOL_OPTION_INDEX) OHM_POOL_OPTION_COUNT };
#undef OHM_POOL_OPTION_INDEX

/* The field name of option i of OHM_POOL_OPTIONS ("chunk_size"); NULL past the last. Thread-safe. */
OHM_API const char *ohm_pool_option_name(unsigned option);
/* Sets option i from an integer (booleans: nonzero is true; huge_pages: an ohm_huge_pages value). OHM_EINVAL,
 * with the range the option takes in the message, when the value is out of it; cfg is unchanged then. */
OHM_API int ohm_pool_config_set(ohm_pool_config *cfg, unsigned option, int64_t value);
/* Sets option i from text: "none", "thp" or "hugetlb" for huge_pages, "true"/"false" for booleans, "never" for
 * purge_delay_ms.
 * OHM_EINVAL for other text or another option. */
OHM_API int ohm_pool_config_set_text(ohm_pool_config *cfg, unsigned option, const char *value);
/* Option i of cfg as an integer: booleans 0 or 1, purge_delay_ms -1 for never; 0 past the last. */
OHM_API int64_t ohm_pool_config_get(const ohm_pool_config *cfg, unsigned option);

/* Fills cfg with the defaults, then applies the OHM_* environment variables named above. */
OHM_API void ohm_pool_config_init(ohm_pool_config *cfg);

/* Creates a private pool (cfg NULL = defaults). NULL with OHM_EINVAL for a bad config. */
OHM_API ohm_pool *ohm_pool_create(const ohm_pool_config *cfg);
/* Frees every block of the pool at once and unmaps all its memory. No other thread may use the pool during or
 * after the call; their cached blocks are dropped with it. The default pool cannot be destroyed (OHM_ESTATE). */
OHM_API int ohm_pool_destroy(ohm_pool *pool);
/* The process-wide pool, created on first use from the OHM_* environment. NULL only if that creation fails. */
OHM_API ohm_pool *ohm_pool_default(void);

/* Allocates size bytes (0 gives a minimal block). NULL with OHM_ENOMEM (OS or cap) or OHM_EINVAL (size too
 * large to represent). The block is 16-byte aligned, and aligned to the largest power of two dividing its size
 * class up to 4 KiB. */
OHM_API void *ohm_pool_alloc(ohm_pool *pool, size_t size);
/* As ohm_pool_alloc, with memory zeroed. */
OHM_API void *ohm_pool_alloc_zeroed(ohm_pool *pool, size_t size);
/* As ohm_pool_alloc, aligned to align (a power of two; EINVAL otherwise). */
OHM_API void *ohm_pool_alloc_aligned(ohm_pool *pool, size_t size, size_t align);
/* Frees a block of this pool. OHM_EINVAL (and nothing changes) if p is not the start of a live block of this
 * pool: a foreign pointer, an interior pointer, a pointer into a slab's unused tail or into free pages, or a
 * block already free. These checks are always on (no debug option needed): about 12 instructions of the free
 * path (benchmarks/RESULTS.md counts them). A double free is caught while the block sits free (in a thread cache, on a remote list or in its
 * slab); once the block has been handed out again, a stale free cannot be told from a valid one. NULL is a
 * no-op. */
OHM_API int ohm_pool_free(ohm_pool *pool, void *p);

/* The same through the process-default pool (alloc) or through whichever pool owns p (free). */
OHM_API void *ohm_alloc(size_t size);
OHM_API int ohm_free(void *p);
/* The usable size of the live block at p (its size class), or 0 if p is not the start of a live block. */
OHM_API size_t ohm_usable_size(const void *p);

/* Returns the calling thread's cached blocks of this pool to their arenas. */
OHM_API int ohm_pool_flush_thread_cache(ohm_pool *pool);
/* Gives back to the OS now: flushes the calling thread's cache, asks other threads to flush theirs at their
 * next allocation, purges every free page and unmaps every free chunk (after its unmap hook). */
OHM_API int ohm_pool_trim(ohm_pool *pool);

/* ---------------------------------------------------------------------------------------------------------
 * Introspection and stats
 * ------------------------------------------------------------------------------------------------------- */

typedef enum ohm_block_kind { OHM_BLOCK_SMALL = 0, OHM_BLOCK_RUN, OHM_BLOCK_HUGE } ohm_block_kind;

typedef struct ohm_block_info {
    void *base;          /* first byte of the block */
    size_t size;         /* usable size (the size class, or the mapped size for huge blocks) */
    unsigned size_class; /* index into the class table; OHM_MAX_CLASSES for huge blocks */
    ohm_block_kind kind;
    ohm_pool *pool; /* owner */
    unsigned arena; /* owning arena index */
    bool live;      /* false for a block that is free (cached, or free in its slab/run) */
} ohm_block_info;

/* Finds the block containing addr (any interior address). OHM_EINVAL if addr is in no pool's memory. A free
 * block is reported with live == false. Lock-free; the answer may be stale if another thread frees the block. */
OHM_API int ohm_lookup(const void *addr, ohm_block_info *info);

/* Calls fn for every live block of the pool, in address order within each chunk. Stops when fn returns
 * nonzero and returns that value. Blocks allocated or freed by other threads during the walk may or may not be
 * reported; fn must not allocate from or free to this pool. */
typedef int ohm_walk_fn(void *arg, const ohm_block_info *block);
OHM_API int ohm_pool_walk(ohm_pool *pool, ohm_walk_fn *fn, void *arg);

typedef struct ohm_class_stats {
    size_t size;            /* the class's block size */
    uint64_t allocs, frees; /* calls served by this class */
    uint64_t cache_hits;    /* allocations served from a thread cache */
    uint64_t active_blocks; /* allocs - frees */
    uint64_t active_bytes;  /* active_blocks * size */
} ohm_class_stats;

typedef struct ohm_pool_stats {
    uint64_t mapped_bytes;                   /* chunks + huge mappings now */
    uint64_t resident_bytes;                 /* mapped minus pages known purged: an upper bound on resident */
    uint64_t dirty_bytes;                    /* free pages not yet given back, and slabs kept empty for reuse*/
    uint64_t purged_bytes;                   /* total pages given back since creation (cumulative) */
    uint64_t chunks;                         /* chunks mapped now */
    uint64_t chunks_mapped, chunks_unmapped; /* cumulative */
    uint64_t huge_blocks, huge_bytes;        /* live direct mappings */
    uint64_t allocs, frees, cache_hits;      /* all classes + huge */
    uint64_t active_blocks, active_bytes;
    uint64_t failed_allocs;     /* refused by the OS or the cap */
    uint64_t poison_violations; /* writes after free found by the poison option */
    uint64_t threads;           /* thread caches attached now */
    unsigned arenas;
    unsigned nclasses;
    ohm_class_stats classes[OHM_MAX_CLASSES];
} ohm_pool_stats;

/* Fills out with a snapshot of the whole pool (arena = -1) or of one arena (0 .. arenas-1). Counters are kept
 * per thread and summed here, so allocation never contends on them; the sum is exact once threads are quiet. An
 * arena's figures count the blocks of that arena: a block's free counts where its allocation did, whichever thread
 * frees it and whether or not its allocating thread still runs, so once threads are quiet each arena's active
 * blocks are the blocks live in it and the arenas add up to the pool (huge blocks are the pool's only). */
OHM_API int ohm_pool_stats_get(ohm_pool *pool, int arena, ohm_pool_stats *out);

/* The size-class table: number of classes for a chunk size, and the size of class i. */
OHM_API unsigned ohm_size_class_count(size_t chunk_size);
OHM_API size_t ohm_size_class_size(unsigned cls);

/* ---------------------------------------------------------------------------------------------------------
 * Buffers: reference counted, Netty's rules
 *
 * A new buffer has count 1. retain(n)/release(n) need n > 0; release returns 1 only on the call that takes the
 * count to 0, which frees the memory. Retain or release of a released buffer is OHM_ESTATE; releasing more than
 * the count, n == 0, or a count that would pass INT32_MAX is OHM_EINVAL; either way the buffer is untouched.
 * Plain slices and duplicates share their parent's count (their retain/release act on it); a retained slice has
 * its own count of 1 and holds one reference on its parent, released when it reaches 0.
 *
 * Handles: a buffer handle stays readable after release (its memory is type-stable and never unmapped), so a
 * late call gets OHM_ESTATE instead of a crash. A handle's memory is reused for later buffers, though, so a
 * host that keeps handles for long (a GC'd wrapper) keeps the pair (handle, ohm_buf_id()) and calls
 * ohm_buf_check before each use: that detects a stale handle exactly. Derived handles (slices, duplicates)
 * end with their count's owner, or earlier through ohm_buf_reclaim.
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_buf ohm_buf;

typedef enum ohm_buf_origin {
    OHM_ORIGIN_POOL = 0, /* a block of an ohm pool */
    OHM_ORIGIN_FILE,     /* a mapped file region */
    OHM_ORIGIN_SHM,      /* shared memory (POSIX shm or memfd) */
    OHM_ORIGIN_FOREIGN   /* memory adopted with a release callback */
} ohm_buf_origin;

/* Called once, on the last release (or reclaim), to give adopted memory back. Must not call into ohm buffers. */
typedef void ohm_buf_release_fn(void *arg, void *data, size_t size);

/* A buffer of size bytes from pool (NULL = the default pool); size 0 is allowed. The leak detector may track
 * it (see ohm_buf_tracked). NULL with OHM_ENOMEM / OHM_EINVAL. */
OHM_API ohm_buf *ohm_buf_alloc(ohm_pool *pool, size_t size);
/* As ohm_buf_alloc, zero-filled. */
OHM_API ohm_buf *ohm_buf_alloc_zeroed(ohm_pool *pool, size_t size);
/* Adopts foreign memory: release(arg, data, size) runs at the last release. On failure release is not called. */
OHM_API ohm_buf *ohm_buf_wrap(void *data, size_t size, ohm_buf_release_fn *release, void *arg);

OHM_API int ohm_buf_retain(ohm_buf *b, uint32_t n);
/* 1 when this call freed the memory, 0 when references remain, or a negative OHM_E* code. */
OHM_API int ohm_buf_release(ohm_buf *b, uint32_t n);
/* The count (0 once released). For plain slices and duplicates, their owner's count. */
OHM_API uint32_t ohm_buf_refcnt(const ohm_buf *b);
/* First byte and size; NULL/0 once released. The pointer is valid while the caller holds a reference. */
OHM_API void *ohm_buf_data(const ohm_buf *b);
OHM_API size_t ohm_buf_size(const ohm_buf *b);
OHM_API ohm_buf_origin ohm_buf_origin_of(const ohm_buf *b);
/* An identity that changes whenever the handle's memory is reused; 0 for a released handle. */
OHM_API uint64_t ohm_buf_id(const ohm_buf *b);
/* 0 if b is still the live buffer id named, else OHM_ESTATE ("released" or "handle reused"). */
OHM_API int ohm_buf_check(const ohm_buf *b, uint64_t id);

/* Slices: [off, off+len) of b, sharing its memory. OHM_ERANGE for a range outside b, OHM_ESTATE if released. */
OHM_API ohm_buf *ohm_buf_slice(ohm_buf *b, size_t off, size_t len);
OHM_API ohm_buf *ohm_buf_duplicate(ohm_buf *b);
OHM_API ohm_buf *ohm_buf_retained_slice(ohm_buf *b, size_t off, size_t len);

/* Checked access: every offset+length is checked for overflow and against the size (OHM_ERANGE, with the
 * numbers in the message), and the buffer must be live (OHM_ESTATE). copy is overlap-safe. */
OHM_API int ohm_buf_read(const ohm_buf *b, size_t off, void *dst, size_t len);
OHM_API int ohm_buf_write(ohm_buf *b, size_t off, const void *src, size_t len);
OHM_API int ohm_buf_copy(ohm_buf *dst, size_t dst_off, const ohm_buf *src, size_t src_off, size_t len);
OHM_API int ohm_buf_fill(ohm_buf *b, size_t off, uint8_t byte, size_t len);
/* A checked pointer to [off, off+len) for callers that access memory themselves (bindings, libffi). */
OHM_API int ohm_buf_span(const ohm_buf *b, size_t off, size_t len, void **ptr);
/* The same range check without a buffer: 0 or OHM_ERANGE with the message every binding shows. */
OHM_API int ohm_range_check(size_t size, size_t off, size_t len);

/* Cleaner protocol: the host's GC found the handle unreachable. If the handle is still buffer id with a count
 * above 0, the memory is freed and a leak is reported (reason OHM_LEAK_GC); for a plain slice or duplicate
 * only the handle is dropped (its owner is reported on its own). A retained slice is reported as itself (its
 * size, site and access records); the reference it held on its parent is released, and the parent is reported
 * only if its own users leaked it too. A no-op (returns 0) after release or for a stale id; 1 when it
 * reclaimed. The handle must not be used afterwards. */
OHM_API int ohm_buf_reclaim(ohm_buf *b, uint64_t id);

/* Access record for the leak detector (levels ADVANCED and PARANOID); hint may be NULL; copied. */
OHM_API int ohm_buf_touch(ohm_buf *b, const char *hint);
/* Whether the leak detector tracks b, and attaching the host's site text (a Java stack trace, a Lua
 * traceback) to its creation record: hosts build the text only for tracked buffers.
 * Records: a root and each retained slice (or retained duplicate) has its own, tracked by the same sampling
 * rule and level (its pool's) as a new buffer; plain slices and duplicates use the record of the buffer whose
 * count they share. touch and set_site write to that record only, never to a retained slice's parent's. */
OHM_API bool ohm_buf_tracked(const ohm_buf *b);
OHM_API int ohm_buf_set_site(ohm_buf *b, const char *host_site);

/* Parked buffers: a host's per-thread magazines of ready buffers, lent and taken back without calling into ohm.
 *
 * A buffer's first 8 bytes are its state word, a generation in the high 32 bits (odd while the header is live)
 * and the count in the low 32, changed only by atomic operations on the whole word. A parked buffer is a live
 * pool root at count 0 with no leak record: to every ohm call it is released (OHM_ESTATE), ohm_buf_reclaim does
 * nothing to it, and destroying its pool ends it without a leak report. Its holder (one thread at a time) may:
 *  - lend it as a new buffer: with g its generation, write g + 2 (mod 2^32, still odd) into both generation
 *    words and its size into the size word (at most the size it was made with), then store (g + 2, 1) over
 *    (g, 0) with release order. Its id is then (g + 2) << 32 | (the id's low 32 bits): every earlier id and
 *    every CAS made against generation g fail from then on. Nobody else changes a parked word, since every ohm
 *    call expects a count of at least 1;
 *  - retain and release it while lent, by CAS of (g, c) to (g, c + k) or (g, c - k) with a result of at least 1
 *    and at most INT32_MAX, or to (g, 0) on the last release of a buffer that never had a slice, duplicate,
 *    retained slice or leak record: it is parked again, and the thread that made that CAS holds it. Any other
 *    last release is ohm_buf_release's;
 *  - end it with ohm_buf_free_parked.
 * Any other word (a count the host does not hold, a generation that moved) belongs to the runtime. Poisoning,
 * zeroing and guard pages act at each allocation and free, so a pool with them makes no parked buffers. */
typedef struct ohm_buf_parked {
    ohm_buf *buf;
    void *data;
    uint64_t id; /* as ohm_buf_id: generation and header index */
} ohm_buf_parked;
/* Up to n parked buffers of size bytes into out; how many were made (0 for a poisoning, zeroing or guarded
 * pool; fewer than n with OHM_ENOMEM set when memory ran out). */
OHM_API size_t ohm_buf_alloc_parked(ohm_pool *pool, size_t size, ohm_buf_parked *out, size_t n);
/* Ends parked buffers (memory back to the pool, headers reused); one whose word is not (its id's generation, 0)
 * is left alone and logged, never freed. How many were ended. */
OHM_API size_t ohm_buf_free_parked(const ohm_buf_parked *in, size_t n);
/* Byte offsets inside a buffer of what a lend writes: the state word (uint64_t), the size (size_t) and the two
 * generation words (uint32_t). */
typedef struct ohm_buf_layout {
    size_t state, size, gen1, gen2;
} ohm_buf_layout;
OHM_API void ohm_buf_parked_layout(ohm_buf_layout *out);
/* A leak record for a live root buffer whatever the level and sampling say (a host that samples by itself):
 * it is then tracked as if ohm_buf_alloc had sampled it. OHM_EINVAL for a slice, OHM_ESTATE once released. */
OHM_API int ohm_buf_track(ohm_buf *b);

/* Seals a buffer read-only (mprotect) or unseals it. Only for buffers that own their pages: allocated with the
 * guard option, or mapped read-write. OHM_EINVAL otherwise. Writes through ohm_buf_* to a sealed buffer are
 * OHM_ESTATE; a direct write through ohm_buf_data faults (that is the point). */
OHM_API int ohm_buf_seal(ohm_buf *b, bool sealed);
/* Whether writes to b's memory are refused: a read-only mapping (file or shared memory) or a sealed buffer.
 * A host must not hand out a writable pointer or view of such memory (a store through it faults). false for a
 * released handle. */
OHM_API bool ohm_buf_readonly(const ohm_buf *b);

/* Guard pages (debug option): buffers of at least guard_min bytes get a mapping of their own that ends right
 * before an inaccessible page, so an overflow past the end faults at once (the fault is meant to stop the
 * program under a debugger). Such buffers own their pages and can be sealed. 0 (the default) turns guards off;
 * process-wide, changeable at run time; OHM_DEBUG_GUARD=<min size> sets it at first use. Poisoning is a pool
 * option: see ohm_pool_config.poison. */
OHM_API void ohm_buf_set_guard(size_t guard_min);
OHM_API size_t ohm_buf_get_guard(void);

/* ---------------------------------------------------------------------------------------------------------
 * Leak detector (Netty's levels)
 * OFF; SIMPLE: 1 in sample_interval allocations tracked (creation site only); ADVANCED: sampled, plus access
 * records; PARANOID: every allocation, access records. At most 4 access records per buffer: beyond that a new
 * record replaces the newest with probability 1 - 1/2^(n-4) (n records seen), else the oldest; the newest is
 * always kept and the dropped count reported. Identical reports are reported once.
 * Settings are process-wide, changeable at run time, and read from OHM_LEAK_LEVEL (off|simple|advanced|paranoid)
 * and OHM_LEAK_SAMPLE at first use.
 * ------------------------------------------------------------------------------------------------------- */

typedef enum ohm_leak_level { OHM_LEAK_OFF = 0, OHM_LEAK_SIMPLE, OHM_LEAK_ADVANCED, OHM_LEAK_PARANOID } ohm_leak_level;
typedef enum ohm_leak_reason {
    OHM_LEAK_GC = 0,       /* a host GC reclaimed a buffer that was never released */
    OHM_LEAK_POOL_DESTROY, /* its pool was destroyed while it was live */
    OHM_LEAK_CHECKPOINT    /* still live at ohm_leak_check after the mark */
} ohm_leak_reason;

#define OHM_LEAK_MAX_RECORDS 4
#define OHM_LEAK_MAX_FRAMES  32

typedef struct ohm_leak_record {
    const char *hint;                  /* touch hint or NULL */
    const char *host_site;             /* creation record: the host's site text or NULL */
    void *frames[OHM_LEAK_MAX_FRAMES]; /* native return addresses, innermost first */
    unsigned nframes;
    uint64_t time_ns; /* monotonic */
    uint64_t thread;  /* an id of the recording thread */
} ohm_leak_record;

typedef struct ohm_leak_report {
    ohm_leak_reason reason;
    uint64_t buffer_id; /* ohm_buf_id at creation */
    size_t size;
    ohm_buf_origin origin;
    const char *pool; /* pool name, or NULL */
    ohm_leak_record created;
    unsigned nrecords; /* access records, oldest first */
    ohm_leak_record records[OHM_LEAK_MAX_RECORDS];
    uint64_t dropped;    /* access records not kept */
    uint64_t duplicates; /* identical reports suppressed before this one */
    const char *text;    /* the whole report as text (what leaked, size, creation, recent accesses) */
} ohm_leak_report;

/* Receives each report (valid during the call only), possibly from any thread. Default: the log at WARN. */
typedef void ohm_leak_handler(void *arg, const ohm_leak_report *report);
OHM_API void ohm_leak_set_handler(ohm_leak_handler *fn, void *arg);
OHM_API void ohm_leak_set_level(ohm_leak_level level);
OHM_API ohm_leak_level ohm_leak_get_level(void);
/* 1 in interval allocations is tracked at SIMPLE and ADVANCED (default 128; 0 is treated as 1). */
OHM_API void ohm_leak_set_sample_interval(uint32_t interval);
OHM_API uint32_t ohm_leak_get_sample_interval(void);
/* Per-pool settings, so that two hosts in one process (two lua_States) do not share them: buffers of pool are
 * tracked at level (-1: follow the process-wide level again) with 1 in interval sampled (0: the process's
 * interval). The getters give what applies to pool now. */
OHM_API int ohm_pool_set_leak(ohm_pool *pool, int level, uint32_t interval);
OHM_API ohm_leak_level ohm_pool_get_leak_level(const ohm_pool *pool);
OHM_API uint32_t ohm_pool_get_leak_sample_interval(const ohm_pool *pool);
/* A checkpoint: mark now; later, report (reason CHECKPOINT) every tracked buffer created since the mark that is
 * still live, to fn (NULL = the handler). Returns how many, or a negative code. It is not a snapshot: a buffer
 * another thread makes or releases while the check runs may or may not be in it. */
OHM_API uint64_t ohm_leak_mark(void);
OHM_API int64_t ohm_leak_check(uint64_t mark, ohm_leak_handler *fn, void *arg);
/* Writes the report as one JSON object into out (NUL-terminated, truncated to cap); returns the full length. */
OHM_API size_t ohm_leak_report_json(const ohm_leak_report *report, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------------------------
 * Leak scopes: deterministic leak checks for tests and stress iterations
 * A scope tracks every buffer (roots and retained slices) that the threads belonging to it allocate while it is
 * open, whatever the level and sampling (as PARANOID: creation site with the host's site text, access records);
 * closing it lists those still live. Buffers made outside every scope are never blamed on one, and cost what
 * they cost without scopes. A scope is named by a nonzero id (0 is "none").
 *  - open: a new scope, nested in the calling thread's current one (if any), which the thread now belongs to.
 *    A buffer belongs to the innermost scope of the thread that made it; an inner scope's buffers are not its
 *    parent's.
 *  - join/leave: another thread belongs to an open scope from join until leave (or its exit). A host makes a new
 *    thread inherit its creator's scope by passing ohm_leak_scope_current() to it and joining there. join is
 *    OHM_ESTATE when the thread already belongs to a scope (one it opened, or joined even if closed since),
 *    OHM_EINVAL for an id that is not open (never opened, closed already); leave is OHM_ESTATE on a thread that
 *    did not join (the opener closes instead) and while a scope the thread opened inside the joined one is open.
 *    A joined thread whose scope closed belongs to none and should still leave.
 *  - close: only by the thread that opened it (OHM_EPERM otherwise), innermost first (OHM_ESTATE while a scope
 *    opened inside it, by this thread or a joined one, is open), once (OHM_EINVAL for an id not open). It waits
 *    up to wait_ms for the scope's live buffers to be released by other threads, then ends the scope (the thread
 *    belongs to the parent again) and, with out non-NULL, gives the buffers still live as a list (reason
 *    OHM_LEAK_CHECKPOINT, creation order) to free with ohm_leak_list_free. Returns how many are live (>= 0) or a
 *    negative code; on a code the scope stays open and *out is NULL. With no memory for the list the scope
 *    ends and OHM_ENOMEM is returned. A scoped buffer a host GC reclaims or a pool destruction frees while the
 *    scope is open is reported to the handler as usual, and is in the list too (counted) with that reason.
 *    Buffers still live after the close stay tracked and are released as usual.
 *  - thread exit: a thread that exits with scopes it opened still open (a test thread that died before its
 *    close) ends them, innermost first, as a close would, and reports each buffer still live in them to the
 *    leak handler (reason OHM_LEAK_CHECKPOINT, the handler's thread is the exiting one): the leaks are not lost
 *    and the scopes hold nothing after. Their ids are then closed (OHM_EINVAL) for every thread, and a scope a
 *    joined thread opened inside one of them stays open until that thread closes it. Then the thread leaves the
 *    scope it joined. The process's main thread runs no exit step (exit() ends the process).
 *  - ids: 1, 2, 3, ... in opening order, never reused in a process, so a stale id is OHM_EINVAL, never another
 *    scope.
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_leak_list {
    size_t count;             /* reports */
    uint64_t bytes;           /* their sizes added */
    ohm_leak_report *reports; /* count reports; every string is owned by the list */
} ohm_leak_list;

/* The new scope's id, or 0 with OHM_ENOMEM. */
OHM_API uint64_t ohm_leak_scope_open(void);
OHM_API int ohm_leak_scope_join(uint64_t scope);
OHM_API int ohm_leak_scope_leave(void);
/* The scope the calling thread's allocations belong to now, 0 for none. */
OHM_API uint64_t ohm_leak_scope_current(void);
/* How many buffers of an open scope are live now, or OHM_EINVAL for an id not open. */
OHM_API int64_t ohm_leak_scope_live(uint64_t scope);
OHM_API int64_t ohm_leak_scope_close(uint64_t scope, uint32_t wait_ms, ohm_leak_list **out);
/* NULL is a no-op. */
OHM_API void ohm_leak_list_free(ohm_leak_list *list);
/* The list as {"leaks":N,"bytes":B,"reports":[<ohm_leak_report_json objects>]} into out (NUL-terminated,
 * truncated to cap); returns the full length. */
OHM_API size_t ohm_leak_list_json(const ohm_leak_list *list, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------------------------
 * Mapped files and shared memory as buffers
 * ------------------------------------------------------------------------------------------------------- */

#define OHM_MAP_READ            0x1 /* always implied */
#define OHM_MAP_WRITE           0x2 /* MAP_SHARED read-write: writes reach the file */
#define OHM_MAP_CREATE          0x4 /* create the file if missing and extend it to offset+length */
#define OHM_MAP_SYNC_ON_RELEASE 0x8 /* msync at the last release (write mappings) */

/* Maps [offset, offset+length) of path as a buffer (length 0 = to the end of the file). Unmapped at the last
 * release. OHM_ESYS (errno kept) for file errors, OHM_ERANGE when the region passes the end without CREATE. */
OHM_API ohm_buf *ohm_buf_map_file(const char *path, uint64_t offset, size_t length, unsigned flags);
/* msync of [off, off+len) of a mapped buffer (len 0 = all of it). OHM_EINVAL for a buffer that is not mapped. */
OHM_API int ohm_buf_sync(ohm_buf *b, size_t off, size_t len);
/* Shared memory. create makes a new object of size bytes (zeroed) named name ("/name", POSIX shm; OHM_ESYS with
 * errno EEXIST if the name exists), or an anonymous memfd when name is NULL (shared with children across fork).
 * open maps an existing named object whole. A second process that opens the name sees the first one's writes.
 * ohm_shm_unlink removes the name; mappings stay valid until their last release. */
OHM_API ohm_buf *ohm_buf_shm_create(const char *name, size_t size);
OHM_API ohm_buf *ohm_buf_shm_open(const char *name, bool writable);
OHM_API int ohm_shm_unlink(const char *name);

/* ---------------------------------------------------------------------------------------------------------
 * Memory manager (Spark's UnifiedMemoryManager, TaskMemoryManager and MemoryStore eviction, same numbers)
 *
 * Two modes, each with an execution pool and a storage pool whose sizes always sum to the mode's max; the
 * storage region is max * storage_fraction. OFF_HEAP pages are allocated from a pool; ON_HEAP is accounting only
 * (for memory the host allocates itself). Execution borrows free storage and evicts cached blocks down to the
 * region; storage borrows free execution memory but never evicts it. Each task gets between 1/(2N) and 1/N of
 * a mode's execution memory (N = tasks holding or asking for it in that mode), waiting for its minimum.
 * Callbacks (spill, evict) run without the manager's lock: they may acquire, release, free pages or remove
 * blocks. Sizes above INT64_MAX are OHM_EINVAL.
 * ------------------------------------------------------------------------------------------------------- */

typedef struct ohm_mm ohm_mm;
typedef struct ohm_task ohm_task;
typedef struct ohm_consumer ohm_consumer;

typedef enum ohm_mem_mode { OHM_ON_HEAP = 0, OHM_OFF_HEAP = 1 } ohm_mem_mode;
#define OHM_MM_MODES         2
#define OHM_MM_RESERVED_HEAP ((uint64_t)300 << 20) /* Spark's reserved system memory */

typedef struct ohm_mm_config {
    uint64_t max_bytes[OHM_MM_MODES]; /* per mode                          OHM_MM_ON_HEAP, OHM_MM_OFF_HEAP 0 */
    double storage_fraction;          /* storage region = max * this, in [0,1]      OHM_MM_STORAGE_FRACTION 0.5 */
    size_t page_size;                 /* smallest page a consumer allocates          OHM_MM_PAGE_SIZE 1M */
    uint64_t wait_timeout_ms;         /* how long an acquire waits for its fair share; UINT64_MAX = no limit
                                                                               OHM_MM_WAIT_TIMEOUT_MS none  */
    ohm_pool *pool;                   /* OFF_HEAP pages come from it; NULL = the default pool */
} ohm_mm_config;

/* Fills cfg with the defaults, then applies the OHM_MM_* environment variables named above. */
OHM_API void ohm_mm_config_init(ohm_mm_config *cfg);
/* Sizes the ON_HEAP mode the way Spark sizes a JVM: max = (heap - 300 MiB) * fraction (fraction <= 0 means
 * 0.6, truncated to whole bytes). OHM_EINVAL, with Spark's "System memory N must be at least 471859200..."
 * message, for a heap under 1.5 x 300 MiB or a fraction above 1; cfg is then unchanged. */
OHM_API int ohm_mm_config_from_heap(ohm_mm_config *cfg, uint64_t heap_bytes, double fraction);

/* A manager (cfg NULL = defaults). NULL with OHM_EINVAL for a bad config or OHM_ENOMEM. */
OHM_API ohm_mm *ohm_mm_create(const ohm_mm_config *cfg);
/* Drops every cached block (its reference is released, no evict callback) and frees the manager. OHM_ESTATE
 * (nothing changes) while tasks are live or pages of ended tasks are still referenced. */
OHM_API int ohm_mm_destroy(ohm_mm *mm);

/* A task with a caller-chosen id (OHM_EINVAL if a live task has it). It joins a mode's fair share at its first
 * acquire in that mode and leaves it when it holds 0 bytes there again. */
OHM_API ohm_task *ohm_task_create(ohm_mm *mm, uint64_t id);
OHM_API uint64_t ohm_task_id(const ohm_task *t);
/* Ends the task: frees its pages (live page buffers are reclaimed; their handles must not be used again),
 * destroys its consumers, releases its execution and unroll memory and wakes waiters. Returns the execution
 * bytes it still held (pages included), logged at WARN as "memory leak detected in task T: N bytes" when
 * nonzero. No other call on t (or its consumers) may run during or after it. */
OHM_API int64_t ohm_task_end(ohm_task *t);
/* Execution memory without a consumer (no spilling): returns the bytes granted (0..n, Spark's rule), waiting
 * while the task is below its 1/(2N) share. OHM_ETIMEDOUT after the wait timeout, OHM_ECANCELED after
 * ohm_mm_cancel_task; nothing is granted then. */
OHM_API int64_t ohm_task_acquire(ohm_task *t, ohm_mem_mode mode, uint64_t n);
/* Releases n bytes; more than the task holds releases what it holds (and logs at WARN). Returns the bytes
 * released. Wakes waiting tasks. */
OHM_API int64_t ohm_task_release(ohm_task *t, ohm_mem_mode mode, uint64_t n);
/* The wait limit of this task's acquires (starts as the config's). */
OHM_API void ohm_task_set_wait_timeout(ohm_task *t, uint64_t timeout_ms);
/* Interrupts task id's acquire (a host's Thread.interrupt): the wait or spill round in progress, or the next one
 * if none is, returns OHM_ECANCELED (a spill round sees it before and after each spill call). Any thread;
 * OHM_EINVAL if no live task has the id. */
OHM_API int ohm_mm_cancel_task(ohm_mm *mm, uint64_t task_id);
/* Unroll memory (storage rules, charged to the task until released or the task ends); group names the block
 * being unrolled, whose group is never evicted for it (NULL = none). 0 or OHM_ELIMIT. */
OHM_API int ohm_task_acquire_unroll(ohm_task *t, ohm_mem_mode mode, const char *group, uint64_t n);
OHM_API int64_t ohm_task_release_unroll(ohm_task *t, ohm_mem_mode mode, uint64_t n);

/* A consumer's spill: free about size bytes (ohm_consumer_release, or releasing page buffers) and return the
 * bytes released, 0 if none, or a negative OHM_E* code that fails the triggering acquire. trigger is the
 * consumer whose acquire asked (possibly this one). Runs on the acquiring thread, without the manager's lock.
 * The runtime measures what the consumer released during the call and trusts that, not the result: a result
 * above it fails the acquire with OHM_ECALLBACK ("spill of consumer X reported N bytes but released M"); one
 * below it (0 included) is credited what was released. A consumer is asked again in the same acquire only
 * while each spill takes its usage lower than the previous ones did and the requester is granted some of it
 * (Spark asks again whenever bytes are reported); one that released nothing, took it back, or whose release
 * cannot reach the requester (its task above its fair share, another task faster) is not asked again. */
typedef int64_t ohm_spill_fn(void *arg, uint64_t size, ohm_consumer *trigger);

/* A consumer of task t in mode; spill may be NULL (never asked); name is copied (NULL = "consumer"). A task's
 * consumers must not be destroyed while another thread acquires for the task. */
OHM_API ohm_consumer *ohm_consumer_create(ohm_task *t, ohm_mem_mode mode, const char *name, ohm_spill_fn *spill,
                                          void *arg);
/* Releases what the consumer still holds and frees it. OHM_ESTATE while it has live pages. */
OHM_API int ohm_consumer_destroy(ohm_consumer *c);
/* Acquires up to n bytes for c; when fewer are granted, asks other consumers of the task and mode to spill
 * (Spark's order: the smallest whose usage covers what is missing, else the largest; c itself last). Returns
 * the bytes granted (possibly fewer than n), or a spill's error (nothing granted; what spills released stays
 * released), or OHM_ETIMEDOUT / OHM_ECANCELED. */
OHM_API int64_t ohm_consumer_acquire(ohm_consumer *c, uint64_t n);
/* Releases n bytes of c (clamped to what c holds, logged). Returns the bytes released. */
OHM_API int64_t ohm_consumer_release(ohm_consumer *c, uint64_t n);
/* A page: a pool buffer of at least size bytes charged to c (max(size, page_size) is asked, spilling as
 * ohm_consumer_acquire; the buffer is as large as what was granted). Its last release frees the memory and
 * returns the accounting. OFF_HEAP consumers only (OHM_EINVAL). NULL with OHM_ELIMIT when fewer than size bytes
 * could be granted (then nothing stays charged), OHM_ENOMEM, or a spill's error. */
OHM_API ohm_buf *ohm_consumer_alloc_page(ohm_consumer *c, size_t size);
OHM_API uint64_t ohm_consumer_used(const ohm_consumer *c);
/* The arg given at creation (how a binding maps a spill's trigger back to its host object). */
OHM_API void *ohm_consumer_arg(const ohm_consumer *c);
/* fn(arg) runs when the consumer is freed, by ohm_consumer_destroy or by ohm_task_end, without the manager's
 * lock: how a binding frees what it keeps per consumer. Set it before the consumer is used by other threads. */
typedef void ohm_consumer_free_fn(void *arg);
OHM_API void ohm_consumer_on_free(ohm_consumer *c, ohm_consumer_free_fn *fn);

/* An eviction: the cache drops block_id after this returns 0 (it releases its own reference on buf, which is
 * NULL for accounting-only blocks); retain buf to keep it, or write it elsewhere. Nonzero keeps the block cached
 * and fails the acquire that caused the eviction (the code is passed on if it is an OHM_E* code, else
 * OHM_ECALLBACK). Runs without the manager's lock. */
typedef int ohm_evict_fn(void *arg, const char *block_id, ohm_buf *buf);

/* Caches buf as block_id (copied) in group (copied; NULL = none) under mode's storage memory, charging size
 * bytes (0 = ohm_buf_size(buf)); buf may be NULL for a block the host keeps itself (size then required). The
 * cache takes its own reference on buf. Evicts least recently used blocks of the same mode and another group
 * if needed, all or nothing, skipping pinned ones. OHM_ELIMIT if it does not fit, OHM_EINVAL if the id is
 * cached, or an eviction's error. */
OHM_API int ohm_block_put(ohm_mm *mm, const char *block_id, const char *group, ohm_mem_mode mode, ohm_buf *buf,
                          uint64_t size, ohm_evict_fn *evict, void *arg);
/* Pins a block for reading (it cannot be evicted or removed until unpinned) and marks it most recently used;
 * *buf gets the cached buffer (valid while pinned; NULL for accounting-only blocks). OHM_EINVAL if not cached,
 * OHM_ESTATE while it is being evicted. */
OHM_API int ohm_block_pin(ohm_mm *mm, const char *block_id, ohm_buf **buf);
OHM_API int ohm_block_unpin(ohm_mm *mm, const char *block_id);
/* Removes a block without calling its evict callback and releases the cache's reference. OHM_ESTATE while
 * pinned or being evicted, OHM_EINVAL if not cached. */
OHM_API int ohm_block_remove(ohm_mm *mm, const char *block_id);

typedef struct ohm_mm_mode_stats {
    uint64_t max, storage_region;
    uint64_t execution_pool, execution_used;
    uint64_t storage_pool, storage_used; /* storage_used includes unroll memory */
    uint64_t tasks;                      /* tasks in this mode's fair share */
} ohm_mm_mode_stats;

typedef struct ohm_mm_stats {
    ohm_mm_mode_stats mode[OHM_MM_MODES];
    uint64_t tasks;                    /* live tasks */
    uint64_t blocks, block_bytes;      /* cached now */
    uint64_t evictions, evicted_bytes; /* cumulative */
    uint64_t pages;                    /* live page buffers */
} ohm_mm_stats;

typedef struct ohm_task_stats {
    uint64_t id;
    uint64_t used[OHM_MM_MODES]; /* execution bytes held */
    uint64_t unroll[OHM_MM_MODES];
    uint64_t peak;                /* largest used[ON_HEAP] + used[OFF_HEAP] */
    uint64_t spills, spill_bytes; /* spills of its consumers and what they reported released */
    uint64_t waits, wait_ns;      /* waits for a fair share and their total time */
    uint64_t evictions;           /* blocks evicted for its acquires */
    uint64_t consumers;
    bool waiting; /* in a wait now */
} ohm_task_stats;

typedef struct ohm_consumer_stats {
    uint64_t used, peak, spills, spill_bytes, pages;
} ohm_consumer_stats;

/* Snapshots, consistent with each other (taken under the manager's lock). */
OHM_API int ohm_mm_stats_get(ohm_mm *mm, ohm_mm_stats *out);
OHM_API int ohm_task_stats_get(ohm_task *t, ohm_task_stats *out);
OHM_API int ohm_consumer_stats_get(ohm_consumer *c, ohm_consumer_stats *out);
/* The execution and storage bytes used by every manager of the process (created, not destroyed), both modes,
 * added: for a monitor that does not hold the managers (ohm-stress samples it). Each manager is read under its
 * lock in turn, so the sum is not one instant's; it takes every manager's lock, so not for a hot path. */
OHM_API uint64_t ohm_mm_used_all(void);
/* The whole manager as one JSON object (modes, tasks with their consumers, block counts) into out
 * (NUL-terminated, truncated to cap); returns the full length, as snprintf does. */
OHM_API size_t ohm_mm_snapshot_json(ohm_mm *mm, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------------------------
 * OS helpers
 * ------------------------------------------------------------------------------------------------------- */

/* The physical address backing addr, through /proc/self/pagemap. OHM_EPERM when the process may not see frame
 * numbers (needs CAP_SYS_ADMIN), OHM_EINVAL when the page is not resident, OHM_ESYS if pagemap cannot be read. */
OHM_API int ohm_virt_to_phys(const void *addr, uint64_t *phys);

/* Fault injection for tests: make OS maps fail. every_nth > 0 fails every nth map from now on; fraction in
 * (0,1] fails that share at random (seeded). Both 0 turns injection off. Metadata allocations count as maps.
 * Returns the number of failures injected so far. Process-wide. */
OHM_API void ohm_fault_inject(uint64_t every_nth, double fraction, uint64_t seed);
OHM_API uint64_t ohm_fault_injected(void);

#ifdef __cplusplus
}
#endif
#endif /* OHM_H */
