/* The leak detector: Netty's ResourceLeakDetector, done natively.
 *
 * A tracked buffer owns a leak_track: its creation record (native backtrace, host site text), up to
 * OHM_LEAK_MAX_RECORDS access records, and a creation sequence number. Records sit in LEAK_STRIPES lists, one
 * per thread (round-robin), each behind its own lock, so PARANOID threads do not serialize on one lock; a
 * record's stripe lock also guards its access records and site text against racing touches. Reports are built
 * from a record the reporter owns (unlinked, or a deep copy for checkpoints) and delivered with no leak lock
 * held, so a handler may allocate buffers or call ohm_leak_* itself.
 *
 * A record stays in its stripe's list across lives: released, it is marked closed (walks skip it) and goes
 * through its closing thread's batch into that thread's record cache, still linked; made live again from there,
 * it is filled while closed and published by clearing closed, with no lock and no list operation. The lists hold
 * the live records plus each thread's batch and cache (at most CLOSE_BATCH + TRACK_CACHE a thread). A record is
 * unlinked only when it leaves for the records pool, is reported, or owns memory of malloc's when released.
 * What keeps a walk from reading a record being refilled: a closed record reaches a cache only through its
 * batch's flush, which takes its stripe lock, so a record a walk (holding that lock) saw live cannot be made
 * live again until the walk is done.
 *
 * Cost when an allocation is not tracked: one load of the packed settings word and a thread-local countdown.
 * Tracking costs a frame-pointer walk (os_backtrace, from the entry point's frame up), a record from a per-thread
 * cache and the coarse clock; a release marks the record and queues it in a batch (closing_flush).
 *
 * Leak scopes (the end of this file) track every allocation of their threads: a thread in a scope keeps its
 * countdown at 0, so its allocations take the slow path, where the scope is seen; threads outside scopes pay
 * nothing more. */
#define _GNU_SOURCE
#include "json.h"
#include "leak.h"
#include "list.h"
#include "os.h"
#include "pool.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h> /* snprintf only: nothing here prints */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LEAK_STRIPES 16                    /* few enough that fork holds them all, and a checkpoint walks them all */
#define DEDUP_SLOTS  4096                  /* power of two */
#define DEDUP_MAX    (DEDUP_SLOTS / 4 * 3) /* forget every hash when the set is this full (bounded memory) */
#define RAW_FRAMES   (OHM_LEAK_MAX_FRAMES + 8) /* room for the frames inside ohm that are skipped */
#define LEVEL_UNSET  0xffu
#define LOG_CHUNK    900 /* ohm__log formats into 1024 bytes: long reports go in pieces */
/* What a leak.h entry point runs in its own frame: the creation's stack walk starts there (capture). */
#define LEAK_INLINE static inline __attribute__((always_inline))

/* ---- records ---- */

typedef struct leak_rec {
    char *hint; /* owned, or NULL */
    uint64_t time_ns, thread;
    unsigned nframes;         /* at most OHM_LEAK_MAX_FRAMES */
    void *frames[RAW_FRAMES]; /* the walk lands here, and the kept frames are moved to the front */
} leak_rec;

#define LEVEL_OF_PROCESS 0xff /* leak_track.pool_level: the buffer's pool follows the process's level */
/* A record keeps a copy of its pool's name (pool.h's whole name array, no strlen): the pool may be gone before the
 * report is made or read (a scope's list, a checkpoint's copy, a garbage-collected buffer). */
#define TRACK_NAME_MAX 64
_Static_assert(sizeof(((ohm_pool *)0)->name) == TRACK_NAME_MAX, "a record holds a pool's whole name");

struct leak_track {
    leak_track *next, *prev; /* stripe list, under the stripe lock */
    uint64_t seq;            /* creation sequence number (ohm_leak_mark/check) */
    uint64_t buffer_id;
    size_t size;
    unsigned stripe; /* its list's, while linked */
    bool linked;     /* in its stripe's list (under the stripe lock; read unlocked only by its owner) */
    ohm_buf_origin origin;
    uint8_t pool_level;       /* the level its pool set (ohm_pool_set_leak), else LEVEL_OF_PROCESS */
    char *host_site;          /* owned, or NULL; under the stripe lock */
    struct leak_scope *scope; /* the scope it was made in, or NULL; never written while it is shared */
    leak_track *snext;        /* the scope's gone list, under its scope lock */
    ohm_leak_reason gone;     /* in the scope's gone list: why it was reported */
    /* Not copied by track_clone (which copies what lies before scope and from created on): */
    _Atomic bool closed; /* not live: released (its walk skips it), or not yet published */
    leak_track *cnext;   /* its closing thread's batch (closing_flush), then a thread's record cache */
    leak_rec created;
    /* access records, oldest first; under the stripe lock */
    unsigned nrecords;
    uint64_t seen; /* access records ever offered */
    uint64_t dropped;
    leak_rec *records[OHM_LEAK_MAX_RECORDS];
    char pool[TRACK_NAME_MAX]; /* pool name, "" for none */
};

typedef struct stripe {
    _Atomic uint32_t lock; /* stripe_lock */
    leak_track *head;
} __attribute__((aligned(64))) stripe;

static stripe stripes[LEAK_STRIPES];

/* A stripe's lock is a futex word (Drepper's "Futexes Are Tricky", mutex 3): 0 free, 1 held, 2 held and maybe
 * waited for; a waiter sleeps at once, as a default pthread mutex's does. Uncontended it is one atomic
 * instruction each way (a pthread mutex's round trip took ~55 instructions): walks, touches, a record's first
 * link and unlink, and each closing batch's flush take it. */
static OHM_COLD void stripe_lock_wait(stripe *st, uint32_t c)
{
    if (c != 2) c = atomic_exchange_explicit(&st->lock, 2, memory_order_acquire);
    while (c != 0) {
        os_wait_on(&st->lock, 2);
        c = atomic_exchange_explicit(&st->lock, 2, memory_order_acquire);
    }
}

static inline void stripe_lock(stripe *st)
{
    uint32_t c = 0;
    if (!atomic_compare_exchange_strong_explicit(&st->lock, &c, 1, memory_order_acquire, memory_order_relaxed))
        stripe_lock_wait(st, c);
}

static inline void stripe_unlock(stripe *st)
{
    if (ohm_unlikely(atomic_exchange_explicit(&st->lock, 0, memory_order_release) == 2)) os_wake_one(&st->lock);
}

/* ---- memory for records ----
 * Records and access records come from a private ohm pool, not malloc: a thread-cache pop instead of glibc's
 * ~30 ns, which is most of what tracking every allocation (PARANOID) costs besides the stack walk. The pool is
 * made at first use and lives for the process; strings (hints, host sites) stay on malloc. A creation that fails
 * (no memory for the pool's metadata) leaves that buffer untracked and is tried again by the next record, so one
 * transient failure does not end tracking for the process; two threads racing to make it keep the first pool. */

static _Atomic(ohm_pool *) records;

static OHM_NOINLINE ohm_pool *records_create(void)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "ohm-leak-records";
    cfg.poison = false;
    ohm_pool *made = ohm_pool_create(&cfg), *none = NULL;
    if (made &&
        !atomic_compare_exchange_strong_explicit(&records, &none, made, memory_order_acq_rel, memory_order_acquire)) {
        ohm_pool_destroy(made); /* another thread's is the records pool */
        return none;
    }
    return made;
}

static void *rec_mem(size_t size)
{
    ohm_pool *pool = atomic_load_explicit(&records, memory_order_acquire);
    if (ohm_unlikely(!pool) && !(pool = records_create())) return NULL; /* NULL: not tracked */
    return ohm_pool_alloc(pool, size);
}

static void rec_mem_free(void *p)
{
    if (p) ohm_pool_free(atomic_load_explicit(&records, memory_order_relaxed), p);
}

/* Records of buffers (leak_track) go through a small per-thread cache: PARANOID makes and frees one per buffer,
 * and the records pool's own thread cache would answer only after a lookup, the buffers' pool being the one this
 * thread used last. */
#define TRACK_CACHE 64

static OHM_TLS leak_track *tl_tracks; /* linked through cnext (next and prev are the stripe list's) */
static OHM_TLS unsigned tl_ntracks;
static OHM_TLS bool tl_tracks_registered; /* the thread-exit path will empty the cache */

