package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;
import org.ohm.NativeCallback;
import org.ohm.NativeFunction;
import org.ohm.NativeLibrary;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmCallbackException;

/** The libffi bridge from Java: libc's functions with numbers, strings and buffers, and callbacks into Java. */
class FfiTest {
    @Test
    void numbersStringsAndBuffersAsPointers() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction strlen = libc.function("strlen", "size(str)");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
             NativeFunction abs = libc.function("labs", "long(long)");
             NativeFunction getenv = libc.function("getenv", "str(str)");
             OhmBuffer b = Ohm.allocate(64)) {
            assertEquals(5L, strlen.invokeLong("hello"));
            assertEquals(6L, strlen.invokeLong("h\u00e9llo")); // UTF-8: é is two bytes
            assertEquals(42L, abs.invokeLong(-42L));
            memset.invoke(NativeFunction.at(b, 8), 0x5a, 16L); // zero-copy: C writes the buffer's memory
            assertEquals(0x5a5a5a5a5a5a5a5aL, b.getLong(8));
            assertEquals(0, b.getByte(7));
            assertEquals(0, b.getByte(24));
            b.putBytes(32, "abc\0".getBytes());
            assertEquals(3L, strlen.invokeLong(NativeFunction.at(b, 32)));
            assertNull(getenv.invoke("OHM_JAVA_TEST_SURELY_UNSET_VARIABLE"));
            assertNotNull(getenv.invoke("PATH"));
        }
    }

    @Test
    void doublesAndFloats() {
        try (NativeLibrary libm = NativeLibrary.open("libm.so.6");
             NativeFunction pow = libm.function("pow", "f64(f64, f64)");
             NativeFunction sqrtf = libm.function("sqrtf", "f32(f32)")) {
            assertEquals(1024.0, pow.invokeDouble(2.0, 10));
            assertEquals(3.0, sqrtf.invokeDouble(9.0f), 1e-6);
        }
    }

    @Test
    void aCallbackFromCIntoJava() {
        try (NativeLibrary libc = NativeLibrary.process();
             NativeFunction qsort = libc.function("qsort", "void(ptr, size, size, ptr)");
             OhmBuffer b = Ohm.allocate(4 * 6);
             NativeCallback cmp = NativeCallback.create("int(ptr, ptr)", args -> {
                 long pa = (Long) args[0] - b.memoryAddress(), pb = (Long) args[1] - b.memoryAddress();
                 return Integer.compare(b.getIntLE(pa), b.getIntLE(pb));
             })) {
            int[] v = {5, -1, 9, 0, 3, 3};
            for (int i = 0; i < v.length; i++) b.putIntLE(4L * i, v[i]);
            qsort.invoke(b, 6L, 4L, cmp);
            int[] sorted = {-1, 0, 3, 3, 5, 9};
            for (int i = 0; i < sorted.length; i++) assertEquals(sorted[i], b.getIntLE(4L * i));
            assertNotEquals(0, cmp.address());
            NativeFunction direct = NativeFunction.ofAddress(cmp.address(), "cmp", "int(ptr, ptr)");
            assertEquals(-1L, direct.invokeLong(NativeFunction.at(b, 0), NativeFunction.at(b, 4)));
            direct.close();
        }
    }

    @Test
    void aCallbackThatThrowsFailsTheCallWithItsException() {
        try (NativeLibrary libc = NativeLibrary.process();
             NativeFunction qsort = libc.function("qsort", "void(ptr, size, size, ptr)");
             OhmBuffer b = Ohm.allocate(8);
             NativeCallback bad = NativeCallback.create("int(ptr, ptr)", args -> {
                 throw new java.io.IOException("comparator broke");
             });
             NativeCallback unchecked = NativeCallback.create("int(ptr, ptr)", args -> {
                 throw new IllegalStateException("unchecked");
             })) {
            OhmCallbackException e = assertThrows(OhmCallbackException.class, () -> qsort.invoke(b, 2L, 4L, bad));
            assertEquals("comparator broke", e.getCause().getMessage());
            IllegalStateException u = assertThrows(IllegalStateException.class, () -> qsort.invoke(b, 2L, 4L, unchecked));
            assertEquals("unchecked", u.getMessage());
        }
    }

    @Test
    void misuseIsRefusedBeforeTheCall() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction strlen = libc.function("strlen", "size(str)");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)")) {
            assertThrows(IllegalArgumentException.class, () -> libc.function("no_such_function_here", "void()"));
            assertThrows(IllegalArgumentException.class, () -> libc.function("strlen", "size(str"));
            assertThrows(IllegalArgumentException.class, () -> strlen.invoke(1L)); // a number for str
            assertThrows(IllegalArgumentException.class, () -> strlen.invoke()); // argument count
            assertThrows(IllegalArgumentException.class, () -> memset.invoke(null, 1L << 40, 1L)); // out of int range
            assertThrows(IllegalArgumentException.class, () -> strlen.invoke(new Object()));
            OhmBuffer b = Ohm.allocate(16);
            assertThrows(IndexOutOfBoundsException.class, () -> memset.invoke(NativeFunction.at(b, 17), 0, 1L));
            b.release();
            assertThrows(IllegalStateException.class, () -> memset.invoke(b, 0, 16L));
        }
        assertThrows(IllegalArgumentException.class, () -> NativeLibrary.open("libohm-does-not-exist.so"));
        assertThrows(IllegalArgumentException.class, () -> NativeCallback.create("int(oops)", a -> 0));
    }
}
