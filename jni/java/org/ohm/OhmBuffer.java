package org.ohm;

import static org.ohm.Memory.U;

import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.file.Files;
import java.util.Objects;

/**
 * A reference-counted buffer of off-heap memory: a block of an {@link OhmPool}, a mapped file
 * ({@link #mapFile}), shared memory ({@link SharedMemory}) or a page of a {@link MemoryConsumer}.
 *
 * <h2>Reference counts: Netty's rules</h2>
 * A new buffer has a count of 1. {@link #retain()} adds, {@link #release()} subtracts and returns true on the
 * call that takes the count to 0, which frees the memory. Retaining or releasing a released buffer, releasing
 * more than the count, and overflowing it throw {@link IllegalReferenceCountException}; a non-positive
 * increment or decrement throws IllegalArgumentException. {@link #slice} and {@link #duplicate} share this
 * buffer's count (releasing a slice releases the buffer); {@link #retainedSlice} has its own count of 1 and holds
 * one reference on this buffer until it is released. {@link #close()} releases one reference, so a buffer
 * works with try-with-resources; on a buffer whose count is already 0 it does nothing.
 *
 * <h2>Access</h2>
 * Offsets and sizes are {@code long}. Every get and put is bounds-checked (IndexOutOfBoundsException, nothing
 * read or written) in big-endian (the default, as ByteBuffer and Netty) or little-endian ({@code ...LE}) order.
 * Any access after the count reached 0 throws IllegalStateException and never touches the freed memory; this
 * holds for every buffer sharing the count, whichever of them released it. As with Netty's buffers, a release
 * that races with an access on another thread is a bug in the caller that the buffer cannot catch in every
 * case: hand a buffer to another thread together with a reference.
 *
 * <h2>Read-only memory</h2>
 * A file mapped without {@link MapOption#WRITE}, shared memory opened read-only and a {@link #seal sealed}
 * buffer are read-only: every put, fill and copy into them throws IllegalStateException, and
 * {@link #nioBuffer()} gives a read-only view ({@code isReadOnly()}, a put throws ReadOnlyBufferException, as a
 * {@code FileChannel.map(READ_ONLY)} buffer does). A store into such memory would be a fault that kills the JVM,
 * which is why nothing ohm hands out can make one; {@link #memoryAddress()} is the exception (the caller's risk).
 *
 * <h2>The safety net</h2>
 * A buffer that becomes unreachable while its count is above 0 is reclaimed by the cleaner thread and reported
 * to the {@link LeakDetector}'s listener, with the Java stack trace of its allocation when the leak detector
 * tracks it. Relying on it is a bug: reclamation waits for a GC.
 *
 * <p>A buffer may be used from several threads at once; its count operations are atomic.
 */
public final class OhmBuffer implements AutoCloseable {
    /** Where a buffer's memory comes from. */
    public enum Origin {
        /** A block of an ohm pool. */
        POOL,
        /** A mapped file region ({@link #mapFile}). */
        FILE,
        /** Shared memory: POSIX shm or memfd ({@link SharedMemory}). */
        SHM,
        /** Memory adopted from elsewhere, with a release callback (ohm_buf_wrap). */
        FOREIGN
    }

    private static final boolean NATIVE_BE = ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN;
    /** Reference counts are changed in the native header by Unsafe CAS (ohm.h's parked-buffer contract), not by
     * JNI: counts are the state word's low 32 bits, at offset 0 of every buffer header. */
    private static final boolean COUNTS = U != null;

    /** What this handle reads: the shell (whose tracker holds handle, address, capacity and the counts' state),
     * and the generation this handle was made for. A handle is a new object per buffer, 24 bytes, which the JIT
     * usually keeps out of the heap entirely; the shell and its tracker are reused for pool buffers. */
    final Shell s;
    private final long gen;

    OhmBuffer(Shell s, long gen) {
        this.s = s;
        this.gen = gen;
    }

    /** Wraps a new native count owner (a root, or a retained slice of parent) whose values are in l's scratch. */
    private static OhmBuffer owner(long handle, SafetyNet.Local l, Object scope, OhmBuffer parent) {
        Shell sh = ownerShell(handle, l, scope, parent);
        return new OhmBuffer(sh, sh.t.gen);
    }

    private static Shell ownerShell(long handle, SafetyNet.Local l, Object scope, OhmBuffer parent) {
        Shell sh = new Shell(parent != null ? parent.s : null);
        Tracker pt = parent != null ? parent.s.t : null;
        Tracker t = new Tracker(sh, handle, l.out(0), l.out(1), l.out(3), scope, pt != null ? pt.count : null,
                pt != null ? pt.memory : null, -1);
        t.tracked = pt != null ? pt.tracked : (l.out(2) & Native.OUT_TRACKED) != 0;
        if (parent == null) t.readOnly = (l.out(2) & Native.OUT_READONLY) != 0;
        sh.t = t;
        SafetyNet.add(l, t);
        if (parent == null && t.tracked) LeakDetector.track(t);
        return sh;
    }