/* A record from the records pool: not linked, closed until published. */
static leak_track *track_fresh(void)
{
    leak_track *t = rec_mem(sizeof(leak_track));
    if (t) {
        t->linked = false;
        atomic_store_explicit(&t->closed, true, memory_order_relaxed);
    }
    return t;
}

/* Back to the records pool, out of its list first. */
static void track_unmake(leak_track *t);

static inline leak_track *track_mem(void)
{
    leak_track *t = tl_tracks;
    if (ohm_unlikely(!t)) return track_fresh();
    tl_tracks = t->cnext;
    tl_ntracks--;
    return t;
}

static OHM_NOINLINE void register_thread_now(void)
{
    ohm__thread_init();
    tl_tracks_registered = true;
}

static inline void register_thread(void)
{
    if (ohm_unlikely(!tl_tracks_registered)) register_thread_now();
}

/* Into the cache, or the records pool when it is full; the thread is registered. */
static inline void cache_put(leak_track *t)
{
    if (ohm_unlikely(tl_ntracks >= TRACK_CACHE)) {
        track_unmake(t);
        return;
    }
    t->cnext = tl_tracks;
    tl_tracks = t;
    tl_ntracks++;
}

static void track_mem_free(leak_track *t)
{
    register_thread();
    cache_put(t);
}

static void closing_flush(void);

void leak_thread_exit(void)
{
    closing_flush(); /* into the cache, emptied next */
    tl_tracks_registered = false;
    while (tl_tracks) {
        leak_track *t = tl_tracks;
        tl_tracks = t->cnext;
        track_unmake(t);
    }
    tl_ntracks = 0;
}

/* ---- settings: level in the low byte, interval in the high 32 bits, so the hot path loads one word ---- */

static _Atomic uint64_t settings = LEVEL_UNSET; /* until leak_init, which ohm__init runs */
/* Creation sequence numbers of sampled records come in per-thread blocks, so that their creation makes no atomic
 * read-modify-write: a locked instruction waits for the record's stores to drain, and a sampled record's lines are
 * cold, which made that wait a tenth of SIMPLE's time (RESULTS.md, buf). ohm_leak_mark bumps seq_epoch after
 * reading next_seq, and a thread whose block predates the epoch takes a new one, so a record made after a mark
 * returned numbers at or above the mark, and one made before it below. Sampled records of different threads are
 * ordered only as finely as their blocks; every other record takes the next number of the process (track_make). */
#define SEQ_BLOCK 64
static _Atomic uint64_t next_seq = 1;                     /* the next block's first number */
static _Atomic uint64_t seq_epoch;                        /* marks made */
static OHM_TLS uint64_t tl_seq, tl_seq_end, tl_seq_epoch; /* this thread's block [tl_seq, tl_seq_end) */

OHM_TLS uint32_t ohm__leak_countdown; /* allocations until the next tracked one (not PARANOID; see leak.h) */
#define tl_countdown ohm__leak_countdown
_Atomic uint32_t ohm__leak_fast_limit; /* derived from settings (see leak.h); 0 until leak_init */
static OHM_TLS unsigned tl_stripe;     /* 1 + this thread's stripe, 0 until first used */
static OHM_TLS uint64_t tl_rng;        /* xorshift64* state, 0 until seeded */
static OHM_TLS uint64_t tl_tid;

static OHM_NOINLINE uint64_t seq_refill(void)
{
    tl_seq_epoch = atomic_load_explicit(&seq_epoch, memory_order_acquire); /* before the block: see ohm_leak_mark */
    uint64_t s = atomic_fetch_add_explicit(&next_seq, SEQ_BLOCK, memory_order_relaxed);
    tl_seq_end = s + SEQ_BLOCK;
    return s;
}

static inline uint64_t seq_next(void)
{
    uint64_t s = tl_seq;
    if (ohm_unlikely(s == tl_seq_end) ||
        ohm_unlikely(tl_seq_epoch != atomic_load_explicit(&seq_epoch, memory_order_relaxed)))
        s = seq_refill();
    tl_seq = s + 1;
    return s;
}

static _Atomic unsigned stripe_rr;

/* Frame skipping: when ohm is its own shared object, every leading frame inside its text is skipped (exact);
 * when it is linked into the program, one frame (buf.c's caller of leak_track_*) is skipped after ours. */
static uintptr_t ohm_text_lo, ohm_text_hi;

/* handler */
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static ohm_leak_handler *handler_fn; /* NULL = the log */
static void *handler_arg;

/* de-duplication: a bounded set of report hashes */
static pthread_mutex_t dedup_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t dedup_set[DEDUP_SLOTS];
static unsigned dedup_count;
static _Atomic uint64_t dedup_suppressed; /* since the last delivered report */

/* untracked leaks, per reason */
static _Atomic uint64_t untracked[3];
static _Atomic uint64_t untracked_total;

/* ---- scopes: state (the public functions are at the end) ----
 * A scope keeps no list of its records: each names its scope, and the close finds the live ones by walking the
 * stripes (a close is rare; creation and release, which are not, then cost one atomic add each and no lock). A
 * live record holds a reference on its scope, as do the open state and each joined thread, so a scope's memory
 * outlives every live record that names it; a released record's scope pointer may dangle, and walks skip
 * released records. Records reported while the scope is open (a GC, a pool destroyed) wait in its gone list,
 * under one of SCOPE_LOCKS shared locks. Lock order: scopes_lock, a scope lock, a stripe lock. */

#define SCOPE_LOCKS 8

typedef struct leak_scope {
    uint64_t id;
    struct leak_scope *parent;              /* the opener's scope before open (kept open while this one is) */
    struct leak_scope *reg_next, *reg_prev; /* the open scopes, under scopes_lock */
    uint64_t opener;                        /* thread_id() of the thread that opened it */
    unsigned children;                      /* open scopes whose parent it is, under scopes_lock */
    unsigned lock;                          /* its index in scope_locks */
    /* References: the open state, each joined thread and each gone record count 1; each live record made in it
     * counts LIVE_ONE, so one atomic word says both when to free it and how many of its records are live. */
    _Atomic uint64_t refs;
    _Atomic bool closed; /* set under its scope lock */
    leak_track *gone;    /* reported (GC, pool destroyed) while open: kept for the close, under its scope lock */
} leak_scope;

static pthread_mutex_t scopes_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t scope_locks[SCOPE_LOCKS] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};
static leak_scope *scopes_open; /* the registry, under scopes_lock */
static _Atomic uint64_t next_scope_id = 1;

static OHM_TLS leak_scope *tl_scope;        /* the innermost scope of this thread, NULL for none */
static OHM_TLS leak_scope *tl_joined;       /* the scope this thread joined (holding a reference), or NULL */
static OHM_TLS uint32_t tl_saved_countdown; /* the sampling countdown while the thread is in a scope */

#define LIVE_ONE ((uint64_t)1 << 32)

static void scope_put(leak_scope *sc, uint64_t n)
{
    if (atomic_fetch_sub_explicit(&sc->refs, n, memory_order_acq_rel) == n) free(sc);
}

static void scope_unref(leak_scope *sc) { scope_put(sc, 1); }

/* Its live records (not the gone ones). */
static int64_t scope_live(leak_scope *sc)
{
    return (int64_t)(atomic_load_explicit(&sc->refs, memory_order_acquire) >> 32);
}

/* The scope this thread's allocations go to now: NULL outside scopes, and for a joined scope closed since. */
static inline leak_scope *scope_of_thread(void)
{
    leak_scope *sc = tl_scope;
    if (ohm_likely(!sc) || atomic_load_explicit(&sc->closed, memory_order_relaxed)) return NULL;
    return sc;
}

/* Makes t (not yet shared) a record of sc; false if sc closed meanwhile. A record made while its scope closes
 * (by a joined thread, racing the opener's close) may miss the close's list; it still counts in live and holds
 * its reference until released. */
static bool scope_attach(leak_scope *sc, leak_track *t)
{
    if (atomic_load_explicit(&sc->closed, memory_order_acquire)) return false;
    atomic_fetch_add_explicit(&sc->refs, LIVE_ONE, memory_order_relaxed);
    t->scope = sc;
    return true;
}

/* A scoped record reported while its scope is open moves to the scope's gone list, for the close to list
 * (with its reference on the scope); false when it is not the scope's to keep. */
