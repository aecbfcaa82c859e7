/* Leak scopes (leak.c): every buffer a scope's threads make is tracked whatever the level, closing lists the live
 * ones with their site, hints and sizes, scopes nest and run in parallel, threads join and leave, buffers made
 * outside are never blamed, and each misuse is a documented code. */
#include "../check.h"
#include "ohm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_only_buffers_made_inside_are_listed(void)
{
    ohm_leak_set_level(OHM_LEAK_OFF); /* a scope tracks whatever the level */
    ohm_buf *before = ohm_buf_alloc(NULL, 16);
    uint64_t s = ohm_leak_scope_open();
    CHECK(s != 0);
    CHECK_EQ_U64(ohm_leak_scope_current(), s);
    ohm_buf *kept = ohm_buf_alloc(NULL, 100);
    ohm_buf *freed = ohm_buf_alloc(NULL, 200);
    CHECK(ohm_buf_tracked(kept));
    CHECK(!ohm_buf_tracked(before));
    CHECK_EQ_INT(ohm_buf_set_site(kept, "site: test.lua:12"), 0);
    CHECK_EQ_INT(ohm_buf_touch(kept, "handed to the writer"), 0);
    CHECK_EQ_INT(ohm_buf_release(before, 1), 1); /* made outside: its release changes nothing here */
    CHECK_EQ_INT(ohm_buf_release(freed, 1), 1);
    CHECK_EQ_INT(ohm_leak_scope_live(s), 1);
    ohm_leak_list *l = NULL;
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, &l), 1);
    CHECK_EQ_U64(ohm_leak_scope_current(), 0);
    if (CHECK_NOT_NULL(l) && CHECK_EQ_U64(l->count, 1)) {
        const ohm_leak_report *r = &l->reports[0];
        CHECK_EQ_U64(l->bytes, 100);
        CHECK_EQ_U64(r->size, 100);
        CHECK_EQ_INT(r->reason, OHM_LEAK_CHECKPOINT);
        CHECK_STR_CONTAINS(r->created.host_site, "site: test.lua:12");
        CHECK(r->created.nframes > 0);
        if (CHECK_EQ_INT(r->nrecords, 1)) CHECK_STR_CONTAINS(r->records[0].hint, "handed to the writer");
        CHECK(strstr(r->text, "test.lua:12") != NULL);
        char json[4096];
        size_t n = ohm_leak_list_json(l, json, sizeof json);
        CHECK(n < sizeof json);
        CHECK(strstr(json, "\"leaks\":1") != NULL);
        CHECK(strstr(json, "test.lua:12") != NULL);
    }
    ohm_leak_list_free(l);
    CHECK_EQ_INT(ohm_buf_release(kept, 1), 1); /* after close: released normally */
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
}

static void test_sampling_resumes_after_close(void)
{
    ohm_leak_set_level(OHM_LEAK_SIMPLE);
    ohm_leak_set_sample_interval(1000000);
    ohm_buf *warm = ohm_buf_alloc(NULL, 8); /* may take this thread's sampled slot */
    uint64_t s = ohm_leak_scope_open();
    ohm_buf *in[5];
    for (int i = 0; i < 5; i++) {
        in[i] = ohm_buf_alloc(NULL, 8);
        CHECK(ohm_buf_tracked(in[i]));
    }
    for (int i = 0; i < 5; i++) ohm_buf_release(in[i], 1);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), 0);
    int tracked = 0;
    for (int i = 0; i < 50; i++) {
        ohm_buf *b = ohm_buf_alloc(NULL, 8);
        tracked += ohm_buf_tracked(b);
        ohm_buf_release(b, 1);
    }
    CHECK(tracked <= 1);
    ohm_buf_release(warm, 1);
    ohm_leak_set_sample_interval(128);
}

static void test_nested_scopes_close_innermost_first(void)
{
    uint64_t a = ohm_leak_scope_open();
    ohm_buf *ba = ohm_buf_alloc(NULL, 10);
    uint64_t b = ohm_leak_scope_open();
    CHECK_EQ_U64(ohm_leak_scope_current(), b);
    ohm_buf *bb = ohm_buf_alloc(NULL, 20);
    ohm_leak_list *l = NULL;
    CHECK_EQ_INT(ohm_leak_scope_close(a, 0, &l), OHM_ESTATE);
    CHECK_NULL(l);
    CHECK_EQ_INT(ohm_leak_scope_close(b, 0, &l), 1);
    if (CHECK_NOT_NULL(l) && CHECK_EQ_U64(l->count, 1)) CHECK_EQ_U64(l->reports[0].size, 20);
    ohm_leak_list_free(l);
    CHECK_EQ_U64(ohm_leak_scope_current(), a);
    CHECK_EQ_INT(ohm_leak_scope_close(a, 0, &l), 1); /* the inner scope's buffer is not the outer's */
    if (CHECK_NOT_NULL(l) && CHECK_EQ_U64(l->count, 1)) CHECK_EQ_U64(l->reports[0].size, 10);
    ohm_leak_list_free(l);
    ohm_buf_release(ba, 1);
    ohm_buf_release(bb, 1);
}

