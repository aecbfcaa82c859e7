/* The leak detector (internal view): what buf.c calls at a buffer's creation, access, release and reclaim (also
 * when a pool is destroyed with live buffers), and the steps lifecycle.c runs at process start and fork. leak.c
 * implements it and the public ohm_leak_* functions. All functions are safe from any thread. */
#ifndef OHM_LEAK_H
#define OHM_LEAK_H

#include "internal.h"

#pragma GCC visibility push(hidden)

typedef struct leak_track leak_track;

/* Whether the next allocation on this thread is tracked (level and per-thread sampling), and if so a new
 * record for it: creation backtrace captured here (skip frames inside ohm), buffer id/size/origin/pool name
 * copied, linked into the live set with a creation sequence number (for ohm_leak_mark/check). NULL when not
 * tracked or out of memory (tracking is best effort: allocation never fails because of it). Cost when not
 * tracked: a level load and a thread-local counter decrement. */
leak_track *leak_track_maybe(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                             const char *pool_name);
/* As leak_track_maybe, for a public function's slow path: user_ret is the return address into its caller's code
 * (__builtin_return_address(0) there), the creation record's first frame whatever ohm frames lie below it.
 * pool_name is the buffer's pool's name field (pool.h's array, read whole: no strlen on PARANOID's every buffer). */
leak_track *leak_track_sampled(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                               const char *pool_name, void *user_ret);

/* The allocation fast path's half of leak_track_maybe, for a pool that follows the process's settings: true when
 * the allocation is surely not tracked (then it counted against this thread's countdown), false when
 * leak_track_maybe must decide. Every level but PARANOID counts down, OFF included (OFF re-arms at 0 and tracks
 * nothing), so OFF, SIMPLE and ADVANCED run the same instructions here: a load, a thread-local compare and a
 * store. ohm__leak_fast_limit is interval - 1 at the sampled levels and OFF, 0 at PARANOID (never fast); a
 * thread in a leak scope keeps its countdown at 0, which never passes either. */
extern _Atomic uint32_t ohm__leak_fast_limit;
extern OHM_TLS uint32_t ohm__leak_countdown;
static inline bool leak_untracked_fast(void)
{
    uint32_t c = ohm__leak_countdown;
    if (ohm_likely(c - 2 < atomic_load_explicit(&ohm__leak_fast_limit, memory_order_relaxed))) {
        ohm__leak_countdown = c - 1;
        return true;
    }
    return false;
}
/* A record made whatever the level and sampling say (a host that samples by itself, ohm_buf_track): as above, the
 * backtrace starting past caller (the return address into the ohm function that asked). */
leak_track *leak_track_new(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                           const char *pool_name, void *caller);
/* Attaches the host's site text (copied) to the creation record. */
void leak_track_set_site(leak_track *t, const char *host_site);
/* An access record (only kept at ADVANCED and PARANOID): backtrace + hint (copied, may be NULL). */
void leak_track_touch(leak_track *t, const char *hint);
/* The buffer was released properly: unlink and free the record. */
void leak_track_close(leak_track *t);
/* The buffer leaked (reason GC or POOL_DESTROY): report it (deduplicated) to the handler, then free the record. */
void leak_track_leaked(leak_track *t, ohm_leak_reason reason);
/* An untracked leak: the count for the summary line of ohm's log ("N leaks not tracked; raise the level"). */
void leak_untracked(ohm_leak_reason reason, size_t size);

/* Process start (lifecycle.c, once): settings from OHM_LEAK_LEVEL / OHM_LEAK_SAMPLE, ohm's text range for frame
 * skipping, and the first backtrace (which loads the unwinder) done now rather than under an allocation. */
void leak_init(void);
/* Thread exit (buf_thread_exit calls it): this thread's cached records back to the records pool. */
void leak_thread_exit(void);
/* Fork (lifecycle.c, in its lock order): prefork takes the handler lock, the de-duplication lock, the scope locks,
 * then every stripe; postfork (parent and child alike) releases them. */
void leak_prefork(void);
void leak_postfork(void);

#pragma GCC visibility pop

#endif
