/* ohm-bench alloc: the pool allocator against glibc malloc, jemalloc, mimalloc and tcmalloc.
 *
 * Three parts: bench_alloc.c is the driver (options, one child process per run, aggregation, tables and JSON)
 * and the child's frame around a workload; bench_alloc_impl.c finds the peers' libraries and, in the child,
 * binds the allocator under test; bench_alloc_workloads.c holds the workloads.
 */
#ifndef OHM_BENCH_ALLOC_H
#define OHM_BENCH_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench_util.h" /* bench_result */

/* ---- the allocators --------------------------------------------------------------------------------------- */

typedef enum alloc_impl {
    ALLOC_OHM = 0,  /* ohm_alloc / ohm_free, statically linked */
    ALLOC_GLIBC,    /* malloc / free with nothing preloaded */
    ALLOC_JEMALLOC, /* malloc / free with the peer's library in LD_PRELOAD */
    ALLOC_MIMALLOC,
    ALLOC_TCMALLOC,
    ALLOC_IMPL_COUNT
} alloc_impl;

/* The allocator under test as a child calls it. Workloads go through these pointers, which the compiler
 * cannot see through, so it can neither inline an allocator nor elide an alloc/free pair. Frees go through
 * alloc_free below. */
typedef struct alloc_api {
    alloc_impl impl;
    void *(*alloc)(size_t size);               /* NULL results are the workload's to check (alloc_oom) */
    void (*free)(void *p);                     /* a peer's free; NULL for ohm */
    int (*free_rc)(void *p);                   /* ohm_free, whose nonzero result must not be ignored; NULL for peers */
    void (*trim)(const struct alloc_api *api); /* give free memory back to the OS now (see alloc_impl_bind) */
    void (*trim_fn)(void);                     /* the peer's trim entry point (dlsym), cast back by trim */
} alloc_api;

/* "ohm", "glibc", ... */
const char *alloc_impl_name(alloc_impl impl);
/* The impl with that name, or -1. */
int alloc_impl_parse(const char *name);
/* Parent side. The library a child must preload for impl: ohm and glibc need none (returns true, path "").
 * A peer's library comes from $OHM_BENCH_<PEER> if set, else from the first of the multiarch and usual
 * library directories that holds it. Returns false with why filled if it cannot be used. */
bool alloc_impl_preload(alloc_impl impl, char *path, size_t cap, char *why, size_t why_cap);
/* Child side. Checks that the malloc this process runs is the one impl names (the preload took, or nothing
 * is preloaded for ohm and glibc), and fills api. Exits with status 3 and a clear message otherwise. */
void alloc_impl_bind(alloc_impl impl, alloc_api *api);

/* Exits with a clear message (status 4): ohm_free refused p. */
__attribute__((noreturn)) void alloc_free_failed(const alloc_api *a, void *p);

/* Frees p with whichever free the allocator has. One predictable branch for every allocator alike, instead
 * of a wrapper around ohm_free that would put an extra call on ohm's side only. */
static inline void alloc_free(const alloc_api *a, void *p)
{
    if (a->free_rc) {
        if (__builtin_expect(a->free_rc(p) != 0, 0)) alloc_free_failed(a, p);
    } else {
        a->free(p);
    }
}

/* ---- the workloads ---------------------------------------------------------------------------------------- */

typedef struct alloc_workload alloc_workload;
struct alloc_workload {
    const char *name;
    unsigned threads;
    size_t size;      /* pair-*: the block size */
    unsigned variant; /* batch-*: the free order */
    uint64_t count;   /* how much work at --scale 1, in units */
    const char *unit; /* what one of count is: "pairs", "rounds", ... */
    const char *summary;
    /* Runs the workload over a: calls bench_mark_start just before its first allocation (once its bookkeeping
     * is mapped and its threads wait at the start line, so neither counts the harness), times the work, fills
     * ops, ns and live_peak (an upper bound where a workload says so), and frees every block before returning. */
    void (*run)(const alloc_workload *w, const alloc_api *a, double scale, bench_result *r);
};

/* The i-th workload in the fixed order of the issue, or NULL past the end. */
const alloc_workload *alloc_workload_at(size_t i);
const alloc_workload *alloc_workload_find(const char *name);

/* Zeroed, resident memory for a workload's own bookkeeping, straight from mmap: the allocator under test
 * neither serves it nor is charged for it (it is resident from rss_before to rss_after and unmapped by the
 * frame afterwards). One per run. */
void *alloc_book(size_t size);

/* ---- block stamps: every block is written, and checked before it is freed --------------------------------- */

/* Writes tag into the first and last 8 bytes of a block of size >= 16 (a block that an allocator handed out
 * twice would have one of its stamps overwritten). */
static inline void alloc_stamp(void *p, size_t size, uint64_t tag)
{
    memcpy(p, &tag, sizeof tag);
    memcpy((char *)p + size - sizeof tag, &tag, sizeof tag);
}

static inline bool alloc_stamp_ok(const void *p, size_t size, uint64_t tag)
{
    uint64_t head, tail;
    memcpy(&head, p, sizeof head);
    memcpy(&tail, (const char *)p + size - sizeof tail, sizeof tail);
    return head == tag && tail == tag;
}

/* The tag of the i-th block of a stream: distinct within a stream (an odd multiplier is a bijection); streams
 * whose blocks can meet use distinct salts. */
static inline uint64_t alloc_tag(uint64_t salt, uint64_t i) { return ((i + 1) * 0x9E3779B97F4A7C15ull) ^ (salt << 48); }

/* Exit with a clear message (status 4): the allocator returned NULL, or a block's stamp changed. */
__attribute__((noreturn)) void alloc_oom(const alloc_api *a, const char *workload, size_t size);
__attribute__((noreturn)) void alloc_corrupt(const alloc_api *a, const char *workload, const void *p, size_t size);

#endif /* OHM_BENCH_ALLOC_H */
