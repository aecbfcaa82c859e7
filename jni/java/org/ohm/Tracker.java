package org.ohm;

import java.lang.ref.PhantomReference;

/**
 * The Java side of one native buffer handle: its (handle, id) pair, and the phantom reference that lets the
 * cleaner reclaim it when its {@link OhmBuffer} becomes unreachable unreleased (the Cleaner protocol of ohm.h).
 *
 * <p>A tracker of a count owner (a root buffer or a retained slice) also carries that count's liveness, which
 * every buffer sharing the count reads before each access: plain slices and duplicates point at their owner's
 * tracker, so a release through any of them makes all of them fail. {@code live} is a plain field: a release on
 * the same thread is always seen; a release racing with an access on another thread is the caller's bug (as it
 * is with Netty's buffers), documented on {@link OhmBuffer}.
 */
final class Tracker extends PhantomReference<OhmBuffer> {
    final long handle;
    final long id;
    /** A root or retained slice (its own count), as opposed to a plain slice or duplicate's handle. */
    final boolean countOwner;
    /** The count is above 0. Count owners only; false once released, reclaimed, or its pool or task ended. */
    boolean live = true;
    /** Roots: the memory may not be written (a read-only mapping, or sealed); writes check it, since they would
     * fault. */
    boolean readOnly; // plain: set before the buffer is published, or by seal() (same-thread rule as `live`)
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

    Tracker(OhmBuffer referent, long handle, long id, boolean countOwner, Object scope, Tracker parentCount) {
        super(referent, SafetyNet.QUEUE);
        this.handle = handle;
        this.id = id;
        this.countOwner = countOwner;
        this.scope = scope;
        this.parentCount = parentCount;
    }

    /**
     * The count reached 0 (or its memory went with a pool or task): every buffer sharing it now fails, the
     * cleaner forgets it, and a retained slice's parent is checked, since this count held a reference on it.
     */
    void died() {
        if (!live) return;
        live = false;
        SafetyNet.remove(this);
        if (site != null) LeakDetector.untrack(this);
        if (scope instanceof TaskMemory) ((TaskMemory) scope).pageGone(this);
        Tracker p = parentCount;
        if (p != null && p.live && Native.bufRefCnt(p.handle, p.id) == 0) p.died();
    }
}
