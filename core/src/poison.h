/* The poison option (ohm_pool_config.poison): freed blocks are filled with POISON_BYTE past their first
 * POISON_FROM bytes and slab blocks are verified when handed out again. The bytes before POISON_FROM carry the
 * pool's free-block key and, for blocks that were buffers, the freed buffer's name: id ^ POISON_ID_MAGIC at
 * offset 8 and its complement at 16 (raw data matches that by chance with probability 2^-64). Slabs are
 * poisoned when made and at every free; runs are only poisoned. The hooks below are what arena.c, tcache.c,
 * buf.c and pool.c call; each costs one load and a branch when the pool does not poison. They take the pool's
 * options, not the pool, so that the arena below the pool can use them. */
#ifndef OHM_POISON_H
#define OHM_POISON_H

#include "sizeclass.h"

#include <stdbool.h>
#include <string.h>

#pragma GCC visibility push(hidden)

struct ohm_pool;

#define POISON_FROM     24
#define POISON_BYTE     0xde
#define POISON_ID_MAGIC 0x9e3779b97f4a7c15ull

/* Whether the pool poisons. Such a pool caches nothing in threads (every alloc and free takes the slow path,
 * which poisons and checks) and keeps empty slabs for good (reused by another class their pages would be
 * poisoned anew and the evidence of a write after free erased). */
static inline bool poison_on(const ohm_pool_config *cfg) { return ohm_unlikely(cfg->poison); }

void poison_fill(void *p, size_t size);
void poison_verify(struct ohm_pool *pool, void *p, size_t size);

/* A new slab of size bytes at p: every free block carries the pattern. */
static inline void poison_new_slab(const ohm_pool_config *cfg, void *p, size_t size)
{
    if (poison_on(cfg)) memset(p, POISON_BYTE, size);
}

/* A block of class size size being freed / handed out (pool.c's slow paths). */
static inline void poison_on_free(const ohm_pool_config *cfg, void *p, size_t size)
{
    if (poison_on(cfg)) poison_fill(p, size);
}
/* pool is the one whose options cfg are: a write after free is counted and reported there. */
static inline void poison_on_alloc(const ohm_pool_config *cfg, struct ohm_pool *pool, void *p, unsigned cls)
{
    if (poison_on(cfg) && sc_is_small(cls)) poison_verify(pool, p, sc_size(cls));
}

/* buf.c, before a pool block that held buffer id is freed: names the buffer in the block for the report. */
void poison_name_block(struct ohm_pool *pool, void *p, uint64_t id);

#pragma GCC visibility pop

#endif
