/* The invariant checks of the debug build (-DOHM_DEBUG=ON): every checked path is driven here (slab and run
 * classes, frees in every order, splits, merges and aligned runs, decay purging, trim, pinned chunks, poisoning
 * pools; the memory manager's acquire, release, spill, pages, blocks and eviction), and a check is shown to fire:
 * a forked child corrupts a run's tag, a dirty count or an mm counter through the internal headers and must die
 * of SIGABRT with the invariant's name on stderr. In a normal build the paths still run (as plain tests) and
 * ohm_assert is shown to compile to nothing. */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"
#include "buf.h"
#include "pool.h"
#include "debug.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK FIXTURE_CHUNK

static ohm_pool *make_pool(const char *name, uint64_t purge_delay_ms, bool poison)
{
    ohm_pool_config cfg = fixture_config(name);
    cfg.cache_max_size = 0; /* every alloc and free reaches the arena */
    cfg.purge_delay_ms = purge_delay_ms;
    cfg.poison = poison;
    return fixture_pool(&cfg);
}

/* The whole-arena walk (debug builds) beside what every operation already checked. */
static void check_arenas(ohm_pool *pool)
{
#ifdef OHM_DEBUG
    for (unsigned i = 0; i < pool->narenas; i++) {
        pthread_mutex_lock(&pool->arenas[i].lock);
        arena_check(&pool->arenas[i]);
        pthread_mutex_unlock(&pool->arenas[i].lock);
    }
#endif
    fixture_walk_count(pool); /* a walk checks too */
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* A size of every class up to the chunk, and one byte above a class now and then. */
static size_t class_size(unsigned i, unsigned nclasses) { return ohm_size_class_size(i % nclasses) - (i & 1); }

enum { FORWARD, BACKWARD, SHUFFLED };

static void alloc_free_all_classes(ohm_pool *pool, int order)
{
    unsigned nclasses = ohm_size_class_count(CHUNK);
    enum { N = 3 * OHM_MAX_CLASSES };
    void *blocks[N];
    unsigned n = 0;
    for (unsigned i = 0; i < N && i < 3 * nclasses; i++) {
        /* runs of the largest classes only once: three would not fit one chunk next to the rest */
        size_t size = class_size(i, nclasses);
        if (size > CHUNK / 4 && i >= nclasses) continue;
        void *p = ohm_pool_alloc(pool, size);
        if (!CHECK_NOT_NULL(p)) break;
        memset(p, 0x5a, size < 256 ? size : 256);
        blocks[n++] = p;
    }
    if (order == SHUFFLED)
        for (unsigned i = n; i > 1; i--) {
            unsigned j = (unsigned)(next_random() % i);
            void *t = blocks[i - 1];
            blocks[i - 1] = blocks[j];
            blocks[j] = t;
        }
    for (unsigned i = 0; i < n; i++)
        CHECK_EQ_INT(ohm_pool_free(pool, blocks[order == BACKWARD ? n - 1 - i : i]), OHM_OK);
    check_arenas(pool);
}

static void test_every_class_freed_in_every_order(void)
{
    ohm_pool *pool = make_pool("debug-orders", UINT64_MAX, false);
    if (!pool) return;
    for (int order = FORWARD; order <= SHUFFLED; order++) alloc_free_all_classes(pool, order);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    check_arenas(pool);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

/* Runs of many lengths freed at random split and merge every way: left, right, both and neither neighbour. */
static void churn_runs(ohm_pool *pool, unsigned steps)
{
    enum { SLOTS = 48 };
    void *live[SLOTS] = {0};
    for (unsigned s = 0; s < steps; s++) {
        unsigned k = (unsigned)(next_random() % SLOTS);
        if (live[k]) {
            CHECK_EQ_INT(ohm_pool_free(pool, live[k]), OHM_OK);
            live[k] = NULL;
            continue;
        }
        uint64_t r = next_random();
        size_t size = (size_t)(1 + r % 40) * 4096 - (r >> 8) % 4096;
        if (r >> 60 == 0) size = 16 + (r >> 16) % 32768; /* slabs in between */
        if (r >> 60 == 1) {                              /* an aligned run */
            live[k] = ohm_pool_alloc_aligned(pool, 65536, (size_t)1 << (13 + (r >> 20) % 6));
        } else {
            live[k] = ohm_pool_alloc(pool, size);
        }
        CHECK_NOT_NULL(live[k]);
    }
    for (unsigned k = 0; k < SLOTS; k++)
        if (live[k]) CHECK_EQ_INT(ohm_pool_free(pool, live[k]), OHM_OK);
    check_arenas(pool);
}

static void test_runs_split_merge_and_align(void)
{
    ohm_pool *pool = make_pool("debug-runs", UINT64_MAX, false);
    if (!pool) return;
    churn_runs(pool, 4000);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK); /* purges dirty runs, releases empty slabs, unmaps free chunks */
    check_arenas(pool);
    churn_runs(pool, 1000); /* now from purged (clean) and dirty pages mixed */
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_decay_purge_runs_during_frees(void)
{
    ohm_pool *pool = make_pool("debug-decay", 0, false); /* every free finds expired pages */
    if (!pool) return;
    churn_runs(pool, 2000);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_poisoning_pool_keeps_empty_slabs(void)
{
    ohm_pool *pool = make_pool("debug-poison", UINT64_MAX, true);
    if (!pool) return;
    alloc_free_all_classes(pool, SHUFFLED);
    churn_runs(pool, 500);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    check_arenas(pool);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static int map_ok(void *arg, void *addr, size_t size)
{
    (void)arg, (void)addr, (void)size;
    return 0;
}
static void unmap_ok(void *arg, void *addr, size_t size) { (void)arg, (void)addr, (void)size; }

/* A hooked chunk is pinned: its dirty runs stay off the purge list unless they are the whole chunk. */
static void test_pinned_chunks_purge_only_whole(void)
{
    ohm_pool_config cfg = fixture_config("debug-pinned");
    cfg.cache_max_size = 0;
    cfg.purge_delay_ms = 0;
    cfg.chunk_map = map_ok;
    cfg.chunk_unmap = unmap_ok;
    ohm_pool *pool = fixture_pool(&cfg);
    if (!pool) return;
    churn_runs(pool, 1000);
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    check_arenas(pool);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_thread_caches_and_several_arenas(void)
{
    ohm_pool *pool = fixture_arenas_pool("debug-cached", 2);
    if (!pool) return;
    alloc_free_all_classes(pool, SHUFFLED);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(pool), OHM_OK);
    check_arenas(pool);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

/* ---- the memory manager ---- */

typedef struct spiller {
    ohm_consumer *self;
    uint64_t release;
} spiller;

static int64_t spill_some(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)trigger;
    spiller *s = arg;
    uint64_t n = size < s->release ? size : s->release;
    return ohm_consumer_release(s->self, n);
}

static int evict_ok(void *arg, const char *id, ohm_buf *buf)
{
    (void)arg, (void)id, (void)buf;
    return 0;
}

static unsigned leak_warnings;
static void count_leak_warnings(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    if (level >= OHM_LOG_WARN && strstr(message, "leak")) leak_warnings++;
}

static void test_mm_every_state_change(void)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = 1000;
    cfg.max_bytes[OHM_OFF_HEAP] = 8 * MIB;
    cfg.page_size = 64 * KIB;
    ohm_pool *pool = make_pool("debug-mm", UINT64_MAX, false);
    cfg.pool = pool;
    ohm_mm *mm = ohm_mm_create(&cfg);
    if (!CHECK_NOT_NULL(mm)) return;
    ohm_task *t1 = ohm_task_create(mm, 1), *t2 = ohm_task_create(mm, 2);
    /* blocks, then execution memory that borrows from storage by evicting them */
    CHECK_EQ_INT(ohm_block_put(mm, "a", "g1", OHM_ON_HEAP, NULL, 300, evict_ok, NULL), 0);
    CHECK_EQ_INT(ohm_block_put(mm, "b", "g2", OHM_ON_HEAP, NULL, 300, evict_ok, NULL), 0);
    CHECK_EQ_INT(ohm_block_pin(mm, "b", NULL), 0);
    CHECK_EQ_INT(ohm_block_unpin(mm, "b"), 0);
    CHECK_EQ_INT(ohm_task_acquire(t1, OHM_ON_HEAP, 700), 700); /* grows execution by evicting "a" */
    CHECK_EQ_INT(ohm_task_acquire_unroll(t2, OHM_ON_HEAP, "g3", 100), 0);
    CHECK_EQ_INT(ohm_task_release_unroll(t2, OHM_ON_HEAP, 100), 100);
    CHECK_EQ_INT(ohm_task_release(t1, OHM_ON_HEAP, 700), 700);
    CHECK_EQ_INT(ohm_block_put(mm, "c", "g3", OHM_ON_HEAP, NULL, 600, evict_ok, NULL), 0); /* borrows */
    CHECK_EQ_INT(ohm_block_put(mm, "d", "g4", OHM_ON_HEAP, NULL, 200, evict_ok, NULL), 0); /* evicts "b" */
    CHECK_EQ_INT(ohm_block_pin(mm, "b", NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_block_remove(mm, "c"), 0);
    CHECK_EQ_INT(ohm_block_remove(mm, "d"), 0);
    /* consumers: one spills for the other; pages of an off-heap consumer outlive their task */
    spiller sp = {0, 200};
    ohm_consumer *c1 = ohm_consumer_create(t1, OHM_ON_HEAP, "c1", spill_some, &sp);
    ohm_consumer *c2 = ohm_consumer_create(t1, OHM_ON_HEAP, "c2", NULL, NULL);
    sp.self = c1;
    CHECK_EQ_INT(ohm_consumer_acquire(c1, 600), 600);
    CHECK_EQ_INT(ohm_consumer_acquire(c2, 600), 600); /* c1 spills 200 of it */
    CHECK(ohm_consumer_used(c1) < 600);
    CHECK_EQ_INT(ohm_consumer_release(c2, 100), 100);
    ohm_consumer *off = ohm_consumer_create(t2, OHM_OFF_HEAP, "off", NULL, NULL);
    ohm_buf *p1 = ohm_consumer_alloc_page(off, 1000), *p2 = ohm_consumer_alloc_page(off, 100 * KIB);
    CHECK_NOT_NULL(p1);
    CHECK_NOT_NULL(p2);
    if (p1) ohm_buf_release(p1, 1);
    ohm_mm_stats st;
    CHECK_EQ_INT(ohm_mm_stats_get(mm, &st), 0);
    CHECK_EQ_INT(ohm_consumer_destroy(c2), 0);
    CHECK_EQ_INT(ohm_consumer_release(c1, ohm_consumer_used(c1)) >= 0, 1);
    CHECK_EQ_INT(ohm_task_end(t1), 0);
    ohm_set_log_handler(count_leak_warnings, NULL); /* the ended task's page is reported as a leak */
    CHECK_EQ_INT(ohm_task_end(t2), 100 * KIB);      /* p2 still live: detached from its consumer, then reclaimed */
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
    ohm_set_log_handler(NULL, NULL);
    CHECK(leak_warnings >= 1);
}

/* ---- the checks fire ---- */

#ifdef OHM_DEBUG
/* Runs fn in a child whose stderr comes back here; the child must die of SIGABRT saying needle. */
static void expect_abort(void (*fn)(void), const char *needle)
{
    int fds[2];
    if (!CHECK_EQ_INT(pipe(fds), 0)) return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0); /* the check did not fire */
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK_STR_CONTAINS(out, "ohm: invariant failed");
    CHECK_STR_CONTAINS(out, needle);
}

static ohm_pool *child_pool(void)
{
    ohm_pool_config cfg = fixture_config("debug-child");
    cfg.cache_max_size = 0;
    return ohm_pool_create(&cfg);
}

static void corrupt_large_run_length(void)
{
    ohm_pool *pool = child_pool();
    char *p = ohm_pool_alloc(pool, 64 * KIB);
    chunk_t *c = chunk_of(p);
    c->runs[chunk_page_of(c, p)].npages++; /* the record no longer agrees with the run's tags */
    ohm_pool_free(pool, p);
}

static void corrupt_free_run_ndirty(void)
{
    ohm_pool *pool = child_pool();
    char *a = ohm_pool_alloc(pool, 64 * KIB), *b = ohm_pool_alloc(pool, 64 * KIB);
    ohm_pool_free(pool, a); /* a dirty free run, b keeps it from merging with the rest */
    chunk_t *c = chunk_of(a);
    c->runs[chunk_page_of(c, a)].ndirty--;
    size_t n = 0;
    ohm_pool_walk(pool, fixture_count_block_, &n); /* the walk checks every free run */
    (void)b;
}

static void corrupt_dirty_bit_on_allocated_page(void)
{
    ohm_pool *pool = child_pool();
    char *a = ohm_pool_alloc(pool, 64 * KIB);
    chunk_t *c = chunk_of(a);
    size_t page = chunk_page_of(c, a) + 3;
    c->dirty[page / 64] |= 1ull << (page % 64);
    ohm_pool_free(pool, a);
}

static void corrupt_arena_dirty_pages(void)
{
    ohm_pool *pool = child_pool();
    char *a = ohm_pool_alloc(pool, 64 * KIB);
    ohm_pool_free(pool, a);
    pool->arenas[0].dirty_pages++;
    ohm_pool_trim(pool);
}

static void corrupt_slab_free_count(void)
{
    ohm_pool *pool = child_pool();
    char *a = ohm_pool_alloc(pool, 64);
    chunk_t *c = chunk_of(a);
    c->runs[pg_head(pg_get(c, chunk_page_of(c, a)))].nfree--;
    ohm_pool_free(pool, a);
}

static void corrupt_bin_heap_order(void)
{
    ohm_pool *pool = child_pool();
    char *p[4];
    for (int i = 0; i < 4; i++) p[i] = ohm_pool_alloc(pool, 64 * KIB);
    ohm_pool_free(pool, p[0]); /* two free runs of 16 pages in one bin: p0 the root, p2 its child */
    ohm_pool_free(pool, p[2]);
    arena_t *ar = &pool->arenas[0];
    chunk_t *c = chunk_of(p[0]);
    run_t *root = &c->runs[chunk_page_of(c, p[0])];
    pthread_mutex_lock(&ar->lock);
    for (unsigned b = 0; b < ARENA_BINS; b++)
        if (ar->bins[b] == root && root->child && !root->child->next) { /* the child becomes the root: links */
            run_t *kid = root->child;                                   /* stay consistent, order does not */
            kid->prev = kid->next = NULL;
            kid->child = root;
            root->prev = kid;
            root->next = root->child = NULL;
            ar->bins[b] = kid;
        }
    arena_check(ar);
}

static void corrupt_mm(const char *counter, int delta)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = 1000;
    ohm_mm *mm = ohm_mm_create(&cfg);
    ohm_task *t = ohm_task_create(mm, 1);
    ohm_task_acquire(t, OHM_ON_HEAP, 100);
    ohm_block_put(mm, "a", NULL, OHM_ON_HEAP, NULL, 100, NULL, NULL);
    *mm_debug_counter(mm, OHM_ON_HEAP, counter) += (uint64_t)delta;
    ohm_mm_stats st;
    ohm_mm_stats_get(mm, &st); /* the unlock checks */
}
static void corrupt_mm_exec_used(void) { corrupt_mm("exec_used", 1); }
static void corrupt_mm_exec_pool(void) { corrupt_mm("exec_pool", 1); }
static void corrupt_mm_block_bytes(void) { corrupt_mm("block_bytes", 7); }
static void corrupt_mm_sto_used(void) { corrupt_mm("sto_used", -1); }
static void corrupt_mm_npages(void) { corrupt_mm("npages", 1); }

static void failed_assert(void) { ohm_assert(1 + 1 == 3 && "arithmetic works"); }

/* A root marked as a retained slice too: its last release must refuse to end it. */
static void corrupt_buffer_owner_flags(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 64);
    b->flags |= BUF_RETAINED;
    ohm_buf_release(b, 1);
}

static void test_a_broken_invariant_aborts_naming_it(void)
{
    expect_abort(failed_assert, "arithmetic works");
    expect_abort(corrupt_buffer_owner_flags, "an owner is a root or a retained slice");
    expect_abort(corrupt_large_run_length, "large run: its length is its run class's size");
    expect_abort(corrupt_free_run_ndirty, "free run: ndirty equals its set bits in the dirty map");
    expect_abort(corrupt_dirty_bit_on_allocated_page, "no dirty bit on an allocated page");
    expect_abort(corrupt_arena_dirty_pages, "dirty_pages");
    expect_abort(corrupt_slab_free_count, "slab: nfree equals its bitmap's set bits");
    expect_abort(corrupt_bin_heap_order, "bin heap: a parent lies below its children");
    expect_abort(corrupt_mm_exec_used, "execution used == the sum of the tasks' execution bytes");
    expect_abort(corrupt_mm_exec_pool, "execution pool + storage pool == max");
    expect_abort(corrupt_mm_block_bytes, "block_bytes equals the sum of the cached blocks' sizes");
    expect_abort(corrupt_mm_sto_used, "storage used == cached blocks + tasks' unroll");
    expect_abort(corrupt_mm_npages, "manager: npages is its consumers' pages");
}
#else
/* A normal build pays nothing: the condition is not even evaluated, and debug-only code is gone. */
static void test_checks_compile_to_nothing(void)
{
    int evaluated = 0, debug_code = 0;
    ohm_assert(++evaluated == 42);
    ohm_debug_only(debug_code = 1;)
    CHECK_EQ_INT(evaluated, 0);
    CHECK_EQ_INT(debug_code, 0);
    printf("# normal build: the invariant checks are compiled out (configure with -DOHM_DEBUG=ON to run them)\n");
}
#endif

int main(void)
{
    RUN(test_every_class_freed_in_every_order);
    RUN(test_runs_split_merge_and_align);
    RUN(test_decay_purge_runs_during_frees);
    RUN(test_poisoning_pool_keeps_empty_slabs);
    RUN(test_pinned_chunks_purge_only_whole);
    RUN(test_thread_caches_and_several_arenas);
    RUN(test_mm_every_state_change);
#ifdef OHM_DEBUG
    RUN(test_a_broken_invariant_aborts_naming_it);
#else
    RUN(test_checks_compile_to_nothing);
#endif
    return check_summary();
}
