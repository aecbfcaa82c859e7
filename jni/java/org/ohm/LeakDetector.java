package org.ohm;

import java.lang.System.Logger;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;

/**
 * The leak detector, process-wide (Netty's levels). At {@link Level#SIMPLE SIMPLE} and {@link Level#ADVANCED
 * ADVANCED} one buffer in {@link #sampleInterval()} is tracked; at {@link Level#PARANOID PARANOID} every one.
 * For a tracked buffer the Java stack trace of its allocation is captured (a Throwable, about a microsecond)
 * and formatted only if the buffer leaks, so reports name the Java line that allocated it.
 *
 * <p>The default interval in Java is 1 in {@value #DEFAULT_INTERVAL} (the runtime's own default is 1 in 128): a
 * Java stack capture costs about 0.9 us and 720 bytes of heap, and an allocate-release pair from a thread's
 * magazine 25-30 ns, so at 1 in 128 SIMPLE costs about 45% more than OFF; at 1 in 1024, 3-10%. Untracked
 * buffers are not sampled away from the safety net: every one dropped unreleased is still reclaimed and counted,
 * at every level.
 *
 * <p>Reports go to a {@link LeakListener}; the default logs each one at WARNING on System.Logger "org.ohm.leak".
 * System properties read when the library loads: {@code ohm.leak.level} (off, simple, advanced, paranoid) and
 * {@code ohm.leak.sampleInterval}; without them, OHM_LEAK_LEVEL and OHM_LEAK_SAMPLE, else simple, 1 in 1024.
 */
public final class LeakDetector {
    private LeakDetector() {}

    /** Detection levels, as Netty's ResourceLeakDetector.Level. */
    public enum Level {
        /** Nothing is tracked; a buffer the GC reclaims is still reclaimed and counted, without a site. */
        OFF,
        /** One buffer in sampleInterval is tracked, with its allocation site. */
        SIMPLE,
        /** As SIMPLE, plus the last accesses ({@link OhmBuffer#touch}) of tracked buffers. */
        ADVANCED,
        /** Every buffer is tracked, with accesses. Costly: for tests. */
        PARANOID
    }

    private static final Logger DEFAULT_LOGGER = System.getLogger("org.ohm.leak");
    /** The default listener: each report at WARNING on System.Logger "org.ohm.leak". */
    public static final LeakListener LOG = r -> DEFAULT_LOGGER.log(System.Logger.Level.WARNING, r.text());

    private static volatile LeakListener listener = LOG;
    private static final Set<Tracker> TRACKED = ConcurrentHashMap.newKeySet();

    static {
        Native.init();
    }

    /** The level and interval as the magazines' sampler reads them (Magazine: one volatile read per lend). */
    static volatile int levelCache, intervalCache;
    static final int PARANOID_ORDINAL = 3;
    /** The Java default sampling interval when neither ohm.leak.sampleInterval nor OHM_LEAK_SAMPLE is set. */
    static final int DEFAULT_INTERVAL = 1024;

    /**
     * Sets the level for the whole process (all pools and hosts share it).
     *
     * @param level the new level
     */
    public static void setLevel(Level level) {
        Native.leakSetLevel(Objects.requireNonNull(level, "level").ordinal());
        levelCache = level.ordinal();
    }

    /** {@return the current level} */
    public static Level level() {
        return Level.values()[Native.leakGetLevel()];
    }

    /**
     * One buffer in interval is tracked at SIMPLE and ADVANCED (at least 1).
     *
     * @param interval how many allocations per tracked one
     */
    public static void setSampleInterval(int interval) {
        if (interval < 1) throw new IllegalArgumentException("sample interval " + interval + " must be at least 1");
        Native.leakSetSample(interval);
        intervalCache = interval;
    }

    /** {@return the sampling interval: one buffer in this many is tracked at SIMPLE and ADVANCED} */
    public static int sampleInterval() {
        return Native.leakGetSample();
    }

    /**
     * Sets where reports go; null restores {@link #LOG}.
     *
     * @param l the new listener, or null for {@link #LOG}
     */
    public static void setListener(LeakListener l) {
        listener = l == null ? LOG : l;
    }

