/* fuzz_api.c -- a libFuzzer target over ohm's public API: pool, buffers (pool, foreign, mapped, shared and
 * guarded memory), the leak detector, the memory manager and the binding layer's libffi bridge.
 *
 * Why a model: a crash is only the loudest failure. Most of what a host relies on -- a reference count, an id
 * that goes stale, bytes that a refused write left alone, execution + storage == max -- breaks silently. So the
 * input is decoded as a sequence of operations with hostile arguments (sizes from 0 to SIZE_MAX, offsets at,
 * near and past the ends, counts 0/1/huge, stale and interior pointers, released handles, numbers of the wrong
 * sign or width), and beside the runtime the target keeps a model of what must be true: every buffer handle
 * with its (handle, id) pair, count owners with their counts and retained children, the bytes of every small
 * buffer, which memory is read-only, the pool's live blocks, each task's execution and unroll bytes, consumers,
 * pages and cached blocks. After every operation it compares the model with what the API shows: return codes
 * (a failure is a negative OHM_E* code with a non-empty ohm_last_error()), reference counts, ids, contents,
 * ohm_buf_readonly, pool stats and memory-manager stats. A broken invariant is __builtin_trap(), which is how
 * libFuzzer reports (OHM_FUZZ_VERBOSE=1 names the operations and the broken check first).
 *
 * The promises checked beyond the plain API contracts:
 *  - Read-only memory (a read-only mapped file or shared memory object, a sealed guarded or mapped buffer, and
 *    slices of them) refuses every write API with OHM_ESTATE and keeps its bytes; ohm_buf_readonly says so
 *    exactly; only a buffer owning its pages can be sealed, and a read-only mapping cannot be unsealed.
 *  - The bridge (ohm_ffi_call on checking functions defined here, with fuzzed signatures and arguments) refuses,
 *    before calling anything, a number that does not fit its parameter's sign and width, a string or a
 *    read-only buffer for a writable pointer, a released buffer, an offset past a buffer's end; an accepted
 *    call delivers exactly the value passed; no call changes a reference count.
 *  - Spill callbacks that lie, under-report, release in tiny steps, take back what they released or cancel
 *    their task end every acquire in a bounded number of spill calls, with the accounting exact: a lie is
 *    OHM_ECALLBACK naming the consumer, a cancel is OHM_ECANCELED.
 *
 * Each input starts from the same state and ends with everything released (the private pool back to 0 active
 * blocks), so inputs are independent. The private pool is created once; the memory manager is created per
 * input (a few hundred nanoseconds) because Spark's pools keep the split that borrowing left, which would make a
 * crash depend on the inputs run before it.
 *
 * Sequences that make the block cache hold references the fuzzer then takes away from under it (its user
 * releasing or reclaiming them, a task end freeing a cached page) are stepped around unless OHM_FUZZ_HOSTILE=1:
 * the model does not yet describe what the cache does then. tests/fuzz/regressions/open/ holds inputs that
 * show open problems (ctest does not run that folder).
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): fuzz_api with -fsanitize=fuzzer (clang), and fuzz_replay with
 * replay_main.c, which runs the files of tests/fuzz/regressions through LLVMFuzzerTestOneInput in every build.
 */
#include "ohm.h"
#include "ohm_bind.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing ---- */

static int g_verbose = -1; /* OHM_FUZZ_VERBOSE=1: say which invariant broke before trapping */
static int g_hostile = -1; /* OHM_FUZZ_HOSTILE=1: also run the sequences that hit known core bugs */

#define REQUIRE(cond)                          \
    do {                                       \
        if (!(cond)) fail_at(__LINE__, #cond); \
    } while (0)

static void fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_api: invariant broken at fuzz_api.c:%d: %s (last error %d: %s)\n", line, what,
            ohm_last_error_code(), ohm_last_error());
    fflush(stderr);
    __builtin_trap();
}

