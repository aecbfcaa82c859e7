package org.ohm;

import java.util.Objects;

/**
 * A shared library opened for the libffi bridge (dlopen, RTLD_NOW | RTLD_LOCAL): look up its functions with a
 * signature and call them with numbers, strings and buffers ({@link NativeFunction}).
 *
 * <pre>{@code
 * try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
 *      NativeFunction strlen = libc.function("strlen", "size(str)")) {
 *     long n = strlen.invokeLong("hello");   // 5
 * }
 * }</pre>
 * Functions looked up from a library must not be called after it is closed.
 */
public final class NativeLibrary implements AutoCloseable {
    private final long handle;
    private final String name;
    private boolean closed;

    private NativeLibrary(long handle, String name) {
        this.handle = handle;
        this.name = name;
    }

    /**
     * Opens a library by path or soname ("libz.so.1"). IllegalArgumentException with dlerror()'s text.
     *
     * @param path a path or a soname
     * @return the library
     */
    public static NativeLibrary open(String path) {
        Objects.requireNonNull(path, "path");
        return new NativeLibrary(Native.ffiOpen(Native.cstr(path)), path);
    }

    /** {@return the process itself: libc and every library the JVM has loaded globally} */
    public static NativeLibrary process() {
        return new NativeLibrary(Native.ffiOpen(null), "(process)");
    }

    /**
     * Looks up symbol and prepares its call from a signature such as "i32(ptr, u64, str)" (types i8..u64, f32,
     * f64, ptr (C may write), cptr (C only reads), str, void; aliases int, long, size, double, ...; see
     * {@link NativeFunction} for what each takes). IllegalArgumentException for an unknown symbol or a bad
     * signature, with the position of the error.
     *
     * @param symbol the C symbol
     * @param signature its C signature
     * @return a function to invoke
     */
    public synchronized NativeFunction function(String symbol, String signature) {
        Objects.requireNonNull(symbol, "symbol");
        Objects.requireNonNull(signature, "signature");
        if (closed) throw new IllegalStateException("library " + name + " is closed");
        return new NativeFunction(Native.ffiFunc(handle, Native.cstr(symbol), Native.cstr(signature)), symbol,
                signature);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        Native.ffiClose(handle);
    }

    @Override
    public String toString() {
        return "NativeLibrary(" + name + ")";
    }
}
