package org.ohm;

import java.math.BigInteger;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A C function with a prepared call (libffi), from {@link NativeLibrary#function} or {@link #ofAddress}.
 *
 * <p>Arguments by parameter type:
 * <ul>
 * <li>integer types take Byte, Short, Integer, Long, AtomicInteger, AtomicLong, Character, Boolean (0/1),
 *     BigInteger, {@link #unsigned(long)}, or a whole Float/Double. A Java long is signed: it is checked against
 *     the type's range with its sign, so -1 for a {@code u64}/{@code size} parameter throws instead of reaching
 *     C as 2^64-1; a u64 takes 0..Long.MAX_VALUE that way, and its upper half through {@link #unsigned(long)} (the
 *     long's bits, as {@link Long#toUnsignedString(long)} reads them) or a BigInteger. f32/f64 take any of these;
 * <li>{@code ptr} (C may write) takes a writable {@link OhmBuffer} (its memory, zero-copy; the buffer is held
 *     for the call), {@link #at(OhmBuffer, long)} (a buffer at an offset), a {@link NativeCallback}, an
 *     {@link #address(long) address}, or null. Not a String (C would write into a temporary copy) and not a
 *     read-only buffer (a read-only mapping or a sealed buffer, whose pages would fault): declare such
 *     parameters {@code cptr};
 * <li>{@code cptr} (C only reads) takes the same, read-only buffers too, and a String (its UTF-8 bytes);
 * <li>{@code str} takes a String (passed as UTF-8, NUL-terminated), any buffer (with a NUL before its end) or null.
 * </ul>
 * A mismatch, a value out of range, a closed or released buffer or an offset past its end throws
 * IllegalArgumentException, IllegalStateException or IndexOutOfBoundsException before the call is made; null
 * reaches a pointer parameter as C's NULL. Results: Long for integers and pointers (ptr and cptr; a u64 from 2^63
 * on as a negative long), Double for f32/f64, String for str (null for NULL), null for void.
 *
 * <p>Thread-safe: a function may be called from several threads at once.
 */
public final class NativeFunction implements AutoCloseable {
    // ohm_ffi_type and ohm_ffi_arg_kind (ohm_bind.h), number for number
    static final int VOID = 0, I8 = 1, U8 = 2, I16 = 3, U16 = 4, I32 = 5, U32 = 6, I64 = 7, U64 = 8, F32 = 9,
            F64 = 10, PTR = 11, STR = 12, CPTR = 13;
    static final int ARG_INT = 0, ARG_FLOAT = 1, ARG_STR = 2, ARG_BUF = 3, ARG_PTR = 4, ARG_NULL = 5, ARG_UINT = 6;
    private static final String[] TYPE_NAMES = {"void", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32",
            "f64", "ptr", "str", "cptr"};

    private final long handle;
    private final String name, signature;
    private final int[] types; // return type, then argument types
    private volatile boolean closed;

    NativeFunction(long handle, String name, String signature) {
        this.handle = handle;
        this.name = name;
        this.signature = signature;
        this.types = Native.ffiTypes(handle);
    }

    /**
     * A function at a raw address (from a C API or a {@link NativeCallback}).
     *
     * @param address the function's address
     * @param name the name errors use
     * @param signature the C signature, as for {@link NativeLibrary#function}
     * @return the function
     */
    public static NativeFunction ofAddress(long address, String name, String signature) {
        return new NativeFunction(Native.ffiFuncPtr(address, Native.cstr(name), Native.cstr(signature)), name,
                signature);
    }

    /**
     * A buffer argument at an offset of the buffer.
     *
     * @param buffer the buffer
     * @param offset the offset in bytes from its start
     * @return the argument
     */
    public static Object at(OhmBuffer buffer, long offset) {
        return new BufferAt(Objects.requireNonNull(buffer, "buffer"), offset);
    }

    /**
     * A raw address argument for a ptr parameter.
     *
     * @param address the address
     * @return the argument
     */
    public static Object address(long address) {
        return new Address(address);
    }

    /**
     * An integer argument whose 64 bits are unsigned (0..2^64-1): how a {@code u64} parameter gets a value from
     * 2^63 on ({@code unsigned(-1L)} is 2^64-1). Checked like any integer: for a signed or narrower type it must
     * still fit.
     *
     * @param bits the 64 bits, read as unsigned
     * @return the argument
     */
    public static Object unsigned(long bits) {
        return new Unsigned(bits);
    }

    private static final class Unsigned {
        final long bits;

        Unsigned(long bits) {
            this.bits = bits;
        }

        @Override
        public String toString() {
            return Long.toUnsignedString(bits);
        }
    }

    private static final class BufferAt {
        final OhmBuffer buffer;
        final long offset;

        BufferAt(OhmBuffer buffer, long offset) {
            this.buffer = buffer;
            this.offset = offset;
        }
    }

    private static final class Address {
        final long address;

        Address(long address) {
            this.address = address;
        }
    }

    /** {@return the symbol's name} */
    public String name() { return name; }
    /** {@return the C signature} */
    public String signature() { return signature; }
    /** {@return how many arguments a call takes} */
    public int parameterCount() { return types.length - 1; }

    /**
     * Calls the function; see the class comment for arguments and results.
     *
     * @param args one for each parameter
     * @return the result as the class comment says (null for void)
     */
    public Object invoke(Object... args) {
        String[] strOut = new String[1];
        long bits = call(args, strOut);
        switch (types[0]) {
            case VOID: return null;
            case F32: case F64: return Double.longBitsToDouble(bits);
            case STR: return strOut[0];
            default: return bits;
        }
    }

    /**
     * invoke() for an integer or pointer result.
     *
     * @param args one for each parameter
     * @return the result
     */
    public long invokeLong(Object... args) {
        if (types[0] == F32 || types[0] == F64 || types[0] == STR || types[0] == VOID)
            throw new IllegalStateException(name + " (" + signature + ") does not return an integer");
        return call(args, null);
    }

    /**
     * invoke() for an f32/f64 result.
     *
     * @param args one for each parameter
     * @return the result
     */
    public double invokeDouble(Object... args) {
        if (types[0] != F32 && types[0] != F64)
            throw new IllegalStateException(name + " (" + signature + ") does not return f32 or f64");
        return Double.longBitsToDouble(call(args, null));
    }

    private long call(Object[] args, String[] strOut) {
        if (closed) throw new IllegalStateException("function " + name + " is closed");
        int n = args == null ? 0 : args.length;
        int[] kinds = new int[n];
        long[] longs = new long[n], ids = new long[n], offs = new long[n];
        byte[][] strs = null;
        for (int i = 0; i < n; i++) {
            Object a = args[i];
            if (a == null) {
                kinds[i] = ARG_NULL;
            } else if (a instanceof Double || a instanceof Float) {
                kinds[i] = ARG_FLOAT;
                longs[i] = Double.doubleToRawLongBits(((Number) a).doubleValue());
            } else if (a instanceof Long || a instanceof Integer || a instanceof Short || a instanceof Byte
                    || a instanceof AtomicLong || a instanceof AtomicInteger) {
                kinds[i] = ARG_INT; // exact: the bridge checks sign and range against the parameter's type
                longs[i] = ((Number) a).longValue();
            } else if (a instanceof Unsigned) {
                kinds[i] = ARG_UINT;
                longs[i] = ((Unsigned) a).bits;
            } else if (a instanceof BigInteger) {
                BigInteger v = (BigInteger) a;
                if (v.bitLength() <= 63) {
                    kinds[i] = ARG_INT;
                } else if (v.signum() > 0 && v.bitLength() == 64) {
                    kinds[i] = ARG_UINT;
                } else { // beyond any 64-bit type: said as the bridge says it
                    String t = i + 1 < types.length ? TYPE_NAMES[types[i + 1]] : "none";
                    throw new IllegalArgumentException(name + ": argument " + (i + 1) + " (" + t + ") out of range: "
                            + v);
                }
                longs[i] = v.longValue();
            } else if (a instanceof Boolean) {
                kinds[i] = ARG_INT;
                longs[i] = (Boolean) a ? 1 : 0;
            } else if (a instanceof Character) {
                kinds[i] = ARG_INT;
                longs[i] = (Character) a;
            } else if (a instanceof String) {
                kinds[i] = ARG_STR;
                if (strs == null) strs = new byte[n][];
                strs[i] = Native.cstr((String) a);
            } else if (a instanceof OhmBuffer || a instanceof BufferAt) {
                OhmBuffer b = a instanceof OhmBuffer ? (OhmBuffer) a : ((BufferAt) a).buffer;
                if (!b.isAccessible())
                    throw new IllegalStateException(name + ": argument " + (i + 1) + ": buffer is released (after "
                            + "release or close)");
                kinds[i] = ARG_BUF;
                longs[i] = b.nativeHandle();
                ids[i] = b.nativeId();
                offs[i] = a instanceof BufferAt ? ((BufferAt) a).offset : 0;
                if (offs[i] < 0)
                    throw new IndexOutOfBoundsException(name + ": argument " + (i + 1) + ": offset " + offs[i]
                            + " is negative");
            } else if (a instanceof NativeCallback) {
                kinds[i] = ARG_PTR;
                longs[i] = ((NativeCallback) a).address();
            } else if (a instanceof Address) {
                kinds[i] = ARG_PTR;
                longs[i] = ((Address) a).address;
            } else {
                throw new IllegalArgumentException(name + ": argument " + (i + 1) + " has unsupported type "
                        + a.getClass().getName() + " (numbers: Long, Integer, Short, Byte, BigInteger, "
                        + "NativeFunction.unsigned, Double, Float)");
            }
        }
        long r = Native.ffiCall(handle, kinds, longs, ids, offs, strs == null ? new byte[n][] : strs,
                strOut == null ? new String[1] : strOut);
        java.lang.ref.Reference.reachabilityFence(args);
        return r;
    }

    /** Frees the prepared call; calling afterwards throws IllegalStateException. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        Native.ffiFuncFree(handle);
    }

    @Override
    public String toString() {
        return "NativeFunction(" + name + ": " + signature + ")";
    }
}
