/* ohm_mm_used_all: the execution and storage use of every live manager, added, for monitors that hold none of
 * them (ohm-stress's manager chart); a destroyed manager leaves the sum. */
#include "../check.h"
#include "ohm.h"

#include <pthread.h>

static ohm_mm *manager(void)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = 1 << 20;
    return ohm_mm_create(&cfg);
}

static void test_sums_every_manager(void)
{
    uint64_t base = ohm_mm_used_all();
    ohm_mm *a = manager(), *b = manager();
    if (!CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(b)) return;
    ohm_task *ta = ohm_task_create(a, 1), *tb = ohm_task_create(b, 1);
    CHECK_EQ_INT(ohm_task_acquire(ta, OHM_ON_HEAP, 1000), 1000);
    CHECK_EQ_INT(ohm_task_acquire(tb, OHM_ON_HEAP, 500), 500);
    CHECK_EQ_INT(ohm_task_acquire_unroll(tb, OHM_ON_HEAP, "g", 24), 0); /* storage counts too */
    CHECK_EQ_U64(ohm_mm_used_all(), base + 1524);
    CHECK_EQ_INT(ohm_task_release(ta, OHM_ON_HEAP, 400), 400);
    CHECK_EQ_U64(ohm_mm_used_all(), base + 1124);
    ohm_task_release(ta, OHM_ON_HEAP, 600);
    ohm_task_release(tb, OHM_ON_HEAP, 500);
    ohm_task_release_unroll(tb, OHM_ON_HEAP, 24);
    ohm_task_end(ta);
    ohm_task_end(tb);
    CHECK_EQ_U64(ohm_mm_used_all(), base);
    CHECK_EQ_INT(ohm_mm_destroy(a), 0);
    CHECK_EQ_INT(ohm_mm_destroy(b), 0);
    CHECK_EQ_U64(ohm_mm_used_all(), base);
}

static void *create_use_destroy(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        ohm_mm *mm = manager();
        ohm_task *t = ohm_task_create(mm, 7);
        ohm_task_acquire(t, OHM_ON_HEAP, 64);
        (void)ohm_mm_used_all();
        ohm_task_release(t, OHM_ON_HEAP, 64);
        ohm_task_end(t);
        ohm_mm_destroy(mm);
    }
    return NULL;
}

static void test_reads_race_with_create_and_destroy(void)
{
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, create_use_destroy, NULL);
    for (int i = 0; i < 2000; i++) (void)ohm_mm_used_all();
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U64(ohm_mm_used_all(), 0);
}

int main(void)
{
    RUN(test_sums_every_manager);
    RUN(test_reads_race_with_create_and_destroy);
    return check_summary();
}
