/* Errors, the log handler and OHM_* environment parsing.
 *
 * Every failure leaves a code and a message per thread, so a binding can turn it into a Java
 * exception or a Lua error without the core knowing either exists. Logging goes through one replaceable
 * handler; the default writes WARN and above to stderr (a JVM host replaces it with System.Logger). */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERROR_MESSAGE_MAX 512

static OHM_TLS int tl_code;
static OHM_TLS int tl_errno;
/* The text of this thread's last error: a heap buffer of ERROR_MESSAGE_MAX bytes made at the thread's first error
 * and freed at its exit by a key of its own, not a thread-local array: thread-locals must stay small (OHM_TLS in
 * internal.h). NULL until then, and when it could not be made (the code's own text stands in). The key is not
 * lifecycle.c's: errors are raised during process start, which that key's setup would wait for. */
static OHM_TLS char *tl_message;
static pthread_key_t message_key;
static pthread_once_t message_key_once = PTHREAD_ONCE_INIT;
static bool message_key_made;

static void message_free(void *m)
{
    free(m);
    tl_message = NULL;
}

static void message_key_make(void) { message_key_made = pthread_key_create(&message_key, message_free) == 0; }

static char *message_buffer(void)
{
    if (ohm_likely(tl_message != NULL)) return tl_message;
    pthread_once(&message_key_once, message_key_make);
    if (!message_key_made) return NULL;
    char *m = malloc(ERROR_MESSAGE_MAX);
    if (m && pthread_setspecific(message_key, m) != 0) {
        free(m);
        m = NULL;
    }
    return tl_message = m;
}

const char *ohm_strerror(int code)
{
    switch (code) {
#define STRERROR_CASE(name, value, kind, text) \
    case OHM_##name: return "OHM_" #name ": " text;
        OHM_ERRORS(STRERROR_CASE)
#undef STRERROR_CASE
    default: return "OHM_E?: unknown error code";
    }
}

const char *ohm_last_error(void)
{
    if (tl_message) return tl_message;
    return tl_code ? ohm_strerror(tl_code) : "";
}

int ohm_last_error_code(void) { return tl_code; }
int ohm_last_errno(void) { return tl_errno; }

void ohm__error_clear(void)
{
    tl_code = 0;
    tl_errno = 0;
    if (tl_message) tl_message[0] = '\0';
}

static void set_error(int code, int err, const char *fmt, va_list ap) OHM_PRINTF(3, 0);
static void set_error(int code, int err, const char *fmt, va_list ap)
{
    tl_code = code;
    tl_errno = err;
    char *m = message_buffer();
    if (m) vsnprintf(m, ERROR_MESSAGE_MAX, fmt, ap);
}

int ohm__error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(code, 0, fmt, ap);
    va_end(ap);
    return code;
}

int ohm_set_error(int code, const char *message) { return ohm__error(code, "%s", message ? message : ""); }

/* The public name of ohm__error: the same function, exported. */
int ohm_set_errorf(int code, const char *fmt, ...) __attribute__((alias("ohm__error")));

int ohm__error_sys(int code, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(code, err, fmt, ap);
    va_end(ap);
    size_t n = tl_message ? strlen(tl_message) : ERROR_MESSAGE_MAX;
    if (n + 8 < ERROR_MESSAGE_MAX) snprintf(tl_message + n, ERROR_MESSAGE_MAX - n, ": %s", strerror(err));
    return code;
}

/* ---- logging ---- */

static void default_log(void *arg, ohm_log_level level, const char *message)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    (void)arg;
    fprintf(stderr, "ohm %s: %s\n", names[level], message);
}

static _Atomic(ohm_log_fn *) log_fn = default_log;
static _Atomic(void *) log_arg;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static int log_threshold = OHM_LOG_WARN; /* written once, under log_once */

static void log_init(void)
{
    const char *v = getenv("OHM_LOG_LEVEL");
    if (!v) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(v, names[i])) log_threshold = i;
    if (!strcasecmp(v, "off")) log_threshold = OHM_LOG_ERROR + 1;
}

void ohm_set_log_handler(ohm_log_fn *fn, void *arg)
{
    /* The argument is published before the function, so a concurrent logger never pairs fn with a stale arg
     * of a different handler for longer than one message. */
    atomic_store(&log_arg, arg);
    atomic_store(&log_fn, fn ? fn : default_log);
}

bool ohm__log_enabled(ohm_log_level level)
{
    pthread_once(&log_once, log_init);
    /* A replaced handler receives everything; the threshold only filters the default stderr writer. */
    return atomic_load(&log_fn) != default_log || (int)level >= log_threshold;
}

static void vlog(ohm_log_level level, const char *fmt, va_list ap) OHM_PRINTF(2, 0);
static void vlog(ohm_log_level level, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    ohm_log_fn *fn = atomic_load(&log_fn);
    fn(atomic_load(&log_arg), level, msg);
}

void ohm__log(ohm_log_level level, const char *fmt, ...)
{
    if (!ohm__log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void ohm_logf(ohm_log_level level, const char *fmt, ...)
{
    if (level < OHM_LOG_DEBUG || level > OHM_LOG_ERROR || !ohm__log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- environment ---- */

static int parse_u64(const char *s, uint64_t *out, bool allow_suffix)
{
    char *end;
    errno = 0;
    if (*s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s) return -1;
    unsigned shift = 0;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k':
        case 'K': shift = 10; break;
        case 'm':
        case 'M': shift = 20; break;
        case 'g':
        case 'G': shift = 30; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (*end) return -1;
    if (shift && v > (UINT64_MAX >> shift)) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static uint64_t env_number(const char *name, uint64_t dflt, bool allow_suffix)
{
    const char *v = getenv(name);
    uint64_t out;
    if (!v || !*v) return dflt;
    if (parse_u64(v, &out, allow_suffix) == 0) return out;
    ohm__log(OHM_LOG_WARN, "ignoring malformed %s=%s", name, v);
    return dflt;
}

uint64_t ohm__env_u64(const char *name, uint64_t dflt) { return env_number(name, dflt, false); }

unsigned ohm__env_uint(const char *name, unsigned dflt, unsigned max)
{
    uint64_t v = env_number(name, dflt, false);
    if (v <= max) return (unsigned)v;
    ohm__log(OHM_LOG_WARN, "ignoring %s=%s: the maximum is %u", name, getenv(name), max);
    return dflt;
}
size_t ohm__env_size(const char *name, size_t dflt) { return (size_t)env_number(name, dflt, true); }

bool ohm__env_bool(const char *name, bool dflt)
{
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcasecmp(v, "yes")) return true;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcasecmp(v, "no")) return false;
    ohm__log(OHM_LOG_WARN, "ignoring malformed %s=%s", name, v);
    return dflt;
}

bool ohm_env_flag(const char *name, bool dflt) { return ohm__env_bool(name, dflt); }

#ifdef OHM_DEBUG
/* Straight to stderr, not through the log handler: the process is about to abort and the handler may be the
 * host's, running on state this failure says is broken. Only debug builds get here. */
void ohm__assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "ohm: invariant failed: %s (%s:%d, %s)\n", cond, file, line, func);
    abort();
}
#endif
