package org.ohm.test;

import java.util.List;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit 5: {@code @ExtendWith(OhmLeakExtension.class)} on a class or a method runs each test in a
 * {@link LeakScope} and fails it with the scope's {@link LeakException} when buffers it allocated (OhmBuffers,
 * Netty buffers of ohm's allocator) are still live after it ends and the scope's bounded wait. Buffers made
 * before the test (static fields, class initialisation, {@code @BeforeAll}) are not the test's. JUnit is needed
 * at compile time only; this class is loaded only by JUnit.
 */
public final class OhmLeakExtension implements BeforeEachCallback, AfterEachCallback {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(OhmLeakExtension.class);

    @Override
    public void beforeEach(ExtensionContext context) {
        context.getStore(NS).put(context.getUniqueId(), LeakScope.open());
    }

    @Override
    public void afterEach(ExtensionContext context) {
        LeakScope s = context.getStore(NS).remove(context.getUniqueId(), LeakScope.class);
        if (s == null) return;
        List<LeakScope.Leak> leaks = s.closeAndList();
        // A test that failed already keeps its own failure first; the leak is added to it.
        if (leaks.isEmpty()) return;
        LeakException e = new LeakException(leaks);
        context.getExecutionException().ifPresent(e::addSuppressed);
        throw e;
    }
}
