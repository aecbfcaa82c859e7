/* check.h — ohm's test harness: header-only, no dependencies.
 *
 *   static void test_alloc_returns_aligned_block(void) { void *p = ohm_alloc(8); CHECK_NOT_NULL(p); ... }
 *   int main(void) { RUN(test_alloc_returns_aligned_block); return check_summary(); }
 *
 * A failed check prints file:line, the expression and the values, and the test goes on; every CHECK_* is an
 * expression that is true when the check passed, so `if (!CHECK_NOT_NULL(p)) return;` stops a test early.
 * RUN prints "ok NAME" or "FAIL NAME"; check_summary prints "N passed, N failed" (CI reads this line) and
 * returns the exit status. Checks may run on any thread: the counters are atomic.
 */
#ifndef OHM_TESTS_CHECK_H
#define OHM_TESTS_CHECK_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static struct {
    atomic_ulong failed_checks; /* failed checks so far, all threads */
    unsigned passed, failed;    /* tests (RUN calls), main thread only */
} check_state;

/* Counts a failure whose message the caller printed; returns false so checks can end in it. */
static inline bool check_fail_(void)
{
    atomic_fetch_add(&check_state.failed_checks, 1);
    return false;
}

static inline bool check_true_(bool ok, const char *file, int line, const char *expr)
{
    if (ok) return true;
    fprintf(stderr, "%s:%d: CHECK(%s) failed\n", file, line, expr);
    return check_fail_();
}

static inline bool check_u64_(uint64_t a, uint64_t b, const char *file, int line, const char *ea, const char *eb)
{
    if (a == b) return true;
    fprintf(stderr, "%s:%d: CHECK_EQ_U64(%s, %s) failed: %" PRIu64 " != %" PRIu64 " (0x%" PRIx64 " != 0x%" PRIx64 ")\n",
            file, line, ea, eb, a, b, a, b);
    return check_fail_();
}

static inline bool check_int_(long long a, long long b, const char *file, int line, const char *ea, const char *eb)
{
    if (a == b) return true;
    fprintf(stderr, "%s:%d: CHECK_EQ_INT(%s, %s) failed: %lld != %lld\n", file, line, ea, eb, a, b);
    return check_fail_();
}

static inline bool check_ptr_(const void *p, bool want_null, const char *file, int line, const char *expr)
{
    if ((p == NULL) == want_null) return true;
    fprintf(stderr, "%s:%d: %s(%s) failed: %p\n", file, line, want_null ? "CHECK_NULL" : "CHECK_NOT_NULL", expr, p);
    return check_fail_();
}

static inline bool check_contains_(const char *hay, const char *needle, const char *file, int line, const char *eh)
{
    if (hay != NULL && needle != NULL && strstr(hay, needle) != NULL) return true;
    fprintf(stderr, "%s:%d: CHECK_STR_CONTAINS(%s, ...) failed: \"%s\" does not contain \"%s\"\n", file, line, eh,
            hay ? hay : "(null)", needle ? needle : "(null)");
    return check_fail_();
}

#define CHECK(cond)                     check_true_((cond) ? true : false, __FILE__, __LINE__, #cond)
#define CHECK_EQ_U64(a, b)              check_u64_((uint64_t)(a), (uint64_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_INT(a, b)              check_int_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_NOT_NULL(p)               check_ptr_((const void *)(p), false, __FILE__, __LINE__, #p)
#define CHECK_NULL(p)                   check_ptr_((const void *)(p), true, __FILE__, __LINE__, #p)
#define CHECK_STR_CONTAINS(hay, needle) check_contains_((hay), (needle), __FILE__, __LINE__, #hay)

/* Runs one test function (void fn(void)) and reports it by name. */
#define RUN(fn) check_run_(fn, #fn)

static inline void check_run_(void (*fn)(void), const char *name)
{
    unsigned long before = atomic_load(&check_state.failed_checks);
    fn();
    bool ok = atomic_load(&check_state.failed_checks) == before;
    if (ok) check_state.passed++;
    else check_state.failed++;
    printf("%s %s\n", ok ? "ok" : "FAIL", name);
    fflush(stdout);
}

/* Prints the closing line and returns main's exit status: nonzero if any check failed, in a test or not. */
static inline int check_summary(void)
{
    unsigned failed = check_state.failed;
    if (failed == 0 && atomic_load(&check_state.failed_checks) > 0) failed = 1; /* a check outside any RUN failed */
    printf("%u passed, %u failed\n", check_state.passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

#endif /* OHM_TESTS_CHECK_H */
