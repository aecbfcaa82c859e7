package org.ohm;

/** A wait for memory timed out (ETIMEDOUT): a task's acquire did not get its fair share within its timeout. */
public class OhmTimeoutException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what timed out
     */
    public OhmTimeoutException(String message) {
        super(message);
    }
}
