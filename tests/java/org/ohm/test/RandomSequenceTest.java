package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.ohm.IllegalReferenceCountException;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;
import org.ohm.MapOption;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;
import org.ohm.SharedMemory;

/**
 * A seeded random sequence of API calls on four threads, checked against a model after every step: the Java
 * counterpart of tests/fuzz/fuzz_api.c.
 *
 * <p>Each thread owns the buffers it made or was handed, so its part of the model is exact: every handle's
 * count (plain slices and duplicates share their owner's; retained ones have their own and hold one reference
 * on their parent), every buffer's bytes, which handles are released, which memory is sealed or read-only, and
 * which leak reports must arrive. A buffer group (a root and everything derived from it) moves to another thread
 * through a concurrent queue, which is the hand-over the javadoc asks for. Buffers of a thread's private pool
 * stay on that thread, because only the thread that closes a pool may use it meanwhile.
 *
 * <p>Leaks: the test runs at PARANOID and touches each root once with a unique hint, because the core reports
 * identical leaks only once (same site, same access records). A dropped root is reported (reason GC) when
 * references other than its retained slices' remain; a retained slice's own leak is never reported today (the core
 * counts it as an untracked leak even at PARANOID), so a root that only retained slices hold is expected to be freed
 * without a report. Only roots' ids are checked: reports under a retained slice's id are not looked at.
 *
 * <p>Reproduce a failure with -Dohm.test.seed=N (printed in every failure); -Dohm.test.steps=N sets the steps
 * per thread. The interleaving of the threads is not seeded, only each thread's choices.
 */
class RandomSequenceTest {
    private static final long SEED = Long.getLong("ohm.test.seed", 0x5eed_0012L);
    private static final int STEPS = Integer.getInteger("ohm.test.steps", 2000);
    private static final int THREADS = 4;
    private static final int MAX_GROUPS = 24;   // per thread: beyond this, steps lean to releasing and dropping
    private static final int MAX_HANDLES = 8;   // per group
    private static final int PAGE = 4096;
    private static final long GC_WAIT_NANOS = TimeUnit.SECONDS.toNanos(30);

    @TempDir
    Path dir;

    private LeakDetector.Level savedLevel;
    /** Every leak report, by buffer id (other tests' late reports land here too; only our ids are looked at). */
    private final Map<Long, List<LeakReport.Reason>> reports = new ConcurrentHashMap<>();
    /** What must (or may) be reported for each root this test made, by id. */
    private final Map<Long, Expect> expects = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<Group> handoff = new ConcurrentLinkedQueue<>();
    private OhmPool shared;
    /** How often each operation ran, over all threads: printed, so a change that starves one shows. */
    private final Map<String, Integer> ops = new ConcurrentHashMap<>();

    @BeforeEach
    void setUp() {
        savedLevel = LeakDetector.level();
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        LeakDetector.setListener(r -> reports.computeIfAbsent(r.bufferId(), k -> new CopyOnWriteArrayList<>())
                .add(r.reason()));
        shared = Ohm.builder().name("randseq-shared").build();
    }

    @AfterEach
    void tearDown() {
        if (shared != null) shared.close();
        LeakDetector.setListener(null);
        LeakDetector.setLevel(savedLevel);
    }

    // ---- the model

    /** A reference count: a root's, or a retained slice's, which holds one reference on its parent's. */
    static final class Count {
        int n = 1;
        final Count parent;
        final List<Count> group; // every count of its group, this one included

        Count(Count parent, List<Count> group) {
            this.parent = parent;
            this.group = group;
            group.add(this);
        }
    }

    /** One OhmBuffer object: [off, off + len) of its group's memory, and the count it uses. */
    static final class Handle {
        final OhmBuffer buf;
        final Group g;
        final int off, len;
        final Count count;
        /** A root or a retained slice (owns its count); plain slices and duplicates do not. */
        final boolean owner;
        final String name;

        Handle(OhmBuffer buf, Group g, int off, int len, Count count, boolean owner, String name) {
            this.buf = buf;
            this.g = g;
            this.off = off;
            this.len = len;
            this.count = count;
            this.owner = owner;
            this.name = name;
        }

        /** A handle works while its count is above 0 and its root's memory is there (a retained slice whose root
         * was released to 0 through the root itself is an orphan: its memory is gone). */
        boolean live() {
            return count.n > 0 && g.root().n > 0;
        }

        int refCnt() {
            return live() ? count.n : 0;
        }

        boolean full() {
            return off == 0 && len == g.size;
        }

        @Override
        public String toString() {
            return name + "[" + off + "+" + len + " of " + g + ", count " + refCnt() + "]";
        }
    }

    enum Kind { SHARED_POOL, DEFAULT_POOL, PRIVATE_POOL, FILE, FILE_READ_ONLY, SHM }

    /** A root and everything derived from it: one block of memory, one model of its bytes. */
    static final class Group {
        final long rootId;
        final Kind kind;
        final int size;
        final byte[] bytes;
        final OhmPool pool;          // PRIVATE_POOL only
        final Path file;             // FILE and FILE_READ_ONLY
        final boolean readOnly;      // a read-only mapping
        final boolean pages;         // owns whole pages: sealable
        boolean sealed;
        boolean writableView;        // a writable nioBuffer was handed out: seal(true) is refused from then on
        final List<Handle> handles = new ArrayList<>();
        final List<Count> counts = new ArrayList<>(); // in creation order: parents before their retained slices

