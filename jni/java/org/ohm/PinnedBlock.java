package org.ohm;

/** A cached block pinned for reading ({@link MemoryManager#pinBlock}): it cannot be evicted or removed until this
 * is closed. */
public final class PinnedBlock implements AutoCloseable {
    private final MemoryManager mm;
    private final String blockId;
    private final OhmBuffer buffer;
    private boolean closed;

    PinnedBlock(MemoryManager mm, String blockId, OhmBuffer buffer) {
        this.mm = mm;
        this.blockId = blockId;
        this.buffer = buffer;
    }

    /** {@return the id of the pinned block} */
    public String blockId() { return blockId; }

    /** {@return the cached buffer (null for a block cached by size only); valid while pinned} */
    public OhmBuffer buffer() { return buffer; }

    /** Unpins the block. Closing twice does nothing. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        mm.unpin(blockId);
    }
}
