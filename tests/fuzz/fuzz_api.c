/* fuzz_api.c — a libFuzzer target over ohm's public API (pool, buffers, leak detector, memory manager).
 *
 * The input is decoded as a sequence of operations with hostile arguments (sizes from 0 to SIZE_MAX, offsets
 * at, near and past the ends, counts 0/1/huge, stale and interior pointers, released handles). Beside the
 * runtime the target keeps a model of what must be true -- every buffer handle with its (handle, id) pair, count
 * owners with their counts and retained children, the bytes of every small buffer, the pool's live blocks,
 * each task's execution and unroll bytes, consumers, pages and cached blocks -- and after every operation
 * compares the model with what the API shows: return codes (a failure is a negative OHM_E* code with a
 * non-empty ohm_last_error()), reference counts, ids, contents, pool stats (active blocks), memory-manager stats
 * (execution + storage pool == max per mode, used bytes per mode, tasks, pages, blocks). A broken invariant is
 * __builtin_trap(), which is how libFuzzer reports.
 *
 * Each input starts from the same state and ends with everything released (the private pool back to 0 active
 * blocks), so inputs are independent. The private pool is created once; the memory manager is created per
 * input (a few hundred nanoseconds) because Spark's pools keep the split that borrowing left, which would make a
 * crash depend on the inputs run before it.
 *
 * Fixed core bugs the target found (commit 54b3fcd), whose inputs are regressions now: a retained slice released
 * to 0 while its own retained slices held references left a stale retained_children on its header, which made
 * ohm_buf_reclaim of the next buffer from that header a no-op (regressions/rslice-over-release-...); slicing
 * ohm_buf_wrap(NULL, 0) computed NULL + 0 (regressions/wrap-null-zero-retained-slice). Later: ohm_buf_reclaim of
 * a plain slice only dropped the handle, also when its count owner's handle had been reclaimed before (the owner
 * kept alive by retained slices), so references retained through the slice since could never be released and
 * leaked without a report (regressions/reclaim-slice-of-reclaimed-owner-leaks); the last plain slice of such an
 * owner now reclaims it.
 *
 * Known core hazards the target steps around unless OHM_FUZZ_HOSTILE=1 is set (tests/fuzz/regressions/open/
 * holds inputs that show them; ctest does not run that folder):
 *  - the block cache held a buffer handle without its id, so a reclaim of that handle or of its count owner, a
 *    release of references the cache or retained slices hold, or a task end freeing a cached page made the cache
 *    release a dead -- possibly reused -- handle later. Commit 54b3fcd makes the cache keep ids and skip
 *    reclaimed handles; the model here still expects the old behaviour in hostile runs (to be updated), so
 *    regressions/open/cache-holds-reclaimed-handle still traps with OHM_FUZZ_HOSTILE=1.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): fuzz_api with -fsanitize=fuzzer (clang), and fuzz_replay with
 * replay_main.c, which runs the files of tests/fuzz/regressions through LLVMFuzzerTestOneInput in every build.
 */
#include "ohm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing ---- */

static int g_verbose = -1; /* OHM_FUZZ_VERBOSE=1: say which invariant broke before trapping */
static int g_hostile = -1; /* OHM_FUZZ_HOSTILE=1: also run the sequences that hit known core bugs */