        Group(long rootId, Kind kind, int size, OhmPool pool, Path file, boolean readOnly, boolean pages) {
            this.rootId = rootId;
            this.kind = kind;
            this.size = size;
            this.bytes = new byte[size];
            this.pool = pool;
            this.file = file;
            this.readOnly = readOnly;
            this.pages = pages;
        }

        Count root() {
            return counts.get(0);
        }

        boolean writable() {
            return !readOnly && !sealed;
        }

        /** References on the root other than those its live retained slices hold: what a GC reclaim leaks. */
        int directRefs() {
            int held = 0;
            for (Count c : counts) if (c.parent == root() && c.n > 0) held++;
            return Math.max(0, root().n - held);
        }

        @Override
        public String toString() {
            return kind + "#" + Long.toHexString(rootId) + "(" + size + (sealed ? ", sealed" : "") + ")";
        }
    }

    /** What the leak listener must see for a root: after a drop (GC) or a pool close (POOL_CLOSED). */
    static final class Expect {
        final long id;
        final String what;
        volatile boolean gcReport;      // dropped with direct references: exactly one GC report
        volatile boolean droppedSilent; // dropped, held only by retained slices: no report (the core counts it untracked)
        volatile boolean poolClosed;    // its pool was closed while it was live or dropped-but-not-yet-reclaimed
        volatile boolean closedLive;    // live (held by the test) when its pool closed: exactly one POOL_CLOSED
        final OhmPool pool;
        volatile String history = ""; // what happened to it, for failure messages

        void note(String event) {
            history += " " + event;
        }

        Expect(long id, String what, OhmPool pool) {
            this.id = id;
            this.what = what;
            this.pool = pool;
        }
    }

    // ---- one thread's walk

    final class Walker implements Runnable {
        final int index;
        final SplittableRandom rnd;
        final List<Group> groups = new ArrayList<>();
        /** Files whose read-write mapping this thread released: their final bytes, for read-only mappings. */
        final List<Group> finishedFiles = new ArrayList<>();
        final ArrayDeque<String> trace = new ArrayDeque<>();
        OhmPool pool;      // this thread's private pool (made on demand, closed at random)
        int pools;
        final List<OhmPool> closedPools = new ArrayList<>();
        int step, serial;
        /** Groups touched by the current step: their contents are compared in full after it. */
        final List<Group> touched = new ArrayList<>();
        Throwable failure;

        Walker(int index, SplittableRandom rnd) {
            this.index = index;
            this.rnd = rnd;
        }

        @Override
        public void run() {
            try {
                for (step = 0; step < STEPS; step++) {
                    touched.clear();
                    oneStep();
                    check();
                }
            } catch (Throwable e) {
                failure = e;
            }
            touched.clear(); // nothing but the model may keep a group reachable: dropped ones must be collectable
        }

        String context() {
            return "seed " + SEED + " (-Dohm.test.seed=" + SEED + "), thread " + index + ", step " + step
                    + "; last operations:\n  " + String.join("\n  ", trace);
        }

        void log(String what) {
            if (trace.size() == 40) trace.removeFirst();
            trace.addLast(step + ": " + what);
            ops.merge(what.split("[ (]", 2)[0], 1, Integer::sum);
        }

        /** assertThrows, counted: the summary says how many refusals the run checked. */
        <T extends Throwable> T refuse(Class<T> type, Executable call, String... what) {
            ops.merge("(refused)", 1, Integer::sum);
            return assertThrows(type, call, what.length == 0 ? null : what[0]);
        }

        // ---- choosing

        Group anyGroup() {
            return groups.isEmpty() ? null : groups.get(rnd.nextInt(groups.size()));
        }

        Handle anyHandle() {
            Group g = anyGroup();
            if (g == null) return null;
            touched.add(g);
            return g.handles.get(rnd.nextInt(g.handles.size()));
        }

        Handle anyLiveHandle() {
            for (int tries = 0; tries < 8; tries++) {
                Handle h = anyHandle();
                if (h != null && h.live()) return h;
            }
            return null;
        }

        /** An offset for an access of width bytes in [0, len], now and then just outside it. */
        int offset(int len, int width) {
            if (rnd.nextInt(16) == 0) return rnd.nextBoolean() ? -1 - rnd.nextInt(3) : len - width + 1 + rnd.nextInt(3);
            return len >= width ? rnd.nextInt(len - width + 1) : 0;
        }

        int size() {
            switch (rnd.nextInt(10)) {
                case 0: return 0;
                case 1: case 2: case 3: return 1 + rnd.nextInt(64);
                case 4: case 5: case 6: return 65 + rnd.nextInt(4096 - 64);
                default: return 4097 + rnd.nextInt(70 * 1024 - 4096);
            }
        }

        void oneStep() throws Exception {
            boolean full = groups.size() >= MAX_GROUPS;
            int r = rnd.nextInt(100);
            if (r < (full ? 2 : 14)) allocate();
            else if (r < 20) retain();
            else if (r < 30) release();
            else if (r < 33) closeHandle();
            else if (r < 43) derive();
            else if (r < 55) typed();
            else if (r < 62) bulk();
            else if (r < 65) fill();
            else if (r < 69) copy();
            else if (r < 73) view();
            else if (r < 75) indexOf();
            else if (r < 78) seal();
            else if (r < 82) handOver();
            else if (r < 86) takeOver();
            else if (r < 87) closePool();
            else if (r < (full ? 93 : 89)) dropGroup();
            else if (r < 91) dropSlice();
            else if (r < 94) forgetReleased();
            else if (r < 95) badArguments();
            else if (r < 96 && rnd.nextInt(4) == 0) {
                log("System.gc()");
                System.gc(); // lets the cleaner reclaim dropped groups while the other threads carry on
            } else {
                readBack();
            }
        }

