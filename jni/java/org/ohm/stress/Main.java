package org.ohm.stress;

import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.ohm.LeakDetector;
import org.ohm.OhmBuffer;
import org.ohm.test.LeakScope;

/**
 * ohm-stress for Java workloads: runs a {@link Workload} on N threads, each iteration in a leak scope, and fails
 * (exit 1) on any leak, integrity error or sustained growth of live bytes or RSS; exit 2 for bad input.
 *
 * <pre>
 * java -cp ohm.jar:app.jar org.ohm.stress.Main --workload com.example.MyWorkload [--threads N]
 *      [--duration S | --iterations N] [--json] [--report F.html] [--scope-wait-ms MS]
 * </pre>
 *
 * <p>The summary, the --json object (leaks, leak_sites [{site, count, bytes, first_iteration}], iterations,
 * integrity_errors, growth_bytes_per_s, ...) and the --report page (leaks by site, memory over time, the growth
 * verdict) come from ohm-stress's own report writer, in libohm_jni.so: they are {@code ohm-stress --lua}'s. Memory
 * is sampled every ~100 ms: the RSS (less the Java heap's peak use), the live bytes of the default pool and
 * of the pools the workload watches ({@link Context#watch(org.ohm.OhmPool)}), and a watched memory manager's use.
 * A report path that cannot be written is bad input: exit 2 before the run (or after it, if writing fails then).
 * --iterations N runs N iterations on each thread; without --duration or --iterations each thread runs 10,000.
 */
public final class Main {
    private Main() {}

    static final class BadInput extends Exception {
        private static final long serialVersionUID = 1L;

        BadInput(String m, Throwable cause) {
            super(m, cause);
        }
    }

    static final class Site {
        long count, bytes, firstIteration = Long.MAX_VALUE;
    }

    /** One run's shared state and results. */
    static final class Run {
        final Map<String, Site> sites = new LinkedHashMap<>();
        long leaks, leakBytes, integrityErrors;
        String firstError;
        final AtomicLong next = new AtomicLong(); // iterations run, over all threads
        final Sampler sampler;

        Run(long t0) {
            sampler = new Sampler(t0);
        }

        synchronized void integrityError(String m) {
            if (integrityErrors++ == 0) firstError = m;
        }

        synchronized void leak(String site, long bytes, long iteration) {
            Site s = sites.computeIfAbsent(site, k -> new Site());
            s.count++;
            s.bytes += bytes;
            s.firstIteration = Math.min(s.firstIteration, iteration);
            leaks++;
            leakBytes += bytes;
        }
    }

