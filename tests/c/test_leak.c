/* The leak detector's promises (leak.c): levels and sampling, creation sites with native frames and host
 * text, access records (4 kept, the newest always, the dropped counted), de-duplication, checkpoints,
 * handlers that call back into ohm, JSON, threads at PARANOID, and the Cleaner protocol end to end.
 *
 * White-box tests call leak.h directly through fake_buf_* (one noinline frame, as buf.c's caller would be),
 * so the frame skipping sees the same depth as with real buffers. */
#define _GNU_SOURCE
#include "../check.h"
#include "fixture.h"
#include "leak.h"
#include "ohm.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- stand-ins for buf.c: one frame between the caller and leak.c ---- */

static OHM_NOINLINE leak_track *fake_buf_alloc(size_t size, const char *pool)
{
    leak_track *t = leak_track_maybe(0, 0x1000 + size, size, OHM_ORIGIN_POOL, pool);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame, as buf.c has one */
    return t;
}

/* A site that allocates: a function of its own (not inlined, no tail call), so its return address names it. */
#define LEAK_SITE(name, size, pool)                     \
    static OHM_NOINLINE leak_track *name(void)          \
    {                                                   \
        leak_track *t = fake_buf_alloc((size), (pool)); \
        __asm__ volatile("" ::: "memory");              \
        return t;                                       \
    }

static OHM_NOINLINE void fake_buf_touch(leak_track *t, const char *hint)
{
    leak_track_touch(t, hint);
    __asm__ volatile("" ::: "memory");
}

/* ---- a handler that keeps copies of what it was given ---- */

typedef struct captured {
    pthread_mutex_t lock;
    unsigned calls;
    ohm_leak_report last; /* strings below are owned copies */
    char *text, *pool, *host_site, *hints[OHM_LEAK_MAX_RECORDS];
    char json[8192];
    size_t json_len;
    size_t sizes[64];
    ohm_leak_reason reasons[64];
} captured;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void cap_reset(captured *c)
{
    free(c->text);
    free(c->pool);
    free(c->host_site);
    for (int i = 0; i < OHM_LEAK_MAX_RECORDS; i++) free(c->hints[i]);
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

static void cap_handler(void *arg, const ohm_leak_report *r)
{
    captured *c = arg;
    pthread_mutex_lock(&c->lock);
    if (c->calls < 64) {
        c->sizes[c->calls] = r->size;
        c->reasons[c->calls] = r->reason;
    }
    c->calls++;
    free(c->text);
    free(c->pool);
    free(c->host_site);
    for (int i = 0; i < OHM_LEAK_MAX_RECORDS; i++) free(c->hints[i]);
    c->last = *r;
    c->text = dup_or_null(r->text);
    c->pool = dup_or_null(r->pool);
    c->host_site = dup_or_null(r->created.host_site);
    for (unsigned i = 0; i < OHM_LEAK_MAX_RECORDS; i++)
        c->hints[i] = i < r->nrecords ? dup_or_null(r->records[i].hint) : NULL;
    /* The report is valid during the call only: point the kept copy at our own strings. */
    c->last.text = c->text;
    c->last.pool = c->pool;
    c->last.created.host_site = c->host_site;
    for (unsigned i = 0; i < OHM_LEAK_MAX_RECORDS; i++) c->last.records[i].hint = c->hints[i];
    c->json_len = ohm_leak_report_json(r, c->json, sizeof c->json);
    pthread_mutex_unlock(&c->lock);
}

static captured cap;

/* Tracks every allocation from here on, reports to cap. */
static void paranoid_capture(void)
{
    cap_reset(&cap);
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_leak_set_handler(cap_handler, &cap);
}

/* The fixture pool under this name, its reports (and every other) captured as paranoid_capture does. */
static ohm_pool *paranoid_pool(const char *name)
{
    paranoid_capture();
    return fixture_named_pool(name);
}

/* ---- a log handler that keeps messages ---- */

static fixture_log logged = FIXTURE_LOG(OHM_LOG_WARN);

/* ---- settings ---- */

/* Child mode (see main): prints nothing, exits with level + 4*(a warning was logged) + 8*(interval wrong). */
static int env_child(const char *want_interval)
{
    ohm_set_log_handler(fixture_log_handler, &logged);
    ohm_leak_level level = ohm_leak_get_level();
    uint32_t interval = ohm_leak_get_sample_interval();
    return (int)level + (logged.count ? 4 : 0) + (interval != (uint32_t)strtoul(want_interval, NULL, 10) ? 8 : 0);
}

/* Runs this executable in child mode with OHM_LEAK_LEVEL / OHM_LEAK_SAMPLE set (NULL = unset): a fresh process
 * reads them at its first use. */
static int run_env_child(const char *level, const char *sample, const char *want_interval)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (level) setenv("OHM_LEAK_LEVEL", level, 1);
        else unsetenv("OHM_LEAK_LEVEL");
        if (sample) setenv("OHM_LEAK_SAMPLE", sample, 1);
        else unsetenv("OHM_LEAK_SAMPLE");
        char *argv[] = {"test_leak", "--env-child", (char *)want_interval, NULL};
        execv("/proc/self/exe", argv);
        _exit(99);
    }
    int st = 0;
    if (!CHECK(pid > 0) || !CHECK_EQ_INT(waitpid(pid, &st, 0), pid) || !CHECK(WIFEXITED(st))) return -1;
    return WEXITSTATUS(st);
}

static void test_env_sets_level_and_interval_at_first_use(void)
{
    CHECK_EQ_INT(run_env_child(NULL, NULL, "128"), OHM_LEAK_SIMPLE);
    CHECK_EQ_INT(run_env_child("paranoid", NULL, "128"), OHM_LEAK_PARANOID);
    CHECK_EQ_INT(run_env_child("ADVANCED", "7", "7"), OHM_LEAK_ADVANCED);
    CHECK_EQ_INT(run_env_child("Off", NULL, "128"), OHM_LEAK_OFF);
    CHECK_EQ_INT(run_env_child("simple", "0", "1"), OHM_LEAK_SIMPLE);
}

static void test_env_malformed_values_warn_and_keep_defaults(void)
{
    CHECK_EQ_INT(run_env_child("loud", NULL, "128"), OHM_LEAK_SIMPLE + 4);
    CHECK_EQ_INT(run_env_child("paranoid!", NULL, "128"), OHM_LEAK_SIMPLE + 4);
    CHECK_EQ_INT(run_env_child("advanced", "lots", "128"), OHM_LEAK_ADVANCED + 4);
}

