package org.ohm.stress;

import java.util.ArrayList;
import java.util.List;
import org.ohm.OhmBuffer;

/** What the driver tells a {@link Workload} on one of its threads. Not shared between threads. */
public final class Context {
    private final int thread;
    long iteration;
    final List<OhmBuffer> kept = new ArrayList<>();
    final Main.Run run;

    Context(int thread, Main.Run run) {
        this.thread = thread;
        this.run = run;
    }

    /** {@return this thread's number, 0 to threads - 1} */
    public int thread() {
        return thread;
    }

    /** {@return the iteration running now on this thread, from 1 (0 in setup; the last one in teardown)} */
    public long iteration() {
        return iteration;
    }

    /**
     * b is kept across iterations on purpose: not its iteration's leak; it must be released by teardown.
     *
     * @param b a buffer of this iteration
     * @return b
     */
    public OhmBuffer keep(OhmBuffer b) {
        kept.add(b);
        return b;
    }

    /**
     * Reports a wrong result the workload found (counted as an integrity error; the run fails).
     *
     * @param message what was wrong, for the summary
     */
    public void error(String message) {
        run.integrityError("thread " + thread + ", iteration " + iteration + ": " + message);
    }
}
