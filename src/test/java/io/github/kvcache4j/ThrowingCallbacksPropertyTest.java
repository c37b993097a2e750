package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.testutil.ForwardingTracker;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Random operations on caches whose policy tracker and LESS feature map throw at random callbacks.
 * After every exception either the cache equals its snapshot from before the call (always when an
 * argument check rejected it), or it is failed: every later call but
 * {@code stats}, {@code config}, {@code reset} and {@code close} throws
 * {@link IllegalStateException} caused by the original exception. After {@code reset} the cache,
 * with the throwing switched off, matches a fresh cache fed the same later operations.
 */
class ThrowingCallbacksPropertyTest {

    private static final long SEED = Seeds.fresh("ThrowingCallbacksPropertyTest");
    private static final int CASES = 12;
    private static final int STEPS = 150;
    private static final int AFTER_RESET = 40;
    private static final int D = 16;

    private static final List<Supplier<EvictionPolicy>> POLICIES = List.of(() -> Policies.streamingLlm(2),
            Policies::knorm, () -> Policies.corm(4, 3, 1.0, true), Policies::h2o, () -> Policies.snapKv(4, 3),
            Policies::tova);

    /** The exception the callbacks throw, naming the callback that threw it. */
    static final class Boom extends RuntimeException {
        Boom(String where) {
            super("boom in " + where);
        }
    }

    /** Throws from a callback with probability {@code rate} while armed. */
    static final class Dice {
        final SplittableRandom r;
        final double rate;
        boolean armed = true;

        Dice(SplittableRandom r, double rate) {
            this.r = r;
            this.rate = rate;
        }

        void roll(String where) {
            if (armed && r.nextDouble() < rate) {
                throw new Boom(where);
            }
        }
    }

