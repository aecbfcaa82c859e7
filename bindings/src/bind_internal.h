/* Inside the binding layer: what its files share and hosts never see. */
#ifndef OHM_BIND_INTERNAL_H
#define OHM_BIND_INTERNAL_H

#include "ohm_bind.h"

/* The layer sees the core only through ohm.h; these compiler hints are its own. */
#define bind_likely(x)    __builtin_expect(!!(x), 1)
#define bind_unlikely(x)  __builtin_expect(!!(x), 0)
#define BIND_COLD         __attribute__((cold, noinline))
#define BIND_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* Thread-locals of a library that JNI or Lua load with dlopen: initial-exec, as the core's OHM_TLS, for the same
 * reason and under the same budget (core/src/internal.h: small, fast-path state only). */
#define BIND_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* Before running host code for h on the calling thread: 0 (and *token for bind_host_call_end) if this thread
 * may run h now (an OWNER_THREAD host entered on this thread; an ANY_THREAD host, attached if it needs it),
 * else a negative OHM_E* code with the message set ("... its host is not running on this thread"). */
int bind_host_call_begin(ohm_bind_host *h, void **token);
void bind_host_call_end(ohm_bind_host *h, void *token);
/* Each consumer, evictor and closure holds a reference on its host; the last unref frees it. */
void bind_host_ref(ohm_bind_host *h);
void bind_host_unref(ohm_bind_host *h);

#endif
