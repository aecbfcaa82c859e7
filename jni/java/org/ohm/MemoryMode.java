package org.ohm;

/** Spark's memory modes: each has its own execution and storage pools. */
public enum MemoryMode {
    /** Accounting only, for memory the JVM allocates itself (the Java heap). */
    ON_HEAP,
    /** Memory ohm allocates: pages ({@link MemoryConsumer#allocatePage}) come from a pool. */
    OFF_HEAP
}