        // ---- allocation

        void allocate() throws Exception {
            int kind = rnd.nextInt(100);
            Group g;
            if (kind < 40) g = fromPool(Kind.SHARED_POOL, shared, false);
            else if (kind < 48) g = fromPool(Kind.SHARED_POOL, shared, true);
            else if (kind < 58) g = fromPool(Kind.DEFAULT_POOL, Ohm.defaultPool(), rnd.nextBoolean());
            else if (kind < 85) {
                if (pool == null) pool = Ohm.builder().name("randseq-" + index + "-" + pools++).build();
                g = fromPool(Kind.PRIVATE_POOL, pool, rnd.nextBoolean());
            } else if (kind < 93) g = mapFile();
            else if (kind < 97) g = sharedMemory();
            else g = mapReadOnly();
            if (g == null) return;
            groups.add(g);
            touched.add(g);
        }

        /** Registers a new root: its handle, its count, and a unique access record so its leak is never
         * deduplicated with another's. */
        Group root(OhmBuffer b, Kind kind, OhmPool p, Path file, boolean readOnly, boolean pages) {
            Group g = new Group(b.id(), kind, (int) b.capacity(), p, file, readOnly, pages);
            Count c = new Count(null, g.counts);
            g.handles.add(new Handle(b, g, 0, g.size, c, true, "root"));
            b.touch("randseq seed " + SEED + " thread " + index + " root " + serial++);
            expects.put(g.rootId, new Expect(g.rootId, g.toString(), p));
            assertEquals(1, b.refCnt(), "a new buffer has a count of 1");
            return g;
        }

        Group fromPool(Kind kind, OhmPool p, boolean zeroed) {
            int size = size();
            OhmBuffer b = zeroed ? p.allocateZeroed(size) : p.allocate(size);
            assertEquals(size, b.capacity());
            assertEquals(OhmBuffer.Origin.POOL, b.origin());
            Group g = root(b, kind, kind == Kind.PRIVATE_POOL ? p : null, null, false, false);
            if (!zeroed) { // contents unspecified: make them known
                rnd.nextBytes(g.bytes);
                b.putBytes(0, g.bytes);
            }
            log("allocate " + g + (zeroed ? " zeroed" : ""));
            return g;
        }

        Group mapFile() throws Exception {
            boolean pages = rnd.nextBoolean();
            int size = pages ? PAGE * (1 + rnd.nextInt(4)) : 1 + rnd.nextInt(3 * PAGE);
            if (size % PAGE == 0) pages = true;
            Path f = dir.resolve("t" + index + "-" + serial + ".bin");
            OhmBuffer b = OhmBuffer.mapFile(f, 0, size, MapOption.CREATE, MapOption.WRITE);
            assertEquals(OhmBuffer.Origin.FILE, b.origin());
            Group g = root(b, Kind.FILE, null, f, false, pages); // a new file: zeros
            log("mapFile " + g);
            return g;
        }

        Group sharedMemory() {
            boolean pages = rnd.nextBoolean();
            int size = pages ? PAGE * (1 + rnd.nextInt(3)) : 1 + rnd.nextInt(2 * PAGE);
            if (size % PAGE == 0) pages = true;
            OhmBuffer b = SharedMemory.createAnonymous(size);
            assertEquals(OhmBuffer.Origin.SHM, b.origin());
            Group g = root(b, Kind.SHM, null, null, false, pages); // zeroed
            log("createAnonymous " + g);
            return g;
        }

        /** A read-only mapping of a file whose read-write mapping was released here: it shows the last writes. */
        Group mapReadOnly() {
            if (finishedFiles.isEmpty()) return null;
            Group done = finishedFiles.get(rnd.nextInt(finishedFiles.size()));
            OhmBuffer b = OhmBuffer.mapFile(done.file, 0, 0);
            assertEquals(done.size, b.capacity());
            Group g = root(b, Kind.FILE_READ_ONLY, null, done.file, true, false);
            System.arraycopy(done.bytes, 0, g.bytes, 0, done.size);
            log("mapFileReadOnly " + g + " of " + done);
            return g;
        }

        // ---- counts

        void retain() {
            Handle h = anyHandle();
            if (h == null) return;
            int n = 1 + rnd.nextInt(3);
            log("retain(" + n + ") " + h);
            if (!h.live()) {
                expectCountError(() -> h.buf.retain(n), h);
                return;
            }
            assertSame(h.buf, h.buf.retain(n));
            h.count.n += n;
        }

        void release() {
            Handle h = anyHandle();
            if (h == null) return;
            int have = h.count.n;
            int n;
            switch (rnd.nextInt(6)) {
                case 0: n = have + 1; break;        // over-release
                case 1: n = Math.max(1, have); break; // all of them, also those retained slices hold
                default: n = 1;
            }
            log("release(" + n + ") " + h);
            if (!h.live() || n > have) {
                expectCountError(() -> h.buf.release(n), h);
                return;
            }
            boolean freed = h.buf.release(n);
            assertEquals(modelRelease(h.count, n), freed, "release returns true on the call that frees");
            afterRelease(h.g);
        }

