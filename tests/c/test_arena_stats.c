/* Per-arena statistics: a block's allocation and its free both count on the arena the block belongs to, whichever
 * thread frees it (one of another arena, through its outbox or directly) and whether or not the thread that
 * allocated it is still alive. So once threads are quiet, every arena's active blocks of each class are exactly
 * the blocks of that arena the program holds, the arenas add up to the whole pool, and no arena reads below zero. */
#include "../check.h"
#include "fixture.h"
#include "pool.h"

#include <pthread.h>
#include <string.h>

enum { NARENAS = 2, MAXOWNED = 1024 };
enum { MAIN, FIRST, SECOND, NTHREADS }; /* who allocated a block: the main thread, then two threads of arena 1 */

typedef struct owned {
    void *p[MAXOWNED];
    size_t size[MAXOWNED];
    unsigned n;
} owned;

typedef struct world {
    ohm_pool *pool;
    pthread_barrier_t bar;
    pthread_mutex_t lock; /* by, allocs, frees */
    owned by[NTHREADS];
    uint64_t allocs[OHM_MAX_CLASSES], frees[OHM_MAX_CLASSES]; /* the calls the test made, by class */
    int arena_of[NTHREADS];                                   /* the arena of each thread's cache */
} world;

static unsigned class_of(void *p)
{
    ohm_block_info info;
    CHECK_EQ_INT(ohm_lookup(p, &info), OHM_OK);
    return info.size_class;
}

/* k blocks of size (aligned to align when not 0), allocated by the calling thread and kept as who's. */
static void take(world *w, int who, size_t size, size_t align, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        void *p = align ? ohm_pool_alloc_aligned(w->pool, size, align) : ohm_pool_alloc(w->pool, size);
        if (!CHECK_NOT_NULL(p)) return;
        memset(p, 0x5a, size);
        pthread_mutex_lock(&w->lock);
        owned *o = &w->by[who];
        if (CHECK(o->n < MAXOWNED)) {
            o->p[o->n] = p;
            o->size[o->n++] = size;
            w->allocs[class_of(p)]++;
        }
        pthread_mutex_unlock(&w->lock);
    }
}

/* The calling thread frees k of who's blocks of size, the most recent first. */
static void give(world *w, int who, size_t size, unsigned k)
{
    pthread_mutex_lock(&w->lock);
    owned *o = &w->by[who];
    for (unsigned i = o->n; i-- > 0 && k;) {
        if (o->size[i] != size) continue;
        void *p = o->p[i];
        w->frees[class_of(p)]++;
        CHECK_EQ_INT(ohm_pool_free(w->pool, p), OHM_OK);
        o->p[i] = o->p[--o->n];
        o->size[i] = o->size[o->n];
        k--;
    }
    pthread_mutex_unlock(&w->lock);
    CHECK_EQ_INT(k, 0);
}

static void note_arena(world *w, int who)
{
    tcache_t *tc = tcache_find(w->pool);
    w->arena_of[who] = tc ? (int)tc->arena->index : -1;
}

/* What every thread but the caller is quiet for: each arena's and the pool's figures against the blocks held. */
static void check_arenas(world *w, const char *when)
{
    uint64_t live[NARENAS][OHM_MAX_CLASSES] = {{0}};
    pthread_mutex_lock(&w->lock);
    for (int who = 0; who < NTHREADS; who++) {
        for (unsigned i = 0; i < w->by[who].n; i++) {
            ohm_block_info info;
            if (CHECK_EQ_INT(ohm_lookup(w->by[who].p[i], &info), OHM_OK) && CHECK(info.arena < NARENAS))
                live[info.arena][info.size_class]++;
        }
    }
    ohm_pool_stats all = fixture_stats(w->pool, -1);
    uint64_t allocs[OHM_MAX_CLASSES] = {0}, frees[OHM_MAX_CLASSES] = {0}, active[OHM_MAX_CLASSES] = {0};
    bool ok = true;
    for (int a = 0; a < NARENAS && ok; a++) {
        ohm_pool_stats st = fixture_stats(w->pool, a);
        ok = CHECK(st.frees <= st.allocs) && CHECK_EQ_U64(st.active_blocks, st.allocs - st.frees);
        for (unsigned c = 0; c < st.nclasses && ok; c++) {
            const ohm_class_stats *cs = &st.classes[c];
            ok = CHECK(cs->frees <= cs->allocs) && CHECK_EQ_U64(cs->active_blocks, live[a][c]);
            if (!ok) fprintf(stderr, "  %s: arena %d, class %u (%zu B)\n", when, a, c, cs->size);
            allocs[c] += cs->allocs;
            frees[c] += cs->frees;
            active[c] += cs->active_blocks;
        }
    }
    for (unsigned c = 0; c < all.nclasses && ok; c++) {
        const ohm_class_stats *cs = &all.classes[c];
        ok = CHECK_EQ_U64(allocs[c], cs->allocs) && CHECK_EQ_U64(frees[c], cs->frees) &&
             CHECK_EQ_U64(active[c], cs->active_blocks) && CHECK_EQ_U64(cs->allocs, w->allocs[c]) &&
             CHECK_EQ_U64(cs->frees, w->frees[c]);
        if (!ok) fprintf(stderr, "  %s: the pool, class %u (%zu B)\n", when, c, cs->size);
    }
    pthread_mutex_unlock(&w->lock);
}