static bool scope_keep_gone(leak_track *t, ohm_leak_reason reason)
{
    leak_scope *sc = t->scope;
    if (!sc) return false;
    pthread_mutex_t *m = &scope_locks[sc->lock];
    pthread_mutex_lock(m);
    bool keep = !atomic_load_explicit(&sc->closed, memory_order_relaxed);
    if (keep) {
        atomic_fetch_sub_explicit(&sc->refs, LIVE_ONE - 1, memory_order_relaxed); /* live to gone: still a reference */
        t->gone = reason;
        t->snext = sc->gone;
        sc->gone = t;
    }
    pthread_mutex_unlock(m);
    return keep;
}

/* t was released or reported, and no walk can find it as live any more (closed, or out of its stripe): its count
 * and reference go. t->scope is left as it is (walks skip released records; track_new clears it for reuse). */
static void scope_detach(leak_track *t)
{
    leak_scope *sc = t->scope;
    if (!sc) return;
    scope_put(sc, LIVE_ONE);
}

static uint64_t pack(unsigned level, uint32_t interval) { return (uint64_t)level | (uint64_t)interval << 32; }

static int parse_level(const char *v, unsigned *out)
{
    static const char *names[] = {"off", "simple", "advanced", "paranoid"};
    for (unsigned i = 0; i < 4; i++)
        if (!strcasecmp(v, names[i])) {
            *out = i;
            return 0;
        }
    return -1;
}

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t self = (uintptr_t)arg;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (self < lo || self >= hi) continue;
        /* The main program is reported with an empty name: ohm is linked into it, ranges would skip its
         * user's frames too. */
        if (info->dlpi_name && info->dlpi_name[0]) {
            ohm_text_lo = lo;
            ohm_text_hi = hi;
        }
        return 1;
    }
    return 0;
}

/* Fork (lifecycle.c's order): the handler and de-duplication locks are leaves; then the scope registry, the
 * scope locks and the stripes (a scope's close holds its lock while it copies records under their stripe's); a
 * stripe lock may be held while records are allocated from the records pool, whose locks come after these. */
void leak_prefork(void)
{
    pthread_mutex_lock(&handler_lock);
    pthread_mutex_lock(&dedup_lock);
    pthread_mutex_lock(&scopes_lock);
    for (unsigned i = 0; i < SCOPE_LOCKS; i++) pthread_mutex_lock(&scope_locks[i]);
    for (unsigned i = 0; i < LEAK_STRIPES; i++) stripe_lock(&stripes[i]);
}

void leak_postfork(void)
{
    for (unsigned i = LEAK_STRIPES; i-- > 0;) stripe_unlock(&stripes[i]);
    for (unsigned i = SCOPE_LOCKS; i-- > 0;) pthread_mutex_unlock(&scope_locks[i]);
    pthread_mutex_unlock(&scopes_lock);
    pthread_mutex_unlock(&dedup_lock);
    pthread_mutex_unlock(&handler_lock);
}

/* ohm__leak_fast_limit for the settings now. Racing updates each store after their own change and store again
 * while the settings moved under them, so the last store is always of the final settings. */
static void publish_fast_limit(void)
{
    for (;;) {
        uint64_t s = atomic_load_explicit(&settings, memory_order_acquire);
        unsigned level = s & 0xff;
        uint32_t interval = (uint32_t)(s >> 32);
        bool sampled = level != OHM_LEAK_PARANOID && level != LEVEL_UNSET && interval;
        atomic_store_explicit(&ohm__leak_fast_limit, sampled ? interval - 1 : 0, memory_order_relaxed);
        if (atomic_load_explicit(&settings, memory_order_acquire) == s) return;
    }
}

void leak_init(void)
{
    unsigned level = OHM_LEAK_SIMPLE;
    const char *v = getenv("OHM_LEAK_LEVEL");
    if (v && *v && parse_level(v, &level) != 0) {
        ohm__log(OHM_LOG_WARN, "ignoring malformed OHM_LEAK_LEVEL=%s (off, simple, advanced or paranoid)", v);
        level = OHM_LEAK_SIMPLE;
    }
    uint32_t interval = ohm__env_uint("OHM_LEAK_SAMPLE", 128, UINT32_MAX);
    if (interval == 0) interval = 1;

    dl_iterate_phdr(find_text, (void *)(uintptr_t)&leak_init);
    /* The first backtrace() loads libgcc_s (dlopen, malloc): do it now rather than under an allocation. */
    void *warm[2];
    backtrace(warm, 2);

    atomic_store(&settings, pack(level, interval));
    publish_fast_limit();
}

static uint64_t load_settings(void)
{
    uint64_t s = atomic_load_explicit(&settings, memory_order_acquire);
    if (ohm_unlikely((s & 0xff) == LEVEL_UNSET)) {
        ohm__init();
        s = atomic_load_explicit(&settings, memory_order_acquire);
    }
    return s;
}

static void update_settings(int level, int64_t interval)
{
    uint64_t s = load_settings(), n;
    do {
        n = pack(level >= 0 ? (unsigned)level : (unsigned)(s & 0xff),
                 interval >= 0 ? (uint32_t)interval : (uint32_t)(s >> 32));
    } while (!atomic_compare_exchange_weak(&settings, &s, n));
    publish_fast_limit();
}

void ohm_leak_set_level(ohm_leak_level level)
{
    if ((unsigned)level > OHM_LEAK_PARANOID) {
        ohm__error(OHM_EINVAL, "ohm_leak_set_level: %d is not a level", (int)level);
        return;
    }
    update_settings((int)level, -1);
}

ohm_leak_level ohm_leak_get_level(void) { return (ohm_leak_level)(load_settings() & 0xff); }

void ohm_leak_set_sample_interval(uint32_t interval) { update_settings(-1, interval ? interval : 1); }

uint32_t ohm_leak_get_sample_interval(void) { return (uint32_t)(load_settings() >> 32); }

/* A pool's settings are packed as the process's, with bit 8 set so that "OFF for this pool" is not 0. */
#define POOL_LEAK_SET 0x100u

int ohm_pool_set_leak(ohm_pool *pool, int level, uint32_t interval)
{
    if (!pool) return ohm__error(OHM_EINVAL, "ohm_pool_set_leak: pool is NULL");
    if (level < -1 || level > OHM_LEAK_PARANOID)
        return ohm__error(OHM_EINVAL, "ohm_pool_set_leak: %d is not a level", level);
    atomic_store(&pool->leak_settings, level < 0 ? 0 : pack((unsigned)level | POOL_LEAK_SET, interval));
    return 0;
}

ohm_leak_level ohm_pool_get_leak_level(const ohm_pool *pool)
{
    uint64_t s = pool ? atomic_load(&pool->leak_settings) : 0;
    return (ohm_leak_level)((s ? s : load_settings()) & 0xff);
}

uint32_t ohm_pool_get_leak_sample_interval(const ohm_pool *pool)
{
    uint64_t s = pool ? atomic_load(&pool->leak_settings) : 0;
    uint32_t interval = (uint32_t)(s >> 32);
    return interval ? interval : (uint32_t)(load_settings() >> 32);
}

void ohm_leak_set_handler(ohm_leak_handler *fn, void *arg)
{
    ohm__init(); /* the fork handler that guards handler_lock */
    pthread_mutex_lock(&handler_lock);
    handler_fn = fn;
    handler_arg = arg;
    pthread_mutex_unlock(&handler_lock);
}

/* ---- per-thread helpers ---- */

