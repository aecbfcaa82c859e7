package org.ohm;

import java.util.Objects;

/**
 * A C function pointer that calls Java (a libffi closure), for C APIs that take callbacks (qsort's comparator,
 * an event handler). Pass it as a ptr argument of a {@link NativeFunction}, or its {@link #address()}.
 *
 * <pre>{@code
 * try (NativeCallback cmp = NativeCallback.create("int(ptr, ptr)", args -> ...)) {
 *     qsort.invoke(buffer, count, 4, cmp);
 * }
 * }</pre>
 *
 * Arguments reach the handler as Long (integers; ptr, cptr and str as addresses: {@link #string(long)} reads a
 * str) and Double (f32, f64); the handler returns a Number (or null for 0, or an OhmBuffer for a pointer result).
 * It may be called from any thread (threads the JVM does not know are attached for the call). Close it only when
 * no C code can call it any more.
 *
 * <p>An exception (or Error) thrown by the handler cannot unwind through C: the C caller gets the failure value,
 * a zero of the return type (0, 0.0, NULL; nothing for void). Then:
 * <ul>
 * <li>on a thread inside a {@link NativeFunction} call (the call that led C to the callback), that call throws
 *     it once C has returned: RuntimeExceptions and Errors as they were thrown, checked exceptions wrapped in
 *     {@link OhmCallbackException}. Later invocations during the same call return the failure value at once,
 *     without running the handler;
 * <li>on any other thread (a thread C started, or C calling the callback later, outside any call) nobody can
 *     receive it: it is logged at WARNING, with the exception, on System.Logger {@code "org.ohm"}.
 * </ul>
 */
public final class NativeCallback implements AutoCloseable {
    /** The Java side of a callback. */
    @FunctionalInterface
    public interface Handler {
        /**
         * Runs on the thread that called the C function pointer.
         *
         * @param args the C arguments: Long for integers and pointers, Double for f32 and f64
         * @return a Number, null for 0, or an OhmBuffer for a pointer result (ignored for void)
         * @throws Exception to give C the failure value (see the class comment for where the exception goes)
         */
        Object call(Object[] args) throws Exception;
    }

    private final Handler handler;
    private final String signature;
    private final long handle, ref, code;
    private final int[] types;
    private boolean closed;

    private NativeCallback(String signature, Handler handler) {
        this.signature = signature;
        this.handler = handler;
        long r = Native.newGlobal(this);
        long h;
        try {
            h = Native.ffiClosureCreate(Native.cstr(signature), r);
        } catch (RuntimeException | Error e) {
            Native.deleteGlobal(r);
            throw e;
        }
        ref = r;
        handle = h;
        code = Native.ffiClosureCode(h);
        types = Native.ffiTypes(Native.ffiClosureSig(h));
    }

    /**
     * A callback with a C signature ("i32(ptr, ptr)"). IllegalArgumentException for a bad signature.
     *
     * @param signature the C signature
     * @param handler what the callback runs
     * @return the callback, to close when no C code can call it any more
     */
    public static NativeCallback create(String signature, Handler handler) {
        Objects.requireNonNull(signature, "signature");
        Objects.requireNonNull(handler, "handler");
        return new NativeCallback(signature, handler);
    }

    /** {@return the C function pointer} */
    public synchronized long address() {
        if (closed) throw new IllegalStateException("callback is closed");
        return code;
    }

    /**
     * Reads the NUL-terminated UTF-8 string at a str or ptr argument's address (null for 0).
     *
     * @param address the argument's address
     * @return the string, or null
     */
    public static String string(long address) {
        return Native.ffiString(address);
    }

    /** Called by the closure: raw argument bits in, result bits out (exceptions go to the C side's catch). */
    long dispatch(long[] raw) throws Exception {
        Object[] args = new Object[raw.length];
        for (int i = 0; i < raw.length; i++) {
            int t = types[i + 1];
            args[i] = t == NativeFunction.F32 || t == NativeFunction.F64 ? (Object) Double.longBitsToDouble(raw[i])
                    : (Object) raw[i];
        }
        Object r = handler.call(args);
        int rt = types[0];
        if (r == null || rt == NativeFunction.VOID) return 0;
        if (rt == NativeFunction.F32 || rt == NativeFunction.F64)
            return Double.doubleToRawLongBits(((Number) r).doubleValue());
        if (r instanceof OhmBuffer) {
            OhmBuffer b = (OhmBuffer) r;
            if (rt == NativeFunction.PTR && b.isReadOnly())
                throw new IllegalArgumentException("callback returned a read-only buffer for a ptr (writable) result of "
                        + signature + "; declare it cptr");
            return b.memoryAddress();
        }
        if (r instanceof Boolean) return (Boolean) r ? 1 : 0;
        if (r instanceof Number) return ((Number) r).longValue();
        throw new IllegalArgumentException("callback returned a " + r.getClass().getName() + " for " + signature);
    }

    /**
     * Called by the closure when the handler threw on a thread with no NativeFunction call to rethrow it (a thread
     * C started): the exception is logged, since it cannot be thrown anywhere. Never throws.
     */
    void uncaught(Throwable t) {
        try {
            NativeLog.LOGGER.log(System.Logger.Level.WARNING, "NativeCallback " + signature + " threw on a thread "
                    + "with no NativeFunction call to rethrow it (" + Thread.currentThread().getName()
                    + "); C got the failure value (zero)", t);
        } catch (Throwable ignored) {
            // a logger that fails (or no memory left) must not unwind into C
        }
    }

    /** {@return the C signature given at creation} */
    public String signature() {
        return signature;
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        Native.ffiClosureFree(handle);
        Native.deleteGlobal(ref);
    }
}
