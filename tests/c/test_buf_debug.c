/* Debug options: poisoning (writes after free), guard pages (overflows), sealing (read-only buffers). */
#include "../check.h"
#include "fixture.h"
#include "ohm.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The log, captured: the poison option reports through it. */
static fixture_log errors_logged = FIXTURE_LOG(OHM_LOG_ERROR);

static ohm_pool *poison_pool(void) { return fixture_flag_pool("poison", FIXTURE_POISON); }

static void test_poison_finds_a_write_after_free_and_names_the_offset(void)
{
    ohm_pool *pool = poison_pool();
    if (!pool) return;
    unsigned errors = errors_logged.count;
    unsigned char *p = ohm_pool_alloc(pool, 64);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_pool_free(pool, p), OHM_OK);
    p[40] = 1; /* the bug under test: a write after free */
    unsigned char *q = ohm_pool_alloc(pool, 64);
    CHECK(q == p); /* no thread cache: the same slab block comes back */
    CHECK_EQ_U64(fixture_stats(pool, -1).poison_violations, 1);
    CHECK_EQ_INT(errors_logged.count, errors + 1);
    CHECK_STR_CONTAINS(errors_logged.last, "written after it was freed");
    CHECK_STR_CONTAINS(errors_logged.last, "offset 40");
    ohm_pool_free(pool, q);
    ohm_pool_destroy(pool);
}

static void test_poison_names_the_buffer_whose_memory_was_written(void)
{
    ohm_pool *pool = poison_pool();
    if (!pool) return;
    ohm_buf *b = ohm_buf_alloc(pool, 100);
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    unsigned char *data = ohm_buf_data(b);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    data[90] = 7; /* through a pointer kept past the release */
    ohm_buf *c = ohm_buf_alloc(pool, 100);
    if (!CHECK_NOT_NULL(c)) return;
    char want[64];
    snprintf(want, sizeof want, "buffer id %llu", (unsigned long long)id);
    CHECK_STR_CONTAINS(errors_logged.last, want);
    CHECK_STR_CONTAINS(errors_logged.last, "offset 90");
    ohm_buf_release(c, 1);
    ohm_pool_destroy(pool);
}

static void test_poison_reports_nothing_for_correct_use(void)
{
    ohm_pool *pool = poison_pool();
    if (!pool) return;
    void *blocks[300];
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 300; i++) {
            size_t size = 16 + (i * 97) % 40000;
            blocks[i] = ohm_pool_alloc(pool, size);
            if (!CHECK_NOT_NULL(blocks[i])) return;
            memset(blocks[i], (int)i, size); /* live blocks may be written anywhere */
        }
        for (unsigned i = 0; i < 300; i++) CHECK_EQ_INT(ohm_pool_free(pool, blocks[i]), OHM_OK);
    }
    CHECK_EQ_U64(fixture_stats(pool, -1).poison_violations, 0);
    ohm_pool_destroy(pool);
}

/* Runs fn in a child; returns its wait status. */
static int in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

/* The child died of the fault (sanitizer runtimes catch SIGSEGV and exit nonzero instead). */
static bool faulted(int status)
{
    if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return WIFEXITED(status) && WEXITSTATUS(status) != 0;
#else
    return false;
#endif
}

static void write_past_the_end(void *arg)
{
    ohm_buf *b = arg;
    unsigned char *data = ohm_buf_data(b);
    data[ohm_buf_size(b) + 16] = 1; /* past the at most 15 bytes of slack: the guard page */
}

static void write_the_last_byte(void *arg)
{
    ohm_buf *b = arg;
    unsigned char *data = ohm_buf_data(b);
    data[ohm_buf_size(b) - 1] = 1;
}

static void test_guard_page_stops_an_overflow_at_once(void)
{
    ohm_buf_set_guard(8192);
    CHECK_EQ_U64(ohm_buf_get_guard(), 8192);
    ohm_buf *b = ohm_buf_alloc(NULL, 10000);
    ohm_buf_set_guard(0);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(in_child(write_the_last_byte, b), 0);
    CHECK(faulted(in_child(write_past_the_end, b)));
    /* below the threshold: an ordinary pool buffer */
    ohm_buf *small = ohm_buf_alloc(NULL, 100);
    ohm_block_info info;
    if (CHECK_NOT_NULL(small)) CHECK_EQ_INT(ohm_lookup(ohm_buf_data(small), &info), OHM_OK);
    CHECK_EQ_INT(ohm_lookup(ohm_buf_data(b), &info), OHM_EINVAL); /* its own mapping, not pool memory */
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    ohm_buf_release(small, 1);
}

static void test_sealed_buffer_rejects_writes_and_unseals(void)
{
    ohm_buf_set_guard(1);
    ohm_buf *b = ohm_buf_alloc(NULL, 5000);
    ohm_buf_set_guard(0);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_write(b, 0, "abc", 3), OHM_OK);
    CHECK(!ohm_buf_readonly(b));
    CHECK_EQ_INT(ohm_buf_seal(b, true), OHM_OK);
    CHECK(ohm_buf_readonly(b));
    CHECK_EQ_INT(ohm_buf_write(b, 0, "xyz", 3), OHM_ESTATE);
    CHECK_EQ_INT(ohm_buf_fill(b, 0, 0, 1), OHM_ESTATE);
    char out[3];
    CHECK_EQ_INT(ohm_buf_read(b, 0, out, 3), OHM_OK);
    CHECK(!memcmp(out, "abc", 3));
    CHECK(faulted(in_child(write_the_last_byte, b))); /* a direct store faults too */
    CHECK_EQ_INT(ohm_buf_seal(b, false), OHM_OK);
    CHECK(!ohm_buf_readonly(b));
    CHECK_EQ_INT(ohm_buf_write(b, 0, "xyz", 3), OHM_OK);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
}

static void test_only_buffers_owning_their_pages_can_be_sealed(void)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 5000);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK_EQ_INT(ohm_buf_seal(b, true), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "owns its pages");
    CHECK_EQ_INT(ohm_buf_write(b, 0, "x", 1), OHM_OK);
    ohm_buf_release(b, 1);
}

int main(void)
{
    ohm_set_log_handler(fixture_log_handler, &errors_logged);
    RUN(test_poison_finds_a_write_after_free_and_names_the_offset);
    RUN(test_poison_names_the_buffer_whose_memory_was_written);
    RUN(test_poison_reports_nothing_for_correct_use);
    RUN(test_guard_page_stops_an_overflow_at_once);
    RUN(test_sealed_buffer_rejects_writes_and_unseals);
    RUN(test_only_buffers_owning_their_pages_can_be_sealed);
    return check_summary();
}
