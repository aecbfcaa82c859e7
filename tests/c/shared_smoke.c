/* Smoke test through the shared library: every call here must resolve against libohm.so's exported symbols,
 * so it checks that OHM_API and -fvisibility=hidden leave the public API visible. */
#include "../check.h"
#include "ohm.h"

static void test_strerror_names_every_code(void)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {OHM_ENOMEM, "OHM_ENOMEM"},       {OHM_EINVAL, "OHM_EINVAL"},       {OHM_ESTATE, "OHM_ESTATE"},
        {OHM_ERANGE, "OHM_ERANGE"},       {OHM_ELIMIT, "OHM_ELIMIT"},       {OHM_ESYS, "OHM_ESYS"},
        {OHM_EPERM, "OHM_EPERM"},         {OHM_ETIMEDOUT, "OHM_ETIMEDOUT"}, {OHM_ECANCELED, "OHM_ECANCELED"},
        {OHM_ECALLBACK, "OHM_ECALLBACK"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK_STR_CONTAINS(ohm_strerror(codes[i].code), codes[i].name);
    CHECK_NOT_NULL(ohm_strerror(12345)); /* never NULL, even for an unknown code */
}

static void test_default_pool_alloc_and_free(void)
{
    unsigned char *p = ohm_alloc(100);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK(ohm_usable_size(p) >= 100);
    CHECK_EQ_U64((uintptr_t)p % 16, 0);
    memset(p, 0xab, 100);
    CHECK_EQ_INT(ohm_free(p), OHM_OK);
    CHECK_EQ_INT(ohm_free(NULL), OHM_OK);
}

static void test_private_pool_lifecycle(void)
{
    ohm_pool_config cfg;
    ohm_pool_config_init(&cfg);
    cfg.name = "smoke";
    ohm_pool *pool = ohm_pool_create(&cfg);
    if (!CHECK_NOT_NULL(pool)) return;
    void *small = ohm_pool_alloc(pool, 24);
    void *large = ohm_pool_alloc(pool, cfg.chunk_size + 1); /* above a chunk: mapped directly */
    CHECK_NOT_NULL(small);
    CHECK_NOT_NULL(large);
    CHECK_EQ_INT(ohm_pool_free(pool, small), OHM_OK);
    CHECK_EQ_INT(ohm_pool_free(pool, large), OHM_OK);
    CHECK_EQ_INT(ohm_pool_destroy(pool), OHM_OK);
}

static void test_default_pool_cannot_be_destroyed(void)
{
    CHECK_EQ_INT(ohm_pool_destroy(ohm_pool_default()), OHM_ESTATE);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_ESTATE);
}

int main(void)
{
    RUN(test_strerror_names_every_code);
    RUN(test_default_pool_alloc_and_free);
    RUN(test_private_pool_lifecycle);
    RUN(test_default_pool_cannot_be_destroyed);
    return check_summary();
}
