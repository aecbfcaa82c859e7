package org.ohm.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;
import org.ohm.OhmPool;

/**
 * ohm-bench-java: the Java library against Netty's pooled allocator and ByteBuffer.allocateDirect, with
 * ohm-bench's contract: one fresh JVM (a fork) per (workload, rep, impl), impls interleaved with the order
 * rotating from rep to rep, best ops/s and median RSS over the reps, a table per workload (or one JSON line per
 * result with --json), ratios and the goals. JMH is not packaged for Debian; each fork warms up (the JIT
 * compiles the loop) before it measures, in timed iterations.
 *
 * <p>heap/op is the Java heap the measured loops allocated per operation, all their threads together
 * (com.sun.management.ThreadMXBean.getCurrentThreadAllocatedBytes around each thread's timed loop): a count, not
 * a time, so it is exact whatever the machine's load.
 */
public final class BenchMain {
    private BenchMain() {}

    static final String[] IMPLS = {"ohm", "netty-pooled", "allocate-direct", "ohm-jni", "ohm+jdk-cleaner", "ohm-netty",
        "netty-unpooled"};

    /** A workload: its name, thread count, buffer size and which impls it runs by default; the first impl is the
     * one the ratios are of. */
    static final class Workload {
        final String name, summary;
        final int threads;
        final int size;
        final String[] impls;

        Workload(String name, int threads, int size, String summary, String... impls) {
            this.name = name;
            this.threads = threads;
            this.size = size;
            this.summary = summary;
            this.impls = impls;
        }
    }

    static final List<Workload> WORKLOADS = new ArrayList<>();
    static {
        int[] sizes = {64, 1024, 16384, 32768, 1 << 20};
        String[] names = {"64", "1k", "16k", "32k", "1m"};
        String[] human = {"64 B", "1 KiB", "16 KiB", "32 KiB", "1 MiB"};
        for (int t = 1; t <= 2; t++)
            for (int i = 0; i < sizes.length; i++)
                WORKLOADS.add(new Workload("alloc-release-" + names[i], t, sizes[i],
                        "allocate " + human[i] + ", write 8 bytes, release" + (t > 1 ? ", each thread its own" : ""),
                        "ohm", "netty-pooled", "allocate-direct"));
        // Netty's event-loop pattern: one thread allocates and writes, another reads and releases (a 256-slot
        // single-producer single-consumer ring between them; one op = one buffer handed over and released).
        WORKLOADS.add(new Workload("handoff-64", 2, 64, "thread A allocates 64 B and writes 8 bytes, thread B reads "
                + "them and releases (SPSC ring)", "ohm", "netty-pooled", "allocate-direct"));
        WORKLOADS.add(new Workload("handoff-16k", 2, 16384, "thread A allocates 16 KiB and writes 8 bytes, thread B "
                + "reads them and releases (SPSC ring)", "ohm", "netty-pooled", "allocate-direct"));
        // What the design choices cost, measured: the JNI access route against Java-side access, and a
        // java.lang.ref.Cleaner registered per buffer on top of ohm's own safety net.
        WORKLOADS.add(new Workload("access", 1, 4096, "putLong + getLong at 512 offsets of one 4 KiB buffer (one op = a pair)",
                "ohm", "ohm-jni", "netty-pooled"));
        WORKLOADS.add(new Workload("cleaner-cost", 1, 64,
                "alloc-release-64, plus a java.lang.ref.Cleaner registered and cleaned per buffer", "ohm", "ohm+jdk-cleaner"));
        // Netty's allocators through Netty's API only (NettyBench): ohm's OhmByteBufAllocator against Netty's.
        int[] nettySizes = {64, 1024, 16384, 1 << 20};
        String[] nettyNames = {"64", "1k", "16k", "1m"}, nettyHuman = {"64 B", "1 KiB", "16 KiB", "1 MiB"};
        for (int t = 1; t <= 2; t++)
            for (int i = 0; i < nettySizes.length; i++)
                WORKLOADS.add(new Workload("netty-api-" + nettyNames[i], t, nettySizes[i], "alloc.directBuffer("
                        + nettyHuman[i] + "), writeLong, release" + (t > 1 ? ", each thread its own" : ""),
                        "ohm-netty", "netty-pooled", "netty-unpooled"));
        WORKLOADS.add(new Workload("netty-echo", 1, 65536, "messages/s echoed over loopback (NIO, one connection, "
                + "32 in flight, 16 B - 64 KiB, mean 5.7 KiB), the allocator on both sides; RSS before, right after "
                + "and after an idle wait", "ohm-netty", "netty-pooled", "netty-unpooled"));
    }

