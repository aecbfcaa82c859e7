package org.ohm.netty.suite;

import io.netty.buffer.AbstractByteBufTest;
import io.netty.buffer.ByteBuf;
import java.nio.ByteOrder;
import org.ohm.netty.OhmByteBufAllocator;

import static org.junit.Assert.assertSame;

/** Netty's AbstractByteBufTest, unmodified, over big-endian direct buffers of ohm's allocator. */
public class BigEndianOhmDirectByteBufTest extends AbstractByteBufTest {
    @Override
    protected ByteBuf newBuffer(int capacity, int maxCapacity) {
        ByteBuf b = OhmByteBufAllocator.DEFAULT.directBuffer(capacity, maxCapacity);
        assertSame(ByteOrder.BIG_ENDIAN, b.order());
        return b;
    }
}
