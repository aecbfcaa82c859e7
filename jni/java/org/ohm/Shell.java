package org.ohm;

/**
 * What every {@link OhmBuffer} handle points at: the object the safety net watches (its {@link Tracker}'s
 * referent), so that a buffer stays unreclaimed exactly as long as some handle of it can still be used.
 *
 * <p>A shell of a pool buffer from a thread's magazine is reused: lent as a new buffer, parked again at its last
 * release, lent again. Each lend makes a new handle {@code (shell, generation)}; the tracker's generation moves
 * at every lend and is 0 while parked, so a handle kept past its release fails (IllegalStateException) whoever
 * holds the shell, the header or the memory next. Shells of other buffers (slices, mapped files, shared memory,
 * pages) live once. A handle reads its shell on every access, which is what keeps the shell reachable while the
 * handle is in use (a handle the JIT scalar-replaces has no object of its own for the GC to see).
 */
final class Shell {
    /** Set once, right after construction (the tracker needs the shell as its referent first). */
    Tracker t;
    /** The shell of the buffer this one's memory or count depends on (slices, retained slices), kept reachable so
     * that the cleaner never reclaims memory a live slice still uses; null for roots. */
    final Shell parent;

    Shell(Shell parent) {
        this.parent = parent;
    }
}
