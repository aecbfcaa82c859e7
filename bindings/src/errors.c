/* The one table from an OHM_E* code to how each host shows it. A Java binding throws java_class with
 * ohm_bind_message(code); the Lua binding raises the message for programmer errors (raise) and returns
 * nil, message, name for runtime failures, as luv and luaposix do. */
#include "bind_internal.h"

#include <string.h>

static const ohm_bind_error table[] = {
    {OHM_OK,        "OK",         NULL,                                      false},
    {OHM_ENOMEM,    "ENOMEM",     "org/ohm/OhmOutOfMemoryError",             false},
    {OHM_EINVAL,    "EINVAL",     "java/lang/IllegalArgumentException",      true},
    {OHM_ESTATE,    "ESTATE",     "java/lang/IllegalStateException",         true},
    {OHM_ERANGE,    "ERANGE",     "java/lang/IndexOutOfBoundsException",     true},
    /* Spark users expect an OutOfMemoryError subclass ("Unable to acquire X bytes of memory, got Y"). */
    {OHM_ELIMIT,    "ELIMIT",     "org/ohm/OhmOutOfMemoryError",             false},
    {OHM_ESYS,      "ESYS",       "org/ohm/OhmIOException",                  false},
    {OHM_EPERM,     "EPERM",      "java/lang/SecurityException",             false},
    {OHM_ETIMEDOUT, "ETIMEDOUT",  "org/ohm/OhmTimeoutException",             false},
    /* A cancelled wait is how Thread.interrupt() reaches a task waiting for its share. */
    {OHM_ECANCELED, "ECANCELED",  "org/ohm/OhmInterruptedException",         false},
    {OHM_ECALLBACK, "ECALLBACK",  "org/ohm/OhmCallbackException",            false},
};

static const ohm_bind_error unknown = {0, "EUNKNOWN", "java/lang/IllegalStateException", false};

const ohm_bind_error *ohm_bind_error_of(int code)
{
    if (code <= 0 && -code < (int)(sizeof table / sizeof table[0])) return &table[-code];
    return &unknown;
}

const char *ohm_bind_message(int code)
{
    if (code != 0 && ohm_last_error_code() == code && ohm_last_error()[0]) return ohm_last_error();
    return ohm_strerror(code);
}

int ohm_bind_fail(int code, const char *message)
{
    return ohm_set_error(code, message);
}
