/* Pool options: the rows of OHM_POOL_OPTIONS (ohm.h) as a descriptor table, and from it the defaults, the
 * environment parsing, the range checks of ohm_pool_create and the setters hosts use. A new option is one row
 * in ohm.h; nothing here names a field. */
#define _GNU_SOURCE
#include "options.h"

#include "sizeclass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { OPT_POW2, OPT_SIZE, OPT_UINT, OPT_MS, OPT_BOOL, OPT_HUGE };

typedef struct option {
    const char *name, *env;
    int kind;
    uint64_t dflt, min, max, env_max;
    size_t off, size;
} option;

/* clang-format off */
#define ROW(field, env, kind, dflt, min, max, env_max)                                                          \
    {#field, env, OPT_##kind, (uint64_t)(dflt), (uint64_t)(min), (uint64_t)(max), (uint64_t)(env_max),         \
     offsetof(ohm_pool_config, field), sizeof(((ohm_pool_config *)0)->field)},
/* clang-format on */
static const option options[] = {OHM_POOL_OPTIONS(ROW)};
#undef ROW

_Static_assert(sizeof options / sizeof options[0] == OHM_POOL_OPTION_COUNT, "one descriptor per option");
_Static_assert(((size_t)64 << 20) == SC_MAX_SIZE, "chunk_size's maximum is the largest size class");

/* ---- typed access: the field's storage is chosen by its kind and size ---- */

static void store(ohm_pool_config *cfg, const option *o, uint64_t v)
{
    char *f = (char *)cfg + o->off;
    if (o->kind == OPT_BOOL) *(bool *)f = v != 0;
    else if (o->kind == OPT_HUGE) *(ohm_huge_pages *)f = (ohm_huge_pages)v;
    else if (o->size == sizeof(unsigned)) *(unsigned *)f = (unsigned)v;
    else if (o->size == sizeof(uint64_t)) memcpy(f, &v, sizeof v);
    else ohm_assert(!"store: an option field of an unexpected size");
}

static uint64_t load(const ohm_pool_config *cfg, const option *o)
{
    const char *f = (const char *)cfg + o->off;
    uint64_t v = 0;
    if (o->kind == OPT_BOOL) return *(const bool *)f;
    if (o->kind == OPT_HUGE) return (uint64_t)(int64_t)(int)*(const ohm_huge_pages *)f;
    if (o->size == sizeof(unsigned)) return *(const unsigned *)f;
    memcpy(&v, f, sizeof v);
    return v;
}

/* ---- environment ---- */

static int huge_from_text(const char *s)
{
    if (!strcasecmp(s, "none")) return OHM_HUGE_NONE;
    if (!strcasecmp(s, "thp")) return OHM_HUGE_THP;
    if (!strcasecmp(s, "hugetlb")) return OHM_HUGE_HUGETLB;
    return -1;
}

/* "never" (any case) or -1: the MS kinds' never, as hosts spell it. */
static bool ms_never(const char *s) { return !strcasecmp(s, "never") || !strcmp(s, "-1"); }

/* The option's value from its environment variable, or its default (a malformed value is logged). */
static uint64_t env_value(const option *o)
{
    switch (o->kind) {
    case OPT_POW2:
    case OPT_SIZE: return ohm__env_size(o->env, (size_t)o->dflt);
    case OPT_UINT: return ohm__env_uint(o->env, (unsigned)o->dflt, (unsigned)o->env_max);
    case OPT_MS: {
        const char *s = getenv(o->env);
        return s && ms_never(s) ? UINT64_MAX : ohm__env_u64(o->env, o->dflt);
    }
    case OPT_BOOL: return (uint64_t)ohm__env_bool(o->env, o->dflt != 0);
    default: break;
    }
    const char *s = getenv(o->env);
    if (!s || !*s) return o->dflt;
    int h = huge_from_text(s);
    if (h >= 0) return (uint64_t)h;
    ohm__log(OHM_LOG_WARN, "ignoring malformed %s=%s (none, thp or hugetlb)", o->env, s);
    return o->dflt;
}

void ohm_pool_config_init(ohm_pool_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = "pool";
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) store(cfg, &options[i], env_value(&options[i]));
}

/* ---- range checks ---- */

