package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.ohm.MapOption;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.SharedMemory;

/**
 * Views (nioBuffer) of read-only memory are read-only, and no view can make a store into read-only memory: a
 * read-only mapped file, shared memory opened read-only, a sealed buffer, and their slices and duplicates. A
 * writable view stops a later seal(true). Rows whose failure would be a store into read-only memory (a fault that
 * kills the JVM) run in a child JVM.
 */
class ViewMisuseTest {
    /** Whole pages on any page size up to 64 KiB: only such a mapping owns its pages and can be sealed. */
    private static final int PAGES = 64 << 10;

    @TempDir
    Path dir;

    private static Path file(Path dir, int size) throws Exception {
        Path f = Files.createTempFile(dir, "view", ".bin");
        Files.write(f, new byte[size]);
        return f;
    }

    /** Every view a buffer hands out, directly or through a slice, duplicate or retained slice. */
    private static List<ByteBuffer> views(OhmBuffer b) {
        OhmBuffer s = b.slice(8, 16), d = b.duplicate(), r = b.retainedSlice(0, 32);
        try {
            return List.of(b.nioBuffer(), b.nioBuffer(8, 8), s.nioBuffer(), s.duplicate().nioBuffer(), d.nioBuffer(),
                    r.nioBuffer(), r.slice(4, 4).nioBuffer(), b.readOnlyNioBuffer());
        } finally {
            r.release();
        }
    }

    private static void assertAllReadOnly(OhmBuffer b) {
        for (ByteBuffer v : views(b)) {
            assertTrue(v.isReadOnly(), "a view of read-only memory must be read-only");
            assertTrue(v.isDirect());
            assertThrows(ReadOnlyBufferException.class, () -> v.put(0, (byte) 1));
            assertThrows(ReadOnlyBufferException.class, () -> v.putLong(0, 1));
            assertThrows(ReadOnlyBufferException.class, () -> v.duplicate().put((byte) 1));
        }
    }

    @Test
    void viewsOfAReadOnlyMappingAreReadOnly() throws Exception {
        Path f = file(dir, 4096);
        try (OhmBuffer w = OhmBuffer.mapFile(f, 0, 0, MapOption.WRITE)) {
            w.putLong(0, 0x1122334455667788L);
        }
        try (OhmBuffer b = OhmBuffer.mapFile(f, 0, 0)) {
            assertAllReadOnly(b);
            assertEquals(0x1122334455667788L, b.nioBuffer().getLong(0), "a read-only view still reads");
            assertThrows(IllegalStateException.class, () -> b.putLong(0, 1));
        }
    }

    @Test
    void viewsOfSharedMemoryOpenedReadOnlyAreReadOnly() {
        String name = "/ohm-view-test-" + ProcessHandle.current().pid();
        try (OhmBuffer a = SharedMemory.create(name, 4096)) {
            a.putInt(0, 42);
            try (OhmBuffer b = SharedMemory.open(name, false)) {
                assertAllReadOnly(b);
                assertEquals(42, b.nioBuffer().getInt(0));
            }
            try (OhmBuffer rw = SharedMemory.open(name, true)) {
                assertFalse(rw.nioBuffer().isReadOnly(), "shared memory opened writable gives writable views");
            }
        } finally {
            SharedMemory.unlink(name);
        }
    }

    @Test
    void viewsOfASealedBufferAreReadOnlyAndWritableAgainAfterUnsealing() throws Exception {
        for (int round = 0; round < 2; round++) {
            try (OhmBuffer b = round == 0 ? OhmBuffer.mapFile(file(dir, PAGES), 0, 0, MapOption.WRITE)
                                          : SharedMemory.createAnonymous(PAGES)) {
                b.putInt(0, 7);
                b.seal(true);
                assertAllReadOnly(b);
                assertThrows(IllegalStateException.class, () -> b.putInt(0, 1));
                assertEquals(7, b.nioBuffer().getInt(0));
                b.seal(false);
                ByteBuffer w = b.nioBuffer();
                assertFalse(w.isReadOnly());
                w.putInt(0, 9);
                assertEquals(9, b.getInt(0));
            }
        }
    }

