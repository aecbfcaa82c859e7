package org.ohm;

import java.lang.System.Logger;
import java.lang.System.Logger.Level;

/** The runtime's log (ohm_set_log_handler) as System.Logger "org.ohm"; -Dohm.log=stderr keeps the core's own. */
final class NativeLog {
    private NativeLog() {}

    static final Logger LOGGER = System.getLogger("org.ohm");

    static void log(int level, String message) {
        Level l;
        switch (level) {
            case 0: l = Level.DEBUG; break;
            case 1: l = Level.INFO; break;
            case 2: l = Level.WARNING; break;
            default: l = Level.ERROR; break;
        }
        try {
            LOGGER.log(l, message);
        } catch (RuntimeException e) {
            // a logger that throws must not unwind into the runtime
        }
    }

    static void warn(String message) {
        log(2, message);
    }
}
