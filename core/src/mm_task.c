/* The memory manager's tasks and consumers (Spark's TaskMemoryManager): a task's consumers acquire execution
 * memory from their mode's fair share (mm.c) and, when it falls short, other consumers of the task are asked to
 * spill in Spark's order, with bounded rounds; OFF_HEAP consumers get that memory as pages, buffers from the
 * manager's pool whose last release gives their bytes back. */
#define _GNU_SOURCE
#include "mm_internal.h"

#include "buf.h"
#include "list.h"

#include <stdlib.h>
#include <string.h>

/* ---- tasks ---- */

ohm_task *ohm_task_create(ohm_mm *mm, uint64_t id)
{
    if (!mm) {
        ohm__error(OHM_EINVAL, "manager is NULL");
        return NULL;
    }
    ohm_task *t = aligned_alloc(_Alignof(ohm_task), sizeof *t); /* a multiple of its alignment */
    if (!t) {
        ohm__error(OHM_ENOMEM, "out of memory creating task %llu", (unsigned long long)id);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->mm = mm;
    t->id = id;
    mm_lock(mm);
    for (ohm_task *o = mm->tasks; o; o = o->next)
        if (o->id == id) {
            mm_unlock(mm);
            free(t);
            ohm__error(OHM_EINVAL, "task %llu exists", (unsigned long long)id);
            return NULL;
        }
    t->timeout_ms = mm->wait_timeout_ms;
    t->lock = 1; /* as mm_lock took every task's: mm_unlock releases it with theirs */
    LIST_PUSH_FRONT(mm->tasks, t, next, prev);
    mm->ntasks++;
    mm_unlock(mm);
    return t;
}

uint64_t ohm_task_id(const ohm_task *t) { return t ? t->id : 0; }

void ohm_task_set_wait_timeout(ohm_task *t, uint64_t timeout_ms)
{
    if (!t) return;
    mm_lock(t->mm);
    t->timeout_ms = timeout_ms;
    mm_unlock(t->mm);
}

int ohm_mm_cancel_task(ohm_mm *mm, uint64_t task_id)
{
    if (!mm) return ohm__error(OHM_EINVAL, "manager is NULL");
    mm_lock(mm);
    ohm_task *t = mm->tasks;
    while (t && t->id != task_id) t = t->next;
    if (t) {
        t->cancel = true;
        wake_waiters(mm);
    }
    mm_unlock(mm);
    return t ? 0 : ohm__error(OHM_EINVAL, "no live task %llu", (unsigned long long)task_id);
}

/* The locked paths of ohm_task_acquire and ohm_task_release, out of line: the fast paths then need no frame. */
static OHM_NOINLINE int64_t task_acquire_slow(ohm_task *t, int mode, uint64_t n)
{
    mm_lock(t->mm);
    int64_t g = exec_acquire_locked(t->mm, t, mode, n);
    mm_unlock(t->mm);
    return g;
}

static OHM_NOINLINE int64_t task_release_slow(ohm_task *t, int mode, uint64_t n)
{
    bool over = false;
    uint64_t held;
    mm_lock(t->mm);
    uint64_t r = exec_release_locked(t->mm, t, mode, n, &over, &held);
    mm_unlock(t->mm);
    if (over) log_over_release("task", t->id, n, held);
    return (int64_t)r;
}

int64_t ohm_task_acquire(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "acquire");
    if (!rc) rc = check_size(n, "acquire");
    if (rc) return rc;
    if (!n) return 0;
    if (exec_acquire_fast(t, NULL, mode, n)) return (int64_t)n;
    return task_acquire_slow(t, mode, n);
}

int64_t ohm_task_release(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "release");
    if (!rc) rc = check_size(n, "release");
    if (rc) return rc;
    if (exec_release_fast(t, NULL, mode, n)) return (int64_t)n;
    return task_release_slow(t, mode, n);
}

int ohm_task_acquire_unroll(ohm_task *t, ohm_mem_mode mode, const char *group, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "unroll");
    if (!rc) rc = check_size(n, "unroll");
    if (rc || !n) return rc;
    mm_lock(t->mm);
    rc = storage_acquire_locked(t->mm, t, mode, group, n, "unroll");
    if (!rc) t->unroll[mode] += n;
    mm_unlock(t->mm);
    return rc;
}

