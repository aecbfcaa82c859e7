/* The host-neutral binding layer (bindings/include/ohm_bind.h), except the libffi bridge (test_ffi.c): the error
 * table, checked host integers, typed access, bits, bulk operations, and host-callback dispatch (threads,
 * failures, leak routing). */
#include "ohm_bind.h"

#include "../check.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static char logged[4096];
static atomic_int log_calls;

static void capture_log(void *arg, ohm_log_level level, const char *message)
{
    (void)arg;
    (void)level;
    snprintf(logged, sizeof logged, "%s", message);
    atomic_fetch_add(&log_calls, 1);
}

/* ---- errors ---- */

static void test_error_table_names_kind_class_and_raise(void)
{
    const ohm_bind_error *e = ohm_bind_error_of(OHM_ERANGE);
    CHECK_EQ_INT(e->code, OHM_ERANGE);
    CHECK_STR_CONTAINS(e->name, "ERANGE");
    CHECK_STR_CONTAINS(e->java_class, "java/lang/IndexOutOfBoundsException");
    CHECK(e->raise);
    CHECK_STR_CONTAINS(ohm_bind_error_of(OHM_EINVAL)->java_class, "IllegalArgumentException");
    CHECK_STR_CONTAINS(ohm_bind_error_of(OHM_ESTATE)->java_class, "IllegalStateException");
    CHECK(ohm_bind_error_of(OHM_ESTATE)->raise);
    /* Runtime failures: Lua returns nil, message, code; Java gets the OutOfMemoryError subclass. */
    CHECK(!ohm_bind_error_of(OHM_ENOMEM)->raise);
    CHECK(!ohm_bind_error_of(OHM_ELIMIT)->raise);
    CHECK(!ohm_bind_error_of(OHM_ECALLBACK)->raise);
    CHECK_STR_CONTAINS(ohm_bind_error_of(OHM_ELIMIT)->java_class, "org/ohm/OhmOutOfMemoryError");
    CHECK_STR_CONTAINS(ohm_bind_error_of(OHM_ECANCELED)->name, "ECANCELED");
    /* Every core code has its own entry; an unknown one gets the generic entry, never NULL. */
    for (int c = OHM_ECALLBACK; c < 0; c++) CHECK_EQ_INT(ohm_bind_error_of(c)->code, c);
    CHECK_STR_CONTAINS(ohm_bind_error_of(-99)->name, "EUNKNOWN");
    CHECK_STR_CONTAINS(ohm_bind_error_of(5)->name, "EUNKNOWN");
}

/* OHM_ERRORS is the one list: each row's constant, short name, strerror text, kind and Java class agree, and
 * the table has no code the list lacks. */