    /** Wraps a new native root handle whose values are in l's scratch. If the Java objects cannot be made (an
     * OutOfMemoryError), the native buffer is released before the error goes on. */
    static OhmBuffer root(long handle, SafetyNet.Local l, Object scope) {
        Shell sh = rootShell(handle, l, scope);
        return new OhmBuffer(sh, sh.t.gen);
    }

    private static Shell rootShell(long handle, SafetyNet.Local l, Object scope) {
        try {
            return ownerShell(handle, l, scope, null);
        } catch (Throwable e) {
            Native.bufRelease(handle, l.out(0), 1);
            throw e;
        }
    }

    /** The shell of a new pool buffer made by the runtime (JNI). Callers make the handle themselves, at one
     * allocation site shared with the magazine's path: a handle made in two places and merged would always be a
     * heap object, while one made once after the merge is usually no object at all (escape analysis). */
    static Shell allocateShell(long pool, long size, boolean zeroed, Object scope) {
        SafetyNet.Local l = SafetyNet.local();
        if (LeakScopes.active != 0) LeakScopes.enter(l); // an inherited scope is joined at the first allocation
        long h = Native.bufAlloc(pool, size, zeroed, l.scratch);
        return rootShell(h, l, scope);
    }

    /** The native (handle, id) for natives outside this class that may keep or derive from the buffer (FFI,
     * the memory manager): its count may no longer park in a magazine at its last release. */
    long nativeHandle() {
        Tracker t = s.t;
        t.count.plain = false;
        t.memory.plain = false;
        return t.handle;
    }

    long nativeId() {
        return s.t.id;
    }

    /** Its count's tracker (pages of a TaskMemory). */
    Tracker countTracker() {
        return s.t.count;
    }

    /**
     * Maps [offset, offset + length) of a file as a buffer (length 0: to the end of the file). Without
     * {@link MapOption#WRITE} the mapping is read-only (a put throws IllegalStateException, its
     * {@link #nioBuffer()} is read-only); with it, writes reach the file (MAP_SHARED; {@link #sync} forces them
     * out). The file is unmapped at the last release.
     *
     * @param path the file
     * @param offset where the region starts in the file, in bytes
     * @param length the region's length in bytes (0: to the end of the file)
     * @param options WRITE, CREATE, SYNC_ON_RELEASE (none: a read-only mapping)
     * @return the mapping as a buffer, with a count of 1
     * @throws OhmIOException if the file cannot be opened or mapped, or is not a regular file (a directory)
     * @throws IndexOutOfBoundsException if the region passes the end of the file and CREATE was not given
     * @throws IllegalArgumentException for a negative offset or length, or an empty path
     */
    public static OhmBuffer mapFile(java.nio.file.Path path, long offset, long length, MapOption... options) {
        Objects.requireNonNull(path, "path");
        int flags = 0;
        for (MapOption o : options) flags |= o.flag;
        SafetyNet.Local l = SafetyNet.local();
        long h;
        try {
            h = Native.mapFile(Native.cstr(path.toString()), offset, length, flags, l.scratch);
        } catch (IllegalArgumentException e) {
            if (notARegularFile(path, offset, length)) throw new OhmIOException(e.getMessage());
            throw e;
        }
        return root(h, l, null);
    }

    /** Whether mapFile's argument error was the runtime's "not a regular file", which for Java is an I/O error
     * (FileChannel.open of a directory throws IOException): the arguments were valid (their errors come first)
     * and the path names something that exists but is no regular file. */
    private static boolean notARegularFile(java.nio.file.Path path, long offset, long length) {
        return offset >= 0 && length >= 0 && !path.toString().isEmpty() && Files.exists(path)
                && !Files.isRegularFile(path);
    }

    // ---- reference counts

    /** {@return the count (0 once released)} Plain slices and duplicates report their owner's. */
    public int refCnt() {
        return refCnt(s, gen);
    }

    // The count operations are static, on the handle's fields: a large method that takes the handle as its
    // receiver may be compiled on its own and not inlined, and then the handle is a heap object.
    private static int refCnt(Shell s, long gen) {
        Tracker t = s.t;
        if (t.gen != gen || (t.derivedView && !t.depsLive())) return 0;
        if (!COUNTS) return Native.bufRefCnt(t.handle, t.id);
        Tracker c = t.count;
        long w = U.getLongVolatile(null, c.handle);
        return (w >>> 32) == (c.id >>> 32) ? (int) w : 0;
    }

    /**
     * Adds one reference.
     *
     * @return this buffer
     * @throws IllegalReferenceCountException if the buffer is released, or its count is at its maximum
     */
    public OhmBuffer retain() {
        retain(s, gen, 1);
        return this;
    }

    /**
     * Adds increment references.
     *
     * @param increment how many, above 0
     * @return this buffer
     * @throws IllegalReferenceCountException if the buffer is released, or the count would overflow
     */
    public OhmBuffer retain(int increment) {
        retain(s, gen, increment);
        return this;
    }