        void closeHandle() {
            Handle h = anyHandle();
            if (h == null) return;
            log("close " + h);
            h.buf.close(); // releases one reference if live; nothing otherwise
            if (h.live()) {
                modelRelease(h.count, 1);
                afterRelease(h.g);
            }
        }


        /** A retain or release the javadoc refuses: IllegalReferenceCountException, and nothing changes. */
        void expectCountError(Executable call, Handle h) {
            int before = h.refCnt();
            refuse(IllegalReferenceCountException.class, call, h.toString());
            assertEquals(before, h.buf.refCnt(), "the count is unchanged after a refused change: " + h);
        }

        void afterRelease(Group g) {
            if (g.root().n == 0) expects.get(g.rootId).note("freed at thread " + index + " step " + step);
            if (g.root().n == 0 && g.kind == Kind.FILE && finishedFiles.size() < 16) finishedFiles.add(g);
        }

        // ---- derived buffers

        void derive() {
            Group g = anyGroup();
            if (g == null || g.handles.size() >= MAX_HANDLES) return;
            touched.add(g);
            Handle h = g.handles.get(rnd.nextInt(g.handles.size()));
            int kind = rnd.nextInt(4);
            boolean retained = kind >= 2, whole = kind % 2 == 1;
            int off = whole ? 0 : offset(h.len, 0), len = whole ? h.len : (h.len - off <= 0 ? 0 : rnd.nextInt(h.len - off + 1));
            if (!whole && rnd.nextInt(16) == 0) len = h.len + 1; // past the end
            String what = (retained ? "retained" : "") + (whole ? "duplicate" : "slice(" + off + ", " + len + ")");
            log(what + " of " + h);
            final int o = off, l = len;
            Executable call = whole ? (retained ? h.buf::retainedDuplicate : h.buf::duplicate)
                    : () -> { if (retained) h.buf.retainedSlice(o, l); else h.buf.slice(o, l); };
            if (!h.live()) {
                refuse(IllegalStateException.class, call, h.toString());
                return;
            }
            if (!whole && (off < 0 || len < 0 || off > h.len - len)) {
                refuse(IndexOutOfBoundsException.class, call, h.toString());
                return;
            }
            OhmBuffer d = whole ? (retained ? h.buf.retainedDuplicate() : h.buf.duplicate())
                    : (retained ? h.buf.retainedSlice(off, len) : h.buf.slice(off, len));
            assertEquals(len, d.capacity());
            Count c = h.count;
            if (retained) {
                h.count.n++;
                c = new Count(h.count, g.counts);
            }
            g.handles.add(new Handle(d, g, h.off + off, len, c, retained, what));
        }

        // ---- contents

        void typed() {
            Handle h = anyHandle();
            if (h == null) return;
            int type = rnd.nextInt(9);
            int width = new int[] {1, 2, 2, 4, 4, 8, 8, 4, 8}[type];
            boolean le = rnd.nextBoolean();
            int at = offset(h.len, width);
            boolean write = rnd.nextInt(3) != 0;
            long raw = rnd.nextLong();
            // floats as raw bits, kept finite: a NaN's payload need not survive a round trip through registers
            final long v = type == 7 ? finite((int) raw) : type == 8 ? finite(raw) : raw;
            log((write ? "put" : "get") + " type " + type + (le ? " LE" : "") + " at " + at + " of " + h);
            Class<? extends Throwable> err = failure(h, at, width, write);
            if (err != null) {
                refuse(err, () -> { if (write) put(h.buf, type, le, at, v); else get(h.buf, type, le, at); },
                        h.toString());
                return;
            }
            ByteBuffer m = ByteBuffer.wrap(h.g.bytes).order(le ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN);
            int p = h.off + at;
            if (write) {
                put(h.buf, type, le, at, v);
                switch (width) {
                    case 1: m.put(p, (byte) v); break;
                    case 2: m.putShort(p, (short) v); break;
                    case 4: m.putInt(p, (int) v); break;
                    default: m.putLong(p, v);
                }
            }
            long want = width == 1 ? m.get(p) : width == 2 ? m.getShort(p) : width == 4 ? m.getInt(p) : m.getLong(p);
            assertEquals(want, get(h.buf, type, le, at), "typed read at " + at + " of " + h);
        }

        /** A typed put of v's low width bytes (floats: v holds their raw bits). */
        void put(OhmBuffer b, int type, boolean le, long at, long v) {
            switch (type) {
                case 0: b.putByte(at, (int) v); break;
                case 1: if (le) b.putShortLE(at, (int) v); else b.putShort(at, (int) v); break;
                case 2: if (le) b.putShortLE(at, (short) v); else b.putShort(at, (short) v); break;
                case 3: if (le) b.putIntLE(at, (int) v); else b.putInt(at, (int) v); break;
                case 4: if (le) b.putIntLE(at, (int) v); else b.putInt(at, (int) v); break;
                case 5: if (le) b.putLongLE(at, v); else b.putLong(at, v); break;
                case 6: if (le) b.putLongLE(at, v); else b.putLong(at, v); break;
                case 7: if (le) b.putFloatLE(at, Float.intBitsToFloat((int) v)); else b.putFloat(at, Float.intBitsToFloat((int) v)); break;
                default: if (le) b.putDoubleLE(at, Double.longBitsToDouble(v)); else b.putDouble(at, Double.longBitsToDouble(v));
            }
        }

