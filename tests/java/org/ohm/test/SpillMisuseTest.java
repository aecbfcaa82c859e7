package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.ohm.MemoryConsumer;
import org.ohm.MemoryManager;
import org.ohm.MemoryMode;
import org.ohm.OhmCallbackException;
import org.ohm.OhmInterruptedException;
import org.ohm.TaskMemory;

/**
 * Spills that misbehave (lie about what they released, throw, take back what they released) and acquires that
 * are cancelled or interrupted while they spill or wait. Each ends the acquire with an exception or a short
 * grant, the accounting exact, never a hang. Rows that could hang the JVM run in a child JVM ({@link ChildJvm}),
 * whose methods check the accounting themselves (an AssertionError is a wrong outcome for the parent) and
 * rethrow what the acquire threw.
 *
 * <p>Every row has one task of a 1000-byte ON_HEAP manager: 400 bytes held by the task itself (no spill), 600 by
 * consumer A whose spill is the row's, and a requester R (its own spill releases nothing) that asks for 300.
 */
class SpillMisuseTest {
    /** How many times a misbehaving spill may be asked before it stops a runtime that keeps asking. */
    private static final int MAX_CALLS = 1000;
    private static final long BOUND_S = 10;

    @FunctionalInterface
    interface SpillBody {
        long spill(MemoryConsumer self, long size) throws IOException;
    }

    /** A consumer whose spill runs a row's body and counts its calls. */
    static final class Scripted extends MemoryConsumer {
        private final SpillBody body;
        final AtomicInteger calls = new AtomicInteger();

        Scripted(TaskMemory t, String name, SpillBody body) {
            super(t, MemoryMode.ON_HEAP, name);
            this.body = body;
        }

        @Override
        public long spill(long size, MemoryConsumer trigger) throws IOException {
            if (calls.incrementAndGet() > MAX_CALLS)
                throw new IllegalStateException("spill of " + name() + " asked " + MAX_CALLS + " times");
            return body.spill(this, size);
        }
    }

    /** One row's objects (see the class comment). */
    static final class Row implements AutoCloseable {
        final MemoryManager mm = MemoryManager.builder().onHeapSize(1000).offHeapSize(0).storageFraction(0).build();
        final TaskMemory task = mm.newTask(1);
        final Scripted a;
        final Scripted r;
        volatile boolean abandoned; // an acquire is still running: ending the task under it would be misuse

        Row(SpillBody body) {
            check(task.acquire(MemoryMode.ON_HEAP, 400) == 400, "the task holds 400");
            a = new Scripted(task, "A", body);
            check(a.acquireMemory(600) == 600, "A holds 600");
            r = new Scripted(task, "R", (self, size) -> 0);
        }

        /** The accounting: what A and R hold, and the task in all (its own 400 included). */
        void expect(long aUsed, long rUsed) {
            check(a.getUsed() == aUsed, "A holds " + aUsed + ", not " + a.getUsed());
            check(r.getUsed() == rUsed, "R holds " + rUsed + ", not " + r.getUsed());
            long total = 400 + aUsed + rUsed;
            check(task.stats().used(MemoryMode.ON_HEAP) == total, "the task holds " + total);
            check(mm.stats().executionUsed(MemoryMode.ON_HEAP) == total, "the manager counts " + total);
        }

