package org.ohm;

import static org.ohm.Memory.U;

/**
 * Per-thread magazines of ready buffers of the default pool, so that allocate and release make no JNI call and no
 * garbage (a thread cache, as malloc's, one level above the pool's own).
 *
 * <p>A magazine is a stack of parked {@link Shell}s per size class (ohm.h's parked buffers: live pool roots at
 * count 0 with their header and memory). A lend pops one and makes it a new buffer by writing its header (new
 * generation, size, count 1) with Unsafe; the last release of a buffer that stayed plain parks it again by one
 * CAS of the count to 0, in the releasing thread's magazine. An empty stack takes a full one from the depot
 * (what other threads released: Netty's event-loop hand-off) or refills half its capacity with one JNI call;
 * a full one gives itself to the depot, or ends half its buffers with one JNI call. A stack holds at most
 * 256 KiB (and at least 2 buffers, which is what serves 1 MiB pairs without the pool's page runs).
 *
 * <p>Bypassed (the JNI path of {@link OhmBuffer#allocate}): zeroed allocations, private pools, sizes above the
 * pool's chunk, level PARANOID, and pools or sizes that make no parked buffers (poison, zero, guard pages).
 * Sampling at SIMPLE and ADVANCED is done here: a sampled lend gets a leak record (Native.bufTrack) and its
 * Java site, and its last release goes through the runtime, which closes the record. Every lend of a thread in
 * a {@link LeakScopes leak scope} is taken as sampled.
 *
 * <p>Parked buffers are active blocks to the pool; {@link OhmPool#stats} subtracts them. Threads that end give
 * their magazines back within about a second (the cleaner thread); {@link OhmPool#trim} and
 * {@link OhmPool#flushThreadCache} give back the caller's and the depot's at once, and other threads' at their
 * next refill or spill.
 */
final class Magazine {
    private Magazine() {}

    static final boolean ON = U != null && !"false".equals(System.getProperty("ohm.magazines"));
    static final long STATE, SIZE, GEN1, GEN2, REC;
    /** Size classes of the default pool up to its chunk, and the class of each 16-byte granule up to 4 KiB. */
    private static final long[] CLASS_SIZES;
    private static final byte[] LUT = new byte[(4096 >> 4) + 1];
    static final int[] CAP;
    static final long POOL;
    /** Full stacks other threads gave up (their owner released what another thread allocated), per class. */
    private static final Shell[][][] DEPOT;
    private static final int[] DEPOT_N;
    private static final int DEPOT_MAX = 16;
    /** Raised by trim and flushThreadCache: every thread gives its magazines back at its next refill or spill. */
    static volatile int epoch;

    static {
        long[] lay = Native.bufLayout();
        STATE = lay[0];
        SIZE = lay[1];
        GEN1 = lay[2];
        GEN2 = lay[3];
        REC = lay[4];
        POOL = Ohm.defaultPool().handle;
        PoolStats st = new PoolStats(Native.poolStats(POOL, -1));
        int n = st.sizeClasses().size();
        CLASS_SIZES = new long[n];
        CAP = new int[n];
        for (int i = 0; i < n; i++) {
            long size = st.sizeClasses().get(i).size();
            CLASS_SIZES[i] = size;
            CAP[i] = (int) Math.max(2, Math.min(64, (256L << 10) / size));
        }
        for (int g = 0, c = 0; g < LUT.length; g++) {
            while (c < n && CLASS_SIZES[c] < (long) g << 4) c++;
            LUT[g] = (byte) c;
        }
        DEPOT = new Shell[n][DEPOT_MAX][];
        DEPOT_N = new int[n];
    }

    /** One thread's magazines (in its SafetyNet.Local). Fields are the owner thread's. */
    static final class Mags {
        final Shell[][] stacks = new Shell[CLASS_SIZES.length][];
        final int[] n = new int[CLASS_SIZES.length];
        int epoch = Magazine.epoch;
        long scratch; // 24-byte records for refill and flush (64 of them)
    }

