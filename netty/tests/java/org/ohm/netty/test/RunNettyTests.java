package org.ohm.netty.test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.Result;
import org.junit.runner.manipulation.Filter;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;

/**
 * Runs JUnit 4 test classes minus the tests an exclusions file lists, prints each failure and a summary line per
 * class, and exits 1 if any test failed (or an exclusion named no test: a stale list must not hide anything).
 *
 * <pre>java ... org.ohm.netty.test.RunNettyTests EXCLUSIONS_FILE CLASS...</pre>
 *
 * Exclusions: one a line, {@code Class#method  reason}, Class the test class's simple name; blank lines and lines
 * starting with # are ignored.
 */
public final class RunNettyTests {
    private RunNettyTests() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: RunNettyTests EXCLUSIONS_FILE CLASS...");
            System.exit(2);
        }
        Map<String, String> excluded = readExclusions(args[0]);
        Map<String, Integer> used = new HashMap<>();
        boolean ok = true;
        for (int i = 1; i < args.length; i++) {
            Class<?> c = Class.forName(args[i]);
            Request r = Request.aClass(c).filterWith(new Filter() {
                @Override
                public boolean shouldRun(Description d) {
                    if (d.getMethodName() == null) return true;
                    String key = c.getSimpleName() + "#" + d.getMethodName();
                    if (!excluded.containsKey(key)) return true;
                    used.merge(key, 1, Integer::sum);
                    return false;
                }

                @Override
                public String describe() {
                    return "excluded-tests";
                }
            });
            long mark = LeakDetector.mark();
            List<LeakReport> leaked = new ArrayList<>();
            LeakDetector.setListener(leaked::add);
            JUnitCore core = new JUnitCore();
            core.addListener(new RunListener() {
                @Override
                public void testFailure(Failure f) {
                    System.out.println("FAILED " + f.getDescription().getDisplayName() + ": " + f.getTrace());
                }
            });
            Result res = core.run(r);
            System.out.printf("%s: %d run, %d failed, %d ignored or assumption-skipped%n", c.getSimpleName(),
                    res.getRunCount(), res.getFailureCount(), res.getIgnoreCount() + res.getAssumptionFailureCount());
            ok &= res.wasSuccessful() && res.getRunCount() > 0;
            // Every buffer the class allocated is released by its end: none was reported (found by the GC) during
            // the run and none is live at a checkpoint now (all of them are seen at level paranoid).
            LeakDetector.check(mark);
            LeakDetector.setListener(null);
            System.out.printf("%s: %d leak reports (leak detector at %s)%n", c.getSimpleName(), leaked.size(),
                    LeakDetector.level());
            for (LeakReport l : leaked.subList(0, Math.min(leaked.size(), 3))) System.out.println(l.text());
            ok &= leaked.isEmpty();
        }
        for (Map.Entry<String, String> e : excluded.entrySet()) {
            Integer n = used.get(e.getKey());
            if (n == null) {
                System.out.println("STALE exclusion (matches no test): " + e.getKey());
                ok = false;
            } else {
                System.out.println("excluded " + e.getKey() + " (" + n + "x): " + e.getValue());
            }
        }
        System.exit(ok ? 0 : 1);
    }

    private static Map<String, String> readExclusions(String file) throws IOException {
        Map<String, String> m = new HashMap<>();
        for (String line : Files.readAllLines(Paths.get(file), StandardCharsets.UTF_8)) {
            String t = line.trim();
            if (t.isEmpty() || t.startsWith("#")) continue;
            String[] parts = t.split("\\s+", 2);
            m.put(parts[0], parts.length > 1 ? parts[1] : "");
        }
        return m;
    }
}