int64_t ohm_task_release_unroll(ohm_task *t, ohm_mem_mode mode, uint64_t n)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    int rc = check_mode(mode, "unroll release");
    if (rc) return rc;
    mm_lock(t->mm);
    uint64_t r = min64(n, t->unroll[mode]);
    t->unroll[mode] -= r;
    t->mm->m[mode].sto_used -= r;
    wake_waiters(t->mm); /* Spark does not notify here; a waiter may gain from it, so we do */
    mm_unlock(t->mm);
    return (int64_t)r;
}

static void consumer_free(ohm_consumer *c)
{
    if (c->on_free) c->on_free(c->arg);
    free(c->name);
    free(c);
}

typedef struct page_ref {
    ohm_buf *buf;
    uint64_t id;
} page_ref;

/* Detaches the pages of t's consumers -- the task's release covers their bytes, so their last release only
 * frees memory -- and lists them in live (NULL when there are none or the list cannot be allocated: those pages
 * are then freed at their last release). Returns how many pages there are; *k how many were listed. Lock held. */
static size_t task_detach_pages(ohm_mm *mm, ohm_task *t, page_ref **live, size_t *k)
{
    (void)mm; /* read only by the debug build's count */
    size_t npages = 0;
    for (ohm_consumer *c = t->consumers; c; c = c->next) npages += c->npages;
    page_ref *l = npages ? malloc(npages * sizeof *l) : NULL;
    size_t n = 0;
    for (ohm_consumer *c = t->consumers; c; c = c->next)
        for (page *p = c->pages; p; p = p->next) {
            p->consumer = NULL;
            ohm_debug_only(mm->detached_pages++;)
            if (l) l[n++] = (page_ref){p->buf, p->buf_id};
        }
    *live = l;
    *k = n;
    return npages;
}

/* Releases everything t holds in both modes, leaves the fair shares and unlinks t from the manager. Returns the
 * execution bytes it still held (a leak). Lock held. */
static uint64_t task_unlink(ohm_mm *mm, ohm_task *t)
{
    uint64_t leaked = 0;
    for (int i = 0; i < OHM_MM_MODES; i++) {
        struct mode_state *s = &mm->m[i];
        leaked += t->held[i];
        s->exec_used -= t->held[i];
        s->sto_used -= t->unroll[i];
        if (t->registered[i]) s->ntasks--;
    }
    LIST_UNLINK(mm->tasks, t, next, prev);
    mm->ntasks--;
    wake_waiters(mm);
    return leaked;
}

int64_t ohm_task_end(ohm_task *t)
{
    if (!t) return ohm__error(OHM_EINVAL, "task is NULL");
    ohm_mm *mm = t->mm;
    page_ref *live;
    size_t k;
    mm_lock(mm);
    size_t npages = task_detach_pages(mm, t, &live, &k);
    ohm_consumer *ended = t->consumers; /* freed below, once the lock is dropped (their on_free hooks) */
    t->consumers = t->consumers_tail = NULL;
    uint64_t leaked = task_unlink(mm, t);
    mm_unlock(mm);

    if (leaked)
        ohm__log(OHM_LOG_WARN, "memory leak detected in task %llu: %llu bytes", (unsigned long long)t->id,
                 (unsigned long long)leaked);
    if (npages && !live)
        ohm__log(OHM_LOG_WARN,
                 "task %llu: out of memory listing %zu pages to free; they are freed at their "
                 "last release",
                 (unsigned long long)t->id, npages);
    for (size_t i = 0; i < k; i++) ohm_buf_reclaim(live[i].buf, live[i].id);
    free(live);
    for (ohm_consumer *c = ended, *cn; c; c = cn) {
        cn = c->next;
        consumer_free(c);
    }
    free(t);
    return (int64_t)leaked;
}

/* ---- consumers (TaskMemoryManager) ---- */

ohm_consumer *ohm_consumer_create(ohm_task *t, ohm_mem_mode mode, const char *name, ohm_spill_fn *spill, void *arg)
{
    if (!t) {
        ohm__error(OHM_EINVAL, "task is NULL");
        return NULL;
    }
    if (check_mode(mode, "consumer create")) return NULL;
    ohm_consumer *c = calloc(1, sizeof *c);
    char *nm = strdup(name ? name : "consumer");
    if (!c || !nm) {
        free(c);
        free(nm);
        ohm__error(OHM_ENOMEM, "out of memory creating a consumer");
        return NULL;
    }
    c->task = t;
    c->mode = mode;
    c->name = nm;
    c->spill = spill;
    c->arg = arg;
    mm_lock(t->mm);
    LIST_PUSH_BACK(t->consumers, t->consumers_tail, c, next, prev);
    t->nconsumers++;
    mm_unlock(t->mm);
    return c;
}

