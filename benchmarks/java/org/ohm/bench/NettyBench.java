package org.ohm.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
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
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.ohm.netty.OhmByteBufAllocator;

/**
 * The Netty workloads of ohm-bench-java: ohm's OhmByteBufAllocator against Netty's own allocators, used through
 * Netty's API only (netty-api-*), and in a real pipeline (netty-echo: a server and a client over loopback, the NIO
 * transport, the same allocator on both sides). Every allocator is as shipped: Netty's at its default leak
 * detection (simple, sampled), ohm's at its default.
 */
final class NettyBench {
    private NettyBench() {}

    static ByteBufAllocator allocator(String impl) {
        switch (impl) {
            case "ohm-netty": return OhmByteBufAllocator.DEFAULT;
            case "netty-pooled": return PooledByteBufAllocator.DEFAULT;
            case "netty-unpooled": return UnpooledByteBufAllocator.DEFAULT;
            default: throw new IllegalArgumentException("impl " + impl + " is not a Netty allocator");
        }
    }

    /** The native memory the allocator holds: ohm's pool resident bytes (mapped minus purged), Netty's direct
     * memory in use by its metric (a pooled allocator's chunks, an unpooled one's live buffers). */
    static long held(String impl) {
        if (impl.equals("ohm-netty")) return OhmByteBufAllocator.DEFAULT.pool().stats().residentBytes();
        return ((io.netty.buffer.ByteBufAllocatorMetricProvider) allocator(impl)).metric().usedDirectMemory();
    }

    /** netty-api: what a Netty handler does with a buffer of its own: directBuffer(n), writeLong, release. */
    static BenchMain.Loop apiLoop(BenchMain.Workload w, String impl) {
        ByteBufAllocator alloc = allocator(impl);
        int size = w.size;
        return deadline -> {
            long n = 0;
            do {
                for (int i = 0; i < 256; i++, n++) {
                    ByteBuf b = alloc.directBuffer(size);
                    b.writeLong(n);
                    b.release();
                }
            } while (System.nanoTime() < deadline);
            return n;
        };
    }

    // ---- netty-echo

    /** The message mix, per 16 messages: 16 B x4, 64 B x3, 256 B x3, 1 KiB x2, 4 KiB x2, 16 KiB, 64 KiB (mean
     * 5.7 KiB), in a fixed shuffled order. */
    static final int[] MIX = mix();

