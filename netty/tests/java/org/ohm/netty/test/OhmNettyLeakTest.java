package org.ohm.netty.test;

import io.netty.buffer.ByteBuf;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.Rule;
import org.junit.Test;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;
import org.ohm.Ohm;
import org.ohm.OhmPool;
import org.ohm.netty.OhmByteBufAllocator;
import org.ohm.test.LeakException;
import org.ohm.test.LeakScope;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

/** Netty buffers in ohm's leak detector: checkpoints, the GC's reports with the Java site, touch hints, and
 * Netty's leak-detection properties. */
public class OhmNettyLeakTest {
    @Rule
    public final LeakCapture leaks = new LeakCapture();

    private LeakReport reportFor(String methodName) {
        for (LeakReport r : leaks.reports) {
            if (r.allocationSite() != null && r.allocationSite().contains(methodName)) return r;
        }
        fail("no report whose site names " + methodName + "; reports: " + leaks.reports);
        return null;
    }

    @Test
    public void aCheckpointSeesALiveNettyBufferWithItsSiteAndTouchHints() {
        long mark = LeakDetector.mark();
        ByteBuf b = OhmByteBufAllocator.DEFAULT.directBuffer(100);
        b.writeLong(7).touch("decoded-frame-42");
        ByteBuf slice = b.slice(0, 8);
        slice.touch("through-a-slice");
        OhmByteBufAllocator.DEFAULT.directBuffer(50).release();
        assertEquals(1, LeakDetector.check(mark));
        LeakReport r = reportFor("aCheckpointSeesALiveNettyBufferWithItsSiteAndTouchHints");
        assertEquals(LeakReport.Reason.CHECKPOINT, r.reason());
        assertTrue(r.text(), r.text().contains("decoded-frame-42"));
        assertTrue(r.text(), r.text().contains("through-a-slice"));
        assertTrue(b.release());
        assertEquals(0, LeakDetector.check(mark));
    }

    @Test
    public void aLeakScopeNamesTheLineOfALeakedNettyBuffer() {
        LeakScope s = LeakScope.open(java.time.Duration.ofMillis(200));
        OhmByteBufAllocator.DEFAULT.directBuffer(64).release();
        int line = new Throwable().getStackTrace()[0].getLineNumber() + 1;
        ByteBuf b = OhmByteBufAllocator.DEFAULT.directBuffer(100);
        b.touch("netty-hint");
        LeakException e = null;
        try {
            s.close();
        } catch (LeakException caught) {
            e = caught;
        }
        b.release();
        assertTrue("no LeakException", e != null);
        assertEquals(e.getMessage(), 1, e.leaks().size());
        assertEquals(e.getMessage(), "OhmNettyLeakTest.java:" + line, e.leaks().get(0).fileLine());
        assertTrue(e.getMessage(), e.getMessage().contains("netty-hint"));
    }

    @Test
    public void aCapacityChangeReleasesTheOldMemory() {
        try (OhmPool pool = Ohm.builder().name("netty-grow").build()) {
            OhmByteBufAllocator alloc = new OhmByteBufAllocator(pool, true);
            long mark = LeakDetector.mark();
            ByteBuf b = alloc.directBuffer(16);
            for (int i = 0; i < 10_000; i++) b.writeInt(i);
            assertEquals(1, pool.stats().activeBlocks());
            b.capacity(8);
            assertEquals(1, pool.stats().activeBlocks());
            assertEquals(1, LeakDetector.check(mark));
            assertTrue(b.release());
            assertEquals(0, pool.stats().activeBlocks());
            assertEquals(0, alloc.metric().usedDirectMemory());
        }
    }

    /** Allocates in a frame of its own, so nothing on the test's stack keeps the buffer reachable. */
    private static void leakOne(OhmByteBufAllocator alloc) {
        alloc.directBuffer(256).writeLong(1).retainedSlice().release();
    }

    @Test
    public void anUnreleasedNettyBufferTheGcFindsIsReportedWithItsJavaLine() throws Exception {
        try (OhmPool pool = Ohm.builder().name("netty-leak").build()) {
            leakOne(new OhmByteBufAllocator(pool, true));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (leaks.reports.isEmpty() && System.nanoTime() < deadline) {
                System.gc();
                synchronized (this) {
                    wait(20);
                }
            }
            LeakReport r = reportFor("OhmNettyLeakTest.leakOne(OhmNettyLeakTest.java");
            assertEquals(LeakReport.Reason.GC, r.reason());
            assertEquals(0, pool.stats().activeBlocks());
        }
    }

    @Test
    public void nettysLeakPropertiesSetOhmsLevelWhenOhmsAreNotSet() throws Exception {
        assertEquals("ADVANCED 1024", childLevel("-Dio.netty.leakDetection.level=advanced"));
        assertEquals("OFF 1024", childLevel("-Dio.netty.leakDetection.level=DISABLED"));
        assertEquals("PARANOID 1024", childLevel("-Dio.netty.leakDetectionLevel=paranoid"));
        assertEquals("ADVANCED 7", childLevel("-Dio.netty.leakDetection.level=advanced",
                "-Dio.netty.leakDetection.samplingInterval=7"));
        assertEquals("SIMPLE 3", childLevel("-Dohm.leak.level=simple", "-Dio.netty.leakDetection.level=paranoid",
                "-Dohm.leak.sampleInterval=3", "-Dio.netty.leakDetection.samplingInterval=7"));
        assertEquals("SIMPLE 1024", childLevel("OHM_LEAK_LEVEL=simple", "-Dio.netty.leakDetection.level=paranoid"));
    }

    /** The leak level and sample interval a fresh JVM ends up with after loading the allocator, given system
     * properties ("-Dname=value") and environment variables ("NAME=value"). */
    private static String childLevel(String... settings) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        for (String s : settings) {
            if (s.startsWith("-D")) cmd.add(s);
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(PrintLeakLevel.class.getName());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("OHM_LEAK_LEVEL");
        pb.environment().remove("OHM_LEAK_SAMPLE");
        for (String s : settings) {
            int eq = s.indexOf('=');
            if (!s.startsWith("-D")) pb.environment().put(s.substring(0, eq), s.substring(eq + 1));
        }
        Process p = pb.start();
        String out;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            StringBuilder sb = new StringBuilder();
            for (String line; (line = r.readLine()) != null; ) sb.append(line).append('\n');
            out = sb.toString().trim();
        }
        assertTrue("child JVM timed out", p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(out, 0, p.exitValue());
        return out;
    }

    /** The child of {@link #childLevel}. */
    public static final class PrintLeakLevel {
        public static void main(String[] args) {
            OhmByteBufAllocator.DEFAULT.directBuffer(1).release();
            System.out.println(LeakDetector.level() + " " + LeakDetector.sampleInterval());
        }
    }
}
