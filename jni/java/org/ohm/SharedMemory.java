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
     * @param name the object's name, "/name"
     * @param size the size in bytes
     * @return the mapping as a buffer, with a count of 1
     * @throws OhmIOException if the name exists (the cause's message says EEXIST) or cannot be created
     * @throws OhmOutOfMemoryError if the OS cannot map size bytes
     * @throws IllegalArgumentException for a name that is not "/name" (one leading slash, no other), or a size
     *         below 1
     */
    public static OhmBuffer create(String name, long size) {
        Objects.requireNonNull(name, "name");
        return make(Native.cstr(name), size);
    }

    /**
     * Creates anonymous shared memory (memfd) of size bytes, zeroed. IllegalArgumentException for a size below 1,
     * OhmOutOfMemoryError if the OS cannot map that much, OhmIOException for another OS failure.
     *
     * @param size the size in bytes
     * @return the mapping as a buffer, with a count of 1
     */
    public static OhmBuffer createAnonymous(long size) {
        return make(null, size);
    }

    private static OhmBuffer make(byte[] name, long size) {
        SafetyNet.Local l = SafetyNet.local();
        long h = Native.shmCreate(name, size, l.scratch);
        return OhmBuffer.root(h, l, null);
    }

    /**
     * Maps an existing named object whole; read-only unless writable (a put throws IllegalStateException, the
     * {@link OhmBuffer#nioBuffer()} is read-only).
     *
     * @param name the object's name, "/name"
     * @param writable whether to map it read-write
     * @return the mapping as a buffer, with a count of 1
     * @throws OhmIOException if the object does not exist or cannot be opened or mapped
     * @throws IllegalArgumentException for a name that is not "/name"
     */
    public static OhmBuffer open(String name, boolean writable) {
        Objects.requireNonNull(name, "name");
        SafetyNet.Local l = SafetyNet.local();
        long h = Native.shmOpen(Native.cstr(name), writable, l.scratch);
        return OhmBuffer.root(h, l, null);
    }

    /**
     * Removes the name; existing mappings stay valid. OhmIOException if it does not exist,
     * IllegalArgumentException for a name that is not "/name".
     *
     * @param name the object's name, "/name"
     */
    public static void unlink(String name) {
        Objects.requireNonNull(name, "name");
        Native.shmUnlink(Native.cstr(name));
    }
}
