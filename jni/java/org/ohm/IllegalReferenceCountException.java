package org.ohm;

/**
 * A reference-count rule was broken, as Netty's exception of the same name says it: retain or release of a
 * released buffer ("refCnt: 0, increment: 1"), releasing more references than there are, or a count that would
 * overflow. An IllegalStateException.
 */
public class IllegalReferenceCountException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the whole message
     */
    public IllegalReferenceCountException(String message) {
        super(message);
    }

    /**
     * Netty's message: "refCnt: 0, increment: 1" or "refCnt: 1, decrement: 2".
     *
     * @param refCnt the count before the change
     * @param change the increment (above 0) or the decrement (below 0) that broke the rule
     */
    public IllegalReferenceCountException(int refCnt, int change) {
        super("refCnt: " + refCnt + ", " + (change > 0 ? "increment: " + change : "decrement: " + -change));
    }
}