static void test_every_listed_code_has_its_strerror_and_host_row(void)
{
    int rows = 0;
#define CHECK_ROW(id, value, kind, text)                                     \
    do {                                                                     \
        const ohm_bind_error *e = ohm_bind_error_of(value);                  \
        CHECK_EQ_INT(OHM_##id, value);                                       \
        CHECK_EQ_INT(e->code, value);                                        \
        CHECK(strcmp(e->name, #id) == 0);                                    \
        CHECK(strcmp(ohm_strerror(value), "OHM_" #id ": " text) == 0);       \
        CHECK(e->raise == (strcmp(#kind, "USAGE") == 0));                    \
        CHECK((value) == 0 ? e->java_class == NULL : e->java_class != NULL); \
        rows++;                                                              \
    } while (0);
    OHM_ERRORS(CHECK_ROW)
#undef CHECK_ROW
    CHECK_EQ_INT(rows, OHM_BIND_ERROR_COUNT);
    CHECK_STR_CONTAINS(ohm_strerror(-OHM_BIND_ERROR_COUNT), "OHM_E?");
    CHECK_STR_CONTAINS(ohm_bind_error_of(-OHM_BIND_ERROR_COUNT)->name, "EUNKNOWN");
}

static void test_message_is_the_detail_for_that_code_else_strerror(void)
{
    CHECK_EQ_INT(ohm_bind_fail(OHM_ELIMIT, "only 10 bytes left"), OHM_ELIMIT);
    CHECK_STR_CONTAINS(ohm_bind_message(OHM_ELIMIT), "only 10 bytes left");
    /* A message of another code is not shown for this one. */
    CHECK_STR_CONTAINS(ohm_bind_message(OHM_ERANGE), "OHM_ERANGE");
}

/* What the layer needs of the core, all in ohm.h: a formatted error, the log handler, OHM_* flags. */
static void test_public_error_log_and_flag_helpers_for_bindings(void)
{
    CHECK_EQ_INT(ohm_set_errorf(OHM_EINVAL, "argument %d of %s", 3, "f"), OHM_EINVAL);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK(strcmp(ohm_last_error(), "argument 3 of f") == 0);
    int before = atomic_load(&log_calls);
    ohm_logf(OHM_LOG_WARN, "%d reports dropped", 7);
    CHECK_EQ_INT(atomic_load(&log_calls), before + 1);
    CHECK(strcmp(logged, "7 reports dropped") == 0);
    ohm_logf((ohm_log_level)42, "no such level"); /* ignored, not an out-of-range read */
    CHECK_EQ_INT(atomic_load(&log_calls), before + 1);
    unsetenv("OHM_TEST_FLAG");
    CHECK(ohm_env_flag("OHM_TEST_FLAG", true));
    setenv("OHM_TEST_FLAG", "off", 1);
    CHECK(!ohm_env_flag("OHM_TEST_FLAG", true));
    setenv("OHM_TEST_FLAG", "Yes", 1);
    CHECK(ohm_env_flag("OHM_TEST_FLAG", false));
    setenv("OHM_TEST_FLAG", "maybe", 1); /* malformed: the default, and a warning */
    CHECK(!ohm_env_flag("OHM_TEST_FLAG", false));
    CHECK_STR_CONTAINS(logged, "OHM_TEST_FLAG=maybe");
    unsetenv("OHM_TEST_FLAG");
}

/* ---- checked host integers ---- */

static void test_sizes_from_hosts_are_checked(void)
{
    size_t n = 7;
    CHECK_EQ_INT(ohm_bind_size(-1, 0, "size", &n), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "size -1 is negative");
    CHECK_EQ_U64(n, 7); /* untouched on error */
    CHECK_EQ_INT(ohm_bind_size(1001, 1000, "capacity", &n), OHM_EINVAL);
    CHECK_STR_CONTAINS(ohm_last_error(), "capacity 1001 is too large (at most 1000)");
    CHECK_EQ_INT(ohm_bind_size(INT64_MAX, 0, NULL, &n), 0); /* no limit beyond SIZE_MAX on LP64 */
    CHECK_EQ_U64(n, INT64_MAX);
    CHECK_EQ_INT(ohm_bind_size(0, 0, "size", &n), 0);
    CHECK_EQ_U64(n, 0);
}

static void test_ranges_from_hosts_are_checked(void)
{
    CHECK_EQ_INT(ohm_bind_range(16, 12, 8), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 12 + length 8 exceeds buffer size 16");
    CHECK_EQ_INT(ohm_bind_range(16, -1, 1), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset -1 is negative");
    CHECK_EQ_INT(ohm_bind_range(16, 0, -5), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "length -5 is negative");
    CHECK_EQ_INT(ohm_bind_range(16, INT64_MAX, INT64_MAX), OHM_ERANGE);
    CHECK_EQ_INT(ohm_bind_range(16, 8, 8), 0);
    CHECK_EQ_INT(ohm_bind_range(16, 16, 0), 0);
}

/* ---- typed access ---- */

static void test_typed_values_round_trip_in_both_orders(void)
{
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, 64);
    if (!CHECK_NOT_NULL(b)) return;
    unsigned char *d = ohm_buf_data(b);
    ohm_bind_value v = {.u = 0x0102030405060708ull}, r;

    CHECK_EQ_INT(ohm_bind_set(b, 0, OHM_BT_U64, OHM_BIND_LE, v), 0);
    CHECK_EQ_INT(d[0], 0x08);
    CHECK_EQ_INT(d[7], 0x01);
    CHECK_EQ_INT(ohm_bind_set(b, 8, OHM_BT_U64, OHM_BIND_BE, v), 0);
    CHECK_EQ_INT(d[8], 0x01);
    CHECK_EQ_INT(d[15], 0x08);
    CHECK_EQ_INT(ohm_bind_get(b, 8, OHM_BT_U64, OHM_BIND_BE, &r), 0);
    CHECK_EQ_U64(r.u, 0x0102030405060708ull);
    CHECK_EQ_INT(ohm_bind_get(b, 8, OHM_BT_U32, OHM_BIND_BE, &r), 0);
    CHECK_EQ_U64(r.u, 0x01020304u);
    CHECK_EQ_INT(ohm_bind_get(b, 8, OHM_BT_U16, OHM_BIND_LE, &r), 0);
    CHECK_EQ_U64(r.u, 0x0201u);

    /* Signed types sign-extend, unsigned ones zero-extend. */
    v.i = -2;
    for (int t = OHM_BT_I8; t <= OHM_BT_U64; t++) {
        for (int order = OHM_BIND_LE; order <= OHM_BIND_BE; order++) {
            CHECK_EQ_INT(ohm_bind_set(b, 16, (ohm_bind_type)t, order, v), 0);
            CHECK_EQ_INT(ohm_bind_get(b, 16, (ohm_bind_type)t, order, &r), 0);
            unsigned bits = ohm_bind_type_size((ohm_bind_type)t) * 8;
            if (t % 2 == 0 || bits == 64) CHECK_EQ_INT(r.i, -2);
            else CHECK_EQ_U64(r.u, (UINT64_MAX >> (64 - bits)) - 1);
        }
    }
    /* Integers are truncated to the width (300 as u8 is 44). */
    v.i = 300;
    CHECK_EQ_INT(ohm_bind_set(b, 0, OHM_BT_U8, OHM_BIND_LE, v), 0);
    CHECK_EQ_INT(ohm_bind_get(b, 0, OHM_BT_U8, OHM_BIND_LE, &r), 0);
    CHECK_EQ_U64(r.u, 44);

    /* Floats: f64 exact, f32 rounds to float; big-endian f64 is the bytes of the double reversed. */
    v.f = 3.141592653589793;
    CHECK_EQ_INT(ohm_bind_set(b, 24, OHM_BT_F64, OHM_BIND_BE, v), 0);
    CHECK_EQ_INT(ohm_bind_get(b, 24, OHM_BT_F64, OHM_BIND_BE, &r), 0);
    CHECK(r.f == 3.141592653589793);
    CHECK_EQ_INT(d[24], 0x40); /* sign and exponent first */
    CHECK_EQ_INT(ohm_bind_set(b, 32, OHM_BT_F32, OHM_BIND_LE, v), 0);
    CHECK_EQ_INT(ohm_bind_get(b, 32, OHM_BT_F32, OHM_BIND_LE, &r), 0);
    CHECK(r.f == (double)(float)3.141592653589793);
    v.f = -INFINITY;
    CHECK_EQ_INT(ohm_bind_set(b, 32, OHM_BT_F32, OHM_BIND_BE, v), 0);
    CHECK_EQ_INT(ohm_bind_get(b, 32, OHM_BT_F32, OHM_BIND_BE, &r), 0);
    CHECK(isinf(r.f) && r.f < 0);
    CHECK_STR_CONTAINS(ohm_bind_type_name(OHM_BT_U16), "u16");
    CHECK_EQ_INT(ohm_bind_type_size(OHM_BT_F64), 8);
    ohm_buf_release(b, 1);
}

static void test_bad_access_fails_and_changes_nothing(void)
{
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, 16);
    if (!CHECK_NOT_NULL(b)) return;
    ohm_bind_value v = {.u = UINT64_MAX}, r = {.u = 42};
    CHECK_EQ_INT(ohm_bind_set(b, 12, OHM_BT_U64, OHM_BIND_LE, v), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "offset 12 + length 8 exceeds buffer size 16");
    CHECK_EQ_INT(ohm_bind_set(b, -1, OHM_BT_U8, OHM_BIND_LE, v), OHM_ERANGE);
    CHECK_EQ_INT(ohm_bind_get(b, INT64_MAX, OHM_BT_U8, OHM_BIND_LE, &r), OHM_ERANGE);
    CHECK_EQ_U64(r.u, 42);
    CHECK_EQ_INT(ohm_bind_set(b, 0, (ohm_bind_type)99, OHM_BIND_LE, v), OHM_EINVAL);
    unsigned char zero[16] = {0};
    CHECK(memcmp(ohm_buf_data(b), zero, 16) == 0);
    char out[4];
    CHECK_EQ_INT(ohm_bind_read(b, 14, out, 4), OHM_ERANGE);
    CHECK_EQ_INT(ohm_bind_write(b, 0, "x", -1), OHM_ERANGE);
    void *p;
    CHECK_EQ_INT(ohm_bind_span(b, 16, 0, &p), 0);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_bind_get(b, 0, OHM_BT_U8, OHM_BIND_LE, &r), OHM_ESTATE); /* released: never read */
    CHECK_EQ_INT(ohm_bind_set(b, 0, OHM_BT_U8, OHM_BIND_LE, v), OHM_ESTATE);
    CHECK_EQ_INT(ohm_bind_fill(b, 0, 1, 1), OHM_ESTATE);
}

/* Bit i of the buffer, the reference the bit functions are checked against. */
static unsigned bit_at(const unsigned char *d, uint64_t i) { return d[i / 8] >> (i % 8) & 1; }

static void test_bits_match_a_bit_by_bit_reference(void)
{
    ohm_buf *b = ohm_buf_alloc_zeroed(NULL, 24);
    if (!CHECK_NOT_NULL(b)) return;
    unsigned char *d = ohm_buf_data(b);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 2000; round++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int count = (int)(seed >> 58); /* 0..63 */
        if (round % 17 == 0) count = 64;
        int64_t off = (int64_t)((seed >> 20) % (uint64_t)(24 * 8 - count + 1));
        uint64_t value = seed * 0xbf58476d1ce4e5b9ull, got = 0, want = 0;
        unsigned char before[24];
        memcpy(before, d, 24);
        CHECK_EQ_INT(ohm_bind_set_bits(b, off, count, value), 0);
        for (int i = 0; i < count; i++) want |= (uint64_t)bit_at(d, (uint64_t)(off + i)) << i;
        uint64_t mask = count == 64 ? UINT64_MAX : (UINT64_C(1) << count) - 1;
        CHECK_EQ_U64(want, value & mask);
        for (int64_t i = 0; i < 24 * 8; i++) /* bits outside the range are untouched */
            if (i < off || i >= off + count) CHECK_EQ_INT(bit_at(d, (uint64_t)i), bit_at(before, (uint64_t)i));
        CHECK_EQ_INT(ohm_bind_get_bits(b, off, count, &got), 0);
        CHECK_EQ_U64(got, value & mask);
    }
    uint64_t got = 5;
    CHECK_EQ_INT(ohm_bind_get_bits(b, 24 * 8 - 3, 4, &got), OHM_ERANGE);
    CHECK_STR_CONTAINS(ohm_last_error(), "bit offset 189 + count 4 exceeds 192 bits");
    CHECK_EQ_INT(ohm_bind_get_bits(b, 0, 65, &got), OHM_EINVAL);
    CHECK_EQ_INT(ohm_bind_get_bits(b, -1, 1, &got), OHM_ERANGE);
    CHECK_EQ_U64(got, 5);
    CHECK_EQ_INT(ohm_bind_get_bits(b, 192, 0, &got), 0);
    CHECK_EQ_U64(got, 0);
    ohm_buf_release(b, 1);
}

static void test_copy_fill_find_and_compare(void)
{
    ohm_buf *a = ohm_buf_alloc(NULL, 32), *b = ohm_buf_alloc(NULL, 32);
    if (!CHECK_NOT_NULL(a) || !CHECK_NOT_NULL(b)) return;
    unsigned char *da = ohm_buf_data(a);
    for (int i = 0; i < 32; i++) da[i] = (unsigned char)i;
    /* Overlapping copies within one buffer behave as memmove, in both directions. */
    CHECK_EQ_INT(ohm_bind_copy(a, 4, a, 0, 8), 0);
    CHECK_EQ_INT(da[4], 0);
    CHECK_EQ_INT(da[11], 7);
    CHECK_EQ_INT(ohm_bind_copy(a, 0, a, 4, 8), 0);
    CHECK_EQ_INT(da[7], 7);
    /* Through a slice of the same memory. */
    ohm_buf *s = ohm_buf_slice(a, 16, 16);
    if (CHECK_NOT_NULL(s)) {
        CHECK_EQ_INT(ohm_bind_copy(s, 0, a, 18, 4), 0);
        CHECK_EQ_INT(da[16], 18);
        CHECK_EQ_INT(ohm_bind_copy(s, 13, a, 0, 4), OHM_ERANGE);
        CHECK_EQ_INT(ohm_bind_copy(s, 0, a, -4, 4), OHM_ERANGE);
        CHECK_STR_CONTAINS(ohm_last_error(), "source offset -4 is negative");
    }
    CHECK_EQ_INT(ohm_bind_fill(b, 0, 0xab, 32), 0);
    CHECK_EQ_INT(ohm_bind_fill(b, 30, 0, 3), OHM_ERANGE);
    CHECK_EQ_INT(ohm_bind_write(b, 10, "needle", 6), 0);
    CHECK_EQ_INT(ohm_bind_find(b, 0, 32, "needle", 6), 10);
    CHECK_EQ_INT(ohm_bind_find(b, 11, 21, "needle", 6), -1);
    CHECK_EQ_INT(ohm_bind_find(b, 0, 15, "needle", 6), -1); /* the window ends inside the needle */
    CHECK_EQ_INT(ohm_bind_find(b, 5, 0, "", 0), 5);
    CHECK_EQ_INT(ohm_bind_find(b, 0, 3, "needle", 6), -1);
    CHECK_EQ_INT(ohm_bind_find(b, 30, 3, "x", 1), OHM_ERANGE);
    int cmp = 9;
    CHECK_EQ_INT(ohm_bind_compare(a, 0, b, 0, 4, &cmp), 0);
    CHECK(cmp < 0); /* 0x04 < 0xab as unsigned bytes */
    CHECK_EQ_INT(ohm_bind_compare(b, 10, b, 10, 6, &cmp), 0);
    CHECK_EQ_INT(cmp, 0);
    CHECK_EQ_INT(ohm_bind_compare(a, 0, b, 30, 4, &cmp), OHM_ERANGE);
    ohm_buf *shorter = ohm_buf_slice(b, 0, 8);
    if (CHECK_NOT_NULL(shorter)) {
        CHECK_EQ_INT(ohm_bind_compare_all(shorter, b, &cmp), 0);
        CHECK(cmp < 0); /* a prefix sorts first */
        CHECK_EQ_INT(ohm_bind_compare_all(b, shorter, &cmp), 0);
        CHECK(cmp > 0);
        CHECK_EQ_INT(ohm_bind_compare_all(b, b, &cmp), 0);
        CHECK_EQ_INT(cmp, 0);
    }
    ohm_buf_release(a, 1);
    CHECK_EQ_INT(ohm_bind_compare_all(a, b, &cmp), OHM_ESTATE);
    ohm_buf_release(b, 1);
}

/* ---- hosts and callbacks ---- */

typedef struct spiller {
    ohm_consumer *self;
    int calls;
    int fail; /* return this code (after ohm_bind_fail) instead of spilling */
    void *last_trigger;
} spiller;

static int64_t spill_cb(void *ctx, uint64_t size, void *trigger_ctx)
{
    spiller *s = ctx;
    s->calls++;
    s->last_trigger = trigger_ctx;
    if (s->fail) return ohm_bind_fail(s->fail, "the host's spill raised: disk full");
    return ohm_consumer_release(s->self, size);
}

static ohm_mm *small_manager(void)
{
    ohm_mm_config cfg;
    ohm_mm_config_init(&cfg);
    cfg.max_bytes[OHM_ON_HEAP] = 1000;
    cfg.max_bytes[OHM_OFF_HEAP] = 0;
    return ohm_mm_create(&cfg);
}

static const ohm_bind_host_ops owner_ops = {OHM_BIND_OWNER_THREAD, NULL, NULL, NULL};

/* A small manager, an owner-thread host, and in task 1 of it consumers "a" and "b" created through the host. */
typedef struct two_spill {
    ohm_mm *mm;
    ohm_bind_host *h;
    ohm_task *t;
    spiller a, b;
} two_spill;

/* Whether all of it was made (a check failed otherwise). */
static bool two_spillers(two_spill *s)
{
    *s = (two_spill){small_manager(), ohm_bind_host_create(&owner_ops, NULL), NULL, {0}, {0}};
    if (!CHECK_NOT_NULL(s->mm) || !CHECK_NOT_NULL(s->h)) return false;
    s->t = ohm_task_create(s->mm, 1);
    s->a.self = ohm_bind_consumer_create(s->h, s->t, OHM_ON_HEAP, "a", spill_cb, &s->a);
    s->b.self = ohm_bind_consumer_create(s->h, s->t, OHM_ON_HEAP, "b", spill_cb, &s->b);
    return CHECK_NOT_NULL(s->a.self) && CHECK_NOT_NULL(s->b.self);
}

static void test_spill_runs_in_an_entered_host_and_names_the_trigger(void)
{
    two_spill s;
    if (!two_spillers(&s)) return;
    CHECK(ohm_bind_consumer_ctx(s.a.self) == &s.a);

    ohm_bind_host_enter(s.h);
    CHECK(ohm_bind_host_is_current(s.h));
    CHECK_EQ_INT(ohm_consumer_acquire(s.a.self, 800), 800);
    CHECK_EQ_INT(ohm_consumer_acquire(s.b.self, 500), 500); /* 200 free, a spills 300 */
    CHECK_EQ_INT(s.a.calls, 1);
    CHECK(s.a.last_trigger == &s.b);
    CHECK_EQ_U64(ohm_consumer_used(s.a.self), 500);

    /* A spill that fails: the acquire fails with its code and message, and the accounting is exact. */
    s.a.fail = OHM_ECALLBACK;
    CHECK_EQ_INT(ohm_consumer_acquire(s.b.self, 400), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "spill of consumer a failed: the host's spill raised: disk full");
    CHECK_EQ_U64(ohm_consumer_used(s.a.self) + ohm_consumer_used(s.b.self), 1000);
    ohm_bind_host_leave(s.h);
    CHECK(!ohm_bind_host_is_current(s.h));

    /* Not entered on this thread: the spill does not run, the acquire fails with a clear reason. */
    s.a.fail = 0;
    int calls = s.a.calls;
    CHECK_EQ_INT(ohm_consumer_acquire(s.b.self, 400), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "its host is not running here");
    CHECK_EQ_INT(s.a.calls, calls);
    CHECK_EQ_U64(ohm_consumer_used(s.a.self) + ohm_consumer_used(s.b.self), 1000);

    /* Destroying the host first: the consumers keep it alive, and their spills fail instead of crashing. */
    CHECK_EQ_INT(ohm_bind_host_destroy(s.h), 0);
    CHECK_EQ_INT(ohm_consumer_acquire(s.b.self, 400), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "its host was destroyed");
    CHECK_EQ_INT(ohm_bind_consumer_destroy(s.a.self), 0);
    CHECK_EQ_INT(ohm_bind_consumer_destroy(s.b.self), 0);
    CHECK_EQ_INT(ohm_task_end(s.t), 0);
    CHECK_EQ_INT(ohm_mm_destroy(s.mm), 0);
}

static void test_task_end_frees_the_records_of_consumers_still_holding_memory(void)
{
    ohm_mm *mm = small_manager();
    ohm_bind_host *h = ohm_bind_host_create(&owner_ops, NULL);
    if (!CHECK_NOT_NULL(mm) || !CHECK_NOT_NULL(h)) return;
    ohm_task *t = ohm_task_create(mm, 7);
    spiller a = {0};
    a.self = ohm_bind_consumer_create(h, t, OHM_ON_HEAP, "holder", spill_cb, &a);
    if (!CHECK_NOT_NULL(a.self)) return;
    CHECK_EQ_INT(ohm_consumer_acquire(a.self, 300), 300);
    /* Ended without destroying the consumer: 300 bytes leaked by the task, and the binding's record (with its
     * reference on the host) freed with the core's consumer; LeakSanitizer checks the record in the ASan run. */
    CHECK_EQ_INT(ohm_task_end(t), 300);
    CHECK_EQ_INT(ohm_bind_host_destroy(h), 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

static void *acquire_elsewhere(void *arg)
{
    spiller *b = arg;
    return (void *)(intptr_t)ohm_consumer_acquire(b->self, 400);
}

static void test_spill_is_refused_on_another_thread_while_the_owner_runs(void)
{
    two_spill s;
    if (!two_spillers(&s)) return;
    ohm_bind_host_enter(s.h); /* the owner runs here; the other thread is not the owner */
    CHECK_EQ_INT(ohm_consumer_acquire(s.a.self, 1000), 1000);
    pthread_t th;
    void *rc;
    pthread_create(&th, NULL, acquire_elsewhere, &s.b);
    pthread_join(th, &rc);
    CHECK_EQ_INT((intptr_t)rc, OHM_ECALLBACK);
    CHECK_EQ_INT(s.a.calls, 0);
    ohm_bind_host_leave(s.h);
    ohm_bind_consumer_destroy(s.a.self);
    ohm_bind_consumer_destroy(s.b.self);
    ohm_task_end(s.t);
    ohm_bind_host_destroy(s.h);
    ohm_mm_destroy(s.mm);
}

typedef struct evicted {
    int calls;
    int fail;
    char last[32];
} evicted;

static int evict_cb(void *ctx, const char *block_id, ohm_buf *buf)
{
    evicted *e = ctx;
    (void)buf;
    e->calls++;
    snprintf(e->last, sizeof e->last, "%s", block_id);
    return e->fail ? ohm_bind_fail(OHM_ECALLBACK, "listener threw: no space") : 0;
}

static void test_eviction_listener_runs_in_the_host_and_its_failure_keeps_the_block(void)
{
    ohm_mm *mm = small_manager();
    ohm_bind_host *h = ohm_bind_host_create(&owner_ops, NULL);
    if (!CHECK_NOT_NULL(mm) || !CHECK_NOT_NULL(h)) return;
    evicted e = {0};
    ohm_bind_evictor *ev = ohm_bind_evictor_create(h, evict_cb, &e);
    if (!CHECK_NOT_NULL(ev)) return;
    ohm_bind_host_enter(h);
    CHECK_EQ_INT(ohm_block_put(mm, "rdd_1", NULL, OHM_ON_HEAP, NULL, 600, ohm_bind_evict, ev), 0);
    e.fail = 1;
    CHECK_EQ_INT(ohm_block_put(mm, "rdd_2", NULL, OHM_ON_HEAP, NULL, 600, ohm_bind_evict, ev), OHM_ECALLBACK);
    CHECK_STR_CONTAINS(ohm_last_error(), "eviction of block rdd_1 failed: listener threw: no space");
    e.fail = 0;
    CHECK_EQ_INT(ohm_block_put(mm, "rdd_2", NULL, OHM_ON_HEAP, NULL, 600, ohm_bind_evict, ev), 0);
    CHECK_EQ_INT(e.calls, 2);
    CHECK_STR_CONTAINS(e.last, "rdd_1");
    ohm_bind_host_leave(h);
    /* Not entered: the eviction is refused and rdd_2 stays. */
    CHECK_EQ_INT(ohm_block_put(mm, "rdd_3", NULL, OHM_ON_HEAP, NULL, 600, ohm_bind_evict, ev), OHM_ECALLBACK);
    CHECK_EQ_INT(e.calls, 2);
    CHECK_EQ_INT(ohm_block_remove(mm, "rdd_2"), 0);
    ohm_bind_evictor_destroy(ev);
    CHECK_EQ_INT(ohm_bind_host_destroy(h), 0);
    CHECK_EQ_INT(ohm_mm_destroy(mm), 0);
}

/* ---- leak routing ---- */

typedef struct leak_sink {
    int calls;
    char text[2048], json[2048], site[256];
    uint64_t id;
    pthread_t thread;
} leak_sink;

static void leak_cb(void *arg, const ohm_bind_leak *r)
{
    leak_sink *s = arg;
    s->calls++;
    s->id = r->buffer_id;
    s->thread = pthread_self();
    snprintf(s->text, sizeof s->text, "%s", r->text);
    snprintf(s->json, sizeof s->json, "%s", r->json);
    snprintf(s->site, sizeof s->site, "%s", r->host_site ? r->host_site : "");
}

/* Leak checking at its strictest, and a host with these ops (which must outlive it) and context. */
static ohm_bind_host *paranoid_host(const ohm_bind_host_ops *ops, void *ctx)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_bind_host *h = ohm_bind_host_create(ops, ctx);
    CHECK_NOT_NULL(h);
    return h;
}

static ohm_buf *tracked_buf(const char *site)
{
    ohm_buf *b = ohm_buf_alloc(NULL, 48);
    if (b && site) ohm_buf_set_site(b, site);
    return b;
}

static void test_leak_reports_go_to_the_host_running_on_the_thread(void)
{
    leak_sink sink = {0};
    ohm_bind_host *h = paranoid_host(&(ohm_bind_host_ops){OHM_BIND_OWNER_THREAD, NULL, NULL, leak_cb}, &sink);
    if (!h) return;
    ohm_buf *b = tracked_buf("stack traceback:\n\tscript.lua:3: in main chunk");
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    ohm_bind_host_enter(h);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 1); /* what a __gc does inside the host */
    ohm_bind_host_leave(h);
    CHECK_EQ_INT(sink.calls, 1);
    CHECK_EQ_U64(sink.id, id);
    CHECK_STR_CONTAINS(sink.site, "script.lua:3");
    CHECK_STR_CONTAINS(sink.text, "script.lua:3");
    CHECK_STR_CONTAINS(sink.json, "\"reason\":\"gc\"");

    /* A checkpoint delivers to the host named. */
    uint64_t mark = ohm_leak_mark();
    ohm_buf *live = tracked_buf("checkpoint site");
    ohm_bind_host_enter(h);
    CHECK_EQ_INT(ohm_bind_leak_check(h, mark), 1);
    ohm_bind_host_leave(h);
    CHECK_EQ_INT(sink.calls, 2);
    CHECK_STR_CONTAINS(sink.json, "checkpoint");
    ohm_buf_release(live, 1);
    CHECK_EQ_INT(ohm_bind_host_destroy(h), 0);
    ohm_leak_set_level(OHM_LEAK_OFF);
}

static void test_reports_for_an_owner_that_is_not_running_wait_for_its_next_enter(void)
{
    leak_sink sink = {0};
    ohm_bind_host *h = paranoid_host(&(ohm_bind_host_ops){OHM_BIND_OWNER_THREAD, NULL, NULL, leak_cb}, &sink);
    if (!h) return;
    ohm_bind_host_set_default(h);
    ohm_buf *b = tracked_buf("queued site");
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 1); /* no host entered here: queued for h */
    CHECK_EQ_INT(sink.calls, 0);
    CHECK_EQ_INT(ohm_bind_host_drain(h), 0); /* not running here either */
    ohm_bind_host_enter(h);                  /* delivers */
    CHECK_EQ_INT(sink.calls, 1);
    CHECK_EQ_U64(sink.id, id);
    CHECK_STR_CONTAINS(sink.site, "queued site");
    ohm_bind_host_leave(h);

    /* Destroyed with a report still queued: dropped, and the log says so. */
    b = tracked_buf(NULL);
    CHECK_EQ_INT(ohm_buf_reclaim(b, ohm_buf_id(b)), 1);
    int logs = atomic_load(&log_calls);
    CHECK_EQ_INT(ohm_bind_host_destroy(h), 0);
    CHECK(atomic_load(&log_calls) > logs);
    CHECK_STR_CONTAINS(logged, "1 leak reports it never received");
    CHECK_EQ_INT(sink.calls, 1);

    /* No default host: the log. */
    b = tracked_buf(NULL);
    logs = atomic_load(&log_calls);
    CHECK_EQ_INT(ohm_buf_reclaim(b, ohm_buf_id(b)), 1);
    CHECK(atomic_load(&log_calls) > logs);
    CHECK_STR_CONTAINS(logged, "LEAK");
    ohm_leak_set_level(OHM_LEAK_OFF);
}

typedef struct attacher {
    atomic_int attaches, detaches;
    int refuse;
} attacher;

static int attach_cb(void *arg, void **token)
{
    attacher *a = arg;
    if (a->refuse) return ohm_bind_fail(OHM_ECALLBACK, "JVM is shutting down");
    atomic_fetch_add(&a->attaches, 1);
    *token = a;
    return 0;
}

static void detach_cb(void *arg, void *token)
{
    attacher *a = arg;
    if (token == a) atomic_fetch_add(&a->detaches, 1);
}

static leak_sink any_sink;

static void any_leak_cb(void *arg, const ohm_bind_leak *r)
{
    leak_cb(&any_sink, r);
    (void)arg;
}

static void *reclaim_elsewhere(void *arg)
{
    ohm_buf *b = arg;
    return (void *)(intptr_t)ohm_buf_reclaim(b, ohm_buf_id(b));
}

static void test_any_thread_host_is_attached_around_each_callback(void)
{
    attacher at = {0};
    ohm_bind_host *h = paranoid_host(&(ohm_bind_host_ops){OHM_BIND_ANY_THREAD, attach_cb, detach_cb, any_leak_cb}, &at);
    if (!h) return;
    ohm_bind_host_set_default(h);
    CHECK(ohm_bind_host_is_current(h));
    ohm_buf *b = tracked_buf("at App.main(App.java:5)");
    if (!CHECK_NOT_NULL(b)) return;
    pthread_t th;
    void *rc;
    pthread_create(&th, NULL, reclaim_elsewhere, b); /* a Cleaner thread, say */
    pthread_join(th, &rc);
    CHECK_EQ_INT((intptr_t)rc, 1);
    CHECK_EQ_INT(any_sink.calls, 1);
    CHECK(pthread_equal(any_sink.thread, th));
    CHECK_STR_CONTAINS(any_sink.site, "App.java:5");
    CHECK_EQ_INT(atomic_load(&at.attaches), 1);
    CHECK_EQ_INT(atomic_load(&at.detaches), 1);

    /* The host cannot attach: the report goes to the log rather than being lost. */
    at.refuse = 1;
    b = tracked_buf(NULL);
    int logs = atomic_load(&log_calls);
    CHECK_EQ_INT(ohm_buf_reclaim(b, ohm_buf_id(b)), 1);
    CHECK_EQ_INT(any_sink.calls, 1);
    CHECK(atomic_load(&log_calls) > logs);
    ohm_bind_host_set_default(NULL);
    CHECK_EQ_INT(ohm_bind_host_destroy(h), 0);
    CHECK_EQ_INT(ohm_bind_host_destroy(NULL), OHM_EINVAL);
    ohm_leak_set_level(OHM_LEAK_OFF);
}

static void test_host_arguments_are_checked(void)
{
    CHECK_NULL(ohm_bind_host_create(NULL, NULL));
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    ohm_bind_host_ops bad = {(ohm_bind_threads)7, NULL, NULL, NULL};
    CHECK_NULL(ohm_bind_host_create(&bad, NULL));
    CHECK_NULL(ohm_bind_consumer_create(NULL, NULL, OHM_ON_HEAP, "x", NULL, NULL));
    CHECK_NULL(ohm_bind_evictor_create(NULL, evict_cb, NULL));
    CHECK_EQ_INT(ohm_bind_consumer_destroy(NULL), OHM_EINVAL);
    CHECK(!ohm_bind_host_is_current(NULL));
    CHECK_NULL(ohm_bind_consumer_ctx(NULL));
}

int main(void)
{
    ohm_set_log_handler(capture_log, NULL);
    ohm_leak_set_level(OHM_LEAK_OFF);
    RUN(test_error_table_names_kind_class_and_raise);
    RUN(test_every_listed_code_has_its_strerror_and_host_row);
    RUN(test_message_is_the_detail_for_that_code_else_strerror);
    RUN(test_public_error_log_and_flag_helpers_for_bindings);
    RUN(test_sizes_from_hosts_are_checked);
    RUN(test_ranges_from_hosts_are_checked);
    RUN(test_typed_values_round_trip_in_both_orders);
    RUN(test_bad_access_fails_and_changes_nothing);
    RUN(test_bits_match_a_bit_by_bit_reference);
    RUN(test_copy_fill_find_and_compare);
    RUN(test_spill_runs_in_an_entered_host_and_names_the_trigger);
    RUN(test_spill_is_refused_on_another_thread_while_the_owner_runs);
    RUN(test_task_end_frees_the_records_of_consumers_still_holding_memory);
    RUN(test_eviction_listener_runs_in_the_host_and_its_failure_keeps_the_block);
    RUN(test_leak_reports_go_to_the_host_running_on_the_thread);
    RUN(test_reports_for_an_owner_that_is_not_running_wait_for_its_next_enter);
    RUN(test_any_thread_host_is_attached_around_each_callback);
    RUN(test_host_arguments_are_checked);
    return check_summary();
}