int ohm_consumer_destroy(ohm_consumer *c)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    ohm_task *t = c->task;
    ohm_mm *mm = t->mm;
    mm_lock(mm);
    if (c->npages) {
        uint64_t n = c->npages;
        mm_unlock(mm);
        return ohm__error(OHM_ESTATE, "consumer %s still has %llu pages", c->name, (unsigned long long)n);
    }
    bool over = false;
    uint64_t held;
    if (c->used) exec_release_locked(mm, t, c->mode, c->used, &over, &held);
    LIST_UNLINK_TAIL(t->consumers, t->consumers_tail, c, next, prev);
    t->nconsumers--;
    mm_unlock(mm);
    consumer_free(c);
    return 0;
}

void ohm_consumer_on_free(ohm_consumer *c, ohm_consumer_free_fn *fn)
{
    if (c) c->on_free = fn;
}

void *ohm_consumer_arg(const ohm_consumer *c) { return c ? c->arg : NULL; }

uint64_t ohm_consumer_used(const ohm_consumer *c)
{
    if (!c) return 0;
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    uint64_t u = c->used;
    mm_unlock(mm);
    return u;
}

/* ---- the spill order ---- */

typedef struct candidate {
    ohm_consumer *c;
    uint64_t key; /* its usage when the round began (Spark's TreeMap key) */
    uint64_t low; /* its lowest usage after a spill in this round */
} candidate;