static uint64_t rng_next(void)
{
    uint64_t x = tl_rng;
    if (ohm_unlikely(x == 0)) x = os_random64() | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl_rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t thread_id(void)
{
    if (ohm_unlikely(tl_tid == 0)) tl_tid = os_thread_id();
    return tl_tid;
}

static unsigned thread_stripe(void)
{
    if (ohm_unlikely(tl_stripe == 0))
        tl_stripe = 1 + atomic_fetch_add_explicit(&stripe_rr, 1, memory_order_relaxed) % LEAK_STRIPES;
    return tl_stripe - 1;
}

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Fills r with the stack of the leak.h entry point that capture is inlined into, without the frames inside ohm.
 * caller is that entry point's return address (into buf.c): the walk starts at the frame that returns there, so
 * whatever sits below it (a compiler-split part of the entry point, a function not inlined) is skipped with it.
 * With user, caller is instead the return address into the user's code that the public function saw, the first
 * frame to keep (how many ohm frames lie below it then depends on no inlining or tail call). */
LEAK_INLINE void capture(leak_rec *r, void *caller, bool user)
{
    void **raw = r->frames;
    /* frame pointers: ~2 ns a frame (see os.c); no store for the frames below the anchor */
    int n = os_backtrace(__builtin_frame_address(0), caller, raw, RAW_FRAMES);
    int i = 0;
    if (n == 0 || raw[0] != caller) user = false; /* no anchor: from the entry point's return address */
    /* raw[0] is where the public function returns to (user), else inside buf.c (or whichever ohm file called
     * leak_track_*). Frames inside ohm's own text (host glue linked into the same object) are skipped either way. */
    if (ohm_text_hi) {
        while (i < n && (uintptr_t)raw[i] >= ohm_text_lo && (uintptr_t)raw[i] < ohm_text_hi) i++;
    } else if (i < n && !user) {
        i++; /* linked into the program: assume one frame (buf.c's caller of leak_track_*) */
    }
    unsigned k = i < n ? (unsigned)(n - i) : 0;
    if (k > OHM_LEAK_MAX_FRAMES) k = OHM_LEAK_MAX_FRAMES;
    if (ohm_unlikely(i) && k) memmove(raw, raw + i, k * sizeof raw[0]);
    r->nframes = k;
    r->time_ns = os_now_coarse_ns(); /* the precise clock costs ~25 ns here: a third of tracking */
    r->thread = thread_id();
}

static void rec_free(leak_rec *r)
{
    if (!r) return;
    free(r->hint);
    rec_mem_free(r);
}

static void track_free(leak_track *t)
{
    if (t->host_site) free(t->host_site);
    for (unsigned i = 0; i < t->nrecords; i++) rec_free(t->records[i]);
    track_mem_free(t);
}

/* Out of its stripe's list, under the stripe lock; its links are left as they were. */
static void unlink_track(leak_track *t)
{
    LIST_UNLINK(stripes[t->stripe].head, t, next, prev);
    t->linked = false;
}

static void track_unmake(leak_track *t)
{
    if (t->linked) {
        stripe *st = &stripes[t->stripe];
        stripe_lock(st);
        unlink_track(t);
        stripe_unlock(st);
    }
    rec_mem_free(t);
}

/* A record made live for the first time (or again after it was unlinked): into this thread's stripe, published. */
static OHM_NOINLINE void track_link(leak_track *t)
{
    t->stripe = thread_stripe();
    stripe *st = &stripes[t->stripe];
    stripe_lock(st);
    atomic_store_explicit(&t->closed, false, memory_order_relaxed);
    LIST_PUSH_FRONT(st->head, t, next, prev);
    t->linked = true;
    stripe_unlock(st);
}

/* ---- the internal interface (leak.h) ---- */

/* A copy of a pool's name (NULL: none) in dst; whole, the name is a pool's name array (leak_track_sampled), read
 * at once, else any string, read up to its end. */
LEAK_INLINE void copy_name(char *dst, const char *src, bool whole)
{
    size_t i = 0;
    if (src && whole) {
        memcpy(dst, src, TRACK_NAME_MAX); /* ended by snprintf's 0 */
        i = TRACK_NAME_MAX - 1;
    } else if (src) {
        for (; i < TRACK_NAME_MAX - 1 && src[i]; i++) dst[i] = src[i];
    }
    dst[i] = '\0';
}

LEAK_INLINE leak_track *track_new(uint64_t buffer_id, size_t size, ohm_buf_origin origin, const char *pool_name,
                                  bool whole_name)
{
    leak_track *t = track_mem();
    if (!t) return NULL; /* not tracked: tracking never fails an allocation */
    /* Field by field, not memset: the creation record's frame array (most of the record) is filled by capture,
     * and zeroing it was three quarters of tracking's cost. closed stays set until track_make publishes it; the
     * links and stripe of a linked record stay as they are (they are its list's). */
    t->host_site = NULL;
    t->scope = NULL;
    t->created.hint = NULL;
    t->nrecords = 0;
    t->seen = 0;
    t->dropped = 0;
    copy_name(t->pool, pool_name, whole_name);
    t->buffer_id = buffer_id;
    t->size = size;
    t->origin = origin;
    return t;
}

/* A record for a buffer being made, at caller; in scope sc (NULL: none) every access is recorded too. user: from
 * leak_track_sampled (caller is in the user's code, pool_name a pool's name array). sampled: one of a sample (a
 * sampled level outside scopes), whose number may come from its thread's block (seq_next); every other record's
 * number is the next of the process, so that lists of them (a scope's, PARANOID's checkpoints) are in the order
 * the buffers were made across threads too. */
LEAK_INLINE leak_track *track_make(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                                   const char *pool_name, void *caller, bool user, leak_scope *sc, bool sampled)
{
    leak_track *t = track_new(buffer_id, size, origin, pool_name, user);
    if (!t) return NULL;
    t->pool_level = pool_settings ? (uint8_t)(pool_settings & 0xff) : LEVEL_OF_PROCESS;
    capture(&t->created, caller, user);
    t->seq = sampled ? seq_next() : atomic_fetch_add_explicit(&next_seq, 1, memory_order_relaxed);
    if (sc && scope_attach(sc, t)) t->pool_level = OHM_LEAK_PARANOID; /* access records too */
    /* Published: a walk that sees it live sees every field above. */
    if (ohm_likely(t->linked)) atomic_store_explicit(&t->closed, false, memory_order_release);
    else track_link(t);
    return t;
}

LEAK_INLINE leak_track *track_sampled(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                                      const char *pool_name, void *caller, bool user)
{
    /* A pool's own settings (ohm_pool_set_leak) win over the process's; its interval 0 means the process's. */
    uint64_t s = pool_settings ? pool_settings : load_settings();
    unsigned level = s & 0xff;
    leak_scope *sc;
    if (level == OHM_LEAK_OFF) {
        sc = scope_of_thread();
        if (ohm_likely(!sc)) {
            tl_countdown = (uint32_t)(s >> 32) ? (uint32_t)(s >> 32) : 1; /* leak.h: OFF counts down too */
            return NULL;
        }
    } else if (level != OHM_LEAK_PARANOID) {
        /* Sampled: a countdown, re-armed at each tracked allocation. A countdown above the interval (the
         * interval was lowered since) re-arms at once. A thread in a scope keeps it at 0, so that the scope
         * costs nothing here to the threads outside one. */
        uint32_t interval = (uint32_t)(s >> 32), c = tl_countdown;
        if (!interval) interval = (uint32_t)(load_settings() >> 32);
        if (ohm_likely(c > 1 && c <= interval)) {
            tl_countdown = c - 1;
            return NULL;
        }
        sc = scope_of_thread();
        if (!sc) tl_countdown = interval;
    } else {
        sc = scope_of_thread();
    }
    return track_make(pool_settings, buffer_id, size, origin, pool_name, caller, user, sc,
                      !sc && level != OHM_LEAK_PARANOID);
}

leak_track *leak_track_maybe(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                             const char *pool_name)
{
    return track_sampled(pool_settings, buffer_id, size, origin, pool_name, __builtin_return_address(0), false);
}

leak_track *leak_track_sampled(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                               const char *pool_name, void *user_ret)
{
    return track_sampled(pool_settings, buffer_id, size, origin, pool_name, user_ret, true);
}

leak_track *leak_track_new(uint64_t pool_settings, uint64_t buffer_id, size_t size, ohm_buf_origin origin,
                           const char *pool_name, void *caller)
{
    return track_make(pool_settings, buffer_id, size, origin, pool_name, caller, false, scope_of_thread(), false);
}

void leak_track_set_site(leak_track *t, const char *host_site)
{
    if (!t) return;
    char *copy = dup_str(host_site), *old;
    stripe *st = &stripes[t->stripe];
    stripe_lock(st);
    old = t->host_site;
    t->host_site = copy;
    stripe_unlock(st);
    free(old);
}

void leak_track_touch(leak_track *t, const char *hint)
{
    if (!t) return;
    /* Access records follow the level of the buffer's pool if it set one, else the process's level now. */
    unsigned level = t->pool_level != LEVEL_OF_PROCESS ? t->pool_level : (unsigned)(load_settings() & 0xff);
    if (level < OHM_LEAK_ADVANCED) return;
    leak_rec *r = rec_mem(sizeof *r);
    if (!r) return;
    capture(r, __builtin_return_address(0), false); /* before the lock: unwinding is the slow part */
    r->hint = dup_str(hint);
    uint64_t coin = rng_next();

    leak_rec *drop = NULL;
    stripe *st = &stripes[t->stripe];
    stripe_lock(st);
    uint64_t n = ++t->seen; /* records seen, this one included */
    if (t->nrecords < OHM_LEAK_MAX_RECORDS) {
        t->records[t->nrecords++] = r;
    } else {
        /* Full: replace the newest with probability 1 - 1/2^(n-4), else drop the oldest and append. Either
         * way the newest access is kept, and old ones survive with falling probability (Netty's scheme). */
        uint64_t k = n - OHM_LEAK_MAX_RECORDS;
        bool replace_newest = k >= 64 || (coin & ((UINT64_C(1) << k) - 1)) != 0;
        if (replace_newest) {
            drop = t->records[OHM_LEAK_MAX_RECORDS - 1];
        } else {
            drop = t->records[0];
            memmove(&t->records[0], &t->records[1], (OHM_LEAK_MAX_RECORDS - 1) * sizeof t->records[0]);
        }
        t->records[OHM_LEAK_MAX_RECORDS - 1] = r;
        t->dropped++;
    }
    stripe_unlock(st);
    rec_free(drop);
}

/* Released records with no host site and no access records (what PARANOID makes for native callers) are marked
 * closed (walks skip them) and reach the closing thread's record cache CLOSE_BATCH at a time, still linked: the
 * flush takes each of their stripes' locks once, so that no walk still reading one of them as live can see it
 * refilled (see the top of this file). Only the closing thread's batch links them (cnext); a thread's exit
 * flushes what it holds. */
#define CLOSE_BATCH 32

static OHM_TLS leak_track *tl_closing;
static OHM_TLS unsigned tl_nclosing;

static void closing_flush(void)
{
    leak_track *list = tl_closing, *last = NULL;
    unsigned n = tl_nclosing;
    tl_closing = NULL;
    tl_nclosing = 0;
    stripe *held = NULL;
    bool owning = false; /* batched when they owned nothing but their memory; a touch racing the release may add */
    for (leak_track *t = list; t; t = t->cnext) {
        stripe *st = &stripes[t->stripe];
        if (st != held) {
            if (held) stripe_unlock(held);
            stripe_lock(st);
            held = st;
        }
        owning |= t->host_site || t->nrecords;
        last = t;
    }
    if (held) stripe_unlock(held);
    if (!list) return;
    /* The thread registered when it batched them; the batch is a run of the record cache already (cnext). */
    if (ohm_likely(!owning && tl_ntracks + n <= TRACK_CACHE)) {
        last->cnext = tl_tracks;
        tl_tracks = list;
        tl_ntracks += n;
        return;
    }
    while (list) {
        leak_track *next = list->cnext;
        if (list->host_site || list->nrecords) track_free(list);
        else cache_put(list);
        list = next;
    }
}

/* A released record that owns memory of malloc's, unlinked and freed at once. */
static OHM_NOINLINE void close_owning(leak_track *t)
{
    stripe *st = &stripes[t->stripe];
    stripe_lock(st);
    unlink_track(t);
    stripe_unlock(st);
    scope_detach(t);
    track_free(t);
}

/* A batched release's rare steps: its scope's count, the thread's first registration (its exit flushes the
 * batch), a full batch. */
static OHM_NOINLINE void close_queued_slow(leak_scope *sc)
{
    if (sc) scope_put(sc, LIVE_ONE); /* after the mark: a scope's close walk skips it */
    register_thread();
    if (tl_nclosing >= CLOSE_BATCH) closing_flush();
}

void leak_track_close(leak_track *t)
{
    if (!t) return;
    if (ohm_unlikely(t->host_site || t->nrecords)) {
        /* What it owns on malloc goes at once: a batch outlives the process (its main thread's is never
         * flushed), and a leak checker would report what only pool memory points to. */
        close_owning(t);
        return;
    }
    atomic_store_explicit(&t->closed, true, memory_order_release);
    leak_scope *sc = t->scope;
    t->cnext = tl_closing;
    tl_closing = t;
    if (ohm_unlikely(++tl_nclosing >= CLOSE_BATCH || sc || !tl_tracks_registered)) close_queued_slow(sc);
}

/* ---- reports ---- */

/* A growing string; on allocation failure it keeps what it has and stops growing (reports are best effort). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) OHM_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Each line of text, tab-indented (a Java stack trace or Lua traceback as the host gave it). */
static void sb_indented(sbuf *b, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        if (n) {
            sb_putn(b, "\t", 1);
            sb_putn(b, text, n);
            sb_putn(b, "\n", 1);
        }
        text += n + (nl != NULL);
    }
}

