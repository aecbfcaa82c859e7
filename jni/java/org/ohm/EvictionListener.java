package org.ohm;

/**
 * Told when the block cache evicts a block to make room ({@link MemoryManager#putBlock}). Runs on the thread
 * whose acquire or put caused the eviction, without the manager's lock (it may acquire, release or remove other
 * blocks).
 */
@FunctionalInterface
public interface EvictionListener {
    /**
     * Returning lets the block go: the cache then gives up its references on the buffer (retain() it first to
     * keep it, e.g. to write it elsewhere). Throwing keeps the block cached and fails the acquire or put that
     * caused the eviction with this exception (a checked one wrapped in {@link OhmCallbackException}).
     *
     * @param buffer the cached buffer, or null for a block cached by size only
     * @param blockId the evicted block's id
     * @throws Exception to keep the block cached and fail the acquire or put that caused the eviction
     */
    void evicted(String blockId, OhmBuffer buffer) throws Exception;
}
