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
 * <p>Each thread's iteration scopes nest in a run scope, open from before setup to after teardown: threads the
 * workload starts in setup (Netty's event loops) inherit it, so a buffer they allocate and nobody releases is a
 * leak with its site, not only growth. What setup makes and teardown releases is fine; what is still live when the
 * run scope closes (after a wait of --scope-wait-ms) is a leak, unless an iteration or the kept-buffer check
 * reported it already.
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
                // The run's scope: threads the workload starts (Netty's event loops) inherit it at construction,
                // so what they allocate and never release is a leak with its site, not only growth.
                LeakScope runScope = LeakScope.open(wait);
                try {
                    w = wc.getConstructor().newInstance();
                    w.setup(ctx);
                } catch (Throwable e) {
                    Throwable c = e instanceof InvocationTargetException ? e.getCause() : e;
                    synchronized (setupFailure) {
                        if (setupFailure[0] == null) setupFailure[0] = wc.getName() + ".setup threw " + c;
                    }
                    runScope.closeAndList();
                    ready.countDown();
                    return;
                }
                ready.countDown();
                Set<Long> reported = new HashSet<>();
                try {
                    go.await();
                    if (setupFailure[0] == null) loop(w, ctx, run, iterations, end, wait, reported);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                try {
                    w.teardown(ctx);
                } catch (Throwable e) {
                    run.integrityError(wc.getName() + ".teardown threw " + e);
                }
                for (Context.Kept k : ctx.kept) {
                    OhmBuffer b = Context.memoryOf(k.buffer());
                    if (b == null) continue;
                    reported.add(b.id());
                    run.leak(k.site() + " (kept, not released by teardown)", b.capacity(), ctx.iteration);
                }
                for (LeakScope.Leak k : runScope.closeAndList())
                    if (!reported.contains(k.bufferId())) run.leak(runSite(k), k.size(), ctx.iteration);
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

    /**
     * Where a buffer of the run's scope was made, for the report: the first frame of its allocation stack outside
     * ohm, Netty and the JDK ("File.java:line"); for a buffer a library made on its own thread (a socket read on a
     * Netty event loop) there is none, and the handler that last touched it (Netty's pipeline touches each message
     * with the handler's context as hint) names the leak: "last touched by handler NAME (made at File.java:line)".
     */
    static String runSite(LeakScope.Leak k) {
        if (k.stack() != null)
            for (String line : k.stack().split("\n")) {
                String f = line.strip();
                if (f.startsWith("at ")) f = f.substring(3);
                if (!f.isEmpty() && !isLibraryOrJdk(f)) return fileLine(f);
            }
        String last = null;
        if (k.hints() != null)
            for (String h : k.hints().split("\n"))
                if (!h.isBlank()) last = h.strip();
        if (last == null) return k.fileLine();
        // Netty's ChannelHandlerContext.toString: "ChannelHandlerContext(NAME, [id: 0x.., L:.. - R:..])"; the
        // channel part differs for each connection, which would split one leak over many sites.
        String p = "ChannelHandlerContext(";
        if (last.startsWith(p)) {
            int comma = last.indexOf(", ", p.length());
            last = "handler " + last.substring(p.length(), comma < 0 ? last.length() - 1 : comma);
        }
        return "last touched by " + last + " (made at " + madeAt(k) + ")";
    }

    /** The JDK's frames, Netty's, ohm's own and this driver's (org.ohm.Class: not other subpackages' tests). */
    private static boolean isLibraryOrJdk(String frame) {
        for (String pkg : new String[] {"io.netty.", "org.ohm.netty.", "org.ohm.stress.", "java.", "javax.", "jdk.",
                "sun.", "com.sun."})
            if (frame.startsWith(pkg)) return true;
        int paren = frame.indexOf('(');
        String m = frame.substring(0, paren < 0 ? frame.length() : paren); // package.Class.method
        return m.startsWith("org.ohm.") && m.indexOf('.', "org.ohm.".length()) == m.lastIndexOf('.');
    }

    /** The first frame of k's stack outside ohm and the allocators (a library's allocation point, as a Netty
     * channel's socket read), as "File.java:line". */
    private static String madeAt(LeakScope.Leak k) {
        if (k.stack() != null)
            for (String line : k.stack().split("\n")) {
                String f = line.strip();
                if (f.startsWith("at ")) f = f.substring(3);
                int paren = f.indexOf('(');
                String m = f.substring(0, paren < 0 ? f.length() : paren);
                if (!m.isEmpty() && !m.startsWith("org.ohm.") && !m.startsWith("io.netty.buffer.")
                        && !m.contains("Allocator"))
                    return fileLine(f);
            }
        return k.fileLine();
    }

    private static String fileLine(String frame) {
        int a = frame.lastIndexOf('('), b = frame.lastIndexOf(')');
        return a >= 0 && b > a ? frame.substring(a + 1, b) : frame;
    }

    private static void loop(Workload w, Context ctx, Run run, long iterations, long end, Duration wait,
            Set<Long> reported) {
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
            for (LeakScope.Leak k : leaks) {
                if (kept.contains(k.bufferId())) continue;
                reported.add(k.bufferId());
                run.leak(k.fileLine(), k.size(), it);
            }
        }
    }
}
