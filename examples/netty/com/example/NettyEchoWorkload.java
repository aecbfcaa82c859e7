package com.example;

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
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.ohm.Ohm;
import org.ohm.OhmPool;
import org.ohm.netty.OhmByteBufAllocator;
import org.ohm.stress.Context;
import org.ohm.stress.Workload;

/**
 * An ohm-stress Netty workload: each driver thread runs an echo server and a client over loopback (NIO, length-
 * prefixed frames) with ohm's allocator on both sides; each iteration sends a few messages, each a kept greeting
 * followed by the iteration's own bytes, and checks every echo byte for byte. The environment plants a leak on a
 * marked line: LEAK=1 has every 1000th iteration keep a copy of a reply "for logging" and never release it;
 * LEAK=handler has the server's handler answer the last message of every 1000th iteration with a copy and never
 * release the message (the classic Netty leak: an inbound ByteBuf that channelRead neither passes on nor releases).
 *
 * <p>The iteration's leak scope covers this thread's buffers: the requests it writes (Netty releases them on the
 * event loop after writing, which the scope waits for), the copies it makes, and the replies handed to it. Buffers
 * the event loops allocate for themselves (socket reads) are in the driver's run scope instead: the event-loop
 * threads are made in setup, inside it, and inherit it. One still live after teardown (which shuts the loops
 * down) is a leak; its allocation stack is all Netty's, so the report names the handler that last touched it
 * (Netty's pipeline touches each message with the handler's context as hint).
 *
 * <pre>
 * java -cp build/jni/ohm.jar:build/jni/ohm-netty.jar:NETTY_JARS:build/examples/netty/classes \
 *      org.ohm.stress.Main --workload com.example.NettyEchoWorkload --threads 2 --duration 10
 * </pre>
 */
public final class NettyEchoWorkload implements Workload {
    private static final boolean PLANT = "1".equals(System.getenv("LEAK"));
    private static final boolean PLANT_HANDLER = "handler".equals(System.getenv("LEAK"));
    private static final int MESSAGES = 8;
    private static final byte[] GREETING = "ohm-stress echo ".getBytes(StandardCharsets.US_ASCII);
    /** One pool for every thread's allocator: watched by the driver, alive until the JVM exits. */
    private static final OhmPool POOL = Ohm.builder().name("netty-echo").build();

    private final OhmByteBufAllocator alloc = new OhmByteBufAllocator(POOL, true);
    private final BlockingQueue<ByteBuf> replies = new LinkedBlockingQueue<>();
    private EventLoopGroup boss, server, client;
    private Channel listening, channel;
    private ByteBuf greeting, lastReply;

    @Override
    public void setup(Context ctx) throws InterruptedException {
        ctx.watch(POOL);
        boss = new NioEventLoopGroup(1);
        server = new NioEventLoopGroup(1);
        client = new NioEventLoopGroup(1);
        listening = new ServerBootstrap().group(boss, server).channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.ALLOCATOR, alloc).childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 16, 0, 4, 0, 4),
                                new LengthFieldPrepender(4), new Echo());
                    }
                }).bind(InetAddress.getLoopbackAddress(), 0).sync().channel();
        channel = new Bootstrap().group(client).channel(NioSocketChannel.class).option(ChannelOption.ALLOCATOR, alloc)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 16, 0, 4, 0, 4),
                                new LengthFieldPrepender(4), new Collect(replies));
                    }
                }).connect(listening.localAddress()).sync().channel();
    }

    @Override
    public void iteration(Context ctx) throws InterruptedException {
        if (greeting == null) greeting = ctx.keep(alloc.directBuffer(GREETING.length).writeBytes(GREETING));
        for (int i = 0; i < MESSAGES; i++) {
            ByteBuf m = alloc.directBuffer(GREETING.length + 16);
            m.writeBytes(greeting, greeting.readerIndex(), greeting.readableBytes());
            m.writeLong(ctx.iteration()).writeLong(i);
            channel.write(m);
        }
        channel.flush();
        for (int i = 0; i < MESSAGES; i++) {
            ByteBuf reply = replies.poll(10, TimeUnit.SECONDS);
            if (reply == null) {
                ctx.error("no echo of message " + i + " within 10 s");
                return;
            }
            if (!echoes(reply, ctx.iteration(), i)) ctx.error("the echo of message " + i + " differs");
            if (PLANT && ctx.iteration() % 1000 == 0 && i == 0) {
                lastReply = reply.copy(); // PLANTED LEAK
            }
            reply.release();
        }
    }

    private boolean echoes(ByteBuf reply, long iteration, int i) {
        int at = reply.readerIndex(), n = greeting.readableBytes();
        return reply.readableBytes() == n + 16 && reply.slice(at, n).equals(greeting)
                && reply.getLong(at + n) == iteration && reply.getLong(at + n + 8) == i;
    }

    @Override
    public void teardown(Context ctx) throws InterruptedException {
        channel.close().sync();
        listening.close().sync();
        for (EventLoopGroup g : new EventLoopGroup[] {client, server, boss})
            g.shutdownGracefully(0, 0, TimeUnit.SECONDS).await(30, TimeUnit.SECONDS);
        for (ByteBuf late; (late = replies.poll()) != null;) late.release(); // echoes of an iteration that gave up
        if (greeting != null) greeting.release();
    }

    /** The server: writes every frame back. */
    private static final class Echo extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf m = (ByteBuf) msg;
            int end = m.writerIndex();
            if (PLANT_HANDLER && m.readableBytes() >= 16 && m.getLong(end - 16) % 1000 == 0
                    && m.getLong(end - 8) == MESSAGES - 1) {
                ctx.write(m.copy()); // PLANTED LEAK (handler): answers with a copy, never releases the message
                return;
            }
            ctx.write(msg);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }
    }

    /** The client: hands every echoed frame to the driver thread, which checks and releases it. */
    private static final class Collect extends ChannelInboundHandlerAdapter {
        private final BlockingQueue<ByteBuf> replies;

        Collect(BlockingQueue<ByteBuf> replies) {
            this.replies = replies;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            replies.add((ByteBuf) msg);
        }
    }
}
