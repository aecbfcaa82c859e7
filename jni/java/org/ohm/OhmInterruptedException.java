package org.ohm;

/**
 * A wait for memory was interrupted (ECANCELED): {@link Thread#interrupt()} of the waiting thread, or
 * {@link TaskMemory#cancelWait()}. The thread's interrupt status is left set, as an interruptible channel
 * leaves it, so code further up still sees the interrupt.
 */
public class OhmInterruptedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was interrupted
     */
    public OhmInterruptedException(String message) {
        super(message);
    }
}
