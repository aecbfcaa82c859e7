package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;


import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.ohm.MapOption;
import org.ohm.NativeCallback;
import org.ohm.NativeFunction;
import org.ohm.NativeLibrary;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmCallbackException;
import org.ohm.SharedMemory;

/**
 * Misuse of the libffi bridge from Java: every parameter type given a wrong sign, width, type, null, or a
 * closed, released or read-only buffer throws before C runs; callbacks that throw propagate on the thread that
 * called C and are logged (System.Logger "org.ohm") on a thread C started. Rows that would crash the JVM without
 * their check (C writing through a bad size or into read-only pages) run in a child JVM (ChildJvm).
 */
class FfiMisuseTest {
    // ---- rows run in a child JVM: each must throw, not crash

    static void negativeSizeToMemset() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
             OhmBuffer b = Ohm.allocate(16)) {
            memset.invoke(b, 0x41, -1L); // as 2^64-1, memset would run off the mapping
        }
    }

    static void minLongToMemset() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
             OhmBuffer b = Ohm.allocate(16)) {
            memset.invoke(b, 0, Long.MIN_VALUE);
        }
    }

    @FunctionalInterface
    interface FileBody {
        void run(Path f) throws IOException;
    }

    /** Runs body on a temporary file (named from prefix) holding contents, and deletes the file afterwards. */
    private static void withFile(String prefix, byte[] contents, FileBody body) throws IOException {
        Path f = Files.createTempFile(prefix, ".bin");
        try {
            Files.write(f, contents);
            body.run(f);
        } finally {
            Files.deleteIfExists(f);
        }
    }

    static void readOnlyMappingToMemset() throws IOException {
        withFile("ohm-ffi-ro", new byte[4096], f -> {
            try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
                 NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
                 OhmBuffer ro = OhmBuffer.mapFile(f, 0, 4096)) {
                memset.invoke(ro, 0x41, 16L);
            }
        });
    }

    static void sealedBufferToMemset() throws IOException {
        withFile("ohm-ffi-sealed", new byte[4096], f -> {
            try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
                 NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
                 OhmBuffer w = OhmBuffer.mapFile(f, 0, 4096, MapOption.WRITE)) {
                w.seal(true);
                memset.invoke(NativeFunction.at(w, 8), 0x41, 16L);
            }
        });
    }

    static void readOnlySharedMemoryToMemset() {
        String name = "/ohm-ffi-misuse-" + ProcessHandle.current().pid();
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
             OhmBuffer w = SharedMemory.create(name, 4096);
             OhmBuffer ro = SharedMemory.open(name, false)) {
            w.putLong(0, 1);
            memset.invoke(ro, 0x41, 16L);
        } finally {
            SharedMemory.unlink(name);
        }
    }

    static void releasedBufferToMemset() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)")) {
            OhmBuffer b = Ohm.allocate(1 << 20);
            b.release();
            memset.invoke(b, 0x41, (long) (1 << 20));
        }
    }

    static void closedBufferToMemset() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)")) {
            OhmBuffer b = Ohm.allocate(1 << 20);
            b.close();
            memset.invoke(NativeFunction.at(b, 8), 0x41, 16L);
        }
    }

    static void stringToMemset() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)")) {
            memset.invoke("a Java string", 0x41, 1L << 40); // C would write past the temporary copy
        }
    }

    private static String childThrows(Class<? extends Throwable> expected, String method, String... wants) {
        String msg = ChildJvm.assertThrowsInChild(expected, FfiMisuseTest.class, method);
        for (String w : wants) assertTrue(msg.contains(w), method + ": message \"" + msg + "\" lacks \"" + w + "\"");
        return msg;
    }

    @Test
    void aNegativeSizeIsRefusedNotPassedAsTwoToThe64MinusOne() {
        childThrows(IllegalArgumentException.class, "negativeSizeToMemset", "memset: argument 3 (u64) out of range: -1");
        childThrows(IllegalArgumentException.class, "minLongToMemset", "(u64) out of range: -9223372036854775808");
    }

    @Test
    void aCallbackMayReturnAReadOnlyBufferOnlyAsCptr() {
        String name = "/ohm-ffi-cbro-" + ProcessHandle.current().pid();
        try (OhmBuffer w = SharedMemory.create(name, 4096);
             OhmBuffer ro = SharedMemory.open(name, false);
             NativeCallback asPtr = NativeCallback.create("ptr()", args -> ro);
             NativeCallback asCptr = NativeCallback.create("cptr()", args -> ro);
             NativeFunction callPtr = NativeFunction.ofAddress(asPtr.address(), "asPtr", "ptr()");
             NativeFunction callCptr = NativeFunction.ofAddress(asCptr.address(), "asCptr", "cptr()")) {
            assertTrue(ro.isReadOnly());
            assertFalse(w.isReadOnly());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, callPtr::invoke);
            assertTrue(e.getMessage().contains("read-only buffer for a ptr (writable) result"), e.getMessage());
            assertEquals(ro.memoryAddress(), callCptr.invokeLong());
        } finally {
            SharedMemory.unlink(name);
        }
    }

    @Test
    void aReadOnlyBufferIsRefusedForAWritablePointer() {
        String want = "memset: argument 1 is ptr (writable), got a read-only buffer; declare it cptr";
        childThrows(IllegalArgumentException.class, "readOnlyMappingToMemset", want);
        childThrows(IllegalArgumentException.class, "sealedBufferToMemset", want);
        childThrows(IllegalArgumentException.class, "readOnlySharedMemoryToMemset", want);
    }

    @Test
    void releasedClosedBuffersAndStringsAreRefusedForAWritablePointer() {
        childThrows(IllegalStateException.class, "releasedBufferToMemset", "memset: argument 1", "released");
        childThrows(IllegalStateException.class, "closedBufferToMemset", "memset: argument 1", "released");
        childThrows(IllegalArgumentException.class, "stringToMemset", "memset: argument 1 is ptr (writable), got a string");
    }

    // ---- rows run here: the check refuses before C runs, so nothing can crash

    /** A function of one parameter of type t: a callback cast back to a function, so that a call which passed
     * every check runs Java and records what C received. */
    private static final class OneArg implements AutoCloseable {
        final NativeCallback cb;
        final NativeFunction fn;
        final List<Object> got = new ArrayList<>();

        OneArg(String type) {
            cb = NativeCallback.create("void(" + type + ")", a -> {
                got.add(a[0]);
                return null;
            });
            fn = NativeFunction.ofAddress(cb.address(), "f", "void(" + type + ")");
        }

        void refused(Object arg, Class<? extends Throwable> expected, String want) {
            Throwable t = assertThrows(expected, () -> fn.invoke(arg), fn.signature() + " given " + arg);
            assertTrue(t.getMessage().contains(want), fn.signature() + " given " + arg + ": message \""
                    + t.getMessage() + "\" lacks \"" + want + "\"");
            assertTrue(got.isEmpty(), "C ran for a refused argument");
        }

        Object accepted(Object arg) {
            got.clear();
            fn.invoke(arg);
            assertEquals(1, got.size());
            return got.remove(0);
        }

        @Override
        public void close() {
            fn.close();
            cb.close();
        }
    }

    @Test
    void everyIntegerTypeRefusesAWrongSignOrWidth() {
        Object[][] rows = { // type, its name in messages, a value below its range, one above
            {"u8", "u8", -1L, 256L}, {"i8", "i8", -129L, 128L}, {"u16", "u16", -1, 65536},
            {"i16", "i16", -32769, 32768}, {"u32", "u32", -1, 1L << 32}, {"i32", "i32", -(1L << 31) - 1, 1L << 31},
            {"u64", "u64", -1L, BigInteger.ONE.shiftLeft(64)}, {"size", "u64", Long.MIN_VALUE, 2.0e19},
            {"i64", "i64", BigInteger.ONE.shiftLeft(63).negate().subtract(BigInteger.ONE),
                NativeFunction.unsigned(1L << 63)},
            {"bool", "u8", (byte) -1, (short) 256},
        };
        try (OhmBuffer b = Ohm.allocate(8)) {
            for (Object[] r : rows) {
                try (OneArg f = new OneArg((String) r[0])) {
                    String t = (String) r[1];
                    f.refused(r[2], IllegalArgumentException.class, "f: argument 1 (" + t + ") out of range: ");
                    f.refused(r[3], IllegalArgumentException.class, "f: argument 1 (" + t + ") out of range: ");
                    f.refused(0.5, IllegalArgumentException.class, "(" + t + ") is not a whole number: 0.5");
                    f.refused(Double.NaN, IllegalArgumentException.class, "(" + t + ") is not a whole number: nan");
                    f.refused(null, IllegalArgumentException.class, "f: argument 1 is " + t + ", got null");
                    f.refused("1", IllegalArgumentException.class, "f: argument 1 is " + t + ", got a string");
                    f.refused(b, IllegalArgumentException.class, "f: argument 1 is " + t + ", got a buffer");
                    f.refused(NativeFunction.address(8), IllegalArgumentException.class, "got a pointer");
                    f.refused(new java.math.BigDecimal("1"), IllegalArgumentException.class, "unsupported type");
                    f.refused(new Object(), IllegalArgumentException.class, "unsupported type java.lang.Object");
                    assertEquals(1L, f.accepted(1L));
                    assertEquals(1L, f.accepted(true));
                }
            }
        }
    }

    @Test
    void floatTypesRefuseWrongKindsAndTakeIntegersByValue() {
        try (OneArg f32 = new OneArg("f32"); OneArg f64 = new OneArg("f64"); OhmBuffer b = Ohm.allocate(8)) {
            for (OneArg f : new OneArg[] {f32, f64}) {
                String t = f == f32 ? "f32" : "f64";
                f.refused(null, IllegalArgumentException.class, "f: argument 1 is " + t + ", got null");
                f.refused("1.5", IllegalArgumentException.class, "f: argument 1 is " + t + ", got a string");
                f.refused(b, IllegalArgumentException.class, "f: argument 1 is " + t + ", got a buffer");
                f.refused(NativeFunction.address(8), IllegalArgumentException.class, "got a pointer");
                assertEquals(-3.0, f.accepted(-3L));
                assertEquals(1.8446744073709552E19, f.accepted(NativeFunction.unsigned(-1L))); // its value
            }
            f32.refused(1e39, IllegalArgumentException.class, "f: argument 1 (f32) out of range: 1e+39");
            assertEquals(0.5, f32.accepted(0.5f));
            assertEquals(Double.MAX_VALUE, f64.accepted(Double.MAX_VALUE));
        }
    }

    @Test
    void u64TakesItsWholeRangeOnlyThroughTheUnsignedRoute() {
        try (OneArg u = new OneArg("u64"); OneArg i = new OneArg("i64")) {
            assertEquals(Long.MAX_VALUE, u.accepted(Long.MAX_VALUE));
            assertEquals(-1L, u.accepted(NativeFunction.unsigned(-1L))); // 2^64-1: its bits, as Java keeps them
            assertEquals(Long.MIN_VALUE, u.accepted(BigInteger.ONE.shiftLeft(63)));
            assertEquals(-1L, u.accepted(new BigInteger("18446744073709551615")));
            assertEquals(0L, u.accepted(0));
            assertEquals(Long.MIN_VALUE, i.accepted(Long.MIN_VALUE));
            assertEquals(Long.MAX_VALUE, i.accepted(NativeFunction.unsigned(Long.MAX_VALUE)));
            assertEquals(-5L, i.accepted(BigInteger.valueOf(-5)));
            i.refused(NativeFunction.unsigned(-1L), IllegalArgumentException.class,
                    "f: argument 1 (i64) out of range: 18446744073709551615");
        }
    }

    /** Rows whose check, if missing, would let C dereference a number or freed memory: run in a child JVM by
     * pointerParametersRefuseNumbersAndWrongKinds, where a failed assertion is what the child throws. */
    static void pointerMisuseRows() {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction memset = libc.function("memset", "ptr(ptr, int, size)");
             NativeFunction memchr = libc.function("memchr", "cptr(cptr, int, size)");
             NativeFunction strlen = libc.function("strlen", "size(str)");
             OhmBuffer b = Ohm.allocate(16)) {
            for (NativeFunction f : new NativeFunction[] {memset, memchr}) {
                String t = f == memset ? "ptr" : "cptr";
                Throwable e = assertThrows(IllegalArgumentException.class, () -> f.invoke(8L, 0, 1L));
                assertTrue(e.getMessage().contains(f.name() + ": argument 1 is " + t + ", got a number"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> f.invoke(1.5, 0, 1L));
                assertTrue(e.getMessage().contains("is " + t + ", got a number"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> f.invoke(b, 0));
                assertTrue(e.getMessage().contains("expected 3 arguments"), e.getMessage());
                e = assertThrows(IndexOutOfBoundsException.class, () -> f.invoke(NativeFunction.at(b, -1), 0, 1L));
                e = assertThrows(IndexOutOfBoundsException.class, () -> f.invoke(NativeFunction.at(b, 17), 0, 1L));
                assertTrue(e.getMessage().contains("offset 17"), e.getMessage());
                assertThrows(NullPointerException.class, () -> NativeFunction.at(null, 0));
            }
            Throwable e = assertThrows(IllegalArgumentException.class, () -> strlen.invoke(5L));
            assertTrue(e.getMessage().contains("strlen: argument 1 is str, got a number"), e.getMessage());
            OhmBuffer dead = Ohm.allocate(8);
            dead.release();
            e = assertThrows(IllegalStateException.class, () -> strlen.invoke(dead));
            assertTrue(e.getMessage().contains("strlen: argument 1") && e.getMessage().contains("released"),
                    e.getMessage());
            e = assertThrows(IllegalStateException.class, () -> memchr.invoke(dead, 0, 1L));
            assertTrue(e.getMessage().contains("memchr: argument 1"), e.getMessage());
        }
    }

    @Test
    void pointerParametersRefuseNumbersAndWrongKinds() {
        ChildJvm.Outcome o = ChildJvm.run(FfiMisuseTest.class, "pointerMisuseRows");
        assertNull(o.thrown(), "pointerMisuseRows: " + o.thrown() + ": " + o.message());
        assertEquals("", o.stderr(), "the child printed to stderr");
    }

    @Test
    void readOnlyMemoryAndStringsGoToCptrAndStr() throws IOException {
        withFile("ohm-ffi-cptr", "read-only words\0".getBytes(), f -> {
            try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
                 NativeLibrary z = NativeLibrary.open("libz.so.1");
                 NativeFunction memchr = libc.function("memchr", "cptr(cptr, int, size)");
                 NativeFunction strlen = libc.function("strlen", "size(str)");
                 NativeFunction crc32 = z.function("crc32", "ulong(ulong, cptr, uint)");
                 OhmBuffer ro = OhmBuffer.mapFile(f, 0, 16)) {
                long p = memchr.invokeLong(ro, (int) 'w', 16L); // a cptr result is an address
                assertEquals(ro.memoryAddress() + 10, p);
                assertEquals(15L, strlen.invokeLong(ro));
                assertEquals(907060870L, crc32.invokeLong(0L, "hello", 5));
                java.util.zip.CRC32 want = new java.util.zip.CRC32();
                want.update("read-only words".getBytes());
                assertEquals(want.getValue(), crc32.invokeLong(0L, ro, 15));
                assertEquals(0L, crc32.invokeLong(0L, null, 0)); // NULL: zlib's initial value
            }
        });
    }

    // ---- callbacks that throw

    /** A callback throwing t, called once by qsort on this (JVM) thread: t propagates out of invoke. */
    private static Throwable thrownThroughQsort(Throwable t) {
        try (NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction qsort = libc.function("qsort", "void(ptr, size, size, ptr)");
             OhmBuffer b = Ohm.allocate(8);
             NativeCallback cb = NativeCallback.create("int(ptr, ptr)", a -> {
                 if (t instanceof Exception) throw (Exception) t;
                 throw (Error) t;
             })) {
            return assertThrows(Throwable.class, () -> qsort.invoke(b, 2L, 4L, cb));
        }
    }

    @Test
    void aCallbackThrowingOnTheCallingJvmThreadPropagatesAndIsNotLogged() {
        try (LogCapture log = new LogCapture()) {
            IOException checked = new IOException("checked");
            Throwable e = thrownThroughQsort(checked);
            assertInstanceOf(OhmCallbackException.class, e);
            assertSame(checked, e.getCause());
            IllegalStateException unchecked = new IllegalStateException("unchecked");
            assertSame(unchecked, thrownThroughQsort(unchecked));
            StackOverflowError error = new StackOverflowError("an Error");
            assertSame(error, thrownThroughQsort(error));
            synchronized (log) {
                for (LogRecord r : log.records) // the runtime may log other things meanwhile (a GC'd leak)
                    assertFalse(r.getThrown() == checked || r.getThrown() == unchecked || r.getThrown() == error,
                            "logged although it propagated: " + r.getMessage());
            }
        }
    }

    /** Captures what System.Logger "org.ohm" logs (it defaults to java.util.logging), and keeps it off stderr. */
    static final class LogCapture extends Handler implements AutoCloseable {
        final Logger logger = Logger.getLogger("org.ohm"); // held: JUL keeps its loggers weakly
        final List<LogRecord> records = new ArrayList<>();
        private final boolean parents;

        LogCapture() {
            parents = logger.getUseParentHandlers();
            logger.setUseParentHandlers(false);
            logger.addHandler(this);
        }

        @Override
        public synchronized void publish(LogRecord r) {
            records.add(r);
        }

        @Override
        public void flush() {}

        @Override
        public void close() {
            logger.removeHandler(this);
            logger.setUseParentHandlers(parents);
        }
    }

    /** Runs a callback throwing t on a thread C starts (pthread_create through the bridge), then checks that t
     * was logged and C got the failure value (NULL for a ptr result). Throws AssertionError otherwise. */
    static void throwOnAForeignThread(Throwable t) {
        try (LogCapture log = new LogCapture();
             NativeLibrary libc = NativeLibrary.open("libc.so.6");
             NativeFunction create = libc.function("pthread_create", "int(ptr, ptr, ptr, ptr)");
             NativeFunction join = libc.function("pthread_join", "int(ulong, ptr)");
             OhmBuffer thread = Ohm.allocate(8);
             OhmBuffer result = Ohm.allocate(8);
             NativeCallback start = NativeCallback.create("ptr(ptr)", a -> {
                 if (t instanceof Exception) throw (Exception) t;
                 throw (Error) t;
             })) {
            result.putLongLE(0, 12345);
            assertEquals(0L, create.invokeLong(thread, null, start, null));
            assertEquals(0L, join.invokeLong(NativeFunction.unsigned(thread.getLongLE(0)), result));
            assertEquals(0L, result.getLongLE(0), "the C thread got NULL from the callback");
            synchronized (log) {
                List<LogRecord> mine = log.records.stream().filter(r -> r.getThrown() == t).toList();
                assertEquals(1, mine.size(), "one record on org.ohm with the exception: " + log.records);
                LogRecord r = mine.get(0);
                assertEquals(Level.WARNING, r.getLevel());
                assertSame(t, r.getThrown());
                assertTrue(r.getMessage().contains("ptr(ptr)"), r.getMessage());
            }
        }
    }

    static void checkedOnAForeignThread() {
        throwOnAForeignThread(new IOException("checked, on a C thread"));
    }

    static void uncheckedOnAForeignThread() {
        throwOnAForeignThread(new IllegalStateException("unchecked, on a C thread"));
    }

    static void errorOnAForeignThread() {
        throwOnAForeignThread(new AssertionError("an Error, on a C thread"));
    }

    @Test
    void aCallbackThrowingOnAThreadCStartedIsLoggedAndTheJvmLivesOn() {
        for (String m : new String[] {"checkedOnAForeignThread", "uncheckedOnAForeignThread", "errorOnAForeignThread"}) {
            ChildJvm.Outcome o = ChildJvm.run(FfiMisuseTest.class, m);
            assertNull(o.thrown(), m + ": " + o.thrown() + ": " + o.message());
            assertEquals("", o.stderr(), m + ": the child printed to stderr");
        }
        throwOnAForeignThread(new IllegalArgumentException("here too")); // and this JVM survives it as well
    }
}
