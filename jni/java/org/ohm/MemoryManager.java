package org.ohm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Spark's unified memory manager, natively: per mode (ON_HEAP, OFF_HEAP), an execution pool and a storage pool
 * that borrow from each other; tasks ({@link TaskMemory}) that get between 1/(2N) and 1/N of a mode's execution
 * memory, waiting for their minimum; consumers ({@link MemoryConsumer}) that spill; and a block cache whose
 * least recently used blocks are evicted to make room, with an {@link EvictionListener}.
 *
 * <pre>{@code
 * try (MemoryManager mm = MemoryManager.builder().offHeapSize(512L << 20).build();
 *      TaskMemory task = mm.newTask(1)) {
 *     long got = task.acquire(MemoryMode.OFF_HEAP, 64 << 20);
 *     ...
 * }
 * }</pre>
 */
public final class MemoryManager implements AutoCloseable {
    final long handle;
    private final long selfRef;
    private final long evictor;
    private final long waitTimeoutMs;
    private final long pageSize;
    private volatile boolean closed;
    private final ConcurrentHashMap<String, Block> blocks = new ConcurrentHashMap<>();

    /** A cached block: the buffer holds one reference that Java took for the cache (the runtime takes its own),
     * so the runtime's release at eviction never takes a count Java believes live to 0. */
    private static final class Block {
        final OhmBuffer buffer;
        final EvictionListener listener;

        Block(OhmBuffer buffer, EvictionListener listener) {
            this.buffer = buffer;
            this.listener = listener;
        }
    }

    /** Evicted buffers whose Java reference is released after the runtime dropped its own (see drainDeferred). */
    private static final ThreadLocal<List<OhmBuffer>> DEFERRED = ThreadLocal.withInitial(ArrayList::new);
    private static final AtomicInteger DEFERRED_COUNT = new AtomicInteger();

    private MemoryManager(Builder b) {
        long[] cfg = {b.onHeap, b.offHeap, b.pageSize, b.waitTimeoutMs, Double.doubleToRawLongBits(b.storageFraction)};
        handle = Native.mmCreate(cfg, b.pool == null ? 0 : b.pool.handle);
        long ref = 0, ev = 0;
        try {
            ref = Native.newGlobal(this);
            ev = Native.evictorCreate(ref);
        } catch (RuntimeException | Error e) {
            if (ref != 0) Native.deleteGlobal(ref);
            Native.mmDestroy(handle);
            throw e;
        }
        selfRef = ref;
        evictor = ev;
        waitTimeoutMs = b.waitTimeoutMs;
        pageSize = b.pageSize;
    }

    /** {@return a new builder} */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * A task with an id of the caller's choosing (IllegalArgumentException if a live task has it). Close it when
     * the task ends: that frees its pages and reports what it leaked.
     *
     * @param taskId the task's id
     * @return the task, to close when it ends
     */
    public TaskMemory newTask(long taskId) {
        ensureOpen();
        return new TaskMemory(this, taskId, waitTimeoutMs);
    }

    /** {@return the smallest page a consumer allocates} */
    public long pageSize() {
        return pageSize;
    }

    /**
     * Caches buffer as blockId under mode's storage memory, charging its capacity; see
     * {@link #putBlock(String, String, MemoryMode, OhmBuffer, long, EvictionListener)}.
     *
     * @param blockId the block's id
     * @param group the block's group (null: none); blocks of its own group are never evicted for it
     * @param mode the storage memory to charge
     * @param buffer the block's contents
     * @param listener told when the block is evicted (null: nobody)
     * @return false if the block does not fit (nothing cached, nothing evicted)
     */
    public boolean putBlock(String blockId, String group, MemoryMode mode, OhmBuffer buffer, EvictionListener listener) {
        return putBlock(blockId, group, mode, buffer, buffer.capacity(), listener);
    }