static void test_level_and_interval_change_at_run_time(void)
{
    for (int l = OHM_LEAK_OFF; l <= OHM_LEAK_PARANOID; l++) {
        ohm_leak_set_level((ohm_leak_level)l);
        CHECK_EQ_INT(ohm_leak_get_level(), l);
    }
    ohm_leak_set_level((ohm_leak_level)7);
    CHECK_EQ_INT(ohm_last_error_code(), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_get_level(), OHM_LEAK_PARANOID);
    ohm_leak_set_sample_interval(77);
    CHECK_EQ_U64(ohm_leak_get_sample_interval(), 77);
    CHECK_EQ_INT(ohm_leak_get_level(), OHM_LEAK_PARANOID); /* one setting does not clobber the other */
    ohm_leak_set_sample_interval(0);
    CHECK_EQ_U64(ohm_leak_get_sample_interval(), 1);
    ohm_leak_set_sample_interval(UINT32_MAX);
    CHECK_EQ_U64(ohm_leak_get_sample_interval(), UINT32_MAX);
    ohm_leak_set_sample_interval(128);
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
}

/* ---- sampling ---- */

static unsigned count_tracked(unsigned n, leak_track **keep)
{
    unsigned tracked = 0;
    for (unsigned i = 0; i < n; i++) {
        leak_track *t = fake_buf_alloc(16, "p");
        if (keep) keep[i] = t;
        else leak_track_close(t);
        tracked += t != NULL;
    }
    return tracked;
}

static void test_simple_tracks_exactly_one_in_interval(void)
{
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
    ohm_leak_set_sample_interval(4);
    /* Align with this thread's countdown: the next allocation after a tracked one starts a period. */
    unsigned skipped = 0;
    while (count_tracked(1, NULL) == 0 && skipped < 10) skipped++;
    CHECK(skipped < 4);
    leak_track *t[400];
    CHECK_EQ_INT(count_tracked(400, t), 100);
    for (unsigned i = 0; i < 400; i++) {
        CHECK_EQ_INT(t[i] != NULL, i % 4 == 3); /* exactly every 4th */
        leak_track_close(t[i]);
    }
    ohm_leak_set_sample_interval(1);
    CHECK_EQ_INT(count_tracked(50, NULL), 50);
    ohm_leak_set_sample_interval(128);
}

static void test_paranoid_tracks_all_and_off_none(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    CHECK_EQ_INT(count_tracked(300, NULL), 300);
    ohm_leak_set_level(OHM_LEAK_OFF);
    CHECK_EQ_INT(count_tracked(300, NULL), 0);
    ohm_leak_set_level(OHM_LEAK_ADVANCED);
    ohm_leak_set_sample_interval(3);
    unsigned n = count_tracked(300, NULL);
    CHECK(n == 100 || n == 101);
    ohm_leak_set_sample_interval(128);
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
}

/* ---- report content ---- */

/* Whether addr lies in fn's code: fn is small and noinline, so its return addresses are within 256 bytes. */
static bool in_function(void *addr, void *fn) { return (char *)addr > (char *)fn && (char *)addr < (char *)fn + 256; }

LEAK_SITE(site_report, 64, "testpool")

static void test_leaked_report_names_size_pool_reason_site_and_frames(void)
{
    paranoid_capture();
    leak_track *t = site_report();
    if (!CHECK_NOT_NULL(t)) return;
    leak_track_set_site(t, "at com.example.Foo.bar(Foo.java:42)\nat com.example.Main.main(Main.java:7)");
    fake_buf_touch(t, "first-touch"); /* PARANOID keeps access records */
    leak_track_leaked(t, OHM_LEAK_GC);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_GC);
    CHECK_EQ_U64(cap.last.size, 64);
    CHECK_EQ_U64(cap.last.buffer_id, 0x1000 + 64);
    CHECK_EQ_INT(cap.last.origin, OHM_ORIGIN_POOL);
    CHECK_STR_CONTAINS(cap.pool, "testpool");
    CHECK_STR_CONTAINS(cap.host_site, "Foo.java:42");
    CHECK(cap.last.created.nframes > 0);
    CHECK(cap.last.created.time_ns > 0);
    CHECK(cap.last.created.thread != 0);
    /* The innermost kept frame is the site that allocated (leak.c and the buf.c stand-in skipped), and the
     * next one is this test. */
    CHECK(in_function(cap.last.created.frames[0], (void *)site_report));
    Dl_info self, fr;
    CHECK(dladdr((void *)site_report, &self) && dladdr(cap.last.created.frames[0], &fr));
    CHECK(self.dli_fname && fr.dli_fname && strcmp(self.dli_fname, fr.dli_fname) == 0);
    CHECK_EQ_INT(cap.last.nrecords, 1);
    CHECK_STR_CONTAINS(cap.hints[0], "first-touch");
    CHECK(cap.last.records[0].nframes > 0);
    CHECK_STR_CONTAINS(cap.text, "LEAK: ohm_buf of 64 bytes (pool 'testpool'");
    CHECK_STR_CONTAINS(cap.text, "was not released before it was garbage-collected");
    CHECK_STR_CONTAINS(cap.text, "Recent access records:\n#1: Hint: first-touch\n");
    CHECK_STR_CONTAINS(cap.text, "Created at:\n\tat com.example.Foo.bar(Foo.java:42)\n\tat com.example.Main");
    CHECK_STR_CONTAINS(cap.text, "test_leak"); /* symbolized frames name the executable */
    ohm_leak_set_handler(NULL, NULL);
}

/* ---- access records ---- */

LEAK_SITE(site_records, 32, NULL)

static void test_advanced_keeps_four_records_newest_last_and_counts_dropped(void)
{
    paranoid_capture();
    ohm_leak_set_level(OHM_LEAK_ADVANCED);
    ohm_leak_set_sample_interval(1);
    leak_track *t = site_records();
    if (!CHECK_NOT_NULL(t)) return;
    char hint[16];
    for (int i = 0; i < 10; i++) {
        snprintf(hint, sizeof hint, "h%d", i);
        fake_buf_touch(t, hint);
    }
    leak_track_leaked(t, OHM_LEAK_POOL_DESTROY);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_POOL_DESTROY);
    CHECK_EQ_INT(cap.last.nrecords, 4);
    CHECK_EQ_U64(cap.last.dropped, 6);
    CHECK_STR_CONTAINS(cap.hints[3], "h9");
    int prev = -1;
    for (int i = 0; i < 4; i++) { /* oldest first, all distinct */
        int k = cap.hints[i] ? atoi(cap.hints[i] + 1) : -1;
        CHECK(k > prev);
        prev = k;
    }
    CHECK_STR_CONTAINS(cap.text, "#1: Hint: h9\n");
    CHECK_STR_CONTAINS(cap.text, "6 older access records were dropped");
    CHECK_STR_CONTAINS(cap.text, "its pool was destroyed");
    CHECK(cap.pool == NULL);
    ohm_leak_set_handler(NULL, NULL);
    ohm_leak_set_sample_interval(128);
}

