package org.ohm;

import java.util.Locale;
import java.util.Objects;

/**
 * The configuration of an {@link OhmPool} (ohm_pool_config). Defaults come from the runtime (its built-in values
 * and the OHM_* environment variables), then from these system properties, then from the builder:
 *
 * <table>
 * <caption>System properties</caption>
 * <tr><th>property</th><th>field</th><th>runtime default</th></tr>
 * <tr><td>ohm.chunkSize</td><td>chunk size, a power of two in [1 MiB, 64 MiB]</td><td>4m (OHM_CHUNK_SIZE)</td></tr>
 * <tr><td>ohm.arenas</td><td>arenas, 0 = 2 x cores</td><td>0 (OHM_ARENAS)</td></tr>
 * <tr><td>ohm.cacheMaxSize</td><td>largest size class kept in thread caches</td><td>256k (OHM_CACHE_MAX)</td></tr>
 * <tr><td>ohm.cacheSlots</td><td>thread cache slots per small class</td><td>64 (OHM_CACHE_SLOTS)</td></tr>
 * <tr><td>ohm.purgeDelayMs</td><td>free pages older than this go back to the OS; -1 = only on trim</td><td>2000</td></tr>
 * <tr><td>ohm.dirtyRatio</td><td>purge early while dirty pages exceed active/ratio; 0 = off</td><td>8</td></tr>
 * <tr><td>ohm.backgroundPurge</td><td>a background thread purges idle pools</td><td>true</td></tr>
 * <tr><td>ohm.maxMapped</td><td>hard cap on mapped bytes, 0 = none</td><td>0</td></tr>
 * <tr><td>ohm.hugePages</td><td>none, thp or hugetlb</td><td>none</td></tr>
 * <tr><td>ohm.lockMemory</td><td>mlock every chunk</td><td>false</td></tr>
 * <tr><td>ohm.mergeable</td><td>madvise(MADV_MERGEABLE)</td><td>false</td></tr>
 * <tr><td>ohm.zero</td><td>every allocation is zeroed</td><td>false</td></tr>
 * <tr><td>ohm.poison</td><td>debug: find writes after release</td><td>false</td></tr>
 * </table>
 * Sizes take a k, m or g suffix (binary units). A malformed property is logged and ignored.
 */
public final class PoolConfig {
    /** Huge pages for a pool's chunks. */
    public enum HugePages {
        /** Normal pages. */
        NONE,
        /** Transparent huge pages (madvise(MADV_HUGEPAGE)). */
        THP,
        /** Explicit huge pages (MAP_HUGETLB), from the kernel's reserved pool. */
        HUGETLB
    }

    /** The ohm.* pool properties, in the order of the native long[]: the order of OHM_POOL_OPTIONS (ohm.h), the
     * field names in camel case (tests/c/test_pool_options.c checks both). */
    static final String[] PROPERTIES = {"ohm.chunkSize", "ohm.arenas", "ohm.cacheMaxSize", "ohm.cacheSlots",
            "ohm.purgeDelayMs", "ohm.dirtyRatio", "ohm.backgroundPurge", "ohm.maxMapped", "ohm.hugePages",
            "ohm.lockMemory", "ohm.mergeable", "ohm.zero", "ohm.poison"};
    private static final int CHUNK = 0, ARENAS = 1, CACHE_MAX = 2, CACHE_SLOTS = 3, PURGE_DELAY = 4, DIRTY = 5,
            BG_PURGE = 6, MAX_MAPPED = 7, HUGE = 8, MLOCK = 9, MERGEABLE = 10, ZERO = 11, POISON = 12;

    private final String name;
    private final long[] v;

    private PoolConfig(String name, long[] v) {
        this.name = name;
        this.v = v;
    }

    /** {@return the runtime's defaults with the ohm.* system properties applied} */
    public static PoolConfig defaults() {
        long[] v = Native.poolConfigDefaults();
        for (int i = 0; i < PROPERTIES.length; i++) {
            String p = System.getProperty(PROPERTIES[i]);
            if (p == null || p.isEmpty()) continue;
            try {
                v[i] = parse(i, p.trim());
            } catch (IllegalArgumentException e) {
                NativeLog.warn("ignoring " + PROPERTIES[i] + "=" + p + ": " + e.getMessage());
            }
        }
        return new PoolConfig("pool", v);
    }

    /** Whether any ohm.* pool property is set (then the Java default pool is a pool of its own). */
    static boolean propertiesSet() {
        for (String p : PROPERTIES) if (System.getProperty(p) != null) return true;
        return false;
    }

    private static long parse(int field, String s) {
        switch (field) {
            case BG_PURGE: case MLOCK: case MERGEABLE: case ZERO: case POISON:
                if (s.equalsIgnoreCase("true") || s.equals("1")) return 1;
                if (s.equalsIgnoreCase("false") || s.equals("0")) return 0;
                throw new IllegalArgumentException("expected true or false");
            case HUGE:
                return HugePages.valueOf(s.toUpperCase(Locale.ROOT)).ordinal();
            default:
                return parseSize(s);
        }
    }

    /** "4m", "256k", "1g", "4096" (binary units). */
    static long parseSize(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        long mult = 1;
        if (t.endsWith("b")) t = t.substring(0, t.length() - 1);
        if (t.endsWith("k")) mult = 1L << 10;
        else if (t.endsWith("m")) mult = 1L << 20;
        else if (t.endsWith("g")) mult = 1L << 30;
        if (mult != 1) t = t.substring(0, t.length() - 1);
        long n = Long.parseLong(t.trim());
        return Math.multiplyExact(n, mult);
    }

