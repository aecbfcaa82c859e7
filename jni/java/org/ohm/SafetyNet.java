package org.ohm;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The safety net: keeps every buffer's {@link Tracker} (a phantom reference) reachable until the buffer is
 * released, and reclaims on a daemon thread ("ohm-cleaner") the handles whose buffers the GC found unreachable
 * while still live (ohm_buf_reclaim; the core reports the leak).
 *
 * <p>Why not java.lang.ref.Cleaner: registering and cleaning a Cleanable per buffer costs two monitor round trips
 * and two more objects, 37-59 ns on top of an 82-103 ns allocate-write-release pair on the development machine
 * ({@code ohm-bench-java --workload cleaner-cost}), which alone would lose the comparison with Netty's pooled
 * buffers. Here each thread owns slots (a {@link Local}): registering takes a free slot from the owner's stack,
 * and a release on the owner thread puts it back with two plain stores; a release on another thread pushes the
 * tracker on the owner's lock-free remote list, which the owner drains when its
 * own stack runs dry. A released tracker is simply dropped (no Reference.clear, a native call in JDK 17): an
 * unreachable Reference is never discovered by the GC.
 */
final class SafetyNet {
    private SafetyNet() {}

    static final ReferenceQueue<Shell> QUEUE = new ReferenceQueue<>();
    private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(Tracker[].class);
    private static final VarHandle REMOTE;
    static {
        try {
            REMOTE = MethodHandles.lookup().findVarHandle(Local.class, "remote", Tracker.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Every Local ever made (threads come and go; a dead thread's Local is adopted by the next new thread). */
    private static final List<Local> LOCALS = new ArrayList<>();
    private static final ThreadLocal<Local> LOCAL = ThreadLocal.withInitial(SafetyNet::adopt);

    /** One thread's slots and its scratch block for natives. Fields are the owner thread's unless noted. */
    static final class Local {
        volatile Thread owner;
        final long scratch;             // native address of 64 bytes
        final ByteBuffer scratchBuf;    // the same memory, when sun.misc.Unsafe is missing
        volatile Tracker[] slots = new Tracker[64]; // read by enumerations and remote removals (opaque)
        int[] free = new int[64];
        int nfree;
        int used;                       // slots handed out so far (the next never-used index)
        volatile Tracker remote;        // removals by other threads (CAS push, owner exchange)
        Magazine.Mags mags;             // this thread's magazines of the default pool (made at first use)
        LeakScopes.Frame scope;         // the scope this thread belongs to in the runtime (LeakScopes.enter)

        Local() {
            if (Memory.U != null) {
                scratch = Memory.U.allocateMemory(64);
                scratchBuf = null;
            } else {
                scratchBuf = ByteBuffer.allocateDirect(64).order(ByteOrder.nativeOrder());
                scratch = Native.directAddress(scratchBuf);
            }
        }

        /** out[i] of the last native that wrote this thread's scratch block. */
        long out(int i) {
            return Memory.U != null ? Memory.U.getLong(scratch + 8L * i) : scratchBuf.getLong(8 * i);
        }
    }

    private static Local adopt() {
        Thread me = Thread.currentThread();
        synchronized (LOCALS) {
            for (Local l : LOCALS) {
                Thread o = l.owner;
                if (o != null && !o.isAlive()) {
                    l.owner = me;
                    return l;
                }
            }
            Local l = new Local();
            l.owner = me;
            LOCALS.add(l);
            return l;
        }
    }

    /** The calling thread's Local (a ThreadLocal lookup, a few nanoseconds). */
    static Local local() {
        return LOCAL.get();
    }

    /** Registers t in l, which must be the calling thread's. */
    static void add(Local l, Tracker t) {
        int s;
        if (l.nfree > 0) {
            s = l.free[--l.nfree];
        } else {
            s = newSlot(l);
        }
        Tracker[] slots = l.slots;
        t.local = l;
        t.slot = s;
        t.registered = true;
        SLOT.setRelease(slots, s, t);
    }

    private static int newSlot(Local l) {
        drainRemote(l);
        if (l.nfree > 0) return l.free[--l.nfree];
        Tracker[] slots = l.slots;
        if (l.used == slots.length) {
            Tracker[] bigger = new Tracker[slots.length * 2];
            for (int i = 0; i < slots.length; i++) bigger[i] = (Tracker) SLOT.getOpaque(slots, i);
            l.slots = bigger;
            l.free = java.util.Arrays.copyOf(l.free, bigger.length);
        }
        return l.used++;
    }

    private static void drainRemote(Local l) {
        Tracker t = (Tracker) REMOTE.getAndSet(l, (Tracker) null);
        Tracker[] slots = l.slots;
        while (t != null) {
            Tracker next = t.nextRemote;
            t.nextRemote = null;
            SLOT.setOpaque(slots, t.slot, (Tracker) null); // again: a growth may have copied it meanwhile
            l.free[l.nfree++] = t.slot;
            t = next;
        }
    }

    /** Forgets t (any thread). At most once per tracker; later calls do nothing. */
    static void remove(Tracker t) {
        if (!t.registered) return;
        t.registered = false;
        Local l = t.local;
        SLOT.setOpaque(l.slots, t.slot, (Tracker) null);
        if (l.owner == Thread.currentThread()) {
            l.free[l.nfree++] = t.slot;
        } else {
            Tracker head;
            do {
                head = l.remote;
                t.nextRemote = head;
            } while (!REMOTE.compareAndSet(l, head, t));
        }
    }

    /** Calls fn for every registered tracker (a snapshot; trackers added meanwhile may be missed). */
    static void forEach(Consumer<Tracker> fn) {
        List<Local> locals;
        synchronized (LOCALS) {
            locals = new ArrayList<>(LOCALS);
        }
        for (Local l : locals) {
            Tracker[] slots = l.slots;
            for (int i = 0; i < slots.length; i++) {
                Tracker t = (Tracker) SLOT.getOpaque(slots, i);
                if (t != null && t.registered) fn.accept(t);
            }
        }
    }

    /** Calls fn for every Local (a snapshot of the list). */
    static void forEachLocal(Consumer<Local> fn) {
        List<Local> locals;
        synchronized (LOCALS) {
            locals = new ArrayList<>(LOCALS);
        }
        for (Local l : locals) fn.accept(l);
    }

    private static long lastDeadScan;

    /**
     * Gives back the magazines of threads that ended (normally or by an exception), at most once a second. Under
     * the LOCALS lock, so no new thread adopts such a Local meanwhile; a thread seen dead has finished every
     * action (Thread.isAlive), so its plain fields are safe to read here.
     */
    private static void flushDeadThreads() {
        long now = System.nanoTime();
        if (now - lastDeadScan < 1_000_000_000L) return;
        lastDeadScan = now;
        synchronized (LOCALS) {
            for (Local l : LOCALS) {
                Thread o = l.owner;
                Magazine.Mags m = l.mags;
                if (m != null && o != null && !o.isAlive()) {
                    l.mags = null;
                    Magazine.retire(m, l);
                }
            }
        }
    }

    // ---- the cleaner thread

    static {
        Thread t = new Thread(SafetyNet::cleanLoop, "ohm-cleaner");
        t.setDaemon(true);
        t.start();
    }

    private static void cleanLoop() {
        for (;;) {
            try {
                Reference<? extends Shell> r = QUEUE.remove(1000);
                if (r != null) clean((Tracker) r);
                flushDeadThreads();
            } catch (InterruptedException e) {
                // a daemon that lives as long as the JVM: keep going
            } catch (Throwable e) {
                NativeLog.warn("ohm-cleaner: " + e);
            }
        }
    }

    /** A buffer became unreachable: if its handle is still live, reclaim it (the core reports the leak). */
    static void clean(Tracker t) {
        if (!t.registered) return; // released meanwhile: nothing to do
        remove(t);
        if (t.countOwner && t.gen == 0) return;
        Object scope = t.scope;
        if (scope instanceof OhmPool) {
            OhmPool p = (OhmPool) scope;
            synchronized (p) { // a pool being destroyed must not see a reclaim at the same time
                if (!p.isClosed()) reclaim(t);
            }
        } else if (scope instanceof TaskMemory) {
            TaskMemory task = (TaskMemory) scope;
            synchronized (task) {
                if (!task.isClosed()) reclaim(t);
            }
        } else {
            reclaim(t);
        }
    }

    private static void reclaim(Tracker t) {
        Throwable site = t.site;
        if (site != null) {
            Native.bufSetSite(t.handle, t.id, Native.cstr(LeakDetector.siteText(site)));
            LeakDetector.untrack(t);
        }
        int r = Native.bufReclaim(t.handle, t.id);
        if (t.countOwner) {
            t.gen = 0;
            Tracker p = t.parentCount;
            if (r == 1 && p != null && p.gen != 0 && Native.bufRefCnt(p.handle, p.id) == 0) p.died();
        }
    }
}