        /** A typed get as the bits the model compares (sign-extended as ByteBuffer's getters do). */
        long get(OhmBuffer b, int type, boolean le, long at) {
            switch (type) {
                case 0: return rnd.nextBoolean() ? b.getByte(at) : (byte) b.getUnsignedByte(at);
                case 1: return le ? b.getShortLE(at) : b.getShort(at);
                case 2: return (short) (le ? b.getUnsignedShortLE(at) : b.getUnsignedShort(at));
                case 3: return le ? b.getIntLE(at) : b.getInt(at);
                case 4: return (int) (le ? b.getUnsignedIntLE(at) : b.getUnsignedInt(at));
                case 5: case 6: return le ? b.getLongLE(at) : b.getLong(at);
                case 7: return Float.floatToRawIntBits(le ? b.getFloatLE(at) : b.getFloat(at));
                default: return Double.doubleToRawLongBits(le ? b.getDoubleLE(at) : b.getDouble(at));
            }
        }

        int finite(int bits) {
            return Float.isNaN(Float.intBitsToFloat(bits)) ? bits & 0x3fffffff : bits;
        }

        long finite(long bits) {
            return Double.isNaN(Double.longBitsToDouble(bits)) ? bits & 0x3fffffffffffffffL : bits;
        }

        /** What an access of [at, at + width) through h must throw, or null. Liveness is checked first, then
         * bounds, then (writes) read-only memory, as OhmBuffer does. */
        Class<? extends Throwable> failure(Handle h, long at, long width, boolean write) {
            if (!h.live()) return IllegalStateException.class;
            if (at < 0 || width < 0 || at > h.len - width) return IndexOutOfBoundsException.class;
            if (write && !h.g.writable()) return IllegalStateException.class;
            return null;
        }

        void bulk() {
            Handle h = anyHandle();
            if (h == null) return;
            int len = h.len == 0 ? 0 : rnd.nextInt(Math.min(h.len, 9000) + 1);
            int at = offset(h.len, len);
            boolean write = rnd.nextBoolean(), nio = rnd.nextInt(3) == 0;
            int pad = rnd.nextInt(8);
            byte[] data = new byte[len + 2 * pad];
            rnd.nextBytes(data);
            log((write ? "putBytes" : "getBytes") + (nio ? "(ByteBuffer)" : "") + " " + len + " at " + at + " of " + h);
            Executable call;
            if (write) {
                call = nio ? () -> h.buf.putBytes(at, ByteBuffer.wrap(data, pad, len)) : () -> h.buf.putBytes(at, data, pad, len);
            } else {
                call = nio ? () -> h.buf.getBytes(at, ByteBuffer.wrap(data, pad, len)) : () -> h.buf.getBytes(at, data, pad, len);
            }
            Class<? extends Throwable> err = failure(h, at, len, write);
            if (err != null) {
                byte[] before = data.clone();
                refuse(err, call, h.toString());
                assertArrayEquals(before, data, "a refused getBytes wrote nothing");
                return;
            }
            byte[] before = data.clone();
            assertDoesNotThrow(call);
            if (write) {
                System.arraycopy(data, pad, h.g.bytes, h.off + at, len);
                assertArrayEquals(before, data, "putBytes does not change its source");
            } else {
                byte[] want = before.clone();
                System.arraycopy(h.g.bytes, h.off + at, want, pad, len);
                assertArrayEquals(want, data, "getBytes of " + len + " at " + at + " of " + h + " (and nothing around it)");
            }
        }

        void fill() {
            Handle h = anyHandle();
            if (h == null) return;
            int len = h.len == 0 ? 0 : rnd.nextInt(h.len + 1);
            int at = offset(h.len, len);
            byte v = (byte) rnd.nextInt();
            log("fill " + len + " at " + at + " of " + h);
            Class<? extends Throwable> err = failure(h, at, len, true);
            if (err != null) {
                refuse(err, () -> h.buf.fill(at, len, v), h.toString());
                return;
            }
            h.buf.fill(at, len, v);
            Arrays.fill(h.g.bytes, h.off + at, h.off + at + len, v);
        }

        /** copyTo within a group (overlapping ranges: memmove) or between two of this thread's groups. */
        void copy() {
            Handle s = anyHandle(), d = rnd.nextBoolean() ? anyHandle() : (s == null ? null : s.g.handles.get(rnd.nextInt(s.g.handles.size())));
            if (s == null || d == null) return;
            int len = Math.min(s.len, d.len) == 0 ? 0 : rnd.nextInt(Math.min(s.len, d.len) + 1);
            int so = offset(s.len, len), dof = offset(d.len, len);
            log("copyTo " + len + " from " + so + " of " + s + " to " + dof + " of " + d);
            Class<? extends Throwable> err = failure(s, so, len, false);
            if (err == null) err = failure(d, dof, len, true);
            if (err != null) {
                refuse(err, () -> s.buf.copyTo(so, d.buf, dof, len));
                return;
            }
            s.buf.copyTo(so, d.buf, dof, len);
            System.arraycopy(s.g.bytes, s.off + so, d.g.bytes, d.off + dof, len);
        }

