package org.ohm;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Finds and loads libohm_jni.so, trying in order:
 * <ol>
 *   <li>{@code -Dohm.library.path}: the library file itself, or a directory holding libohm_jni.so;</li>
 *   <li>{@code java.library.path}, through {@link System#loadLibrary(String)};</li>
 *   <li>the copy the jar carries for its platform ({@code /org/ohm/native/linux-x86_64/libohm_jni.so}), extracted
 *       to a temporary file that is deleted once loaded (the mapping outlives the name).</li>
 * </ol>
 * When -Dohm.library.path is set and fails, loading fails: the user asked for that file.
 */
final class NativeLoader {
    private NativeLoader() {}

    static final String NAME = "ohm_jni";

    static String load() {
        String explicit = System.getProperty("ohm.library.path");
        if (explicit != null && !explicit.isEmpty()) {
            File f = new File(explicit);
            if (f.isDirectory()) f = new File(f, System.mapLibraryName(NAME));
            System.load(f.getAbsolutePath());
            return "ohm.library.path";
        }
        List<Throwable> failures = new ArrayList<>();
        try {
            System.loadLibrary(NAME);
            return "java.library.path";
        } catch (UnsatisfiedLinkError e) {
            failures.add(e);
        }
        try {
            loadResource();
            return "resource";
        } catch (IOException | UnsatisfiedLinkError e) {
            failures.add(e);
        }
        UnsatisfiedLinkError e = new UnsatisfiedLinkError("cannot load " + System.mapLibraryName(NAME)
                + ": not in java.library.path, and the jar's copy for " + platformDir() + " could not be loaded;"
                + " set -Dohm.library.path to the library file");
        failures.forEach(e::addSuppressed);
        throw e;
    }

    private static void loadResource() throws IOException {
        String platform = platformDir();
        String resource = "/org/ohm/native/" + platform + "/" + System.mapLibraryName(NAME);
        try (InputStream in = NativeLoader.class.getResourceAsStream(resource)) {
            if (in == null) throw new IOException("the jar has no " + resource);
            Path tmp = Files.createTempFile("libohm_jni-", ".so");
            try {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                System.load(tmp.toAbsolutePath().toString());
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
    }

    /** The resource directory of this platform: linux-x86_64. */
    static String platformDir() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) os = "linux";
        if (arch.equals("amd64")) arch = "x86_64";
        return os + "-" + arch;
    }
}
