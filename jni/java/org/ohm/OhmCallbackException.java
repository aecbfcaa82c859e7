package org.ohm;

/**
 * A callback the runtime made into Java failed (ECALLBACK): a {@link MemoryConsumer#spill} or an
 * {@link EvictionListener} threw a checked exception (its cause), or a callback returned something the runtime
 * cannot use. Unchecked exceptions thrown by a callback reach the caller of the acquire as they were thrown.
 */
public class OhmCallbackException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what failed
     */
    public OhmCallbackException(String message) {
        super(message);
    }

    /**
     * @param message what failed
     * @param cause the checked exception the callback threw
     */
    public OhmCallbackException(String message, Throwable cause) {
        super(message, cause);
    }
}