static void sb_frames(sbuf *b, void *const *frames, unsigned n)
{
    if (n == 0) return;
    /* backtrace_symbols names what dladdr can see (exported symbols), else image+offset for addr2line. */
    char **names = backtrace_symbols(frames, (int)n);
    for (unsigned i = 0; i < n; i++) {
        if (names) {
            sb_putn(b, "\t", 1);
            sb_puts(b, names[i]);
            sb_putn(b, "\n", 1);
        } else {
            sb_printf(b, "\t%p\n", frames[i]);
        }
    }
    free(names);
}

static const char *reason_phrase(ohm_leak_reason r)
{
    switch (r) {
    case OHM_LEAK_GC: return "it was garbage-collected";
    case OHM_LEAK_POOL_DESTROY: return "its pool was destroyed";
    default: return "the leak checkpoint (it is still live)";
    }
}

static const char *origin_name(ohm_buf_origin o)
{
    switch (o) {
    case OHM_ORIGIN_POOL: return "pool";
    case OHM_ORIGIN_FILE: return "file";
    case OHM_ORIGIN_SHM: return "shm";
    default: return "foreign";
    }
}

static void fill_rec(ohm_leak_record *out, const leak_rec *r, const char *host_site)
{
    memset(out, 0, sizeof *out);
    out->hint = r->hint;
    out->host_site = host_site;
    out->nframes = r->nframes;
    memcpy(out->frames, r->frames, r->nframes * sizeof r->frames[0]);
    out->time_ns = r->time_ns;
    out->thread = r->thread;
}

/* The text form, Netty's layout: the most recent access first, then the creation site. */
static char *report_text(const ohm_leak_report *rep, unsigned level)
{
    sbuf b = {0};
    sb_printf(&b, "LEAK: ohm_buf of %zu bytes (", rep->size);
    if (rep->origin == OHM_ORIGIN_POOL && rep->pool) {
        sb_puts(&b, "pool '");
        sb_puts(&b, rep->pool);
        sb_puts(&b, "'");
    } else {
        sb_puts(&b, rep->origin == OHM_ORIGIN_POOL   ? "pool"
                    : rep->origin == OHM_ORIGIN_FILE ? "mapped file"
                    : rep->origin == OHM_ORIGIN_SHM  ? "shared memory"
                                                     : "foreign memory");
    }
    sb_printf(&b, ", id %llu) was not released before %s.\n", (unsigned long long)rep->buffer_id,
              reason_phrase(rep->reason));
    if (rep->nrecords) {
        sb_puts(&b, "Recent access records:\n");
        for (unsigned i = rep->nrecords; i-- > 0;) {
            const ohm_leak_record *r = &rep->records[i];
            sb_printf(&b, "#%u:", rep->nrecords - i);
            if (r->hint) {
                sb_puts(&b, " Hint: ");
                sb_puts(&b, r->hint);
            }
            sb_puts(&b, "\n");
            sb_frames(&b, r->frames, r->nframes);
        }
    }
    sb_puts(&b, "Created at:\n");
    if (rep->created.host_site) sb_indented(&b, rep->created.host_site);
    sb_frames(&b, rep->created.frames, rep->created.nframes);
    if (rep->dropped)
        sb_printf(&b, "%llu older access records were dropped (at most %d are kept).\n",
                  (unsigned long long)rep->dropped, OHM_LEAK_MAX_RECORDS);
    if (rep->duplicates)
        sb_printf(&b, "%llu identical reports were suppressed before this one.\n", (unsigned long long)rep->duplicates);
    if (rep->nrecords == 0 && level < OHM_LEAK_ADVANCED)
        sb_puts(&b, "Set OHM_LEAK_LEVEL=advanced to see where the buffer was last accessed.\n");
    if (b.len && b.p[b.len - 1] == '\n') b.p[--b.len] = '\0';
    return b.p;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    if (!s) return mix(h, 0x5bd1e995);
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return mix(h, 1);
}

