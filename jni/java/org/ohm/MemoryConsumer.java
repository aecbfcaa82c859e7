package org.ohm;

import java.io.IOException;
import java.util.Objects;

/**
 * A consumer of a task's execution memory that can spill (Spark's MemoryConsumer). When an acquire of any
 * consumer of the same task and mode gets less than it asked for, the runtime asks others to spill, in Spark's
 * order: the smallest one whose usage covers what is missing, else the largest; the requester itself last.
 *
 * <pre>{@code
 * class Sorter extends MemoryConsumer {
 *     Sorter(TaskMemory task) { super(task, MemoryMode.OFF_HEAP, "sorter"); }
 *     public long spill(long size, MemoryConsumer trigger) throws IOException {
 *         long freed = writeRunsToDisk(size);   // free pages (freePage) or memory (freeMemory)
 *         return freed;
 *     }
 * }
 * }</pre>
 *
 * A consumer is closed by {@link #close()} or with its task.
 */
public abstract class MemoryConsumer implements AutoCloseable {
    /** The task this consumer belongs to. */
    protected final TaskMemory task;
    private final MemoryMode mode;
    private final String name;
    final long handle;
    final long ctx;
    private volatile boolean destroyed;

    /**
     * A consumer of the task's memory, registered with the task until closed.
     *
     * @param task the task whose memory this consumer uses
     * @param mode ON_HEAP or OFF_HEAP accounting
     * @param name the name reports and errors use (null: the class's simple name)
     */
    protected MemoryConsumer(TaskMemory task, MemoryMode mode, String name) {
        this.task = Objects.requireNonNull(task, "task");
        this.mode = Objects.requireNonNull(mode, "mode");
        this.name = name == null ? getClass().getSimpleName() : name;
        task.ensureOpen();
        long ref = Native.newGlobal(this);
        long h;
        try {
            h = Native.consumerCreate(task.handle, mode.ordinal(), Native.cstr(this.name), ref);
        } catch (RuntimeException | Error e) {
            Native.deleteGlobal(ref);
            throw e;
        }
        ctx = ref;
        handle = h;
        task.addConsumer(this);
    }

    /**
     * A consumer named after its class.
     *
     * @param task the task whose memory this consumer uses
     * @param mode ON_HEAP or OFF_HEAP accounting
     */
    protected MemoryConsumer(TaskMemory task, MemoryMode mode) {
        this(task, mode, null);
    }

    /**
     * Called by the runtime, on the thread of the acquire that needs memory, to free about size bytes: release
     * them with {@link #freeMemory} or by freeing pages, and return how many were released (0 if none). trigger
     * is the consumer whose acquire asked (possibly this one). Runs without the manager's lock: it may acquire
     * and release. An exception fails that acquire (a checked one wrapped in {@link OhmCallbackException}, an
     * unchecked one as it is) and leaves the accounting exact; a negative result fails it too.
     *
     * <p>The runtime measures what this consumer released during the call and trusts that, not the result: a
     * result above it fails the acquire with {@link OhmCallbackException} ("spill of consumer X reported N bytes
     * but released M"); a smaller one (0 included) is credited what was released. The consumer is asked again in
     * the same acquire only while each spill lowers its usage further and the requester is granted some of it; one
     * that released nothing, took it back, or whose release cannot reach the requester (the task is above its fair
     * share) is not. If the thread is interrupted when the spill returns, or
     * {@link TaskMemory#cancelWait()} was called meanwhile, the acquire throws {@link OhmInterruptedException}.
     *
     * @param size how many bytes the runtime asks for
     * @param trigger the consumer whose acquire needs the memory
     * @return how many bytes this call released
     * @throws IOException when the spill fails (the acquire then fails with {@link OhmCallbackException})
     */
    public abstract long spill(long size, MemoryConsumer trigger) throws IOException;

    /**
     * Acquires up to size bytes of execution memory, asking other consumers to spill if needed; returns the bytes
     * granted (possibly fewer).
     *
     * @param size how many bytes are wanted
     * @return the bytes granted
     */
    public final long acquireMemory(long size) {
        ensureOpen();
        return task.waitFor(handle, 0, size, false);
    }

    /**
     * Releases size bytes (clamped to what this consumer holds).
     *
     * @param size how many bytes to give back
     */
    public final void freeMemory(long size) {
        ensureOpen();
        Native.consumerRelease(handle, size);
    }

    /**
     * A page: an OFF_HEAP buffer of at least required bytes (the manager's page size at least) charged to this
     * consumer, spilling as {@link #acquireMemory}. Its release (or {@link #freePage}) frees it and the
     * accounting.
     *
     * @param required the smallest size wanted, in bytes
     * @return the page, with a count of 1
     * @throws OhmOutOfMemoryError "Unable to acquire X bytes of memory, got Y" when fewer bytes were granted
     * @throws IllegalArgumentException for an ON_HEAP consumer
     */
    public final OhmBuffer allocatePage(long required) {
        ensureOpen();
        long h = task.waitFor(handle, 0, required, true);
        return task.pageOf(h, SafetyNet.local());
    }

    /**
     * Releases a page of this consumer.
     *
     * @param page a page from {@link #allocatePage}
     */
    public final void freePage(OhmBuffer page) {
        page.release();
    }

    /** {@return bytes this consumer holds now} */
    public final long getUsed() {
        return destroyed ? 0 : Native.consumerUsed(handle);
    }

    /** {@return ON_HEAP or OFF_HEAP, as given at creation} */
    public final MemoryMode getMode() {
        return mode;
    }

    /** {@return the consumer's name} */
    public final String name() {
        return name;
    }

    /** {@return the task this consumer belongs to} */
    public final TaskMemory task() {
        return task;
    }

    /** {@return a snapshot: used, peak, spills, spilled bytes, live pages} */
    public final Stats stats() {
        ensureOpen();
        return new Stats(Native.consumerStats(handle));
    }

    private void ensureOpen() {
        if (destroyed) throw new IllegalStateException("consumer '" + name + "' is closed");
        task.ensureOpen();
    }

    void markDestroyed() {
        destroyed = true;
    }

    /**
     * Releases what the consumer holds and removes it from its task.
     *
     * @throws IllegalStateException while pages of it are live
     */
    @Override
    public void close() {
        synchronized (task) {
            if (destroyed || task.isClosed()) return;
            int rc = Native.consumerDestroy(handle);
            if (rc != 0) Native.raise(rc);
            destroyed = true;
            task.removeConsumer(this);
        }
        Native.deleteGlobal(ctx);
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(" + name + ", " + mode + ")";
    }

    /** A snapshot of a consumer. */
    public static final class Stats {
        private final long[] v;

        Stats(long[] v) {
            this.v = v;
        }

        /** {@return the bytes held} */
        public long used() { return v[0]; }
        /** {@return the most bytes held at once} */
        public long peak() { return v[1]; }
        /** {@return how many spills released memory} */
        public long spills() { return v[2]; }
        /** {@return the bytes released by spills} */
        public long spillBytes() { return v[3]; }
        /** {@return the pages live now} */
        public long pages() { return v[4]; }
    }
}