/* Which 4 of 5 records survive: the 5th replaces the newest (h3) with probability 1/2, else h0 goes. */
static void count_survivor(void *arg, const ohm_leak_report *r)
{
    unsigned *kept_h3 = arg;
    if (r->nrecords == 4 && r->records[3].hint && strcmp(r->records[3].hint, "h4") == 0)
        kept_h3[strcmp(r->records[2].hint, "h3") == 0]++;
}

static void test_fifth_record_replaces_newest_half_the_time(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    unsigned kept_h3[2] = {0, 0};
    const char *hints[] = {"h0", "h1", "h2", "h3", "h4"};
    for (int trial = 0; trial < 1000; trial++) {
        uint64_t mark = ohm_leak_mark();
        leak_track *t = fake_buf_alloc(8, NULL);
        if (!CHECK_NOT_NULL(t)) return;
        for (int i = 0; i < 5; i++) leak_track_touch(t, hints[i]);
        CHECK_EQ_INT(ohm_leak_check(mark, count_survivor, kept_h3), 1);
        leak_track_close(t);
    }
    CHECK_EQ_INT(kept_h3[0] + kept_h3[1], 1000); /* h4, the newest, always kept */
    CHECK(kept_h3[0] > 400 && kept_h3[0] < 600);
}

static void test_simple_keeps_no_access_records(void)
{
    paranoid_capture();
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
    ohm_leak_set_sample_interval(1);
    leak_track *t = fake_buf_alloc(48, NULL);
    if (!CHECK_NOT_NULL(t)) return;
    for (int i = 0; i < 3; i++) fake_buf_touch(t, "ignored");
    leak_track_leaked(t, OHM_LEAK_GC);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.nrecords, 0);
    CHECK_EQ_U64(cap.last.dropped, 0);
    CHECK_STR_CONTAINS(cap.text, "OHM_LEAK_LEVEL=advanced");
    CHECK(strstr(cap.text, "ignored") == NULL);
    ohm_leak_set_handler(NULL, NULL);
    ohm_leak_set_sample_interval(128);
}

/* ---- de-duplication ---- */

LEAK_SITE(site_dup, 100, "dup")
LEAK_SITE(site_other, 200, "dup")

static void test_identical_reports_are_delivered_once_and_counted(void)
{
    paranoid_capture();
    leak_track *t[3];
    volatile int n = 3; /* a loop the compiler cannot unroll: one call site, three times */
    for (int i = 0; i < n; i++) t[i] = site_dup();
    for (int i = 0; i < 3; i++) leak_track_leaked(t[i], OHM_LEAK_GC);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_U64(cap.last.duplicates, 0);
    /* A different host site is a different report. */
    leak_track *u = site_dup();
    leak_track_set_site(u, "elsewhere");
    leak_track_leaked(u, OHM_LEAK_GC);
    CHECK_EQ_INT(cap.calls, 2);
    CHECK_EQ_U64(cap.last.duplicates, 2); /* the two suppressed ones */
    leak_track *v = site_other();
    leak_track_leaked(v, OHM_LEAK_GC);
    CHECK_EQ_INT(cap.calls, 3);
    CHECK_EQ_U64(cap.last.duplicates, 0);
    CHECK_EQ_U64(cap.last.size, 200);
    ohm_leak_set_handler(NULL, NULL);
}

/* ---- checkpoints ---- */

static void test_checkpoint_reports_live_records_since_mark_without_removing_them(void)
{
    paranoid_capture();
    leak_track *before = fake_buf_alloc(1, NULL);
    uint64_t mark = ohm_leak_mark();
    leak_track *t[3];
    for (int i = 0; i < 3; i++) t[i] = fake_buf_alloc(10 + (size_t)i, "cp");
    leak_track_close(t[1]);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 2);
    CHECK_EQ_INT(cap.calls, 2);
    CHECK_EQ_INT(cap.reasons[0], OHM_LEAK_CHECKPOINT);
    CHECK_EQ_INT(cap.reasons[1], OHM_LEAK_CHECKPOINT);
    CHECK_EQ_U64(cap.sizes[0], 10); /* creation order */
    CHECK_EQ_U64(cap.sizes[1], 12);
    CHECK_STR_CONTAINS(cap.text, "before the leak checkpoint");
    /* Still live: a second check reports them again (no de-duplication, nothing removed). */
    CHECK_EQ_INT(ohm_leak_check(mark, NULL, NULL), 2); /* NULL fn: the handler (cap) */
    CHECK_EQ_INT(cap.calls, 4);
    leak_track_close(t[0]);
    leak_track_close(t[2]);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 0);
    CHECK_EQ_INT(cap.calls, 4);
    CHECK(ohm_leak_check(0, cap_handler, &cap) >= 1); /* `before` is still there */
    leak_track_close(before);
    CHECK(ohm_leak_mark() > mark);
    ohm_leak_set_handler(NULL, NULL);
}

/* ---- re-entrant handlers ---- */

static void count_only(void *arg, const ohm_leak_report *r)
{
    (void)r;
    ++*(unsigned *)arg;
}

static unsigned reentrant_calls, reentrant_seen;

static void reentrant_handler(void *arg, const ohm_leak_report *r)
{
    (void)arg;
    (void)r;
    reentrant_calls++;
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_leak_set_sample_interval(128);
    leak_track *t = fake_buf_alloc(5, "inner"); /* allocating from a handler */
    fake_buf_touch(t, "inner");
    ohm_leak_check(0, count_only, &reentrant_seen);
    ohm_leak_set_handler(reentrant_handler, NULL);
    leak_track_close(t);
}

LEAK_SITE(site_reentrant, 77, NULL)

static void test_handler_may_call_back_into_the_detector(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_leak_set_handler(reentrant_handler, NULL);
    leak_track *t = site_reentrant();
    uint64_t mark = ohm_leak_mark();
    leak_track *u = fake_buf_alloc(6, NULL);
    leak_track_leaked(t, OHM_LEAK_GC); /* would deadlock if a lock were held around the handler */
    CHECK_EQ_INT(reentrant_calls, 1);
    CHECK(reentrant_seen >= 2);                        /* u and the handler's own */
    CHECK_EQ_INT(ohm_leak_check(mark, NULL, NULL), 1); /* u, through the re-entrant handler again */
    CHECK_EQ_INT(reentrant_calls, 2);
    leak_track_close(u);
    ohm_leak_set_handler(NULL, NULL);
}

