package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;
import org.ohm.PoolConfig;
import org.ohm.PoolStats;

/** Pools: configuration (builder and ohm.* properties), stats, trim, and buffers crossing threads. */
class PoolTest {
    @Test
    void builderValuesReachThePool() {
        try (OhmPool pool = Ohm.builder().name("built").chunkSize(1 << 20).arenas(1).cacheSlots(8).purgeDelayMs(-1)
                .zero(true).build()) {
            PoolConfig c = pool.config();
            assertEquals("built", pool.name());
            assertEquals(1 << 20, c.chunkSize());
            assertEquals(1, c.arenas());
            assertEquals(-1, c.purgeDelayMs());
            assertTrue(c.zero());
            OhmBuffer b = pool.allocate(1000);
            assertEquals(0, b.getLong(992)); // zero: every allocation is zeroed
            PoolStats s = pool.stats();
            assertEquals(1, s.activeBlocks());
            assertTrue(s.mappedBytes() >= 1 << 20);
            assertEquals(1, s.arenas());
            assertTrue(s.sizeClasses().stream().anyMatch(k -> k.activeBlocks() == 1 && k.size() >= 1000));
            b.release();
            pool.trim();
            assertEquals(0, pool.stats().activeBlocks());
            assertEquals(1, pool.stats(0).allocations());
        }
    }

    @Test
    void systemPropertiesSetTheDefaults() {
        System.setProperty("ohm.cacheSlots", "32");
        System.setProperty("ohm.chunkSize", "2m");
        System.setProperty("ohm.hugePages", "thp");
        System.setProperty("ohm.zero", "yes-please"); // malformed: logged and ignored
        try {
            PoolConfig c = PoolConfig.defaults();
            assertEquals(32, c.cacheSlots());
            assertEquals(2L << 20, c.chunkSize());
            assertEquals(PoolConfig.HugePages.THP, c.hugePages());
            assertFalse(c.zero());
        } finally {
            for (String p : new String[] {"ohm.cacheSlots", "ohm.chunkSize", "ohm.hugePages", "ohm.zero"})
                System.clearProperty(p);
        }
    }

    @Test
    void buffersReleasedOnAnotherThread() throws Exception {
        try (OhmPool pool = Ohm.builder().name("handoff").build()) {
            BlockingQueue<OhmBuffer> q = new ArrayBlockingQueue<>(64);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            int n = 20000;
            Thread consumer = new Thread(() -> {
                try {
                    for (int i = 0; i < n; i++) {
                        OhmBuffer b = q.take();
                        if (b.getInt(0) != i) throw new AssertionError("buffer " + i + " holds " + b.getInt(0));
                        assertTrue(b.release());
                    }
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            consumer.start();
            for (int i = 0; i < n; i++) {
                OhmBuffer b = pool.allocate(64 + (i % 7) * 100);
                b.putInt(0, i);
                assertTrue(q.offer(b, 10, TimeUnit.SECONDS), "the consumer stopped taking");
            }
            consumer.join(TimeUnit.SECONDS.toMillis(30));
            assertNull(failure.get());
            assertEquals(0, pool.stats().activeBlocks());
        }
    }

    @Test
    void retainAndReleaseFromTwoThreadsOnOneBuffer() throws Exception {
        OhmBuffer b = Ohm.allocate(64);
        Runnable churn = () -> {
            for (int i = 0; i < 50000; i++) {
                b.retain();
                b.release();
            }
        };
        Thread t = new Thread(churn);
        t.start();
        churn.run();
        t.join();
        assertEquals(1, b.refCnt());
        assertTrue(b.release());
    }
}
