/* Debug builds (-DOHM_DEBUG=ON): the checkers of the core's invariants that tests call directly, and the seams
 * through which a test corrupts state on purpose to prove a check fires. Nothing here exists in a normal build.
 * The arena's walks are declared in arena.h beside the structures they read. */
#ifndef OHM_DEBUG_H
#define OHM_DEBUG_H

#include "internal.h"

#pragma GCC visibility push(hidden)

#ifdef OHM_DEBUG
/* A pointer to one of mm's counters by name ("exec_used", "sto_used", "exec_pool" of mode; "block_bytes",
 * "npages" of the manager), or NULL; for tests that corrupt one and expect the next unlock to abort. */
uint64_t *mm_debug_counter(ohm_mm *mm, int mode, const char *name);
#endif

#pragma GCC visibility pop

#endif
