package org.ohm;

import java.util.Objects;

/**
 * A pool of off-heap memory (Netty's PooledByteBufAllocator, done natively): size classes, per-thread caches,
 * arenas, and free pages given back to the OS after a delay or on {@link #trim()}.
 *
 * <p>{@link Ohm#defaultPool()} is shared by the whole JVM and cannot be closed. A pool made with
 * {@link #create} or {@link PoolConfig#builder()} is private: {@link #close()} frees all its memory at once;
 * buffers still live then are reported as leaks and fail from then on (IllegalStateException). No other
 * thread may use a pool while it is being closed. Every other method is thread-safe.
 */
public final class OhmPool implements AutoCloseable {
    final long handle;
    private final PoolConfig config;
    private final boolean closable;
    private volatile boolean closed;

    private OhmPool(long handle, PoolConfig config, boolean closable) {
        this.handle = handle;
        this.config = config;
        this.closable = closable;
    }

    /**
     * Creates a private pool. IllegalArgumentException for a configuration the runtime refuses.
     *
     * @param config the pool's configuration
     * @return the pool, to close when done
     */
    public static OhmPool create(PoolConfig config) {
        Objects.requireNonNull(config, "config");
        long h = Native.poolCreate(Native.cstr(config.name()), config.values());
        return new OhmPool(h, config, true);
    }

    /** The JVM's default pool: the runtime's process-wide pool, or, when ohm.* pool properties are set, a pool
     * made from them (named "java"). */
    static OhmPool makeDefault() {
        if (PoolConfig.propertiesSet()) {
            PoolConfig c = PoolConfig.defaults().toBuilder().name("java").buildConfig();
            return new OhmPool(Native.poolCreate(Native.cstr(c.name()), c.values()), c, false);
        }
        return new OhmPool(Native.poolDefault(), PoolConfig.defaults(), false);
    }

    /**
     * A buffer of size bytes (0 allowed), contents unspecified.
     *
     * @param size the size in bytes
     * @return the buffer, with a count of 1
     * @throws IllegalArgumentException for a negative size
     * @throws OhmOutOfMemoryError when the OS or the pool's cap refuses the memory (or the size is too large)
     */
    public OhmBuffer allocate(long size) {
        Shell s = !closable && Magazine.ON ? Magazine.lend(size) : null;
        if (s == null) s = allocateShell(size, false);
        return new OhmBuffer(s, s.t.gen);
    }

    /**
     * A buffer of size bytes, zero-filled.
     *
     * @param size the size in bytes
     * @return the buffer, with a count of 1
     */
    public OhmBuffer allocateZeroed(long size) {
        Shell s = allocateShell(size, true);
        return new OhmBuffer(s, s.t.gen);
    }

    private Shell allocateShell(long size, boolean zeroed) {
        if (closed) throw closedError();
        return OhmBuffer.allocateShell(handle, size, zeroed, closable ? this : null);
    }

    /** Gives free memory back to the OS now (thread caches, free pages, free chunks). The default pool's buffers
     * parked in the Java magazines go back too: the calling thread's and the shared depot's now, other threads'
     * at their next magazine refill or spill. */
    public void trim() {
        if (closed) throw closedError();
        if (!closable && Magazine.ON) Magazine.flushShared(SafetyNet.local());
        Native.poolTrim(handle);
    }

    /** Returns the calling thread's cached blocks of this pool to their arenas (for the default pool, its
     * magazines' parked buffers and the depot's first, and other threads' at their next refill or spill). */
    public void flushThreadCache() {
        if (closed) throw closedError();
        if (!closable && Magazine.ON) Magazine.flushShared(SafetyNet.local());
        Native.poolFlush(handle);
    }

    /**
     * A snapshot of the whole pool's statistics. Buffers parked in the default pool's Java magazines (ready for
     * the next allocation, see {@link #trim}) are not active: the whole pool's figures leave them out.
     *
     * @return the snapshot
     */
    public PoolStats stats() {
        return stats(-1);
    }

    /**
     * One arena's statistics (0 .. arenas-1), or the whole pool's (-1).
     *
     * @param arena the arena's index, or -1 for the whole pool
     * @return the snapshot
     */
    public PoolStats stats(int arena) {
        if (closed) throw closedError();
        long[] v = Native.poolStats(handle, arena);
        if (!closable && arena < 0 && Magazine.ON) PoolStats.subtractParked(v, Magazine.parked());
        return new PoolStats(v);
    }

    /** {@return the configuration the pool was created with} */
    public PoolConfig config() {
        return config;
    }

    /** {@return the pool's name} */
    public String name() {
        return config.name();
    }

    /** {@return whether the pool is closed} */
    public boolean isClosed() {
        return closed;
    }

    /**
     * Frees every block of a private pool at once. Buffers still live are reported as leaks (reason
     * POOL_CLOSED, with their allocation sites when tracked) and fail from then on. Closing twice does nothing.
     *
     * @throws IllegalStateException for the default pool
     */
    @Override
    public synchronized void close() {
        if (!closable) throw new IllegalStateException("the default pool cannot be closed");
        if (closed) return;
        LeakDetector.attachSites(t -> t.scope == this);
        Native.poolDestroy(handle);
        closed = true;
        SafetyNet.forEach(t -> {
            if (t.scope == this) {
                if (t.countOwner) t.died();
                else SafetyNet.remove(t);
            }
        });
    }

    private IllegalStateException closedError() {
        return new IllegalStateException("pool '" + name() + "' is closed");
    }

    @Override
    public String toString() {
        return "OhmPool(" + name() + (closed ? ", closed)" : ")");
    }
}
