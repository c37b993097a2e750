package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Budgets shared among (layer, kv-head) buffers: each rule against an independent float64
 * computation of what it must keep, byte budgets against the pool, and every rejection leaving
 * the cache as it was.
 */
class AllocationTest {

    private static final int LAYERS = 6;
    private static final int KV = 4;
    private static final int D = 16;
    private static final int TOKENS = 300;

    private static KvCacheConfig config(EvictionPolicy policy) {
        return KvCacheConfig.builder().layers(LAYERS).kvHeads(KV).queryHeads(KV * 2).headDim(D).capacity(TOKENS)
                .policy(policy).build();
    }

    /** Keys of kv-head {@code h} scaled by {@code 1 + h}, so the heads' norms differ. */
    private static float[][] fill(KvCache cache, SplittableRandom r) {
        float[][] keys = new float[LAYERS][];
        for (int l = 0; l < LAYERS; l++) {
            float[] k = Seeds.uniform(r, TOKENS * KV * D, 1);
            for (int t = 0; t < TOKENS; t++) {
                for (int h = 0; h < KV; h++) {
                    for (int i = 0; i < D; i++) {
                        k[(t * KV + h) * D + i] *= 1 + h;
                    }
                }
            }
            keys[l] = k;
            cache.append(l, 0, TOKENS, k, Seeds.uniform(r, TOKENS * KV * D, 1));
        }
        return keys;
    }

    private static int[][] counts(KvCache cache) {
        return cache.stats().resident();
    }

    private static long total(int[][] counts) {
        return Arrays.stream(counts).flatMapToInt(Arrays::stream).asLongStream().sum();
    }

    @Test
    void uniformAllocationKeepsWhatCompressByRatioKeeps() {
        long seed = Seeds.fresh("uniformAllocationKeepsWhatCompressByRatioKeeps");
        for (EvictionPolicy policy : List.of(Policies.knorm(), Policies.streamingLlm(), Policies.tova())) {
            try (KvCache a = KvCache.create(config(policy)); KvCache b = KvCache.create(config(policy))) {
                fill(a, new SplittableRandom(seed));
                fill(b, new SplittableRandom(seed));
                a.compress(0.7);
                b.compress(0.7, Allocation.uniform());
                assertEquals(Snapshot.of(a), Snapshot.of(b), policy.name() + ", seed " + seed);
            }
        }
    }

    @Test
    void pyramidSharesFallLinearlyWithDepthAndSumToTheBudget() {
        long seed = Seeds.fresh("pyramidSharesFallLinearlyWithDepthAndSumToTheBudget");
        for (double beta : new double[] {2, 5, 20}) {
            try (KvCache cache = KvCache.create(config(Policies.knorm()))) {
                fill(cache, new SplittableRandom(seed));
                long budget = (long) LAYERS * KV * TOKENS / 3;
                cache.compressToTokens(budget, Allocation.pyramid(beta));
                int[][] kept = counts(cache);
                double k = (double) budget / (LAYERS * KV);
                double min = k / beta;
                double max = 2 * k - min;
                for (int l = 0; l < LAYERS; l++) {
                    double expected = max - (max - min) * l / (LAYERS - 1);
                    for (int h = 0; h < KV; h++) {
                        assertEquals(kept[l][0], kept[l][h], "heads of layer " + l + " differ, beta " + beta);
                    }
                    assertTrue(Math.abs(kept[l][0] - expected) <= 1.5,
                            "layer " + l + " keeps " + kept[l][0] + ", PyramidKV " + expected + ", beta " + beta);
                }
                long sum = total(kept);
                assertTrue(sum <= budget && budget - sum < LAYERS * KV, sum + " of " + budget + ", beta " + beta);
            }
        }
    }