    static int[] mix() {
        int[] unit = {16, 16, 16, 16, 64, 64, 64, 256, 256, 256, 1024, 1024, 4096, 4096, 16384, 65536};
        int[] m = new int[1024];
        for (int i = 0; i < m.length; i++) m[i] = unit[i % unit.length];
        Random r = new Random(15);
        for (int i = m.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1), t = m[i];
            m[i] = m[j];
            m[j] = t;
        }
        return m;
    }

    /** The idle wait after the load: 30 s, scaled down with --scale below 1 (at least 3 s, past ohm's default
     * purge delay of 2 s). */
    static double idleSeconds(double scale) {
        return Math.max(3.0, 30.0 * Math.min(1.0, scale));
    }

    /** Both ends: what a read brought is flushed once the read is complete; an error ends the fork. */
    abstract static class Flushing extends ChannelInboundHandlerAdapter {
        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            cause.printStackTrace();
            System.exit(1);
        }
    }

    /** The client: keeps WINDOW messages in flight, each [int length][payload], and counts the frames that come
     * back whole (their last byte checked). Runs on the client's event loop only. */
    static final class Client extends Flushing {
        static final int WINDOW = 32;
        final byte[] payload = new byte[65536];
        volatile long received;
        volatile boolean stopping;
        long sent;
        volatile CountDownLatch drained = new CountDownLatch(1);

        Client() {
            new Random(1).nextBytes(payload);
        }

        void send(ChannelHandlerContext ctx) {
            int len = MIX[(int) (sent++ & (MIX.length - 1))];
            ByteBuf b = ctx.alloc().directBuffer(4 + len);
            b.writeInt(len);
            b.writeBytes(payload, 0, len);
            ctx.write(b, ctx.voidPromise());
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            for (int i = 0; i < WINDOW; i++) send(ctx);
            ctx.flush();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf f = (ByteBuf) msg;
            try {
                int len = MIX[(int) (received & (MIX.length - 1))];
                if (f.readableBytes() != len || f.getByte(f.readerIndex() + len - 1) != payload[len - 1])
                    throw new IllegalStateException("message " + received + " came back wrong");
            } finally {
                f.release();
            }
            received++;
            if (!stopping) send(ctx);
            else if (received == sent) drained.countDown();
        }
    }

    /** The server: echoes every frame (length included) as it came. */
    static final class Echo extends Flushing {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ctx.write(msg, ctx.voidPromise());
        }
    }

    /** Heap bytes allocated by every live thread (the event loops included). */
    static long heapAllThreads() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long sum = 0;
        for (long b : mx.getThreadAllocatedBytes(mx.getAllThreadIds())) if (b > 0) sum += b;
        return sum;
    }

    static void sleep(double seconds) throws InterruptedException {
        Thread.sleep((long) (seconds * 1000));
    }

    /** One fork of netty-echo: warm-up, a rest, RSS before; the measured load; RSS right after it; the idle wait;
     * RSS after it. Prints the fork's JSON line. */
    static int echo(BenchMain.Workload w, String impl, double scale) throws Exception {
        ByteBufAllocator alloc = allocator(impl);
        EventLoopGroup boss = new NioEventLoopGroup(1), server = new NioEventLoopGroup(1);
        EventLoopGroup client = new NioEventLoopGroup(1);
        Client handler = new Client();
        try {
            Channel listener = new ServerBootstrap().group(boss, server).channel(NioServerSocketChannel.class)
                    .option(ChannelOption.ALLOCATOR, alloc).childOption(ChannelOption.ALLOCATOR, alloc)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 0), new Echo());
                        }
                    }).bind(InetAddress.getLoopbackAddress(), 0).sync().channel();
            long warm = (long) (3e9 * scale), iter = (long) (0.5e9 * scale);
            Channel conn = new Bootstrap().group(client).channel(NioSocketChannel.class)
                    .option(ChannelOption.ALLOCATOR, alloc).option(ChannelOption.TCP_NODELAY, true)
                    .handler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4), handler);
                        }
                    }).connect(listener.localAddress()).sync().channel();
            // Warm-up at full load, 3 s (the JIT; the Java heap's young generation, kept small for this workload by
            // the parent, touched whole), then a rest as long as
            // the allocators' own purge needs (ohm: 2 s by default), with the load paused.
            Thread.sleep(warm / 1_000_000);
            pause(handler, conn, true);
            sleep(Math.min(5.0, idleSeconds(scale)));
            long rssBefore = BenchMain.rss(), heldBefore = held(impl);
            BenchMain.resetPeak();
            pause(handler, conn, false);
            double sum = 0;
            long heapStart = heapAllThreads(), ops0 = handler.received;
            for (int i = 0; i < 3; i++) {
                long r0 = handler.received, t0 = System.nanoTime();
                Thread.sleep(iter / 1_000_000);
                long r1 = handler.received, t1 = System.nanoTime();
                sum += (r1 - r0) * 1e9 / (t1 - t0);
            }
            long ops = handler.received - ops0;
            double heapPerOp = (heapAllThreads() - heapStart) / (double) Math.max(1, ops);
            pause(handler, conn, true);
            long peak = BenchMain.peakRss(), rssAfter = BenchMain.rss(), heldAfter = held(impl);
            double idle = idleSeconds(scale);
            sleep(idle);
            long rssIdle = BenchMain.rss(), heldIdle = held(impl);
            conn.close().sync();
            listener.close().sync();
            System.out.printf(Locale.ROOT, "{\"bench\":\"java\",\"workload\":\"%s\",\"impl\":\"%s\",\"threads\":%d,"
                            + "\"ops_per_sec\":%.6g,\"heap_bytes_per_op\":%.4f,\"peak_rss_bytes\":%d,"
                            + "\"live_peak_bytes\":%d,\"rss_before_bytes\":%d,\"rss_after_bytes\":%d,"
                            + "\"rss_idle_bytes\":%d,\"idle_seconds\":%.1f,\"held_before_bytes\":%d,"
                            + "\"held_after_bytes\":%d,\"held_idle_bytes\":%d}%n",
                    w.name, impl, w.threads, sum / 3, heapPerOp, peak, (long) Client.WINDOW * 65540, rssBefore,
                    rssAfter, rssIdle, idle, heldBefore, heldAfter, heldIdle);
            return 0;
        } finally {
            client.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
            server.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
            boss.shutdownGracefully(0, 0, TimeUnit.SECONDS).sync();
        }
    }

    /** Stops the load (waits until every message in flight is back) or starts it again (a full window). */
    static void pause(Client c, Channel conn, boolean stop) throws Exception {
        if (stop) {
            conn.eventLoop().submit(() -> {
                c.stopping = true;
                if (c.received == c.sent) c.drained.countDown();
            }).sync();
            if (!c.drained.await(60, TimeUnit.SECONDS)) throw new IllegalStateException("the echo did not drain");
            return;
        }
        conn.eventLoop().submit(() -> {
            c.stopping = false;
            c.drained = new CountDownLatch(1);
            c.channelActive(conn.pipeline().context(c));
        }).sync();
    }
}
