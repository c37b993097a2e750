package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Caches drawing on one shared {@link KvPool}: blocks follow the resident tokens, and nothing leaks. */
class KvPoolTest {

    private static final int LAYERS = 2;
    private static final int KV = 2;
    private static final int Q = 4;
    private static final int D = 16;
    private static final DType[] ELEMENTWISE = {DType.F32, DType.F16, DType.BF16};

    private static final List<Supplier<EvictionPolicy>> POLICIES = List.of(
            Policies::streamingLlm, Policies::knorm, () -> Policies.corm(32, 32, 1.0, true), Policies::h2o, Policies::observedAttention,
            Policies::snapKv, Policies::tova);

    private static KvCacheConfig.Builder shape(int capacity, EvictionPolicy policy) {
        return KvCacheConfig.builder().layers(LAYERS).kvHeads(KV).queryHeads(Q).headDim(D).capacity(capacity)
                .policy(policy);
    }

    /** Blocks the caches need for what they hold: {@code ceil(resident / 64)} per buffer. */
    private static int blocksOf(KvCache cache) {
        int blocks = 0;
        CacheStats s = cache.stats();
        for (int l = 0; l < cache.config().layers(); l++) {
            if (cache.config().isSourceLayer(l)) {
                for (int h = 0; h < cache.config().kvHeads(); h++) {
                    blocks += (s.resident(l, h) + KvPool.BLOCK_TOKENS - 1) / KvPool.BLOCK_TOKENS;
                }
            }
        }
        return blocks;
    }

    /** Attention of one random query of {@code layer} at {@code position} against float64 over exactly the resident slots. */
    private static void checkAttention(KvCache cache, int layer, int position, SplittableRandom r, String at) {
        float[] q = Seeds.uniform(r, Q * D, 1.0);
        float[] out = new float[Q * D];
        cache.attend(layer, position, q, out);
        int cap = cache.config().capacity();
        float[] k = new float[cap * D];
        float[] v = new float[cap * D];
        for (int h = 0; h < KV; h++) {
            int n = cache.read(layer, h, k, v);
            int[] pos = cache.positions(layer, h);
            boolean[] visible = new boolean[n];
            for (int j = 0; j < n; j++) {
                visible[j] = pos[j] <= position;
            }
            for (int g = 0; g < Q / KV; g++) {
                int qh = h * (Q / KV) + g;
                double[] expected = Reference.attention(q, qh * D, k, v, n, D, 1 / Math.sqrt(D), visible);
                double err = Reference.relativeError(out, qh * D, expected);
                assertTrue(err <= 1e-5, at + ": query head " + qh + " relative error " + err);
            }
        }
    }

