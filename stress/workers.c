/* The worker threads. Each iteration drains a few handed-off buffers from the worker's inbox, then does one
 * operation picked at random: a buffer handed to another worker, a raw pool block, a memory-manager step on
 * the worker's current task, a storage-cache step, or a mapped-file round trip. Every byte written carries the
 * pattern of its id (util.c) and is verified before it is released; a difference is an integrity error.
 *
 * Expected failures are counted, not errors: ENOMEM (an injected map failure), ELIMIT (the manager could not
 * grant), ETIMEDOUT (a fair-share wait), a spill callback's injected OHM_ECALLBACK. Anything else an API
 * returns that it should not is an API error, which fails the run like an integrity error. */
#define _GNU_SOURCE
#include "stress.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELAXED         memory_order_relaxed
#define COUNT(s, field) atomic_fetch_add_explicit(&(s)->c.field, 1, RELAXED)

static uint64_t new_pid(worker *w) { return ((uint64_t)(w->index + 1) << 48) | ++w->next_pid; }

/* Counts an expected failure by its code; returns false (after recording an API error) for any other. */
static bool expected_failure(worker *w, const char *what, int code)
{
    stress *s = w->s;
    switch (code) {
    case OHM_ENOMEM: COUNT(s, faults_survived); return true;
    case OHM_ELIMIT: COUNT(s, mm_limited); return true;
    case OHM_ETIMEDOUT: COUNT(s, mm_timeouts); return true;
    case OHM_ECALLBACK: COUNT(s, faults_survived); return true; /* a spill callback failed on purpose */
    default:
        stress_error(s, &s->c.api_errors, "worker %u: %s failed: %s (%s)", w->index, what, ohm_strerror(code),
                     ohm_last_error());
        return false;
    }
}

static void verify(worker *w, const char *what, const void *data, size_t len, uint64_t pid, size_t off)
{
    size_t at = pattern_find_mismatch(data, len, pid, off);
    if (at != SIZE_MAX)
        stress_error(w->s, &w->s->c.integrity_errors, "worker %u: %s %#llx: byte %zu of %zu differs from its pattern",
                     w->index, what, (unsigned long long)pid, off + at, len);
}

static void verify_buf(worker *w, const char *what, const ohm_buf *b, size_t len, uint64_t pid, size_t off)
{
    void *p = NULL;
    int rc = ohm_buf_span(b, 0, len, &p);
    if (rc) {
        stress_error(w->s, &w->s->c.integrity_errors, "worker %u: %s %#llx: span of %zu bytes: %s", w->index, what,
                     (unsigned long long)pid, len, ohm_strerror(rc));
        return;
    }
    verify(w, what, p, len, pid, off);
}

/* Releases one reference and checks whether it was the last, as the caller expects. */
static void release_expect(worker *w, const char *what, ohm_buf *b, int want)
{
    int rc = ohm_buf_release(b, 1);
    if (rc != want)
        stress_error(w->s, &w->s->c.api_errors, "worker %u: release of %s returned %d, expected %d (%s)", w->index,
                     what, rc, want, ohm_last_error());
}

/* Mixed sizes: mostly small, some page-sized, a few large. */
static size_t buf_size(worker *w)
{
    uint64_t r = rng_next(&w->rng) % 100;
    if (r < 70) return (size_t)rng_range(&w->rng, 1, 1024);
    if (r < 95) return (size_t)rng_range(&w->rng, 1025, 64 << 10);
    return (size_t)rng_range(&w->rng, (64 << 10) + 1, 512 << 10);
}

/* ---------------------------------------------------------------------------------------------------------
 * Buffers handed between workers
 * ------------------------------------------------------------------------------------------------------- */

static bool inbox_push(worker *to, const handoff *h)
{
    pthread_mutex_lock(&to->inbox_lock);
    bool ok = to->inbox_count < STRESS_INBOX_CAP;
    if (ok) to->inbox[(to->inbox_head + to->inbox_count++) % STRESS_INBOX_CAP] = *h;
    pthread_mutex_unlock(&to->inbox_lock);
    return ok;
}