static uint64_t mix_frames(uint64_t h, const ohm_leak_record *r)
{
    h = mix(h, r->nframes);
    for (unsigned i = 0; i < r->nframes; i++) h = mix(h, (uint64_t)(uintptr_t)r->frames[i]);
    return mix_str(h, r->hint);
}

/* Identity of a report: where it was created (native frames and host site) and the access records. */
static uint64_t report_hash(const ohm_leak_report *rep)
{
    uint64_t h = mix_frames(0xcbf29ce484222325ull, &rep->created);
    h = mix_str(h, rep->created.host_site);
    h = mix(h, rep->nrecords);
    for (unsigned i = 0; i < rep->nrecords; i++) h = mix_frames(h, &rep->records[i]);
    return h ? h : 1;
}

/* Whether the hash is new (and now remembered). The set forgets everything when 3/4 full: memory stays
 * bounded, and a leak that keeps happening is reported again now and then. */
static bool dedup_first(uint64_t h)
{
    bool fresh = true;
    pthread_mutex_lock(&dedup_lock);
    size_t i = (size_t)(h * 0x9e3779b97f4a7c15ull >> 52) & (DEDUP_SLOTS - 1);
    for (;; i = (i + 1) & (DEDUP_SLOTS - 1)) {
        if (dedup_set[i] == h) {
            fresh = false;
            break;
        }
        if (dedup_set[i] == 0) {
            if (dedup_count >= DEDUP_MAX) {
                memset(dedup_set, 0, sizeof dedup_set);
                dedup_count = 0;
                i = (size_t)(h * 0x9e3779b97f4a7c15ull >> 52) & (DEDUP_SLOTS - 1);
            }
            dedup_set[i] = h;
            dedup_count++;
            break;
        }
    }
    pthread_mutex_unlock(&dedup_lock);
    return fresh;
}

static void log_report(const char *text)
{
    size_t len = strlen(text);
    if (len <= LOG_CHUNK) {
        ohm__log(OHM_LOG_WARN, "%s", text);
        return;
    }
    /* ohm__log formats into a fixed buffer: send a long report in pieces cut at line ends. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off;
        if (n > LOG_CHUNK) {
            n = LOG_CHUNK;
            for (size_t j = LOG_CHUNK; j > LOG_CHUNK / 2; j--)
                if (text[off + j - 1] == '\n') {
                    n = j;
                    break;
                }
        }
        ohm__log(OHM_LOG_WARN, "%s%.*s", off ? "LEAK (continued): " : "", (int)n, text + off);
        off += n;
    }
}

/* Builds the report of t (owned by the caller, unreachable from the live set) and delivers it with no leak
 * lock held: to fn, else to the handler, else to the log. Returns whether it was delivered. */
static bool deliver(const leak_track *t, ohm_leak_reason reason, bool dedup, ohm_leak_handler *fn, void *arg)
{
    ohm_leak_report rep;
    memset(&rep, 0, sizeof rep);
    rep.reason = reason;
    rep.buffer_id = t->buffer_id;
    rep.size = t->size;
    rep.origin = t->origin;
    rep.pool = t->pool[0] ? t->pool : NULL;
    fill_rec(&rep.created, &t->created, t->host_site);
    rep.nrecords = t->nrecords;
    for (unsigned i = 0; i < t->nrecords; i++) fill_rec(&rep.records[i], t->records[i], NULL);
    rep.dropped = t->dropped;
    if (dedup) {
        if (!dedup_first(report_hash(&rep))) {
            atomic_fetch_add(&dedup_suppressed, 1);
            return false;
        }
        rep.duplicates = atomic_exchange(&dedup_suppressed, 0);
    }
    char *text = report_text(&rep, (unsigned)(load_settings() & 0xff));
    rep.text = text ? text : "LEAK: ohm_buf was not released (no memory to describe it)";
    if (!fn) {
        pthread_mutex_lock(&handler_lock);
        fn = handler_fn;
        arg = handler_arg;
        pthread_mutex_unlock(&handler_lock);
    }
    if (fn) fn(arg, &rep);
    else log_report(rep.text);
    free(text);
    return true;
}

void leak_track_leaked(leak_track *t, ohm_leak_reason reason)
{
    if (!t) return;
    stripe *st = &stripes[t->stripe];
    stripe_lock(st);
    unlink_track(t);
    stripe_unlock(st);
    deliver(t, reason, true, NULL, NULL);
    if (scope_keep_gone(t, reason)) return;
    scope_detach(t);
    track_free(t);
}

void leak_untracked(ohm_leak_reason reason, size_t size)
{
    if ((unsigned)reason < 3) atomic_fetch_add_explicit(&untracked[reason], 1, memory_order_relaxed);
    uint64_t n = atomic_fetch_add_explicit(&untracked_total, 1, memory_order_relaxed) + 1;
    if ((load_settings() & 0xff) == OHM_LEAK_OFF) return; /* the user asked for silence */
    uint64_t p = 1;
    while (p < n && p <= UINT64_MAX / 10) p *= 10;
    if (p != n) return; /* the 1st, 10th, 100th ... */
    ohm__log(OHM_LOG_WARN,
             "%llu leaked buffers were not tracked (%llu garbage-collected, %llu at pool destruction; the last "
             "of %zu bytes); set OHM_LEAK_LEVEL=paranoid to see where they were made",
             (unsigned long long)n, (unsigned long long)atomic_load(&untracked[OHM_LEAK_GC]),
             (unsigned long long)atomic_load(&untracked[OHM_LEAK_POOL_DESTROY]), size);
}

/* ---- checkpoints ---- */

uint64_t ohm_leak_mark(void)
{
    load_settings();
    /* Read before the bump: a thread that sees the new epoch takes its next block after this read, so above it. */
    uint64_t mark = atomic_load(&next_seq);
    atomic_fetch_add_explicit(&seq_epoch, 1, memory_order_release);
    return mark;
}

/* A deep copy of t (under its stripe lock), NULL if out of memory. */
static leak_track *track_clone(const leak_track *t)
{
    leak_track *c = track_fresh(); /* not the thread's cache: its records may be linked */
    if (!c) return NULL;
    /* Not the scope fields: they are under the scope's lock, not the stripe's that the caller holds. */
    memcpy(c, t, offsetof(leak_track, scope));
    memcpy((char *)c + offsetof(leak_track, created), (const char *)t + offsetof(leak_track, created),
           sizeof *c - offsetof(leak_track, created));
    c->next = c->prev = NULL;
    c->linked = false;
    c->scope = NULL;
    c->snext = NULL;
    c->gone = OHM_LEAK_CHECKPOINT; /* still live */
    c->host_site = dup_str(t->host_site);
    for (unsigned i = 0; i < t->nrecords; i++) {
        leak_rec *r = rec_mem(sizeof *r);
        if (r) {
            *r = *t->records[i];
            r->hint = dup_str(t->records[i]->hint);
        }
        c->records[i] = r;
        if (!r) {
            c->nrecords = i;
            break;
        }
    }
    return c;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(leak_track *const *)a)->seq, y = (*(leak_track *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Deep copies of records (under their stripe locks), in an array that grows: what a checkpoint and a scope's close
 * hand out, with no lock held. */
typedef struct snapshot {
    leak_track **tracks;
    size_t n, cap;
    bool nomem; /* some are missing */
} snapshot;

static void snapshot_free(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) track_free(s->tracks[i]);
    free(s->tracks);
    *s = (snapshot){0};
}

/* Room for more records in s; false (and s->nomem) if there is no memory for it. */
static bool snapshot_reserve(snapshot *s, size_t more)
{
    if (s->n + more <= s->cap) return true;
    size_t ncap = s->cap ? 2 * s->cap : 16;
    if (ncap < s->n + more) ncap = s->n + more;
    leak_track **p = realloc(s->tracks, ncap * sizeof *p);
    if (!p) {
        s->nomem = true;
        return false;
    }
    s->tracks = p;
    s->cap = ncap;
    return true;
}

typedef bool record_match(const leak_track *t, const void *arg);

/* Walks the stripes for the live (not released) records match accepts; with out, deep copies of them go into it
 * until memory runs out (out->nomem). Returns how many matched. */
static size_t live_records(record_match *match, const void *arg, snapshot *out)
{
    size_t found = 0;
    for (unsigned i = 0; i < LEAK_STRIPES; i++) {
        stripe *st = &stripes[i];
        stripe_lock(st);
        for (leak_track *t = st->head; t; t = t->next) {
            if (atomic_load_explicit(&t->closed, memory_order_acquire) || !match(t, arg)) continue;
            found++;
            if (!out || out->nomem || !snapshot_reserve(out, 1)) continue;
            leak_track *c = track_clone(t);
            if (c) out->tracks[out->n++] = c;
            else out->nomem = true;
        }
        stripe_unlock(st);
    }
    return found;
}

static bool made_since(const leak_track *t, const void *mark) { return t->seq >= *(const uint64_t *)mark; }

int64_t ohm_leak_check(uint64_t mark, ohm_leak_handler *fn, void *arg)
{
    load_settings();
    snapshot snap = {0};
    live_records(made_since, &mark, &snap);
    if (snap.nomem) {
        snapshot_free(&snap);
        return ohm__error(OHM_ENOMEM, "ohm_leak_check: no memory for the snapshot of live records");
    }
    /* Creation order, and no locks held: fn may allocate buffers or call ohm_leak_* itself. */
    if (snap.n) qsort(snap.tracks, snap.n, sizeof *snap.tracks, cmp_seq);
    for (size_t i = 0; i < snap.n; i++) deliver(snap.tracks[i], OHM_LEAK_CHECKPOINT, false, fn, arg);
    int64_t n = (int64_t)snap.n;
    snapshot_free(&snap);
    return n;
}

/* ---- JSON ---- */

static void record_json(json_writer *j, const ohm_leak_record *r, bool created)
{
    json_object_begin(j);
    if (created) {
        json_key(j, "host_site");
        json_str(j, r->host_site);
    }
    json_key(j, "hint");
    json_str(j, r->hint);
    json_key(j, "frames");
    json_array_begin(j);
    unsigned nf = r->nframes < OHM_LEAK_MAX_FRAMES ? r->nframes : OHM_LEAK_MAX_FRAMES;
    for (unsigned i = 0; i < nf; i++) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "0x%llx", (unsigned long long)(uintptr_t)r->frames[i]);
        json_str(j, tmp);
    }
    json_array_end(j);
    json_key(j, "time_ns");
    json_u64(j, r->time_ns);
    json_key(j, "thread");
    json_u64(j, r->thread);
    json_object_end(j);
}

