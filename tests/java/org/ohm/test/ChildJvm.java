package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.io.File;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assertions;

/**
 * Runs one misuse in a child JVM, so that a row that would crash the JVM (a SIGSEGV in Unsafe, a native fault)
 * fails one test instead of killing the whole suite. The child runs {@code cls.method()} (static, no arguments)
 * and prints what it threw; the parent asserts the child exited normally, left no hs_err file, and threw what
 * was expected. The child gets the parent's class path, JVM flags that matter (-Xcheck:jni) and every ohm.*
 * system property; the environment (LD_PRELOAD of a sanitizer build) is inherited.
 */
public final class ChildJvm {
    private static final String THROWN = "CHILD-THROWN ";
    private static final String RETURNED = "CHILD-RETURNED";
    private static final long TIMEOUT_S = 90;

    /** What the child did: the class of what the method threw (null if it returned), its message, its stderr. */
    public record Outcome(String thrown, String message, String stdout, String stderr) {}

    private ChildJvm() {}

    /** Runs cls.method() in a child JVM and returns what it did; fails the test if the child crashed or hung. */
    public static Outcome run(Class<?> cls, String method) {
        try {
            Path dir = Files.createTempDirectory("ohm-child");
            try {
                return runIn(dir, cls, method);
            } finally {
                try (Stream<Path> s = Files.list(dir)) {
                    for (Path p : (Iterable<Path>) s::iterator) Files.deleteIfExists(p);
                }
                Files.deleteIfExists(dir);
            }
        } catch (IOException e) {
            throw new AssertionError("child JVM for " + method + ": " + e, e);
        }
    }

    private static Outcome runIn(Path dir, Class<?> cls, String method) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xcheck:jni");
        cmd.add("-Xmx128m");
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-XX:ErrorFile=" + dir.resolve("hs_err_%p.log"));
        for (String k : System.getProperties().stringPropertyNames())
            if (k.startsWith("ohm.")) cmd.add("-D" + k + "=" + System.getProperty(k));
        cmd.add("-cp");
        cmd.add(classPath());
        cmd.add(ChildJvm.class.getName());
        cmd.add(cls.getName());
        cmd.add(method);
        File out = dir.resolve("stdout").toFile(), err = dir.resolve("stderr").toFile();
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectOutput(out).redirectError(err).start();
        boolean done;
        try {
            done = p.waitFor(TIMEOUT_S, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for the child JVM of " + method);
        }
        if (!done) p.destroyForcibly();
        String stdout = Files.readString(out.toPath(), StandardCharsets.UTF_8);
        String stderr = Files.readString(err.toPath(), StandardCharsets.UTF_8);
        String what = cls.getSimpleName() + "." + method;
        assertTrue(done, what + ": the child JVM hung (killed after " + TIMEOUT_S + " s)\n" + stdout + stderr);
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> hs = s.filter(f -> f.getFileName().toString().startsWith("hs_err")).toList();
            if (!hs.isEmpty())
                fail(what + ": the child JVM crashed:\n" + Files.readString(hs.get(0)).lines().limit(40)
                        .reduce("", (a, b) -> a + b + "\n"));
        }
        assertEquals(0, p.exitValue(), what + ": the child JVM exited with " + p.exitValue() + "\n" + stdout + stderr);
        for (String line : stdout.split("\n", -1)) {
            if (line.equals(RETURNED)) return new Outcome(null, null, stdout, stderr);
            if (line.startsWith(THROWN)) {
                String rest = line.substring(THROWN.length());
                int sp = rest.indexOf(' ');
                String msg = stdout.substring(stdout.indexOf(line) + line.length()).strip();
                return new Outcome(sp < 0 ? rest : rest.substring(0, sp), msg, stdout, stderr);
            }
        }
        throw new AssertionError(what + ": the child JVM printed no outcome\n" + stdout + stderr);
    }

    /** The parent's class path. Under JUnit's console launcher (java -jar ... -cp classes) java.class.path is the
     * launcher's jar alone, so the places the test classes, the library and JUnit were loaded from are added. */
    private static String classPath() {
        Set<String> parts = new LinkedHashSet<>(List.of(System.getProperty("java.class.path").split(File.pathSeparator)));
        for (Class<?> c : new Class<?>[] {ChildJvm.class, org.ohm.OhmBuffer.class, Assertions.class}) {
            CodeSource cs = c.getProtectionDomain().getCodeSource();
            if (cs == null) continue;
            try {
                parts.add(Path.of(cs.getLocation().toURI()).toString());
            } catch (URISyntaxException | IllegalArgumentException e) {
                // not a file location: the class path has to provide it
            }
        }
        return String.join(File.pathSeparator, parts);
    }

    /** Runs cls.method() in a child JVM and asserts that it threw expected (or a subclass, by name) and printed
     * nothing to stderr; returns the message. */
    public static String assertThrowsInChild(Class<? extends Throwable> expected, Class<?> cls, String method) {
        Outcome o = run(cls, method);
        String what = cls.getSimpleName() + "." + method;
        assertNotNull(o.thrown(), what + ": expected " + expected.getName() + ", nothing was thrown");
        Class<?> got;
        try {
            got = Class.forName(o.thrown());
        } catch (ClassNotFoundException e) {
            throw new AssertionError(what + ": threw an unknown class " + o.thrown());
        }
        assertTrue(expected.isAssignableFrom(got), what + ": expected " + expected.getName() + ", got " + o.thrown()
                + ": " + o.message());
        assertEquals("", o.stderr(), what + ": the child printed to stderr");
        return o.message();
    }

    /** The child's entry: runs args[0].args[1]() and prints what happened; exits 0 unless the JVM dies. */
    public static void main(String[] args) throws ReflectiveOperationException {
        Method m = Class.forName(args[0]).getDeclaredMethod(args[1]);
        m.setAccessible(true);
        try {
            m.invoke(null);
            System.out.println(RETURNED);
        } catch (InvocationTargetException e) {
            Throwable t = e.getCause();
            System.out.println(THROWN + t.getClass().getName());
            System.out.println(String.valueOf(t.getMessage()));
        }
        System.out.flush();
        System.exit(0);
    }
}