    /**
     * Caches buffer as blockId in group (null: none) under mode's storage memory, charging size bytes. The cache
     * holds references on the buffer until the block is evicted or removed; the caller keeps its own. Least
     * recently used blocks of the same mode and another group are evicted if needed, all or nothing (listener
     * told for each).
     *
     * @param blockId the block's id
     * @param group the block's group (null: none); blocks of its own group are never evicted for it
     * @param mode the storage memory to charge
     * @param buffer the block's contents
     * @param size the bytes to charge
     * @param listener told when the block is evicted (null: nobody)
     * @return false if the block does not fit (nothing cached, nothing evicted)
     * @throws IllegalArgumentException if blockId is cached already
     */
    public boolean putBlock(String blockId, String group, MemoryMode mode, OhmBuffer buffer, long size,
                            EvictionListener listener) {
        Objects.requireNonNull(buffer, "buffer");
        return put(blockId, group, mode, buffer, size, listener);
    }

    /**
     * Caches a block that the caller keeps itself (accounting only), charging size bytes.
     *
     * @param blockId the block's id
     * @param group the block's group (null: none); blocks of its own group are never evicted for it
     * @param mode the storage memory to charge
     * @param size the bytes to charge
     * @param listener told when the block is evicted (null: nobody)
     * @return false if the block does not fit (nothing cached, nothing evicted)
     */
    public boolean putBlock(String blockId, String group, MemoryMode mode, long size, EvictionListener listener) {
        return put(blockId, group, mode, null, size, listener);
    }

    private boolean put(String blockId, String group, MemoryMode mode, OhmBuffer buffer, long size,
                        EvictionListener listener) {
        Objects.requireNonNull(blockId, "blockId");
        Objects.requireNonNull(mode, "mode");
        ensureOpen();
        if (buffer != null) buffer.retain();
        Block b = new Block(buffer, listener);
        if (blocks.putIfAbsent(blockId, b) != null) {
            if (buffer != null) buffer.release();
            throw new IllegalArgumentException("block '" + blockId + "' is cached already");
        }
        int rc = Native.blockPut(handle, Native.cstr(blockId), Native.cstr(group), mode.ordinal(),
                buffer == null ? 0 : buffer.nativeHandle(), buffer == null ? 0 : buffer.nativeId(), size, evictor);
        if (rc == 0) {
            drainDeferred();
            return true;
        }
        Throwable e = rc == Native.ELIMIT ? null : Native.error(rc);
        blocks.remove(blockId, b);
        if (buffer != null) buffer.release();
        drainDeferred();
        if (e == null) return false;
        throw Native.rethrow(e);
    }

    /**
     * Pins a block for reading and marks it most recently used: it cannot be evicted or removed until the
     * returned PinnedBlock is closed.
     *
     * @param blockId the block's id
     * @return the pin, to close when done reading
     * @throws IllegalArgumentException if the block is not cached
     * @throws IllegalStateException while it is being evicted
     */
    public PinnedBlock pinBlock(String blockId) {
        Native.blockPin(handle, openKey(blockId));
        Block b = blocks.get(blockId);
        return new PinnedBlock(this, blockId, b == null ? null : b.buffer);
    }

    /** blockId as the block natives take it, checked not null, with the manager checked open. */
    private byte[] openKey(String blockId) {
        Objects.requireNonNull(blockId, "blockId");
        ensureOpen();
        return Native.cstr(blockId);
    }

    void unpin(String blockId) {
        if (!closed) Native.blockUnpin(handle, Native.cstr(blockId));
    }

    /**
     * Whether blockId is cached now.
     *
     * @param blockId the block's id
     * @return whether it is cached
     */
    public boolean containsBlock(String blockId) {
        return blocks.containsKey(blockId);
    }

