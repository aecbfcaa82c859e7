package org.ohm.netty.suite;

import io.netty.buffer.AbstractByteBufAllocatorTest;
import java.util.ArrayList;
import java.util.List;
import org.junit.After;
import org.ohm.Ohm;
import org.ohm.OhmPool;
import org.ohm.netty.OhmByteBufAllocator;

/**
 * Netty's AbstractByteBufAllocatorTest and ByteBufAllocatorTest, unmodified, through ohm's allocator. Each
 * allocator has a private pool, so that the used-memory metric starts at 0 and sees only the test's buffers.
 */
public class OhmByteBufAllocatorTest extends AbstractByteBufAllocatorTest<OhmByteBufAllocator> {
    private final List<OhmPool> pools = new ArrayList<>();

    @Override
    protected OhmByteBufAllocator newAllocator(boolean preferDirect) {
        OhmPool pool = Ohm.builder().name("netty-test").build();
        pools.add(pool);
        return new OhmByteBufAllocator(pool, preferDirect);
    }

    @Override
    protected OhmByteBufAllocator newUnpooledAllocator() {
        return newAllocator(false);
    }

    @After
    public void closePools() {
        for (OhmPool p : pools) p.close();
        pools.clear();
    }
}
