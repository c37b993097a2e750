package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.ForwardingTracker;
import io.github.kvcache4j.testutil.NamedPolicy;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Custom policies that break the SPI's rules: a victim count below 0 or above the number asked
 * for, a null tracker, and callbacks that call back into the cache. Each is rejected with the
 * documented exception; the cache is then unchanged and usable, or (a callback that threw while
 * the cache was changing) failed until {@link KvCache#reset()}, after which it works again.
 */
class RogueCallbackTest {

    private static final long SEED = Seeds.fresh("RogueCallbackTest");
    private static final int D = 8;
    private static final int CAPACITY = 4;
    private static final String REENTRANT = "a cache may not be called from inside one of its own calls";

    /** Where a re-entrant call is made. */
    enum Where { ON_APPEND, CHOOSE_VICTIMS }

    /**
     * StreamingLLM without sinks, whose tracker names {@code count} victims when {@code count} is
     * not null, and runs {@code hook} once from the callback {@code where} once armed.
     */
    static final class Rogue implements EvictionPolicy {
        final Integer count;
        final Where where;
        Consumer<KvCache> hook;
        KvCache cache;

        Rogue(Integer count, Where where) {
            this.count = count;
            this.where = where;
        }

        @Override
        public String name() {
            return "rogue";
        }

        private void fire(Where at) {
            if (at == where && hook != null) {
                Consumer<KvCache> h = hook;
                hook = null;
                h.accept(cache);
            }
        }

        @Override
        public Tracker newTracker(Shape shape) {
            return new ForwardingTracker(Policies.streamingLlm(0).newTracker(shape)) {
                @Override
                public void onAppend(int buffer, BufferView view, int slot) {
                    super.onAppend(buffer, view, slot);
                    fire(Where.ON_APPEND);
                }

                @Override
                public int chooseVictims(int buffer, BufferView view, Reason reason, int asked, int[] victims) {
                    fire(Where.CHOOSE_VICTIMS);
                    int n = super.chooseVictims(buffer, view, reason, asked, victims);
                    if (count == null) {
                        return n;
                    }
                    for (int i = 0; i < Math.min(count, victims.length); i++) {
                        victims[i] = i % view.resident();
                    }
                    return count;
                }
            };
        }
    }

    static KvCache full(Rogue policy, SplittableRandom r) {
        KvCache cache = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(2).headDim(D)
                .capacity(CAPACITY).policy(policy).build());
        policy.cache = cache;
        for (int p = 0; p < CAPACITY; p++) {
            append(cache, p, r);
        }
        return cache;
    }

    static void append(KvCache cache, int position, SplittableRandom r) {
        cache.append(0, position, Seeds.uniform(r, D, 1), Seeds.uniform(r, D, 1));
    }

    @TestFactory
    Stream<DynamicTest> victimCountsOutsideTheAskedRangeAreRejected() {
        return Stream.of(-1, 2, CAPACITY + 1).map(n -> DynamicTest.dynamicTest("count " + n, () -> {
            SplittableRandom r = new SplittableRandom(SEED);
            try (KvCache cache = full(new Rogue(n, null), r)) {
                Snapshot before = Snapshot.of(cache);
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> append(cache, CAPACITY, r));
                assertTrue(e.getMessage().contains("named " + n + " victims in layer 0, kv-head 0, outside [0, 1]"),
                        e.getMessage());
                assertEquals(before, Snapshot.of(cache), "seed " + SEED);
                assertEquals(0, cache.stats().evicted());
            }
        }));
    }

    @Test
    void aNullTrackerIsRejectedAtCreate() {
        EvictionPolicy none = new EvictionPolicy() {
            @Override
            public String name() {
                return "rogue";
            }

            @Override
            public Tracker newTracker(Shape shape) {
                return null;
            }
        };
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvCache.create(
                KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(1).headDim(D).capacity(CAPACITY)
                        .policy(none).build()));
        assertEquals("policy rogue returned no tracker", e.getMessage());
    }

    /** A re-entrant call, named for the report. */
    record Call(String name, Consumer<KvCache> call, String message) {
    }

    private static Stream<Call> calls(SplittableRandom r) {
        return Stream.of(new Call("append", c -> append(c, 1000, r), REENTRANT),
                new Call("attend", c -> c.attend(0, CAPACITY, Seeds.uniform(r, 2 * D, 1), new float[2 * D]), REENTRANT),
                new Call("reset", KvCache::reset, REENTRANT),
                new Call("close", KvCache::close, "close called from inside a cache call"));
    }

    @TestFactory
    Stream<DynamicTest> reentrantCallsAreRejected() {
        SplittableRandom r = new SplittableRandom(SEED);
        return Stream.of(Where.values()).flatMap(where -> calls(r).map(call -> DynamicTest.dynamicTest(
                call.name() + " from " + where, () -> {
                    Rogue policy = new Rogue(null, where);
                    try (KvCache cache = full(policy, r)) {
                        Snapshot before = Snapshot.of(cache);
                        policy.hook = c -> {
                            IllegalStateException inner = assertThrows(IllegalStateException.class, () -> call.call().accept(c));
                            assertTrue(inner.getMessage().contains(call.message()), inner.getMessage());
                            throw inner;
                        };
                        IllegalStateException e = assertThrows(IllegalStateException.class, () -> append(cache, CAPACITY, r));
                        assertTrue(e.getMessage().contains(call.message()), e.getMessage());
                        if (where == Where.CHOOSE_VICTIMS) {
                            assertEquals(before, Snapshot.of(cache), "chooseVictims threw: nothing changes, seed " + SEED);
                        } else {
                            IllegalStateException failed = assertThrows(IllegalStateException.class,
                                    () -> cache.positions(0, 0));
                            assertSame(e, failed.getCause(), "the failed cache names the original, seed " + SEED);
                            cache.reset();
                        }
                        for (int p = CAPACITY + 1; p < CAPACITY + 8; p++) {
                            append(cache, p, r);
                        }
                        assertEquals(CAPACITY, cache.stats().totalResident(), "seed " + SEED);
                    }
                })));
    }

    /** A tracker whose {@code release} throws: {@code close} rethrows it with every block already back. */
    @Test
    void aReleaseThatThrowsFromCloseLosesNoBlock() {
        IllegalStateException boom = new IllegalStateException("release failed");
        EvictionPolicy policy = NamedPolicy.of("throws_on_release",
                shape -> new ForwardingTracker(Policies.h2o().newTracker(shape)) {
                    @Override
                    public void release() {
                        super.release();
                        throw boom;
                    }
                });
        KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(1).headDim(D)
                .capacity(3 * KvPool.BLOCK_TOKENS).policy(policy).build();
        SplittableRandom r = new SplittableRandom(SEED);
        try (KvPool pool = KvPool.create(D, DType.F32, 4 * KvPool.blockBytes(D, DType.F32))) {
            KvCache cache = KvCache.create(config, pool);
            int tokens = KvPool.BLOCK_TOKENS + 1 + r.nextInt(KvPool.BLOCK_TOKENS);
            cache.append(0, 0, tokens, Seeds.uniform(r, tokens * D, 1), Seeds.uniform(r, tokens * D, 1));
            assertEquals(2, pool.stats().usedBlocks(), tokens + " tokens, seed " + SEED);
            assertSame(boom, assertThrows(IllegalStateException.class, cache::close));
            assertEquals(0, pool.stats().usedBlocks(), "close freed every block before release threw");
            cache.close();
            IllegalStateException closed = assertThrows(IllegalStateException.class,
                    () -> cache.append(0, tokens, new float[D], new float[D]));
            assertEquals("cache is closed", closed.getMessage());
        }
    }
}
