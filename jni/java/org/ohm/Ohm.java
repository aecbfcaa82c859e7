package org.ohm;

/**
 * The entry point: the JVM's default pool, pool configuration, and what the library is.
 *
 * <pre>{@code
 * try (OhmBuffer b = Ohm.allocate(1024)) {
 *     b.putLong(0, 42);
 * }
 * OhmPool pool = Ohm.builder().name("io").maxMapped(1L << 30).build();
 * }</pre>
 */
public final class Ohm {
    private Ohm() {}

    private static final class DefaultPool {
        static final OhmPool POOL = OhmPool.makeDefault();
    }

    /**
     * The JVM's default pool (see {@link OhmPool}).
     *
     * @return the default pool
     */
    public static OhmPool defaultPool() {
        return DefaultPool.POOL;
    }

    /**
     * A buffer of size bytes from the default pool.
     *
     * @param size the size in bytes
     * @return the buffer, with a count of 1
     */
    public static OhmBuffer allocate(long size) {
        return DefaultPool.POOL.allocate(size);
    }

    /**
     * A builder for a private pool, starting from {@link PoolConfig#defaults()}.
     *
     * @return a new builder
     */
    public static PoolConfig.Builder builder() {
        return PoolConfig.builder();
    }

    /**
     * Where the native library came from: "ohm.library.path" (-Dohm.library.path), "java.library.path"
     * (System.loadLibrary) or "resource" (the copy in the jar).
     *
     * @return "ohm.library.path", "java.library.path" or "resource"
     */
    public static String nativeLibrarySource() {
        return Native.SOURCE;
    }

    /** {@return whether buffer memory is read and written from Java ("unsafe") or through JNI ("jni")} */
    public static String accessMode() {
        return Memory.DIRECT ? "unsafe" : "jni";
    }
}
