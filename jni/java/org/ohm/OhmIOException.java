package org.ohm;

import java.io.IOException;
import java.io.UncheckedIOException;

/** An OS call failed (ESYS): mapping a file, opening shared memory. The cause is an IOException with the same
 * message, which names the call and the OS error ("open /tmp/x: No such file or directory"). */
public class OhmIOException extends UncheckedIOException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the call and the OS error; the cause is an IOException with the same message
     */
    public OhmIOException(String message) {
        super(message, new IOException(message));
    }

    /**
     * @param message the call and the OS error
     * @param cause the underlying I/O error
     */
    public OhmIOException(String message, IOException cause) {
        super(message, cause);
    }
}
