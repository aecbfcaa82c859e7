package org.ohm.test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.ohm.LeakScopes;

/**
 * A deterministic leak check for tests: every ohm buffer (OhmBuffer, and Netty buffers of ohm's allocator) that
 * the scope's threads allocate while it is open is tracked with its Java allocation site, whatever the leak
 * detector's level; {@link #close()} fails with a {@link LeakException} naming each one still live.
 *
 * <pre>{@code
 * try (LeakScope s = LeakScope.open()) {
 *     ... code under test ...
 * } // LeakException here if a buffer it allocated was not released
 * }</pre>
 *
 * <p>The scope's threads: the one that opened it, threads started by a thread in the scope (inherited, as an
 * InheritableThreadLocal: a thread started inside a scope stays in it), and threads that {@link #join()} (or run
 * a {@link #wrap} task). Buffers made by other threads, or before the scope opened (a static cache, a pool
 * warm-up), are never the scope's; neither is a buffer allocated during a class's static initialisation.
 * Closing waits a bounded time ({@link #DEFAULT_WAIT}, or system property {@code ohm.leakScope.waitMs}) for
 * buffers handed to other threads to be released. Scopes nest; scopes of different threads run in parallel.
 */
public final class LeakScope implements AutoCloseable {
    /** How long close waits for other threads to release the scope's buffers, unless told otherwise. */
    public static final Duration DEFAULT_WAIT = Duration.ofMillis(Long.getLong("ohm.leakScope.waitMs", 2000));

    private final LeakScopes.Frame frame;
    private final Duration wait;

    private LeakScope(LeakScopes.Frame frame, Duration wait) {
        this.frame = frame;
        this.wait = wait;
    }

    /**
     * Opens a scope on the calling thread (nested in its current one, if any), with the default wait.
     *
     * @return the scope, to close
     */
    public static LeakScope open() {
        return open(DEFAULT_WAIT);
    }

    /**
     * Opens a scope whose close waits up to wait for other threads to release its buffers.
     *
     * @param wait how long close waits for other threads' releases
     * @return the scope, to close
     */
    public static LeakScope open(Duration wait) {
        if (wait.isNegative()) throw new IllegalArgumentException("negative wait " + wait);
        return new LeakScope(LeakScopes.open(), wait);
    }

    /** {@return the calling thread's innermost open scope, or null} */
    public static LeakScopes.Frame current() {
        return LeakScopes.current();
    }

    /** The calling thread (any thread but the opener) belongs to this scope from now until {@link #leave()}. */
    public void join() {
        LeakScopes.join(frame);
    }

    /** The calling thread leaves the scope it joined. */
    public static void leave() {
        LeakScopes.leave();
    }

    /**
     * r, run in this scope on whatever thread runs it (an executor's).
     *
     * @param r the task
     * @return r wrapped
     */
    public Runnable wrap(Runnable r) {
        return () -> {
            join();
            try {
                r.run();
            } finally {
                leave();
            }
        };
    }

    /**
     * c, called in this scope on whatever thread calls it.
     *
     * @param <T> the result's type
     * @param c the task
     * @return c wrapped
     */
    public <T> Callable<T> wrap(Callable<T> c) {
        return () -> {
            join();
            try {
                return c.call();
            } finally {
                leave();
            }
        };
    }

    /**
     * Ends the scope (waiting for other threads first, up to the wait) and returns the buffers still live,
     * without throwing. Only the opening thread closes, innermost scope first.
     *
     * @return the buffers still live (empty for none)
     */
    public List<Leak> closeAndList() {
        long ms = Math.min(Integer.MAX_VALUE, wait.toMillis());
        String[] r = LeakScopes.close(frame, (int) ms);
        List<Leak> leaks = new ArrayList<>();
        for (int i = 0; r != null && i + 4 < r.length; i += 5) {
            Leak k = new Leak(Long.parseUnsignedLong(r[i]), Long.parseLong(r[i + 1]), r[i + 2], r[i + 3], r[i + 4]);
            if (!k.inStaticInit()) leaks.add(k);
        }
        return leaks;
    }

    /** Ends the scope; throws LeakException listing the scope's buffers still live after the wait. */
    @Override
    public void close() {
        List<Leak> leaks = closeAndList();
        if (!leaks.isEmpty()) throw new LeakException(leaks);
    }

    /** One leaked buffer: its id ({@code OhmBuffer.id()} when it was made), size, Java allocation stack ("\tat
     * frame" lines, or null), hints and the runtime's report. */
    public record Leak(long bufferId, long size, String stack, String hints, String report) {
        /** {@return the first frame of the allocation stack outside ohm (and Netty): "Class.method(File.java:line)"} */
        public String site() {
            if (stack == null) return "(no Java site: allocated outside Java)";
            String first = null;
            for (String line : stack.split("\n")) {
                String f = line.strip();
                if (f.startsWith("at ")) f = f.substring(3);
                if (f.isEmpty()) continue;
                if (first == null) first = f;
                if (!isLibrary(f)) return f;
            }
            return first != null ? first : "(no Java site)";
        }

        /**
         * The file:line of {@link #site()}, e.g. "MyTest.java:42" (the whole site when it has none).
         *
         * @return the file and line
         */
        public String fileLine() {
            String s = site();
            int a = s.lastIndexOf('('), b = s.lastIndexOf(')');
            return a >= 0 && b > a ? s.substring(a + 1, b) : s;
        }

        boolean inStaticInit() {
            return stack != null && stack.contains(".<clinit>(");
        }

        /** Netty's frames and ohm's own (org.ohm.Class, org.ohm.netty.Class: not their subpackages' tests). */
        private static boolean isLibrary(String frame) {
            if (frame.startsWith("io.netty.")) return true;
            int paren = frame.indexOf('(');
            String m = frame.substring(0, paren < 0 ? frame.length() : paren); // package.Class.method
            for (String pkg : new String[] {"org.ohm.netty.", "org.ohm."}) {
                if (m.startsWith(pkg)) return m.indexOf('.', pkg.length()) == m.lastIndexOf('.');
            }
            return false;
        }
    }

    static String describe(List<Leak> leaks) {
        long bytes = 0;
        for (Leak k : leaks) bytes += k.size();
        StringBuilder sb = new StringBuilder();
        sb.append(leaks.size()).append(leaks.size() == 1 ? " buffer" : " buffers").append(" (").append(bytes)
                .append(" bytes) allocated in the leak scope not released:");
        int i = 0;
        for (Leak k : leaks) {
            sb.append("\n  ").append(++i).append(". ").append(k.size()).append(" bytes allocated at ")
                    .append(k.site());
            if (k.hints() != null)
                for (String h : k.hints().split("\n")) sb.append("\n       hint: ").append(h);
            if (k.stack() != null) {
                sb.append("\n       allocation stack:");
                for (String line : k.stack().split("\n")) sb.append("\n         ").append(line.strip());
            }
        }
        return sb.toString();
    }
}