        /** nioBuffer: a direct, big-endian view of the same memory, read-only exactly when the memory is; read
         * through it, and write through it (a view of read-only memory refuses the write). */
        void view() {
            Handle h = anyHandle();
            if (h == null) return;
            boolean whole = rnd.nextBoolean();
            int len = whole ? h.len : (h.len == 0 ? 0 : rnd.nextInt(h.len + 1));
            int at = whole ? 0 : offset(h.len, len);
            log("nioBuffer(" + at + ", " + len + ") of " + h);
            Class<? extends Throwable> err = failure(h, at, len, false);
            if (err != null) {
                refuse(err, () -> { if (whole) h.buf.nioBuffer(); else h.buf.nioBuffer(at, len); }, h.toString());
                return;
            }
            ByteBuffer v = whole ? h.buf.nioBuffer() : h.buf.nioBuffer(at, len);
            assertTrue(v.isDirect());
            assertEquals(ByteOrder.BIG_ENDIAN, v.order());
            assertEquals(0, v.position());
            assertEquals(len, v.remaining());
            byte[] got = new byte[len];
            v.duplicate().get(got);
            assertArrayEquals(Arrays.copyOfRange(h.g.bytes, h.off + at, h.off + at + len), got, "view of " + h);
            assertEquals(!h.g.writable(), v.isReadOnly(), "a view is read-only exactly when its memory is");
            if (h.g.writable()) h.g.writableView = true;
            else if (len >= 8) assertThrows(ReadOnlyBufferException.class, () -> v.putLong(0, 1), "view of " + h);
            if (h.g.writable() && len >= 8 && rnd.nextBoolean()) {
                int p = rnd.nextInt(len - 7);
                long x = rnd.nextLong();
                v.putLong(p, x);
                ByteBuffer.wrap(h.g.bytes).putLong(h.off + at + p, x);
                assertEquals(x, h.buf.getLong(at + p), "a write through the view is seen by the buffer");
            }
        }

        void indexOf() {
            Handle h = anyLiveHandle();
            if (h == null || h.len == 0) return;
            touched.add(h.g);
            int from = rnd.nextInt(h.len), to = from + rnd.nextInt(h.len - from + 1);
            int plen = 1 + rnd.nextInt(3);
            byte[] pat = new byte[plen];
            if (rnd.nextBoolean() && h.len >= plen) System.arraycopy(h.g.bytes, h.off + rnd.nextInt(h.len - plen + 1), pat, 0, plen);
            else rnd.nextBytes(pat);
            long want = -1;
            for (int i = from; i + plen <= to && want < 0; i++) {
                if (Arrays.equals(h.g.bytes, h.off + i, h.off + i + plen, pat, 0, plen)) want = i;
            }
            log("indexOf " + Arrays.toString(pat) + " in [" + from + ", " + to + ") of " + h);
            assertEquals(want, h.buf.indexOf(pat, from, to));
        }

        void seal() {
            Handle h = anyHandle();
            if (h == null) return;
            boolean on = rnd.nextInt(3) != 0;
            log("seal(" + on + ") " + h);
            if (!h.live()) {
                refuse(IllegalStateException.class, () -> h.buf.seal(on), h.toString());
            } else if (!h.g.pages || !h.full()) {
                // only a buffer that owns whole pages (a read-write mapping of whole pages), viewed whole
                refuse(IllegalArgumentException.class, () -> h.buf.seal(on), h.toString());
            } else if (on && h.g.writableView) {
                refuse(IllegalStateException.class, () -> h.buf.seal(on), h.toString());
            } else {
                h.buf.seal(on);
                h.g.sealed = on;
            }
        }

        // ---- threads

        void handOver() {
            Group g = anyGroup();
            if (g == null || g.kind == Kind.PRIVATE_POOL) return;
            log("handOver " + g);
            groups.remove(g);
            touched.remove(g);
            handoff.add(g); // the queue publishes the group (and its model) to the thread that takes it
        }

        void takeOver() {
            Group g = handoff.poll();
            if (g == null) return;
            log("takeOver " + g);
            groups.add(g);
            touched.add(g); // a full comparison of what the other thread left
            checkContent(g);
        }

        // ---- pools

        /** Closes this thread's private pool: its live roots are reported (POOL_CLOSED, on this thread) and every
         * handle of its memory fails from then on. */
        void closePool() {
            if (pool == null) return;
            OhmPool p = pool;
            pool = null;
            int live = 0, pending = 0;
            List<Long> liveRoots = new ArrayList<>();
            for (Group g : groups) {
                if (g.pool != p || g.root().n == 0) continue;
                live++;
                // a root only its retained slices still hold is closed cleanly: the slices are what leaked, and
                // each is reported as itself (their ids are not modelled here)
                if (g.directRefs() > 0) liveRoots.add(g.rootId);
            }
            for (Expect e : expects.values()) {
                if (e.pool == p && (e.gcReport || e.droppedSilent)) {
                    pending++;
                    e.poolClosed = true; // reclaimed (GC) or still live (POOL_CLOSED): one or the other
                }
            }
            long active = p.stats().activeBlocks();
            log("closePool " + p.name() + " with " + live + " live roots, " + pending + " dropped, " + active + " active blocks");
            assertTrue(active >= live && active <= live + pending,
                    "active blocks " + active + " of " + p.name() + ": " + live + " live roots and " + pending + " dropped");
            p.close();
            assertTrue(p.isClosed());
            p.close(); // twice: nothing
            for (long id : liveRoots) {
                Expect e = expects.get(id);
                e.poolClosed = true;
                e.closedLive = true;
                assertEquals(List.of(LeakReport.Reason.POOL_CLOSED), reports.get(id),
                        "a live buffer of a closed pool is reported once, on the closing thread, unless only its "
                                + "retained slices hold it: " + e.what);
            }
            for (Group g : groups) {
                if (g.pool != p) continue;
                for (Count c : g.counts) c.n = 0; // every buffer of its memory fails from now on
                touched.add(g);
            }
            refuse(IllegalStateException.class, () -> p.allocate(1));
            refuse(IllegalStateException.class, p::stats);
            closedPools.add(p);
        }

