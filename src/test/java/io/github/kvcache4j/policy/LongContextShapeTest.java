package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.KvPool;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.management.ManagementFactory;
import java.lang.ref.Reference;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The Llama-3-8B shape (32 layers, 8 kv-heads, 32 query heads, headDim 128, F16) at a 128K-token
 * capacity. Every built-in policy's tracker serves that shape with almost no heap, as its state
 * grows with the resident tokens (a capacity-sized layout would need gigabytes: SnapKV's window
 * alone is 64 × 131072 floats per (layer, kv-head), 8 GiB for the 256 buffers). The trackers are
 * driven directly, and a cache of that capacity creates, appends and attends with every policy on
 * a shared pool (a private pool would reserve 16 GiB of native memory at creation), as does a
 * cache of the same shape at a smaller capacity.
 */
class LongContextShapeTest {

    private static final long SEED = Seeds.fresh("LongContextShapeTest");
    private static final int LAYERS = 32;
    private static final int KV_HEADS = 8;
    private static final int QUERY_HEADS = 32;
    private static final int HEAD_DIM = 128;
    private static final int CAPACITY = 131072;
    private static final int SMALL_CAPACITY = 1024;
    private static final int TOKENS = 80;
    /** Heap a tracker may take at 128K slots: scratch of a few capacities, never per buffer. */
    private static final long HEAP_BUDGET = 64L << 20;

    private static final List<Supplier<EvictionPolicy>> POLICIES = List.of(Policies::full, Policies::streamingLlm,
            Policies::knorm, Policies::corm, Policies::h2o, Policies::observedAttention, Policies::snapKv,
            Policies::tova, Policies::keyDiff, () -> Policies.expectedAttention(Rope.of(500000, HEAD_DIM, false)));

    private static long usedHeap() {
        System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** One buffer holding positions {@code 0..resident-1} in slot order, with uniform attention. */
    private record Buffer(int layer, int kvHead, int resident) implements BufferView {
        @Override
        public int position(int slot) {
            return slot;
        }

        @Override
        public float keyNorm(int slot) {
            return 1f + (slot * 7 % 5);
        }

        @Override
        public int headDim() {
            return HEAD_DIM;
        }

        /** A key of norm {@link #keyNorm} along one axis per slot. */
        @Override
        public void key(int slot, float[] dst, int off) {
            Arrays.fill(dst, off, off + HEAD_DIM, 0f);
            dst[off + slot % HEAD_DIM] = keyNorm(slot);
        }

        @Override
        public void value(int slot, float[] dst, int off) {
            key(slot, dst, off);
        }

        AttentionWeights uniform(int query, int group) {
            return new AttentionWeights() {
                @Override
                public int queryPosition() {
                    return query;
                }

                @Override
                public int readingLayer() {
                    return layer;
                }

                @Override
                public int groupSize() {
                    return group;
                }

                @Override
                public int visible() {
                    return resident;
                }

                @Override
                public float weight(int g, int slot) {
                    return 1f / resident;
                }

                @Override
                public void query(int g, float[] dst, int off) {
                    Arrays.fill(dst, off, off + HEAD_DIM, 1f / (g + 1));
                }
            };
        }
    }

    @TestFactory
    Stream<DynamicTest> everyTrackerServesTheLlama3ShapeAt128kTokensOnLittleHeap() {
        EvictionPolicy.Shape shape = new EvictionPolicy.Shape(LAYERS, KV_HEADS, QUERY_HEADS / KV_HEADS, CAPACITY);
        return POLICIES.stream().map(p -> DynamicTest.dynamicTest(p.get().name(), () -> {
            long before = usedHeap();
            EvictionPolicy.Tracker t = p.get().newTracker(shape);
            int[] victims = new int[CAPACITY];
            for (int n = 1; n <= TOKENS; n++) {
                for (int b = 0; b < shape.buffers(); b++) {
                    t.onAppend(b, new Buffer(shape.layerOf(b), shape.kvHeadOf(b), n), n - 1);
                }
                for (int b = 0; b < shape.buffers(); b++) {
                    Buffer view = new Buffer(shape.layerOf(b), shape.kvHeadOf(b), n);
                    if (t.wantsAttention(view.layer())) {
                        t.onAttention(b, view, view.uniform(n - 1, shape.groupSize()));
                    }
                }
            }
            Buffer last = new Buffer(LAYERS - 1, KV_HEADS - 1, TOKENS);
            int named = t.chooseVictims(shape.buffers() - 1, last, EvictionPolicy.Reason.COMPRESS, 8, victims);
            assertTrue(named >= 0 && named <= 8, "named " + named);
            long grown = usedHeap() - before;
            assertTrue(grown < HEAP_BUDGET, p.get().name() + " took " + grown + " heap bytes for " + TOKENS
                    + " tokens at capacity " + CAPACITY);
            Reference.reachabilityFence(t);
        }));
    }

    @TestFactory
    Stream<DynamicTest> everyPolicyCreatesAndAppendsTheLlama3Shape() {
        return POLICIES.stream().map(p -> DynamicTest.dynamicTest(p.get().name(), () -> {
            SplittableRandom r = new SplittableRandom(SEED);
            KvCacheConfig config = KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                    .headDim(HEAD_DIM).capacity(SMALL_CAPACITY).dtype(DType.F16).policy(p.get()).build();
            try (KvCache cache = KvCache.create(config)) {
                float[] out = new float[QUERY_HEADS * HEAD_DIM];
                for (int t = 0; t < 4; t++) {
                    for (int layer = 0; layer < LAYERS; layer++) {
                        cache.append(layer, t, Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1),
                                Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1));
                        cache.attend(layer, t, Seeds.uniform(r, QUERY_HEADS * HEAD_DIM, 1), out);
                    }
                }
                assertEquals(4L * LAYERS * KV_HEADS, cache.stats().totalResident(), "seed " + SEED);
            }
        }));
    }

    /**
     * The same shape at the full 128K capacity, on a shared 64 MiB pool: the cache reserves no
     * native memory of its own and holds one 32 KiB block per (layer, kv-head) for its first
     * tokens, which its stats report.
     */
    @TestFactory
    Stream<DynamicTest> everyPolicyCreatesAndAppendsTheLlama3ShapeAt128kOnASharedPool() {
        return POLICIES.stream().map(p -> DynamicTest.dynamicTest(p.get().name(), () -> {
            SplittableRandom r = new SplittableRandom(SEED);
            KvCacheConfig config = KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                    .headDim(HEAD_DIM).capacity(CAPACITY).dtype(DType.F16).policy(p.get()).build();
            try (KvPool pool = KvPool.create(HEAD_DIM, DType.F16, 64L << 20)) {
                try (KvCache cache = KvCache.create(config, pool)) {
                    float[] out = new float[QUERY_HEADS * HEAD_DIM];
                    for (int t = 0; t < 4; t++) {
                        for (int layer = 0; layer < LAYERS; layer++) {
                            cache.append(layer, t, Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1),
                                    Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1));
                            cache.attend(layer, t, Seeds.uniform(r, QUERY_HEADS * HEAD_DIM, 1), out);
                        }
                    }
                    CacheStats stats = cache.stats();
                    assertEquals(4L * LAYERS * KV_HEADS, stats.totalResident(), "seed " + SEED);
                    assertEquals(0, stats.reservedBytes());
                    assertEquals(LAYERS * KV_HEADS, pool.stats().usedBlocks());
                    assertEquals(pool.stats().usedBytes(), stats.heldBytes());
                }
                assertEquals(0, pool.stats().usedBlocks());
            }
        }));
    }
}