#define PAR_THREADS 4

static void *parallel_worker(void *arg)
{
    int k = (int)(intptr_t)arg;
    ohm_buf *leaks[PAR_THREADS];
    for (int round = 0; round < 20; round++) {
        uint64_t s = ohm_leak_scope_open();
        for (int i = 0; i < 50; i++) ohm_buf_release(ohm_buf_alloc(NULL, 32), 1);
        for (int i = 0; i < k; i++) leaks[i] = ohm_buf_alloc(NULL, 64 + (size_t)k);
        ohm_leak_list *l = NULL;
        CHECK_EQ_INT(ohm_leak_scope_close(s, 0, &l), k);
        if (CHECK_NOT_NULL(l)) {
            CHECK_EQ_U64(l->count, (uint64_t)k);
            for (size_t i = 0; i < l->count; i++) CHECK_EQ_U64(l->reports[i].size, 64 + (uint64_t)k);
        }
        ohm_leak_list_free(l);
        for (int i = 0; i < k; i++) ohm_buf_release(leaks[i], 1);
    }
    return NULL;
}

static void test_parallel_scopes_are_apart(void)
{
    pthread_t th[PAR_THREADS];
    for (int i = 0; i < PAR_THREADS; i++) pthread_create(&th[i], NULL, parallel_worker, (void *)(intptr_t)i);
    for (int i = 0; i < PAR_THREADS; i++) pthread_join(th[i], NULL);
}

typedef struct joiner {
    uint64_t scope;
    ohm_buf *made;
    int join_rc, leave_rc;
    bool leave;
    unsigned release_after_ms; /* 0: keep it */
    atomic_bool allocated;
} joiner;

static void *joiner_main(void *arg)
{
    joiner *j = arg;
    j->join_rc = ohm_leak_scope_join(j->scope);
    CHECK_EQ_INT(ohm_leak_scope_join(j->scope), OHM_ESTATE); /* already in it */
    j->made = ohm_buf_alloc(NULL, 48);
    atomic_store(&j->allocated, true);
    if (j->leave) j->leave_rc = ohm_leak_scope_leave();
    ohm_buf *after = ohm_buf_alloc(NULL, 8); /* left (or not): counts only while joined */
    ohm_buf_release(after, 1);
    if (j->release_after_ms) {
        usleep(j->release_after_ms * 1000);
        ohm_buf_release(j->made, 1);
        j->made = NULL;
    }
    return NULL;
}

static void test_joined_threads_belong_to_the_scope(void)
{
    uint64_t s = ohm_leak_scope_open();
    joiner j1 = {.scope = s, .leave = true}, j2 = {.scope = s, .leave = false};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, joiner_main, &j1);
    pthread_join(t1, NULL);
    pthread_create(&t2, NULL, joiner_main, &j2); /* exits without leaving: its reference goes at exit */
    pthread_join(t2, NULL);
    CHECK_EQ_INT(j1.join_rc, 0);
    CHECK_EQ_INT(j1.leave_rc, 0);
    CHECK_EQ_INT(j2.join_rc, 0);
    ohm_leak_list *l = NULL;
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, &l), 2);
    if (CHECK_NOT_NULL(l)) CHECK_EQ_U64(l->bytes, 96);
    ohm_leak_list_free(l);
    ohm_buf_release(j1.made, 1);
    ohm_buf_release(j2.made, 1);
}

static void test_close_waits_for_other_threads(void)
{
    uint64_t s = ohm_leak_scope_open();
    joiner j = {.scope = s, .leave = true, .release_after_ms = 30};
    pthread_t t;
    pthread_create(&t, NULL, joiner_main, &j);
    while (!atomic_load(&j.allocated)) usleep(1000);
    usleep(2000);
    ohm_leak_list *l = NULL;
    CHECK_EQ_INT(ohm_leak_scope_close(s, 5000, &l), 0);
    if (CHECK_NOT_NULL(l)) CHECK_EQ_U64(l->count, 0);
    ohm_leak_list_free(l);
    pthread_join(t, NULL);
    CHECK_NULL(j.made);
}

