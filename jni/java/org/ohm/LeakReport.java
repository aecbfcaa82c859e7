package org.ohm;

import java.util.Objects;

/**
 * One leak: a buffer that was never released, found by the GC (its memory has been reclaimed), still live when
 * its pool was closed, or still live at a {@link LeakDetector#check checkpoint}.
 */
public final class LeakReport {
    /** Why the buffer was reported. */
    public enum Reason {
        /** The GC found the buffer unreachable while its count was above 0; its memory was reclaimed. */
        GC,
        /** Its pool was closed while the buffer was live. */
        POOL_CLOSED,
        /** It was still live at a checkpoint ({@link LeakDetector#check}). */
        CHECKPOINT
    }

    private final Reason reason;
    private final long bufferId;
    private final long size;
    private final String allocationSite;
    private final String text;
    private final String json;

    LeakReport(Reason reason, long bufferId, long size, String allocationSite, String text, String json) {
        this.reason = Objects.requireNonNull(reason);
        this.bufferId = bufferId;
        this.size = size;
        this.allocationSite = allocationSite;
        this.text = text == null ? "" : text;
        this.json = json == null ? "{}" : json;
    }

    /** {@return why the buffer is reported} */
    public Reason reason() { return reason; }

    /** {@return the buffer's id when it was created (ohm_buf_id)} */
    public long bufferId() { return bufferId; }

    /** {@return its size in bytes (0 when the runtime did not track the buffer)} */
    public long size() { return size; }

    /**
     * The Java stack trace of the buffer's allocation, one frame a line ("\tat org.example.Foo.bar(Foo.java:12)"),
     * or null when the leak detector did not track this buffer (level OFF, or not sampled).
     *
     * @return the allocation's stack trace, or null
     */
    public String allocationSite() { return allocationSite; }

    /** {@return the whole report as text: what leaked, its size, where it was created, its recent accesses} */
    public String text() { return text; }

    /** {@return the report as one JSON object} */
    public String json() { return json; }

    @Override
    public String toString() { return text; }
}
