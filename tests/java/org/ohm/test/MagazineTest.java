package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.ohm.IllegalReferenceCountException;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;
import org.ohm.PoolStats;

/**
 * The default pool's per-thread magazines: buffers lent and parked again without JNI, whose handles must still
 * fail after their release whoever reuses the memory, whose parked buffers go back when a thread ends or a trim
 * asks, and whose dropped buffers are still reclaimed and reported.
 *
 * <p>Each test uses a size class of its own, whose active blocks (counted over every arena: per-arena figures
 * include parked buffers, the whole pool's leave them out) show what the magazines hold.
 */
class MagazineTest {
    private final List<LeakReport> reports = new CopyOnWriteArrayList<>();
    private LeakDetector.Level level;
    private int interval;

    @BeforeEach
    void listen() {
        level = LeakDetector.level();
        interval = LeakDetector.sampleInterval();
        LeakDetector.setListener(reports::add);
        LeakDetector.setLevel(LeakDetector.Level.OFF);
    }

    @AfterEach
    void restore() {
        LeakDetector.setListener(null);
        LeakDetector.setLevel(level);
        LeakDetector.setSampleInterval(interval);
    }

    /** Blocks of the class that serves size in every arena: live buffers and parked ones. */
    private static long blocksOfClass(long size) {
        OhmPool pool = Ohm.defaultPool();
        long n = 0;
        for (int a = 0; a < pool.stats().arenas(); a++) {
            PoolStats.SizeClass best = null;
            for (PoolStats.SizeClass c : pool.stats(a).sizeClasses())
                if (c.size() >= size && (best == null || c.size() < best.size())) best = c;
            n += best.activeBlocks();
        }
        return n;
    }