/* A failure must come back as a negative OHM_E* code with a message. */
static void require_error(int rc, int line)
{
    if (!(rc < 0 && rc >= OHM_ECALLBACK)) fail_at(line, "a failure is a negative OHM_E* code");
    if (ohm_last_error_code() != rc) fail_at(line, "ohm_last_error_code() matches the returned code");
    const char *m = ohm_last_error();
    if (!m || !*m) fail_at(line, "ohm_last_error() is not empty after a failure");
}
#define REQUIRE_ERR(rc, want)                                         \
    do {                                                              \
        int rc_ = (rc);                                               \
        require_error(rc_, __LINE__);                                 \
        if (rc_ != (want)) fail_at(__LINE__, "error code is " #want); \
    } while (0)

/* ---- input decoding ---- */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static uint8_t u8(reader *r) { return r->p < r->end ? *r->p++ : 0; }
static uint16_t u16(reader *r) { return (uint16_t)(u8(r) | u8(r) << 8); }
static uint32_t u32(reader *r) { return (uint32_t)u16(r) | (uint32_t)u16(r) << 16; }
static uint64_t u64(reader *r) { return (uint64_t)u32(r) | (uint64_t)u32(r) << 32; }

/* A size for an allocation or a request: mostly small, sometimes page- or chunk-sized, sometimes absurd. */
static uint64_t hsize(reader *r)
{
    uint8_t sel = u8(r);
    switch (sel % 16) {
    case 0: return 0;
    case 1: return 1 + sel / 16;
    case 2: return u8(r);
    case 3: return u16(r) % 4097;
    case 4: return u16(r);
    case 5: return (uint64_t)1 << (u8(r) % 64);
    case 6: return ((uint64_t)1 << (u8(r) % 64)) + (uint64_t)(int8_t)u8(r);
    case 7: return SIZE_MAX - u8(r);
    case 8: return (uint64_t)INT64_MAX + (uint64_t)(int8_t)u8(r);
    case 9: return ((uint64_t)4 << 20) + (uint64_t)(int8_t)u8(r) * 16; /* around the chunk size */
    case 10: return (uint64_t)u8(r) * 4096;
    case 11: return (uint64_t)(u8(r) % 64) * 16;
    case 12: return u64(r);
    default: return u8(r) % 160;
    }
}

/* An offset or a length relative to a buffer of size s: at, around and past the end, and absurd. */
static size_t hoff(reader *r, size_t s)
{
    uint8_t sel = u8(r);
    switch (sel % 12) {
    case 0: return 0;
    case 1: return s;
    case 2: return s ? s - 1 : 0;
    case 3: return s + 1;
    case 4:
    case 5:
    case 6: return s ? u16(r) % (s == SIZE_MAX ? s : s + 1) : 0;
    case 7: return SIZE_MAX;
    case 8: return SIZE_MAX - s;
    case 9: return s / 2;
    case 10: return (size_t)hsize(r);
    default: return sel / 12;
    }
}

/* A reference-count increment: 0, 1, small, around INT32_MAX, UINT32_MAX. */
static uint32_t hcount(reader *r, uint32_t cur)
{
    uint8_t sel = u8(r);
    switch (sel % 10) {
    case 0: return 0;
    case 1: return (uint32_t)INT32_MAX;
    case 2: return UINT32_MAX;
    case 3: return (uint32_t)INT32_MAX - cur;
    case 4: return (uint32_t)INT32_MAX - cur + 1;
    case 5: return cur;
    case 6: return cur + 1;
    case 7: return 2 + sel % 5;
    default: return 1;
    }
}

/* ---- the model ---- */

#define MAXH    256 /* buffer handles per input */
#define MAXRAW  64  /* raw pool blocks live at once */
#define MAXTASK 4
enum { REG_NO = 0, REG_YES = 1, REG_UNKNOWN = 2 };
#define MAXCONS    8     /* consumers per input */
#define MAXBLK     16    /* block ids b0..b15 */
#define SHADOW_MAX 16384 /* roots up to this size have their bytes modelled */
#define SCRATCH    (64 * 1024)

/* K_MAP: a root whose memory is no pool block -- a mapped file, shared memory, a memfd or a guarded buffer */
enum { K_ROOT, K_FOREIGN, K_PAGE, K_SLICE, K_RSLICE, K_MAP };

typedef struct hslot {
    ohm_buf *b;
    uint64_t id;
    int kind;
    int owner, parent, root; /* slot indexes; parent only for K_RSLICE */
    size_t off, size;        /* [off, off+size) of the root's memory */
    bool hdr;                /* the header is live (ohm_buf_id(b) == id) */
    bool forgotten;          /* reclaimed or freed by a task end: never passed to the API again */
    /* count owners (roots, foreign, pages, retained slices) */
    uint32_t count, rchildren;
    int cache_refs; /* cached blocks holding a reference through this owner */
    int cached;     /* cached blocks naming this very handle */
    /* roots */
    uint8_t *shadow; /* the bytes, for roots up to SHADOW_MAX; NULL otherwise */
    void *foreign;   /* K_FOREIGN: the malloc'd memory */
    int consumer;    /* K_PAGE: its consumer slot (-1 once its task ended) */
    uint64_t page_bytes;
    bool ro;    /* K_MAP: a read-only mapping */
    bool pages; /* K_MAP: owns whole pages, so it can be sealed */
    bool sealed;
} hslot;

typedef struct raw {
    void *p;
    size_t size;
    uint8_t fill;
} raw;

typedef struct task_m {
    ohm_task *t;
    uint64_t id;
    bool live;
    uint64_t held[2], unroll[2];
    int registered[2]; /* in the mode's fair share: REG_NO, REG_YES or REG_UNKNOWN */
    bool cancel;       /* a cancel is pending */
} task_m;

typedef struct cons_m {
    ohm_consumer *c;
    int task;
    bool live;
    int mode;
    uint64_t used;
    uint64_t pages;
    int spill_policy;
    bool spills;   /* has a spill callback */
    uint64_t step; /* policy SP_TINY: bytes per spill call in the current acquire (0: not chosen yet) */
    char name[40]; /* as the runtime names it in messages */
} cons_m;

typedef struct blk_m {
    bool cached;
    int h; /* handle slot or -1 (accounting only) */
    int mode;
    uint64_t size;
    uint32_t pins;
} blk_m;

static struct model {
    hslot h[MAXH];
    int nh;
    raw raws[MAXRAW];
    int nraw;
    void *recently_freed[8]; /* raw blocks freed since the pool's last allocation: a free again is a double free */
    int nfreed;
    task_m tasks[MAXTASK];
    uint64_t next_task_id;
    cons_m cons[MAXCONS];
    int ncons;
    blk_m blocks[MAXBLK];
    uint64_t pool_blocks; /* live blocks of the private pool: raw + buffer roots + pages */
    uint64_t foreign_released, foreign_expected;
    int evict_policy;
    bool faults;              /* fault injection on: any allocation may fail with OHM_ENOMEM */
    bool spilled;             /* a spill callback ran during the current call */
    uint64_t spill_calls;     /* spill calls of the current acquire (nested acquires' spills not included) */
    uint64_t spill_calls_all; /* and with them: what the task's stats count */
    int spill_depth;          /* > 0 inside a spill callback */
    int lied;                 /* consumer whose spill reported more than it released in this acquire, or -1 */
    bool cancelled_in_spill;  /* a spill of this acquire cancelled its task */
    uint64_t leak_reports;
} M;

static ohm_pool *g_pool;
static ohm_pool_stats g_ps; /* the private pool's stats at the last check */
static ohm_mm *g_mm;
static uint8_t g_scratch[SCRATCH], g_scratch2[SCRATCH];

#define MM_OFF_MAX ((uint64_t)16 << 20)
#define MM_ON_MAX  ((uint64_t)INT64_MAX)
#define MM_PAGE    ((size_t)64 << 10)
#define POOL_CAP   ((size_t)96 << 20)

static void log_sink(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    (void)level;
    REQUIRE(message != NULL);
}

static void leak_sink(void *arg, const ohm_leak_report *rep)
{
    (void)arg;
    REQUIRE(rep && rep->text && *rep->text);
    M.leak_reports++;
}

static void map_file_setup(void);

static void setup_once(void)
{
    if (g_pool) return;
    const char *v = getenv("OHM_FUZZ_VERBOSE");
    g_verbose = v && *v == '1';
    v = getenv("OHM_FUZZ_HOSTILE");
    g_hostile = v && *v == '1';
    ohm_set_log_handler(log_sink, NULL);
    ohm_leak_set_handler(leak_sink, NULL);
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "fuzz";
    cfg.chunk_size = (size_t)4 << 20;
    cfg.arenas = 1;
    cfg.purge_delay_ms = UINT64_MAX;
    cfg.background_purge = false;
    cfg.max_mapped = POOL_CAP;
    g_pool = ohm_pool_create(&cfg);
    REQUIRE(g_pool != NULL);
    map_file_setup();
}

/* ---- model helpers: buffers ---- */

static hslot *H(int i) { return &M.h[i]; }

static bool usable(int i)
{
    hslot *s = H(i);
    return s->hdr && H(s->owner)->count > 0 && H(s->root)->count > 0;
}

static void cons_page_gone(int ci, uint64_t bytes);

/* Owner o's count reached 0: its derived handles end, a retained slice gives back its reference on its parent,
 * a root's memory goes. */
static void owner_ends(int o)
{
    hslot *s = H(o);
    REQUIRE(s->count == 0);
    s->hdr = false;
    s->rchildren = 0;
    for (int i = 0; i < M.nh; i++)
        if (H(i)->kind == K_SLICE && H(i)->owner == o) H(i)->hdr = false;
    if (s->kind == K_RSLICE) {
        hslot *p = H(s->parent);
        if (p->count > 0) { /* still the buffer we hold a reference on */
            p->rchildren--;
            p->count--;
            if (!p->count) owner_ends(s->parent);
        }
        return;
    }
    free(s->shadow);
    s->shadow = NULL;
    if (s->kind == K_ROOT) M.pool_blocks--;
    if (s->kind == K_FOREIGN) M.foreign_expected++;
    if (s->kind == K_PAGE) {
        M.pool_blocks--;
        if (s->consumer >= 0) cons_page_gone(s->consumer, s->page_bytes);
    }
}

static void model_release(int o, uint32_t n)
{
    hslot *s = H(o);
    REQUIRE(s->count >= n);
    s->count -= n;
    if (!s->count) owner_ends(o);
}

/* Slot i (from new_slot) as the model of b, a new buffer that owns its count (1) and its memory. */
static hslot *root_slot(int i, ohm_buf *b, int kind, size_t size)
{
    hslot *s = H(i);
    s->b = b;
    s->id = ohm_buf_id(b);
    s->kind = kind;
    s->owner = s->root = i;
    s->size = size;
    s->hdr = true;
    s->count = 1;
    return s;
}

static int new_slot(void)
{
    if (M.nh >= MAXH) return -1;
    int i = M.nh++;
    memset(H(i), 0, sizeof *H(i));
    H(i)->consumer = -1;
    H(i)->parent = -1;
    return i;
}

/* A handle may be passed to the API: live and modelled, or released with its header not reused since. */
static bool passable(int i)
{
    hslot *s = H(i);
    if (s->forgotten) return false;
    if (s->hdr) return true;
    return ohm_buf_id(s->b) == 0;
}

/* Picks a handle slot to pass (-1: NULL). */
static int pick(reader *r)
{
    uint8_t v = u8(r);
    if (!M.nh || v == 255) return -1;
    int i = v % M.nh;
    for (int k = 0; k < M.nh; k++, i = (i + 1) % M.nh)
        if (passable(i)) return i;
    return -1;
}

static ohm_buf *B(int i) { return i < 0 ? NULL : H(i)->b; }

/* Root memory of handle i, as the model knows it, or NULL when not modelled. */
static uint8_t *shadow_of(int i) { return H(H(i)->root)->shadow; }

/* Whether writes through handle i are refused: its root is a read-only mapping or sealed. */
static bool ro_of(int i) { return H(H(i)->root)->ro || H(H(i)->root)->sealed; }

static void new_root_shadow(int i, bool zeroed)
{
    hslot *s = H(i);
    if (s->size > SHADOW_MAX) return;
    s->shadow = malloc(s->size ? s->size : 1);
    REQUIRE(s->shadow != NULL);
    if (zeroed) {
        memset(s->shadow, 0, s->size);
        REQUIRE(ohm_buf_read(s->b, 0, g_scratch, s->size) == 0);
        REQUIRE(memcmp(g_scratch, s->shadow, s->size) == 0);
    } else {
        REQUIRE(ohm_buf_read(s->b, 0, s->shadow, s->size) == 0);
    }
}

/* ---- model helpers: the memory manager ---- */

static void exec_release_m(int ti, int mode, uint64_t n)
{
    task_m *t = &M.tasks[ti];
    uint64_t r = n < t->held[mode] ? n : t->held[mode];
    t->held[mode] -= r;
    if (!t->held[mode]) t->registered[mode] = REG_NO;
}

static void cons_page_gone(int ci, uint64_t bytes)
{
    cons_m *c = &M.cons[ci];
    REQUIRE(c->live && c->pages > 0);
    c->pages--;
    c->used -= bytes < c->used ? bytes : c->used;
    exec_release_m(c->task, c->mode, bytes);
}

/* ---- callbacks ---- */

static int blk_of_id(const char *id)
{
    if (!id || id[0] != 'b') return -1;
    int k = atoi(id + 1);
    return k >= 0 && k < MAXBLK ? k : -1;
}

/* Block b leaves the manager's cache: the reference it held through its handle, if any, goes. */
static void block_uncached(blk_m *b)
{
    b->cached = false;
    if (b->h >= 0) {
        int o = H(b->h)->owner;
        H(o)->cache_refs--;
        H(b->h)->cached--;
        model_release(o, 1); /* the cache releases its reference */
    }
}

static int evict_cb(void *arg, const char *block_id, ohm_buf *buf)
{
    int k = (int)(intptr_t)arg;
    REQUIRE(k == blk_of_id(block_id));
    blk_m *bl = &M.blocks[k];
    REQUIRE(bl->cached && bl->pins == 0);
    REQUIRE(buf == (bl->h >= 0 ? H(bl->h)->b : NULL));
    switch (M.evict_policy) {
    case 2: return OHM_ESTATE;
    case 3: return 7; /* not an OHM_E* code: OHM_ECALLBACK */
    case 1:
        if (bl->h >= 0 && usable(bl->h) &&
            H(H(bl->h)->owner)->count < (uint32_t)INT32_MAX) { /* keep the buffer: one more reference of ours */
            REQUIRE(ohm_buf_retain(buf, 1) == 0);
            H(H(bl->h)->owner)->count++;
        }
        break;
    default: break;
    }
    block_uncached(bl); /* the cache releases its reference right after we return */
    return 0;
}

/* Spill policies (cons_m.spill_policy): 0 frees nothing; 1 frees what is asked but at least half; 2 frees all;
 * 3, 4 fail (an OHM_E* code, a code that is none); 5 frees a page; then the misbehaving ones below. */
enum {
    SP_LIE = 6,  /* releases some, reports more than that */
    SP_UNDER,    /* releases what is asked, reports half of it */
    SP_TINY,     /* releases a sixteenth of its usage per call */
    SP_TAKEBACK, /* releases what is asked, then acquires it back */
    SP_CANCEL,   /* cancels its own task, then releases what is asked or nothing */
    SP_COUNT
};

/* Releases up to n bytes of consumer ci from inside its spill; returns what it released. */
static uint64_t spill_release(int ci, uint64_t n)
{
    cons_m *c = &M.cons[ci];
    if (n > c->used) n = c->used;
    /* A consumer's usage can pass INT64_MAX (ohm_task_release gave back the task's bytes under it, and it
     * acquired again); one release takes at most INT64_MAX. */
    if (n > (uint64_t)INT64_MAX) n = (uint64_t)INT64_MAX;
    int64_t r = ohm_consumer_release(c->c, n);
    REQUIRE(r == (int64_t)n);
    c->used -= n;
    exec_release_m(c->task, c->mode, n);
    if (n) M.tasks[c->task].registered[c->mode] = REG_YES; /* the manager acquires again at once */
    return n;
}

static char g_lie_msg[128]; /* the message a lie must fail its acquire with */

static int64_t spill_misbehave(int ci, uint64_t size)
{
    cons_m *c = &M.cons[ci];
    switch (c->spill_policy) {
    case SP_LIE: {
        uint64_t x = spill_release(ci, size / 2);
        int64_t said = (int64_t)x + 1 + (int64_t)(size & 0xff);
        if (M.lied < 0) {
            M.lied = ci;
            snprintf(g_lie_msg, sizeof g_lie_msg, "reported %lld bytes but released %llu", (long long)said,
                     (unsigned long long)x);
        }
        return said;
    }
    case SP_UNDER: return (int64_t)(spill_release(ci, size ? size : 1) / 2);
    case SP_TINY:
        if (!c->step) c->step = c->used / 16 + 1;
        return (int64_t)spill_release(ci, c->step);
    case SP_TAKEBACK: {
        uint64_t x = spill_release(ci, size);
        if (!x) return 0;
        M.spill_depth++;
        int64_t g = ohm_consumer_acquire(c->c, x);
        M.spill_depth--;
        if (g_verbose)
            fprintf(stderr, "  consumer %d takes back %llu: %lld\n", ci, (unsigned long long)x, (long long)g);
        if (g < 0) {
            require_error((int)g, __LINE__);
            REQUIRE(g == OHM_ETIMEDOUT || g == OHM_ECANCELED || g == OHM_ESTATE || g == OHM_ECALLBACK ||
                    (M.faults && g == OHM_ENOMEM));
            if (g == OHM_ECANCELED) M.tasks[c->task].cancel = false;
            return (int64_t)x;
        }
        REQUIRE((uint64_t)g <= x);
        c->used += (uint64_t)g;
        M.tasks[c->task].held[c->mode] += (uint64_t)g;
        return (int64_t)x;
    }
    default: /* SP_CANCEL */
        REQUIRE(ohm_mm_cancel_task(g_mm, M.tasks[c->task].id) == 0);
        M.tasks[c->task].cancel = true;
        M.cancelled_in_spill = true;
        return (int64_t)spill_release(ci, size & 1 ? size : 0);
    }
}

static int64_t spill_cb(void *arg, uint64_t size, ohm_consumer *trigger)
{
    int ci = (int)(intptr_t)arg;
    cons_m *c = &M.cons[ci];
    REQUIRE(c->live && trigger != NULL);
    M.spilled = true;
    M.spill_calls_all++;
    if (M.spill_depth) return 0; /* asked during a take-back's own acquire: frees nothing */
    M.spill_calls++;
    if (c->spill_policy >= SP_LIE) return spill_misbehave(ci, size);
    if (g_verbose)
        fprintf(stderr, "  spill consumer %d (policy %d, used %llu) for %llu\n", ci, c->spill_policy,
                (unsigned long long)c->used, (unsigned long long)size);
    switch (c->spill_policy) {
    case 0: return 0;
    case 1:
    case 2: {
        /* Policy 1 frees what was asked, but at least half of what it holds: a consumer that frees exactly the
         * missing bytes of a task above its fair share is asked again and again (Spark's loop does the same)
         * until the task is below its share -- 2^41 spills with the ON_HEAP max of INT64_MAX used here. */
        uint64_t want = size > c->used / 2 ? size : c->used / 2;
        uint64_t n = c->spill_policy == 1 ? (want < c->used ? want : c->used) : c->used;
        if (n > (uint64_t)INT64_MAX) n = (uint64_t)INT64_MAX; /* see spill_release */
        int64_t r = ohm_consumer_release(c->c, n);
        REQUIRE(r == (int64_t)n);
        c->used -= n;
        exec_release_m(c->task, c->mode, n);
        if (r > 0) M.tasks[c->task].registered[c->mode] = REG_YES; /* the manager acquires again at once */
        return r;
    }
    case 3: return OHM_ESTATE;
    case 4: return -1000; /* not an OHM_E* code: OHM_ECALLBACK */
    default: {            /* free one of its pages that only we hold */
        for (int i = 0; i < M.nh; i++) {
            hslot *s = H(i);
            if (s->kind == K_PAGE && s->consumer == ci && s->count == 1 && !s->cache_refs && !s->rchildren &&
                !s->forgotten) {
                uint64_t bytes = s->page_bytes;
                REQUIRE(ohm_buf_release(s->b, 1) == 1);
                model_release(i, 1);
                M.tasks[c->task].registered[c->mode] = REG_YES;
                return (int64_t)bytes;
            }
        }
        return 0;
    }
    }
}

/* After a call during which spill callbacks ran. A spill that releases bytes the consumer no longer counts (its
 * user released them with ohm_consumer_release while its pages live) takes them from what the running acquire
 * already got, which the model cannot see: take the task's bytes from the manager then. The sums over all tasks
 * (execution_used) are still checked exactly. */
static void resync_task(int k)
{
    if (!M.spilled) return;
    M.spilled = false;
    task_m *t = &M.tasks[k];
    ohm_task_stats ts;
    REQUIRE(ohm_task_stats_get(t->t, &ts) == 0);
    for (int m = 0; m < 2; m++) {
        t->held[m] = ts.used[m];
        if (t->held[m]) t->registered[m] = REG_YES;
        else if (t->registered[m] == REG_YES) t->registered[m] = REG_UNKNOWN;
    }
}

/* Errors an acquire may return besides a grant: a wait that timed out or was cancelled, a failing eviction or
 * spill callback. */
static void check_acquire_error(int64_t rc, int ti, bool spills)
{
    int code = (int)rc;
    require_error(code, __LINE__);
    bool ok = code == OHM_ETIMEDOUT;
    if (code == OHM_ECANCELED && M.tasks[ti].cancel) {
        ok = true;
        M.tasks[ti].cancel = false;
    }
    if ((M.evict_policy == 2 || spills) && code == OHM_ESTATE) ok = true;
    if ((M.evict_policy == 3 || spills) && code == OHM_ECALLBACK) ok = true;
    if (M.faults && code == OHM_ENOMEM) ok = true;
    REQUIRE(ok);
}

/* ---- invariants after every step ---- */

static void check_all(void)
{
    /* buffers: liveness, ids, counts, sizes */
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        if (s->forgotten) continue;
        if (s->hdr) {
            REQUIRE(ohm_buf_id(s->b) == s->id);
            if (usable(i)) {
                REQUIRE(ohm_buf_check(s->b, s->id) == 0);
                REQUIRE(ohm_buf_refcnt(s->b) == H(s->owner)->count);
                REQUIRE(ohm_buf_size(s->b) == s->size);
                REQUIRE(s->size == 0 || ohm_buf_data(s->b) != NULL);
                REQUIRE(ohm_buf_readonly(s->b) == ro_of(i));
            } else {
                REQUIRE(!ohm_buf_readonly(s->b));
                REQUIRE_ERR(ohm_buf_check(s->b, s->id), OHM_ESTATE);
                REQUIRE(ohm_buf_refcnt(s->b) == 0);
                REQUIRE(ohm_buf_data(s->b) == NULL);
            }
        } else {
            uint64_t now = ohm_buf_id(s->b);
            REQUIRE(now != s->id);
            REQUIRE_ERR(ohm_buf_check(s->b, s->id), OHM_ESTATE);
            if (now == 0) REQUIRE(ohm_buf_refcnt(s->b) == 0 && ohm_buf_size(s->b) == 0 && !ohm_buf_readonly(s->b));
        }
    }
    REQUIRE(M.foreign_released == M.foreign_expected);

    /* the private pool: live blocks */
    REQUIRE(ohm_pool_stats_get(g_pool, -1, &g_ps) == 0);
    REQUIRE(g_ps.active_blocks == M.pool_blocks);
    REQUIRE(g_ps.mapped_bytes <= POOL_CAP);

    /* the memory manager */
    if (!g_mm) return;
    ohm_mm_stats st;
    REQUIRE(ohm_mm_stats_get(g_mm, &st) == 0);
    uint64_t tasks = 0, pages = 0, blocks = 0, bbytes = 0, held[2] = {0, 0}, unroll[2] = {0, 0}, sto[2] = {0, 0},
             reg[2] = {0, 0}, unk[2] = {0, 0};
    for (int i = 0; i < MAXTASK; i++) {
        task_m *t = &M.tasks[i];
        if (!t->live) continue;
        tasks++;
        ohm_task_stats ts;
        REQUIRE(ohm_task_stats_get(t->t, &ts) == 0);
        for (int m = 0; m < 2; m++) {
            REQUIRE(ts.used[m] == t->held[m]);
            REQUIRE(ts.unroll[m] == t->unroll[m]);
            held[m] += t->held[m];
            unroll[m] += t->unroll[m];
            if (t->held[m]) REQUIRE(t->registered[m] == REG_YES);
            reg[m] += t->registered[m] == REG_YES;
            unk[m] += t->registered[m] == REG_UNKNOWN;
        }
        REQUIRE(ts.id == t->id && !ts.waiting);
    }
    for (int i = 0; i < M.ncons; i++) {
        cons_m *c = &M.cons[i];
        if (!c->live) continue;
        pages += c->pages;
        ohm_consumer_stats cs;
        REQUIRE(ohm_consumer_stats_get(c->c, &cs) == 0);
        REQUIRE(cs.used == c->used && cs.pages == c->pages);
        REQUIRE(ohm_consumer_used(c->c) == c->used);
    }
    for (int k = 0; k < MAXBLK; k++) {
        blk_m *b = &M.blocks[k];
        if (!b->cached) continue;
        blocks++;
        bbytes += b->size;
        sto[b->mode] += b->size;
    }
    /* pages of ended tasks still referenced (by retained slices) */
    for (int i = 0; i < M.nh; i++)
        if (H(i)->kind == K_PAGE && H(i)->count > 0 && H(i)->consumer < 0) pages++;
    REQUIRE(st.tasks == tasks);
    REQUIRE(st.pages == pages);
    REQUIRE(st.blocks == blocks && st.block_bytes == bbytes);
    for (int m = 0; m < 2; m++) {
        const ohm_mm_mode_stats *ms = &st.mode[m];
        REQUIRE(ms->max == (m == OHM_OFF_HEAP ? MM_OFF_MAX : MM_ON_MAX));
        REQUIRE(ms->execution_pool + ms->storage_pool == ms->max);
        REQUIRE(ms->execution_used <= ms->execution_pool);
        REQUIRE(ms->storage_used <= ms->storage_pool);
        REQUIRE(ms->execution_used == held[m]);
        REQUIRE(ms->storage_used == sto[m] + unroll[m]);
        REQUIRE(ms->tasks >= reg[m] && ms->tasks <= reg[m] + unk[m]);
    }
}

