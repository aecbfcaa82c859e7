/* Runtime callbacks that run in a host: a consumer's spill and the block cache's eviction. Each trampoline is
 * the core's callback; it checks that the calling thread may run the host (bind_host_call_begin), calls the
 * host's function, and passes its result or error code back to the core, which adds the host's message to the
 * error of the call that caused the callback ("spill of consumer sorter failed: <host message>"). */
#include "bind_internal.h"

#include <stdlib.h>

#define CONSUMER_MAGIC 0x6f686d63u /* "ohmc": marks a consumer made here, so a trigger's ctx can be found */

typedef struct bind_consumer {
    uint32_t magic;
    ohm_bind_host *host;
    ohm_bind_spill_fn *spill;
    void *ctx;
} bind_consumer;

struct ohm_bind_evictor {
    ohm_bind_host *host;
    ohm_bind_evict_listener_fn *fn;
    void *ctx;
};

static void consumer_record_free(void *arg)
{
    bind_consumer *bc = arg;
    bc->magic = 0;
    bind_host_unref(bc->host);
    free(bc);
}

static int64_t spill_trampoline(void *arg, uint64_t size, ohm_consumer *trigger)
{
    bind_consumer *bc = arg;
    if (!bc->spill) return 0;
    void *token;
    int rc = bind_host_call_begin(bc->host, &token);
    if (rc) return rc;
    /* A trigger made by this layer carries its ctx; one made through the core directly has none. */
    bind_consumer *tc = trigger ? ohm_consumer_arg(trigger) : NULL;
    int64_t r = bc->spill(bc->ctx, size, tc && tc->magic == CONSUMER_MAGIC ? tc->ctx : NULL);
    bind_host_call_end(bc->host, token);
    return r;
}

ohm_consumer *ohm_bind_consumer_create(ohm_bind_host *h, ohm_task *t, ohm_mem_mode mode, const char *name,
                                       ohm_bind_spill_fn *spill, void *ctx)
{
    if (!h) {
        ohm_set_error(OHM_EINVAL, "host is NULL");
        return NULL;
    }
    bind_consumer *bc = malloc(sizeof *bc);
    if (!bc) {
        ohm_set_error(OHM_ENOMEM, "out of memory creating a consumer");
        return NULL;
    }
    *bc = (bind_consumer){CONSUMER_MAGIC, h, spill, ctx};
    ohm_consumer *c = ohm_consumer_create(t, mode, name, spill_trampoline, bc);
    if (!c) {
        free(bc);
        return NULL;
    }
    bind_host_ref(h);
    ohm_consumer_on_free(c, consumer_record_free); /* also at ohm_task_end, for consumers still there */
    return c;
}

void *ohm_bind_consumer_ctx(const ohm_consumer *c)
{
    bind_consumer *bc = c ? ohm_consumer_arg(c) : NULL;
    return bc && bc->magic == CONSUMER_MAGIC ? bc->ctx : NULL;
}

int ohm_bind_consumer_destroy(ohm_consumer *c)
{
    if (!c) return ohm_set_error(OHM_EINVAL, "consumer is NULL");
    bind_consumer *bc = ohm_consumer_arg(c);
    if (!bc || bc->magic != CONSUMER_MAGIC) return ohm_set_error(OHM_EINVAL, "not a binding's consumer");
    return ohm_consumer_destroy(c); /* frees the record through its on_free hook; with pages, both stay */
}

ohm_bind_evictor *ohm_bind_evictor_create(ohm_bind_host *h, ohm_bind_evict_listener_fn *fn, void *ctx)
{
    if (!h || !fn) {
        ohm_set_error(OHM_EINVAL, h ? "eviction listener is NULL" : "host is NULL");
        return NULL;
    }
    ohm_bind_evictor *e = malloc(sizeof *e);
    if (!e) {
        ohm_set_error(OHM_ENOMEM, "out of memory creating an eviction listener");
        return NULL;
    }
    *e = (ohm_bind_evictor){h, fn, ctx};
    bind_host_ref(h);
    return e;
}

void ohm_bind_evictor_destroy(ohm_bind_evictor *e)
{
    if (!e) return;
    bind_host_unref(e->host);
    free(e);
}

int ohm_bind_evict(void *evictor, const char *block_id, ohm_buf *buf)
{
    ohm_bind_evictor *e = evictor;
    void *token;
    int rc = bind_host_call_begin(e->host, &token);
    if (rc) return rc;
    rc = e->fn(e->ctx, block_id, buf);
    bind_host_call_end(e->host, token);
    return rc;
}