    private static void retain(Shell s, long gen, int increment) {
        if (increment <= 0) throw new IllegalArgumentException("increment: " + increment + " (expected: > 0)");
        Tracker t = s.t;
        if (t.gen != gen || (t.derivedView && !t.depsLive())) throw new IllegalReferenceCountException(0, increment);
        if (!COUNTS) {
            int rc = Native.bufRetain(t.handle, t.id, increment);
            if (rc == 0) return;
            throw countError(t, rc, increment);
        }
        Tracker c = t.count;
        long g = c.id >>> 32;
        for (;;) {
            long w = U.getLongVolatile(null, c.handle);
            int n = (int) w;
            if ((w >>> 32) != g || n <= 0) throw countError(t, Native.ESTATE, increment);
            if (n + (long) increment > Integer.MAX_VALUE) throw new IllegalReferenceCountException(n, increment);
            if (U.compareAndSwapLong(null, c.handle, w, w + increment)) return;
        }
    }

    /**
     * Releases one reference; true if that freed the memory.
     *
     * @return whether the count reached 0
     */
    public boolean release() {
        return release(s, gen, 1);
    }

    /**
     * Releases decrement references; the memory is freed when the count reaches 0.
     *
     * @param decrement how many, above 0 and at most the count
     * @return whether the count reached 0
     * @throws IllegalReferenceCountException if the buffer is released, or decrement is above the count
     */
    public boolean release(int decrement) {
        return release(s, gen, decrement);
    }

    private static boolean release(Shell s, long gen, int decrement) {
        if (decrement <= 0) throw new IllegalArgumentException("decrement: " + decrement + " (expected: > 0)");
        Tracker t = s.t;
        if (t.gen != gen || (t.derivedView && !t.depsLive())) throw new IllegalReferenceCountException(0, -decrement);
        if (!COUNTS) return lastRelease(t, decrement);
        Tracker c = t.count;
        long g = c.id >>> 32;
        for (;;) {
            long w = U.getLongVolatile(null, c.handle);
            int n = (int) w;
            if ((w >>> 32) != g || n <= 0) throw countError(t, Native.ESTATE, -decrement);
            if (decrement > n) throw new IllegalReferenceCountException(n, -decrement);
            if (decrement < n) {
                if (U.compareAndSwapLong(null, c.handle, w, w - decrement)) return false;
            } else if (!c.plain) {
                return lastRelease(t, decrement);
            } else if (U.compareAndSwapLong(null, c.handle, w, w - decrement)) {
                // Parked in this thread's magazine (plain implies a root released through its own handle: c == t).
                // Written out here, not called: see Magazine.lend on why this method stays above inlining size.
                t.gen = 0;
                SafetyNet.Local l = t.local; // the registering thread's: usually this one, without a lookup
                if (l.owner != Thread.currentThread()) l = SafetyNet.local();
                Magazine.Mags m = l.mags;
                if (m == null) m = l.mags = new Magazine.Mags();
                int cls = t.cls;
                Shell[] st = m.stacks[cls];
                int k = m.n[cls];
                if (st == null) st = m.stacks[cls] = new Shell[Magazine.CAP[cls]];
                if (k == st.length || m.epoch != Magazine.epoch) {
                    k = Magazine.spill(m, l, cls);
                    st = m.stacks[cls];
                }
                st[k] = s;
                m.n[cls] = k + 1;
                return true;
            }
        }
    }

    /** A release the runtime makes (JNI), which ends the count at 0: leak record, slices, parent reference. */
    private static boolean lastRelease(Tracker t, int decrement) {
        int rc = Native.bufRelease(t.handle, t.id, decrement);
        if (rc == 1) {
            t.count.died();
            return true;
        }
        if (rc == 0) return false;
        throw countError(t, rc, -decrement);
    }

    private static RuntimeException countError(Tracker t, int rc, int change) {
        if (rc == Native.ESTATE) {
            t.count.died(); // the runtime says the count is gone: make every sharer fail from now on
            return new IllegalReferenceCountException(0, change);
        }
        if (rc == Native.EINVAL) return new IllegalReferenceCountException(Native.bufRefCnt(t.handle, t.id), change);
        Native.raise(rc);
        return new IllegalStateException(Native.strerror(rc));
    }

    /** Releases one reference if the count is above 0; does nothing on a released buffer (try-with-resources
     * after an explicit release). */
    @Override
    public void close() {
        if (accessible()) release(s, gen, 1);
    }

    /** {@return whether the count is above 0 (its memory may be accessed)} */
    public boolean isAccessible() {
        return accessible();
    }

    /** {@return whether the memory is read-only (a read-only mapping or shared memory, or sealed)} Puts then
     * throw and views are read-only. */
    public boolean isReadOnly() {
        return s.t.memory.readOnly;
    }

    /**
     * Records an access for the leak detector (levels ADVANCED and PARANOID, tracked buffers only).
     *
     * @return this buffer
     */
    public OhmBuffer touch() {
        return touch(null);
    }

    /**
     * Records an access, as {@link #touch()}, with a hint ({@code String.valueOf(hint)}) for the leak report.
     *
     * @param hint what the access was, or null
     * @return this buffer
     */
    public OhmBuffer touch(Object hint) {
        ensureAccessible();
        Tracker t = s.t;
        if (t.tracked) Native.bufTouch(t.handle, t.id, hint == null ? null : Native.cstr(String.valueOf(hint)));
        return this;
    }