/* ---- operations: the pool ---- */

/* Whether an allocation of size bytes from the private pool may fail: fault injection, an absurd size, or the
 * pool's max_mapped cap within reach (mapped bytes as of the last check, plus two chunks of slack). */
static bool alloc_may_fail(uint64_t size)
{
    return M.faults || size > ((size_t)32 << 20) || g_ps.mapped_bytes + size + ((size_t)8 << 20) > POOL_CAP;
}

static void raw_fill_check(const raw *w)
{
    size_t n = w->size < 4096 ? w->size : 4096;
    const uint8_t *p = w->p;
    for (size_t i = 0; i < n; i++) REQUIRE(p[i] == (uint8_t)(w->fill + i));
}

static void op_pool_alloc(reader *r)
{
    uint8_t how = u8(r) % 4;
    uint64_t size = hsize(r);
    size_t align = how == 2 ? (size_t)1 << (u8(r) % 24) : 16;
    if (how == 3) align = (size_t)u8(r) * 3; /* mostly not a power of two */
    void *p;
    switch (how) {
    case 0: p = ohm_pool_alloc(g_pool, (size_t)size); break;
    case 1: p = ohm_pool_alloc_zeroed(g_pool, (size_t)size); break;
    default: p = ohm_pool_alloc_aligned(g_pool, (size_t)size, align); break;
    }
    M.nfreed = 0;
    bool bad_align = how >= 2 && (align == 0 || (align & (align - 1)));
    if (!p) {
        int code = ohm_last_error_code();
        require_error(code, __LINE__);
        REQUIRE(bad_align || alloc_may_fail(size) || align > ((size_t)1 << 20));
        REQUIRE(code == OHM_ENOMEM || code == OHM_EINVAL);
        return;
    }
    REQUIRE(!bad_align);
    REQUIRE(((uintptr_t)p & 15) == 0);
    if (how >= 2) REQUIRE(((uintptr_t)p & (align - 1)) == 0);
    REQUIRE(ohm_usable_size(p) >= size);
    ohm_block_info bi;
    REQUIRE(ohm_lookup(p, &bi) == 0 && bi.base == p && bi.live && bi.pool == g_pool && bi.size >= size);
    M.pool_blocks++;
    if (how == 1) {
        size_t n = size < 4096 ? size : 4096;
        for (size_t i = 0; i < n; i++) REQUIRE(((uint8_t *)p)[i] == 0);
    }
    if (M.nraw == MAXRAW) {
        REQUIRE(ohm_pool_free(g_pool, p) == 0);
        M.pool_blocks--;
        return;
    }
    raw *w = &M.raws[M.nraw++];
    w->p = p;
    w->size = size;
    w->fill = u8(r);
    size_t n = size < 4096 ? size : 4096;
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)(w->fill + i);
}

static void raw_free_at(int k)
{
    raw w = M.raws[k];
    raw_fill_check(&w);
    REQUIRE(ohm_pool_free(g_pool, w.p) == 0);
    M.pool_blocks--;
    M.raws[k] = M.raws[--M.nraw];
    if (M.nfreed < 8) M.recently_freed[M.nfreed++] = w.p;
}

static void op_pool_free(reader *r)
{
    if (!M.nraw) return;
    raw_free_at(u8(r) % M.nraw);
}

static void op_pool_free_bad(reader *r)
{
    uint8_t how = u8(r) % 6;
    int rc;
    switch (how) {
    case 0: /* interior pointer of a live block */
        if (!M.nraw) return;
        {
            raw *w = &M.raws[u8(r) % M.nraw];
            size_t us = ohm_usable_size(w->p);
            REQUIRE(us > 0);
            size_t off = 1 + (size_t)u16(r) % (us - 1 ? us - 1 : 1);
            if (off >= us) return;
            char *q = (char *)w->p + off;
            REQUIRE(ohm_usable_size(q) == 0);
            ohm_block_info bi;
            REQUIRE(ohm_lookup(q, &bi) == 0 && bi.base == w->p && bi.live);
            REQUIRE_ERR(ohm_pool_free(g_pool, q), OHM_EINVAL);
            REQUIRE_ERR(ohm_free(q), OHM_EINVAL);
        }
        break;
    case 1: /* double free while the block sits free */
        if (!M.nfreed) return;
        rc = ohm_pool_free(g_pool, M.recently_freed[u8(r) % M.nfreed]);
        REQUIRE_ERR(rc, OHM_EINVAL);
        break;
    case 2: { /* memory of no pool: the heap, the stack */
        void *m = malloc(64);
        REQUIRE(m != NULL);
        REQUIRE_ERR(ohm_pool_free(g_pool, m), OHM_EINVAL);
        REQUIRE_ERR(ohm_free(m), OHM_EINVAL);
        ohm_block_info bi;
        REQUIRE_ERR(ohm_lookup(m, &bi), OHM_EINVAL);
        REQUIRE(ohm_usable_size(m) == 0);
        free(m);
        uint64_t local = 0;
        REQUIRE_ERR(ohm_pool_free(g_pool, &local), OHM_EINVAL);
        break;
    }
    case 3: { /* a block of another pool (the default one) */
        void *p = ohm_alloc((size_t)hsize(r) % 100000);
        if (!p) return;
        REQUIRE_ERR(ohm_pool_free(g_pool, p), OHM_EINVAL);
        REQUIRE(ohm_free(p) == 0);
        break;
    }
    case 4: /* NULL is a no-op */
        REQUIRE(ohm_pool_free(g_pool, NULL) == 0);
        REQUIRE(ohm_free(NULL) == 0);
        break;
    default: { /* a buffer handle's address is not a block */
        int i = pick(r);
        if (i < 0) return;
        REQUIRE_ERR(ohm_pool_free(g_pool, H(i)->b), OHM_EINVAL);
        break;
    }
    }
}

/* ---- operations: buffers ---- */

static void fuzz_foreign_release(void *arg, void *data, size_t size)
{
    (void)arg;
    (void)size;
    free(data);
    M.foreign_released++;
}

static void op_buf_alloc(reader *r)
{
    uint8_t how = u8(r) % 4;
    uint64_t size = hsize(r);
    int i = new_slot();
    if (i < 0) return;
    ohm_buf *b;
    void *fm = NULL;
    if (how == 3) { /* foreign memory */
        size %= 4096;
        /* NULL with size 0 is allowed (slicing it once computed NULL + 0: regressions/wrap-null-zero-...) */
        fm = size ? malloc(size) : NULL;
        if (!fm && size) {
            M.nh--;
            return;
        }
        if (fm) memset(fm, 0x5a, size);
        b = ohm_buf_wrap(fm, size, fuzz_foreign_release, NULL);
    } else {
        b = how == 1 ? ohm_buf_alloc_zeroed(g_pool, (size_t)size) : ohm_buf_alloc(g_pool, (size_t)size);
        M.nfreed = 0;
    }
    if (!b) {
        int code = ohm_last_error_code();
        require_error(code, __LINE__);
        REQUIRE(code == OHM_ENOMEM || code == OHM_EINVAL);
        REQUIRE(alloc_may_fail(size));
        free(fm);
        M.nh--;
        return;
    }
    hslot *s = root_slot(i, b, how == 3 ? K_FOREIGN : K_ROOT, (size_t)size);
    REQUIRE(s->id != 0);
    for (int k = 0; k < M.nh - 1; k++) REQUIRE(!(H(k)->hdr && H(k)->id == s->id)); /* ids are unique */
    s->foreign = fm;
    if (s->kind == K_ROOT) M.pool_blocks++;
    REQUIRE(ohm_buf_refcnt(b) == 1 && ohm_buf_size(b) == size);
    REQUIRE(ohm_buf_origin_of(b) == (how == 3 ? OHM_ORIGIN_FOREIGN : OHM_ORIGIN_POOL));
    if (how == 3 && size) REQUIRE(ohm_buf_data(b) == fm);
    if (how == 3 && !size && fm) REQUIRE(ohm_buf_data(b) == fm);
    new_root_shadow(i, how == 1);
}

/* The refusals retain and release share: no handle or a zero count (EINVAL), a released handle (ESTATE). True
 * when the call was refused, and refused with the right code. */
static bool count_call_refused(int rc, int i, uint32_t n)
{
    if (i < 0 || n == 0) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return true;
    }
    if (!H(i)->hdr) {
        REQUIRE_ERR(rc, OHM_ESTATE);
        return true;
    }
    return false;
}

static void op_retain(reader *r)
{
    int i = pick(r);
    uint32_t cur = i >= 0 && H(i)->hdr ? H(H(i)->owner)->count : 0;
    uint32_t n = hcount(r, cur);
    int rc = ohm_buf_retain(B(i), n);
    if (count_call_refused(rc, i, n)) return;
    if ((uint64_t)cur + n > INT32_MAX) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    REQUIRE(rc == 0);
    H(H(i)->owner)->count += n;
}

static void op_release(reader *r)
{
    int i = pick(r);
    uint32_t cur = i >= 0 && H(i)->hdr ? H(H(i)->owner)->count : 0;
    uint32_t n = hcount(r, cur);
    if (i >= 0 && H(i)->hdr && !g_hostile) {
        /* The cache's references, and those its retained slices hold, are not ours to release (a known core
         * hazard, see the top). */
        hslot *o = H(H(i)->owner);
        uint32_t keep = (uint32_t)o->cache_refs + o->rchildren;
        if (o->cache_refs && n <= cur && n > cur - keep) n = cur > keep ? cur - keep : 0;
        if (o->cache_refs && n == 0) return;
    }
    int rc = ohm_buf_release(B(i), n);
    if (count_call_refused(rc, i, n)) return;
    if (n > cur) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    REQUIRE(rc == (n == cur));
    model_release(H(i)->owner, n);
}

/* Expected outcome of an access of [off, off+len) through handle i (-1: NULL); a write to read-only memory is
 * OHM_ESTATE whatever the range. */
