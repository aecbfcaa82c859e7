package org.ohm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One task's memory (Spark's TaskMemoryManager): execution memory acquired directly or through its
 * {@link MemoryConsumer}s, unroll memory, and pages. Closing it ends the task: its pages are freed (their buffers
 * fail from then on), everything it still held is released, and what it leaked is logged ("memory leak detected
 * in task T: N bytes") and returned by {@link #end()}.
 *
 * <p>An acquire that must wait for the task's fair share (1/(2N) of the mode's execution memory, N tasks) waits
 * until memory is released, the manager's wait timeout passes ({@link OhmTimeoutException}), or the thread is
 * interrupted ({@link OhmInterruptedException}; {@link Thread#interrupt()} is seen within {@value #WAIT_SLICE_MS}
 * ms, as the wait is made of bounded native waits) or {@link #cancelWait()} is called. An acquire that is asking
 * consumers to spill ends the same way, seen before and after each {@link MemoryConsumer#spill} call (a spill
 * itself runs to its end; what it released stays released). Like {@code Lock.lockInterruptibly()}, an acquire on
 * a thread that is interrupted already throws at once. A task is meant to be used by one thread at a time, as in
 * Spark.
 */
public final class TaskMemory implements AutoCloseable {
    /** A native wait lasts at most this long before Java looks at the thread's interrupt status again. */
    static final long WAIT_SLICE_MS = 20;

    final MemoryManager mm;
    final long handle;
    private final long taskId;
    private volatile long timeoutMs;
    private volatile boolean closed;
    private long leaked = -1;
    final Set<Tracker> pages = ConcurrentHashMap.newKeySet();
    private final List<MemoryConsumer> consumers = new ArrayList<>(); // guarded by this

    TaskMemory(MemoryManager mm, long taskId, long timeoutMs) {
        this.mm = mm;
        this.taskId = taskId;
        this.timeoutMs = timeoutMs;
        this.handle = Native.taskCreate(mm.handle, taskId, sliceFor(timeoutMs));
    }

    private static long sliceFor(long timeoutMs) {
        return timeoutMs >= 0 && timeoutMs < WAIT_SLICE_MS ? timeoutMs : WAIT_SLICE_MS;
    }

    /** {@return the task's id, as given to {@link MemoryManager}} */
    public long taskId() {
        return taskId;
    }

    /** {@return the manager this task draws from} */
    public MemoryManager memoryManager() {
        return mm;
    }

    /**
     * How long this task's acquires wait for a fair share (null: no limit). Starts as the manager's.
     *
     * @param timeout the longest wait, or null for no limit
     */
    public void setWaitTimeout(Duration timeout) {
        ensureOpen();
        long ms = timeout == null ? -1 : Math.max(0, timeout.toMillis());
        timeoutMs = ms;
        Native.taskSetWaitTimeout(handle, sliceFor(ms));
    }

    /**
     * Execution memory without a consumer (nothing spills): returns the bytes granted, from 0 to bytes (Spark's
     * rule), waiting while the task is below its minimum share.
     *
     * @param mode the pool to draw from
     * @param bytes how many bytes are wanted
     * @return the bytes granted
     */
    public long acquire(MemoryMode mode, long bytes) {
        Objects.requireNonNull(mode, "mode");
        ensureOpen();
        return waitFor(0, mode.ordinal(), bytes, false);
    }

    /**
     * Releases bytes of execution memory (more than the task holds releases what it holds); returns how much.
     *
     * @param mode the pool the bytes came from
     * @param bytes how many bytes to give back
     * @return the bytes released
     */
    public long release(MemoryMode mode, long bytes) {
        Objects.requireNonNull(mode, "mode");
        ensureOpen();
        return Native.taskRelease(handle, mode.ordinal(), bytes);
    }

    /**
     * Unroll memory for a block being unrolled (storage rules; group names it, never evicted for it). False if
     * it does not fit.
     *
     * @param mode the storage pool to draw from
     * @param group the block being unrolled
     * @param bytes how many bytes are wanted
     * @return whether the bytes were granted
     */
    public boolean acquireUnroll(MemoryMode mode, String group, long bytes) {
        Objects.requireNonNull(mode, "mode");
        ensureOpen();
        int rc = Native.taskAcquireUnroll(handle, mode.ordinal(), Native.cstr(group), bytes);
        if (rc == 0) {
            MemoryManager.drainDeferred();
            return true;
        }
        Throwable e = rc == Native.ELIMIT ? null : Native.error(rc);
        MemoryManager.drainDeferred();
        if (e == null) return false;
        throw Native.rethrow(e);
    }

    /**
     * Releases unroll memory this task holds (more than it holds releases what it holds).
     *
     * @param mode the storage pool the bytes came from
     * @param bytes how many bytes to give back
     * @return the bytes released
     */
    public long releaseUnroll(MemoryMode mode, long bytes) {
        Objects.requireNonNull(mode, "mode");
        ensureOpen();
        return Native.taskReleaseUnroll(handle, mode.ordinal(), bytes);
    }

    /**
     * Interrupts this task's acquire in progress, waiting or spilling, or else its next one that waits or spills
     * (OhmInterruptedException there). Any thread.
     */
    public void cancelWait() {
        ensureOpen();
        Native.taskCancel(mm.handle, taskId);
    }

    /**
     * The wait loop of every acquire: a native acquire whose wait lasts at most WAIT_SLICE_MS, repeated until it
     * returns something other than a timeout, the task's own timeout passes, or the thread is interrupted.
     * consumer != 0 acquires through that consumer (spilling); page allocates a page. Returns the bytes granted,
     * or the page's handle (its values in the thread's scratch block: wrap it with pageOf).
     */
    long waitFor(long consumer, int mode, long bytes, boolean page) {
        if (bytes < 0) throw new IllegalArgumentException("size " + bytes + " is negative");
        long start = 0;
        SafetyNet.Local l = page ? SafetyNet.local() : null;
        for (;;) {
            if (Thread.currentThread().isInterrupted()) throw interrupted(bytes);
            long r = page ? Native.consumerAllocPage(consumer, bytes, l.scratch)
                    : consumer != 0 ? Native.consumerAcquire(consumer, bytes)
                    : Native.taskAcquire(handle, mode, bytes);
            if (r >= 0) {
                MemoryManager.drainDeferred();
                return r;
            }
            if (r == Native.ETIMEDOUT) {
                MemoryManager.drainDeferred();
                long now = System.nanoTime();
                if (start == 0) start = now - WAIT_SLICE_MS * 1_000_000L;
                long limit = timeoutMs;
                if (limit >= 0 && now - start >= limit * 1_000_000L)
                    throw new OhmTimeoutException("task " + taskId + ": acquiring " + bytes + " bytes timed out after "
                            + limit + " ms waiting for its fair share of execution memory");
                continue;
            }
            if (page && r == Native.ELIMIT) {
                long got = l.out(0);
                MemoryManager.drainDeferred();
                throw new OhmOutOfMemoryError("Unable to acquire " + bytes + " bytes of memory, got " + got);
            }
            Throwable e = r == Native.ECANCELED ? interrupted(bytes) : Native.error((int) r);
            MemoryManager.drainDeferred();
            throw Native.rethrow(e);
        }
    }

    /** The page whose handle waitFor returned (its values are still in l's scratch). */
    OhmBuffer pageOf(long h, SafetyNet.Local l) {
        OhmBuffer b = OhmBuffer.root(h, l, this);
        pages.add(b.countTracker());
        return b;
    }

    private OhmInterruptedException interrupted(long bytes) {
        return new OhmInterruptedException("task " + taskId + ": interrupted while acquiring " + bytes
                + " bytes of memory");
    }

    void pageGone(Tracker t) {
        pages.remove(t);
    }

    synchronized void addConsumer(MemoryConsumer c) {
        consumers.add(c);
    }

    synchronized void removeConsumer(MemoryConsumer c) {
        consumers.remove(c);
    }

    void ensureOpen() {
        if (closed) throw new IllegalStateException("task " + taskId + " has ended");
    }

    /** {@return whether the task has ended} */
    public boolean isClosed() {
        return closed;
    }

    /** {@return a snapshot of the task's memory} */
    public Stats stats() {
        ensureOpen();
        return new Stats(Native.taskStats(handle));
    }

    /**
     * Ends the task (see the class comment) and returns the execution bytes it still held, pages included: 0 for
     * a task that released everything. Ending twice returns the first result.
     *
     * @return the execution bytes still held when it ended
     */
    public synchronized long end() {
        if (closed) return leaked;
        LeakDetector.attachSites(t -> t.scope == this);
        // Consumers that hold nothing are destroyed first (which frees the binding's record of each); the others
        // end with the task, so that what they held counts as leaked.
        List<Long> refs = new ArrayList<>();
        for (MemoryConsumer c : consumers) {
            refs.add(c.ctx);
            if (Native.consumerUsed(c.handle) == 0) {
                if (Native.consumerDestroy(c.handle) == 0) c.markDestroyed();
            }
        }
        leaked = Native.taskEnd(handle);
        closed = true;
        for (Tracker t : pages.toArray(new Tracker[0])) t.died();
        for (MemoryConsumer c : consumers) c.markDestroyed();
        consumers.clear();
        for (long r : refs) Native.deleteGlobal(r);
        return leaked;
    }

    /** {@link #end()}. */
    @Override
    public void close() {
        end();
    }

    /** A snapshot of a task. */
    public static final class Stats {
        private final long[] v;

        Stats(long[] v) {
            this.v = v;
        }

        /** {@return the task's id} */
        public long taskId() { return v[0]; }
        /**
         * @param mode the pool
         * @return the execution bytes held in that pool
         */
        public long used(MemoryMode mode) { return v[1 + mode.ordinal()]; }
        /**
         * @param mode the pool
         * @return the unroll bytes held in that pool
         */
        public long unroll(MemoryMode mode) { return v[3 + mode.ordinal()]; }
        /** {@return the most execution bytes held at once} */
        public long peak() { return v[5]; }
        /** {@return how many spills its consumers made} */
        public long spills() { return v[6]; }
        /** {@return the bytes its consumers' spills reported released} */
        public long spillBytes() { return v[7]; }
        /** {@return how many acquires waited for a fair share} */
        public long waits() { return v[8]; }
        /** {@return the time its acquires spent waiting, in nanoseconds} */
        public long waitNanos() { return v[9]; }
        /** {@return how many cached blocks were evicted for its acquires} */
        public long evictions() { return v[10]; }
        /** {@return its consumers open now} */
        public long consumers() { return v[11]; }
        /** {@return whether an acquire of this task is waiting now} */
        public boolean waiting() { return v[12] != 0; }

        @Override
        public String toString() {
            return "TaskMemory.Stats(task=" + taskId() + ", onHeap=" + used(MemoryMode.ON_HEAP) + ", offHeap="
                    + used(MemoryMode.OFF_HEAP) + ", peak=" + peak() + ", spills=" + spills() + ", waits=" + waits() + ")";
        }
    }
}
