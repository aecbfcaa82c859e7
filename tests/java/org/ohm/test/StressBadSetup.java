package org.ohm.test;

import org.ohm.stress.Context;
import org.ohm.stress.Workload;

/** A workload whose setup throws: org.ohm.stress.Main must refuse it (exit 2) naming the class. */
public final class StressBadSetup implements Workload {
    @Override
    public void setup(Context ctx) {
        throw new IllegalStateException("no configuration");
    }

    @Override
    public void iteration(Context ctx) {}
}
