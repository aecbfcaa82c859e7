/* Hosts and callback dispatch: the rules in ohm_bind.h's "Hosts and callback dispatch" section.
 *
 * A host is reference counted: its creator holds one reference and every consumer, evictor and closure made
 * through it holds one, so a callback that arrives after ohm_bind_host_destroy finds a dead host (and fails
 * with OHM_ECALLBACK) instead of freed memory.
 *
 * Which thread may run an OWNER_THREAD host is a thread-local stack of the hosts entered on it: a Lua binding
 * enters its state's host around each call that can call back (an acquire, a page allocation, a put into the
 * block cache, a GC finalizer), so "the state is running on this thread" is exactly "the host is on this
 * thread's stack".
 *
 * Leak reports: the layer is the core's leak handler (installed at the first host creation) and routes each
 * report to the innermost host entered on the reporting thread, else to the default host. An OWNER_THREAD host
 * that is not running on the reporting thread gets a copy queued, delivered at its next enter.
 *
 * Lock order: route_lock, then a host's lock; neither is held while host code runs.
 */
#include "bind_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUEUED 1024 /* leak reports kept for a host that is not running; more are counted and dropped */
#define MAX_DEPTH  16   /* hosts entered on one thread at once; deeper entries are counted, not recorded */

typedef struct queued {
    struct queued *next;
    ohm_bind_leak leak;
    char strings[]; /* text, json and host_site, each NUL-terminated */
} queued;

struct ohm_bind_host {
    ohm_bind_host_ops ops;
    void *arg;
    atomic_uint refs;
    atomic_bool dead;
    atomic_uint nqueued;  /* read without the lock by enter, to skip the drain when nothing waits */
    pthread_mutex_t lock; /* guards the queue */
    queued *head, *tail;
    uint64_t dropped;
};

static BIND_TLS struct {
    ohm_bind_host *stack[MAX_DEPTH];
    unsigned depth;
} tl_hosts;

static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t route_idle = PTHREAD_COND_INITIALIZER;
static ohm_bind_host *default_host;
static unsigned routing; /* reports on their way to default_host right now */
static bool router_installed;

static void router(void *arg, const ohm_leak_report *rep);

/* ---- life cycle ---- */

void bind_host_ref(ohm_bind_host *h) { atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed); }