    /** The class of size, or -1 above the chunk. */
    static int classOf(long size) {
        if (size <= 4096) return LUT[(int) (size + 15) >> 4];
        int lo = 0, hi = CLASS_SIZES.length - 1;
        if (size > CLASS_SIZES[hi]) return -1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (CLASS_SIZES[mid] < size) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /**
     * A buffer of size bytes of the default pool from this thread's magazine, lent (its tracker's generation is
     * the new handle's), or null to take the JNI path.
     *
     * <p>The refill is written out here rather than called, which keeps this method above the JIT's inlining size
     * (FreqInlineSize, 325 bytecodes) on purpose: OhmPool.allocate, which makes the handle, must compile small,
     * or the JIT declines to inline it into its callers ("already compiled into a big method") and every handle
     * becomes a heap object. The same holds for OhmBuffer's release, which parks.
     */
    static Shell lend(long size) {
        if (size < 0) return null;
        int cls = classOf(size);
        int level = LeakDetector.levelCache;
        if (cls < 0 || level == LeakDetector.PARANOID_ORDINAL) return null;
        SafetyNet.Local l = SafetyNet.local();
        Mags m = l.mags;
        if (m == null) m = l.mags = new Mags();
        int n = m.n[cls];
        Shell[] st = m.stacks[cls];
        if (n == 0) { // an empty stack: a full one from the depot, else half a stack of new parked buffers
            if (m.epoch != epoch) flushAll(m, l);
            synchronized (DEPOT) {
                int d = DEPOT_N[cls];
                if (d > 0) {
                    Shell[] full = DEPOT[cls][--d];
                    DEPOT[cls][d] = st; // the empty stack takes its place (null if this thread had none yet)
                    DEPOT_N[cls] = d;
                    m.stacks[cls] = st = full;
                    m.n[cls] = n = full.length;
                }
            }
            if (n == 0) {
                if (st == null) st = m.stacks[cls] = new Shell[CAP[cls]];
                long out = scratch(m);
                n = Native.magRefill(POOL, CLASS_SIZES[cls], Math.max(1, st.length / 2), out);
                for (int i = 0; i < n; i++) {
                    long r = out + REC * i;
                    Shell sh = new Shell(null);
                    Tracker nt = new Tracker(sh, U.getLong(r), U.getLong(r + 16), U.getLong(r + 8),
                            CLASS_SIZES[cls], null, null, null, cls);
                    nt.gen = 0;
                    nt.plain = true;
                    sh.t = nt;
                    SafetyNet.add(l, nt);
                    st[i] = sh;
                }
                m.n[cls] = n;
                if (n == 0) return null;
            }
        }
        Shell s = st[--n];
        st[n] = null;
        m.n[cls] = n;
        Tracker t = s.t;
        long hdr = t.handle;
        long jg = ++t.lends;
        long id = t.idOf(jg); // the previous lend's generation + 2: only lends change a parked header's
        int g = (int) (id >>> 32);
        U.putInt(hdr + GEN1, g);
        U.putInt(hdr + GEN2, g);
        U.putLong(hdr + SIZE, size);
        U.putOrderedLong(null, hdr + STATE, id & 0xffffffff00000000L | 1);
        t.id = id;
        t.capacity = size;
        t.gen = jg;
        // 1 in N: a shell is sampled at its N-th lend (jg - 1 lends so far), after which it ends at its release
        // (a tracked buffer is never parked), so over shells' lives exactly one lend in N is tracked. No per-thread
        // countdown to store at each lend, and a lowered interval applies at once.
        // In a leak scope every lend is tracked; outside, scopes cost the one read of LeakScopes.active.
        if (level != 0 && jg > LeakDetector.intervalCache || LeakScopes.active != 0 && LeakScopes.enter(l)) sample(t);
        return s;
    }

    /** A sampled lend: a leak record in the runtime, the Java site, and a last release through the runtime. */
    private static void sample(Tracker t) {
        t.plain = false;
        Native.bufTrack(t.handle, t.id);
        t.tracked = true;
        LeakDetector.track(t);
    }

    /** A full stack: to the depot whole (an empty one in exchange), else half of it ended. How many it keeps. */
    static int spill(Mags m, SafetyNet.Local l, int cls) {
        if (m.epoch != epoch) {
            flushAll(m, l);
            if (m.stacks[cls] == null) m.stacks[cls] = new Shell[CAP[cls]];
            return 0;
        }
        Shell[] st = m.stacks[cls];
        synchronized (DEPOT) {
            int d = DEPOT_N[cls];
            if (d < DEPOT_MAX) {
                Shell[] empty = null;
                for (int i = d; i < DEPOT_MAX && empty == null; i++) { // empties sit above the full ones
                    empty = DEPOT[cls][i];
                    DEPOT[cls][i] = null;
                }
                DEPOT[cls][d] = st;
                DEPOT_N[cls] = d + 1;
                m.stacks[cls] = empty != null ? empty : new Shell[CAP[cls]];
                return 0;
            }
        }
        int keep = st.length / 2;
        end(m, st, keep, st.length);
        return keep;
    }

    /** Ends the parked buffers st[from, to) (one JNI call per 64) and forgets their shells. */
    private static void end(Mags m, Shell[] st, int from, int to) {
        long out = scratch(m);
        while (from < to) {
            int k = Math.min(64, to - from);
            for (int i = 0; i < k; i++) {
                Tracker t = st[from + i].t;
                long r = out + REC * i;
                U.putLong(r, t.handle);
                U.putLong(r + 8, t.address);
                U.putLong(r + 16, t.id);
                SafetyNet.remove(t);
                st[from + i] = null;
            }
            Native.magFlush(out, k);
            from += k;
        }
    }

    private static long scratch(Mags m) {
        if (m.scratch == 0) m.scratch = U.allocateMemory(64 * REC); // a few bytes per thread, kept for its Local
        return m.scratch;
    }

    /** Ends every buffer parked in m (its owner's thread, or the cleaner for an owner that ended). */
    static void flushAll(Mags m, SafetyNet.Local l) {
        m.epoch = epoch;
        for (int c = 0; c < m.stacks.length; c++) {
            Shell[] st = m.stacks[c];
            if (st != null && m.n[c] > 0) end(m, st, 0, m.n[c]);
            m.n[c] = 0;
        }
    }

    /** The magazines of a thread that ended: every buffer ended, the scratch freed (m is dropped). */
    static void retire(Mags m, SafetyNet.Local l) {
        flushAll(m, l);
        if (m.scratch != 0) U.freeMemory(m.scratch);
        m.scratch = 0;
    }

    /** Ends what the depot holds and asks every thread to give its magazines back (trim, flushThreadCache). */
    static void flushShared(SafetyNet.Local l) {
        epoch++;
        Mags m = l.mags;
        if (m == null) m = l.mags = new Mags();
        flushAll(m, l);
        synchronized (DEPOT) {
            for (int c = 0; c < DEPOT.length; c++) {
                for (int i = 0; i < DEPOT_N[c]; i++) end(m, DEPOT[c][i], 0, DEPOT[c][i].length);
                DEPOT_N[c] = 0;
            }
        }
    }

    /** Parked buffers per class (magazines racily, depot exactly): stats subtract them from the active ones. */
    static long[] parked() {
        long[] p = new long[CLASS_SIZES.length];
        SafetyNet.forEachLocal(l -> {
            Mags m = l.mags;
            if (m != null) for (int c = 0; c < p.length; c++) p[c] += m.n[c];
        });
        synchronized (DEPOT) {
            for (int c = 0; c < p.length; c++) for (int i = 0; i < DEPOT_N[c]; i++) p[c] += DEPOT[c][i].length;
        }
        return p;
    }

    static long classSize(int c) {
        return CLASS_SIZES[c];
    }
}
