package org.ohm;

/** Options of {@link OhmBuffer#mapFile}. Without WRITE a mapping is read-only. */
public enum MapOption {
    /** A read-write shared mapping: writes reach the file. */
    WRITE(0x2),
    /** Create the file if it is missing and extend it to offset + length. */
    CREATE(0x4),
    /** msync the mapping at its last release (write mappings). */
    SYNC_ON_RELEASE(0x8);

    final int flag;

    MapOption(int flag) {
        this.flag = flag;
    }
}