    /** {@return a builder starting from {@link #defaults()}} */
    public static Builder builder() {
        return defaults().toBuilder();
    }

    /** {@return a builder starting from this configuration} */
    public Builder toBuilder() {
        return new Builder(name, v.clone());
    }

    /** {@return the pool's name, for stats and leak reports} */
    public String name() { return name; }
    /** {@return the chunk size in bytes} */
    public long chunkSize() { return v[CHUNK]; }
    /** {@return the number of arenas (0: twice the cores)} */
    public int arenas() { return (int) v[ARENAS]; }
    /** {@return the largest size class kept in thread caches, in bytes} */
    public long cacheMaxSize() { return v[CACHE_MAX]; }
    /** {@return thread cache slots per small class} */
    public int cacheSlots() { return (int) v[CACHE_SLOTS]; }
    /** {@return the age in milliseconds at which free pages go back to the OS (-1: only on {@link OhmPool#trim()})} */
    public long purgeDelayMs() { return v[PURGE_DELAY]; }
    /** {@return the ratio: purge early while dirty pages exceed active/ratio (0: off)} */
    public int dirtyRatio() { return (int) v[DIRTY]; }
    /** {@return whether a background thread purges idle pools} */
    public boolean backgroundPurge() { return v[BG_PURGE] != 0; }
    /** {@return the hard cap on mapped bytes (0: none)} */
    public long maxMapped() { return v[MAX_MAPPED]; }
    /** {@return the huge pages used for chunks} */
    public HugePages hugePages() { return HugePages.values()[(int) v[HUGE]]; }
    /** {@return whether every chunk is locked in memory (mlock)} */
    public boolean lockMemory() { return v[MLOCK] != 0; }
    /** {@return whether chunks are marked mergeable (madvise(MADV_MERGEABLE))} */
    public boolean mergeable() { return v[MERGEABLE] != 0; }
    /** {@return whether every allocation is zeroed} */
    public boolean zero() { return v[ZERO] != 0; }
    /** {@return whether freed memory is poisoned (debug: finds writes after release)} */
    public boolean poison() { return v[POISON] != 0; }

    long[] values() {
        return v.clone();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("PoolConfig(name=").append(name);
        for (int i = 0; i < PROPERTIES.length; i++)
            sb.append(", ").append(PROPERTIES[i].substring(4)).append('=').append(i == HUGE ? hugePages() : v[i]);
        return sb.append(')').toString();
    }

    /** Builds a PoolConfig; values are checked by {@link OhmPool#create} (the runtime's rules). */
    public static final class Builder {
        private String name;
        private final long[] v;

        private Builder(String name, long[] v) {
            this.name = name;
            this.v = v;
        }

        // The values' meanings, ranges and defaults: the class comment's table.

        /** @param name for stats and leak reports
         * @return this builder */
        public Builder name(String name) { this.name = Objects.requireNonNull(name, "name"); return this; }
        /** @param bytes the chunk size, a power of two in [1 MiB, 64 MiB]
         * @return this builder */
        public Builder chunkSize(long bytes) { v[CHUNK] = bytes; return this; }
        /** @param arenas the number of arenas (0: twice the cores)
         * @return this builder */
        public Builder arenas(int arenas) { v[ARENAS] = arenas; return this; }
        /** @param bytes the largest size class kept in thread caches
         * @return this builder */
        public Builder cacheMaxSize(long bytes) { v[CACHE_MAX] = bytes; return this; }
        /** @param slots thread cache slots per small class
         * @return this builder */
        public Builder cacheSlots(int slots) { v[CACHE_SLOTS] = slots; return this; }
        /** @param ms the age at which free pages go back to the OS (-1: only on trim)
         * @return this builder */
        public Builder purgeDelayMs(long ms) { v[PURGE_DELAY] = ms; return this; }
        /** @param ratio purge early while dirty pages exceed active/ratio (0: off)
         * @return this builder */
        public Builder dirtyRatio(int ratio) { v[DIRTY] = ratio; return this; }
        /** @param on whether a background thread purges idle pools
         * @return this builder */
        public Builder backgroundPurge(boolean on) { v[BG_PURGE] = on ? 1 : 0; return this; }
        /** @param bytes a hard cap on mapped bytes (0: none), beyond which allocations throw OhmOutOfMemoryError
         * @return this builder */
        public Builder maxMapped(long bytes) { v[MAX_MAPPED] = bytes; return this; }
        /** @param mode the huge pages for chunks
         * @return this builder */
        public Builder hugePages(HugePages mode) { v[HUGE] = Objects.requireNonNull(mode).ordinal(); return this; }
        /** @param on whether to mlock every chunk
         * @return this builder */
        public Builder lockMemory(boolean on) { v[MLOCK] = on ? 1 : 0; return this; }
        /** @param on whether to mark chunks madvise(MADV_MERGEABLE)
         * @return this builder */
        public Builder mergeable(boolean on) { v[MERGEABLE] = on ? 1 : 0; return this; }
        /** @param on whether every allocation is zeroed
         * @return this builder */
        public Builder zero(boolean on) { v[ZERO] = on ? 1 : 0; return this; }
        /** @param on whether freed memory is poisoned (debug: finds writes after release)
         * @return this builder */
        public Builder poison(boolean on) { v[POISON] = on ? 1 : 0; return this; }

        /** {@return the configuration, for {@link OhmPool#create}} */
        public PoolConfig buildConfig() {
            return new PoolConfig(name, v.clone());
        }

        /** {@return a new pool: {@code OhmPool.create(buildConfig())}} */
        public OhmPool build() {
            return OhmPool.create(buildConfig());
        }
    }
}