static unsigned inbox_pop(worker *w, handoff *out, unsigned max)
{
    pthread_mutex_lock(&w->inbox_lock);
    unsigned n = 0;
    while (n < max && w->inbox_count) {
        out[n++] = w->inbox[w->inbox_head];
        w->inbox_head = (w->inbox_head + 1) % STRESS_INBOX_CAP;
        w->inbox_count--;
    }
    pthread_mutex_unlock(&w->inbox_lock);
    return n;
}

/* Keeps a received buffer forever (--leak-rate): the leak checkpoint at the end must name exactly these. */
static bool leak_keep(worker *w, const handoff *h)
{
    if (w->nleaked == w->leaked_cap) {
        size_t cap = w->leaked_cap ? 2 * w->leaked_cap : 64;
        leaked_buf *p = realloc(w->leaked, cap * sizeof *p);
        if (!p) return false;
        w->leaked = p;
        w->leaked_cap = cap;
    }
    w->leaked[w->nleaked++] = (leaked_buf){h->b, h->id};
    w->leak_budget--;
    COUNT(w->s, leaks_injected);
    return true;
}

/* The receiving end: verify, then release (or, for a whole buffer at --leak-rate, keep it forever). */
static void consume(worker *w, const handoff *h)
{
    stress *s = w->s;
    if (ohm_buf_check(h->b, h->id) != 0) {
        stress_error(s, &s->c.integrity_errors, "worker %u: handed-off buffer %#llx is no longer live", w->index,
                     (unsigned long long)h->pid);
        return;
    }
    verify_buf(w, "handed-off buffer", h->b, h->len, h->pid, h->off);
    if (ohm_buf_size(h->b) != h->len)
        stress_error(s, &s->c.integrity_errors, "worker %u: handed-off buffer %#llx has size %zu, sent %zu", w->index,
                     (unsigned long long)h->pid, ohm_buf_size(h->b), h->len);
    if (h->kind == HANDOFF_WHOLE) {
        if (rng_chance(&w->rng, 0.05)) ohm_buf_touch(h->b, "received");
        /* Only tracked buffers can be reported: under --fail-rate a record's own allocation may fail. */
        if (w->leak_budget && rng_chance(&w->rng, s->o.leak_rate)) {
            if (!ohm_buf_tracked(h->b)) COUNT(s, leaks_untracked);
            else if (leak_keep(w, h)) return;
        }
        /* a retain/release pair from the receiving side, racing nothing but checking the count */
        if (ohm_buf_retain(h->b, 2) != 0 || ohm_buf_refcnt(h->b) != 3 || ohm_buf_release(h->b, 2) != 0)
            stress_error(s, &s->c.api_errors, "worker %u: retain(2)/release(2) of a received buffer: %s", w->index,
                         ohm_last_error());
    }
    /* Every kind ends with this release freeing the memory: a whole buffer's last count, a plain slice's or
     * duplicate's shared count (the sender released its own), a retained slice's own count with the parent's. */
    release_expect(w, "a received buffer", h->b, 1);
}

static void drain_inbox(worker *w, unsigned max)
{
    handoff batch[8];
    unsigned n;
    while (max && (n = inbox_pop(w, batch, max < 8 ? max : 8))) {
        for (unsigned i = 0; i < n; i++) consume(w, &batch[i]);
        max -= n;
    }
}

