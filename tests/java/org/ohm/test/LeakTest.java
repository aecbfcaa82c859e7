package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;

/** The safety net and the leak detector: reports reach the Java listener with the Java allocation site. */
class LeakTest {
    private final List<LeakReport> reports = new CopyOnWriteArrayList<>();
    private LeakDetector.Level level;

    @BeforeEach
    void listen() {
        level = LeakDetector.level();
        LeakDetector.setListener(reports::add);
    }

    @AfterEach
    void restore() {
        LeakDetector.setListener(null);
        LeakDetector.setLevel(level);
    }

    /** Allocates in a frame of its own, so nothing on the test's stack keeps the buffer reachable. */
    private static long leakOne(OhmPool pool, int size) {
        OhmBuffer b = pool.allocate(size);
        b.putLong(0, 1);
        return b.id();
    }

    /** One collection, then 20 ms that let the cleaner thread run before the next. */
    private void collect() throws InterruptedException {
        System.gc();
        synchronized (this) {
            wait(20);
        }
    }

    /** Runs the GC until a report for id arrives, for at most 20 s (a bounded wait, not a sleep). */
    private LeakReport awaitReport(long id) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            for (LeakReport r : reports) if (r.bufferId() == id) return r;
            collect();
        }
        fail("no leak report for buffer " + id + " within 20 s of System.gc(); reports: " + reports);
        return null;
    }

    @Test
    void anUnreleasedBufferTheGcFindsIsReclaimedAndReportedWithItsJavaStackTrace() throws Exception {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        try (OhmPool pool = Ohm.builder().name("leaky").build()) {
            long id = leakOne(pool, 256);
            LeakReport r = awaitReport(id);
            assertEquals(LeakReport.Reason.GC, r.reason());
            assertEquals(256, r.size());
            assertNotNull(r.allocationSite(), r.text());
            assertTrue(r.allocationSite().contains("org.ohm.test.LeakTest.leakOne(LeakTest.java"), r.allocationSite());
            assertTrue(r.allocationSite().contains("OhmPool.allocate"), r.allocationSite());
            assertTrue(r.text().contains("LeakTest.leakOne"), r.text());
            assertTrue(r.json().startsWith("{"), r.json());
            assertEquals(0, pool.stats().activeBlocks(), "the reclaimed buffer's memory went back");
        }
    }

    /** Runs the GC until the pool has no live blocks (the safety net reclaimed them), for 20 s at the most. */
    private void gcUntilEmpty(OhmPool pool) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (pool.stats().activeBlocks() > 0 && System.nanoTime() < deadline) {
            collect();
        }
    }

    @Test
    void anUntrackedLeakIsStillReclaimed() throws Exception {
        LeakDetector.setLevel(LeakDetector.Level.OFF);
        try (OhmPool pool = Ohm.builder().name("quiet").build()) {
            for (int i = 0; i < 100; i++) leakOne(pool, 64);
            gcUntilEmpty(pool);
            assertEquals(0, pool.stats().activeBlocks(), "the GC'd buffers were not reclaimed within 20 s");
        }
    }

    @Test
    void aReleasedBufferIsNeverReported() throws Exception {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        long id;
        {
            OhmBuffer b = Ohm.allocate(64);
            id = b.id();
            b.release();
        }
        long sentinel = leakOne(Ohm.defaultPool(), 32); // its report shows the cleaner has run
        awaitReport(sentinel);
        for (LeakReport r : reports) assertNotEquals(id, r.bufferId());
    }

    @Test
    void closingAPoolReportsItsLiveBuffersWithTheirSites() {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        OhmPool pool = Ohm.builder().name("closing").build();
        OhmBuffer b = pool.allocate(100);
        pool.close();
        LeakReport r = reports.stream().filter(x -> x.bufferId() == b.id()).findFirst().orElseThrow();
        assertEquals(LeakReport.Reason.POOL_CLOSED, r.reason());
        assertTrue(r.allocationSite().contains("closingAPoolReportsItsLiveBuffersWithTheirSites"), r.allocationSite());
    }

    @Test
    void aCheckpointListsTrackedLiveBuffers() {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        long mark = LeakDetector.mark();
        OhmBuffer live = Ohm.allocate(10);
        Ohm.allocate(20).release();
        assertEquals(1, LeakDetector.check(mark));
        LeakReport r = reports.stream().filter(x -> x.bufferId() == live.id()).findFirst().orElseThrow();
        assertEquals(LeakReport.Reason.CHECKPOINT, r.reason());
        assertTrue(r.allocationSite().contains("aCheckpointListsTrackedLiveBuffers"));
        live.release();
        assertEquals(0, LeakDetector.check(mark));
    }

    private static void leakRetainedSlice(OhmPool pool) {
        OhmBuffer parent = pool.allocate(512);
        parent.retainedSlice(0, 64).putLong(0, 3); // the slice holds the parent's memory
        parent.release(); // the caller's own reference: only the leaked slice's remains
    }

    @Test
    void aLeakedRetainedSliceFreesItsParentWhenReclaimed() throws Exception {
        try (OhmPool pool = Ohm.builder().name("retained-leak").build()) {
            leakRetainedSlice(pool);
            assertEquals(1, pool.stats().activeBlocks());
            gcUntilEmpty(pool);
            assertEquals(0, pool.stats().activeBlocks(), "the leaked retained slice's parent was not freed within 20 s");
        }
    }

    private static void dropSlices(OhmBuffer owner) {
        for (int i = 0; i < 1000; i++) owner.slice(i % 64, 8).getLong(0);
    }

    @Test
    void unreachableSlicesOfALiveBufferLeaveItAlone() throws Exception {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        OhmBuffer owner = Ohm.allocate(128);
        owner.putLong(64, 42);
        dropSlices(owner);
        long sentinel = leakOne(Ohm.defaultPool(), 16); // its report shows the cleaner ran after the slices died
        awaitReport(sentinel);
        assertEquals(42, owner.getLong(64));
        assertEquals(1, owner.refCnt());
        for (LeakReport r : reports) assertNotEquals(owner.id(), r.bufferId());
        assertTrue(owner.release());
    }

    @Test
    void levelsAndSampling() {
        LeakDetector.setSampleInterval(64);
        assertEquals(64, LeakDetector.sampleInterval());
        LeakDetector.setLevel(LeakDetector.Level.ADVANCED);
        assertEquals(LeakDetector.Level.ADVANCED, LeakDetector.level());
        assertThrows(IllegalArgumentException.class, () -> LeakDetector.setSampleInterval(0));
        assertThrows(NullPointerException.class, () -> LeakDetector.setLevel(null));
        LeakDetector.setSampleInterval(128);
    }

    @Test
    void aThrowingListenerDoesNotBreakReporting() {
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        LeakDetector.setListener(r -> { throw new IllegalStateException("listener bug"); });
        OhmPool pool = Ohm.builder().name("throwing-listener").build();
        pool.allocate(8);
        pool.close(); // the report's listener throws: logged, and close still completes
        assertTrue(pool.isClosed());
    }
}
