package com.example;

import java.nio.charset.StandardCharsets;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.stress.Context;
import org.ohm.stress.Workload;

/**
 * An ohm-stress Java workload: a request path that copies a message into a buffer, splits it into head and body
 * slices, builds a reply, and keeps a per-thread table across iterations. LEAK=1 in the environment plants a
 * leak: one buffer in every 1000 iterations is never released, on the line marked below.
 *
 * <pre>
 * java -cp build/jni/ohm.jar:build/examples/java/classes org.ohm.stress.Main \
 *      --workload com.example.RequestWorkload --threads 4 --duration 10
 * LEAK=1 java -cp ... org.ohm.stress.Main --workload com.example.RequestWorkload --iterations 5000 --json
 * </pre>
 */
public final class RequestWorkload implements Workload {
    private static final boolean PLANT = "1".equals(System.getenv("LEAK"));
    private static final byte[] MESSAGE =
            ("header:value\r\n".repeat(8) + "\r\nbody").getBytes(StandardCharsets.US_ASCII);

    private OhmBuffer table, scratch;

    @Override
    public void setup(Context ctx) {
        table = Ohm.defaultPool().allocate(4096); // made before the first iteration: never an iteration's leak
    }

    @Override
    public void iteration(Context ctx) {
        OhmBuffer msg = Ohm.defaultPool().allocate(MESSAGE.length);
        msg.putBytes(0, MESSAGE);
        int cut = MESSAGE.length - 4;
        OhmBuffer reply = Ohm.defaultPool().allocate(MESSAGE.length);
        msg.copyTo(0, reply, 0, cut);
        if (scratch == null) scratch = ctx.keep(Ohm.defaultPool().allocate(512)); // kept across iterations
        table.putLong(8 * (int) (ctx.iteration() % 512), ctx.iteration());
        scratch.putLong(0, ctx.iteration());
        if (reply.getByte(0) != 'h') ctx.error("reply does not start with the header");
        msg.release();
        reply.release();
        if (PLANT && ctx.iteration() % 1000 == 0) {
            Ohm.defaultPool().allocate(256); // PLANTED LEAK
        }
    }

    @Override
    public void teardown(Context ctx) {
        table.release();
        if (scratch != null) scratch.release();
    }
}
