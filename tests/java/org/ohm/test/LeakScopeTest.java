package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;
import org.ohm.LeakDetector;
import org.ohm.Ohm;
import org.ohm.OhmBuffer;

/** LeakScope and OhmLeakExtension: leaks named by their Java line, and what is not a scope's leak. */
@SuppressWarnings("try") // scopes in try-with-resources whose body does not name them
class LeakScopeTest {
    private static final Duration SHORT = Duration.ofMillis(200);

    private static int lineHere() {
        return new Throwable().getStackTrace()[1].getLineNumber();
    }

    @Test
    void cleanScopeCloses() {
        try (LeakScope s = LeakScope.open(SHORT)) {
            for (int i = 0; i < 1000; i++) Ohm.defaultPool().allocate(64).release();
            OhmBuffer z = Ohm.defaultPool().allocateZeroed(100);
            z.release();
        }
    }

    @Test
    void leakNamesTheJavaLine() {
        List<OhmBuffer> keep = new ArrayList<>();
        LeakScope s = LeakScope.open(SHORT);
        for (int i = 0; i < 10; i++) Ohm.defaultPool().allocate(64).release(); // magazine lends, released
        int line = lineHere() + 1;
        keep.add(Ohm.defaultPool().allocate(64));
        keep.get(0).touch("parsed the header");
        LeakException e = assertThrows(LeakException.class, s::close);
        keep.forEach(OhmBuffer::release);
        assertEquals(1, e.leaks().size(), e.getMessage());
        assertEquals("LeakScopeTest.java:" + line, e.leaks().get(0).fileLine(), e.getMessage());
        assertTrue(e.getMessage().contains("LeakScopeTest.java:" + line), e.getMessage());
        assertTrue(e.getMessage().contains("64 bytes"), e.getMessage());
    }

    @Test
    void everyLevelTracksInAScope() {
        LeakDetector.Level before = LeakDetector.level();
        try {
            for (LeakDetector.Level level : LeakDetector.Level.values()) {
                LeakDetector.setLevel(level);
                LeakScope s = LeakScope.open(SHORT);
                OhmBuffer b = Ohm.defaultPool().allocate(32);
                LeakException e = assertThrows(LeakException.class, s::close, level.toString());
                b.release();
                assertEquals(1, e.leaks().size(), level + ": " + e.getMessage());
            }
        } finally {
            LeakDetector.setLevel(before);
        }
    }

    @Test
    void buffersFromBeforeTheScopeAreNotItsLeaks() {
        OhmBuffer old = Ohm.defaultPool().allocate(64);
        try (LeakScope s = LeakScope.open(SHORT)) {
            old.putLong(0, 1);
        }
        old.release();
    }

    @Test
    void startedThreadsInheritTheScope() throws Exception {
        OhmBuffer[] made = new OhmBuffer[1];
        LeakScope s = LeakScope.open(SHORT);
        Thread t = new Thread(() -> made[0] = Ohm.defaultPool().allocate(128));
        t.start();
        t.join();
        LeakException e = assertThrows(LeakException.class, s::close);
        made[0].release();
        assertEquals(1, e.leaks().size(), e.getMessage());
        assertTrue(e.getMessage().contains("LeakScopeTest.java:"), e.getMessage());
    }

    @Test
    void aBufferReleasedShortlyByAnotherThreadIsNotALeak() throws Exception {
        ExecutorService other = Executors.newSingleThreadExecutor();
        try (LeakScope s = LeakScope.open(Duration.ofSeconds(5))) {
            OhmBuffer b = Ohm.defaultPool().allocate(256);
            other.execute(() -> {
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                b.release();
            });
        } finally {
            other.shutdown();
            other.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void wrappedTasksJoin() throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor(); // its thread starts outside the scope
        pool.submit(() -> {}).get();
        OhmBuffer[] made = new OhmBuffer[1];
        LeakScope s = LeakScope.open(SHORT);
        pool.submit(s.wrap(() -> {
            made[0] = Ohm.defaultPool().allocate(64);
        })).get();
        OhmBuffer[] outside = new OhmBuffer[1];
        pool.submit(() -> {
            outside[0] = Ohm.defaultPool().allocate(64); // after leaving: not the scope's
        }).get();
        LeakException e = assertThrows(LeakException.class, s::close);
        made[0].release();
        outside[0].release();
        pool.shutdown();
        assertEquals(1, e.leaks().size(), e.getMessage());
    }

    @Test
    void aThreadStartedInAClosedScopeBelongsToTheOpenOneAroundIt() throws Exception {
        OhmBuffer[] made = new OhmBuffer[1];
        CountDownLatch go = new CountDownLatch(1);
        LeakScope outer = LeakScope.open(SHORT);
        LeakScope inner = LeakScope.open(SHORT);
        Thread t = new Thread(() -> {
            try {
                go.await();
            } catch (InterruptedException e) {
                return;
            }
            made[0] = Ohm.defaultPool().allocate(96); // after inner closed
        });
        t.start();
        inner.close(); // nothing of inner's
        go.countDown();
        t.join();
        LeakException e = assertThrows(LeakException.class, outer::close);
        made[0].release();
        assertEquals(1, e.leaks().size(), e.getMessage());
        assertEquals(96, e.leaks().get(0).size(), e.getMessage());
    }

    @Test
    void scopesNest() {
        LeakScope outer = LeakScope.open(SHORT);
        OhmBuffer a = Ohm.defaultPool().allocate(64);
        LeakScope inner = LeakScope.open(SHORT);
        OhmBuffer b = Ohm.defaultPool().allocate(64);
        assertThrows(IllegalStateException.class, outer::close);
        LeakException ei = assertThrows(LeakException.class, inner::close);
        b.release();
        LeakException eo = assertThrows(LeakException.class, outer::close);
        a.release();
        assertEquals(1, ei.leaks().size());
        assertEquals(1, eo.leaks().size());
    }

    /** A static field's buffer made at class initialisation. */
    static final class Cache {
        static final OhmBuffer BUF = Ohm.defaultPool().allocate(64);
    }

    @Test
    void classInitialisationIsNotTheScopes() {
        try (LeakScope s = LeakScope.open(SHORT)) {
            assertEquals(64, Cache.BUF.capacity());
        }
    }

    // ---- the JUnit extension, run through the Launcher so that its failure can be checked

    static volatile boolean runningCases;

    @ExtendWith(OhmLeakExtension.class)
    static class ExtensionCases {
        static OhmBuffer leaked;

        @Test
        void releases() {
            Assumptions.assumeTrue(runningCases);
            Ohm.defaultPool().allocate(64).release();
        }

        @Test
        void leaks() {
            Assumptions.assumeTrue(runningCases);
            leaked = Ohm.defaultPool().allocate(64); // EXTENSION-LEAK
        }
    }

    @Test
    void extensionFailsTheLeakingTestOnly() {
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        runningCases = true;
        try {
            launcher.execute(LauncherDiscoveryRequestBuilder.request().selectors(selectClass(ExtensionCases.class))
                    .build(), listener);
        } finally {
            runningCases = false;
            if (ExtensionCases.leaked != null) ExtensionCases.leaked.release();
        }
        TestExecutionSummary sum = listener.getSummary();
        assertEquals(2, sum.getTestsStartedCount());
        assertEquals(1, sum.getTestsSucceededCount());
        assertEquals(1, sum.getTestsFailedCount());
        Throwable f = sum.getFailures().get(0).getException();
        assertInstanceOf(LeakException.class, f);
        assertTrue(f.getMessage().contains("LeakScopeTest.java:"), f.getMessage());
    }
}