    // ---- properties

    /** {@return the size in bytes} */
    public long capacity() {
        return s.t.capacity;
    }

    /**
     * The address of the first byte, for native code (valid while the buffer is accessible). Unchecked, as
     * Netty's: a store through it into read-only memory (a read-only mapping, a sealed buffer) is a fault that
     * kills the JVM, and one after the last release writes into memory that may be another buffer's.
     *
     * @return the address
     */
    public long memoryAddress() {
        ensureAccessible();
        return s.t.address;
    }

    /** {@return where the memory comes from} */
    public Origin origin() {
        ensureAccessible();
        return Origin.values()[Native.bufOrigin(s.t.handle, s.t.id)];
    }

    /** {@return the buffer's identity in the runtime (ohm_buf_id): the id leak reports name} */
    public long id() {
        return s.t.idOf(gen);
    }

    // ---- checks (the hot path: the generation for liveness, one compare for the bounds)

    /** The count this handle was made for is above 0 and the memory is still there: a retained slice keeps its
     * own count, but its memory goes when the root's count reaches 0, which an over-release of the root can do
     * while the slice still holds a reference (Netty allows the release; the slice is then dead too). For a root
     * both are its own generation. */
    private boolean accessible() {
        Tracker t = s.t;
        return t.gen == gen && (!t.derivedView || t.depsLive());
    }

    private void ensureAccessible() {
        if (!accessible()) throw released();
    }

    private static IllegalStateException released() {
        return new IllegalReferenceCountException("refCnt: 0: the buffer is released and can no longer be accessed");
    }

    /** at() for writes: also refuses a read-only buffer (a read-only mapping, a sealed buffer), whose pages would
     * fault. */
    private long atw(long index, long width) {
        long a = at(index, width);
        if (s.t.memory.readOnly) throw readOnly();
        return a;
    }

    private static IllegalStateException readOnly() {
        return new IllegalStateException("buffer is read-only (a read-only mapping, or sealed)");
    }

    /** The address of [index, index + width), after the liveness and bounds checks. */
    private long at(long index, long width) {
        Tracker t = s.t;
        if (t.gen != gen || (t.derivedView && !t.depsLive())) throw released();
        long cap = t.capacity;
        if (index < 0 || width < 0 || index > cap - width) throw outOfBounds(index, width, cap);
        return t.address + index;
    }

    private static IndexOutOfBoundsException outOfBounds(long index, long width, long capacity) {
        if (index < 0) return new IndexOutOfBoundsException("offset " + index + " is negative");
        if (width < 0) return new IndexOutOfBoundsException("length " + width + " is negative");
        return new IndexOutOfBoundsException("offset " + index + " + length " + width + " exceeds buffer size " + capacity);
    }

    // ---- typed access

    /** {@return the signed byte at index}
     * @param index the offset in bytes */
    public byte getByte(long index) {
        long a = at(index, 1);
        if (!Memory.DIRECT) return (byte) Native.bufGet(s.t.handle, s.t.id, index, Native.I8, Native.LE);
        return U.getByte(a);
    }

    /** {@return the byte at index, unsigned}
     * @param index the offset in bytes */
    public short getUnsignedByte(long index) {
        return (short) (getByte(index) & 0xff);
    }

    /** Writes the low 8 bits of value at index.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putByte(long index, int value) {
        long a = atw(index, 1);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I8, Native.LE, value);
        else U.putByte(a, (byte) value);
        return this;
    }

    /** {@return the big-endian 16-bit value at index}
     * @param index the offset in bytes */
    public short getShort(long index) {
        long a = at(index, 2);
        if (!Memory.DIRECT) return (short) Native.bufGet(s.t.handle, s.t.id, index, Native.I16, Native.BE);
        short v = U.getShort(a);
        return NATIVE_BE ? v : Short.reverseBytes(v);
    }

    /** {@return the little-endian 16-bit value at index}
     * @param index the offset in bytes */
    public short getShortLE(long index) {
        long a = at(index, 2);
        if (!Memory.DIRECT) return (short) Native.bufGet(s.t.handle, s.t.id, index, Native.I16, Native.LE);
        short v = U.getShort(a);
        return NATIVE_BE ? Short.reverseBytes(v) : v;
    }

    /** {@return the big-endian 16-bit value at index, unsigned}
     * @param index the offset in bytes */
    public int getUnsignedShort(long index) {
        return getShort(index) & 0xffff;
    }

    /** {@return the little-endian 16-bit value at index, unsigned}
     * @param index the offset in bytes */
    public int getUnsignedShortLE(long index) {
        return getShortLE(index) & 0xffff;
    }

