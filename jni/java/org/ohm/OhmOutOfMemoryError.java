package org.ohm;

/**
 * The runtime could not provide memory: the OS or a pool's cap refused it (ENOMEM), or the memory manager could
 * not grant it (ELIMIT; from {@link MemoryConsumer#allocatePage} with Spark's message "Unable to acquire X bytes
 * of memory, got Y", where Spark users catch its SparkOutOfMemoryError). An OutOfMemoryError, so code that
 * handles the JVM's own keeps working; unlike the JVM's, the process is fine afterwards.
 */
public class OhmOutOfMemoryError extends OutOfMemoryError {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what could not be allocated
     */
    public OhmOutOfMemoryError(String message) {
        super(message);
    }
}
