package org.ohm;

import java.lang.reflect.Field;

/**
 * Raw memory access for buffers: sun.misc.Unsafe (module jdk.unsupported) when the JVM has it, which reads and
 * writes buffer memory in about a nanosecond, against about 15 ns for a JNI call (ohm-bench-java's access
 * workload measures both). {@code -Dohm.access=jni} selects the JNI route, which checks each access in C; so
 * does a JVM without Unsafe. Callers check liveness and bounds before any access here.
 *
 * <p>The one class that names sun.misc.Unsafe (the others use {@link #U}): jni/CMakeLists.txt compiles it apart,
 * without javac's "internal proprietary API" warning, which no annotation can suppress.
 */
final class Memory {
    private Memory() {}

    static final sun.misc.Unsafe U = unsafe();
    /** Whether buffer memory is accessed from Java (true) or through JNI (false). Constant for the JIT. */
    static final boolean DIRECT = U != null && !"jni".equals(System.getProperty("ohm.access"));
    static final long BYTE_ARRAY_BASE = U != null ? U.arrayBaseOffset(byte[].class) : 0;

    private static sun.misc.Unsafe unsafe() {
        try {
            Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (sun.misc.Unsafe) f.get(null);
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            return null;
        }
    }

    /** Per-thread scratch blocks for natives that return several values (never freed: a few bytes a thread). */
    static long allocateScratch() {
        if (U != null) return U.allocateMemory(64);
        throw new UnsupportedOperationException("no sun.misc.Unsafe");
    }
}