static void op_buffer(worker *w)
{
    stress *s = w->s;
    size_t size = buf_size(w);
    ohm_buf *b = ohm_buf_alloc(s->pool, size);
    if (!b) {
        expected_failure(w, "ohm_buf_alloc", ohm_last_error_code());
        return;
    }
    uint64_t pid = new_pid(w);
    void *p = ohm_buf_data(b);
    pattern_fill(p, size, pid, 0);
    handoff h = {b, ohm_buf_id(b), pid, 0, size, (handoff_kind)(rng_next(&w->rng) % 4)};
    if (h.kind != HANDOFF_WHOLE && size < 2) h.kind = HANDOFF_WHOLE;
    if (h.kind != HANDOFF_WHOLE) {
        h.off = (size_t)rng_range(&w->rng, 0, size / 2);
        h.len = (size_t)rng_range(&w->rng, 1, size - h.off);
        ohm_buf *d = NULL;
        if (h.kind == HANDOFF_RETAINED_SLICE) {
            d = ohm_buf_retained_slice(b, h.off, h.len);
        } else if (ohm_buf_retain(b, 1) == 0) { /* the receiver's reference, shared by the derived handle */
            d = h.kind == HANDOFF_SLICE ? ohm_buf_slice(b, h.off, h.len) : ohm_buf_duplicate(b);
            if (!d) ohm_buf_release(b, 1);
        }
        if (h.kind == HANDOFF_DUPLICATE) h.off = 0, h.len = size;
        if (!d) {
            int code = ohm_last_error_code();
            release_expect(w, "a buffer whose slice failed", b, 1);
            expected_failure(w, "slice", code);
            return;
        }
        release_expect(w, "the sender's reference", b, 0); /* the derived handle keeps the memory */
        h.b = d;
        h.id = ohm_buf_id(d);
    }
    unsigned others = s->o.threads > 1 ? s->o.threads - 1 : 1;
    worker *to = &s->workers[(w->index + 1 + rng_next(&w->rng) % others) % s->o.threads];
    if (to != w && inbox_push(to, &h)) {
        COUNT(s, handoffs);
    } else {
        COUNT(s, local_consumes);
        consume(w, &h);
    }
}

/* ---------------------------------------------------------------------------------------------------------
 * Raw pool blocks
 * ------------------------------------------------------------------------------------------------------- */

/* Blocks above 64 KiB carry the pattern only in their first and last 4 KiB: enough to catch overlap. */
static void raw_mark(void *p, size_t size, uint64_t pid, bool check, worker *w)
{
    size_t edge = size <= (64 << 10) ? size : 4096;
    if (check) {
        verify(w, "pool block", p, edge, pid, 0);
        if (edge < size) verify(w, "pool block tail", (char *)p + size - edge, edge, pid, size - edge);
    } else {
        pattern_fill(p, edge, pid, 0);
        if (edge < size) pattern_fill((char *)p + size - edge, edge, pid, size - edge);
    }
}

static void op_pool(worker *w)
{
    stress *s = w->s;
    raw_slot *r = &w->raw[rng_next(&w->rng) % STRESS_RAW_SLOTS];
    if (r->p) {
        raw_mark(r->p, r->size, r->pid, true, w);
        int rc = ohm_pool_free(s->pool, r->p);
        if (rc) stress_error(s, &s->c.api_errors, "worker %u: ohm_pool_free: %s", w->index, ohm_last_error());
        r->p = NULL;
        return;
    }
    uint64_t k = rng_next(&w->rng) % 1000;
    size_t size = k < 700   ? (size_t)rng_range(&w->rng, 1, 512)
                  : k < 950 ? (size_t)rng_range(&w->rng, 513, 32 << 10)
                  : k < 995 ? (size_t)rng_range(&w->rng, (32 << 10) + 1, 1 << 20)
                            : (size_t)rng_range(&w->rng, (1 << 20) + 1, 6 << 20); /* above the chunk: mapped */
    void *p =
        (k & 7) == 0 ? ohm_pool_alloc_aligned(s->pool, size, (size_t)64 << (k % 5)) : ohm_pool_alloc(s->pool, size);
    if (!p) {
        expected_failure(w, "ohm_pool_alloc", ohm_last_error_code());
        return;
    }
    if (ohm_usable_size(p) < size)
        stress_error(s, &s->c.integrity_errors, "worker %u: usable size %zu of a %zu-byte block", w->index,
                     ohm_usable_size(p), size);
    *r = (raw_slot){p, size, new_pid(w)};
    raw_mark(p, size, r->pid, false, w);
}

