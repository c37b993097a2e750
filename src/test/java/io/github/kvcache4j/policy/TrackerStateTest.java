package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Fork and save/restore of every built-in policy's tracker: a copy and a restored tracker, taken at
 * a random point of a random run of a real cache, then get every later callback the original gets
 * and must name the same victims for 200 further cache operations and end in byte-identical saved
 * state; saving a restored tracker reproduces the bytes it was restored from; changing a copy
 * leaves the original alone; and inconsistent saved state is rejected before anything changes.
 */
class TrackerStateTest {

    private static final long SEED = Seeds.fresh("TrackerStateTest");
    private static final int HEAD_DIM = 16;
    private static final int CASES = 6;
    private static final int FURTHER = 200;

    /** Every built-in policy, with windows small enough for the capacities below. */
    private static final List<Supplier<EvictionPolicy>> POLICIES = List.of(
            Policies::full, () -> Policies.streamingLlm(2), Policies::knorm, () -> Policies.knorm(6, 0),
            () -> Policies.corm(4, 3, 1.0, true), () -> Policies.corm(3, 2, 0.5, false), Policies::h2o,
            Policies::observedAttention, () -> Policies.snapKv(4, 3), Policies::tova, Policies::keyDiff,
            () -> Policies.expectedAttention(Rope.of(10000, HEAD_DIM, false), 8, 2, true, true, 0.0));

    /**
     * Hands the cache a tracker that forwards every callback to the policy's own tracker and, once
     * {@link #fork} ran, also to a copy and to a restored tracker, checking that all three name the
     * same victims.
     */
    private static final class Tee implements EvictionPolicy {
        final EvictionPolicy inner;
        EvictionPolicy.Shape shape;
        Tracker original;
        Tracker copy;
        Tracker restored;
        long compared;