#define REQUIRE(cond) do { if (!(cond)) fail_at(__LINE__, #cond); } while (0)

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
#define REQUIRE_ERR(rc, want) do { int rc_ = (rc); require_error(rc_, __LINE__); \
    if (rc_ != (want)) fail_at(__LINE__, "error code is " #want); } while (0)

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
    case 4: case 5: case 6: return s ? u16(r) % (s == SIZE_MAX ? s : s + 1) : 0;
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

#define MAXH 256        /* buffer handles per input */
#define MAXRAW 64       /* raw pool blocks live at once */
#define MAXTASK 4
enum { REG_NO = 0, REG_YES = 1, REG_UNKNOWN = 2 };
#define MAXCONS 8       /* consumers per input */
#define MAXBLK 16       /* block ids b0..b15 */
#define SHADOW_MAX 16384 /* roots up to this size have their bytes modelled */
#define SCRATCH (64 * 1024)

enum { K_ROOT, K_FOREIGN, K_PAGE, K_SLICE, K_RSLICE };

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
    int cache_refs;          /* cached blocks holding a reference through this owner */
    int cached;              /* cached blocks naming this very handle */
    /* roots */
    uint8_t *shadow;         /* the bytes, for roots up to SHADOW_MAX; NULL otherwise */
    void *foreign;           /* K_FOREIGN: the malloc'd memory */
    int consumer;            /* K_PAGE: its consumer slot (-1 once its task ended) */
    uint64_t page_bytes;
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
    int registered[2];       /* in the mode's fair share: REG_NO, REG_YES or REG_UNKNOWN */
    bool cancel;             /* a cancel is pending */
} task_m;

typedef struct cons_m {
    ohm_consumer *c;
    int task;
    bool live;
    int mode;
    uint64_t used;
    uint64_t pages;
    int spill_policy;
} cons_m;

typedef struct blk_m {
    bool cached;
    int h;                   /* handle slot or -1 (accounting only) */
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
    uint64_t pool_blocks;    /* live blocks of the private pool: raw + buffer roots + pages */
    uint64_t foreign_released, foreign_expected;
    int evict_policy;
    bool faults;             /* fault injection on: any allocation may fail with OHM_ENOMEM */
    bool spilled;            /* a spill callback ran during the current call */
    uint64_t leak_reports;
} M;

static ohm_pool *g_pool;
static ohm_pool_stats g_ps; /* the private pool's stats at the last check */
static ohm_mm *g_mm;
static uint8_t g_scratch[SCRATCH], g_scratch2[SCRATCH];

#define MM_OFF_MAX ((uint64_t)16 << 20)
#define MM_ON_MAX ((uint64_t)INT64_MAX)
#define MM_PAGE ((size_t)64 << 10)
#define POOL_CAP ((size_t)96 << 20)

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
        if (bl->h >= 0 && usable(bl->h) && H(H(bl->h)->owner)->count < (uint32_t)INT32_MAX) { /* keep the buffer: one more reference of ours */
            REQUIRE(ohm_buf_retain(buf, 1) == 0);
            H(H(bl->h)->owner)->count++;
        }
        break;
    default: break;
    }
    bl->cached = false;
    if (bl->h >= 0) {
        int o = H(bl->h)->owner;
        H(o)->cache_refs--;
        H(bl->h)->cached--;
        model_release(o, 1); /* the cache releases its reference right after we return */
    }
    return 0;
}