/* ---------------------------------------------------------------------------------------------------------
 * Memory manager: tasks, consumers that spill to a file, ON_HEAP accounting
 * ------------------------------------------------------------------------------------------------------- */

/* The spill callback. Runs on this worker's thread (a task's consumers are only asked by its own acquires):
 * writes pages to the consumer's file and releases them until about size bytes are free. At --fail-rate it
 * fails instead, which must fail the triggering acquire and leave the accounting exact. */
static int64_t on_spill(void *arg, uint64_t size, ohm_consumer *trigger)
{
    (void)trigger;
    consumer_state *cs = arg;
    worker *w = cs->w;
    stress *s = w->s;
    if (rng_chance(&w->rng, s->o.fail_rate)) {
        COUNT(s, spill_failures);
        return OHM_ECALLBACK;
    }
    uint64_t before = ohm_consumer_used(cs->c);
    for (unsigned i = 0; i < STRESS_PAGES && before - ohm_consumer_used(cs->c) < size; i++) {
        page_slot *sl = &cs->slots[i];
        if (!sl->page) continue;
        void *p = ohm_buf_data(sl->page);
        if (pwrite(cs->fd, p, sl->size, (off_t)cs->file_end) != (ssize_t)sl->size) {
            stress_error(s, &s->c.api_errors, "worker %u: spill write: %s", w->index, strerror(errno));
            return OHM_ESYS;
        }
        sl->file_off = cs->file_end;
        cs->file_end += sl->size;
        sl->spilled = true;
        release_expect(w, "a spilled page", sl->page, 1);
        sl->page = NULL;
    }
    uint64_t released = before - ohm_consumer_used(cs->c);
    COUNT(s, spills);
    atomic_fetch_add_explicit(&s->c.spill_bytes, released, RELAXED);
    return (int64_t)released;
}

/* Reads a spilled page back from the file into dst and verifies it. */
static bool read_back(worker *w, consumer_state *cs, page_slot *sl, void *dst)
{
    if (pread(cs->fd, dst, sl->size, (off_t)sl->file_off) != (ssize_t)sl->size) {
        stress_error(w->s, &w->s->c.api_errors, "worker %u: spill read: %s", w->index, strerror(errno));
        return false;
    }
    verify(w, "spilled page", dst, sl->size, sl->pid, 0);
    return true;
}

static void publish_task(worker *w)
{
    ohm_task_stats ts = {0};
    if (w->task) ohm_task_stats_get(w->task, &ts);
    for (int m = 0; m < OHM_MM_MODES; m++) atomic_store_explicit(&w->task_used[m], ts.used[m], RELAXED);
}

static void task_start(worker *w)
{
    stress *s = w->s;
    uint64_t id = ((uint64_t)(w->index + 1) << 40) | ++w->task_seq;
    w->task = ohm_task_create(s->mm, id);
    if (!w->task) {
        expected_failure(w, "ohm_task_create", ohm_last_error_code());
        return;
    }
    ohm_task_set_wait_timeout(w->task, 50);
    COUNT(s, tasks_started);
    w->task_ops_left = rng_range(&w->rng, 50, 400);
    for (unsigned i = 0; i < STRESS_CONSUMERS; i++) {
        consumer_state *cs = &w->cons[i];
        char name[32];
        snprintf(name, sizeof name, "spiller-%u", i);
        cs->c = ohm_consumer_create(w->task, OHM_OFF_HEAP, name, on_spill, cs);
        if (!cs->c) expected_failure(w, "ohm_consumer_create", ohm_last_error_code());
    }
}

/* Ends the task the way a host would: verify and release every page (spilled ones from their file), destroy
 * the consumers, release ON_HEAP memory; ohm_task_end must then find nothing left. */
