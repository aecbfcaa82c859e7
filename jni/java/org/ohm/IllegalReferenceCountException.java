package org.ohm;

/**
 * A reference-count rule was broken, as Netty's exception of the same name says it: retain or release of a
 * released buffer ("refCnt: 0, increment: 1"), releasing more references than there are, or a count that would
 * overflow. An IllegalStateException.
 */
public class IllegalReferenceCountException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public IllegalReferenceCountException(String message) {
        super(message);
    }

    public IllegalReferenceCountException(int refCnt, int change) {
        super("refCnt: " + refCnt + ", " + (change > 0 ? "increment: " + change : "decrement: " + -change));
    }
}