    private static EvictionPolicy throwing(EvictionPolicy inner, Dice dice) {
        return new EvictionPolicy() {
            @Override
            public String name() {
                return inner.name();
            }

            @Override
            public int protectedTokens() {
                return inner.protectedTokens();
            }

            @Override
            public Tracker newTracker(Shape shape) {
                return new ForwardingTracker(inner.newTracker(shape)) {
                    @Override
                    public void onAppend(int buffer, BufferView view, int slot) {
                        super.onAppend(buffer, view, slot);
                        dice.roll("onAppend");
                    }

                    @Override
                    public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
                        dice.roll("onAttention");
                        super.onAttention(buffer, view, weights);
                    }

                    @Override
                    public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
                        dice.roll("chooseVictims");
                        return super.chooseVictims(buffer, view, reason, count, victims);
                    }

                    @Override
                    public void onRemove(int buffer, int slot) {
                        super.onRemove(buffer, slot);
                        dice.roll("onRemove");
                    }

                    @Override
                    public void onMove(int buffer, int from, int to) {
                        dice.roll("onMove");
                        super.onMove(buffer, from, to);
                    }
                };
            }
        };
    }

    private static FeatureMap throwing(FeatureMap inner, Dice dice) {
        return new FeatureMap() {
            @Override
            public int headDim() {
                return inner.headDim();
            }

            @Override
            public int rank() {
                return inner.rank();
            }

            @Override
            public int scratchFloats() {
                return inner.scratchFloats();
            }

            @Override
            public void logQueryFeatures(int layer, int queryHead, float[] query, int offset, float[] dst, float[] scratch) {
                dice.roll("logQueryFeatures");
                inner.logQueryFeatures(layer, queryHead, query, offset, dst, scratch);
            }

            @Override
            public void logKeyFeatures(int layer, int kvHead, float[] key, int offset, float[] dst, float[] scratch) {
                inner.logKeyFeatures(layer, kvHead, key, offset, dst, scratch);
                dice.roll("logKeyFeatures");
            }

            @Override
            public void checkShape(int layers, int queryHeads, int kvHeads) {
                inner.checkShape(layers, queryHeads, kvHeads);
            }

            @Override
            public boolean estimatesExpKernel() {
                return inner.estimatesExpKernel();
            }

            @Override
            public String name() {
                return inner.name();
            }
        };
    }

    /** Runs one operation on both caches: both must throw the same rejection, or neither. */
    private static void bothStep(KvCache cache, int[] nextA, KvCache fresh, int[] nextB, long opSeed) {
        float[] a;
        float[] e;
        try {
            e = step(fresh, nextB, new SplittableRandom(opSeed));
        } catch (IllegalArgumentException | IllegalStateException rejected) {
            RuntimeException same = assertThrows(rejected.getClass(), () -> step(cache, nextA, new SplittableRandom(opSeed)));
            assertEquals(rejected.getMessage(), same.getMessage(), "seed " + SEED);
            return;
        }
        a = step(cache, nextA, new SplittableRandom(opSeed));
        if (e != null) {
            assertArrayEquals(e, a, "attention after reset differs from a fresh cache, seed " + SEED);
        }
    }

    /** One random operation; returns the attention output, or null. */
    private static float[] step(KvCache cache, int[] next, SplittableRandom r) {
        KvCacheConfig c = cache.config();
        int layer = r.nextInt(c.layers());
        int kind = r.nextInt(10);
        if (kind < 5 || next[layer] == 0) {
            int tokens = 1 + r.nextInt(3);
            int first = next[layer];
            next[layer] += tokens;
            cache.append(layer, first, tokens, Seeds.uniform(r, tokens * c.kvHeads() * D, 1),
                    Seeds.uniform(r, tokens * c.kvHeads() * D, 1));
            return null;
        }
        if (kind < 9) {
            float[] out = new float[c.queryHeads() * D];
            cache.attend(layer, next[layer] - 1, Seeds.uniform(r, c.queryHeads() * D, 1), out);
            return out;
        }
        cache.compress(r.nextDouble() * 0.5);
        return null;
    }

    private static void checkFailed(KvCache cache, Boom boom) {
        for (Runnable call : List.<Runnable>of(() -> cache.positions(0, 0), () -> cache.compress(0.1),
                () -> cache.append(0, Integer.MAX_VALUE - 1, new float[0], new float[0]))) {
            IllegalStateException e = assertThrows(IllegalStateException.class, call::run, "seed " + SEED);
            assertSame(boom, e.getCause(), "a failed cache names the original exception, seed " + SEED);
        }
        cache.stats();
    }

    private static void runCase(EvictionPolicy inner, SplittableRandom r) {
        Dice dice = new Dice(r.split(), 0.01 + r.nextDouble() * 0.05);
        int layers = 1 + r.nextInt(2);
        int kvHeads = 1 + r.nextInt(2);
        long mapSeed = r.nextLong();
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(layers).kvHeads(kvHeads)
                .queryHeads(kvHeads * (1 + r.nextInt(2))).headDim(D).capacity(inner.protectedTokens() + 4 + r.nextInt(8));
        boolean less = r.nextBoolean();
        KvCacheConfig config = b.policy(throwing(inner, dice))
                .less(less ? throwing(FeatureMap.positiveRandom(D, 8, mapSeed), dice) : null).build();
        int[] next = new int[layers];
        try (KvCache cache = KvCache.create(config)) {
            boolean failed = false;
            for (int s = 0; s < STEPS && !failed; s++) {
                Snapshot before = Snapshot.of(cache);
                int[] nextBefore = next.clone();
                try {
                    step(cache, next, r);
                } catch (Boom boom) {
                    boolean unchanged = isUnchanged(cache, before);
                    if (!unchanged) {
                        checkFailed(cache, boom);
                        failed = true;
                    }
                    System.arraycopy(nextBefore, 0, next, 0, next.length);
                } catch (IllegalArgumentException | IllegalStateException rejected) {
                    assertEquals(before, Snapshot.of(cache), "a rejected call changed the cache: " + rejected
                            + ", seed " + SEED);
                    System.arraycopy(nextBefore, 0, next, 0, next.length);
                }
            }
            dice.armed = false;
            cache.reset();
            KvCacheConfig plain = b.policy(inner).less(less ? FeatureMap.positiveRandom(D, 8, mapSeed) : null).build();
            try (KvCache fresh = KvCache.create(plain)) {
                int[] nextA = new int[layers];
                int[] nextB = new int[layers];
                for (int s = 0; s < AFTER_RESET; s++) {
                    bothStep(cache, nextA, fresh, nextB, r.nextLong());
                    assertEquals(Snapshot.of(fresh), Snapshot.of(cache), "after reset, seed " + SEED);
                }
            }
        }
    }

    /** Whether the cache still equals {@code before}; false when it is failed and cannot be read. */
    private static boolean isUnchanged(KvCache cache, Snapshot before) {
        try {
            return before.equals(Snapshot.of(cache));
        } catch (IllegalStateException failed) {
            return false;
        }
    }

    @TestFactory
    Stream<DynamicTest> aThrowingCallbackLeavesTheCacheUnchangedOrFailed() {
        SplittableRandom seeds = new SplittableRandom(SEED);
        return POLICIES.stream().map(p -> {
            long seed = seeds.nextLong();
            return DynamicTest.dynamicTest(p.get().name(), () -> {
                SplittableRandom r = new SplittableRandom(seed);
                for (int c = 0; c < CASES; c++) {
                    runCase(p.get(), r);
                }
            });
        });
    }
}