    /**
     * Runs the driver and exits with its status: 0 passed, 1 failed (a leak, an integrity error, growth), 2 bad
     * input (options, the workload class, its setup, the report path).
     *
     * @param args the options above
     */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        String cls = null, report = null;
        int threads = 1;
        double duration = 0;
        long iterations = 0;
        boolean json = false;
        int waitMs = 50;
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                switch (a) {
                    case "--workload" -> cls = value(args, ++i, a);
                    case "--threads" -> threads = Integer.parseInt(value(args, ++i, a));
                    case "--duration" -> duration = Double.parseDouble(value(args, ++i, a));
                    case "--iterations" -> iterations = Long.parseLong(value(args, ++i, a));
                    case "--json" -> json = true;
                    case "--report" -> report = value(args, ++i, a);
                    case "--scope-wait-ms" -> waitMs = Integer.parseInt(value(args, ++i, a));
                    default -> throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (cls == null) throw new IllegalArgumentException("--workload CLASS is required");
            if (threads < 1 || duration < 0 || iterations < 0 || waitMs < 0)
                throw new IllegalArgumentException("--threads, --duration, --iterations must be positive");
            if (duration > 0 && iterations > 0)
                throw new IllegalArgumentException("--duration and --iterations exclude each other");
        } catch (IllegalArgumentException e) {
            err.println("ohm-stress: " + e.getMessage());
            err.println("usage: java -cp ohm.jar:app.jar org.ohm.stress.Main --workload CLASS [--threads N]"
                    + " [--duration S | --iterations N] [--json] [--report F.html]");
            return 2;
        }
        if (duration == 0 && iterations == 0) iterations = 10_000;
        String unwritable = report == null ? null : unwritable(report);
        if (unwritable != null) {
            err.println("ohm-stress: cannot write the report " + report + ": " + unwritable);
            return 2;
        }
        Class<? extends Workload> wc;
        try {
            wc = load(cls);
            wc.getConstructor().newInstance(); // checked here, so that a bad class fails before any thread
        } catch (BadInput e) {
            err.println("ohm-stress: " + e.getMessage());
            return 2;
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            Throwable c = e instanceof InvocationTargetException ? e.getCause() : e;
            err.println("ohm-stress: workload class " + cls + " cannot be made with its public no-arg constructor: "
                    + c);
            return 2;
        }
        return drive(wc, threads, duration, iterations, json, report, waitMs, out, err);
    }

    /** Why the report cannot be written at path (checked before the run), or null when it can. */
    private static String unwritable(String path) {
        Path p;
        try {
            p = Path.of(path).toAbsolutePath();
        } catch (InvalidPathException e) {
            return e.getMessage();
        }
        Path dir = p.getParent();
        if (Files.isDirectory(p)) return "it is a directory";
        if (dir == null || !Files.isDirectory(dir)) return "no directory " + dir;
        if (Files.exists(p) ? !Files.isWritable(p) : !Files.isWritable(dir)) return "permission denied";
        return null;
    }

    private static String value(String[] args, int i, String opt) {
        if (i >= args.length) throw new IllegalArgumentException(opt + " needs a value");
        return args[i];
    }

    static Class<? extends Workload> load(String name) throws BadInput {
        Class<?> c;
        try {
            c = Class.forName(name, true, Thread.currentThread().getContextClassLoader());
        } catch (ClassNotFoundException e) {
            throw new BadInput("workload class " + name + " not found on the class path", e);
        } catch (LinkageError e) {
            throw new BadInput("workload class " + name + " does not load: " + e, e);
        }
        if (!Workload.class.isAssignableFrom(c))
            throw new BadInput("workload class " + name + " does not implement org.ohm.stress.Workload", null);
        return c.asSubclass(Workload.class);
    }

    private static int drive(Class<? extends Workload> wc, int nthreads, double duration, long iterations,
            boolean json, String report, int waitMs, PrintStream out, PrintStream err) {
        long t0 = System.nanoTime();
        Run run = new Run(t0);
        String[] setupFailure = new String[1];
        long end = duration > 0 ? t0 + (long) (duration * 1e9) : Long.MAX_VALUE;
        Duration wait = Duration.ofMillis(waitMs);
        // The scopes report each leak; the GC's later reports of the same buffers would only repeat them.
        LeakDetector.setListener(r -> {});
        Thread[] ts = new Thread[nthreads];
        java.util.concurrent.CountDownLatch ready = new java.util.concurrent.CountDownLatch(nthreads);
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
        for (int i = 0; i < nthreads; i++) {
            int index = i;
            ts[i] = new Thread(() -> {
                Context ctx = new Context(index, run);
                Workload w;
                try {
                    w = wc.getConstructor().newInstance();
                    w.setup(ctx);
                } catch (Throwable e) {
                    Throwable c = e instanceof InvocationTargetException ? e.getCause() : e;
                    synchronized (setupFailure) {
                        if (setupFailure[0] == null) setupFailure[0] = wc.getName() + ".setup threw " + c;
                    }
                    ready.countDown();
                    return;
                }
                ready.countDown();
                try {
                    go.await();
                } catch (InterruptedException e) {
                    return;
                }
                if (setupFailure[0] == null) loop(w, ctx, run, iterations, end, wait);
                try {
                    w.teardown(ctx);
                } catch (Throwable e) {
                    run.integrityError(wc.getName() + ".teardown threw " + e);
                }
                for (Context.Kept k : ctx.kept) {
                    OhmBuffer b = Context.memoryOf(k.buffer());
                    if (b != null)
                        run.leak(k.site() + " (kept, not released by teardown)", b.capacity(), ctx.iteration);
                }
            }, "ohm-stress-" + i);
            ts[i].start();
        }
        try {
            ready.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        go.countDown();
        run.sampler.start();
        for (Thread t : ts) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        run.sampler.stop();
        LeakDetector.setListener(null);
        if (setupFailure[0] != null) {
            err.println("ohm-stress: workload class " + setupFailure[0]);
            return 2;
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Report.Written r = Report.of(run, wc.getName(), nthreads, seconds, json, report);
        out.print(r.text());
        out.flush();
        if (r.reportError() != null) {
            err.println("ohm-stress: " + r.reportError());
            return 2;
        }
        return r.failed() ? 1 : 0;
    }

    private static void loop(Workload w, Context ctx, Run run, long iterations, long end, Duration wait) {
        for (;;) {
            long it = ctx.iteration + 1;
            if (iterations > 0 ? it > iterations : System.nanoTime() >= end) return;
            run.next.incrementAndGet();
            ctx.iteration = it;
            LeakScope s = LeakScope.open(wait);
            try {
                w.iteration(ctx);
            } catch (Throwable e) {
                run.integrityError("iteration " + it + " on thread " + ctx.thread() + " threw " + e);
            }
            List<LeakScope.Leak> leaks = s.closeAndList();
            if (leaks.isEmpty()) continue;
            Set<Long> kept = new HashSet<>();
            for (Context.Kept k : ctx.kept) {
                OhmBuffer b = Context.memoryOf(k.buffer());
                if (b != null) kept.add(b.id());
            }
            for (LeakScope.Leak k : leaks)
                if (!kept.contains(k.bufferId())) run.leak(k.fileLine(), k.size(), it);
        }
    }
}
