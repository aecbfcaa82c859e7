package org.ohm.test;

import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.stress.Context;
import org.ohm.stress.Workload;

/**
 * Context.keep's promises, run by org.ohm.stress.Main: a kept buffer is not its iteration's leak, but it is one
 * when teardown leaves it live, named by the line that kept it; keep refuses what is not a live ohm buffer.
 */
public final class StressKeepChecks implements Workload {
    private OhmBuffer kept;

    @Override
    public void iteration(Context ctx) {
        if (kept == null) kept = ctx.keep(Ohm.allocate(64)); // never released: the run's one leak
        OhmBuffer released = Ohm.allocate(16);
        released.release();
        for (Object o : new Object[] {"not a buffer", released}) {
            try {
                ctx.keep(o);
                ctx.error("keep took " + o);
            } catch (IllegalArgumentException expected) {
                // refused, as it should be
            }
        }
        kept.putLong(0, ctx.iteration());
    }
}