static int64_t spill_cb(void *arg, uint64_t size, ohm_consumer *trigger)
{
    int ci = (int)(intptr_t)arg;
    cons_m *c = &M.cons[ci];
    REQUIRE(c->live && trigger != NULL);
    M.spilled = true;
    if (g_verbose) fprintf(stderr, "  spill consumer %d (policy %d, used %llu) for %llu\n", ci, c->spill_policy,
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
        int64_t r = ohm_consumer_release(c->c, n);
        REQUIRE(r == (int64_t)n);
        c->used -= n;
        exec_release_m(c->task, c->mode, n);
        if (r > 0) M.tasks[c->task].registered[c->mode] = REG_YES; /* the manager acquires again at once */
        return r;
    }
    case 3: return OHM_ESTATE;
    case 4: return -1000; /* not an OHM_E* code: OHM_ECALLBACK */
    default: { /* free one of its pages that only we hold */
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
            } else {
                REQUIRE_ERR(ohm_buf_check(s->b, s->id), OHM_ESTATE);
                REQUIRE(ohm_buf_refcnt(s->b) == 0);
                REQUIRE(ohm_buf_data(s->b) == NULL);
            }
        } else {
            uint64_t now = ohm_buf_id(s->b);
            REQUIRE(now != s->id);
            REQUIRE_ERR(ohm_buf_check(s->b, s->id), OHM_ESTATE);
            if (now == 0) REQUIRE(ohm_buf_refcnt(s->b) == 0 && ohm_buf_size(s->b) == 0);
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
    hslot *s = H(i);
    s->b = b;
    s->id = ohm_buf_id(b);
    REQUIRE(s->id != 0);
    for (int k = 0; k < M.nh - 1; k++) REQUIRE(!(H(k)->hdr && H(k)->id == s->id)); /* ids are unique */
    s->kind = how == 3 ? K_FOREIGN : K_ROOT;
    s->owner = s->root = i;
    s->size = (size_t)size;
    s->hdr = true;
    s->count = 1;
    s->foreign = fm;
    if (s->kind == K_ROOT) M.pool_blocks++;
    REQUIRE(ohm_buf_refcnt(b) == 1 && ohm_buf_size(b) == size);
    REQUIRE(ohm_buf_origin_of(b) == (how == 3 ? OHM_ORIGIN_FOREIGN : OHM_ORIGIN_POOL));
    if (how == 3 && size) REQUIRE(ohm_buf_data(b) == fm);
    if (how == 3 && !size && fm) REQUIRE(ohm_buf_data(b) == fm);
    new_root_shadow(i, how == 1);
}


static void op_retain(reader *r)
{
    int i = pick(r);
    uint32_t cur = i >= 0 && H(i)->hdr ? H(H(i)->owner)->count : 0;
    uint32_t n = hcount(r, cur);
    int rc = ohm_buf_retain(B(i), n);
    if (i < 0 || n == 0) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (!H(i)->hdr) { REQUIRE_ERR(rc, OHM_ESTATE); return; }
    if ((uint64_t)cur + n > INT32_MAX) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
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
    if (i < 0 || n == 0) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (!H(i)->hdr) { REQUIRE_ERR(rc, OHM_ESTATE); return; }
    if (n > cur) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    REQUIRE(rc == (n == cur));
    model_release(H(i)->owner, n);
}

