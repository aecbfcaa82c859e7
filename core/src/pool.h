/* The pool object shared by the allocator's subsystems, and the process-wide pool list. */
#ifndef OHM_POOL_H
#define OHM_POOL_H

#include "tcache.h"

#pragma GCC visibility push(hidden)

#define POOL_MAGIC_LIVE 0x6f686d706f6f6c31ull /* "ohmpool1" */
#define POOL_MAGIC_DEAD 0x64656164706f6f6cull

struct ohm_pool {
    _Atomic uint64_t magic;
    uint64_t id; /* unique for the process's life; never 0 */
    ohm_pool_config cfg;
    char name[64];
    chunk_space space; /* the chunk layer's view: options, chunk size, the cap */
    unsigned nclasses; /* classes up to chunk_size */
    size_t cache_max;
    unsigned narenas;
    arena_t *arenas;
    size_t arenas_size;
    _Atomic uint64_t poison_violations;
    _Atomic uint64_t leak_settings; /* 0 = the process's leak settings, else this pool's (leak.c packs them) */
    pthread_mutex_t huge_lock;      /* huge list and huge counters */
    chunk_t *huge;
    uint64_t huge_blocks, huge_bytes, huge_allocs, huge_frees;
    tcache_t *tcaches;     /* pool-list lock */
    struct ohm_pool *next; /* the pool list */
    bool is_default;
    bool bg_busy; /* the background purger is working on it (pool-list lock) */
};

/* The pool-list lock guards the list of pools, every pool's cache list, the arenas' retired counters, and cache
 * life cycles (creation, thread exit, pool destruction). Taken rarely; never on the fast paths. */
void pool_list_lock(void);
void pool_list_unlock(void);
/* The first live pool (the list runs through ->next); pool-list lock held. */
struct ohm_pool *pool_list(void);
/* Waits on cond with the pool-list lock (held), until deadline (CLOCK_MONOTONIC) when it is not NULL. */
void pool_list_wait(pthread_cond_t *cond, const struct timespec *deadline);

/* The key written into the first word of every free block that is not in its slab's bitmap (cached or on a
 * remote chain): lets free() catch a double free and walks tell cached blocks from live ones. */
extern uintptr_t ohm__key_secret;
static inline uintptr_t block_key(const void *p) { return ohm__key_secret ^ (uintptr_t)p; }
static inline uintptr_t block_word0(const void *p) { return *(const uintptr_t *)p; }

/* Process start: the free-block key (lifecycle.c calls it once, after sc_init). */
void pool_init(void);

/* Pool destruction, first and last steps (lifecycle.c runs the whole sequence, with the buffers' step between):
 * begin checks the pool (OHM_EINVAL / OHM_ESTATE; nothing changed then), waits for the purger, unlists it and
 * kills its thread caches; end unmaps its memory and frees it. */
int pool_destroy_begin(struct ohm_pool *pool);
void pool_destroy_end(struct ohm_pool *pool);

/* Fork: prefork takes the default pool's creation lock, the pool list, then each pool's arena locks and huge lock
 * (lifecycle.c's order); the postfork functions release them (the child's also forgets the purger thread). */
void pool_prefork(void);
void pool_postfork_parent(void);
void pool_postfork_child(void);

/* Validates p as the start of a live block of pool; returns its chunk and class (SC_COUNT for huge) or sets
 * the error. Lock-free. */
int pool_check_block(struct ohm_pool *pool, void *p, chunk_t **chunk_out, unsigned *cls_out);

#pragma GCC visibility pop

#endif