    /** Writes the low 16 bits of value at index, big-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putShort(long index, int value) {
        long a = atw(index, 2);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I16, Native.BE, value);
        else U.putShort(a, NATIVE_BE ? (short) value : Short.reverseBytes((short) value));
        return this;
    }

    /** Writes the low 16 bits of value at index, little-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putShortLE(long index, int value) {
        long a = atw(index, 2);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I16, Native.LE, value);
        else U.putShort(a, NATIVE_BE ? Short.reverseBytes((short) value) : (short) value);
        return this;
    }

    /** {@return the big-endian 32-bit value at index}
     * @param index the offset in bytes */
    public int getInt(long index) {
        long a = at(index, 4);
        if (!Memory.DIRECT) return (int) Native.bufGet(s.t.handle, s.t.id, index, Native.I32, Native.BE);
        int v = U.getInt(a);
        return NATIVE_BE ? v : Integer.reverseBytes(v);
    }

    /** {@return the little-endian 32-bit value at index}
     * @param index the offset in bytes */
    public int getIntLE(long index) {
        long a = at(index, 4);
        if (!Memory.DIRECT) return (int) Native.bufGet(s.t.handle, s.t.id, index, Native.I32, Native.LE);
        int v = U.getInt(a);
        return NATIVE_BE ? Integer.reverseBytes(v) : v;
    }

    /** {@return the big-endian 32-bit value at index, unsigned}
     * @param index the offset in bytes */
    public long getUnsignedInt(long index) {
        return getInt(index) & 0xffffffffL;
    }

    /** {@return the little-endian 32-bit value at index, unsigned}
     * @param index the offset in bytes */
    public long getUnsignedIntLE(long index) {
        return getIntLE(index) & 0xffffffffL;
    }

    /** Writes value at index, big-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putInt(long index, int value) {
        long a = atw(index, 4);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I32, Native.BE, value);
        else U.putInt(a, NATIVE_BE ? value : Integer.reverseBytes(value));
        return this;
    }

    /** Writes value at index, little-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putIntLE(long index, int value) {
        long a = atw(index, 4);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I32, Native.LE, value);
        else U.putInt(a, NATIVE_BE ? Integer.reverseBytes(value) : value);
        return this;
    }

    /** {@return the big-endian 64-bit value at index}
     * @param index the offset in bytes */
    public long getLong(long index) {
        long a = at(index, 8);
        if (!Memory.DIRECT) return Native.bufGet(s.t.handle, s.t.id, index, Native.I64, Native.BE);
        long v = U.getLong(a);
        return NATIVE_BE ? v : Long.reverseBytes(v);
    }

    /** {@return the little-endian 64-bit value at index}
     * @param index the offset in bytes */
    public long getLongLE(long index) {
        long a = at(index, 8);
        if (!Memory.DIRECT) return Native.bufGet(s.t.handle, s.t.id, index, Native.I64, Native.LE);
        long v = U.getLong(a);
        return NATIVE_BE ? Long.reverseBytes(v) : v;
    }

    /** Writes value at index, big-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putLong(long index, long value) {
        long a = atw(index, 8);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I64, Native.BE, value);
        else U.putLong(a, NATIVE_BE ? value : Long.reverseBytes(value));
        return this;
    }

    /** Writes value at index, little-endian.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putLongLE(long index, long value) {
        long a = atw(index, 8);
        if (!Memory.DIRECT) Native.bufSet(s.t.handle, s.t.id, index, Native.I64, Native.LE, value);
        else U.putLong(a, NATIVE_BE ? Long.reverseBytes(value) : value);
        return this;
    }

    /** {@return the big-endian float at index}
     * @param index the offset in bytes */
    public float getFloat(long index) {
        return Float.intBitsToFloat(getInt(index));
    }

    /** {@return the little-endian float at index}
     * @param index the offset in bytes */
    public float getFloatLE(long index) {
        return Float.intBitsToFloat(getIntLE(index));
    }

    /** Writes value at index as a big-endian float.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putFloat(long index, float value) {
        return putInt(index, Float.floatToRawIntBits(value));
    }

    /** Writes value at index as a little-endian float.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putFloatLE(long index, float value) {
        return putIntLE(index, Float.floatToRawIntBits(value));
    }

    /** {@return the big-endian double at index}
     * @param index the offset in bytes */
    public double getDouble(long index) {
        return Double.longBitsToDouble(getLong(index));
    }

    /** {@return the little-endian double at index}
     * @param index the offset in bytes */
    public double getDoubleLE(long index) {
        return Double.longBitsToDouble(getLongLE(index));
    }

    /** Writes value at index as a big-endian double.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putDouble(long index, double value) {
        return putLong(index, Double.doubleToRawLongBits(value));
    }

    /** Writes value at index as a little-endian double.
     * @param index the offset in bytes
     * @param value the value
     * @return this buffer */
    public OhmBuffer putDoubleLE(long index, double value) {
        return putLongLE(index, Double.doubleToRawLongBits(value));
    }

    // ---- bulk access (a reachability fence after each: a copy may reach a safepoint, and the buffer must not be
    // reclaimed under it)

    /**
     * Copies dst.length bytes at index into dst.
     *
     * @param index the offset in bytes
     * @param dst the array to fill
     * @return this buffer
     */
    public OhmBuffer getBytes(long index, byte[] dst) {
        return getBytes(index, dst, 0, dst.length);
    }

