package org.ohm.netty.test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.rules.ExternalResource;
import org.ohm.LeakDetector;
import org.ohm.LeakListener;
import org.ohm.LeakReport;

/** A JUnit rule: ohm's leak detector at PARANOID (every buffer tracked) with its reports collected for the
 * test; the level and listener before the test come back after it. */
public final class LeakCapture extends ExternalResource {
    /** The reports delivered during the test (from the cleaner thread too). */
    public final List<LeakReport> reports = new CopyOnWriteArrayList<>();
    private LeakDetector.Level level;
    private LeakListener listener;

    @Override
    protected void before() {
        level = LeakDetector.level();
        listener = LeakDetector.listener();
        LeakDetector.setLevel(LeakDetector.Level.PARANOID);
        LeakDetector.setListener(reports::add);
    }

    @Override
    protected void after() {
        LeakDetector.setListener(listener);
        LeakDetector.setLevel(level);
    }

    /** The ohm buffer ids reported so far. */
    public Set<Long> ids() {
        Set<Long> ids = new HashSet<>();
        for (LeakReport r : reports) ids.add(r.bufferId());
        return ids;
    }
}