static void report_json(json_writer *w, const ohm_leak_report *rep)
{
    static const char *reasons[] = {"gc", "pool_destroy", "checkpoint"};
    json_writer j = *w;
    if (!rep) {
        json_null(&j);
        *w = j;
        return;
    }
    json_object_begin(&j);
    json_key(&j, "reason");
    json_str(&j, (unsigned)rep->reason < 3 ? reasons[rep->reason] : "unknown");
    json_key(&j, "buffer_id");
    json_u64(&j, rep->buffer_id);
    json_key(&j, "size");
    json_u64(&j, rep->size);
    json_key(&j, "origin");
    json_str(&j, origin_name(rep->origin));
    json_key(&j, "pool");
    json_str(&j, rep->pool);
    json_key(&j, "created");
    record_json(&j, &rep->created, true);
    json_key(&j, "records");
    json_array_begin(&j);
    unsigned nr = rep->nrecords < OHM_LEAK_MAX_RECORDS ? rep->nrecords : OHM_LEAK_MAX_RECORDS;
    for (unsigned i = 0; i < nr; i++) record_json(&j, &rep->records[i], false);
    json_array_end(&j);
    json_key(&j, "dropped");
    json_u64(&j, rep->dropped);
    json_key(&j, "duplicates");
    json_u64(&j, rep->duplicates);
    json_object_end(&j);
    *w = j;
}

size_t ohm_leak_report_json(const ohm_leak_report *rep, char *out, size_t cap)
{
    json_writer j;
    json_init(&j, out, cap);
    j.short_escapes = true;
    report_json(&j, rep);
    return j.len;
}

/* ---- scopes ---- */

/* A list and what its reports point into: the deep copies of the records and the texts. */
typedef struct leak_list {
    ohm_leak_list pub;
    leak_track **tracks;
    char **texts;
} leak_list;

/* Makes sc the calling thread's innermost scope; the sampling countdown is kept aside while the thread is in
 * one (0 sends every allocation to the slow path, where the scope is seen). */
static void set_thread_scope(leak_scope *sc)
{
    if (!tl_scope && sc) {
        tl_saved_countdown = tl_countdown;
        tl_countdown = 0;
    } else if (tl_scope && !sc) {
        tl_countdown = tl_saved_countdown;
    }
    tl_scope = sc;
}

/* An open scope by id, under scopes_lock. */
static leak_scope *scope_find(uint64_t id)
{
    for (leak_scope *sc = scopes_open; sc; sc = sc->reg_next)
        if (sc->id == id) return sc;
    return NULL;
}

/* Set (to 1) on a thread that opened or joined a scope: its exit ends what it left behind (scope_thread_exit). */
static pthread_key_t scope_key;
static pthread_once_t scope_key_once = PTHREAD_ONCE_INIT;
static int scope_key_err;

static void scope_thread_exit(void *unused);

static void scope_key_create(void) { scope_key_err = pthread_key_create(&scope_key, scope_thread_exit); }

static int scope_key_set(const char *fn)
{
    pthread_once(&scope_key_once, scope_key_create);
    if (!scope_key_err && (pthread_getspecific(scope_key) || pthread_setspecific(scope_key, (void *)1) == 0)) return 0;
    return ohm__error(OHM_ENOMEM, "%s: no thread-specific slot", fn);
}

uint64_t ohm_leak_scope_open(void)
{
    load_settings();
    if (scope_key_set("ohm_leak_scope_open")) return 0;
    leak_scope *sc = calloc(1, sizeof *sc);
    if (!sc) {
        ohm__error(OHM_ENOMEM, "ohm_leak_scope_open: no memory for the scope");
        return 0;
    }
    sc->id = atomic_fetch_add(&next_scope_id, 1);
    sc->parent = tl_scope;
    sc->opener = thread_id();
    sc->lock = (unsigned)(sc->id % SCOPE_LOCKS);
    atomic_init(&sc->refs, 1);
    /* Its close updates the parent, which its opener's exit may have ended (and released) meanwhile. */
    if (sc->parent) atomic_fetch_add(&sc->parent->refs, 1);
    pthread_mutex_lock(&scopes_lock);
    if (sc->parent) sc->parent->children++;
    LIST_PUSH_FRONT(scopes_open, sc, reg_next, reg_prev);
    pthread_mutex_unlock(&scopes_lock);
    set_thread_scope(sc);
    return sc->id;
}

int ohm_leak_scope_join(uint64_t id)
{
    if (tl_scope || tl_joined)
        return ohm__error(OHM_ESTATE, "ohm_leak_scope_join: this thread already belongs to scope %llu",
                          (unsigned long long)(tl_scope ? tl_scope->id : tl_joined->id));
    int rc = scope_key_set("ohm_leak_scope_join");
    if (rc) return rc;
    pthread_mutex_lock(&scopes_lock);
    leak_scope *sc = id ? scope_find(id) : NULL;
    if (sc) atomic_fetch_add(&sc->refs, 1);
    pthread_mutex_unlock(&scopes_lock);
    if (!sc) return ohm__error(OHM_EINVAL, "ohm_leak_scope_join: no open scope %llu", (unsigned long long)id);
    tl_joined = sc;
    set_thread_scope(sc);
    return 0;
}

int ohm_leak_scope_leave(void)
{
    leak_scope *sc = tl_joined;
    if (!sc) return ohm__error(OHM_ESTATE, "ohm_leak_scope_leave: this thread did not join a scope");
    if (tl_scope != sc)
        return ohm__error(OHM_ESTATE, "ohm_leak_scope_leave: scope %llu, opened inside scope %llu, is still open",
                          (unsigned long long)tl_scope->id, (unsigned long long)sc->id);
    tl_joined = NULL;
    set_thread_scope(NULL);
    scope_unref(sc);
    return 0;
}

uint64_t ohm_leak_scope_current(void)
{
    leak_scope *sc = scope_of_thread();
    return sc ? sc->id : 0;
}

