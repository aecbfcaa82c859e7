package org.ohm.stress;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * A run's results handed to ohm-stress's report writer (stress/workload.c, in libohm_jni.so), which computes the
 * verdict and growth trend and writes the summary, the JSON object and the HTML report exactly as for
 * {@code ohm-stress --lua}. No static state: the library registers {@link #write} when it loads, which happens
 * before any run ({@link Main} uses the runtime first).
 */
final class Report {
    private Report() {}

    /** What the writer returned: the summary or JSON text, whether the run failed, and why the HTML report could
     * not be written (null when it was, or when none was asked for). */
    record Written(String text, boolean failed, String reportError) {}

    /** The report of run, which took seconds; json selects the JSON object over the summary; html is the HTML
     * report's path or null. */
    static Written of(Main.Run run, String workload, int threads, double seconds, boolean json, String html) {
        ByteArrayOutputStream strings = new ByteArrayOutputStream();
        string(strings, workload);
        string(strings, run.firstError);
        string(strings, html);
        List<String> pools = run.sampler.poolNames();
        for (String p : pools) string(strings, p);
        Map<String, Main.Site> sites = run.sites;
        long[] numbers = new long[7 + 3 * sites.size()];
        numbers[0] = threads;
        numbers[1] = run.next.get();
        numbers[2] = run.leaks;
        numbers[3] = run.leakBytes;
        numbers[4] = run.integrityErrors;
        numbers[5] = pools.size();
        numbers[6] = sites.size();
        int i = 7;
        for (Map.Entry<String, Main.Site> e : sites.entrySet()) {
            string(strings, e.getKey());
            numbers[i++] = e.getValue().count;
            numbers[i++] = e.getValue().bytes;
            numbers[i++] = e.getValue().firstIteration;
        }
        String[] r = write(strings.toByteArray(), numbers, seconds, run.sampler.samples(), json);
        return new Written(r[0], "FAILED".equals(r[1]), r[2]);
    }

    /** s as NUL-terminated UTF-8 (null as the empty string); a NUL inside s ends it early. */
    private static void string(ByteArrayOutputStream out, String s) {
        if (s != null) out.writeBytes(s.replace('\0', ' ').getBytes(StandardCharsets.UTF_8));
        out.write(0);
    }

    /**
     * jni_stress.c. strings: NUL-terminated UTF-8, the workload, the first error, the HTML path ("" for none),
     * the pool names, the sites. numbers: threads, iterations, leaks, leak bytes, integrity errors, pools, sites,
     * then each site's count, bytes and first iteration. samples: per sample its time (s), RSS, manager use and
     * each pool's live bytes. Returns {text, "PASSED" or "FAILED", the HTML report's error or null}.
     */
    private static native String[] write(byte[] strings, long[] numbers, double seconds, double[] samples,
            boolean json);
}
