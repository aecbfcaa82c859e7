package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.ohm.EvictionListener;
import org.ohm.MemoryConsumer;
import org.ohm.MemoryManager;
import org.ohm.MemoryMode;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmCallbackException;
import org.ohm.OhmInterruptedException;
import org.ohm.OhmOutOfMemoryError;
import org.ohm.OhmTimeoutException;
import org.ohm.PinnedBlock;
import org.ohm.TaskMemory;

/** The memory manager from Java: Spark's rules, spills, pages, the block cache, interrupts and misuse. */
class MemoryManagerTest {
    /** A consumer whose spill releases what it is asked for (or throws what it is told to). */
    static final class Spiller extends MemoryConsumer {
        volatile Exception toThrow;
        volatile RuntimeException toThrowUnchecked;
        volatile long result = Long.MIN_VALUE;
        int spills;
        MemoryConsumer lastTrigger;

        Spiller(TaskMemory t, MemoryMode mode, String name) {
            super(t, mode, name);
        }

        @Override
        public long spill(long size, MemoryConsumer trigger) throws IOException {
            spills++;
            lastTrigger = trigger;
            if (toThrow instanceof IOException) throw (IOException) toThrow;
            if (toThrowUnchecked != null) throw toThrowUnchecked;
            if (result != Long.MIN_VALUE) return result;
            long n = Math.min(size, getUsed());
            freeMemory(n);
            return n;
        }
    }

    private static MemoryManager onHeap(long bytes) {
        return MemoryManager.builder().onHeapSize(bytes).offHeapSize(0).storageFraction(0).build();
    }

    @Test
    void acquireAndReleaseFollowSparkAndShowInStats() {
        try (MemoryManager mm = onHeap(1000); TaskMemory t = mm.newTask(1)) {
            assertEquals(600, t.acquire(MemoryMode.ON_HEAP, 600));
            assertEquals(400, t.acquire(MemoryMode.ON_HEAP, 600)); // a single task may take everything there is
            assertEquals(1000, mm.stats().executionUsed(MemoryMode.ON_HEAP));
            assertEquals(1000, t.stats().used(MemoryMode.ON_HEAP));
            assertEquals(1000, t.release(MemoryMode.ON_HEAP, 5000)); // more than held releases what it holds
            assertEquals(0, mm.stats().executionUsed(MemoryMode.ON_HEAP));
            assertTrue(mm.snapshotJson().startsWith("{"));
            assertThrows(IllegalArgumentException.class, () -> t.acquire(MemoryMode.ON_HEAP, -1));
        }
    }

    @Test
    void anotherConsumerSpillsForAnAcquire() {
        try (MemoryManager mm = onHeap(1000); TaskMemory t = mm.newTask(2)) {
            Spiller a = new Spiller(t, MemoryMode.ON_HEAP, "a");
            Spiller b = new Spiller(t, MemoryMode.ON_HEAP, "b");
            assertEquals(800, a.acquireMemory(800));
            assertEquals(500, b.acquireMemory(500));
            assertEquals(1, a.spills);
            assertSame(b, a.lastTrigger);
            assertEquals(500, a.getUsed());
            assertEquals(500, b.getUsed());
            assertEquals(1, a.stats().spills());
        }
    }

    @Test
    void aSpillThatThrowsFailsTheAcquireWithItsExceptionAndKeepsTheAccounting() {
        try (MemoryManager mm = onHeap(1000); TaskMemory t = mm.newTask(3)) {
            Spiller a = new Spiller(t, MemoryMode.ON_HEAP, "a");
            Spiller b = new Spiller(t, MemoryMode.ON_HEAP, "b");
            a.acquireMemory(900);
            a.toThrow = new IOException("disk full");
            OhmCallbackException e = assertThrows(OhmCallbackException.class, () -> b.acquireMemory(500));
            assertInstanceOf(IOException.class, e.getCause());
            assertEquals("disk full", e.getCause().getMessage());
            assertTrue(e.getMessage().contains("disk full"), e.getMessage());
            assertEquals(900, a.getUsed());
            assertEquals(0, b.getUsed());
            assertEquals(900, mm.stats().executionUsed(MemoryMode.ON_HEAP));

            a.toThrow = null;
            a.toThrowUnchecked = new IllegalStateException("sorter broken");
            IllegalStateException u = assertThrows(IllegalStateException.class, () -> b.acquireMemory(500));
            assertSame(a.toThrowUnchecked, u); // unchecked: rethrown as it was thrown

            a.toThrowUnchecked = null;
            a.result = -5;
            OhmCallbackException neg = assertThrows(OhmCallbackException.class, () -> b.acquireMemory(500));
            assertTrue(neg.getMessage().contains("negative"), neg.getMessage());

            a.result = Long.MIN_VALUE; // spills work again afterwards
            assertEquals(500, b.acquireMemory(500));
        }
    }