    /** {@return where reports go now} */
    public static LeakListener listener() {
        return listener;
    }

    /**
     * A checkpoint: tracked buffers allocated after this mark and still live are reported by {@link #check}.
     *
     * @return the mark, for {@link #check}
     */
    public static long mark() {
        return Native.leakMark();
    }

    /**
     * Reports (reason CHECKPOINT, to the listener, on this thread) every tracked buffer allocated since mark that
     * is still live, and returns how many there were. Only tracked buffers are seen: use level PARANOID in tests.
     *
     * @param mark from {@link #mark()}
     * @return how many buffers were reported
     */
    public static int check(long mark) {
        attachSites(t -> true);
        return (int) Math.min(Integer.MAX_VALUE, Native.leakCheck(mark));
    }

    // ---- inside the library

    static void configureFromProperties() {
        String level = System.getProperty("ohm.leak.level");
        if (level != null && !level.isEmpty()) {
            try {
                setLevel(Level.valueOf(level.trim().toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException e) {
                NativeLog.warn("ignoring ohm.leak.level=" + level + " (off, simple, advanced or paranoid)");
            }
        }
        String sample = System.getProperty("ohm.leak.sampleInterval");
        String env = System.getenv("OHM_LEAK_SAMPLE");
        if (sample != null && !sample.isEmpty()) {
            try {
                setSampleInterval(Integer.parseInt(sample.trim()));
            } catch (IllegalArgumentException e) {
                NativeLog.warn("ignoring ohm.leak.sampleInterval=" + sample + " (a number >= 1)");
            }
        } else if (env == null || env.isEmpty()) {
            setSampleInterval(DEFAULT_INTERVAL);
        }
        levelCache = Native.leakGetLevel();
        intervalCache = Native.leakGetSample();
    }

    /** A buffer the runtime tracks: remember where it was allocated. */
    static void track(Tracker t) {
        t.site = new Throwable("allocation site");
        TRACKED.add(t);
    }

    static void untrack(Tracker t) {
        TRACKED.remove(t);
    }

    /** Attaches the formatted site to every tracked live buffer that matches (before a pool or task closes, or a
     * checkpoint): the runtime's reports then carry it. */
    static void attachSites(Predicate<Tracker> which) {
        for (Tracker t : TRACKED) {
            Throwable site = t.site;
            if (site != null && t.live() && which.test(t))
                Native.bufSetSite(t.handle, t.id, Native.cstr(siteText(site)));
        }
    }

    /** The formatted Java site of the live tracked buffer whose id is id, or null (a leak scope's list: the
     * sites are formatted for its leaked buffers only). */
    static String siteOf(long id) {
        for (Tracker t : TRACKED) {
            Throwable site = t.site;
            if (site != null && t.id == id) return siteText(site);
        }
        return null;
    }

    /** The stack trace from the public ohm call that allocated, one "\tat frame" a line. */
    static String siteText(Throwable site) {
        StackTraceElement[] frames = site.getStackTrace();
        int first = 0;
        while (first < frames.length && isInternal(frames[first])) first++;
        if (first > 0) first--; // keep the API call the user made (OhmPool.allocate, ...)
        StringBuilder sb = new StringBuilder();
        for (int i = first; i < frames.length; i++) sb.append("\tat ").append(frames[i]).append('\n');
        return sb.toString();
    }

    private static boolean isInternal(StackTraceElement e) {
        String c = e.getClassName();
        return c.startsWith("org.ohm.") && c.indexOf('.', "org.ohm.".length()) < 0;
    }

    static void deliver(int reason, long bufferId, long size, String site, String text, String json) {
        LeakReport.Reason[] reasons = LeakReport.Reason.values();
        LeakReport r = new LeakReport(reasons[Math.max(0, Math.min(reason, reasons.length - 1))], bufferId, size,
                site, text, json);
        try {
            listener.leaked(r);
        } catch (RuntimeException | Error e) {
            NativeLog.warn("leak listener threw " + e + "; the report was:\n" + text);
        }
    }
}