static int access_code_rw(int i, size_t off, size_t len, bool write)
{
    if (i < 0) return OHM_EINVAL;
    if (!usable(i)) return OHM_ESTATE;
    if (write && ro_of(i)) return OHM_ESTATE;
    size_t s = H(i)->size;
    if (off > s || len > s - off) return OHM_ERANGE;
    return 0;
}

static int access_code(int i, size_t off, size_t len) { return access_code_rw(i, off, len, false); }

/* After a refused write through handle i: the bytes the model knows are still there. */
static void require_unchanged(int i)
{
    uint8_t *sh = i >= 0 && usable(i) ? shadow_of(i) : NULL;
    if (!sh) return;
    REQUIRE(H(i)->size <= SCRATCH);
    REQUIRE(ohm_buf_read(H(i)->b, 0, g_scratch2, H(i)->size) == 0);
    REQUIRE(memcmp(g_scratch2, sh + H(i)->off, H(i)->size) == 0);
}

static void op_derive(reader *r, int kind) /* kind: 0 slice, 1 duplicate, 2 retained slice */
{
    int i = pick(r);
    size_t s = i >= 0 ? H(i)->size : 0;
    size_t off = kind == 1 ? 0 : hoff(r, s);
    size_t len = kind == 1 ? s : hoff(r, s > off ? s - off : 0);
    int want = access_code(i, off, len);
    if (kind == 2 && !want && H(H(i)->owner)->count >= (uint32_t)INT32_MAX) want = OHM_EINVAL; /* its retain */
    int j = new_slot();
    if (j < 0) return;
    ohm_buf *d = kind == 0   ? ohm_buf_slice(B(i), off, len)
                 : kind == 1 ? ohm_buf_duplicate(B(i))
                             : ohm_buf_retained_slice(B(i), off, len);
    if (want) {
        REQUIRE(d == NULL);
        REQUIRE_ERR(ohm_last_error_code(), want);
        M.nh--;
        return;
    }
    if (!d) { /* only the header allocator can fail */
        REQUIRE(M.faults);
        REQUIRE_ERR(ohm_last_error_code(), OHM_ENOMEM);
        M.nh--;
        return;
    }
    hslot *p = H(i), *s2 = H(j);
    s2->b = d;
    s2->id = ohm_buf_id(d);
    REQUIRE(s2->id != 0 && s2->id != p->id);
    s2->hdr = true;
    s2->root = p->root;
    s2->off = p->off + off;
    s2->size = len;
    if (kind == 2) {
        s2->kind = K_RSLICE;
        s2->owner = j;
        s2->parent = p->owner;
        s2->count = 1;
        H(p->owner)->count++;
        H(p->owner)->rchildren++;
    } else {
        s2->kind = K_SLICE;
        s2->owner = p->owner;
    }
    REQUIRE(ohm_buf_size(d) == len);
    if (len) REQUIRE((uint8_t *)ohm_buf_data(d) == (uint8_t *)ohm_buf_data(p->b) + off);
}

static void fill_pattern(uint8_t *dst, size_t len, uint8_t seed)
{
    for (size_t k = 0; k < len; k++) dst[k] = (uint8_t)(seed + k * 31);
}

static void op_read_write(reader *r, int what) /* 0 read, 1 write, 2 fill, 3 span */
{
    int i = pick(r);
    size_t s = i >= 0 ? H(i)->size : 0;
    size_t off = hoff(r, s);
    size_t len = hoff(r, s > off ? s - off : 0);
    uint8_t seed = u8(r);
    int want = access_code_rw(i, off, len, what == 1 || what == 2);
    if (!want && len > SCRATCH && what < 2) len %= SCRATCH;
    int rc;
    uint8_t *sh = i >= 0 && usable(i) ? shadow_of(i) : NULL;
    size_t at = i >= 0 ? H(i)->off + off : 0;
    switch (what) {
    case 0:
        rc = ohm_buf_read(B(i), off, g_scratch, len);
        if (want) {
            REQUIRE_ERR(rc, want);
            return;
        }
        REQUIRE(rc == 0);
        if (sh) REQUIRE(memcmp(g_scratch, sh + at, len) == 0);
        if (len) REQUIRE_ERR(ohm_buf_read(B(i), off, NULL, len), OHM_EINVAL);
        break;
    case 1:
        if (!want) fill_pattern(g_scratch, len, seed);
        rc = ohm_buf_write(B(i), off, g_scratch, len);
        if (want) {
            REQUIRE_ERR(rc, want);
            require_unchanged(i);
            return;
        }
        REQUIRE(rc == 0);
        if (sh) memcpy(sh + at, g_scratch, len);
        if (len) REQUIRE_ERR(ohm_buf_write(B(i), off, NULL, len), OHM_EINVAL);
        break;
    case 2:
        if (!want && len > ((size_t)1 << 20)) len = (size_t)1 << 20;
        rc = ohm_buf_fill(B(i), off, seed, len);
        if (want) {
            REQUIRE_ERR(rc, want);
            require_unchanged(i);
            return;
        }
        REQUIRE(rc == 0);
        if (sh) memset(sh + at, seed, len);
        break;
    default: {
        void *ptr = NULL;
        rc = ohm_buf_span(B(i), off, len, &ptr);
        if (want) {
            REQUIRE_ERR(rc, want);
            return;
        }
        REQUIRE(rc == 0);
        if (len) REQUIRE(ptr == (uint8_t *)ohm_buf_data(B(i)) + off);
        if (len && sh) REQUIRE(*(uint8_t *)ptr == sh[at]);
        REQUIRE_ERR(ohm_buf_span(B(i), off, len, NULL), OHM_EINVAL);
        break;
    }
    }
}

static void op_copy(reader *r)
{
    int d = pick(r), s = pick(r);
    size_t ds = d >= 0 ? H(d)->size : 0, ss = s >= 0 ? H(s)->size : 0;
    size_t doff = hoff(r, ds), soff = hoff(r, ss);
    size_t len = hoff(r, ss > soff ? ss - soff : 0);
    int want = access_code(s, soff, len);
    if (!want) want = access_code_rw(d, doff, len, true);
    if (!want && len > ((size_t)1 << 20)) return;
    int rc = ohm_buf_copy(B(d), doff, B(s), soff, len);
    if (want) {
        REQUIRE_ERR(rc, want);
        if (d >= 0) require_unchanged(d);
        return;
    }
    REQUIRE(rc == 0);
    uint8_t *dsh = shadow_of(d), *ssh = shadow_of(s);
    size_t dat = H(d)->off + doff, sat = H(s)->off + soff;
    if (dsh && ssh) memmove(dsh + dat, ssh + sat, len);
    else if (dsh) { /* source bytes unknown to the model: learn them */
        REQUIRE(ohm_buf_read(B(d), doff, dsh + dat, len) == 0);
    }
    if (dsh) {
        REQUIRE(len <= SCRATCH);
        REQUIRE(ohm_buf_read(B(d), doff, g_scratch2, len) == 0);
        REQUIRE(memcmp(g_scratch2, dsh + dat, len) == 0);
    }
}

static void forget(int i) { H(i)->forgotten = true; }

static void op_reclaim(reader *r)
{
    int i = pick(r);
    if (i < 0) {
        REQUIRE(ohm_buf_reclaim(NULL, 1) == 0);
        return;
    }
    hslot *s = H(i);
    bool stale = u8(r) % 4 == 0;
    if (stale) { /* a wrong id is a no-op */
        REQUIRE(ohm_buf_reclaim(s->b, s->id ^ 2) == 0);
        REQUIRE(ohm_buf_reclaim(s->b, 0) == 0);
        return;
    }
    if (!s->hdr) { /* after release: a no-op */
        REQUIRE(ohm_buf_reclaim(s->b, s->id) == 0);
        return;
    }
    if (!g_hostile && (s->cached || H(s->owner)->cache_refs)) return; /* the known cache hazard */
    int rc = ohm_buf_reclaim(s->b, s->id);
    if (s->kind == K_SLICE) {
        /* Only the handle goes, unless its owner's handle was reclaimed before and this was the owner's last
         * plain slice: then what was retained through the slices since is reclaimed with it. */
        s->hdr = false;
        forget(i);
        hslot *o = H(s->owner);
        bool last = o->forgotten && o->hdr;
        for (int j = 0; last && j < M.nh; j++)
            if (j != i && H(j)->kind == K_SLICE && H(j)->owner == s->owner && H(j)->hdr) last = false;
        uint32_t leaked = last && o->count > o->rchildren ? o->count - o->rchildren : 0;
        REQUIRE(rc == (leaked ? 1 : 0));
        if (leaked) model_release(s->owner, leaked);
        return;
    }
    /* a count owner: the references nobody can release any more go; retained slices keep theirs */
    uint32_t leaked = s->count > s->rchildren ? s->count - s->rchildren : 0;
    if (g_verbose) fprintf(stderr, "  reclaim h%d: %d (leaked %u)\n", i, rc, leaked);
    REQUIRE(rc == (leaked ? 1 : 0));
    forget(i);
    if (leaked) model_release(i, leaked);
}

static void op_misc(reader *r)
{
    int i = pick(r);
    uint8_t hb = u8(r), how = hb % 6;
    switch (how) {
    case 0: {
        int rc = ohm_buf_touch(B(i), u8(r) & 1 ? "fuzz hint" : NULL);
        int want = i < 0 ? OHM_EINVAL : usable(i) ? 0 : OHM_ESTATE;
        if (want) REQUIRE_ERR(rc, want);
        else REQUIRE(rc == 0);
        break;
    }
    case 1: {
        int rc = ohm_buf_set_site(B(i), "fuzz site\n  at LLVMFuzzerTestOneInput");
        int want = i < 0 ? OHM_EINVAL : usable(i) ? 0 : OHM_ESTATE;
        if (want) REQUIRE_ERR(rc, want);
        else REQUIRE(rc == 0);
        if (i >= 0 && usable(i)) (void)ohm_buf_tracked(B(i));
        break;
    }
    case 2: {                        /* seal or unseal: only a handle covering a whole root that owns its pages */
        bool seal = hb / 6 % 4 != 3; /* mostly seal */
        int rc = ohm_buf_seal(B(i), seal);
        int want = i < 0 ? OHM_EINVAL : !usable(i) ? OHM_ESTATE : 0;
        if (!want) {
            hslot *root = H(H(i)->root);
            if (!root->pages || H(i)->off != 0 || H(i)->size != root->size) want = OHM_EINVAL;
        }
        if (want) {
            REQUIRE_ERR(rc, want);
            break;
        }
        REQUIRE(rc == 0);
        H(H(i)->root)->sealed = seal;
        break;
    }
    case 3: {
        size_t size = (size_t)hsize(r), off = hoff(r, size), len = hoff(r, size > off ? size - off : 0);
        int rc = ohm_range_check(size, off, len);
        if (off > size || len > size - off) REQUIRE_ERR(rc, OHM_ERANGE);
        else REQUIRE(rc == 0);
        break;
    }
    case 4: { /* a stale id against a live handle */
        if (i < 0) {
            REQUIRE_ERR(ohm_buf_check(NULL, 0), OHM_EINVAL);
            break;
        }
        REQUIRE_ERR(ohm_buf_check(B(i), H(i)->id + ((uint64_t)2 << 32)), OHM_ESTATE);
        break;
    }
    default: { /* lookups of addresses inside buffers */
        int rk = i >= 0 ? H(H(i)->root)->kind : K_FOREIGN;
        if (i < 0 || !usable(i) || (rk != K_ROOT && rk != K_PAGE) || !H(i)->size) break;
        uint8_t *p = ohm_buf_data(B(i));
        size_t k = hoff(r, H(i)->size - 1);
        if (k >= H(i)->size) k = H(i)->size - 1;
        ohm_block_info bi;
        REQUIRE(ohm_lookup(p + k, &bi) == 0 && bi.live && bi.pool == g_pool);
        REQUIRE((uint8_t *)bi.base <= p + k && p + k < (uint8_t *)bi.base + bi.size);
        break;
    }
    }
}

static void op_leak(reader *r)
{
    static const ohm_leak_level levels[] = {OHM_LEAK_OFF, OHM_LEAK_SIMPLE, OHM_LEAK_ADVANCED, OHM_LEAK_PARANOID};
    uint8_t how = u8(r);
    if (how % 3 == 0) {
        ohm_leak_set_level(levels[(how / 3) % 4]);
        REQUIRE(ohm_leak_get_level() == levels[(how / 3) % 4]);
    } else if (how % 3 == 1) {
        uint32_t iv = (uint32_t)hsize(r);
        ohm_leak_set_sample_interval(iv);
        REQUIRE(ohm_leak_get_sample_interval() == (iv ? iv : 1));
    } else {
        uint64_t mark = ohm_leak_mark();
        uint64_t before = M.leak_reports;
        int64_t n = ohm_leak_check(mark, leak_sink, NULL);
        REQUIRE(n >= 0 && (uint64_t)n == M.leak_reports - before);
        int64_t all = ohm_leak_check(0, leak_sink, NULL);
        REQUIRE(all >= 0);
        /* Every count owner can be tracked: roots of each origin, and retained slices, which have records of
         * their own. */
        uint64_t owners = 0;
        for (int i = 0; i < M.nh; i++)
            owners += H(i)->count > 0 && (H(i)->kind == K_ROOT || H(i)->kind == K_FOREIGN || H(i)->kind == K_PAGE ||
                                          H(i)->kind == K_MAP || H(i)->kind == K_RSLICE);
        REQUIRE((uint64_t)all <= owners);
    }
}