static int cmp_candidate(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* The consumer Spark asks next: the smallest key >= missing (ceilingEntry), else the largest (lastEntry);
 * among equal keys the last one of their list. The array is sorted by key, stably by creation. */
static size_t pick_candidate(const candidate *cand, size_t n, uint64_t missing)
{
    size_t i = 0;
    while (i < n && cand[i].key < missing) i++;
    if (i == n) return n - 1;
    while (i + 1 < n && cand[i + 1].key == cand[i].key) i++;
    return i;
}

/* A cancel (ohm_mm_cancel_task) is taken by the first wait or spill round that sees it. Lock held. */
static int take_cancel(ohm_task *t)
{
    if (!t->cancel) return 0;
    t->cancel = false;
    return ohm__error(OHM_ECANCELED, "task %llu: acquire cancelled while spilling", (unsigned long long)t->id);
}

/* Runs one spill without the lock and returns the bytes the victim released meanwhile, measured (what the
 * runtime trusts, whatever the callback says), or an error: the callback's own, or OHM_ECALLBACK when it
 * reported more than it released -- re-asking a consumer on the strength of such a report need never end.
 * Releases made by the callback stay made either way. */
static int64_t run_spill(ohm_mm *mm, ohm_consumer *victim, uint64_t size, ohm_consumer *trigger)
{
    uint64_t before = victim->released;
    mm_unlock(mm);
    ohm__error_clear();
    int64_t r = victim->spill(victim->arg, size, trigger);
    mm_lock(mm);
    uint64_t released = victim->released - before;
    victim->spills++;
    victim->task->spills++;
    victim->spill_bytes += released;
    victim->task->spill_bytes += released;
    if (r < 0) return callback_failed(callback_code(r), "spill of consumer", victim->name);
    if ((uint64_t)r > released)
        return ohm__error(OHM_ECALLBACK, "spill of consumer %s reported %lld bytes but released %llu", victim->name,
                          (long long)r, (unsigned long long)released);
    return (int64_t)released;
}

/* The task's other consumers of mode that hold memory and can spill, sorted by usage, stably by creation (*cand
 * NULL and *k 0 when there are none). 0, or OHM_ENOMEM. Lock held. */
static int spill_candidates(ohm_task *t, ohm_consumer *c, int mode, candidate **cand, size_t *k)
{
    size_t cap = 0;
    *cand = NULL;
    *k = 0;
    for (ohm_consumer *o = t->consumers; o; o = o->next) cap++;
    if (!cap) return 0;
    candidate *a = malloc(cap * sizeof *a);
    if (!a) return ohm__error(OHM_ENOMEM, "out of memory listing consumers to spill");
    size_t n = 0;
    for (ohm_consumer *o = t->consumers; o; o = o->next)
        if (o != c && o->used > 0 && (int)o->mode == mode && o->spill) a[n++] = (candidate){o, o->used, o->used};
    /* insertion sort keeps creation order among equal keys (qsort is not stable) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp_candidate(&a[j - 1], &a[j]) > 0; j--) {
            candidate tmp = a[j];
            a[j] = a[j - 1];
            a[j - 1] = tmp;
        }
    *cand = a;
    *k = n;
    return 0;
}

/* One round of spills of the other consumers, in Spark's order, until c has n bytes (*got, added to); the round
 * rule is consumer_acquire_locked's. 0 or an error. Lock held (dropped around spills). */
static int spill_others(ohm_mm *mm, ohm_consumer *c, uint64_t n, uint64_t *got)
{
    ohm_task *t = c->task;
    int mode = c->mode;
    candidate *cand;
    size_t k;
    int err = spill_candidates(t, c, mode, &cand, &k);
    while (!err && k > 0 && *got < n && !(err = take_cancel(t))) {
        size_t i = pick_candidate(cand, k, n - *got);
        ohm_consumer *victim = cand[i].c;
        int64_t released = run_spill(mm, victim, n - *got, c);
        if (released < 0) {
            err = (int)released;
            break;
        }
        if ((err = take_cancel(t))) break;
        int64_t more = released > 0 ? exec_acquire_locked(mm, t, mode, n - *got) : 0;
        if (more < 0) {
            err = (int)more;
            break;
        }
        *got += (uint64_t)more;
        if (more > 0 && victim->used < cand[i].low) {
            cand[i].low = victim->used;
        } else { /* nothing new: not released, taken back, or not reaching the requester */
            memmove(&cand[i], &cand[i + 1], (k - i - 1) * sizeof *cand);
            k--;
        }
    }
    free(cand);
    return err;
}

/* Asks the requester itself to spill, once, when the others left it short (Spark asks it last). 0 or an
 * error. Lock held (dropped around the spill). */
static int spill_requester(ohm_mm *mm, ohm_consumer *c, uint64_t n, uint64_t *got)
{
    ohm_task *t = c->task;
    if (*got >= n || !c->spill) return 0;
    int err = take_cancel(t);
    if (err) return err;
    int64_t released = run_spill(mm, c, n - *got, c);
    if (released < 0) return (int)released;
    if ((err = take_cancel(t)) || released == 0) return err;
    int64_t more = exec_acquire_locked(mm, t, c->mode, n - *got);
    if (more < 0) return (int)more;
    *got += (uint64_t)more;
    return 0;
}

/* TaskMemoryManager.acquireExecutionMemory. mm->lock held (dropped around spills, evictions and waits).
 * Every round ends. Spark asks a consumer again as long as it reports bytes; here it stays in the round only
 * while each spill takes its usage below where any earlier one left it and the acquire after it grants the
 * requester something. Spark's rule asks a spill that releases and takes back forever, and one that releases
 * what is missing, 1 byte, once per byte its task holds above its fair share (nothing reaches the requester
 * until then). A cancel is seen before and after each spill. */
static int64_t consumer_acquire_locked(ohm_mm *mm, ohm_consumer *c, uint64_t n)
{
    ohm_task *t = c->task;
    int mode = c->mode;
    int64_t r = exec_acquire_locked(mm, t, mode, n);
    if (r < 0) return r;
    uint64_t got = (uint64_t)r;
    int err = got < n ? spill_others(mm, c, n, &got) : 0;
    if (!err) err = spill_requester(mm, c, n, &got);
    if (err) { /* nothing granted: what this call got goes back, so the accounting is as before */
        bool over = false;
        uint64_t held;
        if (got) exec_release_locked(mm, t, mode, got, &over, &held);
        return err;
    }
    c->used += got;
    c->peak = max64(c->peak, c->used);
    return (int64_t)got;
}

/* The locked paths of ohm_consumer_acquire and ohm_consumer_release, out of line like the task's. */
static OHM_NOINLINE int64_t consumer_acquire_slow(ohm_consumer *c, uint64_t n)
{
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    int64_t g = consumer_acquire_locked(mm, c, n);
    mm_unlock(mm);
    return g;
}

static OHM_NOINLINE int64_t consumer_release_slow(ohm_consumer *c, uint64_t n)
{
    ohm_mm *mm = c->task->mm;
    mm_lock(mm);
    uint64_t had = c->used, r = min64(n, had), held;
    bool over = false;
    c->used -= r;
    c->released += r;
    exec_release_locked(mm, c->task, c->mode, r, &over, &held);
    mm_unlock(mm);
    if (n > had)
        ohm__log(OHM_LOG_WARN, "consumer %s released %llu bytes but held only %llu; released those", c->name,
                 (unsigned long long)n, (unsigned long long)had);
    if (over) log_over_release("task", c->task->id, r, held);
    return (int64_t)r;
}

int64_t ohm_consumer_acquire(ohm_consumer *c, uint64_t n)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    int rc = check_size(n, "consumer acquire");
    if (rc) return rc;
    if (!n) return 0;
    if (exec_acquire_fast(c->task, c, c->mode, n)) return (int64_t)n;
    return consumer_acquire_slow(c, n);
}

int64_t ohm_consumer_release(ohm_consumer *c, uint64_t n)
{
    if (!c) return ohm__error(OHM_EINVAL, "consumer is NULL");
    int rc = check_size(n, "consumer release");
    if (rc) return rc;
    if (exec_release_fast(c->task, c, c->mode, n)) return (int64_t)n;
    return consumer_release_slow(c, n);
}

/* ---- pages ---- */

/* A page's last release (buf_free_fn): returns its accounting unless its task ended, then frees the memory. */
static void page_free(void *ctx, void *data, size_t size)
{
    (void)size;
    page *p = ctx;
    ohm_mm *mm = p->mm;
    mm_lock(mm);
    ohm_consumer *c = p->consumer;
    if (c) {
        LIST_UNLINK(c->pages, p, next, prev);
        c->npages--;
        uint64_t r = min64(p->size, c->used);
        c->used -= r;
        c->released += r;
        bool over = false;
        uint64_t held;
        exec_release_locked(mm, c->task, c->mode, p->size, &over, &held);
    } else {
        ohm_debug_only(mm->detached_pages--;)
    }
    mm->npages--;
    mm_unlock(mm);
    ohm_pool_free(p->pool, data);
    free(p);
}

/* A page of size bytes from the manager's pool, wrapped in a buffer whose last release is page_free; not yet
 * on a consumer's list. NULL when out of memory (nothing allocated then). */
static ohm_buf *page_new(ohm_mm *mm, uint64_t size, page **out)
{
    page *p = calloc(1, sizeof *p);
    void *data = p ? ohm_pool_alloc(mm->pool, (size_t)size) : NULL;
    ohm_buf *b = data ? buf_root_new(data, (size_t)size, OHM_ORIGIN_POOL, 0, page_free, p, mm->pool) : NULL;
    if (!b) {
        if (data) ohm_pool_free(mm->pool, data);
        free(p);
        return NULL;
    }
    p->mm = mm;
    p->pool = mm->pool;
    p->size = size;
    p->buf = b;
    p->buf_id = ohm_buf_id(b);
    *out = p;
    return b;
}

ohm_buf *ohm_consumer_alloc_page(ohm_consumer *c, size_t size)
{
    if (!c) {
        ohm__error(OHM_EINVAL, "consumer is NULL");
        return NULL;
    }
    if (c->mode != OHM_OFF_HEAP) {
        ohm__error(OHM_EINVAL, "consumer %s is ON_HEAP: its pages are allocated by the host", c->name);
        return NULL;
    }
    ohm_mm *mm = c->task->mm;
    uint64_t want = max64(size, mm->page_size);
    int64_t got = ohm_consumer_acquire(c, want);
    if (got < 0) return NULL;
    if (got == 0 || (uint64_t)got < size) {
        if (got) ohm_consumer_release(c, (uint64_t)got);
        ohm__error(OHM_ELIMIT, "consumer %s: page of %zu bytes not granted (%lld bytes available)", c->name, size,
                   (long long)got);
        return NULL;
    }
    page *p = NULL;
    ohm_buf *b = page_new(mm, (uint64_t)got, &p);
    if (!b) {
        ohm_consumer_release(c, (uint64_t)got);
        ohm__error(OHM_ENOMEM, "consumer %s: out of memory allocating a page of %lld bytes", c->name, (long long)got);
        return NULL;
    }
    mm_lock(mm);
    p->consumer = c;
    LIST_PUSH_FRONT(c->pages, p, next, prev);
    c->npages++;
    mm->npages++;
    mm_unlock(mm);
    return b;
}