/* The sizes each thread allocates: two cached small classes, an aligned run (counted past the stacks) and a
 * class above cache_max_size (never cached: every free goes straight to its arena). */
#define SMALL   64
#define MEDIUM  1024
#define ALIGNED (16 * KIB)
#define LARGE   (512 * KIB)

static void take_each(world *w, int who)
{
    take(w, who, SMALL, 0, 100);
    take(w, who, MEDIUM, 0, 20);
    take(w, who, ALIGNED, ALIGNED, 4);
    take(w, who, LARGE, 0, 3);
}

/* k of who's blocks of size to free; a list of them ends with k == 0. */
typedef struct gift {
    int who;
    size_t size;
    unsigned k;
} gift;

static void give_each(world *w, const gift *g)
{
    for (; g->k; g++) give(w, g->who, g->size, g->k);
}

/* The calling thread frees every block who holds. */
static void give_everything(world *w, int who)
{
    pthread_mutex_lock(&w->lock);
    unsigned sizes = 0;
    size_t size[4] = {0};
    unsigned count[4] = {0};
    for (unsigned i = 0; i < w->by[who].n; i++) {
        unsigned j = 0;
        while (j < sizes && size[j] != w->by[who].size[i]) j++;
        if (!CHECK(j < 4)) break;
        if (j == sizes) size[sizes++] = w->by[who].size[i];
        count[j]++;
    }
    pthread_mutex_unlock(&w->lock);
    for (unsigned j = 0; j < sizes; j++) give(w, who, size[j], count[j]);
}

/* A thread of arena 1 (the main thread holds arena 0): allocates take_each's blocks as who, frees its gifts, lets
 * the main thread look, and exits holding the rest. */
typedef struct script {
    world *w;
    int who;
    const gift *gifts;
} script;

static void *scripted_thread(void *arg)
{
    script *s = arg;
    take_each(s->w, s->who);
    note_arena(s->w, s->who);
    give_each(s->w, s->gifts);
    pthread_barrier_wait(&s->w->bar); /* 1: the main thread checks */
    pthread_barrier_wait(&s->w->bar); /* 2 */
    return NULL;
}

/* Runs s on a thread of its own and checks the arenas while it waits and after it exited. */
static void run_script(script s, const char *waiting, const char *exited)
{
    pthread_t t;
    pthread_create(&t, NULL, scripted_thread, &s);
    pthread_barrier_wait(&s.w->bar); /* 1 */
    check_arenas(s.w, waiting);
    pthread_barrier_wait(&s.w->bar); /* 2 */
    pthread_join(t, NULL);
    check_arenas(s.w, exited);
}

/* The world of a test: a pool of NARENAS arenas caching blocks up to 256 KiB, its locks, no blocks held. */
static world *world_open(const char *name)
{
    static world w; /* large: off the stack */
    memset(&w, 0, sizeof w);
    ohm_pool_config cfg = fixture_cache_config(name, 0, 256 * KIB);
    cfg.arenas = NARENAS;
    if (!(w.pool = fixture_pool(&cfg))) return NULL;
    pthread_mutex_init(&w.lock, NULL);
    pthread_barrier_init(&w.bar, NULL, 2);
    return &w;
}

/* Frees what the test still holds (from the calling thread), which must leave every figure at zero and the pool
 * empty, and closes the world. */
static void world_close(world *w)
{
    for (int who = 0; who < NTHREADS; who++) give_everything(w, who);
    check_arenas(w, "every block freed");
    CHECK_EQ_U64(fixture_stats(w->pool, -1).active_blocks, 0);
    fixture_check_trims_to_nothing(w->pool);
    pthread_barrier_destroy(&w->bar);
    pthread_mutex_destroy(&w->lock);
    ohm_pool_destroy(w->pool);
}

