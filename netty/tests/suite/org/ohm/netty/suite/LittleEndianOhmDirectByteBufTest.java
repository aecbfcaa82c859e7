package org.ohm.netty.suite;

import io.netty.buffer.AbstractByteBufTest;
import io.netty.buffer.ByteBuf;
import java.nio.ByteOrder;
import org.ohm.netty.OhmByteBufAllocator;

import static org.junit.Assert.assertSame;

/** Netty's AbstractByteBufTest, unmodified, over ohm's direct buffers in little-endian order (as Netty's own
 * little-endian tests make theirs: order(LITTLE_ENDIAN) of a big-endian buffer). */
public class LittleEndianOhmDirectByteBufTest extends AbstractByteBufTest {
    @Override
    protected ByteBuf newBuffer(int capacity, int maxCapacity) {
        ByteBuf b = OhmByteBufAllocator.DEFAULT.directBuffer(capacity, maxCapacity).order(ByteOrder.LITTLE_ENDIAN);
        assertSame(ByteOrder.LITTLE_ENDIAN, b.order());
        return b;
    }
}