        // ---- dropping: the safety net

        /** Forgets a whole group without releasing it: the GC finds it and the cleaner reclaims it. */
        void dropGroup() {
            Group g = anyGroup();
            if (g == null) return;
            groups.remove(g);
            touched.remove(g);
            Expect e = expects.get(g.rootId);
            if (g.root().n > 0) {
                if (g.directRefs() > 0) e.gcReport = true;
                else e.droppedSilent = true;
            }
            log("drop " + g + " (count " + g.root().n + ", direct " + g.directRefs() + ")");
            e.note("dropped at thread " + index + " step " + step + " with count " + g.root().n + ", direct " + g.directRefs());
        }

        /** Forgets a plain slice or duplicate: only its handle goes, its owner is untouched. */
        void dropSlice() {
            Group g = anyGroup();
            if (g == null) return;
            for (Handle h : g.handles) {
                if (!h.owner) {
                    log("dropSlice " + h);
                    g.handles.remove(h);
                    touched.add(g);
                    return;
                }
            }
        }

        /** Forgets a group whose memory is gone (released, or its pool closed): it is never reported. */
        void forgetReleased() {
            for (Group g : groups) {
                if (g.root().n == 0) {
                    log("forget " + g);
                    expects.get(g.rootId).note("forgotten at thread " + index + " step " + step);
                    groups.remove(g);
                    return;
                }
            }
        }

        void badArguments() {
            Handle h = anyHandle();
            if (h == null) return;
            log("badArguments on " + h);
            refuse(IllegalArgumentException.class, () -> h.buf.retain(0));
            refuse(IllegalArgumentException.class, () -> h.buf.release(-1));
            refuse(IllegalArgumentException.class, () -> shared.allocate(-1));
            if (h.live()) {
                // a count that would pass Integer.MAX_VALUE is refused, unchanged
                expectCountError(() -> h.buf.retain(Integer.MAX_VALUE - h.count.n + 1), h);
            }
        }

        void readBack() {
            Group g = anyGroup();
            if (g != null) {
                log("readBack " + g);
                touched.add(g);
            }
        }

        // ---- the model, after every step

        void check() {
            for (Group g : groups) {
                for (Handle h : g.handles) {
                    assertEquals(h.refCnt(), h.buf.refCnt(), "refCnt of " + h);
                    assertEquals(h.live(), h.buf.isAccessible(), "isAccessible of " + h);
                    assertEquals(h.len, h.buf.capacity());
                }
            }
            for (Group g : touched) if (groups.contains(g)) checkContent(g);
            if (step % 100 == 0) for (Group g : groups) checkContent(g);
        }

        /** Every live handle shows its window of the model's bytes; every released one refuses access as the
         * javadoc says (IllegalStateException for access, IllegalReferenceCountException for counts). */
        void checkContent(Group g) {
            for (Handle h : g.handles) {
                if (h.live()) {
                    byte[] got = new byte[h.len];
                    h.buf.getBytes(0, got);
                    if (!Arrays.equals(g.bytes, h.off, h.off + h.len, got, 0, h.len)) {
                        fail("content of " + h + " differs from the model at " + firstDifference(g.bytes, h.off, got));
                    }
                } else {
                    refuse(IllegalStateException.class, () -> h.buf.getByte(0), h.toString());
                    refuse(IllegalStateException.class, () -> h.buf.putByte(0, 1), h.toString());
                    refuse(IllegalStateException.class, () -> h.buf.slice(0, 0), h.toString());
                    refuse(IllegalReferenceCountException.class, () -> h.buf.release(), h.toString());
                    refuse(IllegalReferenceCountException.class, () -> h.buf.retain(), h.toString());
                    h.buf.close(); // a released buffer's close does nothing
                    assertEquals(0, h.buf.refCnt());
                }
            }
        }

        /** Releases everything this thread holds, children before parents, checking each step. */
        void releaseAll() {
            for (Group g : groups) {
                for (int i = g.counts.size() - 1; i >= 0; i--) {
                    Count c = g.counts.get(i);
                    Handle h = g.handles.stream().filter(x -> x.count == c).findFirst().orElseThrow();
                    if (!h.live()) continue;
                    int direct = c.n;
                    for (Count k : g.counts) if (k.parent == c && k.n > 0) direct--;
                    if (direct <= 0) continue; // only its retained slices hold it: they release it
                    log("releaseAll: release(" + direct + ") " + h);
                    assertEquals(modelRelease(c, direct), h.buf.release(direct), h.toString());
                }
                assertEquals(0, g.root().n, "everything of " + g + " released");
                for (Count c : g.counts) assertTrue(c.n == 0 || g.root().n == 0, "a count left over in " + g);
                for (Handle h : g.handles) assertEquals(0, h.buf.refCnt(), h.toString());
            }
            groups.clear();
        }
    }