        /** Releases everything first, so that ending the task logs no leak (the child must print nothing). */
        @Override
        public void close() {
            if (abandoned) return;
            a.freeMemory(a.getUsed());
            r.freeMemory(r.getUsed());
            task.release(MemoryMode.ON_HEAP, 400);
            check(task.end() == 0, "the row ends with nothing held");
            mm.close();
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    /** Runs R's acquire of 300 on a new thread; returns it (started) and where its outcome goes. */
    private static Thread acquireOnThread(Row row, AtomicReference<Throwable> outcome) {
        return acquireOnThread(row, outcome, () -> {});
    }

    /** The same, running then on that thread once the acquire has ended. */
    private static Thread acquireOnThread(Row row, AtomicReference<Throwable> outcome, Runnable then) {
        Thread th = new Thread(() -> {
            try {
                long got = row.r.acquireMemory(300);
                outcome.set(new AssertionError("the acquire returned " + got + " instead of throwing"));
            } catch (Throwable e) {
                outcome.set(e);
            }
            then.run();
        }, "acquirer");
        th.start();
        return th;
    }

    private static void await(CountDownLatch latch, String what) throws InterruptedException {
        if (!latch.await(BOUND_S, TimeUnit.SECONDS)) throw new AssertionError(what + " did not happen in " + BOUND_S + " s");
    }

    private static Throwable join(Row row, Thread th, AtomicReference<Throwable> outcome) throws InterruptedException {
        th.join(TimeUnit.SECONDS.toMillis(BOUND_S));
        if (th.isAlive()) {
            if (row != null) row.abandoned = true;
            throw new AssertionError("the acquire did not end within " + BOUND_S + " s");
        }
        return outcome.get();
    }

    // ---- spills that lie: a callback error naming the consumer, asked once ----

    static void lyingSpill() {
        try (Row row = new Row((self, size) -> 500)) {
            try {
                row.r.acquireMemory(300);
            } catch (OhmCallbackException e) {
                check(row.a.calls.get() == 1, "A was asked " + row.a.calls.get() + " times");
                row.expect(600, 0);
                throw e;
            }
        }
    }

    @Test
    void aSpillThatReportsBytesItDidNotReleaseIsACallbackError() {
        String msg = ChildJvm.assertThrowsInChild(OhmCallbackException.class, SpillMisuseTest.class, "lyingSpill");
        assertEquals("spill of consumer A reported 500 bytes but released 0", msg);
    }

    static void spillReleasingLessThanItReports() {
        try (Row row = new Row((self, size) -> {
            self.freeMemory(100);
            return 300;
        })) {
            try {
                row.r.acquireMemory(300);
            } catch (OhmCallbackException e) {
                row.expect(500, 0); // the 100 it did release stay released; R got nothing
                throw e;
            }
        }
    }

    @Test
    void aSpillThatReleasesLessThanItReportsIsACallbackError() {
        String msg = ChildJvm.assertThrowsInChild(OhmCallbackException.class, SpillMisuseTest.class,
                "spillReleasingLessThanItReports");
        assertEquals("spill of consumer A reported 300 bytes but released 100", msg);
    }

    @Test
    void aSpillThatReportsLessThanItReleasedIsCreditedWhatItReleased() {
        try (Row row = new Row((self, size) -> {
            self.freeMemory(300);
            return 0;
        })) {
            assertEquals(300, row.r.acquireMemory(300));
            row.expect(300, 300);
            assertEquals(300, row.a.stats().spillBytes());
        }
    }

    static void spillTakingBackWhatItReleased() {
        try (Row row = new Row((self, size) -> {
            self.freeMemory(100);
            self.acquireMemory(100); // honest about the release, but the bytes never reach the requester
            return 100;
        })) {
            long got = row.r.acquireMemory(300);
            check(got == 0, "R got " + got);
            check(row.a.calls.get() == 1, "A was asked " + row.a.calls.get() + " times");
            row.expect(600, 0);
        }
    }

    @Test
    void aSpillThatTakesBackWhatItReleasedIsNotAskedAgain() {
        ChildJvm.Outcome o = ChildJvm.run(SpillMisuseTest.class, "spillTakingBackWhatItReleased");
        assertNull(o.thrown(), o.thrown() + ": " + o.message());
        assertEquals("", o.stderr());
    }

    // ---- spills that throw: the exception, the accounting as before, spills working afterwards ----

    @Test
    void aSpillThatThrowsACheckedExceptionFailsTheAcquireWithItAsTheCause() {
        IOException thrown = new IOException("disk full");
        try (Row row = new Row((self, size) -> {
            throw thrown;
        })) {
            OhmCallbackException e = assertThrows(OhmCallbackException.class, () -> row.r.acquireMemory(300));
            assertSame(thrown, e.getCause());
            assertTrue(e.getMessage().contains("spill of consumer A failed"), e.getMessage());
            row.expect(600, 0);
            assertEquals(1, row.a.calls.get());
        }
    }

    @Test
    void aSpillThatThrowsAnUncheckedExceptionFailsTheAcquireWithItAsThrown() {
        IllegalStateException thrown = new IllegalStateException("sorter broken");
        try (Row row = new Row((self, size) -> {
            throw thrown;
        })) {
            assertSame(thrown, assertThrows(IllegalStateException.class, () -> row.r.acquireMemory(300)));
            row.expect(600, 0);
            row.a.freeMemory(300); // memory free again: no spill needed, nothing thrown
            assertEquals(300, row.r.acquireMemory(300));
            row.expect(300, 300);
        }
    }

    static void spillThrowingAnError() {
        try (Row row = new Row((self, size) -> {
            throw new InternalError("spill broke");
        })) {
            try {
                row.r.acquireMemory(300);
            } catch (InternalError e) {
                row.expect(600, 0);
                throw e;
            }
        }
    }

    @Test
    void aSpillThatThrowsAnErrorFailsTheAcquireWithIt() {
        assertEquals("spill broke", ChildJvm.assertThrowsInChild(InternalError.class, SpillMisuseTest.class,
                "spillThrowingAnError"));
    }

    // ---- cancel and interrupt while a spill runs ----

    /**
     * Runs R's acquire on a new thread, calls stop with that thread once A's spill has begun, and rethrows how the
     * acquire ended; ended by OhmInterruptedException, A was asked once and gave back 10 of its 600 bytes.
     */
    private static void stopDuringOneSpill(Row row, CountDownLatch inSpill, Consumer<Thread> stop) throws Throwable {
        AtomicReference<Throwable> outcome = new AtomicReference<>();
        Thread th = acquireOnThread(row, outcome);
        await(inSpill, "the spill");
        stop.accept(th);
        Throwable e = join(row, th, outcome);
        if (e instanceof OhmInterruptedException) {
            check(row.a.calls.get() == 1, "A was asked " + row.a.calls.get() + " times");
            row.expect(590, 0);
        }
        throw e;
    }

    static void cancelWaitDuringSpill() throws Throwable {
        CountDownLatch inSpill = new CountDownLatch(1), cancelled = new CountDownLatch(1);
        try (Row row = new Row((self, size) -> {
            inSpill.countDown();
            try {
                await(cancelled, "the cancel");
            } catch (InterruptedException e) {
                throw new AssertionError("interrupted", e);
            }
            self.freeMemory(10); // honest, but 10 at a time: without the cancel it would be asked 29 more times
            return 10;
        })) {
            stopDuringOneSpill(row, inSpill, th -> {
                row.task.cancelWait();
                cancelled.countDown();
            });
        }
    }

    @Test
    void cancelWaitEndsAnAcquireThatIsSpilling() {
        ChildJvm.assertThrowsInChild(OhmInterruptedException.class, SpillMisuseTest.class, "cancelWaitDuringSpill");
    }

    static void interruptDuringSpill() throws Throwable {
        CountDownLatch inSpill = new CountDownLatch(1), never = new CountDownLatch(1);
        AtomicReference<Boolean> interruptedAfter = new AtomicReference<>();
        try (Row row = new Row((self, size) -> {
            inSpill.countDown();
            try {
                await(never, "the interrupt"); // a spill blocked on I/O, say
                throw new AssertionError("not interrupted");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // what a well-behaved spill does
                return 0;
            }
        })) {
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            Thread th = acquireOnThread(row, outcome,
                    () -> interruptedAfter.set(Thread.currentThread().isInterrupted()));
            await(inSpill, "the spill");
            th.interrupt();
            Throwable e = join(row, th, outcome);
            if (e instanceof OhmInterruptedException) {
                check(interruptedAfter.get(), "the interrupt status is left set");
                row.expect(600, 0);
            }
            throw e;
        }
    }

    @Test
    void threadInterruptEndsAnAcquireWhoseSpillIsBlocked() {
        ChildJvm.assertThrowsInChild(OhmInterruptedException.class, SpillMisuseTest.class, "interruptDuringSpill");
    }

    static void interruptBetweenSpills() throws Throwable {
        CountDownLatch inSpill = new CountDownLatch(1);
        try (Row row = new Row((self, size) -> {
            inSpill.countDown();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOUND_S);
            while (!Thread.currentThread().isInterrupted()) { // a spill that does not block: busy writing
                if (System.nanoTime() > deadline) throw new AssertionError("not interrupted");
                Thread.onSpinWait();
            }
            self.freeMemory(10); // it finishes its step honestly; the round must not ask it again
            return 10;
        })) {
            stopDuringOneSpill(row, inSpill, Thread::interrupt);
        }
    }