    // ---- options

    static final class Options {
        boolean json, verbose, child, list;
        List<String> workloads = new ArrayList<>();
        List<String> impls = new ArrayList<>();
        int reps = 3, threads = 0;
        double scale = 1.0;
    }

    public static void main(String[] args) throws Exception {
        Options o = new Options();
        try {
            parse(args, o);
        } catch (IllegalArgumentException e) {
            System.err.println("ohm-bench-java: " + e.getMessage());
            usage();
            System.exit(2);
        }
        if (o.list) {
            System.out.printf("%-20s %-8s %-6s %s%n", "workload", "threads", "size", "what");
            for (Workload w : WORKLOADS)
                System.out.printf("%-20s %-8d %-6d %s (impls %s)%n", w.name, w.threads, w.size, w.summary,
                        String.join(", ", w.impls));
            return;
        }
        System.exit(o.child ? child(o) : parent(o));
    }

    static void usage() {
        System.err.println("usage: ohm-bench-java [options]\n"
                + "  --workload NAME[,NAME]  workloads (default: every alloc-release-* and handoff-*; --list names them;\n"
                + "                          'all'; a prefix ending in '*', e.g. 'netty-api-*')\n"
                + "  --threads N             only the variants with N threads\n"
                + "  --impl NAME[,NAME]      ohm, netty-pooled, allocate-direct, ohm-jni, ohm+jdk-cleaner, ohm-netty,\n"
                + "                          netty-unpooled\n"
                + "  --reps N                JVM forks per workload and impl (default 3; best ops/s, median RSS)\n"
                + "  --scale F               multiplies warm-up and measurement times (default 1: 1 s + 3 x 0.5 s)\n"
                + "  --json                  one JSON object per line per (workload, impl)\n"
                + "  --verbose               each fork's result on stderr\n"
                + "  --list                  list the workloads");
    }