void bind_host_unref(ohm_bind_host *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1) return;
    for (queued *q = h->head, *n; q; q = n) {
        n = q->next;
        free(q);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

ohm_bind_host *ohm_bind_host_create(const ohm_bind_host_ops *ops, void *host_arg)
{
    if (!ops) {
        ohm_set_error(OHM_EINVAL, "host ops are NULL");
        return NULL;
    }
    if (ops->threads != OHM_BIND_ANY_THREAD && ops->threads != OHM_BIND_OWNER_THREAD) {
        ohm_set_error(OHM_EINVAL, "host threads must be OHM_BIND_ANY_THREAD or OHM_BIND_OWNER_THREAD");
        return NULL;
    }
    ohm_bind_host *h = calloc(1, sizeof *h);
    if (!h) {
        ohm_set_error(OHM_ENOMEM, "out of memory creating a host");
        return NULL;
    }
    h->ops = *ops;
    h->arg = host_arg;
    atomic_init(&h->refs, 1);
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_lock(&route_lock);
    if (!router_installed) {
        ohm_leak_set_handler(router, NULL);
        router_installed = true;
    }
    pthread_mutex_unlock(&route_lock);
    return h;
}

int ohm_bind_host_destroy(ohm_bind_host *h)
{
    if (!h) return ohm_set_error(OHM_EINVAL, "host is NULL");
    if (atomic_exchange(&h->dead, true)) return ohm_set_error(OHM_ESTATE, "host already destroyed");
    pthread_mutex_lock(&route_lock);
    if (default_host == h) {
        default_host = NULL;
        while (routing) pthread_cond_wait(&route_idle, &route_lock); /* a report still on its way to h */
    }
    pthread_mutex_unlock(&route_lock);
    pthread_mutex_lock(&h->lock);
    uint64_t lost = h->dropped + atomic_load(&h->nqueued);
    pthread_mutex_unlock(&h->lock);
    if (lost)
        ohm_logf(OHM_LOG_WARN, "a host was destroyed with %llu leak reports it never received",
                 (unsigned long long)lost);
    bind_host_unref(h);
    return 0;
}

void ohm_bind_host_set_default(ohm_bind_host *h)
{
    pthread_mutex_lock(&route_lock);
    default_host = h && !atomic_load(&h->dead) ? h : NULL;
    while (routing && default_host != h) pthread_cond_wait(&route_idle, &route_lock);
    pthread_mutex_unlock(&route_lock);
}

/* ---- which thread runs a host ---- */

void ohm_bind_host_enter(ohm_bind_host *h)
{
    unsigned d = tl_hosts.depth++;
    if (d < MAX_DEPTH) tl_hosts.stack[d] = h;
    if (h && atomic_load_explicit(&h->nqueued, memory_order_relaxed)) ohm_bind_host_drain(h);
}

void ohm_bind_host_leave(ohm_bind_host *h)
{
    (void)h; /* enter/leave pair like push/pop; the host is named for symmetry and for readers */
    if (tl_hosts.depth) tl_hosts.depth--;
}

static bool on_this_thread(const ohm_bind_host *h)
{
    unsigned d = tl_hosts.depth < MAX_DEPTH ? tl_hosts.depth : MAX_DEPTH;
    for (unsigned i = d; i-- > 0;)
        if (tl_hosts.stack[i] == h) return true;
    return false;
}

bool ohm_bind_host_is_current(const ohm_bind_host *h)
{
    if (!h || atomic_load_explicit(&h->dead, memory_order_relaxed)) return false;
    return h->ops.threads == OHM_BIND_ANY_THREAD || on_this_thread(h);
}

int bind_host_call_begin(ohm_bind_host *h, void **token)
{
    *token = NULL;
    if (!h) return ohm_set_error(OHM_ECALLBACK, "callback has no host");
    if (atomic_load_explicit(&h->dead, memory_order_acquire))
        return ohm_set_error(OHM_ECALLBACK, "callback cannot run: its host was destroyed");
    if (h->ops.threads == OHM_BIND_OWNER_THREAD) {
        if (!on_this_thread(h))
            return ohm_set_error(OHM_ECALLBACK, "callback cannot run on this thread: its host is not running here");
        return 0;
    }
    if (!h->ops.attach) return 0;
    int rc = h->ops.attach(h->arg, token);
    if (rc >= 0) return 0;
    if (ohm_last_error_code() != rc) ohm_set_error(rc, "callback cannot run: the host could not attach this thread");
    return rc;
}

void bind_host_call_end(ohm_bind_host *h, void *token)
{
    if (h && h->ops.threads == OHM_BIND_ANY_THREAD && h->ops.detach) h->ops.detach(h->arg, token);
}

/* ---- leak reports ---- */

static void deliver(ohm_bind_host *h, const ohm_bind_leak *leak)
{
    if (h->ops.leak) {
        h->ops.leak(h->arg, leak);
    } else {
        ohm_logf(OHM_LOG_WARN, "%s", leak->text);
    }
}

/* Builds the host's view of rep (json in a buffer the caller frees when it is not stack) and delivers it. */
static void deliver_report(ohm_bind_host *h, const ohm_leak_report *rep)
{
    char small[4096], *json = small;
    size_t need = ohm_leak_report_json(rep, small, sizeof small);
    if (need >= sizeof small && (json = malloc(need + 1)) != NULL) ohm_leak_report_json(rep, json, need + 1);
    if (!json) json = small; /* truncated JSON beats no report */
    ohm_bind_leak leak = {rep->reason, rep->buffer_id, rep->size, rep->created.host_site, rep->text, json};
    void *token;
    if (bind_host_call_begin(h, &token) == 0) {
        deliver(h, &leak);
        bind_host_call_end(h, token);
    } else {
        ohm_logf(OHM_LOG_WARN, "%s", rep->text); /* the host cannot take it: the log, not silence */
    }
    if (json != small) free(json);
}

static void enqueue(ohm_bind_host *h, const ohm_leak_report *rep)
{
    size_t jn = ohm_leak_report_json(rep, NULL, 0);
    size_t tn = strlen(rep->text), sn = rep->created.host_site ? strlen(rep->created.host_site) : 0;
    pthread_mutex_lock(&h->lock);
    bool full = atomic_load(&h->nqueued) >= MAX_QUEUED;
    pthread_mutex_unlock(&h->lock);
    queued *q = full ? NULL : malloc(sizeof *q + tn + jn + sn + 3);
    if (!q) {
        pthread_mutex_lock(&h->lock);
        h->dropped++;
        pthread_mutex_unlock(&h->lock);
        return;
    }
    char *text = q->strings, *json = text + tn + 1, *site = json + jn + 1;
    memcpy(text, rep->text, tn + 1);
    ohm_leak_report_json(rep, json, jn + 1);
    if (rep->created.host_site) memcpy(site, rep->created.host_site, sn + 1);
    q->leak = (ohm_bind_leak){rep->reason, rep->buffer_id, rep->size, rep->created.host_site ? site : NULL, text, json};
    q->next = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->tail) h->tail->next = q;
    else h->head = q;
    h->tail = q;
    atomic_fetch_add(&h->nqueued, 1);
    pthread_mutex_unlock(&h->lock);
}