    @Test
    void pyramidHandsWhatAFullLayerCannotTakeToTheOthers() {
        long seed = Seeds.fresh("pyramidHandsWhatAFullLayerCannotTakeToTheOthers");
        try (KvCache cache = KvCache.create(config(Policies.knorm()))) {
            fill(cache, new SplittableRandom(seed));
            long budget = (long) LAYERS * KV * TOKENS * 3 / 4;
            cache.compressToTokens(budget, Allocation.pyramid(20));
            int[][] kept = counts(cache);
            assertEquals(TOKENS, kept[0][0], "the first layer's share (1.46 x its tokens) is clipped to all it holds");
            for (int l = 1; l < LAYERS; l++) {
                assertTrue(kept[l][0] <= kept[l - 1][0], "layer " + l + " keeps more than layer " + (l - 1));
            }
            long sum = total(kept);
            assertTrue(sum <= budget && budget - sum < LAYERS * KV, sum + " of " + budget);
        }
    }

    @Test
    void adaptiveKeepsEachLayersBestTokensAcrossHeadsAfterTheSafeguard() {
        long seed = Seeds.fresh("adaptiveKeepsEachLayersBestTokensAcrossHeadsAfterTheSafeguard");
        double safeguard = 0.2;
        int perHead = TOKENS / 4;
        try (KvCache cache = KvCache.create(config(Policies.knorm()))) {
            float[][] keys = fill(cache, new SplittableRandom(seed));
            cache.compressToTokens((long) perHead * LAYERS * KV, Allocation.adaptive(safeguard));
            int[][] kept = counts(cache);
            boolean uneven = false;
            for (int l = 0; l < LAYERS; l++) {
                List<Set<Integer>> expected = adaKvReference(keys[l], perHead * KV, safeguard);
                for (int h = 0; h < KV; h++) {
                    Set<Integer> actual = new HashSet<>();
                    for (int p : cache.positions(l, h)) {
                        actual.add(p);
                    }
                    assertEquals(expected.get(h), actual, "layer " + l + ", kv-head " + h + ", seed " + seed);
                    uneven |= kept[l][h] != perHead;
                }
                assertEquals(perHead * KV, Arrays.stream(kept[l]).sum(), "layer " + l + " budget");
            }
            assertTrue(uneven, "heads with different norms must get different shares");
        }
    }

    /**
     * Ada-KV over one layer, in float64: Knorm's score is minus the key's L2 norm; every head
     * keeps its {@code floor(safeguard * budget / H)} best, the rest of the budget goes to the
     * best remaining tokens of all heads.
     */
    private static List<Set<Integer>> adaKvReference(float[] keys, int budget, double safeguard) {
        int guard = (int) Math.floor(safeguard * budget / KV);
        List<Set<Integer>> keep = new ArrayList<>();
        List<double[]> rest = new ArrayList<>();
        for (int h = 0; h < KV; h++) {
            Integer[] order = new Integer[TOKENS];
            double[] score = new double[TOKENS];
            for (int t = 0; t < TOKENS; t++) {
                double sq = 0;
                for (int i = 0; i < D; i++) {
                    double x = keys[(t * KV + h) * D + i];
                    sq += x * x;
                }
                score[t] = -Math.sqrt(sq);
                order[t] = t;
            }
            Arrays.sort(order, Comparator.comparingDouble(t -> -score[t]));
            Set<Integer> mine = new HashSet<>();
            for (int j = 0; j < TOKENS; j++) {
                if (j < guard) {
                    mine.add(order[j]);
                } else {
                    rest.add(new double[] {score[order[j]], h, order[j]});
                }
            }
            keep.add(mine);
        }
        rest.sort(Comparator.comparingDouble(e -> -e[0]));
        for (int j = 0; j < budget - guard * KV; j++) {
            keep.get((int) rest.get(j)[1]).add((int) rest.get(j)[2]);
        }
        return keep;
    }

