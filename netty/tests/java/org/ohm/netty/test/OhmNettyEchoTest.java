package org.ohm.netty.test;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.LengthFieldPrepender;
import java.net.InetAddress;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.Rule;
import org.junit.Test;
import org.ohm.LeakDetector;
import org.ohm.LeakReport;
import org.ohm.Ohm;
import org.ohm.OhmPool;
import org.ohm.netty.OhmByteBufAllocator;
import org.ohm.netty.OhmDirectByteBuf;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

/**
 * A Netty server and client over loopback (NIO transport) with ohm's allocator on both sides echo messages of
 * mixed sizes (16 B - 256 KiB, log-uniform), each checked byte for byte; then nothing is live in the pool and a
 * checkpoint finds no leak. A variant whose server forgets to release every 1000th message finds exactly those
 * buffers, each with its allocation site, and the GC gives their memory back.
 */
public class OhmNettyEchoTest {
    private static final int MESSAGES = Integer.getInteger("ohm.netty.echo.messages", 100_000);
    private static final int LEAKY_MESSAGES = Integer.getInteger("ohm.netty.echo.leakyMessages", 20_000);
    private static final int MIN_SIZE = 16;
    private static final int MAX_SIZE = 256 * 1024;
    /** Messages in flight: enough to keep both sides busy, few enough to bound the memory in use. */
    private static final int WINDOW = 16;

    @Rule
    public final LeakCapture leaks = new LeakCapture();

    @Test
    public void echoesMixedSizesAndLeavesNothingLive() throws Exception {
        try (OhmPool pool = Ohm.builder().name("netty-echo").build()) {
            long mark = LeakDetector.mark();
            Set<Long> forgotten = echo(new OhmByteBufAllocator(pool, true), MESSAGES, 0);
            assertTrue(forgotten.isEmpty());
            assertEquals(0, pool.stats().activeBlocks());
            assertEquals(0, LeakDetector.check(mark));
            assertEquals(leaks.reports.toString(), 0, leaks.reports.size());
        }
    }