    /**
     * Removes a block without telling its listener and drops the cache's references.
     *
     * @param blockId the block's id
     * @throws IllegalArgumentException if it is not cached
     * @throws IllegalStateException while it is pinned or being evicted
     */
    public void removeBlock(String blockId) {
        Native.blockRemove(handle, openKey(blockId));
        Block b = blocks.remove(blockId);
        if (b != null && b.buffer != null && b.buffer.isAccessible()) b.buffer.release();
    }

    /** Called by the runtime (the eviction listener) on the evicting thread. */
    void evictBlock(String blockId) throws Exception {
        Block b = blocks.get(blockId);
        if (b == null) return;
        if (b.listener != null) b.listener.evicted(blockId, b.buffer); // throwing keeps the block
        blocks.remove(blockId, b);
        if (b.buffer != null) {
            DEFERRED.get().add(b.buffer);
            DEFERRED_COUNT.incrementAndGet();
        }
    }

    /**
     * Releases Java's reference on buffers evicted by the native call that just returned on this thread: only
     * now has the runtime dropped its own, so a count that reaches 0 does it through Java, which marks it.
     */
    static void drainDeferred() {
        if (DEFERRED_COUNT.get() == 0) return;
        List<OhmBuffer> d = DEFERRED.get();
        if (d.isEmpty()) return;
        for (OhmBuffer b : d) {
            DEFERRED_COUNT.decrementAndGet();
            if (b.isAccessible()) b.release();
        }
        d.clear();
    }

    /** {@return a snapshot of the manager's pools, tasks and cache} */
    public Stats stats() {
        ensureOpen();
        return new Stats(Native.mmStats(handle));
    }

    /** {@return the whole manager as one JSON object (modes, tasks with their consumers, block counts)} */
    public String snapshotJson() {
        ensureOpen();
        return Native.mmSnapshot(handle);
    }

    /**
     * Spark's on-heap sizing: (heap - 300 MiB) * fraction; IllegalArgumentException with Spark's message for a
     * heap under 450 MiB. {@code fraction <= 0} means 0.6.
     *
     * @param heapBytes the JVM's heap size in bytes
     * @param fraction the fraction of what is left after 300 MiB
     * @return the ON_HEAP size in bytes
     */
    public static long onHeapSizeFromHeap(long heapBytes, double fraction) {
        return Native.mmOnHeapFromHeap(heapBytes, fraction);
    }

    void ensureOpen() {
        if (closed) throw new IllegalStateException("memory manager is closed");
    }

    /**
     * Drops every cached block (without telling listeners) and frees the manager.
     *
     * @throws IllegalStateException while tasks are open or pages of ended tasks are still referenced
     */
    @Override
    public synchronized void close() {
        if (closed) return;
        Native.mmDestroy(handle);
        closed = true;
        for (Block b : blocks.values())
            if (b.buffer != null && b.buffer.isAccessible()) b.buffer.release();
        blocks.clear();
        Native.evictorDestroy(evictor);
        Native.deleteGlobal(selfRef);
    }

    /** Configuration of a manager; defaults from the runtime (OHM_MM_* environment variables). */
    public static final class Builder {
        private long onHeap, offHeap, pageSize, waitTimeoutMs;
        private double storageFraction;
        private OhmPool pool;

        private Builder() {
            long[] d = Native.mmConfigDefaults();
            onHeap = d[0];
            offHeap = d[1];
            pageSize = d[2];
            waitTimeoutMs = d[3];
            storageFraction = Double.longBitsToDouble(d[4]);
        }

        /**
         * Bytes of ON_HEAP memory (accounting only).
         *
         * @param bytes the size
         * @return this builder
         */
        public Builder onHeapSize(long bytes) {
            onHeap = bytes;
            return this;
        }

        /**
         * ON_HEAP sized as Spark sizes a JVM: (heap - 300 MiB) * fraction ({@code fraction <= 0}: 0.6).
         *
         * @param heapBytes the JVM's heap size in bytes
         * @param fraction the fraction of what is left after 300 MiB
         * @return this builder
         */
        public Builder onHeapFromHeap(long heapBytes, double fraction) {
            onHeap = onHeapSizeFromHeap(heapBytes, fraction);
            return this;
        }