    /**
     * Copies length bytes at index into dst at dstIndex.
     *
     * @param index the offset in bytes
     * @param dst the array
     * @param dstIndex where in dst the bytes go
     * @param length how many bytes
     * @return this buffer
     */
    public OhmBuffer getBytes(long index, byte[] dst, int dstIndex, int length) {
        Objects.checkFromIndexSize(dstIndex, length, dst.length);
        long a = at(index, length);
        if (!Memory.DIRECT) Native.bufReadArray(s.t.handle, s.t.id, index, dst, dstIndex, length);
        else U.copyMemory(null, a, dst, Memory.BYTE_ARRAY_BASE + dstIndex, length);
        Reference.reachabilityFence(s);
        return this;
    }

    /**
     * Copies src into the buffer at index.
     *
     * @param index the offset in bytes
     * @param src the bytes
     * @return this buffer
     */
    public OhmBuffer putBytes(long index, byte[] src) {
        return putBytes(index, src, 0, src.length);
    }

    /**
     * Copies length bytes of src from srcIndex into the buffer at index.
     *
     * @param index the offset in bytes
     * @param src the array
     * @param srcIndex where in src the bytes start
     * @param length how many bytes
     * @return this buffer
     */
    public OhmBuffer putBytes(long index, byte[] src, int srcIndex, int length) {
        Objects.checkFromIndexSize(srcIndex, length, src.length);
        long a = atw(index, length);
        if (!Memory.DIRECT) Native.bufWriteArray(s.t.handle, s.t.id, index, src, srcIndex, length);
        else U.copyMemory(src, Memory.BYTE_ARRAY_BASE + srcIndex, null, a, length);
        Reference.reachabilityFence(s);
        return this;
    }

    /**
     * Copies dst.remaining() bytes at index into dst, advancing its position.
     *
     * @param index the offset in bytes
     * @param dst the ByteBuffer to fill
     * @return this buffer
     */
    public OhmBuffer getBytes(long index, ByteBuffer dst) {
        if (dst.isReadOnly()) throw new ReadOnlyBufferException();
        int len = dst.remaining(), pos = dst.position();
        long a = at(index, len);
        if (dst.isDirect() && Memory.DIRECT) {
            U.copyMemory(null, a, null, Native.directAddress(dst) + pos, len);
        } else if (dst.hasArray()) {
            getBytes(index, dst.array(), dst.arrayOffset() + pos, len);
        } else {
            copyThroughChunks(index, dst, len, true);
        }
        dst.position(pos + len);
        Reference.reachabilityFence(s);
        Reference.reachabilityFence(dst);
        return this;
    }

    /**
     * Copies src.remaining() bytes of src into the buffer at index, advancing src's position.
     *
     * @param index the offset in bytes
     * @param src the bytes
     * @return this buffer
     */
    public OhmBuffer putBytes(long index, ByteBuffer src) {
        int len = src.remaining(), pos = src.position();
        long a = atw(index, len);
        if (src.isDirect() && Memory.DIRECT) {
            U.copyMemory(null, Native.directAddress(src) + pos, null, a, len);
        } else if (src.hasArray()) {
            putBytes(index, src.array(), src.arrayOffset() + pos, len);
        } else {
            copyThroughChunks(index, src, len, false);
        }
        src.position(pos + len);
        Reference.reachabilityFence(s);
        Reference.reachabilityFence(src);
        return this;
    }

    /** A read-only heap ByteBuffer (no array access), or the JNI route: through a bounded byte[]. */
    private void copyThroughChunks(long index, ByteBuffer bb, int len, boolean intoBb) {
        ByteBuffer view = bb.duplicate();
        byte[] tmp = new byte[Math.min(len, 8192)];
        for (int done = 0; done < len; ) {
            int n = Math.min(tmp.length, len - done);
            if (intoBb) {
                getBytes(index + done, tmp, 0, n);
                view.put(tmp, 0, n);
            } else {
                view.get(tmp, 0, n);
                putBytes(index + done, tmp, 0, n);
            }
            done += n;
        }
    }

    /**
     * Copies length bytes at srcIndex of this buffer to dst at dstIndex; overlapping ranges (the same buffer, a
     * slice of it) are copied as if through a temporary copy.
     *
     * @param srcIndex the offset in this buffer
     * @param dst the buffer to copy to (this one allowed)
     * @param dstIndex the offset in dst
     * @param length how many bytes
     * @return this buffer
     */
    public OhmBuffer copyTo(long srcIndex, OhmBuffer dst, long dstIndex, long length) {
        Objects.requireNonNull(dst, "dst");
        long a = at(srcIndex, length);
        long d = dst.atw(dstIndex, length);
        if (!Memory.DIRECT) Native.bufCopy(dst.s.t.handle, dst.s.t.id, dstIndex, s.t.handle, s.t.id, srcIndex, length);
        else U.copyMemory(null, a, null, d, length);
        Reference.reachabilityFence(s);
        Reference.reachabilityFence(dst.s);
        return this;
    }

