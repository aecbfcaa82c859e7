/* Natives of the libffi bridge (filled in once bindings/src/ffi.c provides ohm_ffi_*). */
#include "jni_internal.h"

int jni_register_ffi(JNIEnv *env, jclass cls)
{
    (void)env;
    (void)cls;
    return 0;
}
