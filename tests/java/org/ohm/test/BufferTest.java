package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;

/** Buffers: typed access in both byte orders, bulk copies, fill, slices, the ByteBuffer view. */
class BufferTest {
    @Test
    void typedAccessRoundTripsInBothByteOrders() {
        try (OhmBuffer b = Ohm.allocate(64)) {
            b.putByte(0, -5).putShort(1, 0x1234).putInt(3, 0xCAFEBABE).putLong(7, 0x1122334455667788L);
            b.putFloat(15, 1.5f).putDouble(19, -2.25);
            assertEquals(-5, b.getByte(0));
            assertEquals(251, b.getUnsignedByte(0));
            assertEquals(0x1234, b.getShort(1));
            assertEquals(0x3412, b.getShortLE(1));
            assertEquals(0xCAFEBABE, b.getInt(3));
            assertEquals(0xBEBAFECAL, b.getUnsignedIntLE(3));
            assertEquals(0x1122334455667788L, b.getLong(7));
            assertEquals(0x8877665544332211L, b.getLongLE(7));
            assertEquals(1.5f, b.getFloat(15));
            assertEquals(-2.25, b.getDouble(19));
            b.putShortLE(30, 0xABCD).putIntLE(32, 7).putLongLE(36, -3L).putFloatLE(44, 3f).putDoubleLE(48, 9.5);
            assertEquals(0xABCD, b.getUnsignedShortLE(30));
            assertEquals((byte) 0xCD, b.getByte(30)); // little-endian: low byte first
            assertEquals(7, b.getIntLE(32));
            assertEquals(-3L, b.getLongLE(36));
            assertEquals(3f, b.getFloatLE(44));
            assertEquals(9.5, b.getDoubleLE(48));
        }
    }

    @Test
    void bigEndianMatchesByteBuffer() {
        try (OhmBuffer b = Ohm.allocate(8)) {
            b.putLong(0, 0x0102030405060708L);
            ByteBuffer view = b.nioBuffer();
            assertTrue(view.isDirect());
            assertEquals(ByteOrder.BIG_ENDIAN, view.order());
            assertEquals(0x0102030405060708L, view.getLong(0));
            assertEquals(1, view.get(0));
            view.putInt(4, 42);
            assertEquals(42, b.getInt(4));
        }
    }

    @Test
    void bulkCopiesWithArraysAndByteBuffers() {
        byte[] src = new byte[100];
        for (int i = 0; i < src.length; i++) src[i] = (byte) i;
        try (OhmBuffer b = Ohm.allocate(200)) {
            b.fill(0, 200, (byte) 0x7f);
            b.putBytes(50, src, 10, 80);
            byte[] out = new byte[80];
            b.getBytes(50, out);
            for (int i = 0; i < 80; i++) assertEquals((byte) (i + 10), out[i]);
            assertEquals(0x7f, b.getByte(49));
            assertEquals(0x7f, b.getByte(130));

            ByteBuffer heap = ByteBuffer.allocate(20);
            b.getBytes(50, heap);
            assertEquals(20, heap.position());
            assertEquals(10, heap.get(0));
            ByteBuffer direct = ByteBuffer.allocateDirect(30);
            direct.position(5);
            b.getBytes(60, direct);
            assertEquals(30, direct.position());
            assertEquals(20, direct.get(5));

            ByteBuffer in = ByteBuffer.allocateDirect(4).putInt(0, 0xDEADBEEF);
            b.putBytes(0, in);
            assertEquals(0xDEADBEEF, b.getInt(0));
            ByteBuffer ro = ByteBuffer.wrap(new byte[] {1, 2, 3}).asReadOnlyBuffer();
            b.putBytes(4, ro);
            assertEquals(3, ro.position());
            assertEquals(0x010203, b.getInt(3) & 0xffffff);
        }
    }

    @Test
    void copyBetweenBuffersHandlesOverlap() {
        try (OhmBuffer a = Ohm.allocate(16); OhmBuffer c = Ohm.allocate(16)) {
            for (int i = 0; i < 16; i++) a.putByte(i, i);
            a.copyTo(0, a, 4, 8); // overlapping, forward
            assertEquals(0, a.getByte(4));
            assertEquals(7, a.getByte(11));
            a.copyTo(0, c, 8, 8);
            assertEquals(a.getLong(0), c.getLong(8));
        }
    }

    @Test
    void slicesAndDuplicatesShareMemoryAndCount() {
        OhmBuffer b = Ohm.allocate(32);
        b.putLong(8, 99);
        OhmBuffer s = b.slice(8, 16);
        OhmBuffer d = b.duplicate();
        assertEquals(16, s.capacity());
        assertEquals(99, s.getLong(0));
        s.putLong(8, 7);
        assertEquals(7, b.getLong(16));
        assertEquals(7, d.getLong(16));
        b.retain();
        assertEquals(2, s.refCnt());
        assertFalse(s.release());
        assertTrue(d.release()); // the shared count reaches 0 through the duplicate
        assertFalse(b.isAccessible());
        assertThrows(IllegalStateException.class, () -> s.getLong(0));
        assertThrows(IllegalStateException.class, () -> b.getLong(0));
    }

    @Test
    void retainedSliceHasItsOwnCountAndKeepsTheParent() {
        OhmBuffer b = Ohm.allocate(32);
        b.putInt(4, 1234);
        OhmBuffer r = b.retainedSlice(4, 8);
        assertEquals(1, r.refCnt());
        assertEquals(2, b.refCnt());
        assertFalse(b.release());
        assertEquals(1234, r.getInt(0)); // the parent's memory stays for the retained slice
        assertTrue(r.release());
        assertFalse(b.isAccessible()); // the retained slice's last release freed the parent too
        assertThrows(IllegalStateException.class, () -> b.getInt(4));
    }

    @Test
    void indexOfAndCompare() {
        try (OhmBuffer a = Ohm.allocate(10); OhmBuffer c = Ohm.allocate(10)) {
            a.putBytes(0, "abcdefghij".getBytes());
            c.putBytes(0, "abcdefghiz".getBytes());
            assertEquals(3, a.indexOf("def".getBytes(), 0, 10));
            assertEquals(-1, a.indexOf("def".getBytes(), 4, 10));
            assertTrue(a.compareContent(c) < 0);
            assertFalse(a.contentEquals(c));
            c.putByte(9, 'j');
            assertTrue(a.contentEquals(c));
        }
    }

    @Test
    void zeroedAndEmptyBuffers() {
        try (OhmBuffer z = Ohm.defaultPool().allocateZeroed(4096); OhmBuffer e = Ohm.allocate(0)) {
            for (long i = 0; i < 4096; i += 8) assertEquals(0, z.getLong(i));
            assertEquals(0, e.capacity());
            assertThrows(IndexOutOfBoundsException.class, () -> e.getByte(0));
            assertEquals(0, e.nioBuffer().capacity());
        }
    }

    @Test
    void tryWithResourcesReleasesAndCloseAfterReleaseIsANoOp() {
        OhmBuffer b;
        try (OhmBuffer x = Ohm.allocate(8)) {
            b = x;
            x.release();
        }
        assertEquals(0, b.refCnt());
        b.close();
    }
}