    @Test
    void poolHoldsExactlyTheBlocksOfTheResidentTokensForEveryPolicy() {
        long seed = Seeds.fresh("poolHoldsExactlyTheBlocksOfTheResidentTokensForEveryPolicy");
        SplittableRandom r = new SplittableRandom(seed);
        for (int p = 0; p < POLICIES.size(); p++) {
            for (int sequence = 0; sequence < 1000; sequence++) {
                int capacity = 70 + r.nextInt(140);
                int caches = 1 + r.nextInt(8);
                // Element-wise dtypes: D = 16 is below a quantized row's group of 32.
                DType dtype = ELEMENTWISE[r.nextInt(ELEMENTWISE.length)];
                int perCache = LAYERS * KV * ((capacity + 63) / 64);
                try (KvPool pool = KvPool.create(D, dtype, caches * perCache * KvPool.blockBytes(D, dtype))) {
                    List<KvCache> open = new ArrayList<>();
                    int[][] last = new int[caches][LAYERS];
                    for (int c = 0; c < caches; c++) {
                        open.add(KvCache.create(shape(capacity, POLICIES.get(p).get()).dtype(dtype).build(), pool));
                    }
                    int ops = 6 + r.nextInt(12);
                    for (int op = 0; op < ops; op++) {
                        int c = r.nextInt(caches);
                        KvCache cache = open.get(c);
                        String at = "policy " + cache.config().policy().name() + ", sequence " + sequence + ", op " + op
                                + ", seed " + seed;
                        int layer = r.nextInt(LAYERS);
                        int kind = r.nextInt(10);
                        if (kind < 6) {
                            int free = capacity - cache.config().policy().protectedTokens();
                            int tokens = 1 + r.nextInt(Math.min(48, free));
                            cache.append(layer, last[c][layer], tokens, Seeds.uniform(r, tokens * KV * D, 1.0),
                                    Seeds.uniform(r, tokens * KV * D, 1.0));
                            last[c][layer] += tokens;
                        } else if (kind < 8 && cache.stats().resident(layer, 0) > 0
                                && cache.stats().resident(layer, 1) > 0) {
                            checkAttention(cache, layer, last[c][layer] - 1 + r.nextInt(3), r, at);
                        } else if (kind == 8) {
                            cache.compress(r.nextDouble() * 0.95);
                        } else {
                            cache.reset();
                            last[c] = new int[LAYERS];
                        }
                        int expected = 0;
                        for (KvCache each : open) {
                            expected += blocksOf(each);
                            assertEquals(blocksOf(each) * KvPool.blockBytes(D, dtype), each.stats().heldBytes(), at);
                        }
                        assertEquals(expected, pool.stats().usedBlocks(), at + ": pool blocks");
                    }
                    for (KvCache cache : open) {
                        cache.close();
                    }
                    assertEquals(0, pool.stats().usedBlocks(), "closing every cache returns every block, seed " + seed);
                }
            }
        }
    }

    @Test
    void compressingALongContextReturnsItsBlocks() {
        long seed = Seeds.fresh("compressingALongContextReturnsItsBlocks");
        SplittableRandom r = new SplittableRandom(seed);
        int kv = 8;
        int d = 128;
        KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(kv).queryHeads(32).headDim(d).capacity(2048)
                .dtype(DType.F16).policy(Policies.knorm()).build();
        try (KvPool pool = KvPool.create(d, DType.F16, 256L << 20); KvCache cache = KvCache.create(config, pool)) {
            for (int p = 0; p < 1536; p += 256) {
                cache.append(0, p, 256, Seeds.uniform(r, 256 * kv * d, 1.0), Seeds.uniform(r, 256 * kv * d, 1.0));
            }
            int before = pool.stats().usedBlocks();
            assertEquals(kv * 24, before);
            cache.compress(0.9);
            int after = pool.stats().usedBlocks();
            double returned = 1.0 - (double) after / before;
            System.out.printf("compress(0.9) of 1536 tokens: %d -> %d blocks, %.1f%% returned%n", before, after,
                    100 * returned);
            assertEquals(kv * 3, after, "153 tokens per kv-head need 3 blocks");
            assertTrue(returned >= 0.85, "returned " + returned);
            assertEquals(after * pool.stats().blockBytes(), cache.stats().heldBytes());
        }
    }

    /** One thread's work: random operations on its own cache; returns a digest of every output. */
    private static long drive(KvPool pool, long seed, int ops) {
        SplittableRandom r = new SplittableRandom(seed);
        long digest = seed;
        try (KvCache cache = KvCache.create(shape(150, Policies.h2o()).build(), pool)) {
            int[] last = new int[LAYERS];
            for (int op = 0; op < ops; op++) {
                int layer = r.nextInt(LAYERS);
                int kind = r.nextInt(8);
                if (kind < 4) {
                    int tokens = 1 + r.nextInt(8);
                    cache.append(layer, last[layer], tokens, Seeds.uniform(r, tokens * KV * D, 1.0),
                            Seeds.uniform(r, tokens * KV * D, 1.0));
                    last[layer] += tokens;
                } else if (kind < 7 && cache.stats().resident(layer, 0) > 0 && cache.stats().resident(layer, 1) > 0) {
                    float[] out = new float[Q * D];
                    cache.attend(layer, last[layer] - 1, Seeds.uniform(r, Q * D, 1.0), out);
                    for (float f : out) {
                        digest = digest * 31 + Float.floatToRawIntBits(f);
                    }
                } else if (kind == 7) {
                    cache.compress(0.5);
                }
                for (int p : cache.positions(layer, 0)) {
                    digest = digest * 17 + p;
                }
            }
        }
        return digest;
    }