    /**
     * Sets length bytes at index to value.
     *
     * @param index the offset in bytes
     * @param length how many bytes
     * @param value the byte to write
     * @return this buffer
     */
    public OhmBuffer fill(long index, long length, byte value) {
        long a = atw(index, length);
        if (!Memory.DIRECT) Native.bufFill(s.t.handle, s.t.id, index, length, value);
        else U.setMemory(a, length, value);
        Reference.reachabilityFence(s);
        return this;
    }

    /**
     * The first index of pattern within [fromIndex, toIndex), or -1. An empty pattern is found at fromIndex.
     *
     * @param pattern the bytes to find
     * @param fromIndex where the search starts
     * @param toIndex where it ends (exclusive)
     * @return the index, or -1
     */
    public long indexOf(byte[] pattern, long fromIndex, long toIndex) {
        Objects.requireNonNull(pattern, "pattern");
        at(fromIndex, toIndex - fromIndex);
        long r = Native.bufFind(s.t.handle, s.t.id, fromIndex, toIndex - fromIndex, pattern);
        Reference.reachabilityFence(s);
        return r;
    }

    /**
     * Compares the contents as unsigned bytes, then by capacity (ByteBuffer.compareTo's order).
     *
     * @param other the buffer to compare with
     * @return below, at or above 0, as {@link Comparable#compareTo}
     */
    public int compareContent(OhmBuffer other) {
        ensureAccessible();
        other.ensureAccessible();
        int r = Native.bufCompare(s.t.handle, s.t.id, other.s.t.handle, other.s.t.id);
        Reference.reachabilityFence(s);
        Reference.reachabilityFence(other.s);
        return r;
    }

    /**
     * Whether both buffers hold the same bytes.
     *
     * @param other the buffer to compare with
     * @return whether the capacities and the bytes are equal
     */
    public boolean contentEquals(OhmBuffer other) {
        return capacity() == other.capacity() && compareContent(other) == 0;
    }

    // ---- derived buffers

    /**
     * [index, index + length) of this buffer, sharing its memory and its count.
     *
     * @param index the offset in bytes
     * @param length the slice's length
     * @return the slice
     */
    public OhmBuffer slice(long index, long length) {
        at(index, length);
        s.t.count.plain = false; // the runtime's derived handle ends with the count: no parking
        SafetyNet.Local l = SafetyNet.local();
        long h = Native.bufSlice(s.t.handle, s.t.id, index, length, false, l.scratch);
        return derived(h, l);
    }

    /** {@return the whole buffer as a slice, sharing its memory and its count} */
    public OhmBuffer slice() {
        return slice(0, capacity());
    }

    /** {@return the whole buffer, sharing its memory and count} */
    public OhmBuffer duplicate() {
        ensureAccessible();
        s.t.count.plain = false;
        SafetyNet.Local l = SafetyNet.local();
        long h = Native.bufDuplicate(s.t.handle, s.t.id, l.scratch);
        return derived(h, l);
    }

    private OhmBuffer derived(long h, SafetyNet.Local l) {
        try {
            Tracker pt = s.t;
            Shell sh = new Shell(s);
            Tracker t = new Tracker(sh, h, l.out(0), l.out(1), l.out(3), pt);
            sh.t = t;
            SafetyNet.add(l, t);
            return new OhmBuffer(sh, t.gen);
        } catch (Throwable e) {
            Native.bufReclaim(h, l.out(0)); // drops only the slice's handle
            throw e;
        }
    }

    /**
     * A slice with its own count of 1 that holds one reference on this buffer until it is released.
     *
     * @param index the offset in bytes
     * @param length the slice's length
     * @return the slice, to release
     * @throws IllegalReferenceCountException if this buffer is released, or its count is at its maximum
     *         (Netty's "refCnt: 2147483647, increment: 1")
     */
    public OhmBuffer retainedSlice(long index, long length) {
        at(index, length);
        s.t.count.plain = false; // the slice holds a reference the runtime releases: no parking
        s.t.memory.plain = false;
        SafetyNet.Local l = SafetyNet.local();
        long h;
        try {
            h = Native.bufSlice(s.t.handle, s.t.id, index, length, true, l.scratch);
        } catch (IllegalArgumentException e) {
            // The range was checked above, so the runtime's only argument error left is the count's overflow.
            throw new IllegalReferenceCountException(refCnt(), 1);
        }
        try {
            return owner(h, l, s.t.count.scope, this);
        } catch (Throwable e) {
            Native.bufRelease(h, l.out(0), 1);
            throw e;
        }
    }

    /** {@return the whole buffer as a retained slice, to release} */
    public OhmBuffer retainedDuplicate() {
        return retainedSlice(0, capacity());
    }

    // ---- interop