typedef struct closer {
    uint64_t scope;
    int rc;
} closer;

static void *closer_main(void *arg)
{
    closer *c = arg;
    c->rc = (int)ohm_leak_scope_close(c->scope, 0, NULL);
    return NULL;
}

static void test_misuse_is_a_code(void)
{
    ohm_leak_list *l = (ohm_leak_list *)1;
    CHECK_EQ_INT(ohm_leak_scope_close(0, 0, &l), OHM_EINVAL);
    CHECK_NULL(l);
    CHECK_EQ_INT(ohm_leak_scope_close(UINT64_MAX, 0, NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_join(0), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_join(UINT64_MAX), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_leave(), OHM_ESTATE);
    CHECK_EQ_INT(ohm_leak_scope_live(0), OHM_EINVAL);
    ohm_leak_list_free(NULL);
    CHECK(ohm_leak_list_json(NULL, NULL, 0) > 0);

    uint64_t s = ohm_leak_scope_open();
    CHECK_EQ_INT(ohm_leak_scope_join(s), OHM_ESTATE); /* the opener is in it already */
    CHECK_EQ_INT(ohm_leak_scope_leave(), OHM_ESTATE); /* the opener closes instead */
    closer c = {.scope = s};
    pthread_t t;
    pthread_create(&t, NULL, closer_main, &c);
    pthread_join(t, NULL);
    CHECK_EQ_INT(c.rc, OHM_EPERM);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), 0);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), OHM_EINVAL); /* twice */
    CHECK_EQ_INT(ohm_leak_scope_live(s), OHM_EINVAL);
    CHECK_EQ_U64(ohm_leak_scope_current(), 0);
}

static void test_released_after_close_frees_the_scope(void)
{
    /* A record outlives its scope's close; releasing it later must not touch freed memory (ASan checks). */
    uint64_t s = ohm_leak_scope_open();
    ohm_buf *b = ohm_buf_alloc(NULL, 24);
    ohm_buf *slice = ohm_buf_retained_slice(b, 0, 8);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), 2);
    ohm_buf_release(slice, 1);
    ohm_buf_release(b, 1);
}

static void quiet_handler(void *arg, const ohm_leak_report *r)
{
    (void)r;
    (*(int *)arg)++;
}

static void test_reclaimed_and_destroyed_while_open_are_listed(void)
{
    int reports = 0;
    ohm_leak_set_handler(quiet_handler, &reports);
    ohm_pool *p = ohm_pool_create(NULL);
    uint64_t s = ohm_leak_scope_open();
    ohm_buf *gc = ohm_buf_alloc(NULL, 40);
    CHECK_EQ_INT(ohm_buf_reclaim(gc, ohm_buf_id(gc)), 1); /* a host GC found it unreleased */
    (void)ohm_buf_alloc(p, 50);
    ohm_pool_destroy(p);
    ohm_leak_list *l = NULL;
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, &l), 2);
    if (CHECK_NOT_NULL(l) && CHECK_EQ_U64(l->count, 2)) {
        CHECK_EQ_INT(l->reports[0].reason, OHM_LEAK_GC);
        CHECK_EQ_INT(l->reports[1].reason, OHM_LEAK_POOL_DESTROY);
        CHECK_EQ_U64(l->bytes, 90);
    }
    ohm_leak_list_free(l);
    CHECK_EQ_INT(reports, 2);
    ohm_leak_set_handler(NULL, NULL);
}

static void *nested_opener(void *arg)
{
    CHECK_EQ_INT(ohm_leak_scope_join(*(uint64_t *)arg), 0);
    uint64_t inner = ohm_leak_scope_open();
    CHECK(inner != 0);
    ohm_buf_release(ohm_buf_alloc(NULL, 8), 1);
    return NULL; /* exits with inner open and without leaving */
}

static void test_joined_thread_exit_ends_its_scopes(void)
{
    uint64_t s = ohm_leak_scope_open();
    pthread_t t;
    pthread_create(&t, NULL, nested_opener, &s);
    pthread_join(t, NULL);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), 0);
}

/* The reports a thread's exit delivers to the handler: how many and their sizes added. */
typedef struct exit_reports {
    int count;
    uint64_t bytes;
    ohm_leak_reason reason;
} exit_reports;