/* Expected outcome of an access of [off, off+len) through handle i (-1: NULL). */
static int access_code(int i, size_t off, size_t len)
{
    if (i < 0) return OHM_EINVAL;
    if (!usable(i)) return OHM_ESTATE;
    size_t s = H(i)->size;
    if (off > s || len > s - off) return OHM_ERANGE;
    return 0;
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
    ohm_buf *d = kind == 0 ? ohm_buf_slice(B(i), off, len)
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
    int want = access_code(i, off, len);
    if (!want && len > SCRATCH && what < 2) len %= SCRATCH;
    int rc;
    uint8_t *sh = i >= 0 && usable(i) ? shadow_of(i) : NULL;
    size_t at = i >= 0 ? H(i)->off + off : 0;
    switch (what) {
    case 0:
        rc = ohm_buf_read(B(i), off, g_scratch, len);
        if (want) { REQUIRE_ERR(rc, want); return; }
        REQUIRE(rc == 0);
        if (sh) REQUIRE(memcmp(g_scratch, sh + at, len) == 0);
        if (len) REQUIRE_ERR(ohm_buf_read(B(i), off, NULL, len), OHM_EINVAL);
        break;
    case 1:
        if (!want) fill_pattern(g_scratch, len, seed);
        rc = ohm_buf_write(B(i), off, g_scratch, len);
        if (want) { REQUIRE_ERR(rc, want); return; }
        REQUIRE(rc == 0);
        if (sh) memcpy(sh + at, g_scratch, len);
        if (len) REQUIRE_ERR(ohm_buf_write(B(i), off, NULL, len), OHM_EINVAL);
        break;
    case 2:
        if (!want && len > ((size_t)1 << 20)) len = (size_t)1 << 20;
        rc = ohm_buf_fill(B(i), off, seed, len);
        if (want) { REQUIRE_ERR(rc, want); return; }
        REQUIRE(rc == 0);
        if (sh) memset(sh + at, seed, len);
        break;
    default: {
        void *ptr = NULL;
        rc = ohm_buf_span(B(i), off, len, &ptr);
        if (want) { REQUIRE_ERR(rc, want); return; }
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
    if (!want) want = access_code(d, doff, len);
    if (!want && len > ((size_t)1 << 20)) return;
    int rc = ohm_buf_copy(B(d), doff, B(s), soff, len);
    if (want) { REQUIRE_ERR(rc, want); return; }
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

static void forget(int i)
{
    H(i)->forgotten = true;
}

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
    uint8_t how = u8(r) % 6;
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
    case 2: { /* seal: pool and foreign buffers do not own their pages */
        int rc = ohm_buf_seal(B(i), true);
        int want = i < 0 ? OHM_EINVAL : usable(i) ? OHM_EINVAL : OHM_ESTATE;
        REQUIRE_ERR(rc, want);
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
        if (i < 0 || !usable(i) || H(i)->kind == K_FOREIGN || H(H(i)->root)->kind == K_FOREIGN || !H(i)->size)
            break;
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
        uint64_t owners = 0;
        for (int i = 0; i < M.nh; i++)
            owners += H(i)->count > 0 && (H(i)->kind == K_ROOT || H(i)->kind == K_FOREIGN || H(i)->kind == K_PAGE);
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
    if (mode > 1 || n > (uint64_t)INT64_MAX) { REQUIRE_ERR((int)g, OHM_EINVAL); return; }
    if (n == 0) { REQUIRE(g == 0); return; }
    t->registered[mode] = REG_YES;
    if (g < 0) { check_acquire_error(g, k, false); return; }
    REQUIRE((uint64_t)g <= n);
    t->held[mode] += (uint64_t)g;
}

static void op_task_release(reader *r)
{
    int k = pick_task(r);
    int mode = u8(r) % 3;
    task_m *t = k >= 0 ? &M.tasks[k] : NULL;
    uint64_t n = u8(r) & 1 ? hsize(r) : (t && mode < 2 ? t->held[mode] / (1 + u8(r) % 4) : 0);
    if (!t) { REQUIRE_ERR((int)ohm_task_release(NULL, OHM_ON_HEAP, n), OHM_EINVAL); return; }
    int64_t g = ohm_task_release(t->t, (ohm_mem_mode)mode, n);
    if (mode > 1 || n > (uint64_t)INT64_MAX) { REQUIRE_ERR((int)g, OHM_EINVAL); return; }
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
    if (n > (uint64_t)INT64_MAX) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (rc == 0) { t->unroll[mode] += n; return; }
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
    bool spills = u8(r) % 4 != 0;
    c->c = ohm_consumer_create(M.tasks[k].t, (ohm_mem_mode)c->mode, u8(r) & 1 ? "fuzz\"consumer\n" : NULL,
                               spills ? spill_cb : NULL, (void *)(intptr_t)ci);
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
        if (n > (uint64_t)INT64_MAX) { REQUIRE_ERR((int)g, OHM_EINVAL); return; }
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
    M.spilled = false;
    int64_t g = ohm_consumer_acquire(c->c, n);
    if (g_verbose) fprintf(stderr, "  consumer %d acquire %llu: %lld\n", ci, (unsigned long long)n, (long long)g);
    if (n > (uint64_t)INT64_MAX) { REQUIRE_ERR((int)g, OHM_EINVAL); return; }
    if (n == 0) { REQUIRE(g == 0); t->registered[c->mode] = before; return; }
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
    M.spilled = false;
    ohm_buf *b = ohm_consumer_alloc_page(c->c, (size_t)size);
    M.nfreed = 0;
    if (!b) {
        M.nh--;
        int code = ohm_last_error_code();
        require_error(code, __LINE__);
        if (c->mode != OHM_OFF_HEAP) { REQUIRE(code == OHM_EINVAL); return; }
        if (want > (uint64_t)INT64_MAX) { REQUIRE(code == OHM_EINVAL); return; }
        /* nothing stays charged; the acquire may have registered the task, and spills may have run */
        if (!t->held[c->mode]) t->registered[c->mode] = REG_UNKNOWN;
        resync_task(c->task);
        if (code == OHM_ELIMIT || code == OHM_ETIMEDOUT) return;
        if (code == OHM_ECANCELED && M.tasks[c->task].cancel) { M.tasks[c->task].cancel = false; return; }
        if (code == OHM_ESTATE || code == OHM_ECALLBACK) return; /* a spill or eviction callback failed */
        REQUIRE(code == OHM_ENOMEM && alloc_may_fail(got_or_want(want)));
        return;
    }
    REQUIRE(c->mode == OHM_OFF_HEAP);
    size_t got = ohm_buf_size(b);
    REQUIRE(got >= size && got <= want);
    hslot *s = H(j);
    s->b = b;
    s->id = ohm_buf_id(b);
    s->kind = K_PAGE;
    s->owner = s->root = j;
    s->size = got;
    s->hdr = true;
    s->count = 1;
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
    if (c->pages) { REQUIRE_ERR(rc, OHM_ESTATE); return; }
    REQUIRE(rc == 0);
    if (c->used) exec_release_m(c->task, c->mode, c->used);
    c->live = false;
}

/* Whether ending task k would free a page the cache still holds (the known hazard). */
static bool task_has_cached_pages(int k)
{
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        if (s->kind == K_PAGE && s->count > 0 && s->consumer >= 0 && M.cons[s->consumer].task == k &&
            s->cache_refs)
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
    if (i >= 0 && !usable(i)) { REQUIRE_ERR(rc, OHM_ESTATE); return; }
    uint64_t charged = size ? size : i >= 0 ? H(i)->size : 0;
    if (i < 0 && !size) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (charged > (uint64_t)INT64_MAX) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (i >= 0 && H(H(i)->owner)->count >= (uint32_t)INT32_MAX) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (M.blocks[k].cached) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
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
        if (!cached) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
        if (!b->pins) { REQUIRE_ERR(rc, OHM_ESTATE); return; }
        REQUIRE(rc == 0);
        b->pins--;
        return;
    }
    ohm_buf *out = (ohm_buf *)&out;
    int rc = ohm_block_pin(g_mm, id, &out);
    if (!cached) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
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
    if (!b || !b->cached) { REQUIRE_ERR(rc, OHM_EINVAL); return; }
    if (b->pins) { REQUIRE_ERR(rc, OHM_ESTATE); REQUIRE(!expect_ok); return; }
    REQUIRE(rc == 0);
    b->cached = false;
    if (b->h >= 0) {
        int o = H(b->h)->owner;
        H(o)->cache_refs--;
        H(b->h)->cached--;
        model_release(o, 1);
    }
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

static void dump_model(void)
{
    for (int i = 0; i < M.nh; i++) {
        hslot *s = H(i);
        fprintf(stderr, "  h%d kind %d owner %d parent %d root %d off %zu size %zu hdr %d forgotten %d count %u "
                "rchildren %u cache_refs %d cached %d\n", i, s->kind, s->owner, s->parent, s->root, s->off, s->size,
                s->hdr, s->forgotten, s->count, s->rchildren, s->cache_refs, s->cached);
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
        if (!b->cached) continue;
        b->cached = false;
        if (b->h >= 0) {
            int o = H(b->h)->owner;
            H(o)->cache_refs--;
            H(b->h)->cached--;
            model_release(o, 1);
        }
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
        if (g_verbose) fprintf(stderr, "op %u (%u) at byte %zu\n", op % 32, op, (size_t)(r->p - data - 1));
        switch (op % 32) {
        case 0: case 1: op_pool_alloc(r); break;
        case 2: op_pool_free(r); break;
        case 3: op_pool_free_bad(r); break;
        case 4: case 5: op_buf_alloc(r); break;
        case 6: op_retain(r); break;
        case 7: case 8: op_release(r); break;
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