    @Test
    void threadsSharingOnePoolGetTheResultsOfRunningOneAfterAnother() throws Exception {
        long seed = Seeds.fresh("threadsSharingOnePoolGetTheResultsOfRunningOneAfterAnother");
        int threads = 8;
        int ops = 100_000 / threads;
        long budget = threads * LAYERS * KV * 3L * KvPool.blockBytes(D, DType.F32);
        long[] sequential = new long[threads];
        try (KvPool pool = KvPool.create(D, DType.F32, budget)) {
            for (int t = 0; t < threads; t++) {
                sequential[t] = drive(pool, seed + t, ops);
            }
            assertEquals(0, pool.stats().usedBlocks());
        }
        ExecutorService exec = Executors.newFixedThreadPool(threads);
        try (KvPool pool = KvPool.create(D, DType.F32, budget)) {
            List<Future<Long>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long s = seed + t;
                results.add(exec.submit(() -> drive(pool, s, ops)));
            }
            long[] parallel = new long[threads];
            for (int t = 0; t < threads; t++) {
                parallel[t] = results.get(t).get();
            }
            assertArrayEquals(sequential, parallel, "seed " + seed);
            assertEquals(0, pool.stats().usedBlocks(), "seed " + seed);
            assertTrue(pool.stats().peakBlocks() > 0);
        } finally {
            exec.shutdownNow();
        }
    }

    @Test
    void exhaustedPoolFailsTheAppendAndLeavesTheCacheAsItWas() {
        long seed = Seeds.fresh("exhaustedPoolFailsTheAppendAndLeavesTheCacheAsItWas");
        SplittableRandom r = new SplittableRandom(seed);
        long block = KvPool.blockBytes(D, DType.F32);
        try (KvPool pool = KvPool.create(D, DType.F32, 6 * block)) {
            KvCache a = KvCache.create(shape(256, Policies.streamingLlm()).build(), pool);
            KvCache b = KvCache.create(shape(256, Policies.streamingLlm()).build(), pool);
            a.append(0, 0, 64, Seeds.uniform(r, 64 * KV * D, 1.0), Seeds.uniform(r, 64 * KV * D, 1.0));
            a.append(1, 0, 64, Seeds.uniform(r, 64 * KV * D, 1.0), Seeds.uniform(r, 64 * KV * D, 1.0));
            b.append(0, 0, 10, Seeds.uniform(r, 10 * KV * D, 1.0), Seeds.uniform(r, 10 * KV * D, 1.0));
            assertEquals(6, pool.stats().usedBlocks());
            Snapshot before = Snapshot.of(b);
            PoolExhaustedException e = assertThrows(PoolExhaustedException.class,
                    () -> b.append(1, 0, 5, Seeds.uniform(r, 5 * KV * D, 1.0), Seeds.uniform(r, 5 * KV * D, 1.0)));
            assertEquals("appending 5 tokens to layer 1, kv-head 0 needs 1 more blocks of " + block
                    + " bytes, but the pool of 6 blocks (" + 6 * block + " bytes) lends 6 (" + 6 * block
                    + " bytes) and has none free", e.getMessage());
            assertEquals(before, Snapshot.of(b), "seed " + seed);
            assertEquals(6, pool.stats().usedBlocks(), "nothing taken, nothing leaked");
            a.reset();
            b.append(1, 0, 5, Seeds.uniform(r, 5 * KV * D, 1.0), Seeds.uniform(r, 5 * KV * D, 1.0));
            assertThrows(IllegalStateException.class, pool::close, "caches still hold blocks");
            a.close();
            b.close();
            assertEquals(0, pool.stats().usedBlocks());
        }
    }

    @Test
    void exhaustedPoolInEvictModeLetsThePolicyMakeRoom() {
        long seed = Seeds.fresh("exhaustedPoolInEvictModeLetsThePolicyMakeRoom");
        SplittableRandom r = new SplittableRandom(seed);
        long block = KvPool.blockBytes(D, DType.F32);
        try (KvPool pool = KvPool.create(D, DType.F32, 4 * block)) {
            KvCacheConfig config = shape(1000, Policies.streamingLlm()).poolExhaustion(KvPool.Exhaustion.EVICT).build();
            try (KvCache cache = KvCache.create(config, pool)) {
                for (int p = 0; p < 300; p++) {
                    cache.append(0, p, Seeds.uniform(r, KV * D, 1.0), Seeds.uniform(r, KV * D, 1.0));
                    checkAttention(cache, 0, p, r, "position " + p + ", seed " + seed);
                }
                assertEquals(4, pool.stats().usedBlocks());
                for (int h = 0; h < KV; h++) {
                    assertEquals(128, cache.stats().resident(0, h), "two blocks per kv-head");
                    int[] pos = cache.positions(0, h);
                    java.util.Arrays.sort(pos);
                    assertArrayEquals(new int[] {0, 1, 2, 3}, java.util.Arrays.copyOf(pos, 4), "sinks kept");
                    assertEquals(299, pos[pos.length - 1]);
                }
                assertEquals(2L * (300 - 128), cache.stats().evicted());
                Snapshot before = Snapshot.of(cache);
                PoolExhaustedException e = assertThrows(PoolExhaustedException.class, () -> cache.append(1, 0, 1,
                        Seeds.uniform(r, KV * D, 1.0), Seeds.uniform(r, KV * D, 1.0)));
                assertTrue(e.getMessage().endsWith("(the kv-head holds room for 0 tokens only)"), e.getMessage());
                assertEquals(before, Snapshot.of(cache));
            }
            KvCacheConfig full = shape(1000, Policies.full()).poolExhaustion(KvPool.Exhaustion.EVICT).build();
            try (KvCache cache = KvCache.create(full, pool)) {
                cache.append(0, 0, 64, Seeds.uniform(r, 64 * KV * D, 1.0), Seeds.uniform(r, 64 * KV * D, 1.0));
                cache.append(1, 0, 64, Seeds.uniform(r, 64 * KV * D, 1.0), Seeds.uniform(r, 64 * KV * D, 1.0));
                Snapshot before = Snapshot.of(cache);
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.append(0, 64,
                        Seeds.uniform(r, KV * D, 1.0), Seeds.uniform(r, KV * D, 1.0)));
                assertTrue(e.getMessage().contains("room 64 in the blocks the pool lends"), e.getMessage());
                assertEquals(before, Snapshot.of(cache));
                assertEquals(4, pool.stats().usedBlocks());
            }
            assertEquals(0, pool.stats().usedBlocks());
        }
    }

    @Test
    void rejectsAPoolForAnotherRowShape() {
        try (KvPool pool = KvPool.create(D, DType.F16, 1 << 20)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> KvCache.create(shape(64, Policies.full()).build(), pool));
            assertEquals("pool: its blocks hold 16 F16 elements per row, the config 16 F32", e.getMessage());
            assertEquals(0, pool.stats().usedBlocks());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvPool.create(D, DType.F32, 100));
        assertEquals("budgetBytes must hold 1 to 2147483639 blocks of 8192 bytes, got 100", e.getMessage());
    }
}