static void counting_handler(void *arg, const ohm_leak_report *r)
{
    exit_reports *e = arg;
    *e = (exit_reports){e->count + 1, e->bytes + r->size, r->reason};
}

typedef struct dying_opener {
    uint64_t outer, inner;
    ohm_buf *kept[2];
} dying_opener;

static void *open_and_die(void *arg)
{
    dying_opener *d = arg;
    d->outer = ohm_leak_scope_open();
    d->kept[0] = ohm_buf_alloc(NULL, 100);
    ohm_buf_release(ohm_buf_alloc(NULL, 7), 1);
    d->inner = ohm_leak_scope_open();
    d->kept[1] = ohm_buf_alloc(NULL, 200);
    return NULL; /* neither closed: a test thread that died before its close */
}

static void test_opener_exit_ends_its_scopes_and_reports_their_leaks(void)
{
    exit_reports e = {0};
    ohm_leak_set_handler(counting_handler, &e);
    dying_opener d = {0};
    pthread_t t;
    pthread_create(&t, NULL, open_and_die, &d);
    pthread_join(t, NULL);
    ohm_leak_set_handler(NULL, NULL);
    CHECK_EQ_INT(e.count, 2);
    CHECK_EQ_U64(e.bytes, 300);
    CHECK_EQ_INT(e.reason, OHM_LEAK_CHECKPOINT);
    CHECK_EQ_INT(ohm_leak_scope_live(d.outer), OHM_EINVAL); /* ended: nothing of it stays */
    CHECK_EQ_INT(ohm_leak_scope_live(d.inner), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_close(d.outer, 0, NULL), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_join(d.outer), OHM_EINVAL);
    CHECK_EQ_U64(ohm_leak_scope_current(), 0);
    /* Still tracked, released as usual after the scopes' memory went (ASan checks). */
    CHECK_EQ_INT(ohm_buf_release(d.kept[1], 1), 1);
    CHECK_EQ_INT(ohm_buf_release(d.kept[0], 1), 1);
}

typedef struct handoff {
    uint64_t scope, inner;
    ohm_buf *made;
    atomic_int step; /* 1: joined and opened inside; 2: the opener is gone; 3: done */
    int close_rc, leave_rc;
    uint64_t listed;
} handoff;

static void *joined_survivor(void *arg)
{
    handoff *h = arg;
    CHECK_EQ_INT(ohm_leak_scope_join(h->scope), 0);
    h->inner = ohm_leak_scope_open();
    h->made = ohm_buf_alloc(NULL, 64);
    atomic_store(&h->step, 1);
    while (atomic_load(&h->step) != 2) usleep(1000);
    CHECK_EQ_U64(ohm_leak_scope_current(), h->inner); /* its own scope outlives the parent's end */
    ohm_leak_list *l = NULL;
    h->close_rc = (int)ohm_leak_scope_close(h->inner, 0, &l);
    h->listed = l ? l->count : 0;
    ohm_leak_list_free(l);
    CHECK_EQ_U64(ohm_leak_scope_current(), 0); /* back in the parent, which ended */
    ohm_buf_release(ohm_buf_alloc(NULL, 8), 1);
    h->leave_rc = ohm_leak_scope_leave();
    atomic_store(&h->step, 3);
    return NULL;
}

static void *open_handoff_and_die(void *arg)
{
    handoff *h = arg;
    h->scope = ohm_leak_scope_open();
    pthread_t t;
    pthread_create(&t, NULL, joined_survivor, h);
    pthread_detach(t);
    while (atomic_load(&h->step) != 1) usleep(1000);
    /* A normal close must wait for the joined thread's scope ... */
    CHECK_EQ_INT(ohm_leak_scope_close(h->scope, 0, NULL), OHM_ESTATE);
    return NULL; /* ... but an exit ends this one anyway */
}

static void test_opener_exit_leaves_a_joined_threads_inner_scope_open(void)
{
    handoff h = {0};
    pthread_t t;
    pthread_create(&t, NULL, open_handoff_and_die, &h);
    pthread_join(t, NULL);
    CHECK_EQ_INT(ohm_leak_scope_live(h.scope), OHM_EINVAL);
    CHECK_EQ_INT(ohm_leak_scope_live(h.inner), 1);
    atomic_store(&h.step, 2);
    while (atomic_load(&h.step) != 3) usleep(1000);
    CHECK_EQ_INT(h.close_rc, 1);
    CHECK_EQ_U64(h.listed, 1);
    CHECK_EQ_INT(h.leave_rc, 0);
    ohm_buf_release(h.made, 1);
}