    /** Releases n references of c in the model; true if c reached 0. A retained slice that reaches 0 releases
     * the reference it holds on its parent, which may free that in turn. When the root reaches 0 its memory is
     * gone, and every handle of the group is dead (Handle.live), retained slices included. */
    static boolean modelRelease(Count c, int n) {
        c.n -= n;
        if (c.n > 0) return false;
        // A parent released to 0 meanwhile (over-released through its own handles) has nothing left to give back.
        for (Count p = c; p.n == 0 && p.parent != null && p.parent.n > 0; p = p.parent) p.parent.n--;
        return true;
    }

    static String firstDifference(byte[] model, int off, byte[] got) {
        for (int i = 0; i < got.length; i++) {
            if (model[off + i] != got[i]) return "offset " + i + ": model " + model[off + i] + ", buffer " + got[i];
        }
        return "nowhere";
    }

    @Test
    void fourThreadsOfRandomCallsMatchTheModelAfterEveryStep() throws Exception {
        SplittableRandom master = new SplittableRandom(SEED);
        List<Walker> walkers = new ArrayList<>();
        for (int i = 0; i < THREADS; i++) walkers.add(new Walker(i, master.split()));
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (Walker w : walkers) {
            Thread t = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                w.run();
            }, "randseq-" + w.index);
            threads.add(t);
            t.start();
        }
        start.countDown();
        for (Thread t : threads) {
            t.join(TimeUnit.MINUTES.toMillis(2));
            assertFalse(t.isAlive(), t.getName() + " did not finish within 2 minutes (a hang?); seed " + SEED);
        }
        for (Walker w : walkers) {
            if (w.failure != null) throw new AssertionError(w.context(), w.failure);
        }

        // What the threads left: the groups in the queue and their own, released here on the main thread.
        Walker last = walkers.get(0);
        List<Group> left = new ArrayList<>();
        for (Group g; (g = handoff.poll()) != null; ) left.add(g);
        for (Walker w : walkers) {
            left.addAll(w.groups);
            w.groups.clear();
        }
        last.groups.addAll(left);
        left.clear();
        try {
            last.step = STEPS;
            for (Group g : last.groups) last.checkContent(g);
            last.releaseAll();
        } catch (Throwable e) {
            throw new AssertionError(last.context(), e);
        }

        // The safety net: every dropped group is reclaimed by the cleaner, and reported when it should be.
        List<OhmPool> open = new ArrayList<>();
        open.add(shared);
        for (Walker w : walkers) if (w.pool != null) open.add(w.pool);
        long deadline = System.nanoTime() + GC_WAIT_NANOS;
        while (!reclaimed(open) && System.nanoTime() < deadline) {
            System.gc();
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20)); // lets the cleaner thread run between GCs
        }
        for (OhmPool p : open) {
            assertEquals(0, p.stats().activeBlocks(), "pool " + p.name() + " still has live blocks "
                    + GC_WAIT_NANOS / 1_000_000_000 + " s after everything was released or dropped; seed " + SEED);
        }
        StringBuilder wrong = new StringBuilder();
        int gc = 0, closed = 0, silent = 0;
        for (Expect e : expects.values()) {
            List<LeakReport.Reason> got = reports.getOrDefault(e.id, List.of());
            boolean ok;
            if (e.closedLive) {
                ok = got.equals(List.of(LeakReport.Reason.POOL_CLOSED));
                closed++;
            } else if (e.gcReport) {
                ok = got.equals(List.of(LeakReport.Reason.GC))
                        || e.poolClosed && got.equals(List.of(LeakReport.Reason.POOL_CLOSED));
                gc++;
            } else if (e.droppedSilent) {
                ok = got.isEmpty() || e.poolClosed && got.equals(List.of(LeakReport.Reason.POOL_CLOSED));
                silent++;
            } else {
                ok = got.isEmpty(); // released, or never dropped: never reported
            }
            if (!ok) wrong.append("\n  ").append(e.what).append(": reports ").append(got).append(", history:").append(e.history);
        }
        assertEquals("", wrong.toString(), "leak reports that differ from the model (seed " + SEED + ", " + gc
                + " dropped with references, " + silent + " held only by retained slices, " + closed
                + " live at a pool close)");
        System.out.println("RandomSequenceTest: seed " + SEED + ", " + THREADS + " threads x " + STEPS + " steps: "
                + new TreeMap<>(ops) + "; leaks: " + gc + " dropped with references, " + silent
                + " held only by retained slices, " + closed + " live at a pool close");
        for (Walker w : walkers) if (w.pool != null) w.pool.close();
        for (Expect e : expects.values()) {
            if (!e.closedLive && !e.gcReport && !e.droppedSilent) {
                assertNull(reports.get(e.id), "closing an empty pool reported " + e.what);
            }
        }
    }

    /** Whether every dropped group that must be reported was, and the pools have nothing live. */
    private boolean reclaimed(List<OhmPool> pools) {
        for (Expect e : expects.values()) {
            if (e.gcReport && !e.poolClosed && !reports.containsKey(e.id)) return false;
        }
        for (OhmPool p : pools) if (p.stats().activeBlocks() != 0) return false;
        return true;
    }
}