static void test_each_arenas_active_blocks_are_its_live_blocks(void)
{
    world *w = world_open("arena-stats");
    if (!w) return;
    take_each(w, MAIN);
    note_arena(w, MAIN);
    check_arenas(w, "the main thread's blocks");

    /* More small blocks than an outbox sends at once: some still wait in the first thread's outbox. */
    static const gift first[] = {{MAIN, SMALL, 40}, {MAIN, MEDIUM, 5}, {MAIN, ALIGNED, 1}, {MAIN, LARGE, 1}, {0}};
    run_script((script){w, FIRST, first}, "the first thread freed the main thread's blocks", "the first thread exited");

    /* Frees into the arena of a thread that is gone, waiting in this thread's outbox for now. */
    give_each(w, (const gift[]){{FIRST, SMALL, 20}, {FIRST, MEDIUM, 5}, {FIRST, LARGE, 1}, {0}});
    check_arenas(w, "the main thread freed the first thread's blocks");

    /* Arena 1 again: blocks of its own arena that a thread now gone allocated, and the main thread's. */
    static const gift second[] = {{SECOND, SMALL, 30}, {FIRST, SMALL, 50}, {FIRST, MEDIUM, 15}, {FIRST, ALIGNED, 3},
                                  {FIRST, LARGE, 2},   {MAIN, SMALL, 20},  {MAIN, LARGE, 1},    {0}};
    run_script((script){w, SECOND, second}, "the second thread freed blocks of both arenas",
               "the second thread exited");

    CHECK_EQ_INT(w->arena_of[MAIN], 0);
    CHECK_EQ_INT(w->arena_of[FIRST], 1);
    CHECK_EQ_INT(w->arena_of[SECOND], 1);
    CHECK_EQ_INT(ohm_pool_flush_thread_cache(w->pool), OHM_OK);
    check_arenas(w, "the main thread flushed its cache");
    world_close(w);
}

/* Threads of both arenas, each exiting after it freed blocks of the other arena, of a thread that exited, and of
 * its own arena allocated by a thread that exited: the arenas carry their exited threads' counts and balance. */

/* Arena 0 (no other cache is alive when it starts): what is left of the previous arena-0 thread's blocks, its
 * own, then all of the last arena-1 thread's. Waits while an arena-1 thread runs beside it. */
static void *relay_first(void *arg)
{
    world *w = arg;
    give_everything(w, FIRST);
    take(w, FIRST, SMALL, 0, 40);
    take(w, FIRST, LARGE, 0, 2);
    note_arena(w, FIRST);
    give_everything(w, SECOND);
    pthread_barrier_wait(&w->bar); /* 1: the arena-1 thread runs */
    pthread_barrier_wait(&w->bar); /* 2: it exited */
    return NULL;
}

/* Arena 1: its own blocks, and half of the arena-0 thread's, which is alive and waiting. */
static void *relay_second(void *arg)
{
    world *w = arg;
    take(w, SECOND, SMALL, 0, 30);
    take(w, SECOND, LARGE, 0, 1);
    note_arena(w, SECOND);
    give_each(w, (const gift[]){{FIRST, SMALL, 20}, {FIRST, LARGE, 1}, {0}});
    return NULL;
}

static void test_exited_threads_of_both_arenas_keep_the_arenas_balanced(void)
{
    world *w = world_open("arena-stats-relay");
    if (!w) return;
    /* The main thread makes no cache of the pool until the end: the relay's threads take the arenas. */
    for (int turn = 0; turn < 8; turn++) {
        pthread_t first, second;
        pthread_create(&first, NULL, relay_first, w);
        pthread_barrier_wait(&w->bar); /* 1 */
        pthread_create(&second, NULL, relay_second, w);
        pthread_join(second, NULL);
        check_arenas(w, "an arena-1 relay thread exited");
        pthread_barrier_wait(&w->bar); /* 2 */
        pthread_join(first, NULL);
        check_arenas(w, "an arena-0 relay thread exited");
        if (!CHECK_EQ_INT(w->arena_of[FIRST], 0) || !CHECK_EQ_INT(w->arena_of[SECOND], 1)) break;
    }
    world_close(w);
}

int main(void)
{
    RUN(test_each_arenas_active_blocks_are_its_live_blocks);
    RUN(test_exited_threads_of_both_arenas_keep_the_arenas_balanced);
    return check_summary();
}
