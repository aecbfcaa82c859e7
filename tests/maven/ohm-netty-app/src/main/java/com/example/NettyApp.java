package com.example;

import io.netty.buffer.ByteBuf;
import org.ohm.netty.OhmByteBufAllocator;

/** A Netty buffer from ohm's allocator, with Netty and ohm.jar brought in by ohm-netty's pom. */
public final class NettyApp {
    private NettyApp() {}

    /**
     * Writes a value into a direct ByteBuf from OhmByteBufAllocator and prints it back.
     *
     * @param args unused
     */
    public static void main(String[] args) {
        ByteBuf b = OhmByteBufAllocator.DEFAULT.directBuffer(64);
        try {
            b.writeLong(42L);
            System.out.println("ohm-netty-app: read " + b.readLong() + " from " + b.getClass().getSimpleName());
        } finally {
            b.release();
        }
    }
}