/* ---- the default handler: the log ---- */

LEAK_SITE(site_log, 4096, "logged")

static void test_default_handler_logs_the_text_in_pieces(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    ohm_leak_set_handler(NULL, NULL);
    ohm_set_log_handler(fixture_log_handler, &logged);
    fixture_log_reset(&logged);
    leak_track *t = site_log();
    char site[3000];
    for (size_t i = 0; i < sizeof site - 1; i++) site[i] = (i % 60 == 59) ? '\n' : 'x';
    site[sizeof site - 1] = '\0';
    leak_track_set_site(t, site);
    leak_track_leaked(t, OHM_LEAK_GC);
    ohm_set_log_handler(NULL, NULL);
    CHECK(logged.count >= 4); /* longer than one log message: cut at line ends */
    CHECK_STR_CONTAINS(logged.text, "LEAK: ohm_buf of 4096 bytes (pool 'logged'");
    CHECK_STR_CONTAINS(logged.text, "LEAK (continued): ");
}

static void test_untracked_leaks_are_summarized_at_powers_of_ten(void)
{
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
    ohm_set_log_handler(fixture_log_handler, &logged);
    fixture_log_reset(&logged);
    leak_untracked(OHM_LEAK_GC, 64); /* the first */
    CHECK_EQ_INT(logged.count, 1);
    CHECK_STR_CONTAINS(logged.text, "1 leaked buffers were not tracked");
    CHECK_STR_CONTAINS(logged.text, "set OHM_LEAK_LEVEL=paranoid");
    for (int i = 0; i < 8; i++) leak_untracked(OHM_LEAK_POOL_DESTROY, 8);
    CHECK_EQ_INT(logged.count, 1);
    leak_untracked(OHM_LEAK_GC, 64); /* the tenth */
    CHECK_EQ_INT(logged.count, 2);
    CHECK_STR_CONTAINS(logged.text, "10 leaked buffers were not tracked (2 garbage-collected, 8 at pool destruction");
    ohm_set_log_handler(NULL, NULL);
}

/* ---- JSON ---- */

/* A small structural check: strings closed with valid escapes and no raw control characters, braces and
 * brackets balanced and properly nested outside strings. */
static bool json_well_formed(const char *s)
{
    char stack[64];
    int depth = 0;
    for (; *s; s++) {
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (!*s || (unsigned char)*s < 0x20) return false;
                if (*s == '\\') {
                    s++;
                    if (!strchr("\"\\/bfnrtu", *s)) return false;
                }
            }
        } else if (*s == '{' || *s == '[') {
            if (depth == 64) return false;
            stack[depth++] = *s;
        } else if (*s == '}' || *s == ']') {
            if (!depth || stack[--depth] != (*s == '}' ? '{' : '[')) return false;
        }
    }
    return depth == 0;
}

static void test_json_is_well_formed_escaped_and_sized_like_snprintf(void)
{
    paranoid_capture();
    leak_track *t = fake_buf_alloc(64, "j\"son");
    if (!CHECK_NOT_NULL(t)) return;
    leak_track_set_site(t, "say \"quotes\"\n\ttab \\ back\x01");
    fake_buf_touch(t, "hint\"1");
    fake_buf_touch(t, NULL);
    leak_track_leaked(t, OHM_LEAK_GC);
    if (!CHECK_EQ_INT(cap.calls, 1)) return;
    const char *j = cap.json;
    CHECK(cap.json_len == strlen(j));
    CHECK(json_well_formed(j));
    CHECK_STR_CONTAINS(j,
                       "{\"reason\":\"gc\",\"buffer_id\":4160,\"size\":64,\"origin\":\"pool\",\"pool\":\"j\\\"son\"");
    CHECK_STR_CONTAINS(j, "\"created\":{\"host_site\":\"say \\\"quotes\\\"\\n\\ttab \\\\ back\\u0001\",\"hint\":null,");
    CHECK_STR_CONTAINS(j, "\"frames\":[\"0x");
    CHECK_STR_CONTAINS(j, "\"records\":[{\"hint\":\"hint\\\"1\"");
    CHECK_STR_CONTAINS(j, "{\"hint\":null,\"frames\"");
    CHECK_STR_CONTAINS(j, "\"dropped\":0,\"duplicates\":");
    /* Truncation: same length returned, NUL-terminated inside cap. */
    char small[16];
    memset(small, 'Z', sizeof small);
    CHECK_EQ_U64(ohm_leak_report_json(&cap.last, small, sizeof small), cap.json_len);
    CHECK_EQ_INT(small[15], '\0');
    CHECK(strncmp(small, cap.json, 15) == 0);
    CHECK_EQ_U64(ohm_leak_report_json(&cap.last, NULL, 0), cap.json_len);
    ohm_leak_set_handler(NULL, NULL);
}

/* ---- threads ---- */

#define SHARED 8
static leak_track *shared_tracks[SHARED];
static _Atomic int threads_done;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char hint[32];
    for (int i = 0; i < 3000; i++) {
        leak_track *t = fake_buf_alloc(16 + (size_t)(i & 63), "threads");
        int touches = (int)(rand_r(&seed) % 7);
        for (int k = 0; k < touches; k++) {
            snprintf(hint, sizeof hint, "t%u-%d", seed & 0xff, k);
            fake_buf_touch(t, hint);
        }
        if (i % 5 == 0) leak_track_set_site(t, "site");
        fake_buf_touch(shared_tracks[rand_r(&seed) % SHARED], "shared"); /* races with the other threads */
        if (i % 11 == 0) leak_track_set_site(shared_tracks[i % SHARED], "shared site");
        leak_track_close(t);
    }
    atomic_fetch_add(&threads_done, 1);
    return NULL;
}