        /**
         * Bytes of OFF_HEAP memory.
         *
         * @param bytes the size
         * @return this builder
         */
        public Builder offHeapSize(long bytes) {
            offHeap = bytes;
            return this;
        }

        /**
         * The storage region as a fraction of each mode's memory, in [0, 1] (default 0.5).
         *
         * @param fraction the fraction
         * @return this builder
         */
        public Builder storageFraction(double fraction) {
            storageFraction = fraction;
            return this;
        }

        /**
         * The smallest page a consumer allocates (default 1 MiB).
         *
         * @param bytes the size
         * @return this builder
         */
        public Builder pageSize(long bytes) {
            pageSize = bytes;
            return this;
        }

        /**
         * How long an acquire waits for its fair share before OhmTimeoutException (null: no limit).
         *
         * @param timeout the longest wait, or null
         * @return this builder
         */
        public Builder waitTimeout(Duration timeout) {
            waitTimeoutMs = timeout == null ? -1 : Math.max(0, timeout.toMillis());
            return this;
        }

        /**
         * The pool OFF_HEAP pages come from (default: the runtime's default pool).
         *
         * @param pool the pool
         * @return this builder
         */
        public Builder pool(OhmPool pool) {
            this.pool = pool;
            return this;
        }

        /** {@return a new manager, to close when done} */
        public MemoryManager build() {
            return new MemoryManager(this);
        }
    }

    /** A snapshot of a manager. */
    public static final class Stats {
        private final long[] v;

        Stats(long[] v) {
            this.v = v;
        }

        private long m(MemoryMode mode, int i) {
            return v[7 * mode.ordinal() + i];
        }

        // Each mode's figures, in bytes but tasks(mode).

        /** @param mode the mode
         * @return the mode's memory, execution and storage together */
        public long maxBytes(MemoryMode mode) { return m(mode, 0); }
        /** @param mode the mode
         * @return the storage region: storage memory execution cannot evict */
        public long storageRegion(MemoryMode mode) { return m(mode, 1); }
        /** @param mode the mode
         * @return the execution pool's size now (it grows and shrinks against storage) */
        public long executionPoolSize(MemoryMode mode) { return m(mode, 2); }
        /** @param mode the mode
         * @return execution memory held by tasks */
        public long executionUsed(MemoryMode mode) { return m(mode, 3); }
        /** @param mode the mode
         * @return the storage pool's size now */
        public long storagePoolSize(MemoryMode mode) { return m(mode, 4); }
        /** @param mode the mode
         * @return storage used, unroll memory included */
        public long storageUsed(MemoryMode mode) { return m(mode, 5); }
        /** @param mode the mode
         * @return the tasks in this mode's fair share */
        public long tasks(MemoryMode mode) { return m(mode, 6); }
        /** {@return the live tasks} */
        public long tasks() { return v[14]; }
        /** {@return the blocks cached now} */
        public long blocks() { return v[15]; }
        /** {@return the bytes charged for the blocks cached now} */
        public long blockBytes() { return v[16]; }
        /** {@return how many blocks were evicted since creation} */
        public long evictions() { return v[17]; }
        /** {@return the bytes of the blocks evicted since creation} */
        public long evictedBytes() { return v[18]; }
        /** {@return the live page buffers} */
        public long pages() { return v[19]; }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("MemoryManager.Stats(");
            for (MemoryMode mode : MemoryMode.values())
                sb.append(mode).append(": max=").append(maxBytes(mode)).append(" execution=")
                        .append(executionUsed(mode)).append('/').append(executionPoolSize(mode)).append(" storage=")
                        .append(storageUsed(mode)).append('/').append(storagePoolSize(mode)).append("; ");
            return sb.append("tasks=").append(tasks()).append(", blocks=").append(blocks()).append(')').toString();
        }
    }
}
