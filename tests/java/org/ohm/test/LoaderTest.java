package org.ohm.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;

/** The native library loads by the route ctest set up (ohm.test.expectedSource), and works. */
class LoaderTest {
    @Test
    void loadsFromTheExpectedRoute() {
        String expected = System.getProperty("ohm.test.expectedSource");
        if (expected != null) assertEquals(expected, Ohm.nativeLibrarySource());
        assertTrue(Ohm.nativeLibrarySource().matches("resource|java.library.path|ohm.library.path"));
    }

    @Test
    void aBufferWorksAfterLoading() {
        try (OhmBuffer b = Ohm.allocate(16)) {
            b.putLong(8, 0x0102030405060708L);
            assertEquals(0x0102030405060708L, b.getLong(8));
            assertEquals(1, b.refCnt());
        }
    }
}