static void test_four_threads_create_touch_and_close_at_paranoid(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    for (int i = 0; i < SHARED; i++) shared_tracks[i] = fake_buf_alloc(1000 + (size_t)i, "shared");
    uint64_t mark = ohm_leak_mark();
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK_EQ_INT(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
    unsigned seen = 0, checks = 0;
    while (atomic_load(&threads_done) < 4) { /* checkpoints while the records change under them */
        CHECK(ohm_leak_check(mark, count_only, &seen) >= 0);
        checks++;
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(checks > 0);
    CHECK_EQ_INT(ohm_leak_check(mark, count_only, &seen), 0);
    unsigned live = 0;
    CHECK(ohm_leak_check(0, count_only, &live) >= SHARED);
    paranoid_capture();
    for (int i = 0; i < SHARED; i++) leak_track_leaked(shared_tracks[i], OHM_LEAK_GC);
    CHECK(cap.calls >= 1);
    CHECK_EQ_INT(cap.last.nrecords, 4);
    CHECK(cap.last.dropped > 0);
    ohm_leak_set_handler(NULL, NULL);
}

/* Released records are made live again in place (still in their stripe's list): a checkpoint racing that reuse must
 * only ever see a record whole. Each record's pool name spells its size, and its id is 0x1000 + size. */
static _Atomic int reusers_done;

#define REUSE_HELD 16

static void *reuse_churn(void *arg)
{
    size_t base = (size_t)(uintptr_t)arg * 1000000; /* every size once: no report is a duplicate */
    char name[32];
    leak_track *held[REUSE_HELD];
    for (int i = 0; i < 4000; i++) {
        for (int k = 0; k < REUSE_HELD; k++) {
            size_t size = base + (size_t)i * REUSE_HELD + (size_t)k;
            snprintf(name, sizeof name, "s%zu", size);
            held[k] = fake_buf_alloc(size, name);
        }
        for (int k = 0; k < REUSE_HELD; k++) leak_track_close(held[k]);
    }
    atomic_fetch_add(&reusers_done, 1);
    return NULL;
}

typedef struct whole_check {
    unsigned seen, torn;
} whole_check;

static void check_whole(void *arg, const ohm_leak_report *r)
{
    whole_check *w = arg;
    char name[32];
    snprintf(name, sizeof name, "s%zu", r->size);
    w->seen++;
    if (!r->pool || strcmp(r->pool, name) != 0 || r->buffer_id != 0x1000 + r->size || r->created.nframes == 0)
        w->torn++;
}

static void test_checkpoints_racing_record_reuse_see_whole_records(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    uint64_t mark = ohm_leak_mark();
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&th[i], NULL, reuse_churn, (void *)(i + 1)), 0);
    whole_check w = {0};
    unsigned checks = 0;
    while (atomic_load(&reusers_done) < 2) {
        int64_t n = ohm_leak_check(mark, check_whole, &w);
        /* Not a snapshot: a record seen live may be released, and another made, while the walk goes on. */
        CHECK(n >= 0);
        checks++;
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(checks > 0);
    CHECK_EQ_INT(w.torn, 0);
    CHECK_EQ_INT(ohm_leak_check(mark, check_whole, &w), 0);
}

/* A thread that numbered records before a mark and makes one after it: the new one is since the mark (sampled
 * records' creation numbers come in per-thread blocks, and a mark ends every thread's block). */
static pthread_barrier_t mark_phase;
static leak_track *before_mark, *after_mark;

static void *make_around_a_mark(void *arg)
{
    (void)arg;
    before_mark = fake_buf_alloc(41, "around");
    pthread_barrier_wait(&mark_phase); /* the main thread marks */
    pthread_barrier_wait(&mark_phase);
    after_mark = fake_buf_alloc(42, "around");
    return NULL;
}

static void test_a_record_made_after_a_mark_on_another_thread_is_since_it(void)
{
    ohm_leak_set_level(OHM_LEAK_SIMPLE); /* sampled, every one of them */
    ohm_leak_set_sample_interval(1);
    pthread_t th;
    CHECK_EQ_INT(pthread_barrier_init(&mark_phase, NULL, 2), 0);
    CHECK_EQ_INT(pthread_create(&th, NULL, make_around_a_mark, NULL), 0);
    pthread_barrier_wait(&mark_phase);
    uint64_t mark = ohm_leak_mark();
    pthread_barrier_wait(&mark_phase);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&mark_phase);
    if (!CHECK_NOT_NULL(before_mark) || !CHECK_NOT_NULL(after_mark)) return;
    paranoid_capture();
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 1);
    CHECK_EQ_U64(cap.last.size, 42);
    ohm_leak_set_handler(NULL, NULL);
    leak_track_close(before_mark);
    leak_track_close(after_mark);
    ohm_leak_set_sample_interval(128);
}

/* At PARANOID a checkpoint lists buffers in the order they were made, across threads too. */
static leak_track *made_between;

static void *make_between(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&mark_phase);
    made_between = fake_buf_alloc(62, "order");
    pthread_barrier_wait(&mark_phase);
    return NULL;
}

typedef struct sizes_seen {
    size_t size[8];
    unsigned n;
} sizes_seen;

static void note_size(void *arg, const ohm_leak_report *r)
{
    sizes_seen *s = arg;
    if (s->n < 8) s->size[s->n++] = r->size;
}

static void test_paranoid_checkpoints_list_buffers_in_creation_order_across_threads(void)
{
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    uint64_t mark = ohm_leak_mark();
    pthread_t th;
    CHECK_EQ_INT(pthread_barrier_init(&mark_phase, NULL, 2), 0);
    CHECK_EQ_INT(pthread_create(&th, NULL, make_between, NULL), 0);
    leak_track *first = fake_buf_alloc(61, "order");
    pthread_barrier_wait(&mark_phase); /* the other thread makes its one */
    pthread_barrier_wait(&mark_phase);
    leak_track *last = fake_buf_alloc(63, "order");
    pthread_join(th, NULL);
    pthread_barrier_destroy(&mark_phase);
    sizes_seen seen = {0};
    CHECK_EQ_INT(ohm_leak_check(mark, note_size, &seen), 3);
    CHECK_EQ_INT(seen.n, 3);
    CHECK_EQ_U64(seen.size[0], 61);
    CHECK_EQ_U64(seen.size[1], 62);
    CHECK_EQ_U64(seen.size[2], 63);
    leak_track_close(first);
    leak_track_close(made_between);
    leak_track_close(last);
}

/* ---- end to end: buffers and the Cleaner protocol ---- */

static OHM_NOINLINE ohm_buf *site_buf(size_t size)
{
    ohm_buf *b = ohm_buf_alloc(NULL, size);
    __asm__ volatile("" ::: "memory");
    return b;
}

static void test_reclaim_of_unreleased_buffer_reports_one_gc_leak(void)
{
    paranoid_capture();
    ohm_buf *b = site_buf(64);
    if (!CHECK_NOT_NULL(b)) return;
    CHECK(ohm_buf_tracked(b));
    CHECK_EQ_INT(ohm_buf_set_site(b, "at Host.alloc(Host.java:1)"), 0);
    CHECK_EQ_INT(ohm_buf_touch(b, "e2e-hint"), 0);
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_GC);
    CHECK_EQ_U64(cap.last.size, 64);
    CHECK_EQ_U64(cap.last.buffer_id, id);
    CHECK_EQ_INT(cap.last.origin, OHM_ORIGIN_POOL);
    CHECK_STR_CONTAINS(cap.host_site, "Host.java:1");
    CHECK_STR_CONTAINS(cap.hints[0], "e2e-hint");
    /* The allocating function is among the first frames (at most ohm_buf_alloc's own frame before it). */
    bool found = false;
    for (unsigned i = 0; i < cap.last.created.nframes && i < 3; i++)
        found |= in_function(cap.last.created.frames[i], (void *)site_buf);
    CHECK(found);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0); /* already reclaimed: nothing more */
    CHECK_EQ_INT(cap.calls, 1);
    ohm_leak_set_handler(NULL, NULL);
}