int ohm_bind_host_drain(ohm_bind_host *h)
{
    if (!h || !ohm_bind_host_is_current(h)) return 0;
    pthread_mutex_lock(&h->lock);
    queued *q = h->head;
    uint64_t dropped = h->dropped;
    h->head = h->tail = NULL;
    h->dropped = 0;
    atomic_store(&h->nqueued, 0);
    pthread_mutex_unlock(&h->lock);
    if (dropped)
        ohm_logf(OHM_LOG_WARN, "%llu leak reports for a host were dropped: its queue was full",
                 (unsigned long long)dropped);
    int n = 0;
    void *token;
    bool ok = bind_host_call_begin(h, &token) == 0;
    for (queued *next; q; q = next, n++) {
        next = q->next;
        if (ok) deliver(h, &q->leak);
        else ohm_logf(OHM_LOG_WARN, "%s", q->leak.text);
        free(q);
    }
    if (ok) bind_host_call_end(h, token);
    return n;
}

static void router(void *arg, const ohm_leak_report *rep)
{
    (void)arg;
    /* The innermost host running on this thread: a report made while a host runs is that host's. */
    unsigned d = tl_hosts.depth < MAX_DEPTH ? tl_hosts.depth : MAX_DEPTH;
    ohm_bind_host *h = d ? tl_hosts.stack[d - 1] : NULL;
    if (h && !atomic_load(&h->dead)) {
        deliver_report(h, rep);
        return;
    }
    pthread_mutex_lock(&route_lock);
    h = default_host;
    if (h) routing++;
    pthread_mutex_unlock(&route_lock);
    if (!h) {
        ohm_logf(OHM_LOG_WARN, "%s", rep->text);
        return;
    }
    if (ohm_bind_host_is_current(h)) deliver_report(h, rep);
    else enqueue(h, rep);
    pthread_mutex_lock(&route_lock);
    if (--routing == 0) pthread_cond_broadcast(&route_idle);
    pthread_mutex_unlock(&route_lock);
}

static void checkpoint_report(void *arg, const ohm_leak_report *rep) { deliver_report(arg, rep); }

int64_t ohm_bind_leak_check(ohm_bind_host *h, uint64_t mark)
{
    if (!h) return ohm_set_error(OHM_EINVAL, "host is NULL");
    return ohm_leak_check(mark, checkpoint_report, h);
}