    @Test
    void pagesAreBuffersAndAShortGrantIsSparksOutOfMemoryError() {
        try (MemoryManager mm = MemoryManager.builder().offHeapSize(4L << 20).storageFraction(0).pageSize(1 << 20).build();
             TaskMemory t = mm.newTask(4)) {
            Spiller c = new Spiller(t, MemoryMode.OFF_HEAP, "pages");
            c.result = 0; // spills nothing
            OhmBuffer page = c.allocatePage(1000);
            assertEquals(1 << 20, page.capacity()); // at least the page size
            page.putLong(1 << 19, 7);
            assertEquals(1 << 20, c.getUsed());
            OhmOutOfMemoryError e = assertThrows(OhmOutOfMemoryError.class, () -> c.allocatePage(8L << 20));
            assertEquals("Unable to acquire 8388608 bytes of memory, got 3145728", e.getMessage());
            assertEquals(1 << 20, c.getUsed(), "nothing stays charged after a refused page");
            c.freePage(page);
            assertEquals(0, c.getUsed());
            assertThrows(IllegalStateException.class, () -> page.getLong(0));

            Spiller heap = new Spiller(t, MemoryMode.ON_HEAP, "heap");
            assertThrows(IllegalArgumentException.class, () -> heap.allocatePage(10));
        }
    }

    @Test
    void endingATaskReportsLeakedBytesAndEndsItsPages() {
        try (MemoryManager mm = MemoryManager.builder().offHeapSize(8L << 20).onHeapSize(1000).build()) {
            TaskMemory t = mm.newTask(5);
            t.acquire(MemoryMode.ON_HEAP, 100);
            Spiller c = new Spiller(t, MemoryMode.OFF_HEAP, "leaky");
            OhmBuffer page = c.allocatePage(1 << 20);
            OhmBuffer slice = page.slice(0, 16);
            assertEquals(100 + (1 << 20), t.end());
            assertEquals(100 + (1 << 20), t.end()); // twice: the same answer
            assertThrows(IllegalStateException.class, () -> page.getLong(0));
            assertThrows(IllegalStateException.class, () -> slice.getLong(0));
            assertThrows(IllegalStateException.class, () -> t.acquire(MemoryMode.ON_HEAP, 1));
            assertThrows(IllegalStateException.class, () -> c.acquireMemory(1));
            assertThrows(IllegalStateException.class, t::stats);
            assertEquals(0, mm.stats().executionUsed(MemoryMode.ON_HEAP));
            t.close(); // closing an ended task does nothing
        }
    }

    @Test
    void aTaskIdInUseAndAManagerWithLiveTasksAreStateErrors() {
        MemoryManager mm = onHeap(1000);
        TaskMemory t = mm.newTask(6);
        assertThrows(IllegalArgumentException.class, () -> mm.newTask(6));
        assertThrows(IllegalStateException.class, mm::close);
        t.close();
        mm.close();
        assertThrows(IllegalStateException.class, () -> mm.newTask(7));
    }

    /** Starts a thread that acquires for `waiter` while `holder` holds everything; returns its outcome holder. */
    private static Thread blockedAcquire(TaskMemory waiter, AtomicReference<Throwable> outcome) {
        Thread th = new Thread(() -> {
            try {
                waiter.acquire(MemoryMode.ON_HEAP, 400);
                outcome.set(new AssertionError("the acquire returned instead of waiting"));
            } catch (Throwable e) {
                outcome.set(e);
            }
        });
        th.start();
        return th;
    }

