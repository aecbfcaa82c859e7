package org.ohm.test;

import java.util.List;

/**
 * Buffers a {@link LeakScope} found still live at its close. The message lists each one: size, the Java line
 * that allocated it (file:line), its hints ({@code OhmBuffer.touch}), and the whole allocation stack. An
 * AssertionError, so that test frameworks report it as a failed test.
 */
public final class LeakException extends AssertionError {
    private static final long serialVersionUID = 1L;

    private final transient List<LeakScope.Leak> leaks;

    LeakException(List<LeakScope.Leak> leaks) {
        super(LeakScope.describe(leaks));
        this.leaks = List.copyOf(leaks);
    }

    /** {@return the leaked buffers, in allocation order} */
    public List<LeakScope.Leak> leaks() {
        return leaks;
    }
}
