/* Pool options (the OHM_POOL_OPTIONS table in ohm.h): ohm_pool_config_init, the environment and the setters
 * live in options.c; this is the one check ohm_pool_create runs. */
#ifndef OHM_OPTIONS_H
#define OHM_OPTIONS_H

#include "internal.h"

#pragma GCC visibility push(hidden)

/* 0 if every option of cfg is in its range and the chunk hooks are set together; else OHM_EINVAL with a
 * message naming the first bad field. */
int options_check(const ohm_pool_config *cfg);

#pragma GCC visibility pop

#endif