/* ---- operations: the memory manager ---- */

static int pick_task(reader *r)
{
    int k = u8(r) % MAXTASK;
    return M.tasks[k].live ? k : -1;
}

static void op_task_create(reader *r)
{
    int k = u8(r) % MAXTASK;
    if (M.tasks[k].live) { /* an id in use */
        ohm_task *t = ohm_task_create(g_mm, M.tasks[k].id);
        REQUIRE(t == NULL);
        REQUIRE_ERR(ohm_last_error_code(), OHM_EINVAL);
        return;
    }
    task_m *t = &M.tasks[k];
    memset(t, 0, sizeof *t);
    t->id = M.next_task_id++ | (u8(r) & 1 ? (uint64_t)1 << 63 : 0);
    t->t = ohm_task_create(g_mm, t->id);
    REQUIRE(t->t != NULL && ohm_task_id(t->t) == t->id);
    ohm_task_set_wait_timeout(t->t, 0); /* one thread: a wait can only time out */
    t->live = true;
}

static void op_task_acquire(reader *r)
{
    int k = pick_task(r);
    int mode = u8(r) % 3; /* 2 is not a mode */
    uint64_t n = hsize(r);
    if (mode == 0 && u8(r) & 1) n = (uint64_t)u32(r) << 20;
    if (k < 0) {
        REQUIRE_ERR((int)ohm_task_acquire(NULL, OHM_OFF_HEAP, n), OHM_EINVAL);
        return;
    }
    task_m *t = &M.tasks[k];
    int64_t g = ohm_task_acquire(t->t, (ohm_mem_mode)mode, n);
    if (mode > 1 || n > (uint64_t)INT64_MAX) {
        REQUIRE_ERR((int)g, OHM_EINVAL);
        return;
    }
    if (n == 0) {
        REQUIRE(g == 0);
        return;
    }
    t->registered[mode] = REG_YES;
    if (g < 0) {
        check_acquire_error(g, k, false);
        return;
    }
    REQUIRE((uint64_t)g <= n);
    t->held[mode] += (uint64_t)g;
}

static void op_task_release(reader *r)
{
    int k = pick_task(r);
    int mode = u8(r) % 3;
    task_m *t = k >= 0 ? &M.tasks[k] : NULL;
    uint64_t n = u8(r) & 1 ? hsize(r) : (t && mode < 2 ? t->held[mode] / (1 + u8(r) % 4) : 0);
    if (!t) {
        REQUIRE_ERR((int)ohm_task_release(NULL, OHM_ON_HEAP, n), OHM_EINVAL);
        return;
    }
    int64_t g = ohm_task_release(t->t, (ohm_mem_mode)mode, n);
    if (mode > 1 || n > (uint64_t)INT64_MAX) {
        REQUIRE_ERR((int)g, OHM_EINVAL);
        return;
    }
    uint64_t want = n < t->held[mode] ? n : t->held[mode];
    REQUIRE(g == (int64_t)want);
    exec_release_m(k, mode, n);
}

static void op_unroll(reader *r)
{
    int k = pick_task(r);
    if (k < 0) return;
    task_m *t = &M.tasks[k];
    int mode = u8(r) % 2;
    uint64_t n = hsize(r);
    if (u8(r) & 1) { /* release */
        int64_t g = ohm_task_release_unroll(t->t, (ohm_mem_mode)mode, n);
        uint64_t want = n < t->unroll[mode] ? n : t->unroll[mode];
        REQUIRE(g == (int64_t)want);
        t->unroll[mode] -= want;
        return;
    }
    char group[16];
    snprintf(group, sizeof group, "g%u", u8(r) % 3);
    int rc = ohm_task_acquire_unroll(t->t, (ohm_mem_mode)mode, u8(r) & 1 ? group : NULL, n);
    if (n > (uint64_t)INT64_MAX) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (rc == 0) {
        t->unroll[mode] += n;
        return;
    }
    require_error(rc, __LINE__);
    REQUIRE(rc == OHM_ELIMIT || (M.evict_policy == 2 && rc == OHM_ESTATE) ||
            (M.evict_policy == 3 && rc == OHM_ECALLBACK));
}

static void op_consumer_create(reader *r)
{
    int k = pick_task(r);
    if (k < 0 || M.ncons >= MAXCONS) return;
    int ci = M.ncons;
    cons_m *c = &M.cons[ci];
    memset(c, 0, sizeof *c);
    c->mode = u8(r) % 2;
    c->task = k;
    c->spill_policy = u8(r) % 6;
    c->spills = u8(r) % 4 != 0;
    bool named = u8(r) & 1;
    snprintf(c->name, sizeof c->name, named ? "fuzz\"consumer%d\n" : "consumer", ci);
    c->c = ohm_consumer_create(M.tasks[k].t, (ohm_mem_mode)c->mode, named ? c->name : NULL, c->spills ? spill_cb : NULL,
                               (void *)(intptr_t)ci);
    REQUIRE(c->c != NULL);
    c->live = true;
    M.ncons++;
}

static int pick_cons(reader *r)
{
    if (!M.ncons) return -1;
    int ci = u8(r) % M.ncons;
    return M.cons[ci].live ? ci : -1;
}

/* What an acquire of n bytes by consumer ci may cost in spill calls, from the rule at ohm_spill_fn: each of the
 * K other consumers of the task and mode that hold bytes and can spill is asked once, and again only while its
 * previous spill took its usage below where any earlier one left it and the requester was granted some of
 * it; then the requester itself once. So a repeat costs the victim at least 1 byte of the usage it had when
 * the acquire began and gives the requester at least 1 of the n bytes asked:
 *     calls <= K + 1 + min(n, sum of their usages).
 * That bound is the guarantee; a policy that releases in known steps gets a tighter one (cap_of), which is
 * what catches a loop that re-asks a consumer whose spills achieve nothing. */
static uint64_t spill_cap_of(int o, uint64_t n)
{
    cons_m *c = &M.cons[o];
    uint64_t general = 1 + (n < c->used ? n : c->used);
    switch (c->spill_policy) {
    case 0:
    case 3:
    case 4:
    case SP_LIE:
    case SP_CANCEL: return 1; /* nothing released, or the acquire ends */
    case 1: return 66;        /* at least half of its usage each time: at most 64 halvings, then 0 */
    case 2: return 3;         /* all of it (two releases above INT64_MAX), then nothing is left */
    case 5: return c->pages + 1;
    case SP_TINY: return 17; /* steps of more than a sixteenth of its usage: at most 16, then nothing left */
    default: return general;
    }
}

static struct spill_round {
    uint64_t bound, tight;  /* the guaranteed bound and the policies' one */
    uint64_t spills_before; /* the task's spill count */
    int ci;
} g_round;

static void spill_round_begin(int ci, uint64_t n)
{
    cons_m *c = &M.cons[ci];
    uint64_t k = 0, sum = 0, tight = c->spills;
    for (int o = 0; o < M.ncons; o++) {
        cons_m *v = &M.cons[o];
        v->step = 0;
        if (o == ci || !v->live || v->task != c->task || v->mode != c->mode || !v->used || !v->spills) continue;
        k++;
        sum = sum + v->used < sum ? UINT64_MAX : sum + v->used;
        tight += spill_cap_of(o, n);
    }
    g_round.ci = ci;
    g_round.bound = k + 1 + (n < sum ? n : sum);
    g_round.tight = tight;
    ohm_task_stats ts;
    REQUIRE(ohm_task_stats_get(M.tasks[c->task].t, &ts) == 0);
    g_round.spills_before = ts.spills;
    M.spill_calls = M.spill_calls_all = 0;
    M.lied = -1;
    M.cancelled_in_spill = false;
    M.spilled = false;
}

/* After the acquire: the number of spill calls within the bounds, each one counted by the task's stats, a lie
 * failing it with OHM_ECALLBACK naming the liar, a cancel from a spill with OHM_ECANCELED. */
static void spill_round_end(int64_t g)
{
    cons_m *c = &M.cons[g_round.ci];
    if (g_verbose && M.spill_calls)
        fprintf(stderr, "  %llu spill calls (bounds %llu, %llu)\n", (unsigned long long)M.spill_calls,
                (unsigned long long)g_round.bound, (unsigned long long)g_round.tight);
    REQUIRE(M.spill_calls <= g_round.bound);
    REQUIRE(M.spill_calls <= g_round.tight);
    if (M.lied >= 0) {
        REQUIRE(g == OHM_ECALLBACK);
        const char *m = ohm_last_error();
        REQUIRE(strstr(m, "spill of consumer ") && strstr(m, M.cons[M.lied].name) && strstr(m, g_lie_msg));
    } else if (M.cancelled_in_spill) {
        REQUIRE(g == OHM_ECANCELED);
    }
    ohm_task_stats ts; /* a success leaves this thread's error alone: the caller checks it next */
    REQUIRE(ohm_task_stats_get(M.tasks[c->task].t, &ts) == 0);
    REQUIRE(ts.spills - g_round.spills_before == M.spill_calls_all);
}

static void op_consumer_acquire(reader *r)
{
    int ci = pick_cons(r);
    if (ci < 0) {
        REQUIRE_ERR((int)ohm_consumer_acquire(NULL, 1), OHM_EINVAL);
        return;
    }
    cons_m *c = &M.cons[ci];
    uint64_t n = hsize(r);
    if (u8(r) & 1) { /* release */
        int64_t g = ohm_consumer_release(c->c, n);
        if (n > (uint64_t)INT64_MAX) {
            REQUIRE_ERR((int)g, OHM_EINVAL);
            return;
        }
        uint64_t want = n < c->used ? n : c->used;
        REQUIRE(g == (int64_t)want);
        c->used -= want;
        exec_release_m(c->task, c->mode, want);
        return;
    }
    task_m *t = &M.tasks[c->task];
    int before = t->registered[c->mode];
    /* the acquire registers the task first; spill callbacks update the model as they run */
    if (n && n <= (uint64_t)INT64_MAX) t->registered[c->mode] = REG_YES;
    spill_round_begin(ci, n);
    int64_t g = ohm_consumer_acquire(c->c, n);
    spill_round_end(g);
    if (g_verbose) fprintf(stderr, "  consumer %d acquire %llu: %lld\n", ci, (unsigned long long)n, (long long)g);
    if (n > (uint64_t)INT64_MAX) {
        REQUIRE_ERR((int)g, OHM_EINVAL);
        return;
    }
    if (n == 0) {
        REQUIRE(g == 0);
        t->registered[c->mode] = before;
        return;
    }
    if (g < 0) {
        check_acquire_error(g, c->task, true);
        if (!t->held[c->mode]) t->registered[c->mode] = REG_UNKNOWN;
        resync_task(c->task);
        return;
    }
    REQUIRE((uint64_t)g <= n);
    c->used += (uint64_t)g;
    t->held[c->mode] += (uint64_t)g;
    if (g) t->registered[c->mode] = REG_YES;
    resync_task(c->task);
}

static uint64_t got_or_want(uint64_t want) { return want < MM_OFF_MAX ? want : MM_OFF_MAX; }

static void op_alloc_page(reader *r)
{
    int ci = pick_cons(r);
    if (ci < 0) return;
    cons_m *c = &M.cons[ci];
    uint64_t size = hsize(r);
    if (u8(r) & 1) size %= ((size_t)4 << 20);
    int j = new_slot();
    if (j < 0) return;
    uint64_t want = size > MM_PAGE ? size : MM_PAGE;
    task_m *t = &M.tasks[c->task];
    if (c->mode == OHM_OFF_HEAP && want <= (uint64_t)INT64_MAX) t->registered[c->mode] = REG_YES;
    spill_round_begin(ci, want);
    ohm_buf *b = ohm_consumer_alloc_page(c->c, (size_t)size);
    spill_round_end(b ? 0 : ohm_last_error_code());
    M.nfreed = 0;
    if (!b) {
        M.nh--;
        int code = ohm_last_error_code();
        require_error(code, __LINE__);
        if (c->mode != OHM_OFF_HEAP) {
            REQUIRE(code == OHM_EINVAL);
            return;
        }
        if (want > (uint64_t)INT64_MAX) {
            REQUIRE(code == OHM_EINVAL);
            return;
        }
        /* nothing stays charged; the acquire may have registered the task, and spills may have run */
        if (!t->held[c->mode]) t->registered[c->mode] = REG_UNKNOWN;
        resync_task(c->task);
        if (code == OHM_ELIMIT || code == OHM_ETIMEDOUT) return;
        if (code == OHM_ECANCELED && M.tasks[c->task].cancel) {
            M.tasks[c->task].cancel = false;
            return;
        }
        if (code == OHM_ESTATE || code == OHM_ECALLBACK) return; /* a spill or eviction callback failed */
        REQUIRE(code == OHM_ENOMEM && alloc_may_fail(got_or_want(want)));
        return;
    }
    REQUIRE(c->mode == OHM_OFF_HEAP);
    size_t got = ohm_buf_size(b);
    REQUIRE(got >= size && got <= want);
    hslot *s = root_slot(j, b, K_PAGE, got);
    s->consumer = ci;
    s->page_bytes = got;
    c->pages++;
    c->used += got;
    M.tasks[c->task].held[c->mode] += got;
    t->registered[c->mode] = REG_YES;
    resync_task(c->task);
    M.pool_blocks++;
    new_root_shadow(j, false);
}