static void test_release_before_reclaim_reports_nothing(void)
{
    paranoid_capture();
    ohm_buf *b = site_buf(64);
    if (!CHECK_NOT_NULL(b)) return;
    uint64_t id = ohm_buf_id(b);
    CHECK_EQ_INT(ohm_buf_release(b, 1), 1);
    CHECK_EQ_INT(ohm_buf_reclaim(b, id), 0);
    CHECK_EQ_INT(cap.calls, 0);
    ohm_leak_set_handler(NULL, NULL);
}

static void test_checkpoint_lists_live_buffers(void)
{
    paranoid_capture();
    uint64_t mark = ohm_leak_mark();
    ohm_buf *b[3];
    for (int i = 0; i < 3; i++) b[i] = ohm_buf_alloc(NULL, 100 + (size_t)i);
    CHECK_EQ_INT(ohm_buf_release(b[0], 1), 1);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 2);
    CHECK_EQ_U64(cap.sizes[0], 101);
    CHECK_EQ_U64(cap.sizes[1], 102);
    for (int i = 1; i < 3; i++) CHECK_EQ_INT(ohm_buf_release(b[i], 1), 1);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 0);
    ohm_leak_set_handler(NULL, NULL);
}

static void test_pool_destroy_reports_live_buffers(void)
{
    ohm_pool *pool = paranoid_pool("leaky");
    if (!pool) return;
    ohm_buf *b = ohm_buf_alloc(pool, 300);
    CHECK_NOT_NULL(b);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_POOL_DESTROY);
    CHECK_EQ_U64(cap.last.size, 300);
    CHECK_STR_CONTAINS(cap.pool, "leaky");
    ohm_leak_set_handler(NULL, NULL);
}

static void test_pool_leak_settings_override_the_process_settings(void)
{
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_pool *pool = fixture_named_pool("own-level");
    if (!pool) return;
    CHECK_EQ_INT(ohm_pool_get_leak_level(pool), OHM_LEAK_OFF); /* follows the process until set */
    CHECK_EQ_INT(ohm_pool_set_leak(pool, OHM_LEAK_PARANOID, 0), 0);
    CHECK_EQ_INT(ohm_pool_get_leak_level(pool), OHM_LEAK_PARANOID);
    CHECK_EQ_INT(ohm_leak_get_level(), OHM_LEAK_OFF); /* the process's setting is untouched */
    ohm_buf *mine = ohm_buf_alloc(pool, 64), *other = ohm_buf_alloc(NULL, 64);
    if (CHECK_NOT_NULL(mine) && CHECK_NOT_NULL(other)) {
        CHECK(ohm_buf_tracked(mine));
        CHECK(!ohm_buf_tracked(other));
    }
    ohm_buf_release(mine, 1);
    ohm_buf_release(other, 1);
    /* A pool switched OFF is not tracked even when the process is PARANOID; -1 follows the process again. */
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    CHECK_EQ_INT(ohm_pool_set_leak(pool, OHM_LEAK_OFF, 5), 0);
    CHECK_EQ_U64(ohm_pool_get_leak_sample_interval(pool), 5);
    mine = ohm_buf_alloc(pool, 64);
    if (CHECK_NOT_NULL(mine)) CHECK(!ohm_buf_tracked(mine));
    ohm_buf_release(mine, 1);
    CHECK_EQ_INT(ohm_pool_set_leak(pool, -1, 0), 0);
    mine = ohm_buf_alloc(pool, 64);
    if (CHECK_NOT_NULL(mine)) CHECK(ohm_buf_tracked(mine));
    ohm_buf_release(mine, 1);
    CHECK_EQ_INT(ohm_pool_set_leak(pool, 7, 0), OHM_EINVAL);
    CHECK_EQ_INT(ohm_pool_set_leak(NULL, 1, 0), OHM_EINVAL);
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_pool_destroy(pool);
}

/* ---- retained slices have their own records (Netty tracks them since 4.1.94, netty#13414) ---- */

static OHM_NOINLINE ohm_buf *site_rslice(ohm_buf *parent, size_t off, size_t len)
{
    ohm_buf *r = ohm_buf_retained_slice(parent, off, len);
    __asm__ volatile("" ::: "memory");
    return r;
}

/* Gives root p (checked not to be NULL) the host site psite, and a retained slice [off, off + len) of it made by
 * site_rslice the site rsite: the slice, or NULL when either failed. */
static ohm_buf *sited_rslice(ohm_buf *p, const char *psite, size_t off, size_t len, const char *rsite)
{
    if (!CHECK_NOT_NULL(p)) return NULL;
    CHECK_EQ_INT(ohm_buf_set_site(p, psite), 0);
    ohm_buf *r = site_rslice(p, off, len);
    if (!CHECK_NOT_NULL(r)) return NULL;
    CHECK_EQ_INT(ohm_buf_set_site(r, rsite), 0);
    return r;
}

/* Whether fn is among the first frames of a creation record (at most ohm's entry point before it). */
static bool made_in(const ohm_leak_record *created, void *fn)
{
    for (unsigned i = 0; i < created->nframes && i < 3; i++)
        if (in_function(created->frames[i], fn)) return true;
    return false;
}

