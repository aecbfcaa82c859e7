/* fixture.h — what the C tests share: a deterministic pool, its stats, and a few small helpers. Header-only;
 * include it after "../check.h".
 *
 *   static ohm_pool *make_pool(size_t cache_max)
 *   {
 *       ohm_pool_config cfg = fixture_config("misuse");
 *       cfg.cache_max_size = cache_max; // the file's own variations on top
 *       return fixture_pool(&cfg);
 *   }
 *
 * The stats helper keeps its result in a static buffer (ohm_pool_stats is large): call it from one thread only.
 */
#ifndef OHM_TESTS_FIXTURE_H
#define OHM_TESTS_FIXTURE_H

#include "ohm.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB           ((size_t)1 << 20)
#define KIB           ((size_t)1 << 10)
#define FIXTURE_CHUNK (4 * MIB) /* the chunk size of fixture_config */

/* A pool that behaves the same on every run: 4 MiB chunks, one arena, no background thread, and purging only on
 * trim. The cache settings are left to each test (cache_max_size, cache_slots). */
static inline ohm_pool_config fixture_config(const char *name)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = name;
    cfg.chunk_size = FIXTURE_CHUNK;
    cfg.arenas = 1;
    cfg.background_purge = false;
    cfg.purge_delay_ms = UINT64_MAX;
    return cfg;
}

/* The fixture config with thread caches of `slots` blocks a class (0: the default) for blocks up to cache_max. */
static inline ohm_pool_config fixture_cache_config(const char *name, unsigned slots, size_t cache_max)
{
    ohm_pool_config cfg = fixture_config(name);
    if (slots) cfg.cache_slots = slots;
    cfg.cache_max_size = cache_max;
    return cfg;
}

/* Creates the pool, checking that it was created: NULL (and a failed check) otherwise. */
static inline ohm_pool *fixture_pool(const ohm_pool_config *cfg)
{
    ohm_pool *pool = ohm_pool_create(cfg);
    CHECK_NOT_NULL(pool);
    return pool;
}

/* The fixture pool with more arenas than one: threads bind to them in turn. */
static inline ohm_pool *fixture_arenas_pool(const char *name, unsigned arenas)
{
    ohm_pool_config cfg = fixture_config(name);
    cfg.arenas = arenas;
    return fixture_pool(&cfg);
}

/* The fixture pool as it is, under this name. */
static inline ohm_pool *fixture_named_pool(const char *name)
{
    ohm_pool_config cfg = fixture_config(name);
    return fixture_pool(&cfg);
}

/* What a test may ask of the fixture pool besides its name, or'ed together (fixture_flag_pool). */
enum fixture_flags {
    FIXTURE_NO_CACHE = 1, /* cache_max_size 0: every alloc and free reaches the arena */
    FIXTURE_POISON = 2,   /* the poison debug option: writes after free are found */
    FIXTURE_ZERO = 4,     /* every block comes back zeroed */
};

/* The fixture pool under this name with the settings the flags name on top. */
static inline ohm_pool *fixture_flag_pool(const char *name, unsigned flags)
{
    ohm_pool_config cfg = fixture_config(name);
    if (flags & FIXTURE_NO_CACHE) cfg.cache_max_size = 0;
    if (flags & FIXTURE_POISON) cfg.poison = true;
    if (flags & FIXTURE_ZERO) cfg.zero = true;
    return fixture_pool(&cfg);
}

/* A snapshot of the whole pool (arena -1) or of one arena, checked to succeed. One thread only (see above). */
static inline ohm_pool_stats fixture_stats(ohm_pool *pool, int arena)
{
    static ohm_pool_stats st;
    CHECK_EQ_INT(ohm_pool_stats_get(pool, arena, &st), OHM_OK);
    return st;
}

/* The pool's blocks in use; with FIXTURE_NO_CACHE it follows every alloc and free exactly. */
static inline uint64_t fixture_active_blocks(ohm_pool *pool) { return fixture_stats(pool, -1).active_blocks; }

/* A log handler and a leak listener that take everything and do nothing (a test that expects messages and does
 * not read them keeps stderr clean). */
static inline void fixture_ignore_log(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    (void)level;
    (void)message;
}
static inline void fixture_ignore_leak(void *arg, const ohm_leak_report *report)
{
    (void)arg;
    (void)report;
}

/* Trims the pool, which must then map nothing: all of its blocks were freed. */
static inline void fixture_check_trims_to_nothing(ohm_pool *pool)
{
    CHECK_EQ_INT(ohm_pool_trim(pool), OHM_OK);
    CHECK_EQ_U64(fixture_stats(pool, -1).mapped_bytes, 0);
}

/* Live blocks of the pool, counted by a walk that must succeed. */
static inline int fixture_count_block_(void *arg, const ohm_block_info *b)
{
    (void)b;
    ++*(size_t *)arg;
    return 0;
}

static inline size_t fixture_walk_count(ohm_pool *pool)
{
    size_t n = 0;
    CHECK_EQ_INT(ohm_pool_walk(pool, fixture_count_block_, &n), 0);
    return n;
}

/* Resident pages of [p, p+len) according to mincore. */
static inline size_t fixture_resident_pages(const void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page;
    unsigned char *vec = malloc(n);
    if (!CHECK_NOT_NULL(vec)) return 0;
    size_t count = 0;
    if (CHECK_EQ_INT(mincore((void *)p, len, vec), 0))
        for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    free(vec);
    return count;
}

/* A log handler's record (the handler is fixture_log_handler, with the record as its argument): of the messages
 * at `min` or above, how many came, the last one, and all of them one a line (cut when the buffer is full). */
typedef struct fixture_log {
    ohm_log_level min;
    pthread_mutex_t lock;
    unsigned count;
    char last[1024];
    char text[16384];
} fixture_log;

#define FIXTURE_LOG(min_level)                            \
    {                                                     \
        (min_level), PTHREAD_MUTEX_INITIALIZER, 0, "", "" \
    }

static inline void fixture_log_handler(void *arg, ohm_log_level level, const char *message)
{
    fixture_log *l = arg;
    if (level < l->min) return;
    pthread_mutex_lock(&l->lock);
    l->count++;
    snprintf(l->last, sizeof l->last, "%s", message);
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s\n", message);
    pthread_mutex_unlock(&l->lock);
}

static inline void fixture_log_reset(fixture_log *l)
{
    pthread_mutex_lock(&l->lock);
    l->count = 0;
    l->last[0] = l->text[0] = '\0';
    pthread_mutex_unlock(&l->lock);
}

static inline bool fixture_log_has(fixture_log *l, const char *s)
{
    pthread_mutex_lock(&l->lock);
    bool found = strstr(l->text, s) != NULL;
    pthread_mutex_unlock(&l->lock);
    return found;
}

/* qsort comparator for an array of pointers, by address. */
static inline int fixture_cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

#endif /* OHM_TESTS_FIXTURE_H */