    private static void awaitWaiting(TaskMemory t) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!t.stats().waiting()) {
            if (System.nanoTime() > deadline) fail("task " + t.taskId() + " never started waiting");
            Thread.onSpinWait();
        }
    }

    @Test
    void threadInterruptWakesATaskWaitingForItsShare() throws Exception {
        try (MemoryManager mm = onHeap(1000); TaskMemory holder = mm.newTask(10); TaskMemory waiter = mm.newTask(11)) {
            assertEquals(1000, holder.acquire(MemoryMode.ON_HEAP, 1000));
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            Thread th = blockedAcquire(waiter, outcome);
            awaitWaiting(waiter);
            th.interrupt();
            th.join(TimeUnit.SECONDS.toMillis(10));
            assertFalse(th.isAlive(), "the interrupted acquire did not return within 10 s");
            assertInstanceOf(OhmInterruptedException.class, outcome.get());
            assertEquals(0, waiter.stats().used(MemoryMode.ON_HEAP));
        }
    }

    @Test
    void anInterruptedThreadsAcquireThrowsAtOnceAndKeepsItsStatus() {
        try (MemoryManager mm = onHeap(1000); TaskMemory t = mm.newTask(12)) {
            Thread.currentThread().interrupt();
            try {
                assertThrows(OhmInterruptedException.class, () -> t.acquire(MemoryMode.ON_HEAP, 10));
                assertTrue(Thread.currentThread().isInterrupted());
            } finally {
                Thread.interrupted();
            }
            assertEquals(10, t.acquire(MemoryMode.ON_HEAP, 10));
            t.release(MemoryMode.ON_HEAP, 10);
        }
    }

    @Test
    void cancelWaitAndTimeoutEndAWait() throws Exception {
        try (MemoryManager mm = onHeap(1000); TaskMemory holder = mm.newTask(20); TaskMemory waiter = mm.newTask(21)) {
            holder.acquire(MemoryMode.ON_HEAP, 1000);
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            Thread th = blockedAcquire(waiter, outcome);
            awaitWaiting(waiter);
            waiter.cancelWait();
            th.join(TimeUnit.SECONDS.toMillis(10));
            assertInstanceOf(OhmInterruptedException.class, outcome.get());

            waiter.setWaitTimeout(Duration.ofMillis(100));
            long t0 = System.nanoTime();
            OhmTimeoutException e = assertThrows(OhmTimeoutException.class, () -> waiter.acquire(MemoryMode.ON_HEAP, 400));
            assertTrue(System.nanoTime() - t0 >= TimeUnit.MILLISECONDS.toNanos(90), "timed out too early");
            assertTrue(e.getMessage().contains("timed out"), e.getMessage());

            holder.release(MemoryMode.ON_HEAP, 1000); // memory back: the same acquire succeeds at once
            assertEquals(400, waiter.acquire(MemoryMode.ON_HEAP, 400));
        }
    }

    @Test
    void blockCacheEvictsLeastRecentlyUsedAndTellsTheListener() {
        List<String> evicted = new ArrayList<>();
        // 4 KiB, storage region 2 KiB: three 1 KiB blocks make storage borrow 1 KiB of execution memory, which an
        // execution acquire takes back by evicting the least recently used block.
        try (MemoryManager mm = MemoryManager.builder().offHeapSize(4096).storageFraction(0.5).build();
             TaskMemory t = mm.newTask(30)) {
            OhmBuffer a = Ohm.allocate(1024), b = Ohm.allocate(1024), c = Ohm.allocate(1024);
            b.putLong(0, 11);
            EvictionListener record = (id, buf) -> evicted.add(id);
            assertTrue(mm.putBlock("a", null, MemoryMode.OFF_HEAP, a, record));
            assertTrue(mm.putBlock("b", null, MemoryMode.OFF_HEAP, b, (id, buf) -> {
                assertEquals(11, buf.getLong(0)); // still readable in the listener
                evicted.add(id);
            }));
            assertTrue(mm.putBlock("c", null, MemoryMode.OFF_HEAP, c, record));
            assertThrows(IllegalArgumentException.class, () -> mm.putBlock("a", null, MemoryMode.OFF_HEAP, a, null));
            assertEquals(3, mm.stats().blocks());
            b.release(); // the cache keeps b alive
            assertEquals(11, b.getLong(0));
            try (PinnedBlock p = mm.pinBlock("a")) { // a becomes the most recently used: b is now the oldest
                assertSame(a, p.buffer());
            }
            assertFalse(mm.putBlock("huge", null, MemoryMode.OFF_HEAP, 1 << 20, null)); // does not fit
            assertEquals(2048, t.acquire(MemoryMode.OFF_HEAP, 2048));
            assertEquals(List.of("b"), evicted);
            assertFalse(mm.containsBlock("b"));
            assertTrue(mm.containsBlock("a"));
            assertFalse(b.isAccessible(), "the evicted buffer's count reached 0: Java must see it released");
            assertThrows(IllegalStateException.class, () -> b.getLong(0));
            assertTrue(a.isAccessible());
            assertEquals(1, mm.stats().evictions());
            t.release(MemoryMode.OFF_HEAP, 2048);
            a.release();
            c.release();
        }
    }

    @Test
    void aListenerThatThrowsKeepsTheBlockAndFailsTheAcquire() {
        // 2 KiB, storage region 1 KiB: a 1.5 KiB block borrows 512 B that an acquire of 1 KiB must take back.
        try (MemoryManager mm = MemoryManager.builder().offHeapSize(2048).storageFraction(0.5).build();
             TaskMemory t = mm.newTask(31); OhmBuffer x = Ohm.allocate(1536)) {
            assertTrue(mm.putBlock("x", "g", MemoryMode.OFF_HEAP, x, (id, buf) -> {
                throw new IOException("cannot write " + id);
            }));
            OhmCallbackException e = assertThrows(OhmCallbackException.class, () -> t.acquire(MemoryMode.OFF_HEAP, 1024));
            assertInstanceOf(IOException.class, e.getCause());
            assertEquals("cannot write x", e.getCause().getMessage());
            assertTrue(mm.containsBlock("x"));
            assertEquals(0, t.stats().used(MemoryMode.OFF_HEAP));
            mm.removeBlock("x");
            assertFalse(mm.containsBlock("x"));
            assertThrows(IllegalArgumentException.class, () -> mm.removeBlock("x"));
            assertEquals(1, x.refCnt());
        }
    }

    @Test
    void sparkHeapSizing() {
        assertEquals((long) (((1L << 30) - (300L << 20)) * 0.6), MemoryManager.onHeapSizeFromHeap(1L << 30, 0.6));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MemoryManager.onHeapSizeFromHeap(100L << 20, 0.6));
        assertTrue(e.getMessage().contains("must be at least"), e.getMessage());
    }
}