static void test_leaked_retained_slice_is_reported_as_itself_when_reclaimed(void)
{
    paranoid_capture();
    ohm_set_log_handler(fixture_log_handler, &logged);
    fixture_log_reset(&logged);
    uint64_t mark = ohm_leak_mark();
    ohm_buf *p = site_buf(256);
    ohm_buf *r = sited_rslice(p, "at Parent.make(Parent.java:1)", 16, 48, "at Slice.make(Slice.java:9)");
    if (!r) return;
    CHECK(ohm_buf_tracked(r));
    CHECK_EQ_INT(ohm_buf_touch(r, "slice-hint"), 0);
    uint64_t rid = ohm_buf_id(r);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 0); /* the parent's user is done; the slice's reference remains */
    CHECK_EQ_INT(cap.calls, 0);
    CHECK_EQ_INT(ohm_buf_reclaim(r, rid), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_GC);
    CHECK_EQ_U64(cap.last.size, 48);
    CHECK_EQ_U64(cap.last.buffer_id, rid);
    CHECK_STR_CONTAINS(cap.pool, "default");
    CHECK_STR_CONTAINS(cap.host_site, "Slice.java:9");
    CHECK(cap.host_site && !strstr(cap.host_site, "Parent.java"));
    CHECK_EQ_INT(cap.last.nrecords, 1);
    CHECK_STR_CONTAINS(cap.hints[0], "slice-hint");
    CHECK(made_in(&cap.last.created, (void *)site_rslice));
    CHECK_STR_CONTAINS(cap.text, "LEAK: ohm_buf of 48 bytes (pool 'default'");
    CHECK_STR_CONTAINS(cap.text, "#1: Hint: slice-hint\n");
    CHECK_STR_CONTAINS(cap.text, "Created at:\n\tat Slice.make(Slice.java:9)");
    CHECK(!strstr(logged.text, "not tracked"));
    /* The parent's own count reached 0 when the slice's reference went: released cleanly, nothing left live. */
    CHECK_EQ_INT(ohm_leak_check(mark, count_only, &(unsigned){0}), 0);
    CHECK_EQ_INT(cap.calls, 1);
    ohm_set_log_handler(NULL, NULL);
    ohm_leak_set_handler(NULL, NULL);
}

/* The parent leaked too: reclaiming the slice reports the slice only, and the parent stays tracked under its own
 * site until it is reclaimed itself. A retained duplicate (a retained slice of the whole) is the same. */
static void test_reclaimed_retained_duplicate_leaves_a_leaked_parent_tracked(void)
{
    paranoid_capture();
    uint64_t mark = ohm_leak_mark();
    ohm_buf *p = site_buf(96);
    ohm_buf *d = sited_rslice(p, "at Parent.make(Parent.java:2)", 0, 96, "at Dup.make(Dup.java:3)");
    if (!d) return;
    uint64_t pid = ohm_buf_id(p), did = ohm_buf_id(d);
    CHECK_EQ_INT(ohm_buf_reclaim(d, did), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_U64(cap.last.buffer_id, did);
    CHECK_STR_CONTAINS(cap.host_site, "Dup.java:3");
    CHECK(made_in(&cap.last.created, (void *)site_rslice));
    CHECK_EQ_U64(ohm_buf_refcnt(p), 1);
    cap_reset(&cap);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 1); /* the parent is still live, as itself */
    CHECK_EQ_U64(cap.last.buffer_id, pid);
    CHECK_STR_CONTAINS(cap.host_site, "Parent.java:2");
    cap_reset(&cap);
    CHECK_EQ_INT(ohm_buf_reclaim(p, pid), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_U64(cap.last.buffer_id, pid);
    CHECK_EQ_U64(cap.last.size, 96);
    CHECK_STR_CONTAINS(cap.host_site, "Parent.java:2");
    CHECK(made_in(&cap.last.created, (void *)site_buf));
    ohm_leak_set_handler(NULL, NULL);
}

/* touch and set_site on a retained slice never reach its parent's record: a leaked parent is reported with its own
 * site and accesses. */
static void test_touch_and_site_of_a_retained_slice_leave_the_parent_record_alone(void)
{
    paranoid_capture();
    ohm_buf *p = site_buf(128);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_buf_set_site(p, "at Parent.make(Parent.java:4)"), 0);
    CHECK_EQ_INT(ohm_buf_touch(p, "parent-hint"), 0);
    ohm_buf *r = site_rslice(p, 0, 32);
    if (!CHECK_NOT_NULL(r)) return;
    CHECK_EQ_INT(ohm_buf_set_site(r, "at Slice.make(Slice.java:5)"), 0);
    CHECK_EQ_INT(ohm_buf_touch(r, "slice-hint-2"), 0);
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    CHECK_EQ_INT(cap.calls, 0); /* the slice was released properly */
    uint64_t pid = ohm_buf_id(p);
    CHECK_EQ_INT(ohm_buf_reclaim(p, pid), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_U64(cap.last.buffer_id, pid);
    CHECK_EQ_U64(cap.last.size, 128);
    CHECK_STR_CONTAINS(cap.host_site, "Parent.java:4");
    CHECK_EQ_INT(cap.last.nrecords, 1);
    CHECK_STR_CONTAINS(cap.hints[0], "parent-hint");
    CHECK(!strstr(cap.text, "Slice.java") && !strstr(cap.text, "slice-hint-2"));
    CHECK(made_in(&cap.last.created, (void *)site_buf));
    ohm_leak_set_handler(NULL, NULL);
}

/* Plain slices and duplicates share their count owner's record: of a root, the root's; of a retained slice, the
 * retained slice's. */
static void test_plain_slices_write_to_their_count_owners_record(void)
{
    paranoid_capture();
    uint64_t mark = ohm_leak_mark();
    ohm_buf *p = site_buf(200);
    if (!CHECK_NOT_NULL(p)) return;
    ohm_buf *r = site_rslice(p, 100, 50);
    if (!CHECK_NOT_NULL(r)) return;
    ohm_buf *ps = ohm_buf_slice(p, 0, 10), *rs = ohm_buf_slice(r, 0, 10), *rd = ohm_buf_duplicate(r);
    if (!CHECK_NOT_NULL(ps) || !CHECK_NOT_NULL(rs) || !CHECK_NOT_NULL(rd)) return;
    CHECK(ohm_buf_tracked(ps) && ohm_buf_tracked(rs) && ohm_buf_tracked(rd));
    CHECK_EQ_INT(ohm_buf_touch(ps, "via-parent-slice"), 0);
    CHECK_EQ_INT(ohm_buf_touch(rs, "via-rslice-slice"), 0);
    CHECK_EQ_INT(ohm_buf_set_site(rd, "at RSliceDup.make(RSliceDup.java:6)"), 0);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 2); /* creation order: the parent, then the slice */
    CHECK_EQ_U64(cap.sizes[0], 200);
    CHECK_EQ_U64(cap.sizes[1], 50);
    CHECK_EQ_INT(cap.last.nrecords, 1);
    CHECK_STR_CONTAINS(cap.hints[0], "via-rslice-slice");
    CHECK_STR_CONTAINS(cap.host_site, "RSliceDup.java:6");
    CHECK(made_in(&cap.last.created, (void *)site_rslice));
    CHECK_EQ_INT(ohm_buf_release(r, 1), 1);
    cap_reset(&cap);
    CHECK_EQ_INT(ohm_leak_check(mark, cap_handler, &cap), 1);
    CHECK_EQ_U64(cap.last.size, 200);
    CHECK_EQ_INT(cap.last.nrecords, 1);
    CHECK_STR_CONTAINS(cap.hints[0], "via-parent-slice");
    CHECK_NULL(cap.host_site);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 1);
    ohm_leak_set_handler(NULL, NULL);
}

