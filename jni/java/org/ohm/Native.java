package org.ohm;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The natives of libohm_jni.so, registered by its JNI_OnLoad (RegisterNatives). Pointers cross as {@code long};
 * a buffer crosses as its (handle, id) pair, which the native checks first. Natives that fail throw the
 * exception the binding layer's table names; those documented as returning a code return a negative
 * {@code OHM_E*} value instead, which {@link #raise(int)} turns into that exception.
 */
final class Native {
    private Native() {}

    /* OHM_E* codes: a copy of ohm.h's OHM_ERRORS, checked against it by ErrorCodeTest. */
    static final int OK = 0, ENOMEM = -1, EINVAL = -2, ESTATE = -3, ERANGE = -4, ELIMIT = -5, ESYS = -6,
            EPERM = -7, ETIMEDOUT = -8, ECANCELED = -9, ECALLBACK = -10;

    /* ohm_bind_type values, for the JNI access route. */
    static final int I8 = 0, I16 = 2, I32 = 4, I64 = 6, F32 = 8, F64 = 9;
    static final int LE = 0, BE = 1;

    /** How the library was loaded: "ohm.library.path", "java.library.path" or "resource". */
    static final String SOURCE = NativeLoader.load();

    static {
        logToJava(!"stderr".equals(System.getProperty("ohm.log")));
        LeakDetector.configureFromProperties();
    }

    /** Makes sure the library is loaded (class initialization does it). */
    static void init() {}

    /** A Java string as the NUL-terminated UTF-8 bytes natives take; null stays null. */
    static byte[] cstr(String s) {
        if (s == null) return null;
        if (s.indexOf('\0') >= 0) throw new IllegalArgumentException("string contains a NUL character: " + s);
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        byte[] z = new byte[b.length + 1];
        System.arraycopy(b, 0, z, 0, b.length);
        return z;
    }

    /* Called by the native side: a leak report for LeakDetector's listener, and a line of the core's log. */
    static void leak(int reason, long bufferId, long size, String site, String text, String json) {
        LeakDetector.deliver(reason, bufferId, size, site, text, json);
    }

    static void log(int level, String message) {
        NativeLog.log(level, message);
    }

    // ---- errors and log
    static native void logToJava(boolean on);
    static native String strerror(int code);
    /** Throws the exception for code with this thread's last failure message (call right after the failure). */
    static native void raise(int code);
    static native String errorMessage(int code);
    /** The exception for code, not thrown (to clean up natively before throwing it). */
    static native Throwable error(int code);

    /** Throws t, which natives make as RuntimeExceptions or Errors. {@code throw Native.rethrow(t)}. */
    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException) throw (RuntimeException) t;
        if (t instanceof Error) throw (Error) t;
        throw new OhmCallbackException(String.valueOf(t.getMessage()), t);
    }

    // ---- pools
    static native long[] poolConfigDefaults();
    static native long poolCreate(byte[] name, long[] config);
    static native long poolDefault();
    static native void poolDestroy(long pool);
    static native void poolTrim(long pool);
    static native void poolFlush(long pool);
    static native long[] poolStats(long pool, int arena);

    // ---- buffers (scratch: the calling thread's block; out[0] id, out[1] address, out[2] flags, out[3] size)
    /** Bits of out[2]: the leak detector tracks the buffer; its memory is read-only (ohm_buf_readonly). */
    static final long OUT_TRACKED = 1, OUT_READONLY = 2;
    static native long bufAlloc(long pool, long size, boolean zeroed, long scratch);
    static native long bufSlice(long h, long id, long off, long len, boolean retained, long scratch);
    static native long bufDuplicate(long h, long id, long scratch);
    /** 0 or a code. */
    static native int bufRetain(long h, long id, int n);
    /** 1 when this call freed the memory, 0, or a code. */
    static native int bufRelease(long h, long id, int n);
    /** The count, 0 for a stale handle. */
    static native int bufRefCnt(long h, long id);
    static native int bufReclaim(long h, long id);
    static native void bufTouch(long h, long id, byte[] hint);
    static native void bufSetSite(long h, long id, byte[] site);
    static native int bufOrigin(long h, long id);
    static native void bufSeal(long h, long id, boolean sealed);
    /** Up to n parked buffers (ohm_buf_parked records of bufLayout()[4] bytes at out); how many. */
    static native int magRefill(long pool, long size, int n, long out);
    /** Ends n parked buffers whose records are at in; how many. */
    static native int magFlush(long in, int n);
    /** {state, size, gen1, gen2} offsets inside a buffer header, and the parked record's size. */
    static native long[] bufLayout();
    /** A leak record for a lent buffer (forced: Java sampled it). */
    static native void bufTrack(long h, long id);
    static native long mapFile(byte[] path, long off, long len, int flags, long scratch);
    static native void bufSync(long h, long id, long off, long len);
    static native long shmCreate(byte[] name, long size, long scratch);
    static native long shmOpen(byte[] name, boolean writable, long scratch);
    static native void shmUnlink(byte[] name);
    static native long bufGet(long h, long id, long off, int type, int order);
    static native void bufSet(long h, long id, long off, int type, int order, long bits);
    static native void bufReadArray(long h, long id, long off, byte[] dst, int dstOff, int len);
    static native void bufWriteArray(long h, long id, long off, byte[] src, int srcOff, int len);
    static native void bufCopy(long dh, long did, long doff, long sh, long sid, long soff, long len);
    static native void bufFill(long h, long id, long off, long len, byte value);
    static native long bufFind(long h, long id, long off, long len, byte[] needle);
    static native int bufCompare(long ah, long aid, long bh, long bid);
    /** A direct ByteBuffer over the range; writable: the caller makes sure the memory is not read-only (the native
     * refuses with IllegalStateException if it is), else the caller makes the view read-only. */
    static native ByteBuffer bufNio(long h, long id, long off, long len, boolean writable);
    static native long directAddress(ByteBuffer bb);

    // ---- leak detector
    static native void leakSetLevel(int level);
    static native int leakGetLevel();
    static native void leakSetSample(int interval);
    static native int leakGetSample();
    static native long leakMark();
    static native long leakCheck(long mark);

    // ---- leak scopes (jni_scope.c): join and leave return OHM_E* codes
    static native long scopeOpen();
    static native int scopeJoin(long id);
    static native int scopeLeave();
    static native long scopeCurrent();
    /** Closes after waiting up to waitMs; per buffer still live: id, size, Java site text, hints, report text. */
    static native String[] scopeClose(long id, int waitMs);

    // ---- memory manager (acquires return granted bytes or a code)
    static native long[] mmConfigDefaults();
    static native long mmOnHeapFromHeap(long heap, double fraction);
    static native long mmCreate(long[] config, long pool);
    static native void mmDestroy(long mm);
    static native long[] mmStats(long mm);
    static native String mmSnapshot(long mm);
    static native long taskCreate(long mm, long id, long waitMs);
    static native long taskEnd(long task);
    static native void taskSetWaitTimeout(long task, long ms);
    static native long taskAcquire(long task, int mode, long n);
    static native long taskRelease(long task, int mode, long n);
    static native int taskAcquireUnroll(long task, int mode, byte[] group, long n);
    static native long taskReleaseUnroll(long task, int mode, long n);
    static native void taskCancel(long mm, long id);
    static native long[] taskStats(long task);
    static native long consumerCreate(long task, int mode, byte[] name, long ctx);
    static native long newGlobal(Object o);
    static native void deleteGlobal(long ref);
    /** 0 or a code (ESTATE while it has live pages). */
    static native int consumerDestroy(long c);
    static native long consumerAcquire(long c, long n);
    static native long consumerRelease(long c, long n);
    static native long[] consumerStats(long c);
    static native long consumerUsed(long c);
    /** A handle, or a code; on ELIMIT scratch[0] is what was available. */
    static native long consumerAllocPage(long c, long size, long scratch);
    static native long evictorCreate(long ctx);
    static native void evictorDestroy(long evictor);
    /** 0 or a code. */
    static native int blockPut(long mm, byte[] id, byte[] group, int mode, long h, long bid, long size, long evictor);
    static native void blockPin(long mm, byte[] id);
    static native void blockUnpin(long mm, byte[] id);
    static native void blockRemove(long mm, byte[] id);

    // ---- libffi bridge
    static native long ffiOpen(byte[] path);
    static native void ffiClose(long lib);
    static native long ffiFunc(long lib, byte[] symbol, byte[] signature);
    static native long ffiFuncPtr(long address, byte[] name, byte[] signature);
    static native void ffiFuncFree(long fn);
    /** Return type, then argument types (ohm_ffi_type values). */
    static native int[] ffiTypes(long fn);
    /**
     * Calls fn. kinds[i] is an ohm_ffi_arg_kind; longs[i] holds an integer, a double's bits, an address, or a
     * buffer's handle (ids[i] its id, offs[i] the offset); strs[i] a string's bytes. The result is returned as
     * bits (a double's bits for f32/f64); a str result is copied into strOut[0].
     */
    static native long ffiCall(long fn, int[] kinds, long[] longs, long[] ids, long[] offs, byte[][] strs,
                               String[] strOut);
    static native long ffiClosureCreate(byte[] signature, long ctx);
    static native long ffiClosureCode(long closure);
    /** The closure's signature as a function (for its types). */
    static native long ffiClosureSig(long closure);
    static native void ffiClosureFree(long closure);
    static native String ffiString(long address);
}