    @Test
    void headSplitKeepsTheBestRankedHeadsWholeAndStreamsTheRest() {
        long seed = Seeds.fresh("headSplitKeepsTheBestRankedHeadsWholeAndStreamsTheRest");
        SplittableRandom r = new SplittableRandom(seed);
        double[] scores = new double[LAYERS * KV];
        for (int i = 0; i < scores.length; i++) {
            scores[i] = r.nextDouble();
        }
        int sinks = 4;
        int recent = 16;
        int whole = 5;
        int leftover = 37;
        long budget = (long) whole * TOKENS + (scores.length - whole) * (long) (sinks + recent) + leftover;
        try (KvCache cache = KvCache.create(config(Policies.full()))) {
            fill(cache, r);
            cache.compressToTokens(budget, Allocation.headSplit(scores, sinks, recent));
            Integer[] rank = new Integer[scores.length];
            for (int i = 0; i < rank.length; i++) {
                rank[i] = i;
            }
            Arrays.sort(rank, Comparator.comparingDouble(i -> -scores[i]));
            for (int j = 0; j < rank.length; j++) {
                int id = rank[j];
                int[] pos = cache.positions(id / KV, id % KV).clone();
                Arrays.sort(pos);
                int[] expected;
                if (j < whole) {
                    expected = range(0, TOKENS);
                } else {
                    int window = j == whole ? recent + leftover : recent;
                    expected = concat(range(0, sinks), range(TOKENS - window, TOKENS));
                }
                assertArrayEquals(expected, pos, "head " + id + " ranked " + j + ", seed " + seed);
            }
            assertEquals(budget, cache.stats().totalResident());
        }
    }