static void task_finish(worker *w)
{
    stress *s = w->s;
    if (!w->task) return;
    char *tmp = NULL;
    for (unsigned i = 0; i < STRESS_CONSUMERS; i++) {
        consumer_state *cs = &w->cons[i];
        for (unsigned j = 0; j < STRESS_PAGES; j++) {
            page_slot *sl = &cs->slots[j];
            if (sl->page) {
                verify_buf(w, "page", sl->page, sl->size, sl->pid, 0);
                release_expect(w, "a page", sl->page, 1);
            } else if (sl->spilled && (tmp = realloc(tmp, sl->size))) {
                read_back(w, cs, sl, tmp);
            }
            *sl = (page_slot){0};
        }
        if (cs->c && ohm_consumer_destroy(cs->c) != 0)
            stress_error(s, &s->c.api_errors, "worker %u: ohm_consumer_destroy: %s", w->index, ohm_last_error());
        cs->c = NULL;
        cs->file_end = 0;
        if (ftruncate(cs->fd, 0) != 0) stress_error(s, &s->c.api_errors, "ftruncate: %s", strerror(errno));
    }
    free(tmp);
    if (w->heap_held) {
        int64_t r = ohm_task_release(w->task, OHM_ON_HEAP, w->heap_held);
        if (r != (int64_t)w->heap_held)
            stress_error(s, &s->c.api_errors, "worker %u: ON_HEAP release gave back %lld of %llu", w->index,
                         (long long)r, (unsigned long long)w->heap_held);
        w->heap_held = 0;
    }
    int64_t left = ohm_task_end(w->task);
    if (left != 0)
        stress_error(s, &s->c.api_errors, "worker %u: ohm_task_end found %lld bytes still held", w->index,
                     (long long)left);
    w->task = NULL;
    COUNT(s, tasks_ended);
    publish_task(w);
}

static void op_mm(worker *w)
{
    stress *s = w->s;
    if (!w->task) task_start(w);
    if (!w->task) return;
    if (w->task_ops_left-- == 0) {
        task_finish(w);
        return;
    }
    uint64_t r = rng_next(&w->rng) % 100;
    if (r < 10) { /* ON_HEAP accounting: the host's own memory, no consumer */
        if (w->heap_held && (r & 1)) {
            ohm_task_release(w->task, OHM_ON_HEAP, w->heap_held);
            w->heap_held = 0;
        } else {
            int64_t got = ohm_task_acquire(w->task, OHM_ON_HEAP, rng_range(&w->rng, 64 << 10, 2 << 20));
            if (got < 0) expected_failure(w, "ohm_task_acquire", (int)got);
            else w->heap_held += (uint64_t)got;
        }
        publish_task(w);
        return;
    }
    consumer_state *cs = &w->cons[rng_next(&w->rng) % STRESS_CONSUMERS];
    if (!cs->c) {
        char name[32];
        snprintf(name, sizeof name, "spiller-%u", (unsigned)(cs - w->cons));
        cs->c = ohm_consumer_create(w->task, OHM_OFF_HEAP, name, on_spill, cs);
        if (!cs->c) {
            expected_failure(w, "ohm_consumer_create", ohm_last_error_code());
            return;
        }
    }
    page_slot *sl = &cs->slots[rng_next(&w->rng) % STRESS_PAGES];
    if (sl->page && r < 40) { /* done with it: verify and release */
        verify_buf(w, "page", sl->page, sl->size, sl->pid, 0);
        release_expect(w, "a page", sl->page, 1);
        *sl = (page_slot){0};
    } else if (sl->page) {
        verify_buf(w, "page", sl->page, sl->size, sl->pid, 0);
    } else if (sl->spilled) { /* needed again: a new page, filled from the file (this may spill others) */
        ohm_buf *p = ohm_consumer_alloc_page(cs->c, sl->size);
        if (!p) {
            expected_failure(w, "ohm_consumer_alloc_page", ohm_last_error_code());
        } else if (ohm_buf_size(p) < sl->size) {
            stress_error(s, &s->c.api_errors, "worker %u: page of %zu bytes for %zu", w->index, ohm_buf_size(p),
                         sl->size);
            ohm_buf_release(p, 1);
        } else if (read_back(w, cs, sl, ohm_buf_data(p))) {
            sl->page = p;
            sl->spilled = false;
            COUNT(s, restores);
        } else {
            ohm_buf_release(p, 1);
        }
    } else { /* grow: a new page of 16 .. 256 KiB */
        ohm_buf *p = ohm_consumer_alloc_page(cs->c, (size_t)rng_range(&w->rng, 16 << 10, 256 << 10));
        if (!p) {
            expected_failure(w, "ohm_consumer_alloc_page", ohm_last_error_code());
        } else {
            *sl = (page_slot){p, ohm_buf_size(p), new_pid(w), false, 0};
            pattern_fill(ohm_buf_data(p), sl->size, sl->pid, 0);
        }
    }
    /* nothing spilled any more: the file can start over */
    bool any = false;
    for (unsigned i = 0; i < STRESS_PAGES; i++) any |= cs->slots[i].spilled;
    if (!any && cs->file_end) {
        cs->file_end = 0;
        if (ftruncate(cs->fd, 0) != 0) stress_error(s, &s->c.api_errors, "ftruncate: %s", strerror(errno));
    }
    publish_task(w);
}