    private static void awaitBlocks(long size, long want, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (blocksOfClass(size) > want && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        assertEquals(want, blocksOfClass(size), what);
    }

    private static void assertStale(OhmBuffer b) {
        assertFalse(b.isAccessible());
        assertEquals(0, b.refCnt());
        List<Executable> ops = List.of(() -> b.getLong(0), () -> b.putLong(0, 1), () -> b.getByte(0),
                b::memoryAddress, b::nioBuffer, () -> b.slice(0, 8), b::duplicate, () -> b.retainedSlice(0, 8),
                b::touch, () -> b.fill(0, 8, (byte) 1));
        for (Executable op : ops) assertThrows(IllegalStateException.class, op);
        assertThrows(IllegalReferenceCountException.class, b::retain);
        assertThrows(IllegalReferenceCountException.class, b::release);
        b.close(); // does nothing on a released buffer
    }

    /** A reference kept past its release never reaches the buffer that reuses its memory. */
    @Test
    void aStaleHandleFailsAfterItsMemoryIsLentAgain() throws Exception {
        OhmBuffer b1 = Ohm.allocate(64);
        long address = b1.memoryAddress();
        b1.putLong(0, 11);
        assertTrue(b1.release());
        OhmBuffer b2 = Ohm.allocate(64);
        assertEquals(address, b2.memoryAddress(), "the magazine lends the buffer it parked last");
        assertNotEquals(b1.id(), b2.id(), "a lend is a new buffer id");
        b2.putLong(0, 22);
        assertStale(b1);
        assertEquals(22, b2.getLong(0));
        assertEquals(1, b2.refCnt());

        // after the memory went back to the pool and came out again
        assertTrue(b2.release());
        Ohm.defaultPool().flushThreadCache();
        List<OhmBuffer> others = new ArrayList<>();
        for (int i = 0; i < 10_000; i++) others.add(Ohm.allocate(16 + (i % 7) * 48));
        for (OhmBuffer o : others) o.release();
        OhmBuffer b3 = Ohm.allocate(64);
        assertStale(b1);
        assertStale(b2);
        assertEquals(1, b3.refCnt());
        b3.release();

        // released on another thread, which parks it in its own magazine and lends it again
        OhmBuffer b4 = Ohm.allocate(64);
        long a4 = b4.memoryAddress();
        OhmBuffer[] again = new OhmBuffer[1];
        Thread t = new Thread(() -> {
            b4.release();
            again[0] = Ohm.allocate(64);
        });
        t.start();
        t.join();
        assertEquals(a4, again[0].memoryAddress());
        assertStale(b4);
        assertEquals(1, again[0].refCnt());
        assertTrue(again[0].release());
    }

    private static final long EXIT_SIZE = 12_000, DIE_SIZE = 13_000, GC_SIZE = 9_000, HANDOFF_SIZE = 6_000;

    private static Thread fillAndEnd(long size, boolean die) {
        Thread t = new Thread(() -> {
            List<OhmBuffer> held = new ArrayList<>();
            for (int i = 0; i < 10; i++) held.add(Ohm.allocate(size));
            for (OhmBuffer b : held) b.release();
            if (die) throw new IllegalStateException("a thread dying with a full magazine");
        });
        t.setUncaughtExceptionHandler((th, e) -> { });
        return t;
    }

    private static void endsAndGivesBack(long size, boolean die) throws InterruptedException {
        long before = blocksOfClass(size);
        Thread t = fillAndEnd(size, die);
        t.start();
        t.join();
        awaitBlocks(size, before, "the magazine of a thread that " + (die ? "died" : "ended")
                + " went back within 20 s");
    }

    @Test
    void aThreadThatEndsGivesItsMagazinesBack() throws Exception {
        endsAndGivesBack(EXIT_SIZE, false);
    }

    @Test
    void aThreadThatDiesByAnExceptionGivesItsMagazinesBack() throws Exception {
        endsAndGivesBack(DIE_SIZE, true);
    }

    private static void dropLent(long size, int n) {
        for (int i = 0; i < n; i++) Ohm.allocate(size).putLong(0, i);
    }

    private void reclaimsDroppedMagazineBuffers(LeakDetector.Level lvl) throws Exception {
        LeakDetector.setLevel(lvl);
        LeakDetector.setSampleInterval(1);
        for (int i = 0; i < 100; i++) Ohm.allocate(GC_SIZE).release(); // a warm magazine
        reports.clear();
        dropLent(GC_SIZE, 100);
        Ohm.defaultPool().flushThreadCache(); // what this thread's magazine still holds goes back
        awaitBlocks(GC_SIZE, 0, "dropped magazine buffers were reclaimed within 20 s");
        if (lvl == LeakDetector.Level.OFF) {
            assertTrue(reports.isEmpty(), "untracked leaks are counted, not reported: " + reports);
        } else {
            // Every one was tracked (interval 1); reports of one site are de-duplicated by the runtime.
            assertFalse(reports.isEmpty(), "the tracked leaks were reported");
            for (LeakReport r : reports) {
                assertEquals(LeakReport.Reason.GC, r.reason());
                assertTrue(r.allocationSite().contains("dropLent"), r.allocationSite());
            }
        }
        // reclaimed shells are never lent again: the next lends are all live and distinct
        Set<Long> ids = new HashSet<>();
        List<OhmBuffer> next = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            OhmBuffer b = Ohm.allocate(GC_SIZE);
            b.putLong(0, i);
            assertTrue(ids.add(b.id()));
            next.add(b);
        }
        for (int i = 0; i < next.size(); i++) assertEquals(i, next.get(i).getLong(0));
        for (OhmBuffer b : next) assertTrue(b.release());
    }

    @Test
    void droppedMagazineBuffersAreReclaimedAtOff() throws Exception {
        reclaimsDroppedMagazineBuffers(LeakDetector.Level.OFF);
    }

    @Test
    void droppedMagazineBuffersAreReclaimedAndReportedAtSimple() throws Exception {
        reclaimsDroppedMagazineBuffers(LeakDetector.Level.SIMPLE);
    }