    @Test
    void fixedSplitFollowsTheMaskAndRejectsABudgetItDoesNotFit() {
        boolean[] mask = new boolean[LAYERS * KV];
        mask[3] = true;
        mask[17] = true;
        long needs = 2L * TOKENS + (mask.length - 2) * 24L;
        try (KvCache cache = KvCache.create(config(Policies.snapKv()))) {
            fill(cache, new SplittableRandom(Seeds.fresh("fixedSplitFollowsTheMaskAndRejectsABudgetItDoesNotFit")));
            Snapshot before = Snapshot.of(cache);
            Allocation split = Allocation.headSplit(mask, 4, 20);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> cache.compressToTokens(needs - 1, split));
            assertTrue(e.getMessage().contains("totalTokens " + (needs - 1)) && e.getMessage().contains(needs + " tokens"),
                    e.getMessage());
            assertEquals(before, Snapshot.of(cache));
            cache.compressToTokens(needs + 1000, split);
            for (int id = 0; id < mask.length; id++) {
                assertEquals(mask[id] ? TOKENS : 24, cache.stats().resident(id / KV, id % KV), "head " + id);
            }
        }
    }

    @Test
    void byteBudgetFitsTheHeldBlocksAndReturnsTheRestToThePool() {
        long seed = Seeds.fresh("byteBudgetFitsTheHeldBlocksAndReturnsTheRestToThePool");
        KvCacheConfig config = config(Policies.snapKv());
        try (KvPool pool = KvPool.create(D, DType.F32, 64L << 20); KvCache cache = KvCache.create(config, pool)) {
            fill(cache, new SplittableRandom(seed));
            long blockBytes = KvPool.blockBytes(D, DType.F32);
            for (Allocation a : List.of(Allocation.uniform(), Allocation.pyramid(5), Allocation.adaptive(0.2))) {
                long before = cache.stats().heldBytes();
                long bytes = before * 3 / 5 + 12345;
                cache.compressToBytes(bytes, a);
                CacheStats s = cache.stats();
                assertTrue(s.heldBytes() <= bytes, a + ": holds " + s.heldBytes() + " of " + bytes);
                assertTrue(s.heldBytes() + LAYERS * KV * blockBytes > bytes, a + ": holds only " + s.heldBytes());
                assertEquals(s.heldBytes(), pool.stats().usedBytes(), a + ": the pool lends exactly the held blocks");
                long blocks = 0;
                for (int[] layer : s.resident()) {
                    for (int n : layer) {
                        blocks += (n + KvPool.BLOCK_TOKENS - 1) / KvPool.BLOCK_TOKENS;
                    }
                }
                assertEquals(blocks * blockBytes, s.heldBytes(), a + ": blocks of the resident tokens");
                cache.reset();
                fill(cache, new SplittableRandom(seed));
            }
        }
    }

    @Test
    void rejectedBudgetsLeaveTheCacheAsItWas() {
        try (KvCache snap = KvCache.create(config(Policies.snapKv()));
             KvCache full = KvCache.create(config(Policies.full()));
             KvCache tova = KvCache.create(config(Policies.tova()))) {
            for (KvCache c : List.of(snap, full, tova)) {
                fill(c, new SplittableRandom(Seeds.fresh("rejectedBudgetsLeaveTheCacheAsItWas")));
            }
            Snapshot snapBefore = Snapshot.of(snap);
            long protectedTokens = (long) LAYERS * KV * Policies.DEFAULT_SNAPKV_WINDOW;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> snap.compressToTokens(protectedTokens - 1, Allocation.uniform()));
            assertTrue(e.getMessage().contains("below the " + protectedTokens + " tokens"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> snap.compressToBytes(1000, Allocation.uniform()));
            assertTrue(e.getMessage().contains("bytes 1000 is below"), e.getMessage());
            assertEquals(snapBefore, Snapshot.of(snap));

            Snapshot fullBefore = Snapshot.of(full);
            e = assertThrows(IllegalArgumentException.class, () -> full.compressToTokens(1000, Allocation.uniform()));
            assertTrue(e.getMessage().contains("protects the rest"), e.getMessage());
            assertEquals(fullBefore, Snapshot.of(full));

            Snapshot tovaBefore = Snapshot.of(tova);
            e = assertThrows(IllegalArgumentException.class, () -> tova.compress(0.5, Allocation.adaptive(0.2)));
            assertTrue(e.getMessage().contains("keepScores") && e.getMessage().contains("tova"), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> tova.compressToTokens(5000, Allocation.headSplit(new double[LAYERS * KV], 4, 4)));
            assertEquals(tovaBefore, Snapshot.of(tova));

            assertThrows(NullPointerException.class, () -> snap.compress(0.5, null));
            assertThrows(IllegalArgumentException.class, () -> snap.compress(1.0, Allocation.uniform()));
            assertThrows(IllegalArgumentException.class, () -> snap.compressToTokens(-1, Allocation.uniform()));
            assertThrows(IllegalArgumentException.class, () -> snap.compressToBytes(-1, Allocation.uniform()));
            assertEquals(snapBefore, Snapshot.of(snap));
        }
    }

    @Test
    void rejectsRuleParametersOutOfRange() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Allocation.pyramid(0.5)).getMessage()
                .contains("beta must be finite and >= 1, got 0.5"));
        assertThrows(IllegalArgumentException.class, () -> Allocation.pyramid(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Allocation.pyramid(Double.POSITIVE_INFINITY));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Allocation.adaptive(1.5)).getMessage()
                .contains("safeguard must be in [0, 1], got 1.5"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Allocation.headSplit(new double[] {0, Double.NaN}, 4, 4)).getMessage().contains("headScores[1]"));
        assertThrows(IllegalArgumentException.class, () -> Allocation.headSplit(new boolean[2], -1, 4));
        assertThrows(NullPointerException.class, () -> Allocation.headSplit((double[]) null, 4, 4));
        assertEquals(Allocation.adaptive(0.2), Allocation.adaptive(1, 0.2));
    }

    private static int[] range(int from, int to) {
        int[] a = new int[to - from];
        for (int i = 0; i < a.length; i++) {
            a[i] = from + i;
        }
        return a;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