        Tee(EvictionPolicy inner) {
            this.inner = inner;
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public int protectedTokens() {
            return inner.protectedTokens();
        }

        /** Copies and restores the original now; from here on all three get every callback. */
        void fork() throws IOException {
            byte[] saved = save(original);
            copy = original.copy();
            restored = inner.newTracker(shape);
            restored.restoreState(in(saved));
            assertArrayEquals(saved, save(restored), "saving a restored tracker changed the bytes, seed " + SEED);
            assertArrayEquals(saved, save(copy), "a copy saves other bytes than its original, seed " + SEED);
            Tracker scratch = original.copy();
            scratch.reset();
            assertArrayEquals(saved, save(original), "resetting a copy changed the original, seed " + SEED);
        }

        private List<Tracker> all() {
            return copy == null ? List.of(original) : List.of(original, copy, restored);
        }

        @Override
        public Tracker newTracker(Shape s) {
            shape = s;
            original = inner.newTracker(s);
            return new Tracker() {
                @Override
                public boolean wantsAttention(int layer) {
                    return original.wantsAttention(layer);
                }

                @Override
                public void onAppend(int buffer, BufferView view, int slot) {
                    all().forEach(t -> t.onAppend(buffer, view, slot));
                }

                @Override
                public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
                    all().forEach(t -> t.onAttention(buffer, view, weights));
                }

                @Override
                public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
                    int n = original.chooseVictims(buffer, view, reason, count, victims);
                    int[] mine = Arrays.copyOf(victims, n);
                    for (Tracker t : all().subList(1, all().size())) {
                        int[] other = new int[victims.length];
                        int m = t.chooseVictims(buffer, view, reason, count, other);
                        assertArrayEquals(mine, Arrays.copyOf(other, m), name() + " " + reason + " buffer " + buffer
                                + ": the forked tracker names other victims, seed " + SEED);
                        compared++;
                    }
                    return n;
                }

                @Override
                public void onRemove(int buffer, int slot) {
                    all().forEach(t -> t.onRemove(buffer, slot));
                }

                @Override
                public void onMove(int buffer, int from, int to) {
                    all().forEach(t -> t.onMove(buffer, from, to));
                }

                @Override
                public void reset() {
                    all().forEach(Tracker::reset);
                }
            };
        }
    }

    static byte[] save(EvictionPolicy.Tracker t) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        t.saveState(new DataOutputStream(bytes));
        return bytes.toByteArray();
    }

    static DataInputStream in(byte[] bytes) {
        return new DataInputStream(new ByteArrayInputStream(bytes));
    }

    /** A random cache run; the tracker forks after {@code before} operations. */
    private static void run(Tee tee, SplittableRandom r) throws IOException {
        int layers = 1 + r.nextInt(3);
        int kvHeads = 1 + r.nextInt(2);
        int queryHeads = kvHeads * (1 + r.nextInt(2));
        int capacity = tee.protectedTokens() + 4 + r.nextInt(12);
        KvCacheConfig config = KvCacheConfig.builder().layers(layers).kvHeads(kvHeads).queryHeads(queryHeads)
                .headDim(HEAD_DIM).capacity(capacity).policy(tee).build();
        int before = r.nextInt(60);
        int[] next = new int[layers];
        try (KvCache cache = KvCache.create(config)) {
            for (int op = 0; op < before + FURTHER; op++) {
                if (op == before) {
                    tee.fork();
                }
                step(cache, config, next, r);
            }
            if (tee.copy != null) {
                byte[] saved = save(tee.original);
                assertArrayEquals(saved, save(tee.copy), tee.name() + ": the copy's state diverged, seed " + SEED);
                assertArrayEquals(saved, save(tee.restored), tee.name() + ": the restored state diverged, seed " + SEED);
            }
        }
    }

    /** One random operation: append, attend, compress or (rarely) reset. */
    private static void step(KvCache cache, KvCacheConfig c, int[] next, SplittableRandom r) {
        int layer = r.nextInt(c.layers());
        int kind = r.nextInt(20);
        if (kind < 9 || next[layer] == 0) {
            int tokens = 1 + r.nextInt(3);
            try {
                cache.append(layer, next[layer], tokens, Seeds.uniform(r, tokens * c.kvHeads() * c.headDim(), 2),
                        Seeds.uniform(r, tokens * c.kvHeads() * c.headDim(), 1));
                next[layer] += tokens;
            } catch (IllegalStateException full) {
                assertTrue(full.getMessage().contains("can evict only"), full.getMessage() + ", seed " + SEED);
            }
        } else if (kind < 18) {
            int tokens = 1 + r.nextInt(2);
            int first = Math.max(0, next[layer] - tokens - r.nextInt(2));
            try {
                cache.attend(layer, first, tokens, Seeds.uniform(r, tokens * c.queryHeads() * c.headDim(), 1),
                        new float[tokens * c.queryHeads() * c.headDim()]);
            } catch (IllegalArgumentException evicted) {
                assertTrue(evicted.getMessage().contains("precedes"), evicted.getMessage() + ", seed " + SEED);
            }
        } else if (kind < 19) {
            cache.compress(r.nextDouble() * 0.5);
        } else {
            cache.reset();
            Arrays.fill(next, 0);
        }
    }

    @TestFactory
    Stream<DynamicTest> forkedAndRestoredTrackersNameTheSameVictims() {
        SplittableRandom seeds = new SplittableRandom(SEED);
        return POLICIES.stream().map(p -> {
            long seed = seeds.nextLong();
            return DynamicTest.dynamicTest(p.get().name(), () -> {
                SplittableRandom r = new SplittableRandom(seed);
                long compared = 0;
                for (int c = 0; c < CASES; c++) {
                    Tee tee = new Tee(p.get());
                    run(tee, r);
                    compared += tee.compared;
                }
                assertTrue(p.get().name().equals("full") || compared > 0, "no victim list was compared, seed " + SEED);
            });
        });
    }

    /** Saved state of a tracker after a random run of {@code policy}. */
    private static byte[] savedAfterRun(EvictionPolicy policy, SplittableRandom r) throws IOException {
        Tee tee = new Tee(policy);
        run(tee, r);
        return save(tee.original);
    }

    @TestFactory
    Stream<DynamicTest> corruptStateIsRejectedBeforeAnythingChanges() {
        SplittableRandom seeds = new SplittableRandom(SEED ^ 0x5EED);
        return POLICIES.stream().map(p -> {
            long seed = seeds.nextLong();
            return DynamicTest.dynamicTest(p.get().name(), () -> {
                SplittableRandom r = new SplittableRandom(seed);
                Tee source = new Tee(p.get());
                run(source, r);
                byte[] good = save(source.original);
                EvictionPolicy.Tracker target = p.get().newTracker(source.shape);
                byte[] before = save(target);
                int rejected = 0;
                for (int trial = 0; trial < 300; trial++) {
                    byte[] bad = good.clone();
                    int at = r.nextInt(bad.length);
                    bad[at] ^= (byte) (1 + r.nextInt(255));
                    byte[] cut = r.nextInt(4) == 0 ? Arrays.copyOf(bad, r.nextInt(bad.length)) : bad;
                    try {
                        target.restoreState(in(cut));
                        target.restoreState(in(before));
                    } catch (IOException expected) {
                        rejected++;
                        assertArrayEquals(before, save(target), "a rejected restore changed the tracker ("
                                + expected.getMessage() + "), byte " + at + ", seed " + SEED);
                    }
                }
                assertTrue(rejected > 0, "no corruption was rejected, seed " + SEED);
            });
        });
    }

    @Test
    void rejectsStateOfAnotherShapeOrPolicy() throws IOException {
        SplittableRandom r = new SplittableRandom(SEED);
        byte[] h2o = savedAfterRun(Policies.h2o(), r);
        EvictionPolicy.Shape other = new EvictionPolicy.Shape(4, 3, 2, 64);
        IOException shape = assertThrows(IOException.class, () -> Policies.h2o().newTracker(other).restoreState(in(h2o)));
        assertTrue(shape.getMessage().contains("cannot be restored into"), shape.getMessage());
        IOException policy = assertThrows(IOException.class,
                () -> Policies.tova().newTracker(other).restoreState(in(h2o)));
        assertTrue(policy.getMessage().contains("cannot be restored into"), policy.getMessage());
    }

    @Test
    void aTrackerWithoutTheHooksSaysSo() {
        EvictionPolicy.Shape shape = new EvictionPolicy.Shape(1, 1, 1, 8);
        EvictionPolicy.Tracker plain = new EvictionPolicy.Tracker() {
            @Override
            public void onAppend(int buffer, EvictionPolicy.BufferView view, int slot) {
            }

            @Override
            public int chooseVictims(int buffer, EvictionPolicy.BufferView view, EvictionPolicy.Reason reason,
                    int count, int[] victims) {
                return 0;
            }

            @Override
            public void onRemove(int buffer, int slot) {
            }

            @Override
            public void onMove(int buffer, int from, int to) {
            }

            @Override
            public void reset() {
            }
        };
        assertTrue(assertThrows(UnsupportedOperationException.class, plain::copy).getMessage()
                .contains("does not support fork"));
        assertTrue(assertThrows(UnsupportedOperationException.class, () -> save(plain)).getMessage()
                .contains("does not support save"));
        SlotTracker noBlank = new SlotTracker(shape) {
            @Override
            protected void score(int buffer, EvictionPolicy.BufferView view, int[] candidates, int n, double[] scores) {
            }
        };
        assertTrue(assertThrows(UnsupportedOperationException.class, noBlank::copy).getMessage()
                .contains("does not override blank()"));
        assertEquals(0, noBlank.resident(0));
    }
}