    /**
     * A direct ByteBuffer over the whole buffer (at most 2^31-1 bytes), sharing its memory, big-endian as every
     * new ByteBuffer. The view does not keep this buffer alive and is not checked: after this buffer's count
     * reaches 0 it must not be used (its memory may belong to another buffer, or be unmapped).
     *
     * <p>The view of read-only memory (a read-only mapping, read-only shared memory, a sealed buffer) is
     * read-only: {@code isReadOnly()} is true and a put throws ReadOnlyBufferException. A writable view cannot be
     * taken back and a store through it cannot be intercepted, so once one was handed out for this buffer's memory
     * (by this buffer or any slice, duplicate or retained slice of the same memory) {@link #seal seal(true)} is
     * refused; take views with {@link #readOnlyNioBuffer()} where the memory may be sealed later.
     *
     * @return the view
     * @throws IllegalArgumentException if the buffer is larger than 2^31-1 bytes
     */
    public ByteBuffer nioBuffer() {
        return nioBuffer(0, capacity());
    }

    /**
     * A direct ByteBuffer over [index, index + length); see {@link #nioBuffer()}.
     *
     * @param index the offset in bytes
     * @param length the view's length
     * @return the view
     */
    public ByteBuffer nioBuffer(long index, long length) {
        return view(index, length, false);
    }

    /**
     * A read-only direct ByteBuffer over the whole buffer, whatever the buffer is; it does not stop a later
     * {@link #seal seal(true)}. Otherwise as {@link #nioBuffer()}.
     *
     * @return the view
     */
    public ByteBuffer readOnlyNioBuffer() {
        return readOnlyNioBuffer(0, capacity());
    }

    /**
     * A read-only direct ByteBuffer over [index, index + length); see {@link #readOnlyNioBuffer()}.
     *
     * @param index the offset in bytes
     * @param length the view's length
     * @return the view
     */
    public ByteBuffer readOnlyNioBuffer(long index, long length) {
        return view(index, length, true);
    }

    /** Under the memory's lock, so that a writable view and a seal of the same memory on two threads cannot both
     * succeed: either the view is read-only or the seal throws. */
    private ByteBuffer view(long index, long length, boolean readOnly) {
        at(index, length);
        Tracker m = s.t.memory;
        synchronized (m) {
            boolean writable = !readOnly && !m.readOnly;
            ByteBuffer bb = Native.bufNio(s.t.handle, s.t.id, index, length, writable);
            if (!writable) return bb.asReadOnlyBuffer();
            m.writableView = true;
            return bb;
        }
    }

    /**
     * Forces writes of a mapped file buffer out to the file (msync). IllegalArgumentException for a buffer that
     * is not a mapped file.
     *
     * @return this buffer
     */
    public OhmBuffer sync() {
        return sync(0, 0);
    }

    /**
     * msync of [index, index + length) (length 0: all).
     *
     * @param index the offset in bytes
     * @param length how many bytes (0: all)
     * @return this buffer
     */
    public OhmBuffer sync(long index, long length) {
        ensureAccessible();
        Native.bufSync(s.t.handle, s.t.id, index, length);
        return this;
    }

    /**
     * Makes the buffer's memory read-only (true: mprotect, so a stray native store faults) or writable again. Only
     * for a buffer that covers memory owning whole pages: a file or shared memory mapped read-write whose region
     * is whole pages, or a guarded buffer (OHM_DEBUG_GUARD), and slices or duplicates of all of it. Sealing is
     * shared by every buffer of the same memory. While sealed, puts throw IllegalStateException and
     * {@link #nioBuffer()} is read-only.
     *
     * <p>seal(true) is refused once a writable {@link #nioBuffer()} of this memory was handed out (by any buffer
     * of it, before or after an earlier seal/unseal): a store through that view after sealing would kill the JVM,
     * and whether the view is still reachable is the GC's secret. Read-only views never stop it. Sealing while
     * another thread puts into the same memory is a race the caller must avoid, as with release.
     *
     * @param sealed true to seal, false to unseal
     * @return this buffer
     * @throws IllegalStateException if a writable nioBuffer of this memory was handed out (sealing only), or the
     *         buffer is released
     * @throws IllegalArgumentException if the buffer cannot be sealed: a pool block, part of a buffer, a region
     *         that is not whole pages, or a read-only mapping (which also cannot be unsealed)
     */
    public OhmBuffer seal(boolean sealed) {
        ensureAccessible();
        Tracker m = s.t.memory;
        synchronized (m) {
            if (sealed && m.writableView) {
                // A buffer that cannot be sealed at all says so first (IllegalArgumentException): unsealing
                // writable memory changes nothing and fails exactly where sealing would.
                if (!m.readOnly) Native.bufSeal(s.t.handle, s.t.id, false);
                throw new IllegalStateException("seal: a writable nioBuffer() of this memory was handed out, and a "
                        + "store through it into sealed memory would crash the JVM (take readOnlyNioBuffer() views "
                        + "of memory that is to be sealed)");
            }
            boolean was = m.readOnly;
            if (sealed) m.readOnly = true; // before the pages turn read-only, so puts start failing first
            try {
                Native.bufSeal(s.t.handle, s.t.id, sealed);
            } catch (RuntimeException e) {
                m.readOnly = was;
                throw e;
            }
            m.readOnly = sealed;
        }
        return this;
    }

    @Override
    public String toString() {
        return "OhmBuffer(capacity: " + capacity() + ", refCnt: " + refCnt() + ")";
    }
}