    @Test
    void sealingIsSharedByEveryBufferOfTheMemory() throws Exception {
        try (OhmBuffer b = SharedMemory.createAnonymous(PAGES)) {
            OhmBuffer d = b.duplicate();
            OhmBuffer r = b.retainedDuplicate();
            r.seal(true); // a retained duplicate covers all of the memory: it may seal it
            assertTrue(b.nioBuffer().isReadOnly());
            assertTrue(d.slice(0, 8).nioBuffer().isReadOnly());
            assertThrows(IllegalStateException.class, () -> d.putLong(0, 1));
            d.seal(false);
            b.putLong(0, 1);
            r.release();
        }
    }

    @Test
    void sealAfterAWritableViewIsRefused() throws Exception {
        try (OhmBuffer b = SharedMemory.createAnonymous(PAGES)) {
            ByteBuffer v = b.nioBuffer();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.seal(true));
            assertTrue(e.getMessage().contains("nioBuffer"), e.getMessage());
            v.putInt(0, 5); // the refused seal changed nothing
            assertEquals(5, b.getInt(0));
            b.putInt(4, 6);
            assertFalse(b.nioBuffer().isReadOnly());
            b.seal(false); // unsealing is always allowed
        }
        try (OhmBuffer p = Ohm.allocate(100)) { // a buffer that cannot be sealed at all says that first
            p.nioBuffer();
            assertThrows(IllegalArgumentException.class, () -> p.seal(true));
            p.putInt(0, 1);
        }
    }

    @Test
    void aWritableViewOfAnySliceStopsSealingEvenAfterItIsGone() throws Exception {
        for (int which = 0; which < 4; which++) {
            try (OhmBuffer b = OhmBuffer.mapFile(file(dir, PAGES), 0, 0, MapOption.WRITE)) {
                OhmBuffer r = b.retainedSlice(100, 10);
                switch (which) {
                    case 0 -> b.slice(0, 16).nioBuffer();
                    case 1 -> b.duplicate().nioBuffer(4, 4);
                    case 2 -> r.nioBuffer();
                    default -> r.duplicate().slice(1, 1).nioBuffer();
                }
                r.release();
                System.gc(); // the views are unreachable now: the rule must not depend on the GC
                assertThrows(IllegalStateException.class, () -> b.seal(true), "view " + which);
                assertThrows(IllegalStateException.class, () -> b.duplicate().seal(true), "view " + which);
            }
        }
    }

    @Test
    void readOnlyViewsNeverStopSealing() throws Exception {
        try (OhmBuffer b = SharedMemory.createAnonymous(PAGES)) {
            b.putInt(0, 3);
            ByteBuffer v = b.readOnlyNioBuffer();
            ByteBuffer s = b.slice(0, 8).readOnlyNioBuffer(0, 4);
            assertTrue(v.isReadOnly());
            assertTrue(s.isReadOnly());
            assertThrows(ReadOnlyBufferException.class, () -> v.putInt(0, 1));
            b.seal(true);
            assertEquals(3, v.getInt(0));
            assertEquals(3, s.getInt(0));
            b.seal(false);
            b.seal(true); // again: still no writable view
            ByteBuffer sealedView = b.nioBuffer(); // read-only while sealed, so it does not stop sealing either
            assertTrue(sealedView.isReadOnly());
            b.seal(false);
            b.seal(true);
            b.seal(false);
        }
    }

    @Test
    void aReadOnlyMappingCannotBeUnsealed() throws Exception {
        try (OhmBuffer b = OhmBuffer.mapFile(file(dir, PAGES), 0, 0)) {
            assertThrows(IllegalArgumentException.class, () -> b.seal(false));
            assertTrue(b.nioBuffer().isReadOnly(), "a refused unseal leaves it read-only");
            assertThrows(IllegalStateException.class, () -> b.putByte(0, 1));
        }
    }

    @Test
    void bulkCopiesIntoReadOnlyMemoryAreRefused() throws Exception {
        try (OhmBuffer b = OhmBuffer.mapFile(file(dir, 4096), 0, 0); OhmBuffer src = Ohm.allocate(16)) {
            assertThrows(IllegalStateException.class, () -> b.putBytes(0, new byte[4]));
            assertThrows(IllegalStateException.class, () -> b.putBytes(0, ByteBuffer.allocateDirect(4)));
            assertThrows(IllegalStateException.class, () -> b.putBytes(0, src.nioBuffer(0, 4)));
            assertThrows(IllegalStateException.class, () -> src.copyTo(0, b, 0, 4));
            assertThrows(IllegalStateException.class, () -> b.fill(0, 4, (byte) 1));
            // reading from read-only memory into a view of it: ReadOnlyBufferException, as ByteBuffer does (the
            // assertion first: a writable view here would make getBytes store into read-only pages)
            ByteBuffer v = b.nioBuffer(8, 4);
            assertTrue(v.isReadOnly());
            assertThrows(ReadOnlyBufferException.class, () -> b.getBytes(0, v));
            // and out of it, into writable memory, is fine
            src.putBytes(0, b.nioBuffer(0, 16));
            assertEquals(0, src.getLong(0));
        }
    }

    // ---- in a child JVM: each would be a store into read-only memory if a view were writable

    @Test
    void putThroughAViewOfReadOnlyMemoryThrowsInsteadOfCrashing() {
        for (String m : List.of("putThroughViewOfReadOnlyMapping", "putThroughViewOfReadOnlySharedMemory",
                "putThroughViewOfSealedBuffer", "putThroughViewOfSliceOfSealedBuffer"))
            ChildJvm.assertThrowsInChild(ReadOnlyBufferException.class, ViewMisuseTest.class, m);
    }

    @Test
    void sealAfterAWritableViewThrowsInsteadOfCrashing() {
        String msg = ChildJvm.assertThrowsInChild(IllegalStateException.class, ViewMisuseTest.class,
                "sealThenPutThroughViewTakenBefore");
        assertTrue(msg.contains("nioBuffer"), msg);
    }

    static void putThroughViewOfReadOnlyMapping() throws Exception {
        Path f = Files.createTempFile("ohm-view", ".bin");
        try {
            Files.write(f, new byte[4096]);
            try (OhmBuffer b = OhmBuffer.mapFile(f, 0, 0)) {
                b.nioBuffer().putLong(0, 1);
            }
        } finally {
            Files.delete(f);
        }
    }

    static void putThroughViewOfReadOnlySharedMemory() {
        String name = "/ohm-view-child-" + ProcessHandle.current().pid();
        try (OhmBuffer a = SharedMemory.create(name, 4096); OhmBuffer b = SharedMemory.open(name, false)) {
            a.putByte(16, 2);
            b.nioBuffer(16, 8).put(0, (byte) 1);
        } finally {
            SharedMemory.unlink(name);
        }
    }

    static void putThroughViewOfSealedBuffer() {
        try (OhmBuffer b = SharedMemory.createAnonymous(PAGES)) {
            b.seal(true);
            b.nioBuffer().putInt(0, 1);
        }
    }

    static void putThroughViewOfSliceOfSealedBuffer() throws Exception {
        Path f = Files.createTempFile("ohm-view", ".bin");
        try {
            Files.write(f, new byte[PAGES]);
            try (OhmBuffer b = OhmBuffer.mapFile(f, 0, 0, MapOption.WRITE)) {
                b.seal(true);
                OhmBuffer r = b.retainedSlice(64, 64);
                try {
                    r.slice(8, 8).duplicate().nioBuffer().asLongBuffer().put(0, 1);
                } finally {
                    r.release();
                }
            }
        } finally {
            Files.delete(f);
        }
    }

    /** The seal must throw; if it did not, the put after it would be a store into sealed pages. */
    static void sealThenPutThroughViewTakenBefore() {
        try (OhmBuffer b = SharedMemory.createAnonymous(PAGES)) {
            ByteBuffer v = b.nioBuffer();
            try {
                b.seal(true);
            } finally {
                v.putInt(0, 1);
            }
        }
    }
}
