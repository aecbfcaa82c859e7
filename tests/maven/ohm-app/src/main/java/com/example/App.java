package com.example;

import org.ohm.Ohm;
import org.ohm.OhmBuffer;

/** Off-heap memory from ohm.jar, which loads its own libohm_jni.so: nothing on java.library.path. */
public final class App {
    private App() {}

    /**
     * Writes a value into a 64-byte buffer and prints it back.
     *
     * @param args unused
     */
    public static void main(String[] args) {
        try (OhmBuffer b = Ohm.allocate(64)) {
            b.putLong(0, 42L);
            System.out.println("ohm-app: read " + b.getLong(0) + " from a " + b.capacity() + "-byte buffer");
        }
    }
}
