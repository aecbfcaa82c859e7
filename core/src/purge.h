/* The background purger: one process-wide thread that purges expired pages of the pools that opted in, so an
 * idle process gives memory back without anyone calling into it. Every function here runs under the pool-list
 * lock (pool.h). */
#ifndef OHM_PURGE_H
#define OHM_PURGE_H

#include "pool.h"

#pragma GCC visibility push(hidden)

/* Whether a pool of this configuration wants the purger. */
static inline int purge_wanted(const ohm_pool_config *cfg)
{
    return cfg->background_purge && cfg->purge_delay_ms != UINT64_MAX;
}

/* Starts the purger unless it runs (a failure is logged: pages are then purged on allocation paths only). */
void purge_start(void);
/* Waits until the purger is not working on pool, so that pool can be unlisted. */
void purge_wait_idle(struct ohm_pool *pool);
/* Fork child (pool_postfork_child, before the pool-list lock is released): the purger was not copied. */
void purge_postfork_child(void);

#pragma GCC visibility pop

#endif
