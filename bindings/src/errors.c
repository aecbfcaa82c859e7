/* The one table from an OHM_E* code to how each host shows it. A Java binding throws java_class with
 * ohm_bind_message(code); the Lua binding raises the message for programmer errors (raise) and returns
 * nil, message, name for runtime failures, as luv and luaposix do. */
#include "bind_internal.h"

#include <string.h>

/* The Java exception class of each code, by the code's name: a code added to OHM_ERRORS without one here does
 * not compile (JAVA_<name> undeclared). */
#define JAVA_OK     NULL
#define JAVA_ENOMEM "org/ohm/OhmOutOfMemoryError"
#define JAVA_EINVAL "java/lang/IllegalArgumentException"
#define JAVA_ESTATE "java/lang/IllegalStateException"
#define JAVA_ERANGE "java/lang/IndexOutOfBoundsException"
/* Spark users expect an OutOfMemoryError subclass ("Unable to acquire X bytes of memory, got Y"). */
#define JAVA_ELIMIT    "org/ohm/OhmOutOfMemoryError"
#define JAVA_ESYS      "org/ohm/OhmIOException"
#define JAVA_EPERM     "java/lang/SecurityException"
#define JAVA_ETIMEDOUT "org/ohm/OhmTimeoutException"
/* A cancelled wait is how Thread.interrupt() reaches a task waiting for its share. */
#define JAVA_ECANCELED "org/ohm/OhmInterruptedException"
#define JAVA_ECALLBACK "org/ohm/OhmCallbackException"

#define KIND_USAGE   true
#define KIND_RUNTIME false

/* Indexed by -code. The codes are dense (0, -1, -2, ...): a value outside 0 .. -(count-1) overruns this array
 * and two codes sharing one repeat a case in ohm_strerror's switch, and either fails the build. */
static const ohm_bind_error table[OHM_BIND_ERROR_COUNT] = {
#define BIND_ERROR_ROW(name, value, kind, text) [-(value)] = {OHM_##name, #name, JAVA_##name, KIND_##kind},
    OHM_ERRORS(BIND_ERROR_ROW)
#undef BIND_ERROR_ROW
};

static const ohm_bind_error unknown = {0, "EUNKNOWN", "java/lang/IllegalStateException", false};

const ohm_bind_error *ohm_bind_error_of(int code)
{
    if (code <= 0 && -code < OHM_BIND_ERROR_COUNT) return &table[-code];
    return &unknown;
}

const char *ohm_bind_message(int code)
{
    if (code != 0 && ohm_last_error_code() == code && ohm_last_error()[0]) return ohm_last_error();
    return ohm_strerror(code);
}

int ohm_bind_fail(int code, const char *message) { return ohm_set_error(code, message); }