    @Test
    void threadInterruptEndsASpillRoundBetweenSpills() {
        ChildJvm.assertThrowsInChild(OhmInterruptedException.class, SpillMisuseTest.class, "interruptBetweenSpills");
    }

    // ---- cancel and interrupt while a consumer's acquire waits for its fair share ----

    /** Task 2 holds everything; a consumer of task 3 waits for its share until an interrupt or a cancel. */
    private static void waitingConsumer(boolean interrupt) throws Throwable {
        MemoryManager mm = MemoryManager.builder().onHeapSize(1000).offHeapSize(0).storageFraction(0).build();
        TaskMemory holder = mm.newTask(2), waiter = mm.newTask(3);
        check(holder.acquire(MemoryMode.ON_HEAP, 1000) == 1000, "the holder holds everything");
        Scripted c = new Scripted(waiter, "C", (self, size) -> 0);
        AtomicReference<Throwable> outcome = new AtomicReference<>();
        Thread th = new Thread(() -> {
            try {
                outcome.set(new AssertionError("returned " + c.acquireMemory(400) + " instead of waiting"));
            } catch (Throwable e) {
                outcome.set(e);
            }
        }, "waiter");
        th.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOUND_S);
        while (!waiter.stats().waiting()) {
            if (System.nanoTime() > deadline) throw new AssertionError("the consumer never waited");
            Thread.onSpinWait();
        }
        if (interrupt) th.interrupt();
        else waiter.cancelWait();
        Throwable e = join(null, th, outcome); // on a timeout the objects stay: the child exits anyway
        check(c.getUsed() == 0, "the waiter got nothing");
        holder.release(MemoryMode.ON_HEAP, 1000);
        check(holder.end() == 0 && waiter.end() == 0, "nothing leaked");
        mm.close();
        throw e;
    }

    static void interruptDuringWait() throws Throwable {
        waitingConsumer(true);
    }

    static void cancelWaitDuringWait() throws Throwable {
        waitingConsumer(false);
    }

    @Test
    void threadInterruptEndsAConsumersWait() {
        ChildJvm.assertThrowsInChild(OhmInterruptedException.class, SpillMisuseTest.class, "interruptDuringWait");
    }

    @Test
    void cancelWaitEndsAConsumersWait() {
        ChildJvm.assertThrowsInChild(OhmInterruptedException.class, SpillMisuseTest.class, "cancelWaitDuringWait");
    }
}