    static void parse(String[] args, Options o) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i], v = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                v = a.substring(eq + 1);
                a = a.substring(0, eq);
            }
            switch (a) {
                case "--json": o.json = true; break;
                case "--verbose": case "-v": o.verbose = true; break;
                case "--child": o.child = true; break;
                case "--list": o.list = true; break;
                case "--help": case "-h": usage(); System.exit(0); break;
                case "--workload": case "--impl": case "--reps": case "--scale": case "--threads":
                    if (v == null) {
                        if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
                        v = args[++i];
                    }
                    if (a.equals("--workload")) {
                        for (String s : v.split(",")) if (!s.isEmpty()) o.workloads.add(s);
                    } else if (a.equals("--impl")) {
                        for (String s : v.split(",")) {
                            if (!Arrays.asList(IMPLS).contains(s)) throw new IllegalArgumentException("unknown impl '" + s + "'");
                            o.impls.add(s);
                        }
                    } else if (a.equals("--reps")) {
                        o.reps = Integer.parseInt(v);
                        if (o.reps < 1 || o.reps > 100) throw new IllegalArgumentException("--reps needs 1..100");
                    } else if (a.equals("--threads")) {
                        o.threads = Integer.parseInt(v);
                    } else {
                        o.scale = Double.parseDouble(v);
                        if (!(o.scale > 0 && o.scale <= 1000)) throw new IllegalArgumentException("--scale needs (0, 1000]");
                    }
                    break;
                default:
                    throw new IllegalArgumentException("unknown option '" + args[i] + "'");
            }
        }
    }

    static List<Workload> selected(Options o) {
        List<Workload> out = new ArrayList<>();
        for (Workload w : WORKLOADS) {
            boolean named = o.workloads.isEmpty() ? w.name.startsWith("alloc-release") || w.name.startsWith("handoff")
                    : o.workloads.stream().anyMatch(n -> matches(n, w.name));
            if (named && (o.threads == 0 || o.threads == w.threads)) out.add(w);
        }
        for (String n : o.workloads)
            if (WORKLOADS.stream().noneMatch(w -> matches(n, w.name)))
                throw new IllegalArgumentException("unknown workload '" + n + "' (--list shows them)");
        return out;
    }

    /** A --workload name: a workload's name, "all", or a prefix ending in '*' (netty-api-*). */
    static boolean matches(String pattern, String name) {
        if (pattern.equals("all")) return true;
        return pattern.endsWith("*") ? name.startsWith(pattern.substring(0, pattern.length() - 1)) : name.equals(pattern);
    }

    // ---- the parent: forks, aggregation, tables

    /** One result, as the JSON line carries it. */
    static final class Run {
        boolean ok;
        double opsPerSec, heapPerOp;
        long threads, peakRss, livePeak, rssBefore, rssAfter, rssIdle = -1, heldBefore, heldAfter, heldIdle;
        double idleSeconds;
    }

    static int parent(Options o) throws Exception {
        List<Workload> ws = selected(o);
        if (!o.json) {
            System.out.printf("ohm-bench-java: scale %s, %d rep%s (JVM forks), %d CPUs, %s %s, Java %s%n", fmtScale(o.scale),
                    o.reps, o.reps == 1 ? "" : "s", Runtime.getRuntime().availableProcessors(),
                    System.getProperty("os.name"), System.getProperty("os.version"), System.getProperty("java.version"));
            System.out.println("ops/s: best of the forks; RSS: median of the forks; ratio = ohm ops/s / impl ops/s");
        }
        int failed = 0;
        for (Workload w : ws) {
            List<String> impls = new ArrayList<>();
            for (String i : w.impls) if (o.impls.isEmpty() || o.impls.contains(i)) impls.add(i);
            if (impls.isEmpty()) continue;
            Run[][] runs = new Run[impls.size()][o.reps];
            for (int rep = 0; rep < o.reps; rep++)
                for (int k = 0; k < impls.size(); k++) {
                    int idx = (k + rep) % impls.size();
                    Run r = fork(o, w, impls.get(idx), rep);
                    runs[idx][rep] = r;
                    if (!r.ok) failed++;
                }
            Run[] agg = new Run[impls.size()];
            for (int k = 0; k < impls.size(); k++) agg[k] = aggregate(runs[k]);
            if (o.json) {
                for (int k = 0; k < impls.size(); k++)
                    if (agg[k].ok) System.out.println(json(w, impls.get(k), agg[k]));
            } else {
                table(w, impls, agg);
            }
            System.out.flush();
        }
        if (failed > 0) System.err.println("ohm-bench-java: " + failed + " fork" + (failed == 1 ? "" : "s") + " failed");
        return failed > 0 ? 1 : 0;
    }

    static String fmtScale(double s) {
        return s == Math.rint(s) ? String.valueOf((long) s) : String.valueOf(s);
    }

    static Run fork(Options o, Workload w, String impl, int rep) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "-Xms1g", "-Xmx1g", "-XX:+UseG1GC"));
        if (impl.equals("ohm-jni")) cmd.add("-Dohm.access=jni");
        // netty-echo compares RSS before and after its load: a young generation small enough to be touched whole
        // in the warm-up keeps the Java heap's first touches out of that difference.
        if (w.name.equals("netty-echo")) cmd.add("-Xmn32m");
        String lib = System.getProperty("ohm.library.path");
        if (lib != null) cmd.add("-Dohm.library.path=" + lib);
        // Extra JVM options for every fork (e.g. -Dohm.leak.level=off), from the environment.
        String extra = System.getenv("OHM_BENCH_JAVA_OPTS");
        if (extra != null && !extra.isBlank()) cmd.addAll(Arrays.asList(extra.trim().split("\\s+")));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), BenchMain.class.getName(), "--child",
                "--workload", w.name, "--threads", String.valueOf(w.threads), "--impl", impl, "--scale",
                String.valueOf(o.scale)));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String last = null;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) if (line.startsWith("{")) last = line;
        }
        boolean done = p.waitFor(600, TimeUnit.SECONDS);
        if (!done) p.destroyForcibly();
        Run run = last == null ? new Run() : parseRun(last);
        if (!done || p.exitValue() != 0 || !run.ok) {
            System.err.printf("ohm-bench-java: %s (%d threads), %s, fork %d failed (%s)%n", w.name, w.threads, impl,
                    rep + 1, !done ? "timeout" : "exit " + p.exitValue());
            run.ok = false;
        } else if (o.verbose) {
            System.err.printf("  %-18s %-16s fork %d: %.4g ops/s%n", w.name, impl, rep + 1, run.opsPerSec);
        }
        return run;
    }

    static Run parseRun(String line) {
        Run r = new Run();
        try {
            r.opsPerSec = Double.parseDouble(field(line, "ops_per_sec"));
            r.heapPerOp = Double.parseDouble(field(line, "heap_bytes_per_op"));
            r.threads = Long.parseLong(field(line, "threads"));
            r.peakRss = Long.parseLong(field(line, "peak_rss_bytes"));
            r.livePeak = Long.parseLong(field(line, "live_peak_bytes"));
            r.rssBefore = Long.parseLong(field(line, "rss_before_bytes"));
            r.rssAfter = Long.parseLong(field(line, "rss_after_bytes"));
            if (line.contains("\"rss_idle_bytes\":")) {
                r.rssIdle = Long.parseLong(field(line, "rss_idle_bytes"));
                r.idleSeconds = Double.parseDouble(field(line, "idle_seconds"));
                r.heldBefore = Long.parseLong(field(line, "held_before_bytes"));
                r.heldAfter = Long.parseLong(field(line, "held_after_bytes"));
                r.heldIdle = Long.parseLong(field(line, "held_idle_bytes"));
            }
            r.ok = true;
        } catch (RuntimeException e) {
            r.ok = false;
        }
        return r;
    }

    static String field(String line, String key) {
        int at = line.indexOf("\"" + key + "\":");
        if (at < 0) throw new IllegalArgumentException(key);
        int from = at + key.length() + 3, to = from;
        while (to < line.length() && ",}".indexOf(line.charAt(to)) < 0) to++;
        return line.substring(from, to).replace("\"", "").trim();
    }

    static Run aggregate(Run[] runs) {
        Run a = new Run();
        List<Run> ok = new ArrayList<>();
        for (Run r : runs) if (r != null && r.ok) ok.add(r);
        if (ok.isEmpty()) return a;
        a.ok = true;
        for (Run r : ok) a.opsPerSec = Math.max(a.opsPerSec, r.opsPerSec);
        a.threads = ok.get(0).threads;
        double[] heap = ok.stream().mapToDouble(r -> r.heapPerOp).sorted().toArray();
        a.heapPerOp = heap[(heap.length - 1) / 2];
        a.peakRss = median(ok.stream().mapToLong(r -> r.peakRss).toArray());
        a.livePeak = median(ok.stream().mapToLong(r -> r.livePeak).toArray());
        a.rssBefore = median(ok.stream().mapToLong(r -> r.rssBefore).toArray());
        a.rssAfter = median(ok.stream().mapToLong(r -> r.rssAfter).toArray());
        a.rssIdle = median(ok.stream().mapToLong(r -> r.rssIdle).toArray());
        a.idleSeconds = ok.get(0).idleSeconds;
        a.heldBefore = median(ok.stream().mapToLong(r -> r.heldBefore).toArray());
        a.heldAfter = median(ok.stream().mapToLong(r -> r.heldAfter).toArray());
        a.heldIdle = median(ok.stream().mapToLong(r -> r.heldIdle).toArray());
        return a;
    }

    /** The lower median, as ohm-bench's bench_median_u64. */
    static long median(long[] v) {
        Arrays.sort(v);
        return v.length == 0 ? 0 : v[(v.length - 1) / 2];
    }

    static String json(Workload w, String impl, Run r) {
        String idle = r.rssIdle < 0 ? "" : String.format(Locale.ROOT, ",\"rss_idle_bytes\":%d,\"idle_seconds\":%.1f,"
                + "\"held_before_bytes\":%d,\"held_after_bytes\":%d,\"held_idle_bytes\":%d", r.rssIdle, r.idleSeconds,
                r.heldBefore, r.heldAfter, r.heldIdle);
        return String.format(Locale.ROOT, "{\"bench\":\"java\",\"workload\":\"%s\",\"impl\":\"%s\",\"threads\":%d,"
                        + "\"ops_per_sec\":%.6g,\"heap_bytes_per_op\":%.4f,\"peak_rss_bytes\":%d,"
                        + "\"live_peak_bytes\":%d,"
                        + "\"rss_before_bytes\":%d,\"rss_after_bytes\":%d%s}", w.name, impl, r.threads, r.opsPerSec,
                r.heapPerOp, r.peakRss, r.livePeak, r.rssBefore, r.rssAfter, idle);
    }

    static void table(Workload w, List<String> impls, Run[] agg) {
        boolean echo = w.name.equals("netty-echo");
        String base = w.impls[0];
        String[] headers = {"impl", "threads", echo ? "msgs/s" : "ops/s", "ns/op", "heap/op", "peak RSS", "live peak",
                "RSS before", "RSS after", echo ? "RSS idle" : null, base + " ratio"};
        headers = Arrays.stream(headers).filter(h -> h != null).toArray(String[]::new);
        List<String[]> rows = new ArrayList<>();
        rows.add(headers);
        int ohm = impls.indexOf(base);
        for (int k = 0; k < impls.size(); k++) {
            Run r = agg[k];
            if (!r.ok) {
                String[] row = new String[headers.length];
                Arrays.fill(row, "");
                row[0] = impls.get(k);
                row[1] = "failed";
                rows.add(row);
                continue;
            }
            String ratio = ohm >= 0 && agg[ohm].ok && r.opsPerSec > 0
                    ? String.format(Locale.ROOT, "%.2fx", agg[ohm].opsPerSec / r.opsPerSec) : "-";
            String[] row = {impls.get(k), String.valueOf(r.threads), rate(r.opsPerSec),
                    String.format(Locale.ROOT, "%.1f", 1e9 / r.opsPerSec),
                    String.format(Locale.ROOT, "%.2fB", r.heapPerOp), bytes(r.peakRss), bytes(r.livePeak),
                    bytes(r.rssBefore), bytes(r.rssAfter), echo ? bytes(r.rssIdle) : null, ratio};
            rows.add(Arrays.stream(row).filter(c -> c != null).toArray(String[]::new));
        }
        int[] width = new int[headers.length];
        for (String[] row : rows) for (int c = 0; c < row.length; c++) width[c] = Math.max(width[c], row[c].length());
        System.out.printf("%n%s (%d thread%s): %s%n", w.name, w.threads, w.threads == 1 ? "" : "s", w.summary);
        for (String[] row : rows) {
            StringBuilder sb = new StringBuilder();
            for (int c = 0; c < row.length; c++) {
                if (c > 0) sb.append("  ");
                String cell = row[c];
                String pad = " ".repeat(width[c] - cell.length());
                sb.append(c == 0 ? cell + pad : pad + cell);
            }
            System.out.println(sb.toString().replaceAll("\\s+$", ""));
        }
        // The goals (ops/s ratios, heap/op against Netty's, peak RSS within 1.1x Netty's); the rest is
        // information.
        if (w.name.startsWith("netty-")) {
            nettyGoals(w, impls, agg);
            return;
        }
        boolean goals = w.name.startsWith("alloc-release") || w.name.startsWith("handoff");
        goal(impls, agg, "ohm", "netty-pooled", 2.0, goals);
        goal(impls, agg, "ohm", "allocate-direct", 10.0, goals && w.name.startsWith("alloc-release"));
        int o = impls.indexOf("ohm"), nt = impls.indexOf("netty-pooled");
        if (goals && o >= 0 && nt >= 0 && agg[o].ok && agg[nt].ok) {
            System.out.printf(Locale.ROOT, "goal  ohm heap/op <= netty-pooled's: %.2f B vs %.2f B  %s%n",
                    agg[o].heapPerOp, agg[nt].heapPerOp, agg[o].heapPerOp <= agg[nt].heapPerOp ? "met" : "MISSED");
            double rss = agg[nt].peakRss > 0 ? agg[o].peakRss / (double) agg[nt].peakRss : 0;
            System.out.printf(Locale.ROOT, "goal  ohm peak RSS <= 1.10x netty-pooled's: %.2fx  %s%n", rss,
                    rss <= 1.10 ? "met" : "MISSED");
        }
        goal(impls, agg, "ohm", "ohm-jni", 1.0, false);
        goal(impls, agg, "ohm", "ohm+jdk-cleaner", 1.0, false);
    }

    /** The Netty goals: ohm's allocator at least as fast as Netty's pooled one (stretch 2x through the API), and
     * after the echo load, ohm's RSS back within 10% of where it was before it. */
    static void nettyGoals(Workload w, List<String> impls, Run[] agg) {
        boolean echo = w.name.equals("netty-echo");
        goal(impls, agg, "ohm-netty", "netty-pooled", 1.0, true);
        int o = impls.indexOf("ohm-netty"), p = impls.indexOf("netty-pooled");
        if (!echo && o >= 0 && p >= 0 && agg[o].ok && agg[p].ok && agg[p].opsPerSec > 0) {
            double got = agg[o].opsPerSec / agg[p].opsPerSec;
            System.out.printf(Locale.ROOT, "stretch  ohm-netty >= 2.00x netty-pooled: %.2fx  %s%n", got,
                    got >= 2.0 ? "met" : "not met");
        }
        goal(impls, agg, "ohm-netty", "netty-unpooled", 1.0, false);
        if (!echo) return;
        for (int k = 0; k < impls.size(); k++) {
            Run r = agg[k];
            if (!r.ok || r.rssIdle < 0 || r.rssBefore <= 0) continue;
            double grew = r.rssIdle / (double) r.rssBefore - 1;
            String idle = String.format(Locale.ROOT, "%.0f s idle%s", r.idleSeconds,
                    r.idleSeconds < 30 ? " (30 s scaled down by --scale)" : "");
            if (k == o)
                System.out.printf(Locale.ROOT, "goal  ohm-netty RSS after %s within 10%% of RSS before the load: %s vs "
                        + "%s (%+.1f%%)  %s%n", idle, bytes(r.rssIdle), bytes(r.rssBefore), 100 * grew,
                        grew <= 0.10 ? "met" : "MISSED");
            else
                System.out.printf(Locale.ROOT, "info  %s RSS after %s vs before the load: %s vs %s (%+.1f%%)%n",
                        impls.get(k), idle, bytes(r.rssIdle), bytes(r.rssBefore), 100 * grew);
            System.out.printf(Locale.ROOT, "info  %s native memory held (%s): before %s, after the load %s, after "
                    + "the idle wait %s%n", impls.get(k), k == o ? "pool resident" : "metric's used direct",
                    bytes(r.heldBefore), bytes(r.heldAfter), bytes(r.heldIdle));
        }
    }

    static void goal(List<String> impls, Run[] agg, String base, String peer, double want, boolean isGoal) {
        int o = impls.indexOf(base), p = impls.indexOf(peer);
        if (o < 0 || p < 0 || !agg[o].ok || !agg[p].ok || agg[p].opsPerSec <= 0) return;
        double got = agg[o].opsPerSec / agg[p].opsPerSec;
        if (!isGoal) {
            System.out.printf(Locale.ROOT, "info  %s / %s: %.2fx%n", base, peer, got);
            return;
        }
        System.out.printf(Locale.ROOT, "goal  %s >= %.2fx %s: %.2fx  %s%n", base, want, peer, got,
                got >= want ? "met" : "MISSED");
    }

    static String rate(double v) {
        String units = " kMGT";
        int u = 0;
        while (v >= 1000 && u + 1 < units.length()) {
            v /= 1000;
            u++;
        }
        if (u == 0) return String.format(Locale.ROOT, "%.1f", v);
        return String.format(Locale.ROOT, v < 100 ? "%.2f%c" : "%.1f%c", v, units.charAt(u));
    }

    static String bytes(long b) {
        String units = "BKMGTP";
        double v = b;
        int u = 0;
        while (v >= 1024 && u + 1 < units.length()) {
            v /= 1024;
            u++;
        }
        if (u == 0) return b + "B";
        return String.format(Locale.ROOT, v < 100 ? "%.1f%c" : "%.0f%c", v, units.charAt(u));
    }

    // ---- the child: one workload, one impl, in this JVM

    /** The loop of one impl: runs ops until the deadline is passed (checked every 256 ops), returns the count. */
    interface Loop {
        long run(long deadlineNanos);
    }

    static volatile long sink;

    static Loop loop(Workload w, String impl) {
        int size = w.size;
        if (w.name.startsWith("netty-api")) return NettyBench.apiLoop(w, impl);
        switch (w.name.startsWith("access") ? "access-" + impl : impl) {
            case "ohm": case "ohm-jni": {
                OhmPool pool = Ohm.defaultPool();
                return deadline -> {
                    long n = 0;
                    do {
                        for (int i = 0; i < 256; i++, n++) {
                            OhmBuffer b = pool.allocate(size);
                            b.putLong(0, n);
                            b.release();
                        }
                    } while (System.nanoTime() < deadline);
                    return n;
                };
            }
            case "ohm+jdk-cleaner": {
                OhmPool pool = Ohm.defaultPool();
                Cleaner cleaner = Cleaner.create();
                Runnable nothing = () -> { };
                return deadline -> {
                    long n = 0;
                    do {
                        for (int i = 0; i < 256; i++, n++) {
                            OhmBuffer b = pool.allocate(size);
                            Cleaner.Cleanable c = cleaner.register(b, nothing);
                            b.putLong(0, n);
                            b.release();
                            c.clean();
                        }
                    } while (System.nanoTime() < deadline);
                    return n;
                };
            }
            case "netty-pooled": {
                PooledByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
                return deadline -> {
                    long n = 0;
                    do {
                        for (int i = 0; i < 256; i++, n++) {
                            ByteBuf b = alloc.directBuffer(size);
                            b.setLong(0, n);
                            b.release();
                        }
                    } while (System.nanoTime() < deadline);
                    return n;
                };
            }
            case "allocate-direct":
                return deadline -> {
                    long n = 0;
                    do {
                        for (int i = 0; i < 16; i++, n++) { // the last reference dropped is the release
                            ByteBuffer b = ByteBuffer.allocateDirect(size);
                            b.putLong(0, n);
                        }
                    } while (System.nanoTime() < deadline);
                    return n;
                };
            case "access-ohm": case "access-ohm-jni": {
                OhmBuffer b = Ohm.allocate(size);
                return deadline -> {
                    long n = 0, s = 0;
                    do {
                        for (int off = 0; off < size; off += 8, n++) {
                            b.putLong(off, n);
                            s += b.getLong(off);
                        }
                    } while (System.nanoTime() < deadline);
                    sink = s;
                    return n;
                };
            }
            case "access-netty-pooled": {
                ByteBuf b = PooledByteBufAllocator.DEFAULT.directBuffer(size);
                return deadline -> {
                    long n = 0, s = 0;
                    do {
                        for (int off = 0; off < size; off += 8, n++) {
                            b.setLong(off, n);
                            s += b.getLong(off);
                        }
                    } while (System.nanoTime() < deadline);
                    sink = s;
                    return n;
                };
            }
            default:
                throw new IllegalArgumentException("impl " + impl + " does not apply to " + w.name);
        }
    }

    static int child(Options o) throws Exception {
        if (o.workloads.size() != 1 || o.impls.size() != 1) throw new IllegalArgumentException("--child needs one workload and one impl");
        String impl = o.impls.get(0);
        Workload w = WORKLOADS.stream().filter(x -> x.name.equals(o.workloads.get(0)) && (o.threads == 0 || x.threads == o.threads))
                .findFirst().orElseThrow(() -> new IllegalArgumentException("no such workload"));
        if (w.name.equals("netty-echo")) return NettyBench.echo(w, impl, o.scale);
        long warm = (long) (1e9 * o.scale), iter = (long) (0.5e9 * o.scale);
        int iters = 3;
        Loop[] loops = w.name.startsWith("handoff") ? handoff(w, impl) : new Loop[w.threads];
        for (int t = 0; t < w.threads && loops[t] == null; t++) loops[t] = loop(w, impl);
        // Warm-up: the same loop, on the same threads' code, until the JIT has compiled it.
        runThreads(loops, warm);
        long rssBefore = rss();
        resetPeak();
        double best = 0, sum = 0;
        long heap0 = heapBytes, ops0 = opsDone;
        for (int i = 0; i < iters; i++) {
            double opsPerSec = runThreads(loops, iter);
            sum += opsPerSec;
            best = Math.max(best, opsPerSec);
        }
        double heapPerOp = (heapBytes - heap0) / (double) Math.max(1, opsDone - ops0);
        long peak = peakRss();
        if (impl.startsWith("ohm")) Ohm.defaultPool().trim(); // ohm-netty's DEFAULT takes from the default pool
        else if (impl.equals("allocate-direct")) System.gc();
        long rssAfter = rss();
        // The fork reports the mean of its measurement iterations; the parent keeps the best fork.
        double mean = sum / iters;
        System.out.printf(Locale.ROOT, "{\"bench\":\"java\",\"workload\":\"%s\",\"impl\":\"%s\",\"threads\":%d,"
                        + "\"ops_per_sec\":%.6g,\"heap_bytes_per_op\":%.4f,\"peak_rss_bytes\":%d,"
                        + "\"live_peak_bytes\":%d,"
                        + "\"rss_before_bytes\":%d,\"rss_after_bytes\":%d}%n", w.name, impl, w.threads, mean, heapPerOp,
                peak, (long) w.size * w.threads, rssBefore, rssAfter);
        sink += (long) best;
        return 0;
    }

    /** A hand-off pair over a 256-slot SPSC ring: loop 0 allocates and writes, loop 1 reads and releases; only
     * loop 1 counts ops. Both give up waiting at the deadline, so a starved partner never hangs the fork; buffers
     * left in the ring are taken by the next iteration. */
    static Loop[] handoff(Workload w, String impl) {
        int size = w.size;
        switch (impl) {
            case "ohm": {
                OhmPool pool = Ohm.defaultPool();
                return handoffLoops(n -> pool.allocate(size).putLong(0, n), OhmBuffer::getLong, OhmBuffer::release);
            }
            case "netty-pooled": {
                PooledByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
                return handoffLoops(n -> alloc.directBuffer(size).setLong(0, n), ByteBuf::getLong, ByteBuf::release);
            }
            case "allocate-direct": // the last reference dropped is the release
                return handoffLoops(n -> ByteBuffer.allocateDirect(size).putLong(0, n), ByteBuffer::getLong, b -> true);
            default:
                throw new IllegalArgumentException("impl " + impl + " does not apply to " + w.name);
        }
    }

    /** What a hand-off does with one impl's buffers: make one holding n, read it back at an offset, release it. */
    interface Make<B> {
        B make(long n);
    }

    interface Read<B> {
        long read(B b, int offset);
    }

    interface Release<B> {
        boolean release(B b);
    }

    /** The producer (loop 0) and consumer (loop 1) of a hand-off; each fork runs one impl, so these calls are
     * monomorphic and inlined. */
    static <B> Loop[] handoffLoops(Make<B> make, Read<B> read, Release<B> release) {
        AtomicReferenceArray<Object> ring = new AtomicReferenceArray<>(256);
        Loop producer = deadline -> {
            long n = 0;
            for (int at = 0; at != 0 || System.nanoTime() < deadline; at = (at + 1) & 255, n++) {
                B b = make.make(n);
                if (!put(ring, at, b, deadline)) {
                    release.release(b);
                    return 0;
                }
            }
            return 0;
        };
        Loop consumer = deadline -> {
            long n = 0, s = 0;
            for (int at = 0; at != 0 || System.nanoTime() < deadline; at = (at + 1) & 255, n++) {
                @SuppressWarnings("unchecked")
                B b = (B) take(ring, at, deadline);
                if (b == null) break;
                s += read.read(b, 0);
                release.release(b);
            }
            sink = s;
            return n;
        };
        return new Loop[] {producer, consumer};
    }

    /** Waits for ring slot at to be free and fills it; false once the deadline passed. */
    static boolean put(AtomicReferenceArray<Object> ring, int at, Object o, long deadline) {
        for (int spins = 0; ring.get(at) != null; spins++) {
            if ((spins & 255) == 255 && System.nanoTime() > deadline) return false;
            Thread.onSpinWait();
        }
        ring.lazySet(at, o);
        return true;
    }

    /** Waits for ring slot at to be filled and empties it; null once the deadline passed. */
    static Object take(AtomicReferenceArray<Object> ring, int at, long deadline) {
        Object o;
        for (int spins = 0; (o = ring.get(at)) == null; spins++) {
            if ((spins & 255) == 255 && System.nanoTime() > deadline) return null;
            Thread.onSpinWait();
        }
        ring.lazySet(at, null);
        return o;
    }

    /** Heap bytes the timed loops allocated and the ops they made, all threads together (runThreads adds). */
    static long heapBytes, opsDone;

    static long allocatedBytes() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /** Runs every loop on its own thread for about nanos; returns total ops per second of wall time. */
    static double runThreads(Loop[] loops, long nanos) throws Exception {
        int n = loops.length;
        CyclicBarrier start = new CyclicBarrier(n + 1);
        long[] ops = new long[n], t0 = new long[n], t1 = new long[n], heap = new long[n];
        Thread[] th = new Thread[n];
        for (int i = 0; i < n; i++) {
            int k = i;
            th[i] = new Thread(() -> {
                try {
                    start.await();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
                long h0 = allocatedBytes();
                t0[k] = System.nanoTime();
                ops[k] = loops[k].run(t0[k] + nanos);
                t1[k] = System.nanoTime();
                heap[k] = allocatedBytes() - h0;
            }, "bench-" + i);
            th[i].start();
        }
        start.await();
        for (Thread t : th) t.join();
        long first = Long.MAX_VALUE, last = 0, total = 0;
        for (int i = 0; i < n; i++) {
            first = Math.min(first, t0[i]);
            last = Math.max(last, t1[i]);
            total += ops[i];
            heapBytes += heap[i];
        }
        opsDone += total;
        return total * 1e9 / (last - first);
    }

    static long rss() {
        try {
            String[] f = Files.readString(Paths.get("/proc/self/statm")).trim().split("\\s+");
            return Long.parseLong(f[1]) * 4096;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    static void resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | RuntimeException e) {
            // the peak then covers the whole process
        }
    }

    static long peakRss() {
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status")))
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        } catch (IOException | RuntimeException e) {
            // fall through
        }
        return 0;
    }
}
