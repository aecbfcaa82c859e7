package org.ohm.netty;

import io.netty.buffer.AbstractReferenceCountedByteBuf;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;
import org.ohm.OhmBuffer;

/**
 * A direct ByteBuf whose memory is an {@link OhmBuffer}. The reference count, indexes, marks, bounds checks and
 * derived buffers (slices, duplicates, their retained forms, read-only and swapped views) are Netty's own
 * (AbstractReferenceCountedByteBuf), so their rules and messages are exactly Netty's; the ohm buffer holds one
 * reference for as long as this buffer's count is above 0 and is released by the last {@link #release()}.
 * Every access goes through the ohm buffer's checked get/put, so a stale access can never touch freed memory.
 *
 * <p>A capacity change allocates a new ohm buffer from the same pool, copies, and releases the old one.
 */
public final class OhmDirectByteBuf extends AbstractReferenceCountedByteBuf {
    /** Chunk size for copies through a byte[] (streams). */
    private static final int COPY_CHUNK = 8192;

    private final OhmByteBufAllocator alloc;
    private OhmBuffer mem;
    private int capacity;
    /** A writable view of the whole memory, made on first use (a native call): nioBuffer and the channel
     * operations take duplicates of it. */
    private ByteBuffer view;
    /** The view internalNioBuffer hands out (its position and limit are the caller's). */
    private ByteBuffer internalView;

    OhmDirectByteBuf(OhmByteBufAllocator alloc, int initialCapacity, int maxCapacity) {
        super(maxCapacity);
        if (initialCapacity < 0) {
            throw new IllegalArgumentException("initialCapacity: " + initialCapacity + " (expected: >= 0)");
        }
        if (initialCapacity > maxCapacity) {
            throw new IllegalArgumentException(String.format("initialCapacity(%d) > maxCapacity(%d)",
                    initialCapacity, maxCapacity));
        }
        this.alloc = alloc;
        setMemory(alloc.pool.allocate(initialCapacity));
    }

    private void setMemory(OhmBuffer m) {
        mem = m;
        capacity = (int) m.capacity();
        view = null;
        internalView = null;
    }

    /** {@return the ohm buffer holding this buffer's memory now (a capacity change replaces it)}, for its id in
     * leak reports and its statistics. Its one reference belongs to this buffer: release this buffer, not it. */
    public OhmBuffer ohmBuffer() {
        ensureAccessible();
        return mem;
    }

    /**
     * The ohm buffer holding a Netty buffer's memory now: b's own when b is one of these, else that of the buffer
     * b derives from (a slice, a duplicate); null when that is released or is not one of these.
     *
     * @param b any Netty buffer
     * @return the ohm buffer, or null
     */
    static OhmBuffer memoryOf(ByteBuf b) {
        ByteBuf root = b;
        for (ByteBuf u = b.unwrap(); u != null; u = u.unwrap()) root = u;
        return root instanceof OhmDirectByteBuf d && d.refCnt() > 0 ? d.mem : null;
    }

