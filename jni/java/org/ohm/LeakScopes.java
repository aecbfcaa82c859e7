package org.ohm;

/**
 * The runtime side of {@code org.ohm.test.LeakScope}: not an API of its own (public only so that org.ohm.test can
 * reach it). A scope is the runtime's ohm_leak_scope: while a thread belongs to one, every buffer it allocates is
 * tracked with its Java site, and closing the scope lists those still live.
 *
 * <p>Which scope a thread belongs to is held in an InheritableThreadLocal, so that threads started inside a scope
 * belong to it; the runtime has no thread-start hook, so such a thread joins the runtime's scope lazily, at its
 * first allocation ({@link #enter}); one that first allocates after its scope closed belongs to the innermost
 * scope around it still open (a worker a test iteration started, serving the whole run). Outside scopes the allocation paths pay one read of {@link #active}.
 */
public final class LeakScopes {
    private LeakScopes() {}

    /** Scopes open in this process (opened here and not closed yet). */
    static volatile int active;

    /** An open (or closed) scope: its runtime id, the thread that opened it, and the scope it is nested in. */
    public static final class Frame {
        final long id;
        final Thread opener;
        final Frame parent;
        volatile boolean open = true;

        Frame(long id, Thread opener, Frame parent) {
            this.id = id;
            this.opener = opener;
            this.parent = parent;
        }

        /** {@return the runtime's id of this scope} */
        public long id() {
            return id;
        }

        /** {@return whether the scope is still open} */
        public boolean isOpen() {
            return open;
        }
    }

    private static final InheritableThreadLocal<Frame> CURRENT = new InheritableThreadLocal<>();

    static {
        Native.init();
    }

    /**
     * A new scope, nested in the calling thread's current one; the thread belongs to it until it is closed.
     *
     * @return the new scope
     */
    public static Frame open() {
        SafetyNet.Local l = SafetyNet.local();
        enter(l); // an inherited scope first, so that the new one nests in it
        Frame cur = CURRENT.get();
        Frame f = new Frame(Native.scopeOpen(), Thread.currentThread(), cur != null && cur.open ? cur : null);
        synchronized (LeakScopes.class) {
            active++;
        }
        CURRENT.set(f);
        l.scope = f;
        return f;
    }

    /**
     * Closes f (by the thread that opened it, innermost first) after waiting up to waitMs for other threads to
     * release its buffers; the buffers still live, 5 strings each: buffer id, size, Java site text (or null),
     * hints (or null), the runtime's report text.
     *
     * @param f the scope to close
     * @param waitMs how long to wait for other threads' releases, in milliseconds
     * @return 5 strings for each buffer still live (none: an empty array)
     */
    public static String[] close(Frame f, int waitMs) {
        if (f.opener != Thread.currentThread())
            throw new IllegalStateException("a leak scope is closed by the thread that opened it (" + f.opener + ")");
        if (!f.open) throw new IllegalStateException("the leak scope is closed already");
        if (CURRENT.get() != f) throw new IllegalStateException("a leak scope opened inside this one is still open");
        String[] leaks = Native.scopeClose(f.id, Math.max(0, waitMs));
        for (int i = 0; leaks != null && i + 4 < leaks.length; i += 5) {
            if (leaks[i + 2] == null) leaks[i + 2] = LeakDetector.siteOf(Long.parseUnsignedLong(leaks[i]));
        }
        f.open = false;
        synchronized (LeakScopes.class) {
            active--;
        }
        CURRENT.set(f.parent);
        SafetyNet.local().scope = f.parent;
        return leaks;
    }

    /**
     * The calling thread joins f (and threads it starts from now on belong to f too).
     *
     * @param f the scope to join
     */
    public static void join(Frame f) {
        if (!f.open) throw new IllegalStateException("the leak scope is closed");
        SafetyNet.Local l = SafetyNet.local();
        if (l.scope == f && CURRENT.get() == f) return;
        if (l.scope != null && l.scope.open && l.scope.opener == Thread.currentThread())
            throw new IllegalStateException("this thread is in a leak scope it opened; close that one first");
        leaveRuntime(l);
        int rc = Native.scopeJoin(f.id);
        if (rc < 0) throw new IllegalStateException("joining leak scope " + f.id + ": " + Native.strerror(rc));
        CURRENT.set(f);
        l.scope = f;
    }

    /** The calling thread leaves the scope it joined (a no-op on a thread that joined none). */
    public static void leave() {
        SafetyNet.Local l = SafetyNet.local();
        Frame f = CURRENT.get();
        if (f != null && f.opener == Thread.currentThread() && f.open)
            throw new IllegalStateException("leave is for a thread that joined; the opener closes the scope");
        leaveRuntime(l);
        CURRENT.remove();
    }

    /** {@return the calling thread's scope, or null} */
    public static Frame current() {
        return nearestOpen(CURRENT.get());
    }

    /** f, or the innermost scope around it still open: a thread started in a scope closed since belongs there. */
    private static Frame nearestOpen(Frame f) {
        while (f != null && !f.open) f = f.parent;
        return f;
    }

    private static void leaveRuntime(SafetyNet.Local l) {
        Frame have = l.scope;
        if (have != null && have.opener != Thread.currentThread()) Native.scopeLeave();
        l.scope = null;
    }

    /**
     * Whether the calling thread (l is its Local) belongs to an open scope now, joining the runtime's scope it
     * inherited first if it has not yet: called on allocation paths when a scope is open somewhere.
     */
    static boolean enter(SafetyNet.Local l) {
        Frame inherited = CURRENT.get(), f = nearestOpen(inherited);
        Frame have = l.scope;
        if (f == have) return f != null;
        leaveRuntime(l);
        if (f != inherited) CURRENT.set(f); // the threads this one starts from now on belong there too
        l.scope = f;
        return f != null && Native.scopeJoin(f.id) == 0;
    }
}
