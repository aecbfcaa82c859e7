package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ReadOnlyBufferException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.ohm.IllegalReferenceCountException;
import org.ohm.MapOption;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmIOException;
import org.ohm.OhmOutOfMemoryError;
import org.ohm.OhmPool;
import org.ohm.SharedMemory;

/** Misuse from Java raises the right exception, touches no freed memory, and the JVM survives. */
class MisuseTest {
    @Test
    void negativeAndHugeSizes() {
        assertThrows(IllegalArgumentException.class, () -> Ohm.allocate(-1));
        assertThrows(IllegalArgumentException.class, () -> Ohm.allocate(Long.MIN_VALUE));
        assertThrows(OutOfMemoryError.class, () -> Ohm.allocate(Long.MAX_VALUE));
        OhmOutOfMemoryError e = assertThrows(OhmOutOfMemoryError.class, () -> Ohm.allocate(1L << 60));
        assertFalse(e.getMessage().isEmpty());
    }

    @Test
    void outOfBoundsOffsets() {
        try (OhmBuffer b = Ohm.allocate(16)) {
            assertThrows(IndexOutOfBoundsException.class, () -> b.getByte(16));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getLong(9));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getLong(-1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.putInt(Long.MAX_VALUE, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.putLong(Long.MIN_VALUE, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.fill(8, 9, (byte) 0));
            assertThrows(IndexOutOfBoundsException.class, () -> b.fill(0, -1, (byte) 0));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getBytes(10, new byte[7]));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getBytes(0, new byte[4], 2, 3));
            assertThrows(IndexOutOfBoundsException.class, () -> b.slice(8, 9));
            assertThrows(IndexOutOfBoundsException.class, () -> b.retainedSlice(-1, 2));
            assertThrows(IndexOutOfBoundsException.class, () -> b.nioBuffer(0, 17));
            assertThrows(IndexOutOfBoundsException.class, () -> b.copyTo(0, b, 12, 5));
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> b.getLong(12));
            assertEquals("offset 12 + length 8 exceeds buffer size 16", e.getMessage());
            b.putLong(8, 1); // the buffer is fine afterwards
            assertEquals(1, b.getLong(8));
        }
    }

    @Test
    void useAfterReleaseThrowsIllegalStateForEverySharer() {
        OhmBuffer b = Ohm.allocate(64);
        OhmBuffer s = b.slice(0, 32);
        OhmBuffer d = s.duplicate();
        assertTrue(s.release());
        for (OhmBuffer x : new OhmBuffer[] {b, s, d}) {
            assertThrows(IllegalStateException.class, () -> x.getLong(0));
            assertThrows(IllegalStateException.class, () -> x.putLong(0, 1));
            assertThrows(IllegalStateException.class, () -> x.getBytes(0, new byte[4]));
            assertThrows(IllegalStateException.class, () -> x.fill(0, 4, (byte) 1));
            assertThrows(IllegalStateException.class, () -> x.nioBuffer());
            assertThrows(IllegalStateException.class, () -> x.slice(0, 1));
            assertThrows(IllegalStateException.class, () -> x.memoryAddress());
            assertEquals(0, x.refCnt());
            assertFalse(x.isAccessible());
        }
    }

    @Test
    void doubleReleaseAndRetainAfterRelease() {
        OhmBuffer b = Ohm.allocate(8);
        assertTrue(b.release());
        IllegalReferenceCountException e = assertThrows(IllegalReferenceCountException.class, b::release);
        assertEquals("refCnt: 0, decrement: 1", e.getMessage());
        assertThrows(IllegalReferenceCountException.class, b::retain);
        b.close(); // a no-op on a released buffer
    }

    @Test
    void nettyCountRules() {
        OhmBuffer b = Ohm.allocate(8);
        assertThrows(IllegalArgumentException.class, () -> b.retain(0));
        assertThrows(IllegalArgumentException.class, () -> b.release(-1));
        b.retain(2);
        assertEquals(3, b.refCnt());
        IllegalReferenceCountException e = assertThrows(IllegalReferenceCountException.class, () -> b.release(4));
        assertEquals("refCnt: 3, decrement: 4", e.getMessage());
        assertEquals(3, b.refCnt()); // untouched
        assertThrows(IllegalReferenceCountException.class, () -> b.retain(Integer.MAX_VALUE));
        assertEquals(3, b.refCnt());
        assertFalse(b.release(2));
        assertTrue(b.release());
    }

    @Test
    void retainedSliceThatWouldOverflowTheCountIsIllegalReferenceCount() {
        OhmBuffer b = Ohm.allocate(8);
        b.retain(Integer.MAX_VALUE - 1);
        IllegalReferenceCountException e =
                assertThrows(IllegalReferenceCountException.class, () -> b.retainedSlice(0, 4));
        assertEquals("refCnt: 2147483647, increment: 1", e.getMessage()); // Netty's words for an overflow
        assertThrows(IllegalReferenceCountException.class, b::retainedDuplicate);
        assertThrows(IllegalReferenceCountException.class, () -> b.slice(0, 8).retainedSlice(0, 1));
        assertEquals(Integer.MAX_VALUE, b.refCnt()); // nothing taken
        assertTrue(b.release(Integer.MAX_VALUE));
    }

    @Test
    void mappingADirectoryIsAnIOError(@TempDir Path dir) {
        for (MapOption[] options : new MapOption[][] {{}, {MapOption.WRITE}, {MapOption.CREATE, MapOption.WRITE}}) {
            OhmIOException e = assertThrows(OhmIOException.class, () -> OhmBuffer.mapFile(dir, 0, 0, options));
            assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
            assertNotNull(e.getCause());
        }
        assertThrows(IllegalArgumentException.class, () -> OhmBuffer.mapFile(dir.resolve("x"), -1, 0));
        assertThrows(IllegalArgumentException.class, () -> OhmBuffer.mapFile(dir, -1, 0)); // the argument first
        assertThrows(IllegalArgumentException.class, () -> OhmBuffer.mapFile(Path.of(""), 0, 0));
    }

    @Test
    void writesToReadOnlyMemoryAreRefusedWithoutAFault(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("ro.bin");
        Files.write(f, new byte[4096]);
        String name = "/ohm-misuse-ro-" + ProcessHandle.current().pid();
        try (OhmBuffer file = OhmBuffer.mapFile(f, 0, 0); OhmBuffer shm = SharedMemory.create(name, 4096);
             OhmBuffer shmRo = SharedMemory.open(name, false); OhmBuffer src = Ohm.allocate(8)) {
            for (OhmBuffer b : new OhmBuffer[] {file, shmRo, file.slice(8, 8), shmRo.duplicate()}) {
                assertThrows(IllegalStateException.class, () -> b.putByte(0, 1));
                assertThrows(IllegalStateException.class, () -> b.putLongLE(0, 1));
                assertThrows(IllegalStateException.class, () -> b.putDouble(0, 1));
                assertThrows(IllegalStateException.class, () -> b.putBytes(0, new byte[2]));
                assertThrows(IllegalStateException.class, () -> b.fill(0, 2, (byte) 1));
                assertThrows(IllegalStateException.class, () -> src.copyTo(0, b, 0, 2));
                assertTrue(b.nioBuffer().isReadOnly());
                assertThrows(ReadOnlyBufferException.class, () -> b.nioBuffer().put(0, (byte) 1));
                assertEquals(0, b.getLong(0)); // reads work, nothing was written
            }
            shm.putLong(0, 1); // the writable mapping of the same object still writes
            assertEquals(1, shmRo.getLong(0));
        } finally {
            SharedMemory.unlink(name);
        }
    }

    @Test
    void closedPoolFailsItsBuffersAndAllocations() {
        OhmPool pool = Ohm.builder().name("misuse").build();
        OhmBuffer b = pool.allocate(128);
        b.putLong(0, 5);
        pool.close();
        assertTrue(pool.isClosed());
        assertThrows(IllegalStateException.class, () -> b.getLong(0));
        assertThrows(IllegalStateException.class, b::release);
        assertThrows(IllegalStateException.class, () -> pool.allocate(8));
        pool.close(); // twice: nothing
        assertThrows(IllegalStateException.class, () -> Ohm.defaultPool().close());
    }

    @Test
    void poolCapRefusesWithOutOfMemoryAndRecovers() {
        try (OhmPool pool = Ohm.builder().name("capped").maxMapped(8L << 20).build()) {
            OhmBuffer big = pool.allocate(4L << 20);
            assertThrows(OhmOutOfMemoryError.class, () -> pool.allocate(16L << 20));
            assertTrue(pool.stats().failedAllocations() >= 1);
            big.release();
            pool.allocate(1024).release();
        }
    }

    @Test
    void badPoolConfigurationIsIllegalArgument() {
        assertThrows(IllegalArgumentException.class, () -> Ohm.builder().chunkSize(3).build());
        assertThrows(IllegalArgumentException.class, () -> Ohm.builder().cacheSlots(0).build());
        assertThrows(IllegalArgumentException.class, () -> Ohm.builder().chunkSize(-1).build());
    }

    @Test
    void aStringWithNulIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Ohm.builder().name("a\0b").build());
    }
}