/* 0 if v (negative when neg) is in option o's range; else OHM_EINVAL with the range in the message. */
static int check_value(const option *o, int neg, uint64_t v)
{
    char num[24]; /* v as the caller gave it, signed or not */
    if (neg) snprintf(num, sizeof num, "%lld", (long long)v);
    else snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    switch (o->kind) {
    case OPT_POW2:
        if (neg || !ohm_is_pow2((size_t)v) || v < o->min || v > o->max)
            return ohm__error(OHM_EINVAL, "%s %s must be a power of two from %llu MiB to %llu MiB", o->name, num,
                              (unsigned long long)(o->min >> 20), (unsigned long long)(o->max >> 20));
        return 0;
    case OPT_UINT:
        if (!neg && v >= o->min && v <= o->max) return 0;
        if (!neg && o->min == 0)
            return ohm__error(OHM_EINVAL, "%s %s exceeds the maximum %llu", o->name, num, (unsigned long long)o->max);
        return ohm__error(OHM_EINVAL, "%s %s must be from %llu to %llu", o->name, num, (unsigned long long)o->min,
                          (unsigned long long)o->max);
    case OPT_HUGE:
        if (!neg && v <= o->max) return 0;
        return ohm__error(OHM_EINVAL, "%s %s is not an ohm_huge_pages value", o->name, num);
    case OPT_SIZE:
        if (!neg) return 0;
        return ohm__error(OHM_EINVAL, "%s %s must not be negative", o->name, num);
    default: return 0; /* MS and BOOL take every value */
    }
}

int options_check(const ohm_pool_config *cfg)
{
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) {
        uint64_t v = load(cfg, &options[i]);
        /* An enum is signed here: a huge_pages of -1 is reported as -1. */
        int neg = options[i].kind == OPT_HUGE && (int64_t)v < 0;
        int rc = check_value(&options[i], neg, v);
        if (rc) return rc;
    }
    if ((cfg->chunk_map == NULL) != (cfg->chunk_unmap == NULL))
        return ohm__error(OHM_EINVAL, "chunk_map and chunk_unmap hooks must be set together");
    return 0;
}

/* ---- host access ---- */

static const option *find(unsigned i, const char *fn)
{
    if (i < OHM_POOL_OPTION_COUNT) return &options[i];
    ohm__error(OHM_EINVAL, "%s: no pool option %u (there are %d)", fn, i, OHM_POOL_OPTION_COUNT);
    return NULL;
}

const char *ohm_pool_option_name(unsigned i) { return i < OHM_POOL_OPTION_COUNT ? options[i].name : NULL; }

int ohm_pool_config_set(ohm_pool_config *cfg, unsigned i, int64_t value)
{
    const option *o = find(i, "ohm_pool_config_set");
    if (!o) return OHM_EINVAL;
    uint64_t v = (uint64_t)value;
    if (o->kind == OPT_MS && value < 0) v = UINT64_MAX; /* hosts spell "never" as -1 */
    else if (o->kind == OPT_BOOL) v = value != 0;
    else {
        int rc = check_value(o, value < 0, v);
        if (rc) return rc;
    }
    store(cfg, o, v);
    return 0;
}

int ohm_pool_config_set_text(ohm_pool_config *cfg, unsigned i, const char *value)
{
    const option *o = find(i, "ohm_pool_config_set_text");
    if (!o) return OHM_EINVAL;
    if (o->kind == OPT_HUGE && value && huge_from_text(value) >= 0) {
        store(cfg, o, (uint64_t)huge_from_text(value));
        return 0;
    }
    if (o->kind == OPT_BOOL && value && (!strcasecmp(value, "true") || !strcasecmp(value, "false"))) {
        store(cfg, o, !strcasecmp(value, "true"));
        return 0;
    }
    if (o->kind == OPT_MS && value && ms_never(value)) {
        store(cfg, o, UINT64_MAX);
        return 0;
    }
    return ohm__error(OHM_EINVAL, "%s takes %s, not \"%s\"", o->name,
                      o->kind == OPT_HUGE   ? "none, thp or hugetlb"
                      : o->kind == OPT_BOOL ? "true or false"
                      : o->kind == OPT_MS   ? "never (or a number)"
                                            : "a number",
                      value ? value : "(null)");
}

int64_t ohm_pool_config_get(const ohm_pool_config *cfg, unsigned i)
{
    if (i >= OHM_POOL_OPTION_COUNT) return 0;
    uint64_t v = load(cfg, &options[i]);
    if (options[i].kind == OPT_MS && v > INT64_MAX) return -1;
    return (int64_t)v;
}
