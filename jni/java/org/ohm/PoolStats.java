package org.ohm;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** A snapshot of a pool's statistics (ohm_pool_stats): exact once threads are quiet. */
public final class PoolStats {
    /** One size class. */
    public static final class SizeClass {
        private final long size, allocs, frees, cacheHits, activeBlocks, activeBytes;

        SizeClass(long[] v, int at) {
            size = v[at];
            allocs = v[at + 1];
            frees = v[at + 2];
            cacheHits = v[at + 3];
            activeBlocks = v[at + 4];
            activeBytes = v[at + 5];
        }

        /** {@return the class's block size in bytes} */
        public long size() { return size; }
        /** {@return allocations of this class since the pool was created} */
        public long allocations() { return allocs; }
        /** {@return frees of this class since the pool was created} */
        public long deallocations() { return frees; }
        /** {@return allocations served by a thread cache} */
        public long cacheHits() { return cacheHits; }
        /** {@return blocks of this class in use} */
        public long activeBlocks() { return activeBlocks; }
        /** {@return bytes in blocks of this class in use} */
        public long activeBytes() { return activeBytes; }
    }

    /** Moves parked[c] blocks of each class c out of the active figures (they are ready, not in use). */
    static void subtractParked(long[] v, long[] parked) {
        int n = (int) Math.min(v[18], parked.length);
        for (int c = 0; c < n; c++) {
            if (parked[c] == 0) continue;
            int at = 19 + 6 * c;
            long blocks = Math.min(parked[c], v[at + 4]);
            v[at + 4] -= blocks;
            v[at + 5] -= blocks * v[at];
            v[12] -= blocks;
            v[13] -= blocks * v[at];
        }
    }

    private final long[] v;
    private final List<SizeClass> classes;

    PoolStats(long[] v) {
        this.v = v;
        int n = (int) v[18];
        List<SizeClass> c = new ArrayList<>(n);
        for (int i = 0; i < n; i++) c.add(new SizeClass(v, 19 + 6 * i));
        classes = Collections.unmodifiableList(c);
    }

    /** {@return bytes in chunks and huge mappings now} */
    public long mappedBytes() { return v[0]; }
    /** {@return mapped bytes minus pages known purged: an upper bound on resident memory} */
    public long residentBytes() { return v[1]; }
    /** {@return bytes in free pages not yet given back, and in slabs kept empty for reuse} */
    public long dirtyBytes() { return v[2]; }
    /** {@return bytes of pages given back to the OS since creation} */
    public long purgedBytes() { return v[3]; }
    /** {@return chunks mapped now} */
    public long chunks() { return v[4]; }
    /** {@return chunks mapped since creation} */
    public long chunksMapped() { return v[5]; }
    /** {@return chunks unmapped since creation} */
    public long chunksUnmapped() { return v[6]; }
    /** {@return huge blocks (mapped on their own) live now} */
    public long hugeBlocks() { return v[7]; }
    /** {@return bytes in huge blocks live now} */
    public long hugeBytes() { return v[8]; }
    /** {@return allocations since creation} */
    public long allocations() { return v[9]; }
    /** {@return frees since creation} */
    public long deallocations() { return v[10]; }
    /** {@return allocations served by a thread cache} */
    public long cacheHits() { return v[11]; }
    /** {@return blocks in use} */
    public long activeBlocks() { return v[12]; }
    /** {@return bytes in blocks in use} */
    public long activeBytes() { return v[13]; }
    /** {@return allocations the OS or the cap refused} */
    public long failedAllocations() { return v[14]; }
    /** {@return writes after free found by the poison option} */
    public long poisonViolations() { return v[15]; }
    /** {@return thread caches attached now} */
    public long threads() { return v[16]; }
    /** {@return the pool's arenas} */
    public int arenas() { return (int) v[17]; }
    /** {@return each size class's figures, smallest first} */
    public List<SizeClass> sizeClasses() { return classes; }

    @Override
    public String toString() {
        return "PoolStats(mapped=" + mappedBytes() + ", resident=" + residentBytes() + ", active=" + activeBytes()
                + " in " + activeBlocks() + " blocks, allocations=" + allocations() + ", cacheHits=" + cacheHits()
                + ", failed=" + failedAllocations() + ")";
    }
}