int64_t ohm_leak_scope_live(uint64_t id)
{
    pthread_mutex_lock(&scopes_lock);
    leak_scope *sc = id ? scope_find(id) : NULL;
    int64_t n = sc ? scope_live(sc) : -1;
    pthread_mutex_unlock(&scopes_lock);
    if (n < 0) return ohm__error(OHM_EINVAL, "ohm_leak_scope_live: no open scope %llu", (unsigned long long)id);
    return n;
}

/* Whether the calling thread may close scope id now: 0, or the code (the message set). Under scopes_lock. */
static int close_check(uint64_t id, leak_scope **out)
{
    leak_scope *sc = id ? scope_find(id) : NULL;
    *out = sc;
    if (!sc)
        return ohm__error(OHM_EINVAL, "ohm_leak_scope_close: no open scope %llu (closed, or its opener exited?)",
                          (unsigned long long)id);
    if (sc->opener != thread_id())
        return ohm__error(OHM_EPERM, "ohm_leak_scope_close: scope %llu was opened by another thread",
                          (unsigned long long)id);
    if (sc->children || tl_scope != sc)
        return ohm__error(OHM_ESTATE, "ohm_leak_scope_close: a scope opened inside scope %llu is still open",
                          (unsigned long long)id);
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static leak_list *list_build(leak_track **snap, size_t n)
{
    leak_list *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->tracks = snap;
    if (n) {
        l->pub.reports = calloc(n, sizeof *l->pub.reports);
        l->texts = calloc(n, sizeof *l->texts);
        if (!l->pub.reports || !l->texts) {
            free(l->pub.reports);
            free(l->texts);
            free(l);
            return NULL;
        }
        qsort(snap, n, sizeof *snap, cmp_seq);
    }
    for (size_t i = 0; i < n; i++) {
        const leak_track *t = snap[i];
        ohm_leak_report *rep = &l->pub.reports[i];
        rep->reason = t->gone;
        rep->buffer_id = t->buffer_id;
        rep->size = t->size;
        rep->origin = t->origin;
        rep->pool = t->pool[0] ? t->pool : NULL;
        fill_rec(&rep->created, &t->created, t->host_site);
        rep->nrecords = t->nrecords;
        for (unsigned k = 0; k < t->nrecords; k++) fill_rec(&rep->records[k], t->records[k], NULL);
        rep->dropped = t->dropped;
        l->texts[i] = report_text(rep, OHM_LEAK_PARANOID); /* scoped records keep access records */
        rep->text = l->texts[i] ? l->texts[i] : "LEAK: ohm_buf was not released (no memory to describe it)";
        l->pub.bytes += t->size;
    }
    l->pub.count = n;
    return l;
}

void ohm_leak_list_free(ohm_leak_list *list)
{
    if (!list) return;
    leak_list *l = (leak_list *)list;
    for (size_t i = 0; i < list->count; i++) {
        track_free(l->tracks[i]);
        free(l->texts[i]);
    }
    free(l->tracks);
    free(l->texts);
    free(list->reports);
    free(l);
}

/* Out of the registry, scopes_lock held: no thread can find it to join or close it any more. */
static void scope_unregister(leak_scope *sc)
{
    if (sc->parent) sc->parent->children--;
    LIST_UNLINK(scopes_open, sc, reg_next, reg_prev);
}

/* Ends sc, unregistered and the calling thread's innermost scope. Closed under its lock (no record joins it after
 * that, but for attach's race), then its live records are found in the stripes: with copy, *out gets copies of
 * them and, with with_gone, the gone ones (else those are freed). The records stay in their stripes, each
 * keeping the scope's memory, until released. The thread belongs to the parent again. Returns the live records
 * found, plus the gone ones with with_gone. */
static bool made_in(const leak_track *t, const void *sc) { return t->scope == sc; }

static int64_t scope_end(leak_scope *sc, bool copy, bool with_gone, snapshot *out)
{
    leak_track *gone;
    size_t ngone = 0;
    *out = (snapshot){0};
    pthread_mutex_t *m = &scope_locks[sc->lock];
    pthread_mutex_lock(m);
    atomic_store_explicit(&sc->closed, true, memory_order_relaxed);
    gone = sc->gone; /* now ours, each with a reference on sc */
    sc->gone = NULL;
    if (with_gone)
        for (leak_track *t = gone; t; t = t->snext) ngone++;
    int64_t live = (int64_t)live_records(made_in, sc, copy ? out : NULL) + (int64_t)ngone;
    if (copy && ngone && !out->nomem) snapshot_reserve(out, ngone);
    pthread_mutex_unlock(m);
    for (leak_track *t = gone, *next; t; t = next) {
        next = t->snext;
        t->scope = NULL;
        if (with_gone && copy && !out->nomem) out->tracks[out->n++] = t;
        else track_free(t);
        scope_unref(sc);
    }
    set_thread_scope(sc->parent);
    if (sc->parent) scope_unref(sc->parent); /* the thread's own reference keeps it while it is tl_scope */
    scope_unref(sc);
    return live;
}

int64_t ohm_leak_scope_close(uint64_t id, uint32_t wait_ms, ohm_leak_list **out)
{
    if (out) *out = NULL;
    leak_scope *sc;
    pthread_mutex_lock(&scopes_lock);
    int rc = close_check(id, &sc);
    pthread_mutex_unlock(&scopes_lock);
    if (rc) return rc;

    /* Other threads may still be releasing what they were handed: wait for them, a millisecond at a time. */
    uint64_t deadline = os_now_ns() + (uint64_t)wait_ms * 1000000u;
    while (scope_live(sc) > 0 && os_now_ns() < deadline) sleep_ms(1);

    /* A joined thread may have opened a scope inside this one while we waited. */
    pthread_mutex_lock(&scopes_lock);
    rc = close_check(id, &sc);
    if (!rc) scope_unregister(sc);
    pthread_mutex_unlock(&scopes_lock);
    if (rc) return rc;

    snapshot snap;
    int64_t live = scope_end(sc, out != NULL, true, &snap);
    if (out && !snap.nomem) {
        leak_list *l = list_build(snap.tracks, snap.n);
        if (l) {
            *out = &l->pub;
            return live;
        }
        snap.nomem = true;
    }
    snapshot_free(&snap);
    if (snap.nomem)
        return ohm__error(OHM_ENOMEM, "ohm_leak_scope_close: no memory for the list of %lld live buffers",
                          (long long)live);
    return live;
}

/* A thread's exit (scope_key): each scope it opened and left open is ended, innermost first, whatever a joined
 * thread opened inside it (that one stays open, holding its parent's memory); then it leaves its joined scope. */
static void scope_thread_exit(void *unused)
{
    (void)unused;
    uint64_t me = thread_id();
    while (tl_scope && tl_scope != tl_joined && tl_scope->opener == me) {
        leak_scope *sc = tl_scope;
        pthread_mutex_lock(&scopes_lock);
        scope_unregister(sc);
        pthread_mutex_unlock(&scopes_lock);
        /* Nobody is left to take the list: the live buffers go to the handler. Those reported while the scope
         * was open (a GC, a pool destroyed) were reported then. */
        snapshot snap;
        int64_t live = scope_end(sc, true, false, &snap);
        if (snap.n) qsort(snap.tracks, snap.n, sizeof *snap.tracks, cmp_seq);
        for (size_t i = 0; i < snap.n; i++) deliver(snap.tracks[i], OHM_LEAK_CHECKPOINT, false, NULL, NULL);
        snapshot_free(&snap);
        if (snap.nomem)
            ohm__log(OHM_LOG_WARN,
                     "leak scope %llu ended at its thread's exit with %lld live buffers; no memory "
                     "to report them",
                     (unsigned long long)sc->id, (long long)live);
    }
    leak_scope *joined = tl_joined;
    if (joined) {
        tl_joined = NULL;
        set_thread_scope(NULL);
        scope_unref(joined);
    }
}

size_t ohm_leak_list_json(const ohm_leak_list *list, char *out, size_t cap)
{
    json_writer j;
    json_init(&j, out, cap);
    j.short_escapes = true;
    json_object_begin(&j);
    json_key(&j, "leaks");
    json_u64(&j, list ? list->count : 0);
    json_key(&j, "bytes");
    json_u64(&j, list ? list->bytes : 0);
    json_key(&j, "reports");
    json_array_begin(&j);
    for (size_t i = 0; list && i < list->count; i++) report_json(&j, &list->reports[i]);
    json_array_end(&j);
    json_object_end(&j);
    return j.len;
}
