package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.ohm.MapOption;
import org.ohm.OhmBuffer;
import org.ohm.OhmIOException;
import org.ohm.SharedMemory;

/** Mapped files and shared memory as buffers. */
class MappedTest {
    @TempDir
    Path dir;

    @Test
    void writesThroughAMappingReachTheFile() throws Exception {
        Path f = dir.resolve("data.bin");
        try (OhmBuffer b = OhmBuffer.mapFile(f, 0, 4096, MapOption.CREATE, MapOption.WRITE)) {
            assertEquals(OhmBuffer.Origin.FILE, b.origin());
            b.putLong(100, 0x0123456789ABCDEFL);
            b.sync();
        }
        byte[] bytes = Files.readAllBytes(f);
        assertEquals(4096, bytes.length);
        assertEquals(0x01, bytes[100]);
        assertEquals((byte) 0xEF, bytes[107]);
        try (OhmBuffer ro = OhmBuffer.mapFile(f, 0, 0)) {
            assertEquals(4096, ro.capacity());
            assertEquals(0x0123456789ABCDEFL, ro.getLong(100));
            assertThrows(IllegalStateException.class, () -> ro.putLong(0, 1)); // read-only: no fault, an exception
            assertThrows(IllegalStateException.class, () -> ro.fill(0, 1, (byte) 0));
        }
    }

    @Test
    void mappingErrors() {
        OhmIOException e = assertThrows(OhmIOException.class, () -> OhmBuffer.mapFile(dir.resolve("missing"), 0, 0));
        assertNotNull(e.getCause());
        assertThrows(IndexOutOfBoundsException.class, () -> {
            Path small = dir.resolve("small");
            Files.write(small, new byte[10]);
            OhmBuffer.mapFile(small, 0, 100);
        });
        assertThrows(IllegalArgumentException.class, () -> OhmBuffer.mapFile(dir.resolve("x"), 0, -1, MapOption.CREATE));
    }

    @Test
    void sharedMemoryIsSeenThroughASecondMapping() {
        String name = "/ohm-java-test-" + ProcessHandle.current().pid();
        try (OhmBuffer a = SharedMemory.create(name, 8192)) {
            assertEquals(OhmBuffer.Origin.SHM, a.origin());
            a.putInt(4000, 77);
            try (OhmBuffer b = SharedMemory.open(name, false)) {
                assertEquals(77, b.getInt(4000));
                assertThrows(IllegalStateException.class, () -> b.putInt(0, 1));
                a.putInt(4000, 78);
                assertEquals(78, b.getInt(4000));
            }
            assertThrows(OhmIOException.class, () -> SharedMemory.create(name, 16)); // exists
        } finally {
            SharedMemory.unlink(name);
        }
        assertThrows(OhmIOException.class, () -> SharedMemory.open(name, true));
        try (OhmBuffer anon = SharedMemory.createAnonymous(100)) {
            assertEquals(0, anon.getLong(0));
        }
    }
}
