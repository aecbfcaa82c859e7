package org.ohm;

/**
 * Receives leak reports (see {@link LeakDetector#setListener}). Called on whichever thread found the leak: the
 * "ohm-cleaner" thread for a buffer the GC reclaimed, the thread that closed a pool or task, or the caller of
 * {@link LeakDetector#check}. A listener must be quick and must not throw (what it throws is logged and
 * dropped).
 */
@FunctionalInterface
public interface LeakListener {
    /**
     * Called once for each leaked buffer.
     *
     * @param report what leaked, its size and where it was allocated
     */
    void leaked(LeakReport report);
}
