package org.ohm.netty;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocatorMetric;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import io.netty.buffer.UnpooledHeapByteBuf;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;
import org.ohm.LeakDetector;
import org.ohm.Ohm;
import org.ohm.OhmPool;
import org.ohm.stress.Context;

/**
 * Netty's {@code ByteBufAllocator} on ohm: direct buffers are {@link org.ohm.OhmBuffer}s of an {@link OhmPool}
 * (wrapped in {@link OhmDirectByteBuf}, Netty's reference-counting rules), heap buffers are Netty's unpooled
 * heap buffers. The switch for a Netty application is one line:
 *
 * <pre>{@code bootstrap.childOption(ChannelOption.ALLOCATOR, OhmByteBufAllocator.DEFAULT);}</pre>
 *
 * <p>Leaks go through ohm's {@link LeakDetector}, not Netty's ResourceLeakDetector: the ohm buffer inside each
 * direct buffer is tracked (sampled) by ohm, and a Netty buffer that becomes unreachable unreleased is reported
 * with its Java allocation site. {@code -Dohm.leak.level} (or the runtime's OHM_LEAK_LEVEL) sets the level; when
 * neither is set, Netty's {@code -Dio.netty.leakDetection.level} (or the older {@code io.netty.leakDetectionLevel}) and
 * {@code -Dio.netty.leakDetection.samplingInterval} are applied to ohm's detector when this class loads.
 */
public final class OhmByteBufAllocator extends AbstractByteBufAllocator implements ByteBufAllocatorMetricProvider {
    static {
        applyNettyLeakProperties();
        // ohm-stress's Context.keep takes this allocator's buffers too (ohm.jar cannot name Netty's types).
        Context.registerBufferType(ByteBuf.class, OhmDirectByteBuf::memoryOf);
    }

    /** Direct buffers by default (when Netty can use sun.misc.Unsafe, as Netty's own allocators decide), from
     * ohm's default pool. */
    public static final OhmByteBufAllocator DEFAULT = new OhmByteBufAllocator(true);

    final OhmPool pool;
    /** Bytes of live heap buffers: the JVM's heap has no per-allocator statistics of its own. */
    final LongAdder heapUsed = new LongAdder();
    private final Metric metric = new Metric();

    /** Heap buffers by default, direct ones from ohm's default pool. */
    public OhmByteBufAllocator() {
        this(false);
    }

    /**
     * Buffers from ohm's default pool.
     *
     * @param preferDirect whether {@code buffer()} gives direct buffers (else heap ones)
     */
    public OhmByteBufAllocator(boolean preferDirect) {
        this(Ohm.defaultPool(), preferDirect);
    }

    /**
     * Direct buffers from pool (closing the pool releases every buffer still live and reports them as leaks).
     *
     * @param pool where direct buffers come from
     * @param preferDirect whether {@code buffer()} gives direct buffers (else heap ones)
     */
    public OhmByteBufAllocator(OhmPool pool, boolean preferDirect) {
        super(preferDirect);
        this.pool = Objects.requireNonNull(pool, "pool");
    }

    /** {@return the pool direct buffers come from} */
    public OhmPool pool() {
        return pool;
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        return new OhmDirectByteBuf(this, initialCapacity, maxCapacity);
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return new HeapByteBuf(this, initialCapacity, maxCapacity);
    }

    @Override
    public boolean isDirectBufferPooled() {
        return true;
    }

    @Override
    public ByteBufAllocatorMetric metric() {
        return metric;
    }

    @Override
    public String toString() {
        return "OhmByteBufAllocator(pool: " + pool.name() + ")";
    }

    /** Used direct memory is what ohm's pool reports in use (its blocks at their size-class size, the whole pool
     * when several allocators or other users share it); used heap memory is the capacity of live heap buffers. */
    private final class Metric implements ByteBufAllocatorMetric {
        @Override
        public long usedHeapMemory() {
            return heapUsed.sum();
        }

        @Override
        public long usedDirectMemory() {
            return pool.isClosed() ? 0 : pool.stats().activeBytes();
        }

        @Override
        public String toString() {
            return "OhmByteBufAllocatorMetric(usedHeapMemory: " + usedHeapMemory() + "; usedDirectMemory: "
                    + usedDirectMemory() + ')';
        }
    }

    /** Netty's unpooled heap buffer, counted in the allocator's metric. */
    private static final class HeapByteBuf extends UnpooledHeapByteBuf {
        HeapByteBuf(OhmByteBufAllocator alloc, int initialCapacity, int maxCapacity) {
            super(alloc, initialCapacity, maxCapacity);
        }

        @Override
        protected byte[] allocateArray(int initialCapacity) {
            byte[] a = super.allocateArray(initialCapacity);
            ((OhmByteBufAllocator) alloc()).heapUsed.add(a.length);
            return a;
        }

        @Override
        protected void freeArray(byte[] array) {
            int n = array.length;
            super.freeArray(array);
            ((OhmByteBufAllocator) alloc()).heapUsed.add(-n);
        }
    }

    // ---- Netty's leak-detection properties, for ohm's detector

    /** When ohm's own settings (its system properties, the runtime's environment) are not there, Netty's are
     * applied to ohm's detector (Netty's names: disabled, simple, advanced, paranoid), so that a Netty
     * application's habits keep working. */
    static void applyNettyLeakProperties() {
        if (unset("ohm.leak.level", "OHM_LEAK_LEVEL")) {
            String v = property("io.netty.leakDetection.level");
            if (v == null) v = property("io.netty.leakDetectionLevel");
            LeakDetector.Level level = nettyLevel(v);
            if (level != null) LeakDetector.setLevel(level);
        }
        if (unset("ohm.leak.sampleInterval", "OHM_LEAK_SAMPLE")) {
            String v = property("io.netty.leakDetection.samplingInterval");
            if (v != null) {
                try {
                    LeakDetector.setSampleInterval(Integer.parseInt(v));
                } catch (IllegalArgumentException ignored) {
                    // Netty ignores a bad interval too (it keeps its default)
                }
            }
        }
    }

    static LeakDetector.Level nettyLevel(String v) {
        if (v == null) return null;
        switch (v.toLowerCase(Locale.ROOT)) {
        case "disabled":
        case "off":
            return LeakDetector.Level.OFF;
        case "simple":
            return LeakDetector.Level.SIMPLE;
        case "advanced":
            return LeakDetector.Level.ADVANCED;
        case "paranoid":
            return LeakDetector.Level.PARANOID;
        default:
            return null;
        }
    }

    /** Neither ohm's system property nor the runtime's environment variable is set. */
    private static boolean unset(String property, String env) {
        String e = System.getenv(env);
        return property(property) == null && (e == null || e.trim().isEmpty());
    }

    private static String property(String name) {
        String v = System.getProperty(name);
        return v == null || v.trim().isEmpty() ? null : v.trim();
    }
}
