package org.ohm;

import java.lang.ref.PhantomReference;

/**
 * The Java side of one native buffer handle: its (handle, id) pair, what accesses check (generation, address,
 * capacity), and the phantom reference on its {@link Shell} that lets the cleaner reclaim the native buffer when no
 * handle can reach the shell any more while it is still lent (the Cleaner protocol of ohm.h).
 *
 * <p>A tracker of a count owner (a root buffer or a retained slice) also carries that count's liveness, its
 * generation: 0 once the count is gone. A handle records the generation it was made for, and plain slices and
 * duplicates check their owner's and their root's generation too, so a release through any of them makes all of
 * them fail. The fields read on access are plain: a release on the same thread is always seen; a release racing
 * with an access on another thread is the caller's bug (as it is with Netty's buffers), documented on
 * {@link OhmBuffer}. A tracker never points at its shell (that would keep the shell reachable forever).
 */
final class Tracker extends PhantomReference<Shell> {
    final long handle;
    /** ohm_buf_id of the current lend (a magazine shell's moves at each lend), and of the first: a lend moves the
     * native generation by 2 and the Java one by 1, so the id of lend gen is {@link #idOf}. */
    long id;
    final long baseId;
    /** The lend generation: nonzero while the count is above 0 (as Java knows it); 0 once released, reclaimed,
     * parked, or its pool or task ended. Buffers that are not reused have generation 1 for life. */
    long gen = 1;
    /** Lends so far (magazine shells): the next generation is one more, so generations never repeat. */
    long lends = 1;
    final long address;
    long capacity;
    /** The count this buffer uses (itself for roots and retained slices; its owner's for plain slices) and the
     * root whose memory it views (itself for roots), with their generations when this handle was made. */
    final Tracker count, memory;
    final long countGen, memGen;
    /** count or memory is another tracker, so accesses check their generations too. */
    final boolean derivedView;
    /** A root or retained slice (its own count), as opposed to a plain slice or duplicate's handle. */
    final boolean countOwner;
    /** A magazine buffer that never had a slice, duplicate, retained slice, leak record or native user: its last
     * release parks it again (ohm.h's contract) instead of ending it. Count owners only. */
    boolean plain;
    /** The magazine size class of a magazine shell, else -1. */
    final int cls;
    /** The leak detector tracks this buffer's count (touch records accesses). */
    boolean tracked;
    /** Roots: the memory may not be written (a read-only mapping, or sealed); writes check it, since they would
     * fault. */
    boolean readOnly; // plain: set before the buffer is published, or by seal() (same-thread rule as `gen`)
    /** Roots: a writable nioBuffer of this memory was handed out, so it may never be sealed (a store through the
     * view would fault). Written and read with this tracker's lock held (OhmBuffer's view and seal). */
    boolean writableView;
    /** What ends this handle besides release: the private OhmPool it came from, or the TaskMemory of a page. */
    final Object scope;
    /** Retained slices: the count they hold a reference on, which their last release may take to 0. */
    final Tracker parentCount;
    /** The allocation site of a buffer the leak detector tracks (null otherwise); formatted only if needed. */
    volatile Throwable site;

    // the safety net's bookkeeping (see SafetyNet)
    SafetyNet.Local local;
    int slot;
    Tracker nextRemote;
    boolean registered; // plain: written by the releasing thread before the GC or a CAS hands the tracker on

    /** A root or retained slice (count == memory == this for roots; a retained slice's memory is parent's). */
    Tracker(Shell referent, long handle, long id, long address, long capacity, Object scope, Tracker parentCount,
            Tracker memory, int cls) {
        this(referent, handle, id, address, capacity, true, scope, parentCount, null, memory, cls);
    }

    /** A plain slice or duplicate of parent: parent's count and memory, its own handle. */
    Tracker(Shell referent, long handle, long id, long address, long capacity, Tracker parent) {
        this(referent, handle, id, address, capacity, false, parent.scope, null, parent.count, parent.memory, -1);
        this.tracked = parent.tracked;
    }

    private Tracker(Shell referent, long handle, long id, long address, long capacity, boolean countOwner,
                    Object scope, Tracker parentCount, Tracker count, Tracker memory, int cls) {
        super(referent, SafetyNet.QUEUE);
        this.handle = handle;
        this.id = id;
        this.baseId = id;
        this.address = address;
        this.capacity = capacity;
        this.countOwner = countOwner;
        this.scope = scope;
        this.parentCount = parentCount;
        this.count = count != null ? count : this;
        this.countGen = this.count.gen;
        this.memory = memory != null ? memory : this;
        this.memGen = this.memory.gen;
        this.derivedView = count != null || memory != null;
        this.cls = cls;
    }

    /** The id of this buffer's lend of generation g (what a handle made for it reports, released or not). */
    long idOf(long g) {
        return baseId + ((g - 1) << 33);
    }

    boolean live() {
        return gen != 0;
    }

    /** The count and memory this handle depends on are still the ones it was made for. */
    boolean depsLive() {
        return count.gen == countGen && memory.gen == memGen;
    }

    /**
     * The count reached 0 (or its memory went with a pool or task): every buffer sharing it now fails, the
     * cleaner forgets it, and a retained slice's parent is checked, since this count held a reference on it.
     */
    void died() {
        if (gen == 0) return;
        gen = 0;
        SafetyNet.remove(this);
        if (site != null) LeakDetector.untrack(this);
        if (scope instanceof TaskMemory) ((TaskMemory) scope).pageGone(this);
        Tracker p = parentCount;
        if (p != null && p.gen != 0 && Native.bufRefCnt(p.handle, p.id) == 0) p.died();
    }
}
