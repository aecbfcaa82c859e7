package org.ohm.stress;

/**
 * A user's workload for {@code org.ohm.stress.Main}: one instance per driver thread (made with its public no-arg
 * constructor). setup runs on that thread before its first iteration and teardown after its last, outside
 * leak scopes; each {@link #iteration} runs in a leak scope of its own, and every ohm buffer (OhmBuffers, Netty
 * buffers of ohm's allocator) it allocates and does not release is a leak named by its Java line. A buffer the
 * workload keeps across iterations is handed to {@link Context#keep} and must be released by teardown.
 */
public interface Workload {
    /**
     * Prepares this thread's state, before its first iteration (outside leak scopes).
     *
     * @param ctx the thread's context
     * @throws Exception to fail the run
     */
    default void setup(Context ctx) throws Exception {}

    /**
     * One iteration, in a leak scope of its own.
     *
     * @param ctx the thread's context
     * @throws Exception to fail the run
     */
    void iteration(Context ctx) throws Exception;

    /**
     * Releases this thread's state (what {@link Context#keep} kept), after its last iteration (outside leak scopes).
     *
     * @param ctx the thread's context
     * @throws Exception to fail the run
     */
    default void teardown(Context ctx) throws Exception {}
}