/* ---------------------------------------------------------------------------------------------------------
 * Storage block cache
 * ------------------------------------------------------------------------------------------------------- */

/* The evict callback: may run on any worker (whichever acquire needed the room). Verifies the block's data,
 * then lets the cache drop it. */
static int on_evict(void *arg, const char *block_id, ohm_buf *buf)
{
    block_slot *b = arg;
    stress *s = b->w->s;
    if (strcmp(block_id, b->id) != 0)
        stress_error(s, &s->c.integrity_errors, "evict callback for %s got block %s", b->id, block_id);
    if (buf) {
        size_t at = ohm_buf_size(buf) == b->size ? pattern_find_mismatch(ohm_buf_data(buf), b->size, b->pid, 0) : 0;
        if (at != SIZE_MAX)
            stress_error(s, &s->c.integrity_errors, "evicted block %s differs from its pattern at byte %zu", b->id, at);
    }
    atomic_store(&b->state, BLOCK_EVICTED);
    COUNT(s, evictions);
    return 0;
}

static void block_put(worker *w, block_slot *b)
{
    stress *s = w->s;
    b->mode = rng_chance(&w->rng, 0.25) ? OHM_ON_HEAP : OHM_OFF_HEAP;
    b->size = (size_t)rng_range(&w->rng, 4 << 10, 256 << 10);
    b->pid = new_pid(w);
    snprintf(b->id, sizeof b->id, "w%u.b%llu", w->index, (unsigned long long)++w->block_seq);
    char group[8];
    snprintf(group, sizeof group, "g%u", (unsigned)(rng_next(&w->rng) % 4));
    ohm_buf *buf = NULL;
    if (b->mode == OHM_OFF_HEAP) {
        buf = ohm_buf_alloc(s->pool, b->size);
        if (!buf) {
            expected_failure(w, "ohm_buf_alloc (block)", ohm_last_error_code());
            return;
        }
        pattern_fill(ohm_buf_data(buf), b->size, b->pid, 0);
    }
    /* state first: the evict callback may run on another thread as soon as the block is in */
    atomic_store(&b->state, BLOCK_CACHED);
    int rc = ohm_block_put(s->mm, b->id, group, b->mode, buf, b->mode == OHM_OFF_HEAP ? 0 : b->size, on_evict, b);
    if (rc == 0) {
        COUNT(s, blocks_put);
    } else {
        atomic_store(&b->state, BLOCK_FREE);
        if (rc == OHM_ELIMIT) COUNT(s, blocks_refused);
        else expected_failure(w, "ohm_block_put", rc);
    }
    if (buf) release_expect(w, "a block's buffer", buf, rc == 0 ? 0 : 1);
}

/* Removes a cached block; false if it is being evicted right now (try again later). */
static bool block_remove(worker *w, block_slot *b)
{
    int rc = ohm_block_remove(w->s->mm, b->id);
    if (rc == OHM_ESTATE) return false;
    if (rc == OHM_EINVAL && atomic_load(&b->state) != BLOCK_EVICTED)
        stress_error(w->s, &w->s->c.integrity_errors, "block %s vanished without an eviction", b->id);
    else if (rc && rc != OHM_EINVAL)
        stress_error(w->s, &w->s->c.api_errors, "ohm_block_remove(%s): %s", b->id, ohm_strerror(rc));
    atomic_store(&b->state, BLOCK_FREE);
    return true;
}

