package org.ohm.stress;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.ohm.MemoryManager;
import org.ohm.MemoryMode;
import org.ohm.Ohm;
import org.ohm.OhmPool;

/**
 * A run's memory over time, every ~100 ms on a thread of its own: the RSS, the live bytes of the default pool and
 * of the pools the workload watches, and a watched manager's use. The rows are the report writer's samples
 * (time, RSS, manager use, then each pool's live bytes: see Report).
 */
final class Sampler {
    /** The report's pools: the default one and at most three more (stress/workload.h, WL_MAX_POOLS). */
    static final int MAX_POOLS = 4;

    private final long t0;
    private final List<OhmPool> pools = new ArrayList<>(List.of(Ohm.defaultPool()));
    private MemoryManager manager;
    private final List<double[]> rows = new ArrayList<>();
    private Thread thread;

    Sampler(long t0) {
        this.t0 = t0;
    }

    synchronized void watch(OhmPool pool) {
        if (pools.contains(pool)) return;
        if (pools.size() == MAX_POOLS)
            throw new IllegalStateException("ohm-stress charts " + (MAX_POOLS - 1) + " pools besides the default one");
        pools.add(pool);
    }

    synchronized void watch(MemoryManager m) {
        if (manager == null) manager = m;
    }

    void start() {
        thread = new Thread(this::loop, "ohm-stress-sampler");
        thread.setDaemon(true);
        thread.start();
    }

    /** Stops sampling, with one last sample (the run's end). */
    void stop() {
        thread.interrupt();
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        sample();
    }

    private void loop() {
        while (!Thread.currentThread().isInterrupted()) {
            sample();
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private synchronized void sample() {
        double[] x = new double[3 + MAX_POOLS];
        x[0] = (System.nanoTime() - t0) / 1e9;
        x[1] = rss();
        x[2] = managerUsed();
        for (int i = 0; i < pools.size(); i++) x[3 + i] = liveBytes(pools.get(i));
        rows.add(x);
    }

    /** The pools' names, in the samples' order. */
    synchronized List<String> poolNames() {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < pools.size(); i++) names.add(i == 0 ? "default" : pools.get(i).name());
        return names;
    }

    /** The samples, a row after the other, each as long as the pools watched at the end. */
    synchronized double[] samples() {
        int stride = 3 + pools.size();
        double[] a = new double[rows.size() * stride];
        for (int i = 0; i < rows.size(); i++) System.arraycopy(rows.get(i), 0, a, i * stride, stride);
        return a;
    }

    /* A pool or manager the workload closes while it is sampled: close() holds its monitor, so reading under the
     * same monitor sees it open throughout or closed. */
    private static double liveBytes(OhmPool p) {
        synchronized (p) {
            return p.isClosed() ? 0 : p.stats().activeBytes();
        }
    }

    private double managerUsed() {
        if (manager == null) return 0;
        synchronized (manager) {
            try {
                MemoryManager.Stats s = manager.stats();
                double used = 0;
                for (MemoryMode m : MemoryMode.values()) used += s.executionUsed(m) + s.storageUsed(m);
                return used;
            } catch (IllegalStateException e) { // closed
                return 0;
            }
        }
    }

    /**
     * The RSS less the Java heap's peak use (each heap pool's, as the JVM tracks it): the heap touching its pages
     * on the way to its working size is not the workload's leak, and the heap's own leaks are the JVM's to find.
     * Not less the committed size, which is mostly untouched (and so not resident) address space.
     */
    private static double rss() {
        try {
            String[] f = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
            double heap = 0;
            for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans())
                if (p.getType() == MemoryType.HEAP) heap += p.getPeakUsage().getUsed();
            return Math.max(0, Long.parseLong(f[1]) * 4096.0 - heap);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }
}