static void *join_nest_leak_and_die(void *arg)
{
    CHECK_EQ_INT(ohm_leak_scope_join(*(uint64_t *)arg), 0);
    (void)ohm_leak_scope_open();
    return ohm_buf_alloc(NULL, 33); /* left live in the inner scope, which the exit ends */
}

static void test_joined_thread_exit_reports_its_inner_scopes_leaks(void)
{
    exit_reports e = {0};
    ohm_leak_set_handler(counting_handler, &e);
    uint64_t s = ohm_leak_scope_open();
    pthread_t t;
    void *made = NULL;
    pthread_create(&t, NULL, join_nest_leak_and_die, &s);
    pthread_join(t, &made);
    ohm_leak_set_handler(NULL, NULL);
    CHECK_EQ_INT(e.count, 1);
    CHECK_EQ_U64(e.bytes, 33);
    CHECK_EQ_INT(ohm_leak_scope_close(s, 0, NULL), 0); /* not the outer scope's: the inner one's */
    ohm_buf_release(made, 1);
}

static void *join_and_wait(void *arg)
{
    handoff *h = arg;
    CHECK_EQ_INT(ohm_leak_scope_join(h->scope), 0);
    atomic_store(&h->step, 1);
    while (atomic_load(&h->step) != 2) usleep(1000);
    /* Its scope closed: it belongs to none, cannot join another before it leaves, and may open its own. */
    CHECK_EQ_U64(ohm_leak_scope_current(), 0);
    CHECK_EQ_INT(ohm_leak_scope_join(h->scope), OHM_ESTATE);
    uint64_t own = ohm_leak_scope_open();
    ohm_buf *b = ohm_buf_alloc(NULL, 16);
    CHECK_EQ_INT(ohm_leak_scope_leave(), OHM_ESTATE); /* its own scope is still open */
    h->close_rc = (int)ohm_leak_scope_close(own, 0, NULL);
    ohm_buf_release(b, 1);
    h->leave_rc = ohm_leak_scope_leave();
    CHECK_EQ_INT(ohm_leak_scope_join(h->scope), OHM_EINVAL); /* join after close */
    return NULL;
}

static void test_joined_thread_after_its_scope_closed(void)
{
    handoff h = {0};
    h.scope = ohm_leak_scope_open();
    pthread_t t;
    pthread_create(&t, NULL, join_and_wait, &h);
    while (atomic_load(&h.step) != 1) usleep(1000);
    CHECK_EQ_INT(ohm_leak_scope_close(h.scope, 0, NULL), 0);
    atomic_store(&h.step, 2);
    pthread_join(t, NULL);
    CHECK_EQ_INT(h.close_rc, 1);
    CHECK_EQ_INT(h.leave_rc, 0);
}

static void test_ids_are_never_reused(void)
{
    uint64_t a = ohm_leak_scope_open();
    CHECK_EQ_INT(ohm_leak_scope_close(a, 0, NULL), 0);
    uint64_t b = ohm_leak_scope_open();
    CHECK(b > a);
    CHECK_EQ_INT(ohm_leak_scope_close(a, 0, NULL), OHM_EINVAL); /* the stale id is not b */
    CHECK_EQ_INT(ohm_leak_scope_live(b), 0);
    CHECK_EQ_INT(ohm_leak_scope_close(b, 0, NULL), 0);
}

int main(void)
{
    RUN(test_only_buffers_made_inside_are_listed);
    RUN(test_sampling_resumes_after_close);
    RUN(test_nested_scopes_close_innermost_first);
    RUN(test_parallel_scopes_are_apart);
    RUN(test_joined_threads_belong_to_the_scope);
    RUN(test_close_waits_for_other_threads);
    RUN(test_misuse_is_a_code);
    RUN(test_released_after_close_frees_the_scope);
    RUN(test_reclaimed_and_destroyed_while_open_are_listed);
    RUN(test_joined_thread_exit_ends_its_scopes);
    RUN(test_opener_exit_ends_its_scopes_and_reports_their_leaks);
    RUN(test_opener_exit_leaves_a_joined_threads_inner_scope_open);
    RUN(test_joined_thread_exit_reports_its_inner_scopes_leaks);
    RUN(test_joined_thread_after_its_scope_closed);
    RUN(test_ids_are_never_reused);
    return check_summary();
}
