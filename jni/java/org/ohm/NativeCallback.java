package org.ohm;

/** Placeholder: the libffi bridge's callbacks (filled in with the FFI natives). */
public final class NativeCallback {
    private NativeCallback() {}

    void dispatch(long args, int nargs, long ret) {}
}