/* A pool destroyed with a live retained slice reports the slice; its parent, whose own references were all
 * released, is not reported. */
static void test_pool_destroy_reports_a_live_retained_slice_as_itself(void)
{
    ohm_pool *pool = paranoid_pool("rslice-pool");
    if (!pool) return;
    ohm_buf *p = ohm_buf_alloc(pool, 512);
    ohm_buf *r = sited_rslice(p, "at Parent.make(Parent.java:7)", 64, 24, "at Slice.make(Slice.java:8)");
    if (!r) return;
    CHECK_EQ_INT(ohm_buf_touch(r, "pool-slice-hint"), 0);
    uint64_t rid = ohm_buf_id(r);
    CHECK_EQ_INT(ohm_buf_release(p, 1), 0);
    CHECK_EQ_INT(ohm_pool_destroy(pool), 0);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_EQ_INT(cap.last.reason, OHM_LEAK_POOL_DESTROY);
    CHECK_EQ_U64(cap.last.buffer_id, rid);
    CHECK_EQ_U64(cap.last.size, 24);
    CHECK_STR_CONTAINS(cap.pool, "rslice-pool");
    CHECK_STR_CONTAINS(cap.host_site, "Slice.java:8");
    CHECK_STR_CONTAINS(cap.hints[0], "pool-slice-hint");
    CHECK(made_in(&cap.last.created, (void *)site_rslice));
    ohm_leak_set_handler(NULL, NULL);
}

/* A retained slice is tracked by the rule a new buffer of its pool would be: the pool's level when it set one. */
static void test_retained_slices_follow_their_pools_level(void)
{
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_pool *pool = fixture_named_pool("rslice-level");
    if (!pool) return;
    CHECK_EQ_INT(ohm_pool_set_leak(pool, OHM_LEAK_PARANOID, 0), 0);
    ohm_buf *p = ohm_buf_alloc(pool, 64);
    if (!CHECK_NOT_NULL(p)) return;
    ohm_buf *r = ohm_buf_retained_slice(p, 0, 8);
    if (CHECK_NOT_NULL(r)) {
        CHECK(ohm_buf_tracked(r));
        ohm_buf_release(r, 1);
    }
    ohm_leak_set_level(OHM_LEAK_PARANOID);
    CHECK_EQ_INT(ohm_pool_set_leak(pool, OHM_LEAK_OFF, 0), 0);
    r = ohm_buf_retained_slice(p, 0, 8);
    if (CHECK_NOT_NULL(r)) {
        CHECK(!ohm_buf_tracked(r));
        CHECK(ohm_buf_tracked(p)); /* made while the pool was PARANOID */
        ohm_buf_release(r, 1);
    }
    ohm_buf_release(p, 1);
    /* An untracked slice of a tracked parent: its touch and site are dropped, not written to the parent's. */
    CHECK_EQ_INT(ohm_pool_set_leak(pool, -1, 0), 0);
    paranoid_capture();
    p = ohm_buf_alloc(pool, 64);
    if (!CHECK_NOT_NULL(p)) return;
    CHECK_EQ_INT(ohm_pool_set_leak(pool, OHM_LEAK_OFF, 0), 0);
    r = ohm_buf_retained_slice(p, 0, 8);
    if (CHECK_NOT_NULL(r)) {
        CHECK_EQ_INT(ohm_buf_set_site(r, "at Untracked.make(Untracked.java:1)"), 0);
        CHECK_EQ_INT(ohm_buf_touch(r, "untracked-hint"), 0);
        ohm_buf_release(r, 1);
    }
    CHECK_EQ_INT(ohm_pool_set_leak(pool, -1, 0), 0);
    CHECK_EQ_INT(ohm_buf_reclaim(p, ohm_buf_id(p)), 1);
    CHECK_EQ_INT(cap.calls, 1);
    CHECK_NULL(cap.host_site);
    CHECK_EQ_INT(cap.last.nrecords, 0);
    ohm_leak_set_handler(NULL, NULL);
    ohm_leak_set_level(OHM_LEAK_OFF);
    ohm_pool_destroy(pool);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--env-child") == 0) return env_child(argv[2]);
    RUN(test_env_sets_level_and_interval_at_first_use);
    RUN(test_env_malformed_values_warn_and_keep_defaults);
    RUN(test_level_and_interval_change_at_run_time);
    RUN(test_simple_tracks_exactly_one_in_interval);
    RUN(test_paranoid_tracks_all_and_off_none);
    RUN(test_leaked_report_names_size_pool_reason_site_and_frames);
    RUN(test_advanced_keeps_four_records_newest_last_and_counts_dropped);
    RUN(test_fifth_record_replaces_newest_half_the_time);
    RUN(test_simple_keeps_no_access_records);
    RUN(test_identical_reports_are_delivered_once_and_counted);
    RUN(test_checkpoint_reports_live_records_since_mark_without_removing_them);
    RUN(test_handler_may_call_back_into_the_detector);
    RUN(test_default_handler_logs_the_text_in_pieces);
    RUN(test_untracked_leaks_are_summarized_at_powers_of_ten);
    RUN(test_json_is_well_formed_escaped_and_sized_like_snprintf);
    RUN(test_four_threads_create_touch_and_close_at_paranoid);
    RUN(test_checkpoints_racing_record_reuse_see_whole_records);
    RUN(test_a_record_made_after_a_mark_on_another_thread_is_since_it);
    RUN(test_paranoid_checkpoints_list_buffers_in_creation_order_across_threads);
    RUN(test_reclaim_of_unreleased_buffer_reports_one_gc_leak);
    RUN(test_release_before_reclaim_reports_nothing);
    RUN(test_checkpoint_lists_live_buffers);
    RUN(test_pool_destroy_reports_live_buffers);
    RUN(test_pool_leak_settings_override_the_process_settings);
    RUN(test_leaked_retained_slice_is_reported_as_itself_when_reclaimed);
    RUN(test_reclaimed_retained_duplicate_leaves_a_leaked_parent_tracked);
    RUN(test_touch_and_site_of_a_retained_slice_leave_the_parent_record_alone);
    RUN(test_plain_slices_write_to_their_count_owners_record);
    RUN(test_pool_destroy_reports_a_live_retained_slice_as_itself);
    RUN(test_retained_slices_follow_their_pools_level);
    cap_reset(&cap);
    return check_summary();
}
