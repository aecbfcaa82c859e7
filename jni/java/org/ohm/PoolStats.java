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

        public long size() { return size; }
        public long allocations() { return allocs; }
        public long deallocations() { return frees; }
        public long cacheHits() { return cacheHits; }
        public long activeBlocks() { return activeBlocks; }
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

    /** Chunks and huge mappings now. */
    public long mappedBytes() { return v[0]; }
    /** Mapped minus pages known purged: an upper bound on resident memory. */
    public long residentBytes() { return v[1]; }
    /** Free pages not yet given back. */
    public long dirtyBytes() { return v[2]; }
    /** Pages given back to the OS since creation. */
    public long purgedBytes() { return v[3]; }
    public long chunks() { return v[4]; }
    public long chunksMapped() { return v[5]; }
    public long chunksUnmapped() { return v[6]; }
    public long hugeBlocks() { return v[7]; }
    public long hugeBytes() { return v[8]; }
    public long allocations() { return v[9]; }
    public long deallocations() { return v[10]; }
    public long cacheHits() { return v[11]; }
    public long activeBlocks() { return v[12]; }
    public long activeBytes() { return v[13]; }
    /** Allocations the OS or the cap refused. */
    public long failedAllocations() { return v[14]; }
    public long poisonViolations() { return v[15]; }
    public long threads() { return v[16]; }
    public int arenas() { return (int) v[17]; }
    public List<SizeClass> sizeClasses() { return classes; }

    @Override
    public String toString() {
        return "PoolStats(mapped=" + mappedBytes() + ", resident=" + residentBytes() + ", active=" + activeBytes()
                + " in " + activeBlocks() + " blocks, allocations=" + allocations() + ", cacheHits=" + cacheHits()
                + ", failed=" + failedAllocations() + ")";
    }
}
