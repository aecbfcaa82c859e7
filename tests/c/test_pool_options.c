/* The pool options table (OHM_POOL_OPTIONS) and its copies: the checked setters every host uses, and the hosts'
 * lists of the options in the table's order (PoolConfig.PROPERTIES in Java, the option table of lua/README.md),
 * read from their sources so that a row added to the table and not to a host fails here. */
#include "../check.h"
#include "ohm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The repository's root, from this file's path as the compiler was given it (CMake gives it absolute). */
static void source_path(char *out, size_t n, const char *rel)
{
    const char *here = __FILE__, *tail = strstr(here, "tests/c/test_pool_options.c");
    snprintf(out, n, "%.*s%s", (int)(tail ? tail - here : 0), here, rel);
}

static char *slurp(const char *rel)
{
    char path[4096];
    source_path(path, sizeof path, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* "ohm.cacheMaxSize" -> "cache_max_size" */
static void java_to_field(const char *prop, size_t len, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 4; i < len && o + 2 < n; i++) {
        if (isupper((unsigned char)prop[i])) {
            out[o++] = '_';
            out[o++] = (char)tolower((unsigned char)prop[i]);
        } else {
            out[o++] = prop[i];
        }
    }
    out[o] = 0;
}

static void test_java_properties_follow_the_table(void)
{
    char *src = slurp("jni/java/org/ohm/PoolConfig.java");
    if (!CHECK_NOT_NULL(src)) return;
    char *p = strstr(src, "PROPERTIES = {");
    if (!CHECK_NOT_NULL(p)) return;
    char *end = strchr(p, '}');
    unsigned i = 0;
    for (char *q = strchr(p, '"'); q && q < end; q = strchr(q, '"')) {
        char *close = strchr(q + 1, '"');
        char field[64];
        java_to_field(q + 1, (size_t)(close - q - 1), field, sizeof field);
        const char *want = ohm_pool_option_name(i);
        if (!CHECK(want && strcmp(field, want) == 0))
            fprintf(stderr, "  PoolConfig.PROPERTIES[%u] is %s, the table's option %u is %s\n", i, field, i,
                    want ? want : "(none)");
        i++;
        q = close + 1;
    }
    CHECK_EQ_INT(i, OHM_POOL_OPTION_COUNT);
}

static void test_lua_readme_lists_every_option_in_order(void)
{
    char *src = slurp("lua/README.md");
    if (!CHECK_NOT_NULL(src)) return;
    char *p = strstr(src, "| option | value | default |");
    if (!CHECK_NOT_NULL(p)) return;
    for (unsigned i = 0; i < OHM_POOL_OPTION_COUNT; i++) {
        char row[80];
        snprintf(row, sizeof row, "\n| `%s` |", ohm_pool_option_name(i));
        char *at = strstr(p, row);
        if (!CHECK_NOT_NULL(at)) fprintf(stderr, "  lua/README.md has no row for %s after the previous one\n", row + 1);
        else p = at + 1;
    }
}

static void test_setters_check_ranges_with_the_cores_messages(void)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_arenas, 257), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "arenas 257 exceeds the maximum 256");
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_arenas, -1), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_cache_slots, (int64_t)1 << 32 | 1), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "cache_slots 4294967297 must be from 1 to 1024");
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_chunk_size, 3 << 20), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "must be a power of two from 1 MiB to 64 MiB");
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_max_mapped, -5), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_huge_pages, 3), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_COUNT, 0), OHM_EINVAL);
    ohm_pool_config dflt;
    ohm_pool_config_init(&dflt);
    CHECK(memcmp(&cfg, &dflt, sizeof cfg) == 0); /* refused values change nothing */
    /* and a pool made from a typed config is refused with the same words */
    cfg.arenas = 300;
    CHECK_NULL(ohm_pool_create(&cfg));
    CHECK_STR_CONTAINS(ohm_last_error(), "arenas 300 exceeds the maximum 256");
}

static void test_setters_and_getter_round_trip(void)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_chunk_size, 2 << 20), 0);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_arenas, 3), 0);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_purge_delay_ms, -1), 0);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_zero, 7), 0);
    CHECK_EQ_INT(ohm_pool_config_set_text(&cfg, OHM_POOL_OPTION_huge_pages, "THP"), 0);
    CHECK_EQ_INT(ohm_pool_config_set_text(&cfg, OHM_POOL_OPTION_poison, "true"), 0);
    CHECK_EQ_INT(ohm_pool_config_set_text(&cfg, OHM_POOL_OPTION_arenas, "4"), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_config_set_text(&cfg, OHM_POOL_OPTION_purge_delay_ms, "soon"), OHM_EINVAL);
    CHECK(strstr(ohm_last_error(), "never") != NULL);
    CHECK_EQ_U64(cfg.chunk_size, 2 << 20);
    CHECK_EQ_INT(cfg.arenas, 3);
    CHECK_EQ_U64(cfg.purge_delay_ms, UINT64_MAX);
    CHECK(cfg.zero);
    CHECK(cfg.poison);
    CHECK_EQ_INT(cfg.huge_pages, OHM_HUGE_THP);
    CHECK_EQ_INT(ohm_pool_config_get(&cfg, OHM_POOL_OPTION_purge_delay_ms), -1);
    CHECK_EQ_INT(ohm_pool_config_set(&cfg, OHM_POOL_OPTION_purge_delay_ms, 500), 0);
    CHECK_EQ_INT(ohm_pool_config_set_text(&cfg, OHM_POOL_OPTION_purge_delay_ms, "Never"), 0);
    CHECK_EQ_INT(ohm_pool_config_get(&cfg, OHM_POOL_OPTION_purge_delay_ms), -1);
    CHECK_EQ_INT(ohm_pool_config_get(&cfg, OHM_POOL_OPTION_zero), 1);
    CHECK_NULL(ohm_pool_option_name(OHM_POOL_OPTION_COUNT));
}

int main(void)
{
    RUN(test_java_properties_follow_the_table);
    RUN(test_lua_readme_lists_every_option_in_order);
    RUN(test_setters_check_ranges_with_the_cores_messages);
    RUN(test_setters_and_getter_round_trip);
    return check_summary();
}