    // ---- properties

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public ByteBuf capacity(int newCapacity) {
        checkNewCapacity(newCapacity);
        int old = capacity;
        if (newCapacity == old) return this;
        int keep = old;
        if (newCapacity < old) {
            trimIndicesToCapacity(newCapacity);
            keep = newCapacity;
        }
        OhmBuffer fresh = alloc.pool.allocate(newCapacity);
        OhmBuffer stale = mem;
        try {
            stale.copyTo(0, fresh, 0, keep);
        } catch (RuntimeException | Error e) {
            fresh.release();
            throw e;
        }
        setMemory(fresh);
        stale.release();
        return this;
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    @SuppressWarnings("deprecation")
    public ByteOrder order() {
        return ByteOrder.BIG_ENDIAN;
    }

    @Override
    public ByteBuf unwrap() {
        return null;
    }

    @Override
    public boolean isDirect() {
        return true;
    }

    @Override
    public boolean isContiguous() {
        return true;
    }

    @Override
    public boolean hasArray() {
        return false;
    }

    @Override
    public byte[] array() {
        throw new UnsupportedOperationException("direct buffer");
    }

    @Override
    public int arrayOffset() {
        throw new UnsupportedOperationException("direct buffer");
    }

    @Override
    public boolean hasMemoryAddress() {
        return true;
    }

    @Override
    public long memoryAddress() {
        ensureAccessible();
        return mem.memoryAddress();
    }

    // ---- reference counting: Netty's, with the ohm buffer's reference dropped at the end

    @Override
    protected void deallocate() {
        OhmBuffer m = mem;
        view = null;
        internalView = null;
        m.release();
    }

    /** Records an access in ohm's leak detector (levels ADVANCED and PARANOID, for the buffers it tracks). */
    @Override
    public ByteBuf touch() {
        return touch(null);
    }

    @Override
    public ByteBuf touch(Object hint) {
        OhmBuffer m = mem;
        if (m.isAccessible()) m.touch(hint);
        return this;
    }

    // ---- the primitives AbstractByteBuf builds everything on (indexes already checked)

    @Override
    protected byte _getByte(int index) {
        return mem.getByte(index);
    }

    @Override
    protected short _getShort(int index) {
        return mem.getShort(index);
    }

    @Override
    protected short _getShortLE(int index) {
        return mem.getShortLE(index);
    }

    @Override
    protected int _getUnsignedMedium(int index) {
        OhmBuffer m = mem;
        return (m.getByte(index) & 0xff) << 16 | m.getUnsignedShort(index + 1);
    }

    @Override
    protected int _getUnsignedMediumLE(int index) {
        OhmBuffer m = mem;
        return m.getByte(index) & 0xff | m.getUnsignedShortLE(index + 1) << 8;
    }

    @Override
    protected int _getInt(int index) {
        return mem.getInt(index);
    }

    @Override
    protected int _getIntLE(int index) {
        return mem.getIntLE(index);
    }

    @Override
    protected long _getLong(int index) {
        return mem.getLong(index);
    }

    @Override
    protected long _getLongLE(int index) {
        return mem.getLongLE(index);
    }

    @Override
    protected void _setByte(int index, int value) {
        mem.putByte(index, value);
    }

    @Override
    protected void _setShort(int index, int value) {
        mem.putShort(index, value);
    }

    @Override
    protected void _setShortLE(int index, int value) {
        mem.putShortLE(index, value);
    }

    @Override
    protected void _setMedium(int index, int value) {
        OhmBuffer m = mem;
        m.putByte(index, value >>> 16);
        m.putShort(index + 1, value);
    }

    @Override
    protected void _setMediumLE(int index, int value) {
        OhmBuffer m = mem;
        m.putByte(index, value);
        m.putShortLE(index + 1, value >>> 8);
    }

    @Override
    protected void _setInt(int index, int value) {
        mem.putInt(index, value);
    }

    @Override
    protected void _setIntLE(int index, int value) {
        mem.putIntLE(index, value);
    }

    @Override
    protected void _setLong(int index, long value) {
        mem.putLong(index, value);
    }

    @Override
    protected void _setLongLE(int index, long value) {
        mem.putLongLE(index, value);
    }

    // ---- bulk access

    @Override
    public ByteBuf getBytes(int index, ByteBuf dst, int dstIndex, int length) {
        checkDstIndex(index, length, dstIndex, dst.capacity());
        exchange(index, dst, dstIndex, length, true);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, byte[] dst, int dstIndex, int length) {
        checkDstIndex(index, length, dstIndex, dst.length);
        mem.getBytes(index, dst, dstIndex, length);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, ByteBuffer dst) {
        checkIndex(index, dst.remaining());
        mem.getBytes(index, dst);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, OutputStream out, int length) throws IOException {
        checkIndex(index, length);
        if (length == 0) return this;
        byte[] tmp = new byte[Math.min(length, COPY_CHUNK)];
        for (int done = 0; done < length; ) {
            int n = Math.min(tmp.length, length - done);
            mem.getBytes(index + done, tmp, 0, n);
            out.write(tmp, 0, n);
            done += n;
        }
        return this;
    }

    @Override
    public int getBytes(int index, GatheringByteChannel out, int length) throws IOException {
        checkIndex(index, length);
        if (length == 0) return 0;
        return out.write(window(index, length));
    }

    @Override
    public int getBytes(int index, FileChannel out, long position, int length) throws IOException {
        checkIndex(index, length);
        if (length == 0) return 0;
        return out.write(window(index, length), position);
    }

    @Override
    public ByteBuf setBytes(int index, ByteBuf src, int srcIndex, int length) {
        checkSrcIndex(index, length, srcIndex, src.capacity());
        exchange(index, src, srcIndex, length, false);
        return this;
    }

    /** Copies [index, index + length) of this buffer to other at otherIndex (toOther), or the other way, by the
     * best route other offers: one ohm copy between ohm buffers, its array, its NIO views; otherwise other's
     * own copy with this buffer. Indexes already checked. */
    private void exchange(int index, ByteBuf other, int otherIndex, int length, boolean toOther) {
        OhmBuffer m = mem;
        if (other instanceof OhmDirectByteBuf) {
            OhmBuffer o = ((OhmDirectByteBuf) other).mem;
            if (toOther) m.copyTo(index, o, otherIndex, length);
            else o.copyTo(otherIndex, m, index, length);
        } else if (other.hasArray()) {
            byte[] a = other.array();
            int at = other.arrayOffset() + otherIndex;
            if (toOther) m.getBytes(index, a, at, length);
            else m.putBytes(index, a, at, length);
        } else if (other.nioBufferCount() > 0) {
            for (ByteBuffer bb : other.nioBuffers(otherIndex, length)) {
                int n = bb.remaining();
                if (toOther) m.getBytes(index, bb);
                else m.putBytes(index, bb);
                index += n;
            }
        } else if (toOther) {
            other.setBytes(otherIndex, this, index, length);
        } else {
            other.getBytes(otherIndex, this, index, length);
        }
    }

    @Override
    public ByteBuf setBytes(int index, byte[] src, int srcIndex, int length) {
        checkSrcIndex(index, length, srcIndex, src.length);
        mem.putBytes(index, src, srcIndex, length);
        return this;
    }

    @Override
    public ByteBuf setBytes(int index, ByteBuffer src) {
        checkIndex(index, src.remaining());
        mem.putBytes(index, src);
        return this;
    }

    @Override
    public int setBytes(int index, InputStream in, int length) throws IOException {
        checkIndex(index, length);
        byte[] tmp = new byte[length];
        int n = in.read(tmp, 0, length);
        if (n > 0) mem.putBytes(index, tmp, 0, n);
        return n;
    }

    @Override
    public int setBytes(int index, ScatteringByteChannel in, int length) throws IOException {
        checkIndex(index, length);
        try {
            return in.read(window(index, length));
        } catch (ClosedChannelException e) {
            return -1;
        }
    }

    @Override
    public int setBytes(int index, FileChannel in, long position, int length) throws IOException {
        checkIndex(index, length);
        try {
            return in.read(window(index, length), position);
        } catch (ClosedChannelException e) {
            return -1;
        }
    }

    @Override
    public ByteBuf setZero(int index, int length) {
        checkIndex(index, length);
        mem.fill(index, length, (byte) 0);
        return this;
    }

    @Override
    public ByteBuf writeZero(int length) {
        if (length == 0) return this;
        ensureWritable(length);
        int w = writerIndex();
        mem.fill(w, length, (byte) 0);
        writerIndex(w + length);
        return this;
    }

    @Override
    public ByteBuf copy(int index, int length) {
        checkIndex(index, length);
        ByteBuf copy = alloc.directBuffer(length, maxCapacity());
        return copy.writeBytes(this, index, length);
    }

    // ---- NIO views

    @Override
    public int nioBufferCount() {
        return 1;
    }

    @Override
    public ByteBuffer nioBuffer(int index, int length) {
        checkIndex(index, length);
        return window(index, length).slice();
    }

    @Override
    public ByteBuffer[] nioBuffers(int index, int length) {
        return new ByteBuffer[] {nioBuffer(index, length)};
    }

    @Override
    public ByteBuffer internalNioBuffer(int index, int length) {
        checkIndex(index, length);
        ByteBuffer b = internalView;
        if (b == null) internalView = b = wholeView().duplicate();
        b.clear().position(index).limit(index + length);
        return b;
    }

    /** A new ByteBuffer over the whole memory with position index and limit index + length. */
    private ByteBuffer window(int index, int length) {
        ByteBuffer b = wholeView().duplicate();
        b.position(index).limit(index + length);
        return b;
    }

    private ByteBuffer wholeView() {
        ByteBuffer v = view;
        if (v == null) view = v = mem.nioBuffer();
        return v;
    }
}