static void op_block(worker *w)
{
    stress *s = w->s;
    block_slot *b = &w->blocks[rng_next(&w->rng) % STRESS_BLOCKS];
    int state = atomic_load(&b->state);
    if (state != BLOCK_CACHED) {
        block_put(w, b);
        return;
    }
    if (rng_chance(&w->rng, 0.3)) {
        block_remove(w, b);
        return;
    }
    ohm_buf *buf = NULL;
    int rc = ohm_block_pin(s->mm, b->id, &buf);
    if (rc == OHM_EINVAL) { /* evicted */
        if (atomic_load(&b->state) != BLOCK_EVICTED)
            stress_error(s, &s->c.integrity_errors, "block %s vanished without an eviction", b->id);
        atomic_store(&b->state, BLOCK_FREE);
        return;
    }
    if (rc == OHM_ESTATE) return; /* being evicted now */
    if (rc) {
        expected_failure(w, "ohm_block_pin", rc);
        return;
    }
    if (b->mode == OHM_OFF_HEAP) {
        if (!buf || ohm_buf_size(buf) != b->size)
            stress_error(s, &s->c.integrity_errors, "pinned block %s: wrong buffer", b->id);
        else verify_buf(w, "cached block", buf, b->size, b->pid, 0);
    }
    if ((rc = ohm_block_unpin(s->mm, b->id)) != 0) expected_failure(w, "ohm_block_unpin", rc);
}

/* ---------------------------------------------------------------------------------------------------------
 * Mapped files: write through a read-write mapping, sync, read back through a second read-only mapping
 * ------------------------------------------------------------------------------------------------------- */

static void op_map(worker *w)
{
    stress *s = w->s;
    size_t len = (size_t)rng_range(&w->rng, 1, 128 << 10);
    ohm_buf *rw = ohm_buf_map_file(w->map_path, 0, len, OHM_MAP_READ | OHM_MAP_WRITE | OHM_MAP_CREATE);
    if (!rw) {
        expected_failure(w, "ohm_buf_map_file (rw)", ohm_last_error_code());
        return;
    }
    uint64_t pid = new_pid(w);
    pattern_fill(ohm_buf_data(rw), len, pid, 0);
    int rc = ohm_buf_sync(rw, 0, 0);
    if (rc) expected_failure(w, "ohm_buf_sync", rc);
    ohm_buf *ro = ohm_buf_map_file(w->map_path, 0, len, OHM_MAP_READ);
    if (!ro) {
        expected_failure(w, "ohm_buf_map_file (ro)", ohm_last_error_code());
    } else {
        verify_buf(w, "mapped file", ro, len, pid, 0);
        /* a write through the shared mapping is seen by the other one at once */
        uint8_t x = (uint8_t) ~((const uint8_t *)ohm_buf_data(ro))[len - 1], y = 0;
        if (ohm_buf_write(rw, len - 1, &x, 1) != 0 || ohm_buf_read(ro, len - 1, &y, 1) != 0 || x != y)
            stress_error(s, &s->c.integrity_errors, "worker %u: write through a MAP_SHARED mapping not visible",
                         w->index);
        if (ohm_buf_write(ro, 0, &x, 1) == 0)
            stress_error(s, &s->c.api_errors, "worker %u: a write through a read-only mapping succeeded", w->index);
        release_expect(w, "a read-only mapping", ro, 1);
    }
    release_expect(w, "a read-write mapping", rw, 1);
    COUNT(s, maps);
}

/* ---------------------------------------------------------------------------------------------------------
 * The thread
 * ------------------------------------------------------------------------------------------------------- */