    @Test
    public void aServerThatForgetsEvery1000thReleaseLeaksExactlyThoseBuffersEachWithItsSite() throws Exception {
        try (OhmPool pool = Ohm.builder().name("netty-echo-leaky").build()) {
            long mark = LeakDetector.mark();
            Set<Long> forgotten = echo(new OhmByteBufAllocator(pool, true), LEAKY_MESSAGES, 1000);
            assertEquals(LEAKY_MESSAGES / 1000, forgotten.size());
            // The ones the GC has not found yet are live at the checkpoint; those it found are reported as it
            // reclaims them (on the cleaner thread: wait for them, bounded).
            LeakDetector.check(mark);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!leaks.ids().containsAll(forgotten) && System.nanoTime() < deadline) {
                System.gc();
                Thread.sleep(20);
            }
            assertEquals(forgotten, leaks.ids());
            for (LeakReport r : leaks.reports) {
                assertTrue(r.text(), r.allocationSite() != null
                        && r.allocationSite().contains("OhmNettyEchoTest$CopyingFrameDecoder.extractFrame"));
            }
            // The safety net gives their memory back once the GC has found them all.
            while (pool.stats().activeBlocks() > 0 && System.nanoTime() < deadline + TimeUnit.SECONDS.toNanos(20)) {
                System.gc();
                Thread.sleep(20);
            }
            assertEquals(0, pool.stats().activeBlocks());
        }
    }

    /** Echoes messages through a server and a client on loopback; returns the ohm ids of the buffers the server
     * forgot to release (every forgetEvery-th message; 0: none). */
    private static Set<Long> echo(OhmByteBufAllocator alloc, int messages, int forgetEvery) throws Exception {
        EventLoopGroup boss = new NioEventLoopGroup(1);
        EventLoopGroup server = new NioEventLoopGroup(1);
        EventLoopGroup client = new NioEventLoopGroup(1);
        Set<Long> forgotten = ConcurrentHashMap.newKeySet();
        CompletableFuture<Void> done = new CompletableFuture<>();
        try {
            Channel listening = new ServerBootstrap().group(boss, server).channel(NioServerSocketChannel.class)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .childOption(ChannelOption.ALLOCATOR, alloc)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new CopyingFrameDecoder(), new LengthFieldPrepender(4),
                                    new EchoHandler(forgetEvery, forgotten));
                        }
                    })
                    .bind(InetAddress.getLoopbackAddress(), 0).sync().channel();
            Channel ch = new Bootstrap().group(client).channel(NioSocketChannel.class)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .handler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(MAX_SIZE, 0, 4, 0, 4),
                                    new LengthFieldPrepender(4), new Sender(messages, done));
                        }
                    })
                    .connect(listening.localAddress()).sync().channel();
            done.get(300, TimeUnit.SECONDS);
            ch.close().sync();
            listening.close().sync();
        } finally {
            for (EventLoopGroup g : new EventLoopGroup[] {client, server, boss}) {
                g.shutdownGracefully(0, 0, TimeUnit.SECONDS).await(30, TimeUnit.SECONDS);
            }
        }
        return forgotten;
    }

    // ---- the messages: message i has sizeOf(i) bytes of content(i)

    private static long mix(long x) {
        x += 0x9E3779B97F4A7C15L;
        x = (x ^ (x >>> 30)) * 0xBF58476D1CE4E5B9L;
        x = (x ^ (x >>> 27)) * 0x94D049BB133111EBL;
        return x ^ (x >>> 31);
    }

    static int sizeOf(int i) {
        double u = (mix(i) >>> 11) * 0x1.0p-53;
        return (int) Math.min(MAX_SIZE, MIN_SIZE * Math.pow((double) MAX_SIZE / MIN_SIZE, u));
    }

    static ByteBuf message(ChannelHandlerContext ctx, int i) {
        int size = sizeOf(i);
        ByteBuf b = ctx.alloc().directBuffer(size);
        long seed = mix(~i);
        int k = 0;
        for (; k + 8 <= size; k += 8) b.writeLong(seed + k);
        for (; k < size; k++) b.writeByte((int) (seed >>> (8 * (k & 7))));
        return b;
    }

    static void check(ByteBuf b, int i) {
        int size = sizeOf(i);
        assertEquals("size of message " + i, size, b.readableBytes());
        long seed = mix(~i);
        int at = b.readerIndex();
        int k = 0;
        for (; k + 8 <= size; k += 8) {
            if (b.getLong(at + k) != seed + k) throw new AssertionError("message " + i + " differs at byte " + k);
        }
        for (; k < size; k++) {
            if (b.getByte(at + k) != (byte) (seed >>> (8 * (k & 7)))) {
                throw new AssertionError("message " + i + " differs at byte " + k);
            }
        }
    }

    // ---- the handlers

    /** Frames copied into buffers of their own (Netty's default is a retained slice of the cumulation, which
     * would make a forgotten frame keep a shared buffer alive): each frame is one ohm buffer with its site. */
    private static final class CopyingFrameDecoder extends LengthFieldBasedFrameDecoder {
        CopyingFrameDecoder() {
            super(MAX_SIZE, 0, 4, 0, 4);
        }

        @Override
        protected ByteBuf extractFrame(ChannelHandlerContext ctx, ByteBuf buffer, int index, int length) {
            ByteBuf frame = ctx.alloc().directBuffer(length);
            frame.writeBytes(buffer, index, length);
            return frame;
        }
    }

    /** Writes each frame back; with forgetEvery > 0, every forgetEvery-th frame is answered with a copy and
     * never released (the bug a leak detector is for). */
    private static final class EchoHandler extends ChannelInboundHandlerAdapter {
        private final int forgetEvery;
        private final Set<Long> forgotten;
        private int count;

        EchoHandler(int forgetEvery, Set<Long> forgotten) {
            this.forgetEvery = forgetEvery;
            this.forgotten = forgotten;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf frame = (ByteBuf) msg;
            if (forgetEvery > 0 && ++count % forgetEvery == 0) {
                // A hint of its own makes each leak's report distinct: the GC's reports of leaks with identical
                // sites and access records are deduplicated (as Netty's detector does), and this test counts them.
                frame.touch("message " + count);
                forgotten.add(((OhmDirectByteBuf) frame).ohmBuffer().id());
                ctx.write(frame.copy());
            } else {
                ctx.write(frame);
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }
    }

    /** Sends the messages with at most WINDOW in flight and checks each echo in order. */
    private static final class Sender extends ChannelInboundHandlerAdapter {
        private final int messages;
        private final CompletableFuture<Void> done;
        private int sent;
        private int received;

        Sender(int messages, CompletableFuture<Void> done) {
            this.messages = messages;
            this.done = done;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            while (sent < Math.min(WINDOW, messages)) ctx.write(message(ctx, sent++));
            ctx.flush();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf b = (ByteBuf) msg;
            try {
                check(b, received++);
            } catch (Throwable e) {
                done.completeExceptionally(e);
                return;
            } finally {
                b.release();
            }
            if (received == messages) done.complete(null);
            else if (sent < messages) ctx.write(message(ctx, sent++));
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            done.completeExceptionally(cause);
            ctx.close();
        }
    }
}
