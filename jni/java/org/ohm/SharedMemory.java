package org.ohm;

import java.util.Objects;

/**
 * Shared memory as buffers: POSIX shared memory objects that another process can open by name (and see this
 * one's writes), or anonymous memory (memfd) shared with children across fork. A mapping stays valid until its
 * buffer's last release, also after {@link #unlink}.
 */
public final class SharedMemory {
    private SharedMemory() {}

    /**
     * Creates a named object of size bytes, zeroed, mapped read-write. The name is "/name" (POSIX shm).
     *
     * @throws OhmIOException if the name exists (the cause's message says EEXIST) or cannot be created
     */
    public static OhmBuffer create(String name, long size) {
        Objects.requireNonNull(name, "name");
        return make(Native.cstr(name), size);
    }

    /** Creates anonymous shared memory (memfd) of size bytes, zeroed. */
    public static OhmBuffer createAnonymous(long size) {
        return make(null, size);
    }

    private static OhmBuffer make(byte[] name, long size) {
        Registry.Local l = Registry.local();
        long h = Native.shmCreate(name, size, l.scratch);
        return OhmBuffer.root(h, l, null);
    }

    /** Maps an existing named object whole; read-only unless writable. */
    public static OhmBuffer open(String name, boolean writable) {
        Objects.requireNonNull(name, "name");
        Registry.Local l = Registry.local();
        long h = Native.shmOpen(Native.cstr(name), writable, l.scratch);
        OhmBuffer b = OhmBuffer.root(h, l, null);
        if (!writable) b.markReadOnly();
        return b;
    }

    /** Removes the name; existing mappings stay valid. */
    public static void unlink(String name) {
        Objects.requireNonNull(name, "name");
        Native.shmUnlink(Native.cstr(name));
    }
}
