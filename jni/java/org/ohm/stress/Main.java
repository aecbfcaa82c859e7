package org.ohm.stress;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.ohm.LeakDetector;
import org.ohm.Ohm;
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
 * --json prints one object with the keys of ohm-stress --lua's (leaks, leak_sites [{site, count, bytes,
 * first_iteration}], iterations, integrity_errors, growth_bytes_per_s, ...). Without --duration or --iterations
 * the run is 10,000 iterations.
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
        final AtomicLong next = new AtomicLong();
        final List<double[]> samples = new ArrayList<>(); // t, live bytes, rss

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
     * Runs a workload as the class comment says, and exits with the run's status (0: passed, 1: failed, 2: bad use).
     *
     * @param args the options (--help lists them)
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
        Run run = new Run();
        String[] setupFailure = new String[1];
        long t0 = System.nanoTime();
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
                for (OhmBuffer b : ctx.kept) {
                    if (b.refCnt() > 0)
                        run.leak("Context.keep (not released by teardown)", b.capacity(), ctx.iteration);
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
        Thread sampler = new Thread(() -> sample(run, t0), "ohm-stress-sampler");
        sampler.setDaemon(true);
        sampler.start();
        for (Thread t : ts) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        sampler.interrupt();
        LeakDetector.setListener(null);
        if (setupFailure[0] != null) {
            err.println("ohm-stress: workload class " + setupFailure[0]);
            return 2;
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Result r = new Result(wc.getName(), nthreads, seconds, run);
        if (json) out.println(r.json());
        else r.summary(out);
        if (report != null) {
            try {
                Files.writeString(Path.of(report), r.html(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                err.println("ohm-stress: cannot write " + report + ": " + e);
            }
        }
        return r.failed() ? 1 : 0;
    }

    private static void loop(Workload w, Context ctx, Run run, long iterations, long end, Duration wait) {
        for (;;) {
            long it = run.next.incrementAndGet();
            if (iterations > 0 ? it > iterations : System.nanoTime() >= end) {
                run.next.decrementAndGet();
                return;
            }
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
            for (OhmBuffer b : ctx.kept) kept.add(b.id());
            for (LeakScope.Leak k : leaks)
                if (!kept.contains(k.bufferId())) run.leak(k.fileLine(), k.size(), it);
        }
    }

    /** Live bytes of the default pool and the RSS every 100 ms, for the growth verdict. The RSS is taken less
     * the Java heap's committed size: the heap growing to its working size is not the workload's leak. */
    private static void sample(Run run, long t0) {
        while (!Thread.currentThread().isInterrupted()) {
            double[] s = {(System.nanoTime() - t0) / 1e9, Ohm.defaultPool().stats().activeBytes(), rss()};
            synchronized (run.samples) {
                run.samples.add(s);
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private static double rss() {
        try {
            String[] f = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
            return Long.parseLong(f[1]) * 4096.0 - Runtime.getRuntime().totalMemory();
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** The run's results, as ohm-stress's C drivers compute them (stress/workload.c: wl_growth, wl_failed). */
    static final class Result {
        final String workload;
        final int threads;
        final double seconds;
        final Run run;
        final boolean growthKnown;
        boolean growth, rssGrowth;
        double growthPerS, rssGrowthPerS;

        Result(String workload, int threads, double seconds, Run run) {
            this.workload = workload;
            this.threads = threads;
            this.seconds = seconds;
            this.run = run;
            List<double[]> s;
            synchronized (run.samples) {
                s = new ArrayList<>(run.samples);
            }
            growthKnown = s.size() >= 10 && seconds >= 2;
            if (s.isEmpty()) return;
            int from = s.size() / 2;
            double span = s.get(s.size() - 1)[0] - s.get(from)[0];
            double[] live = trend(s, from, 1), rss = trend(s, from, 2);
            growthPerS = live[0];
            rssGrowthPerS = rss[0];
            growth = growthKnown && live[1] > 0.9 && live[0] * span > Math.max(1048576.0, live[2] / 4);
            rssGrowth = growthKnown && rss[1] > 0.9 && rss[0] * span > Math.max(16.0 * 1048576.0, rss[2] / 4);
        }

        /** Slope per second, correlation and mean of column col over samples [from, n). */
        private static double[] trend(List<double[]> s, int from, int col) {
            double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int i = from; i < s.size(); i++) {
                double x = s.get(i)[0], y = s.get(i)[col];
                n++;
                sx += x;
                sy += y;
                sxx += x * x;
                syy += y * y;
                sxy += x * y;
            }
            double vx = n * sxx - sx * sx, vy = n * syy - sy * sy, cxy = n * sxy - sx * sy;
            return new double[] {vx > 0 ? cxy / vx : 0, vx > 0 && vy > 0 ? cxy / Math.sqrt(vx * vy) : 0,
                    n > 0 ? sy / n : 0};
        }

        boolean failed() {
            return run.leaks > 0 || run.integrityErrors > 0 || growth || rssGrowth;
        }

        String growthWord() {
            return !growthKnown ? "unknown" : growth || rssGrowth ? "growing" : "none";
        }

        void summary(PrintStream f) {
            f.printf(Locale.ROOT, "ohm-stress: java workload %s, %d threads, %.1f s, %d iterations%n", workload,
                    threads, seconds, run.next.get());
            f.printf(Locale.ROOT, "  leaks            %d (%d bytes) at %d sites%n", run.leaks, run.leakBytes,
                    run.sites.size());
            run.sites.forEach((k, v) -> f.printf(Locale.ROOT, "    %-40s %d leaks, %d bytes, first in iteration %d%n",
                    k, v.count, v.bytes, v.firstIteration));
            f.printf(Locale.ROOT, "  integrity errors %d%s%n", run.integrityErrors,
                    run.firstError != null ? ", the first: " + run.firstError : "");
            f.printf(Locale.ROOT,
                    "  growth           %s: live bytes %+.0f B/s, RSS %+.0f B/s (second half of the run)%n",
                    growthWord(), growthPerS, rssGrowthPerS);
            f.println(failed() ? "FAILED" : "PASSED");
        }

        String json() {
            StringBuilder j = new StringBuilder("{");
            j.append("\"driver\":\"java\",\"workload\":").append(str(workload));
            j.append(",\"threads\":").append(threads);
            j.append(",\"seconds\":").append(String.format(Locale.ROOT, "%.3f", seconds));
            j.append(",\"iterations\":").append(run.next.get());
            j.append(",\"leaks\":").append(run.leaks).append(",\"leak_bytes\":").append(run.leakBytes);
            j.append(",\"leak_sites\":[");
            String sep = "";
            for (Map.Entry<String, Site> e : run.sites.entrySet()) {
                j.append(sep).append("{\"site\":").append(str(e.getKey())).append(",\"count\":")
                        .append(e.getValue().count).append(",\"bytes\":").append(e.getValue().bytes)
                        .append(",\"first_iteration\":").append(e.getValue().firstIteration).append('}');
                sep = ",";
            }
            j.append("],\"integrity_errors\":").append(run.integrityErrors);
            j.append(",\"first_error\":").append(run.firstError == null ? "null" : str(run.firstError));
            j.append(",\"growth_bytes_per_s\":").append(String.format(Locale.ROOT, "%.1f", growthPerS));
            j.append(",\"rss_growth_bytes_per_s\":").append(String.format(Locale.ROOT, "%.1f", rssGrowthPerS));
            j.append(",\"growth\":").append(str(growthWord()));
            j.append(",\"passed\":").append(!failed()).append('}');
            return j.toString();
        }

        /** A plain page: the summary, leaks by site and the samples (the C drivers' report writer draws charts). */
        String html() {
            StringBuilder h = new StringBuilder("<!doctype html><meta charset=utf-8><title>ohm-stress</title>");
            h.append("<h1>ohm-stress: java workload ").append(esc(workload)).append("</h1><pre>");
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
            summary(new PrintStream(b, true, StandardCharsets.UTF_8));
            h.append(esc(b.toString(StandardCharsets.UTF_8))).append("</pre><h2>Memory over time</h2><table>");
            h.append("<tr><th>s</th><th>live bytes (default pool)</th><th>RSS less the Java heap</th></tr>");
            synchronized (run.samples) {
                for (double[] s : run.samples)
                    h.append(String.format(Locale.ROOT, "<tr><td>%.1f</td><td>%.0f</td><td>%.0f</td></tr>", s[0],
                            s[1], s[2]));
            }
            return h.append("</table>\n").toString();
        }

        private static String esc(String s) {
            return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
        }

        private static String str(String s) {
            StringBuilder b = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            return b.append('"').toString();
        }
    }
}
