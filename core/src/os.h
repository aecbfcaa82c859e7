/* The one door to the kernel. Only os.c calls mmap, munmap, madvise, mlock and reads /proc.
 * Every function returns 0 or a negative OHM_E* code with the last error set (errno kept for OHM_ESYS).
 * Maps and metadata allocations pass through the fault-injection switch (ohm_fault_inject). */
#ifndef OHM_OS_H
#define OHM_OS_H

#include "internal.h"

#include <pthread.h>
#include <time.h>

#pragma GCC visibility push(hidden)

enum {
    OS_MAP_HUGETLB = 1 << 0, /* try MAP_HUGETLB first; *huge_out tells whether it held */
};

/* Maps size bytes (a page multiple) of zeroed anonymous memory aligned to align (a power of two >= page).
 * *huge_out (may be NULL) is set to 1 when the mapping uses MAP_HUGETLB. */
int os_map(size_t size, size_t align, int flags, void **out, int *huge_out);
/* Unmaps [p, p+size). */
int os_unmap(void *p, size_t size);
/* Gives the pages of [p, p+size) back to the kernel; they read as zero afterwards (MADV_DONTNEED). */
int os_purge(void *p, size_t size);
/* Hints: transparent huge pages, KSM merging. Failure is reported but harmless. */
int os_advise_hugepage(void *p, size_t size);
int os_advise_mergeable(void *p, size_t size);
/* mprotect of whole pages: OS_PROT_NONE (a guard), OS_PROT_READ (sealed) or OS_PROT_RW. */
enum { OS_PROT_NONE = 0, OS_PROT_READ = 1, OS_PROT_RW = 2 };
int os_protect(void *p, size_t size, int mode);
/* mlock / munlock. */
int os_lock(void *p, size_t size);
int os_unlock(void *p, size_t size);

/* Whether the fault-injection switch fails this map (for the other os* files' maps); counts the failure. */
int os_fault_now(void);
/* Zeroed memory for the allocator's own metadata (not counted as pool memory); page granular. */
void *os_meta_alloc(size_t size);
void os_meta_free(void *p, size_t size);

/* ---- stack walking ----
 * A frame-pointer walk: each frame's saved frame pointer sits at [fp] and its return address at [fp + 8]. It
 * reads only inside this thread's stack and only upward, so a caller compiled without frame pointers ends the
 * walk early instead of faulting. About 2 ns a frame, against glibc backtrace()'s DWARF unwinding at about
 * 200 ns a frame (measured), which is what makes tracking every allocation (PARANOID) affordable. Inline, so that
 * the leak detector's entry points walk with no call. */

/* This thread's stack, [lo, hi); 0 until its first walk. */
extern OHM_TLS uintptr_t os__stack_lo, os__stack_hi;
/* A thread's first walk: finds the bounds, then walks. */
OHM_NOINLINE int os_backtrace_first(const void *start, const void *anchor, void **frames, int max);

/* The frame above fp's, or 0 where the chain stops: it must lie higher, with its two words at or below lim (the
 * stack's end less two words). Alignment is not checked: an x86-64 or AArch64 load need not be aligned, and the
 * bounds alone keep every read inside the stack. */
static inline uintptr_t os_frame_up(uintptr_t fp, uintptr_t lim)
{
    uintptr_t next = ((uintptr_t *)fp)[0];
    return next > fp && next <= lim ? next : 0;
}

/* Return addresses of a running function's frame and its callers', innermost first (that function's return
 * address first), by walking frame pointers within the calling thread's stack. start is the function's frame
 * address (__builtin_frame_address(0) in it or in what is inlined into it); it must not have returned. With
 * anchor, the walk starts at the first frame (among the first max) whose return address is anchor, which is
 * then frames[0]; with none, at start. Returns the count; never faults, stops early in code without frame
 * pointers. */
static inline int os_backtrace(const void *start, const void *anchor, void **frames, int max)
{
    if (ohm_unlikely(!os__stack_hi)) return os_backtrace_first(start, anchor, frames, max);
    uintptr_t lim = os__stack_hi - 2 * sizeof(uintptr_t), fp = (uintptr_t)start;
    if (max <= 0 || fp < os__stack_lo || fp > lim) return 0;
    if (anchor) {
        /* The anchor's frame among the first max, stored from there: the frames below it cost no stores. */
        uintptr_t a = fp;
        for (int i = 1; ((uintptr_t *)a)[1] != (uintptr_t)anchor; i++)
            if (i == max || !((uintptr_t *)a)[1] || !(a = os_frame_up(a, lim))) {
                a = fp; /* no anchor: every frame */
                break;
            }
        fp = a;
    }
    /* The outermost frame's saved frame pointer is 0 (the ABI's mark, which _start and clone set), which ends the
     * walk as any other out-of-bounds link would. os_frame_up's test written out: through the call gcc lays the
     * loop out worse (14 more instructions a PARANOID pair). */
    void **out = frames, **end = frames + max;
    for (;;) {
        *out++ = (void *)((uintptr_t *)fp)[1];
        uintptr_t next = ((uintptr_t *)fp)[0];
        if (ohm_unlikely(out == end) || ohm_unlikely(next <= fp || next > lim)) break;
        fp = next;
    }
    return (int)(out - frames);
}
/* The sleeping half of a lock built on a word (a futex): os_wait_on blocks while *word == val, until an
 * os_wake_one on the same word (or spuriously: the caller checks the word again); os_wake_one wakes one such
 * waiter, if any. */
void os_wait_on(_Atomic uint32_t *word, uint32_t val);
void os_wake_one(_Atomic uint32_t *word);
/* Online CPUs (at least 1). */
unsigned os_ncpus(void);
/* Monotonic clock in nanoseconds, and a coarse (cheap, ~ms precision) variant for decay decisions. */
uint64_t os_now_ns(void);
uint64_t os_now_coarse_ms(void);
/* The coarse clock in ns (a few ms of resolution, a few ns to read); inline, for a leak record's every creation. */
static inline uint64_t os_now_coarse_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
/* The kernel's id of the calling thread (as ps and gdb show it). */
uint64_t os_thread_id(void);
/* Initializes cond to time its waits on CLOCK_MONOTONIC (immune to wall-clock steps). 0 or pthread's error. */
int os_cond_init_monotonic(pthread_cond_t *cond);

/* 64 random bits from the kernel, or a mix of clock and addresses if that fails. */
uint64_t os_random64(void);
/* Resident bytes of this process, from /proc/self/statm (0 if unreadable). */
size_t os_rss_bytes(void);

#pragma GCC visibility pop

#endif