static void op_consumer_destroy(reader *r)
{
    int ci = pick_cons(r);
    if (ci < 0) return;
    cons_m *c = &M.cons[ci];
    int rc = ohm_consumer_destroy(c->c);
    if (c->pages) {
        REQUIRE_ERR(rc, OHM_ESTATE);
        return;
    }
    REQUIRE(rc == 0);
    if (c->used) exec_release_m(c->task, c->mode, c->used);
    c->live = false;
}

/* Whether ending task k would free a page the cache still holds (the known hazard). */
static bool task_has_cached_pages(int k)
{
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        if (s->kind == K_PAGE && s->count > 0 && s->consumer >= 0 && M.cons[s->consumer].task == k && s->cache_refs)
            return true;
    }
    return false;
}

static void task_end(int k)
{
    task_m *t = &M.tasks[k];
    uint64_t leaked = t->held[0] + t->held[1];
    /* its pages: reclaimed (the references nobody else holds go), the handles are not used again */
    int pages[MAXH], np = 0;
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        if (s->kind == K_PAGE && s->count > 0 && s->consumer >= 0 && M.cons[s->consumer].task == k) {
            s->consumer = -1;
            pages[np++] = i;
        }
    }
    for (int ci = 0; ci < M.ncons; ci++)
        if (M.cons[ci].live && M.cons[ci].task == k) M.cons[ci].live = false;
    int64_t rc = ohm_task_end(t->t);
    REQUIRE(rc == (int64_t)leaked);
    t->live = false;
    for (int n = 0; n < np; n++) {
        hslot *s = H(pages[n]);
        forget(pages[n]);
        uint32_t drop = s->count > s->rchildren ? s->count - s->rchildren : 0;
        if (drop) model_release(pages[n], drop);
    }
}

static void op_task_end(reader *r)
{
    int k = pick_task(r);
    if (k < 0) return;
    if (!g_hostile && task_has_cached_pages(k)) return;
    task_end(k);
}

static void op_cancel(reader *r)
{
    int k = u8(r) % MAXTASK;
    if (!M.tasks[k].live) {
        REQUIRE_ERR(ohm_mm_cancel_task(g_mm, M.next_task_id + 1000), OHM_EINVAL);
        return;
    }
    REQUIRE(ohm_mm_cancel_task(g_mm, M.tasks[k].id) == 0);
    M.tasks[k].cancel = true;
}

static void blk_name(char *out, size_t cap, int k) { snprintf(out, cap, "b%u", (unsigned)k % 100u); }

static void op_block_put(reader *r)
{
    int k = u8(r) % MAXBLK;
    char id[16], group[8];
    blk_name(id, sizeof id, k);
    snprintf(group, sizeof group, "g%u", u8(r) % 3);
    int mode = u8(r) % 2;
    int i = u8(r) % 3 ? pick(r) : -1;
    uint64_t size = u8(r) % 3 ? hsize(r) : 0;
    if (i >= 0 && !g_hostile) { /* the known hazard: pages in the cache, an owner already over-released */
        hslot *o = H(H(i)->owner);
        if (H(H(i)->root)->kind == K_PAGE || (H(i)->hdr && o->count < o->rchildren + (uint32_t)o->cache_refs + 1))
            i = -1;
    }
    const char *g = u8(r) & 1 ? group : NULL;
    int rc = ohm_block_put(g_mm, id, g, (ohm_mem_mode)mode, B(i), size, evict_cb, (void *)(intptr_t)k);
    if (i >= 0 && !usable(i)) {
        REQUIRE_ERR(rc, OHM_ESTATE);
        return;
    }
    uint64_t charged = size ? size : i >= 0 ? H(i)->size : 0;
    if (i < 0 && !size) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (charged > (uint64_t)INT64_MAX) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (i >= 0 && H(H(i)->owner)->count >= (uint32_t)INT32_MAX) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (M.blocks[k].cached) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (rc) {
        require_error(rc, __LINE__);
        REQUIRE(rc == OHM_ELIMIT || (M.evict_policy == 2 && rc == OHM_ESTATE) ||
                (M.evict_policy == 3 && rc == OHM_ECALLBACK) || (M.faults && rc == OHM_ENOMEM));
        return;
    }
    blk_m *b = &M.blocks[k];
    b->cached = true;
    b->h = i;
    b->mode = mode;
    b->size = charged;
    b->pins = 0;
    if (i >= 0) {
        H(H(i)->owner)->count++;
        H(H(i)->owner)->cache_refs++;
        H(i)->cached++;
    }
}

static void op_block_pin(reader *r)
{
    int k = u8(r) % (MAXBLK + 1);
    char id[16];
    blk_name(id, sizeof id, k);
    blk_m *b = k < MAXBLK ? &M.blocks[k] : NULL;
    bool cached = b && b->cached;
    if (u8(r) & 1) {
        int rc = ohm_block_unpin(g_mm, id);
        if (!cached) {
            REQUIRE_ERR(rc, OHM_EINVAL);
            return;
        }
        if (!b->pins) {
            REQUIRE_ERR(rc, OHM_ESTATE);
            return;
        }
        REQUIRE(rc == 0);
        b->pins--;
        return;
    }
    ohm_buf *out = (ohm_buf *)&out;
    int rc = ohm_block_pin(g_mm, id, &out);
    if (!cached) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    REQUIRE(rc == 0);
    b->pins++;
    REQUIRE(out == (b->h >= 0 ? H(b->h)->b : NULL));
    /* the cached buffer may be unusable: a retained slice whose root its user over-released */
    if (b->h >= 0) REQUIRE(ohm_buf_refcnt(out) == (usable(b->h) ? H(H(b->h)->owner)->count : 0));
}

static void block_remove(int k, bool expect_ok)
{
    char id[16];
    blk_name(id, sizeof id, k);
    blk_m *b = k < MAXBLK ? &M.blocks[k] : NULL;
    int rc = ohm_block_remove(g_mm, id);
    if (!b || !b->cached) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        return;
    }
    if (b->pins) {
        REQUIRE_ERR(rc, OHM_ESTATE);
        REQUIRE(!expect_ok);
        return;
    }
    REQUIRE(rc == 0);
    block_uncached(b);
}

static void op_block_remove(reader *r) { block_remove(u8(r) % (MAXBLK + 1), false); }

static void op_policy(reader *r)
{
    uint8_t v = u8(r);
    M.evict_policy = v % 4;
    if (v & 0x80) {
        int ci = pick_cons(r);
        if (ci >= 0) M.cons[ci].spill_policy = u8(r) % 6;
    }
}

static void op_spill_policy(reader *r)
{
    int ci = pick_cons(r);
    if (ci >= 0) M.cons[ci].spill_policy = SP_LIE + u8(r) % (SP_COUNT - SP_LIE);
}

static void op_pool_maint(reader *r)
{
    uint8_t v = u8(r) % 4;
    if (v == 0) REQUIRE(ohm_pool_trim(g_pool) == 0);
    else if (v == 1) REQUIRE(ohm_pool_flush_thread_cache(g_pool) == 0);
    else if (v == 2) {
        char json[512];
        size_t n = ohm_mm_snapshot_json(g_mm, json, sizeof json);
        REQUIRE(n > 0 && strlen(json) == (n < sizeof json ? n : sizeof json - 1));
        REQUIRE(json[0] == '{');
    } else {
        ohm_pool_stats st;
        REQUIRE(ohm_pool_stats_get(g_pool, 0, &st) == 0);
        REQUIRE_ERR(ohm_pool_stats_get(g_pool, 5, &st), OHM_EINVAL);
    }
}

static void op_faults(reader *r)
{
    uint8_t v = u8(r);
    if (v % 4 == 0 && !M.faults) {
        ohm_fault_inject(2 + v / 4 % 8, 0, 0);
        M.faults = true;
    } else if (M.faults) {
        ohm_fault_inject(0, 0, 0);
        M.faults = false;
    }
}

/* ---- operations: mapped, shared and guarded memory ---- */

#define MAP_FILE_SIZE ((size_t)64 << 10)
static char g_map_path[64]; /* a file of MAP_FILE_SIZE bytes, byte k == map_byte(k), mapped read-only */
static unsigned g_shm_seq;

static uint8_t map_byte(size_t k) { return (uint8_t)(k * 7 + 3); }

static void map_file_remove(void)
{
    if (g_map_path[0]) unlink(g_map_path);
}

