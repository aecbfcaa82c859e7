package org.ohm.stress;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import org.ohm.MemoryManager;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;

/** What the driver tells a {@link Workload} on one of its threads. Not shared between threads. */
public final class Context {
    /** A kind of buffer {@link #keep} accepts, and how to find the ohm buffer holding its memory now. */
    private record BufferType<T>(Class<T> type, Function<? super T, OhmBuffer> memoryOf) {
        OhmBuffer memory(Object o) {
            return type.isInstance(o) ? memoryOf.apply(type.cast(o)) : null;
        }
    }

    private static final List<BufferType<?>> TYPES = new CopyOnWriteArrayList<>(
            List.of(new BufferType<>(OhmBuffer.class, b -> b.refCnt() > 0 ? b : null)));

    /** A buffer given to {@link #keep}, and the line that kept it (its site when teardown does not release it). */
    record Kept(Object buffer, String site) {}

    private final int thread;
    long iteration;
    final List<Kept> kept = new ArrayList<>();
    final Main.Run run;

    Context(int thread, Main.Run run) {
        this.thread = thread;
        this.run = run;
    }

    /**
     * Lets {@link #keep} accept buffers of another library whose memory is an {@link OhmBuffer}: ohm-netty
     * registers Netty's ByteBuf this way when its allocator loads, since ohm.jar cannot depend on Netty.
     *
     * @param <T> the buffer type
     * @param type the buffer type (its subclasses included)
     * @param memoryOf the ohm buffer holding a buffer's memory now (it may change, as when a Netty buffer grows),
     *     or null when it holds none: released, or not memory of ohm's
     * @throws NullPointerException if type or memoryOf is null
     */
    public static <T> void registerBufferType(Class<T> type, Function<? super T, OhmBuffer> memoryOf) {
        TYPES.add(new BufferType<>(Objects.requireNonNull(type, "type"), Objects.requireNonNull(memoryOf,
                "memoryOf")));
    }

    /** The ohm buffer holding o's memory now, or null (released, or not a buffer of ohm's). */
    static OhmBuffer memoryOf(Object o) {
        for (BufferType<?> t : TYPES) {
            OhmBuffer b = t.memory(o);
            if (b != null) return b;
        }
        return null;
    }

    /**
     * This thread's number.
     *
     * @return 0 to threads - 1
     */
    public int thread() {
        return thread;
    }

    /**
     * The iteration running now on this thread, from 1 (each thread counts its own, as ohm-stress --lua does).
     *
     * @return from 1; 0 in setup; the last one in teardown
     */
    public long iteration() {
        return iteration;
    }

    /**
     * Marks a buffer the workload keeps across iterations on purpose: it is not its iteration's leak, and it must
     * be released by teardown, which is checked after teardown (a kept buffer still live then is a leak named by
     * the line that called keep). Accepts {@link OhmBuffer}s and the types registered with
     * {@link #registerBufferType} (Netty buffers of ohm-netty's allocator, when ohm-netty.jar is on the class
     * path).
     *
     * @param <T> the buffer's type
     * @param buffer a live buffer whose memory is ohm's
     * @return buffer
     * @throws IllegalArgumentException if buffer is released, or not a buffer of ohm's memory
     */
    public <T> T keep(T buffer) {
        if (memoryOf(buffer) == null)
            throw new IllegalArgumentException("keep takes a live buffer of ohm's memory, not " + buffer);
        String site = StackWalker.getInstance().walk(s -> s.skip(1).findFirst()
                .map(f -> f.getFileName() + ":" + f.getLineNumber()).orElse("Context.keep"));
        kept.add(new Kept(buffer, site));
        return buffer;
    }

    /**
     * Samples a pool's live bytes every ~100 ms besides the default pool's, for the growth verdict and the
     * report's "live bytes per pool" chart. Pools watched by several threads are sampled once.
     *
     * @param pool a pool of the workload's (closing it ends its samples: 0 from then on)
     * @throws IllegalStateException if three pools besides the default one are watched already
     */
    public void watch(OhmPool pool) {
        run.sampler.watch(Objects.requireNonNull(pool, "pool"));
    }

    /**
     * Samples a memory manager's use (execution and storage memory, both modes) every ~100 ms, for the report's
     * manager chart. One manager is charted: the first one watched.
     *
     * @param manager the workload's manager (closing it ends its samples: 0 from then on)
     */
    public void watch(MemoryManager manager) {
        run.sampler.watch(Objects.requireNonNull(manager, "manager"));
    }

    /**
     * Reports a wrong result the workload found (counted as an integrity error; the run fails).
     *
     * @param message what was wrong
     */
    public void error(String message) {
        run.integrityError("thread " + thread + ", iteration " + iteration + ": " + message);
    }
}