int workers_init(stress *s)
{
    s->workers = calloc(s->o.threads, sizeof *s->workers);
    if (!s->workers) return -1;
    uint64_t budget = s->o.leak_rate > 0 ? s->o.max_leaks / s->o.threads : 0;
    for (unsigned i = 0; i < s->o.threads; i++)
        for (unsigned j = 0; j < STRESS_CONSUMERS; j++) s->workers[i].cons[j].fd = -1;
    for (unsigned i = 0; i < s->o.threads; i++) {
        worker *w = &s->workers[i];
        w->s = s;
        w->index = i;
        w->rng = rng_seed(s->o.seed, i);
        w->leak_budget = budget + (i < s->o.max_leaks % s->o.threads && s->o.leak_rate > 0);
        pthread_mutex_init(&w->inbox_lock, NULL);
        snprintf(w->map_path, sizeof w->map_path, "%s/map-%u", s->dir, i);
        for (unsigned j = 0; j < STRESS_CONSUMERS; j++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/spill-%u-%u.XXXXXX", s->dir, i, j);
            w->cons[j].w = w;
            w->cons[j].fd = mkstemp(path);
            if (w->cons[j].fd < 0) {
                fprintf(stderr, "ohm-stress: mkstemp %s: %s\n", path, strerror(errno));
                return -1;
            }
            unlink(path); /* the file lives as long as the descriptor */
        }
        for (unsigned j = 0; j < STRESS_BLOCKS; j++) w->blocks[j].w = w;
    }
    return 0;
}

static void worker_cleanup(worker *w)
{
    stress *s = w->s;
    for (unsigned i = 0; i < STRESS_RAW_SLOTS; i++) {
        raw_slot *r = &w->raw[i];
        if (!r->p) continue;
        raw_mark(r->p, r->size, r->pid, true, w);
        if (ohm_pool_free(s->pool, r->p)) stress_error(s, &s->c.api_errors, "ohm_pool_free: %s", ohm_last_error());
        r->p = NULL;
    }
    task_finish(w);
    for (unsigned i = 0; i < STRESS_BLOCKS; i++) {
        block_slot *b = &w->blocks[i];
        for (int tries = 0; atomic_load(&b->state) == BLOCK_CACHED && !block_remove(w, b); tries++) {
            if (tries > 100000) {
                stress_error(s, &s->c.api_errors, "block %s stays busy at the end", b->id);
                break;
            }
            sched_yield();
        }
    }
    if (unlink(w->map_path) != 0 && errno != ENOENT)
        stress_error(s, &s->c.api_errors, "unlink %s: %s", w->map_path, strerror(errno));
}

void *worker_main(void *arg)
{
    worker *w = arg;
    stress *s = w->s;
    while (!atomic_load_explicit(&s->stop, RELAXED)) {
        drain_inbox(w, 4);
        uint64_t r = rng_next(&w->rng) % 100;
        if (r < 35) op_buffer(w), COUNT(s, buf_ops);
        else if (r < 55) op_pool(w), COUNT(s, pool_ops);
        else if (r < 80) op_mm(w), COUNT(s, mm_ops);
        else if (r < 98) op_block(w), COUNT(s, block_ops);
        else op_map(w), COUNT(s, map_ops);
        uint64_t n = atomic_fetch_add_explicit(&s->c.ops, 1, RELAXED) + 1;
        if (s->o.ops && n >= s->o.ops) atomic_store(&s->stop, true);
    }
    /* Every worker has stopped sending once all are past the barrier: the inboxes can be emptied for good. */
    pthread_barrier_wait(&s->done);
    drain_inbox(w, UINT32_MAX);
    worker_cleanup(w);
    return NULL;
}

void workers_fini(stress *s)
{
    if (!s->workers) return;
    for (unsigned i = 0; i < s->o.threads; i++) {
        worker *w = &s->workers[i];
        for (unsigned j = 0; j < STRESS_CONSUMERS; j++)
            if (w->cons[j].fd >= 0) close(w->cons[j].fd);
        pthread_mutex_destroy(&w->inbox_lock);
        free(w->leaked);
    }
    free(s->workers);
    s->workers = NULL;
}