static void map_file_setup(void)
{
    snprintf(g_map_path, sizeof g_map_path, "/tmp/ohm-fuzz-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(g_map_path);
    REQUIRE(fd >= 0);
    for (size_t done = 0; done < MAP_FILE_SIZE; done += SCRATCH) {
        for (size_t k = 0; k < SCRATCH; k++) g_scratch[k] = map_byte(done + k);
        REQUIRE(write(fd, g_scratch, SCRATCH) == (ssize_t)SCRATCH);
    }
    REQUIRE(close(fd) == 0);
    atexit(map_file_remove);
}

/* A root of memory the pool does not own: a memfd (writable; sealable when it is whole pages), a named shared
 * memory object opened read-only, a read-only region of a file, or a guarded buffer (owns its pages: sealable).
 * The read-only ones hold bytes written before they were opened, which the model knows. */
static void op_map(reader *r)
{
    uint8_t how = u8(r) % 4;
    size_t size = (size_t)u16(r) % (SHADOW_MAX + 1);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (u8(r) & 1) size = (1 + (size_t)u8(r) % 4) * page;
    if (size > SHADOW_MAX) size = SHADOW_MAX;
    int i = new_slot();
    if (i < 0) return;
    ohm_buf *b = NULL;
    bool ro = false, pages = false, zeroed = false;
    size_t foff = 0; /* how == 2: the region's offset in the file */
    switch (how) {
    case 0:
        b = ohm_buf_shm_create(NULL, size);
        if (!size) {
            REQUIRE(!b);
            REQUIRE_ERR(ohm_last_error_code(), OHM_EINVAL);
            M.nh--;
            return;
        }
        pages = size % page == 0;
        zeroed = true;
        break;
    case 1: {
        if (!size) size = 1;
        char name[64];
        snprintf(name, sizeof name, "/ohm-fuzz-%ld-%u", (long)getpid(), g_shm_seq++);
        ohm_buf *w = ohm_buf_shm_create(name, size);
        if (!w) { /* fault injection reaches the mappings too */
            REQUIRE(M.faults);
            require_error(ohm_last_error_code(), __LINE__);
            M.nh--;
            return;
        }
        for (size_t k = 0; k < size; k++) g_scratch[k] = map_byte(k);
        REQUIRE(ohm_buf_write(w, 0, g_scratch, size) == 0);
        b = ohm_buf_shm_open(name, false);
        if (!b) require_error(ohm_last_error_code(), __LINE__);
        REQUIRE(ohm_shm_unlink(name) == 0);
        REQUIRE(ohm_buf_release(w, 1) == 1); /* the read-only mapping keeps the memory */
        if (!b) {
            REQUIRE(M.faults);
            M.nh--;
            return;
        }
        ro = true;
        break;
    }
    case 2: {
        foff = (size_t)u16(r) % MAP_FILE_SIZE;
        if (u8(r) % 8 == 0) { /* past the end of the file */
            REQUIRE(ohm_buf_map_file(g_map_path, foff, MAP_FILE_SIZE - foff + 1 + u8(r), OHM_MAP_READ) == NULL);
            if (M.faults) require_error(ohm_last_error_code(), __LINE__);
            else REQUIRE_ERR(ohm_last_error_code(), OHM_ERANGE);
            M.nh--;
            return;
        }
        if (size > MAP_FILE_SIZE - foff) size = MAP_FILE_SIZE - foff;
        b = ohm_buf_map_file(g_map_path, foff, size, OHM_MAP_READ);
        if (!size) size = MAP_FILE_SIZE - foff; /* 0: to the end of the file */
        if (b && size > SHADOW_MAX) {           /* bigger than the model keeps bytes of */
            REQUIRE(ohm_buf_release(b, 1) == 1);
            M.nh--;
            return;
        }
        ro = true;
        break;
    }
    default:
        if (!size) size = 1; /* guards apply to sizes >= the minimum, which is at least 1 */
        ohm_buf_set_guard(1);
        b = u8(r) & 1 ? ohm_buf_alloc_zeroed(g_pool, size) : ohm_buf_alloc(g_pool, size);
        ohm_buf_set_guard(0);
        pages = zeroed = true; /* fresh mappings are zero */
        break;
    }
    if (!b) {
        REQUIRE(M.faults); /* only fault injection makes these fail */
        require_error(ohm_last_error_code(), __LINE__);
        M.nh--;
        return;
    }
    hslot *s = root_slot(i, b, K_MAP, size);
    REQUIRE(s->id != 0);
    s->ro = ro;
    s->pages = pages;
    REQUIRE(ohm_buf_size(b) == size && ohm_buf_refcnt(b) == 1);
    REQUIRE(ohm_buf_readonly(b) == ro);
    if (how == 1 || how == 2) {
        s->shadow = malloc(size);
        REQUIRE(s->shadow != NULL);
        for (size_t k = 0; k < size; k++) s->shadow[k] = map_byte(foff + k);
        REQUIRE(ohm_buf_read(b, 0, g_scratch, size) == 0);
        REQUIRE(memcmp(g_scratch, s->shadow, size) == 0);
    } else {
        new_root_shadow(i, zeroed);
    }
}

/* ---- operations: the bridge ---- */

/* What the checking functions received: each records its arguments and counts its calls, so the model can
 * tell a refused call (not made) from an accepted one and compare every value delivered. */
static struct fz_rec {
    unsigned calls;
    ohm_bind_value got[5];
    uint64_t len;   /* strlen of a str argument; bytes a sink wrote or read */
    uint64_t allow; /* bytes a sink may touch at its pointer, set by the model before the call */
} FZ;

/* The echo functions of one scalar type each: name suffix, C type, ohm_bind_value member, ohm_ffi_type suffix. */
/* clang-format off */
#define FZ_ECHOES(X)          \
    X(i8, int8_t, i, I8)      \
    X(u8, uint8_t, u, U8)     \
    X(i16, int16_t, i, I16)   \
    X(u16, uint16_t, u, U16)  \
    X(i32, int32_t, i, I32)   \
    X(u32, uint32_t, u, U32)  \
    X(i64, int64_t, i, I64)   \
    X(u64, uint64_t, u, U64)  \
    X(f32, float, f, F32)     \
    X(f64, double, f, F64)    \
    X(ptr, void *, p, PTR)
/* clang-format on */

#define FZ_ECHO(sfx, T, field, TYPE) \
    static T fz_echo_##sfx(T v)      \
    {                                \
        FZ.calls++;                  \
        FZ.got[0].field = v;         \
        return v;                    \
    }
FZ_ECHOES(FZ_ECHO)

static const void *fz_echo_cptr(const void *p)
{
    FZ.calls++;
    FZ.got[0].p = (void *)p;
    return p;
}

static const char *fz_echo_str(const char *s)
{
    FZ.calls++;
    FZ.got[0].p = (void *)s;
    FZ.len = s ? strlen(s) : 0;
    return s;
}

/* Writes min(n, allow) bytes: a read-only buffer that reached it would fault here. */
static void fz_sink(void *p, uint64_t n)
{
    FZ.calls++;
    FZ.got[0].p = p;
    FZ.got[1].u = n;
    FZ.len = n < FZ.allow ? n : FZ.allow;
    for (uint64_t k = 0; k < FZ.len; k++) ((uint8_t *)p)[k] = (uint8_t)(0xa5 ^ k);
}

static uint64_t fz_csink(const void *p, uint64_t n)
{
    FZ.calls++;
    FZ.got[0].p = (void *)p;
    FZ.got[1].u = n;
    FZ.len = n < FZ.allow ? n : FZ.allow;
    uint64_t sum = 0;
    for (uint64_t k = 0; k < FZ.len; k++) sum = sum * 31 + ((const uint8_t *)p)[k];
    return sum;
}

static int64_t fz_mix(uint8_t a, void *p, double d, int16_t e, const char *s)
{
    FZ.calls++;
    FZ.got[0].u = a;
    FZ.got[1].p = p;
    FZ.got[2].f = d;
    FZ.got[3].i = e;
    FZ.got[4].p = (void *)s;
    FZ.len = s ? strlen(s) : 0;
    return (int64_t)a + e;
}

typedef struct fz_fn {
    void *fn;
    const char *name;
    ohm_ffi_type ret;
    unsigned nargs;
    ohm_ffi_type args[5];
} fz_fn;

#define FZ_ECHO_ROW(sfx, T, field, TYPE) {(void *)fz_echo_##sfx, "echo_" #sfx, OHM_FFI_##TYPE, 1, {OHM_FFI_##TYPE}},
static const fz_fn FZ_FNS[] = {
    FZ_ECHOES(FZ_ECHO_ROW){(void *)fz_echo_cptr, "echo_cptr", OHM_FFI_CPTR, 1, {OHM_FFI_CPTR}},
    {(void *)fz_echo_str, "echo_str", OHM_FFI_STR, 1, {OHM_FFI_STR}},
    {(void *)fz_sink, "sink", OHM_FFI_VOID, 2, {OHM_FFI_PTR, OHM_FFI_U64}},
    {(void *)fz_csink, "csink", OHM_FFI_U64, 2, {OHM_FFI_CPTR, OHM_FFI_U64}},
    {(void *)fz_mix, "mix", OHM_FFI_I64, 5, {OHM_FFI_U8, OHM_FFI_PTR, OHM_FFI_F64, OHM_FFI_I16, OHM_FFI_STR}},
};
#define FZ_NFNS (sizeof FZ_FNS / sizeof FZ_FNS[0])

/* Every spelling of a type the signature grammar accepts (ohm_bind.h). */
static const char *const FZ_SPELL[][3] = {
    [OHM_FFI_VOID] = {"void"},
    [OHM_FFI_I8] = {"i8", "char"},
    [OHM_FFI_U8] = {"u8", "bool"},
    [OHM_FFI_I16] = {"i16", "short"},
    [OHM_FFI_U16] = {"u16"},
    [OHM_FFI_I32] = {"i32", "int"},
    [OHM_FFI_U32] = {"u32", "uint"},
    [OHM_FFI_I64] = {"i64", "long", "ssize"},
    [OHM_FFI_U64] = {"u64", "ulong", "size"},
    [OHM_FFI_F32] = {"f32", "float"},
    [OHM_FFI_F64] = {"f64", "double"},
    [OHM_FFI_PTR] = {"ptr"},
    [OHM_FFI_STR] = {"str"},
    [OHM_FFI_CPTR] = {"cptr"},
};

static void sig_append(char *sig, size_t cap, reader *r, ohm_ffi_type t)
{
    const char *const *sp = FZ_SPELL[t];
    int n = sp[2] ? 3 : sp[1] ? 2 : 1;
    size_t len = strlen(sig);
    snprintf(sig + len, cap - len, "%s%s", u8(r) % 4 == 0 ? " " : "", sp[u8(r) % n]);
}

static bool is_int_type(ohm_ffi_type t) { return t >= OHM_FFI_I8 && t <= OHM_FFI_U64; }
static bool is_ptr_type(ohm_ffi_type t) { return t >= OHM_FFI_PTR; }

static void int_range(ohm_ffi_type t, int64_t *lo, uint64_t *hi)
{
    switch (t) {
    case OHM_FFI_I8:
        *lo = INT8_MIN;
        *hi = INT8_MAX;
        break;
    case OHM_FFI_U8:
        *lo = 0;
        *hi = UINT8_MAX;
        break;
    case OHM_FFI_I16:
        *lo = INT16_MIN;
        *hi = INT16_MAX;
        break;
    case OHM_FFI_U16:
        *lo = 0;
        *hi = UINT16_MAX;
        break;
    case OHM_FFI_I32:
        *lo = INT32_MIN;
        *hi = INT32_MAX;
        break;
    case OHM_FFI_U32:
        *lo = 0;
        *hi = UINT32_MAX;
        break;
    case OHM_FFI_I64:
        *lo = INT64_MIN;
        *hi = INT64_MAX;
        break;
    default:
        *lo = 0;
        *hi = UINT64_MAX;
        break;
    }
}

static const int64_t FZ_INTS[] = {
    0,
    1,
    -1,
    127,
    128,
    -128,
    -129,
    255,
    256,
    32767,
    32768,
    -32768,
    -32769,
    65535,
    65536,
    INT32_MAX,
    (int64_t)INT32_MAX + 1,
    INT32_MIN,
    (int64_t)INT32_MIN - 1,
    UINT32_MAX,
    (int64_t)UINT32_MAX + 1,
    INT64_MAX,
    INT64_MIN,
    INT64_MIN + 1,
};

static int64_t fz_int(reader *r)
{
    uint8_t sel = u8(r);
    if (sel < 200) return FZ_INTS[sel % (sizeof FZ_INTS / sizeof FZ_INTS[0])];
    return (int64_t)u64(r);
}

static double fz_double(reader *r)
{
    static const double v[] = {
        0.0,
        -0.0,
        0.5,
        1.5,
        -1.0,
        -0.5,
        127.0,
        128.0,
        255.0,
        256.0,
        -129.0,
        65535.0,
        4294967295.0,
        4294967296.0,
        9223372036854775807.0,
        -9223372036854775808.0,
        18446744073709551615.0,
        1e39,
        -1e39,
        FLT_MAX,
        (double)FLT_MAX * 1.5,
        3e38,
        1e-45,
        1e300,
    };
    uint8_t sel = u8(r);
    if (sel < 150) return v[sel % (sizeof v / sizeof v[0])];
    if (sel < 180) return (double)fz_int(r);
    if (sel < 185) return sel & 1 ? INFINITY : -INFINITY;
    if (sel < 190) return NAN;
    uint64_t bits = u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static bool same_double(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

static char g_raw[16] = "raw pointer";     /* what a raw OHM_FFI_ARG_PTR points at */
static const char g_str[] = "fuzz string"; /* a host string */

/* An argument kind for parameter type t: mostly one that fits, so that calls get through; else any kind. */
static int fz_kind(uint8_t sel, ohm_ffi_type t)
{
    static const int numbers[] = {OHM_FFI_ARG_FLOAT, OHM_FFI_ARG_UINT, OHM_FFI_ARG_INT};
    if (sel % 8 >= 5) return (sel / 8) % 7;
    if (!is_ptr_type(t)) return numbers[(sel / 8) % 3];
    if ((sel / 8) % 2) return OHM_FFI_ARG_BUF;
    return t == OHM_FFI_PTR ? OHM_FFI_ARG_PTR : OHM_FFI_ARG_STR;
}

/* The model's verdict on one argument: 0 and the value C must receive, or the error code. */
typedef struct fz_want {
    int code;
    ohm_bind_value v; /* numbers as 64-bit patterns (f for float types), pointers as p */
    uint64_t strlen_; /* str parameters: strlen of what arrives */
    uint64_t allow;   /* pointer parameters: bytes of a buffer at the pointer that C may touch */
    int h;            /* the handle passed, or -1 */
} fz_want;

/* An argument of kind k for parameter type t: generated, and judged. Returns false when the model cannot tell
 * (a str parameter given a buffer whose bytes it does not keep). owner_extra counts references this call
 * already took on each owner (a buffer passed twice is retained twice). */
static bool fz_arg(reader *r, ohm_ffi_type t, ohm_ffi_arg *a, fz_want *w, uint32_t *owner_extra)
{
    memset(a, 0, sizeof *a);
    memset(w, 0, sizeof *w);
    w->h = -1;
    int k = fz_kind(u8(r), t);
    a->kind = (ohm_ffi_arg_kind)k;
    switch (k) {
    case OHM_FFI_ARG_INT: a->v.i = fz_int(r); break;
    case OHM_FFI_ARG_UINT: a->v.u = (uint64_t)fz_int(r); break;
    case OHM_FFI_ARG_FLOAT: a->v.f = fz_double(r); break;
    case OHM_FFI_ARG_STR: a->str = u8(r) % 8 ? g_str : NULL; break;
    case OHM_FFI_ARG_PTR: a->v.p = u8(r) % 4 ? g_raw : NULL; break;
    case OHM_FFI_ARG_BUF: {
        int i = pick(r);
        a->buf = B(i);
        a->off = hoff(r, i >= 0 ? H(i)->size : 0);
        w->h = i;
        break;
    }
    default: break;
    }
    bool number = k == OHM_FFI_ARG_INT || k == OHM_FFI_ARG_UINT || k == OHM_FFI_ARG_FLOAT;
    if (!is_ptr_type(t)) {
        if (!number) {
            w->code = OHM_EINVAL;
            return true;
        }
        if (is_int_type(t)) {
            int64_t lo;
            uint64_t hi;
            int_range(t, &lo, &hi);
            if (k == OHM_FFI_ARG_INT) {
                bool ok = a->v.i >= lo && (a->v.i < 0 || (uint64_t)a->v.i <= hi);
                w->code = ok ? 0 : OHM_EINVAL;
                w->v.i = a->v.i;
            } else if (k == OHM_FFI_ARG_UINT) {
                w->code = a->v.u <= hi ? 0 : OHM_EINVAL;
                w->v.u = a->v.u;
            } else {
                double d = a->v.f;
                /* long double holds every int64 and uint64 bound exactly */
                bool ok = isfinite(d) && d == trunc(d) && (long double)d >= (long double)lo &&
                          (long double)d <= (long double)hi;
                w->code = ok ? 0 : OHM_EINVAL;
                if (ok && d >= 0) w->v.u = (uint64_t)d;
                else if (ok) w->v.i = (int64_t)d;
            }
            return true;
        }
        double d = k == OHM_FFI_ARG_INT ? (double)a->v.i : k == OHM_FFI_ARG_UINT ? (double)a->v.u : a->v.f;
        if (t == OHM_FFI_F32) {
            if (k == OHM_FFI_ARG_FLOAT && isfinite(d) && fabs(d) > FLT_MAX) {
                w->code = OHM_EINVAL;
                return true;
            }
            w->v.f = k == OHM_FFI_ARG_INT    ? (double)(float)a->v.i
                     : k == OHM_FFI_ARG_UINT ? (double)(float)a->v.u
                                             : (double)(float)d;
        } else {
            w->v.f = d;
        }
        return true;
    }
    /* a pointer parameter */
    switch (k) {
    case OHM_FFI_ARG_NULL: w->v.p = NULL; return true;
    case OHM_FFI_ARG_PTR:
        w->v.p = a->v.p;
        w->strlen_ = a->v.p ? strlen(a->v.p) : 0;
        return true;
    case OHM_FFI_ARG_STR:
        if (t == OHM_FFI_PTR || !a->str) {
            w->code = OHM_EINVAL;
            return true;
        }
        w->v.p = (void *)a->str;
        w->strlen_ = strlen(a->str);
        return true;
    case OHM_FFI_ARG_BUF: break;
    default: w->code = OHM_EINVAL; return true;
    }
    int i = w->h;
    if (i < 0) {
        w->code = OHM_EINVAL;
        return true;
    }
    if (!H(i)->hdr) {
        w->code = OHM_ESTATE;
        return true;
    }
    int o = H(i)->owner;
    if ((uint64_t)H(o)->count + owner_extra[o] + 1 > INT32_MAX) {
        w->code = OHM_EINVAL;
        return true;
    }
    owner_extra[o]++;
    if (!usable(i)) {
        w->code = OHM_ESTATE;
        return true;
    }
    if (t == OHM_FFI_PTR && ro_of(i)) {
        w->code = OHM_EINVAL;
        return true;
    }
    size_t size = H(i)->size;
    if (a->off > size) {
        w->code = OHM_ERANGE;
        return true;
    }
    size_t rest = size - (size_t)a->off;
    uint8_t *data = ohm_buf_data(B(i));
    w->v.p = data ? data + a->off : NULL;
    w->allow = rest < 4096 ? rest : 4096;
    if (t == OHM_FFI_STR) {
        const uint8_t *bytes = shadow_of(i) ? shadow_of(i) + H(i)->off + a->off : NULL;
        if (!bytes) return false;
        const uint8_t *nul = rest ? memchr(bytes, 0, rest) : NULL;
        if (!nul) {
            w->code = OHM_ERANGE;
            return true;
        }
        w->strlen_ = (uint64_t)(nul - bytes);
    }
    return true;
}

static bool same_value(ohm_ffi_type t, ohm_bind_value got, ohm_bind_value want)
{
    if (t == OHM_FFI_F32 || t == OHM_FFI_F64) return same_double(got.f, want.f);
    if (is_ptr_type(t)) return got.p == want.p;
    return got.u == want.u;
}

/* A call through the bridge with a fuzzed spelling of the function's signature and fuzzed arguments: refused
 * without calling C exactly when the model says an argument does not fit; otherwise C gets exactly the values.
 * Reference counts are compared by check_all after the step. */
static void op_ffi(reader *r)
{
    const fz_fn *f = &FZ_FNS[u8(r) % FZ_NFNS];
    char sig[160] = "";
    sig_append(sig, sizeof sig, r, f->ret);
    strcat(sig, "(");
    for (unsigned k = 0; k < f->nargs; k++) {
        if (k) strcat(sig, u8(r) % 4 ? "," : " , ");
        sig_append(sig, sizeof sig, r, f->args[k]);
    }
    uint8_t how = u8(r);
    if (how % 32 != 0) strcat(sig, ")");
    ohm_ffi_fn *fn = ohm_ffi_func_ptr(f->fn, f->name, sig);
    if (how % 32 == 0) { /* no closing parenthesis */
        REQUIRE(fn == NULL);
        REQUIRE_ERR(ohm_last_error_code(), OHM_EINVAL);
        return;
    }
    REQUIRE(fn != NULL);
    REQUIRE(ohm_ffi_ret_type(fn) == f->ret && ohm_ffi_nargs(fn) == f->nargs);
    for (unsigned k = 0; k < f->nargs; k++) REQUIRE(ohm_ffi_arg_type(fn, k) == f->args[k]);

    ohm_ffi_arg args[6];
    fz_want want[6];
    static uint32_t extra[MAXH];
    memset(extra, 0, sizeof extra);
    int code = 0;
    unsigned bad = 0;
    for (unsigned k = 0; k < f->nargs; k++) {
        if (!fz_arg(r, f->args[k], &args[k], &want[k], extra)) {
            ohm_ffi_func_free(fn);
            return;
        }
        if (want[k].code && !code) {
            code = want[k].code;
            bad = k;
        }
    }
    unsigned nargs = f->nargs;
    if (how % 32 == 1) nargs = nargs + 1; /* a wrong argument count */
    else if (how % 32 == 2 && nargs) nargs--;
    /* a sink touches the bytes of its buffer argument up to what the model allows */
    FZ.allow = want[0].allow;
    uint64_t before = FZ.calls;
    FZ.len = UINT64_MAX;
    ohm_bind_value ret;
    memset(&ret, 0, sizeof ret);
    int rc = ohm_ffi_call(fn, args, nargs, &ret);
    if (g_verbose)
        fprintf(stderr, "  ffi %s '%s' nargs %u: %d (want %d at %u) %s\n", f->name, sig, nargs, rc, code, bad,
                rc ? ohm_last_error() : "");
    if (nargs != f->nargs) {
        REQUIRE_ERR(rc, OHM_EINVAL);
        REQUIRE(FZ.calls == before);
        REQUIRE(strstr(ohm_last_error(), "expected") != NULL);
        ohm_ffi_func_free(fn);
        return;
    }
    if (code) {
        REQUIRE_ERR(rc, code);
        REQUIRE(FZ.calls == before); /* refused before C ran */
        char what[32];
        snprintf(what, sizeof what, "argument %u", bad + 1);
        REQUIRE(strstr(ohm_last_error(), f->name) && strstr(ohm_last_error(), what));
        ohm_ffi_func_free(fn);
        return;
    }
    REQUIRE(rc == 0);
    REQUIRE(FZ.calls == before + 1);
    ohm_ffi_func_free(fn);
    if (f->nargs == 1) { /* an echo: what arrived and what came back */
        ohm_ffi_type t = f->args[0];
        REQUIRE(same_value(t, FZ.got[0], want[0].v));
        REQUIRE(same_value(t, ret, want[0].v));
        if (t == OHM_FFI_STR) REQUIRE(FZ.len == want[0].strlen_);
        return;
    }
    for (unsigned k = 0; k < f->nargs; k++) REQUIRE(same_value(f->args[k], FZ.got[k], want[k].v));
    if (f->fn == (void *)fz_mix) {
        REQUIRE(FZ.len == want[4].strlen_);
        REQUIRE(ret.i == (int64_t)(uint8_t)want[0].v.u + (int16_t)want[3].v.i);
        return;
    }
    /* sink, csink: min(n, allow) bytes at a buffer the model may know */
    uint64_t n = want[1].v.u < want[0].allow ? want[1].v.u : want[0].allow;
    REQUIRE(FZ.len == n);
    int h = want[0].h;
    uint8_t *sh = h >= 0 && n ? shadow_of(h) : NULL;
    if (!sh) return;
    uint8_t *at = sh + H(h)->off + args[0].off;
    if (f->fn == (void *)fz_sink) {
        for (uint64_t k = 0; k < n; k++) at[k] = (uint8_t)(0xa5 ^ k);
        return;
    }
    uint64_t sum = 0;
    for (uint64_t k = 0; k < n; k++) sum = sum * 31 + at[k];
    REQUIRE(ret.u == sum);
}

static void dump_model(void)
{
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        fprintf(stderr,
                "  h%d kind %d owner %d parent %d root %d off %zu size %zu hdr %d forgotten %d count %u "
                "rchildren %u cache_refs %d cached %d\n",
                i, s->kind, s->owner, s->parent, s->root, s->off, s->size, s->hdr, s->forgotten, s->count, s->rchildren,
                s->cache_refs, s->cached);
    }
    for (int k = 0; k < MAXTASK; k++)
        if (M.tasks[k].live)
            fprintf(stderr, "  task %d held %llu/%llu unroll %llu/%llu registered %d/%d\n", k,
                    (unsigned long long)M.tasks[k].held[0], (unsigned long long)M.tasks[k].held[1],
                    (unsigned long long)M.tasks[k].unroll[0], (unsigned long long)M.tasks[k].unroll[1],
                    M.tasks[k].registered[0], M.tasks[k].registered[1]);
    for (int k = 0; k < M.ncons; k++)
        if (M.cons[k].live)
            fprintf(stderr, "  consumer %d task %d mode %d used %llu pages %llu spill %d\n", k, M.cons[k].task,
                    M.cons[k].mode, (unsigned long long)M.cons[k].used, (unsigned long long)M.cons[k].pages,
                    M.cons[k].spill_policy);
    for (int k = 0; k < MAXBLK; k++)
        if (M.blocks[k].cached)
            fprintf(stderr, "  block b%d handle %d mode %d size %llu pins %u\n", k, M.blocks[k].h, M.blocks[k].mode,
                    (unsigned long long)M.blocks[k].size, M.blocks[k].pins);
}

/* ---- one input ---- */

static void cleanup(void)
{
    if (M.faults) {
        ohm_fault_inject(0, 0, 0);
        M.faults = false;
    }
    ohm_leak_set_level(OHM_LEAK_OFF);
    M.evict_policy = 0;
    /* destroy refuses while tasks are live */
    bool tasks = false;
    for (int k = 0; k < MAXTASK; k++) tasks |= M.tasks[k].live;
    if (tasks) REQUIRE_ERR(ohm_mm_destroy(g_mm), OHM_ESTATE);
    /* unpin every block and remove half of them (ohm_mm_destroy drops the rest), end every task */
    for (int k = 0; k < MAXBLK; k++) {
        char id[16];
        blk_name(id, sizeof id, k);
        while (M.blocks[k].cached && M.blocks[k].pins) {
            REQUIRE(ohm_block_unpin(g_mm, id) == 0);
            M.blocks[k].pins--;
        }
        if (M.blocks[k].cached && (k & 1)) block_remove(k, true);
    }
    for (int k = 0; k < MAXTASK; k++)
        if (M.tasks[k].live) task_end(k);
    check_all();
    /* our references, newest first: retained slices before the owners they hold; the cache keeps its own */
    for (int i = M.nh - 1; i >= 0; i--) {
        hslot *s = H(i);
        if (!s->hdr || s->kind == K_SLICE || !s->count) continue;
        uint32_t keep = (uint32_t)s->cache_refs + s->rchildren;
        if (s->count <= keep) continue; /* over-released earlier: its retained slices or the cache end it */
        uint32_t n = s->count - keep;
        /* through the owner's handle, or, once that was reclaimed, through a slice of it retained since */
        int via = s->forgotten ? -1 : i;
        for (int j = 0; via < 0 && j < M.nh; j++)
            if (H(j)->kind == K_SLICE && H(j)->owner == i && H(j)->hdr && !H(j)->forgotten) via = j;
        REQUIRE(via >= 0);
        REQUIRE(ohm_buf_release(H(via)->b, n) == (keep == 0));
        model_release(i, n);
    }
    while (M.nraw) raw_free_at(M.nraw - 1);
    check_all();
    REQUIRE(ohm_mm_destroy(g_mm) == 0);
    g_mm = NULL;
    for (int k = 0; k < MAXBLK; k++) {
        blk_m *b = &M.blocks[k];
        if (b->cached) block_uncached(b);
    }
    check_all();
    REQUIRE(M.pool_blocks == 0);
    REQUIRE(g_ps.active_blocks == 0);
    for (int i = 0; i < M.nh; i++) {
        free(H(i)->shadow);
        H(i)->shadow = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    memset(&M, 0, sizeof M);
    M.lied = -1;
    M.next_task_id = 1;
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_leak_set_sample_interval(1);
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = MM_ON_MAX;
    cfg.max_bytes[OHM_OFF_HEAP] = MM_OFF_MAX;
    cfg.storage_fraction = 0.5;
    cfg.page_size = MM_PAGE;
    cfg.wait_timeout_ms = 0;
    cfg.pool = g_pool;
    g_mm = ohm_mm_create(&cfg);
    REQUIRE(g_mm != NULL);
    check_all();

    reader rd = {data, data + size};
    reader *r = &rd;
    while (r->p < r->end) {
        uint8_t op = u8(r);
        if (g_verbose)
            fprintf(stderr, "op %u (%u) at byte %zu\n", op >= 0xe0 ? 32 + op % 4 : op % 32, op,
                    (size_t)(r->p - data - 1));
        if (op >= 0xe0) { /* the top eighth of op bytes: memory of other kinds, the bridge, spill policies */
            switch (op % 4) {
            case 0: op_map(r); break;
            case 1:
            case 2: op_ffi(r); break;
            default: op_spill_policy(r); break;
            }
            check_all();
            if (g_verbose) dump_model();
            continue;
        }
        switch (op % 32) {
        case 0:
        case 1: op_pool_alloc(r); break;
        case 2: op_pool_free(r); break;
        case 3: op_pool_free_bad(r); break;
        case 4:
        case 5: op_buf_alloc(r); break;
        case 6: op_retain(r); break;
        case 7:
        case 8: op_release(r); break;
        case 9: op_derive(r, 0); break;
        case 10: op_derive(r, 1); break;
        case 11: op_derive(r, 2); break;
        case 12: op_read_write(r, 0); break;
        case 13: op_read_write(r, 1); break;
        case 14: op_read_write(r, 2); break;
        case 15: op_read_write(r, 3); break;
        case 16: op_copy(r); break;
        case 17: op_reclaim(r); break;
        case 18: op_misc(r); break;
        case 19: op_leak(r); break;
        case 20: op_task_create(r); break;
        case 21: op_task_acquire(r); break;
        case 22: op_task_release(r); break;
        case 23: op_unroll(r); break;
        case 24: op_consumer_create(r); break;
        case 25: op_consumer_acquire(r); break;
        case 26: op_alloc_page(r); break;
        case 27: (op & 0x20) ? op_consumer_destroy(r) : op_task_end(r); break;
        case 28: (op & 0x20) ? op_cancel(r) : op_policy(r); break;
        case 29: op_block_put(r); break;
        case 30: (op & 0x20) ? op_block_remove(r) : op_block_pin(r); break;
        default: (op & 0x20) ? op_faults(r) : op_pool_maint(r); break;
        }
        check_all();
        if (g_verbose) dump_model();
    }
    cleanup();
    return 0;
}