    /** Netty's event-loop pattern: what one thread releases, another allocated; a trim leaves nothing parked. */
    @Test
    void handOffBetweenThreadsAndTrimLeavesNothingParked() throws Exception {
        long before = blocksOfClass(HANDOFF_SIZE);
        AtomicReferenceArray<OhmBuffer> ring = new AtomicReferenceArray<>(64);
        int total = 100_000;
        Thread consumer = new Thread(() -> {
            for (int i = 0; i < total; i++) {
                OhmBuffer b;
                while ((b = ring.getAndSet(i & 63, null)) == null) Thread.onSpinWait();
                assertEquals(i, b.getLong(0));
                assertTrue(b.release());
            }
        });
        consumer.start();
        for (int i = 0; i < total; i++) {
            OhmBuffer b = Ohm.allocate(HANDOFF_SIZE);
            b.putLong(0, i);
            while (ring.get(i & 63) != null) Thread.onSpinWait();
            ring.set(i & 63, b);
        }
        consumer.join();
        Ohm.defaultPool().trim(); // this thread's magazines and the depot now; the consumer's as it ended
        awaitBlocks(HANDOFF_SIZE, before, "handed-off buffers went back after trim");
    }

    @Test
    void countsStayExactUnderConcurrentRetainAndRelease() throws Exception {
        OhmBuffer b = Ohm.allocate(64);
        Thread[] ts = new Thread[2];
        for (int k = 0; k < ts.length; k++) {
            ts[k] = new Thread(() -> {
                for (int i = 0; i < 1_000_000; i++) {
                    b.retain();
                    assertFalse(b.release());
                }
            });
            ts[k].start();
        }
        for (Thread t : ts) t.join();
        assertEquals(1, b.refCnt());
        b.retain(5);
        assertEquals(6, b.refCnt());
        assertThrows(IllegalReferenceCountException.class, () -> b.release(7));
        assertThrows(IllegalReferenceCountException.class, () -> b.retain(Integer.MAX_VALUE));
        assertFalse(b.release(5));
        assertTrue(b.release());
        assertStale(b);
    }

    @Test
    void zeroedBuffersAndParanoidTrackingBypassTheMagazines() {
        OhmBuffer dirty = Ohm.allocate(64);
        dirty.fill(0, 64, (byte) 0xff);
        dirty.release();
        OhmBuffer z = Ohm.defaultPool().allocateZeroed(64);
        for (int i = 0; i < 64; i += 8) assertEquals(0, z.getLong(i));
        z.release();

        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        long mark = LeakDetector.mark();
        OhmBuffer live = Ohm.allocate(64);
        assertEquals(1, LeakDetector.check(mark));
        live.release();
        assertEquals(0, LeakDetector.check(mark));
    }

    /** A sampled lend is tracked with its site, and a slice stops its buffer from parking (no derived handle is
     * ever left behind on a parked buffer). */
    @Test
    void sampledLendsAndSlicedBuffersEndThroughTheRuntime() {
        LeakDetector.setLevel(LeakDetector.Level.SIMPLE);
        LeakDetector.setSampleInterval(1);
        long mark = LeakDetector.mark();
        OhmBuffer b = Ohm.allocate(64);
        OhmBuffer s = b.slice(8, 16);
        s.putLong(0, 5);
        assertEquals(5, b.getLong(8));
        assertEquals(1, LeakDetector.check(mark));
        assertTrue(s.release());
        assertStale(b);
        assertStale(s);
        assertEquals(0, LeakDetector.check(mark));
        LeakDetector.setLevel(LeakDetector.Level.OFF);
        OhmBuffer c = Ohm.allocate(64);
        OhmBuffer d = c.duplicate();
        OhmBuffer r = c.retainedSlice(0, 8);
        assertFalse(c.release()); // the retained slice's reference remains
        assertEquals(1, d.refCnt());
        assertTrue(r.release());
        assertStale(c);
        assertStale(d);
    }
}
