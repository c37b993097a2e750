package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Shape;
import io.github.kvcache4j.EvictionPolicy.Tracker;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * Crafted keys and attention patterns whose right victims are known: through a real
 * {@link KvCache} (one-hot keys, large-scale queries make attention what the test wants) and
 * through a tracker directly where the weights themselves are the point (GQA aggregation).
 */
class PolicyBehaviourTest {

    private static final int D = 4;

    private static KvCache cache(EvictionPolicy policy, int layers, int kvHeads, int group, int capacity) {
        return KvCache.create(KvCacheConfig.builder().layers(layers).kvHeads(kvHeads).queryHeads(kvHeads * group)
                .headDim(D).capacity(capacity).policy(policy).build());
    }

    /** A key or query of one head: {@code scale} times unit vector {@code axis}. */
    private static float[] axis(int axis, float scale) {
        float[] v = new float[D];
        v[axis] = scale;
        return v;
    }

    private static float[] concat(float[]... parts) {
        float[] out = new float[parts.length * D];
        for (int i = 0; i < parts.length; i++) {
            System.arraycopy(parts[i], 0, out, i * D, D);
        }
        return out;
    }

    private static int[] sortedPositions(KvCache cache, int layer, int kvHead) {
        int[] p = cache.positions(layer, kvHead);
        Arrays.sort(p);
        return p;
    }

    /** Appends one token with the same key on every kv-head of layer 0 and attends with {@code query}. */
    private static void step(KvCache cache, int position, float[] key, float[] query) {
        int kv = cache.config().kvHeads();
        float[][] keys = new float[kv][];
        Arrays.fill(keys, key);
        cache.append(0, position, concat(keys), new float[kv * D]);
        if (query != null) {
            int q = cache.config().queryHeads();
            float[][] qs = new float[q][];
            Arrays.fill(qs, query);
            cache.attend(0, position, concat(qs), new float[q * D]);
        }
    }

    // ---- Knorm ----

    @Test
    void knormEvictsHighestNormFirst() {
        try (KvCache cache = cache(Policies.knorm(), 1, 1, 1, 4)) {
            float[] norms = {1, 5, 2, 3, 1, 4};
            for (int p = 0; p < norms.length; p++) {
                step(cache, p, axis(p % D, norms[p]), null);
            }
            // pos 4 evicts pos 1 (norm 5); pos 5 evicts pos 3 (norm 3, the highest then)
            assertArrayEquals(new int[] {0, 2, 4, 5}, sortedPositions(cache, 0, 0));
        }
    }

    @Test
    void knormEvictsLaterOfTiedNormsFirst() {
        try (KvCache cache = cache(Policies.knorm(), 1, 1, 1, 3)) {
            step(cache, 0, axis(0, 2), null);
            step(cache, 1, axis(1, 2), null);
            step(cache, 2, axis(2, 2), null);
            step(cache, 3, axis(3, 1), null);
            assertArrayEquals(new int[] {0, 1, 3}, sortedPositions(cache, 0, 0));
            cache.compress(1);
            assertArrayEquals(new int[] {3}, sortedPositions(cache, 0, 0));
        }
    }

    @Test
    void knormCompressLeavesSkippedLayersAndSmallBuffersAlone() {
        try (KvCache cache = cache(Policies.knorm(0, 0), 2, 1, 1, 8)) {
            for (int p = 0; p < 4; p++) {
                for (int l = 0; l < 2; l++) {
                    cache.append(l, p, axis(0, 4 - p), new float[D]);
                }
            }
            cache.compress(0.5);
            assertArrayEquals(new int[] {0, 1, 2, 3}, sortedPositions(cache, 0, 0));
            assertArrayEquals(new int[] {2, 3}, sortedPositions(cache, 1, 0));
        }
        try (KvCache cache = cache(Policies.knorm(5), 1, 1, 1, 8)) {
            for (int p = 0; p < 4; p++) {
                cache.append(0, p, axis(0, 1 + p), new float[D]);
            }
            cache.compress(0.5);
            assertEquals(4, cache.positions(0, 0).length, "below pruneAfter nothing is pruned");
            cache.append(0, 4, axis(0, 9), new float[D]);
            cache.compress(0.5);
            assertArrayEquals(new int[] {0, 1}, sortedPositions(cache, 0, 0));
        }
    }

    // ---- H2O and observed attention ----

    @Test
    void h2oKeepsHeavyHitterAndRecentWindowAtDecode() {
        try (KvCache cache = cache(Policies.h2o(), 1, 1, 2, 6)) {
            step(cache, 0, axis(0, 8), axis(0, 8));
            for (int p = 1; p < 14; p++) {
                step(cache, p, axis(1, 0.1f), axis(0, 8));
            }
            // recent window: floor((6 - 1) / 2) = 2 old tokens + the new one; the sink-like heavy
            // hitter at 0 survives, the middle goes
            int[] kept = sortedPositions(cache, 0, 0);
            assertEquals(0, kept[0]);
            assertTrue(Arrays.stream(kept).anyMatch(p -> p == 13) && Arrays.stream(kept).anyMatch(p -> p == 12)
                    && Arrays.stream(kept).anyMatch(p -> p == 11), Arrays.toString(kept));
        }
    }

    @Test
    void h2oCompressSplitsKeptTokensIntoHeavyAndRecentHalves() {
        Tracker t = new H2oPolicy(0.5, false).newTracker(new Shape(1, 1, 1, 8));
        FakeBuffer b = new FakeBuffer(8);
        for (int s = 0; s < 8; s++) {
            b.append(t, s, 1f);
        }
        float[] w = {0.30f, 0.05f, 0.25f, 0.02f, 0.01f, 0.03f, 0.04f, 0.30f};
        b.attend(t, 7, w, 8, 8);
        int[] v = new int[8];
        int n = b.victims(t, Reason.COMPRESS, 4, v);
        // kept 4: recent = 6, 7; heavy among 0..5: 0 and 2; victims 1, 3, 4, 5
        assertEquals(4, n);
        int[] victims = Arrays.copyOf(v, n);
        Arrays.sort(victims);
        assertArrayEquals(new int[] {1, 3, 4, 5}, victims);
    }

    @Test
    void h2oAveragesOverGroupOfFour() {
        Tracker t = new H2oPolicy(0.0, false).newTracker(new Shape(1, 1, 4, 3));
        FakeBuffer b = new FakeBuffer(3);
        for (int s = 0; s < 3; s++) {
            b.append(t, s, 1f);
        }
        // head 0 gives slot 0 all; heads 1..3 split between 1 (0.4) and 2 (0.6): mean 0.25, 0.3, 0.45
        float[] w = {1, 0, 0, 0, 0.4f, 0.6f, 0, 0.4f, 0.6f, 0, 0.4f, 0.6f};
        b.attend(t, 2, w, 3, 3);
        int[] v = new int[3];
        assertEquals(1, b.victims(t, Reason.MAKE_ROOM, 1, v));
        assertEquals(0, v[0], "the mean, not the max, of the group decides");
    }

    @Test
    void observedAttentionDividesByQueriesThatSawTheKey() {
        Tracker h2o = new H2oPolicy(0.0, false).newTracker(new Shape(1, 1, 2, 4));
        Tracker observed = new H2oPolicy(0.0, true).newTracker(new Shape(1, 1, 2, 4));
        FakeBuffer h2oBuffer = new FakeBuffer(4);
        FakeBuffer observedBuffer = new FakeBuffer(4);
        for (FakeBuffer b : new FakeBuffer[] {h2oBuffer, observedBuffer}) {
            Tracker t = b == h2oBuffer ? h2o : observed;
            b.append(t, 0, 1f);
            b.attend(t, 0, new float[] {1, 0, 1, 0}, 2, 1);
            b.append(t, 1, 1f);
            b.attend(t, 1, new float[] {0.6f, 0.4f, 0.6f, 0.4f}, 2, 2);
        }
        // sums: slot 0 = 1.6, slot 1 = 0.4; per query: slot 0 = 0.8 over 2, slot 1 = 0.4 over 1
        int[] v = new int[2];
        assertEquals(1, h2oBuffer.victims(h2o, Reason.COMPRESS, 1, v));
        assertEquals(1, v[0]);
        // make slot 1 the better per-query key: one more query that sees both
        for (FakeBuffer b : new FakeBuffer[] {h2oBuffer, observedBuffer}) {
            b.attend(b == h2oBuffer ? h2o : observed, 1, new float[] {0.1f, 0.9f, 0.1f, 0.9f}, 2, 2);
        }
        // sums 1.7 vs 1.3 (H2O keeps 0); means 1.7/3 = 0.567 vs 1.3/2 = 0.65 (observed keeps 1)
        assertEquals(1, h2oBuffer.victims(h2o, Reason.COMPRESS, 1, v));
        assertEquals(1, v[0]);
        assertEquals(1, observedBuffer.victims(observed, Reason.COMPRESS, 1, v));
        assertEquals(0, v[0]);
    }

    // ---- CORM ----

    @Test
    void cormDropsKeysNoRecentQueryFoundImportantButKeepsRecentWindow() {
        try (KvCache cache = cache(Policies.corm(2, 2, 1.0, true), 1, 1, 2, 16)) {
            step(cache, 0, axis(0, 8), axis(0, 8));
            for (int p = 1; p < 8; p++) {
                step(cache, p, axis(1, 0.1f), axis(0, 8));
            }
            // every query gives ~all attention to 0; 1..5 were seen by >= 2 queries and never
            // important; 6 and 7 are the recent window
            assertArrayEquals(new int[] {0, 6, 7}, sortedPositions(cache, 0, 0));
        }
    }

    @Test
    void cormWaitsUntilWindowQueriesSawTheKey() {
        try (KvCache cache = cache(Policies.corm(3, 0, 1.0, true), 1, 1, 1, 16)) {
            step(cache, 0, axis(0, 8), axis(0, 8));
            step(cache, 1, axis(1, 0.1f), axis(0, 8));
            step(cache, 2, axis(1, 0.1f), axis(0, 8));
            // 1 was seen by 2 queries, 2 by 1: too few to judge
            assertArrayEquals(new int[] {0, 1, 2}, sortedPositions(cache, 0, 0));
            step(cache, 3, axis(1, 0.1f), axis(0, 8));
            assertArrayEquals(new int[] {0, 2, 3}, sortedPositions(cache, 0, 0));
        }
    }

    @Test
    void cormKeepsKeyAnyHeadOfTheGroupFindsImportant() {
        Tracker t = new CormPolicy(1, 0, 1.0, true).newTracker(new Shape(1, 1, 2, 4));
        FakeBuffer b = new FakeBuffer(4);
        for (int s = 0; s < 3; s++) {
            b.append(t, s, 1f);
        }
        // t = 3, threshold 1/3: head 0 finds slot 1 important (0.5), head 1 does not (0.1)
        float[] w = {0.5f, 0.5f, 0f, 0.9f, 0.1f, 0f, 0, 0};
        b.attend(t, 2, w, 4, 3);
        int[] v = new int[4];
        int n = b.victims(t, Reason.ADAPTIVE, 3, v);
        assertArrayEquals(new int[] {2}, Arrays.copyOf(v, n));
    }

    @Test
    void cormHardCapacityEvictsSmallestRecentMaximumOutsideRecentWindow() {
        Tracker t = new CormPolicy(2, 1, 1.0, true).newTracker(new Shape(1, 1, 1, 4));
        FakeBuffer b = new FakeBuffer(4);
        for (int s = 0; s < 4; s++) {
            b.append(t, s, 1f);
        }
        b.attend(t, 3, new float[] {0.1f, 0.2f, 0.3f, 0.4f}, 4, 4);
        b.attend(t, 3, new float[] {0.4f, 0.1f, 0.4f, 0.1f}, 4, 4);
        int[] v = new int[4];
        assertEquals(1, b.victims(t, Reason.MAKE_ROOM, 1, v));
        assertEquals(1, v[0], "recent maxima 0.4, 0.2, 0.4; slot 3 is the recent window");
        Tracker soft = new CormPolicy(2, 1, 1.0, false).newTracker(new Shape(1, 1, 1, 4));
        FakeBuffer softBuffer = new FakeBuffer(4);
        softBuffer.append(soft, 0, 1f);
        assertEquals(0, softBuffer.victims(soft, Reason.MAKE_ROOM, 1, v));
    }

    @Test
    void cormWithoutHardCapacityLetsAFullAppendFail() {
        try (KvCache cache = cache(Policies.corm(4, 1, 1.0, false), 1, 1, 1, 3)) {
            for (int p = 0; p < 3; p++) {
                step(cache, p, axis(p % D, 1), axis(p % D, 1));
            }
            assertThrows(IllegalStateException.class, () -> step(cache, 3, axis(0, 1), null));
        }
    }

    // ---- SnapKV ----

    @Test
    void snapKvKeepsWindowAndNeighboursOfTheKeyTheWindowReads() {
        try (KvCache cache = cache(Policies.snapKv(2, 3), 1, 1, 2, 16)) {
            for (int p = 0; p < 10; p++) {
                float[] key = p == 3 ? axis(0, 8) : p == 7 ? axis(1, 3) : axis(2, 0.1f);
                float[] query = p >= 8 ? axis(0, 8) : axis(3, 1);
                step(cache, p, key, query);
            }
            // the last two queries read 3: pooled, 2, 3, 4 score highest; 8, 9 are the window
            cache.compress(5);
            assertArrayEquals(new int[] {2, 3, 4, 8, 9}, sortedPositions(cache, 0, 0));
        }
    }

    @Test
    void snapKvPoolsWithZeroPaddingAlongPositionsAndAveragesTheGroup() {
        Tracker t = new SnapKvPolicy(1, 5).newTracker(new Shape(1, 1, 2, 6));
        FakeBuffer b = new FakeBuffer(6);
        // slots appended out of the cache's usual order cannot happen, but moves scramble them
        for (int s = 0; s < 6; s++) {
            b.append(t, s, 1f);
        }
        b.evict(t, 1);
        // slots now hold positions 0, 5, 2, 3, 4; the window (1 query) protects position 5
        float[] w = {0.5f, 0f, 0f, 0f, 0.3f, 0f, 0.5f, 0f, 0f, 0.1f, 0f, 0f};
        b.attend(t, 5, w, 6, 5);
        // means by position 0..4: 0.5, -, 0, 0.05, 0.15 -> order 0, 2, 3, 4 with values 0.5, 0, 0.05, 0.15
        // pooled (k = 5, /5): pos 0: (0.5+0+0.05)/5, pos 2: (0.5+0+0.05+0.15)/5, pos 3: 0.7/5, pos 4: 0.2/5
        int[] v = new int[6];
        int n = b.victims(t, Reason.COMPRESS, 2, v);
        assertEquals(2, n);
        assertEquals(4, v[0], "slot 4 holds position 4, the lowest pooled score");
        assertEquals(0, v[1], "position 0 pools the 0.05 of position 3 over zero padding");
    }

    // ---- TOVA ----

    @Test
    void tovaEvictsSameTokensOnEveryKvHeadByLayerMeanOfLastQuery() {
        try (KvCache cache = cache(Policies.tova(), 1, 2, 2, 4)) {
            for (int p = 0; p < 4; p++) {
                // kv-head 0: keys on axis p; kv-head 1: the same keys, so slot layouts coincide
                float[] key = axis(p, 8);
                cache.append(0, p, concat(key, key), new float[2 * D]);
                // kv-head 0's group looks at 1 a little, kv-head 1's group at 2 strongly
                float[] q0 = axis(1, 1);
                float[] q1 = axis(2, 8);
                cache.attend(0, p, concat(q0, q0, q1, q1), new float[4 * D]);
            }
            cache.append(0, 4, concat(axis(0, 1), axis(0, 1)), new float[2 * D]);
            int[] h0 = sortedPositions(cache, 0, 0);
            int[] h1 = sortedPositions(cache, 0, 1);
            assertArrayEquals(h0, h1, "one decision per layer");
            assertArrayEquals(cache.positions(0, 0), cache.positions(0, 1), "identical slot layouts");
            // layer mean of query 3: 2 gets most from kv-head 1; 1 from kv-head 0; 3 is kept as the
            // last position; 0 is the lowest
            assertArrayEquals(new int[] {1, 2, 3, 4}, h0);
        }
    }

    @Test
    void tovaKeepsLastPositionEvenWithZeroAttention() {
        Tracker t = new TovaPolicy().newTracker(new Shape(1, 1, 1, 3));
        FakeBuffer b = new FakeBuffer(3);
        for (int s = 0; s < 3; s++) {
            b.append(t, s, 1f);
        }
        b.attend(t, 2, new float[] {0.6f, 0.4f, 0f}, 3, 3);
        int[] v = new int[3];
        assertEquals(2, b.victims(t, Reason.COMPRESS, 3, v), "only the last position is protected");
        assertEquals(1, v[0]);
        assertEquals(0, v[1]);
    }

    // ---- arguments ----

    @Test
    void rejectsOutOfRangeSettingsNamingTheArgument() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.knorm(-1))
                .getMessage().contains("pruneAfter"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.knorm(0, -2))
                .getMessage().contains("skipLayers"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> cache(Policies.knorm(0, 3), 2, 1, 1, 4))
                .getMessage().contains("skipLayers"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.corm(65, 1, 1, true))
                .getMessage().contains("window"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.corm(4, -1, 1, true))
                .getMessage().contains("recent"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.corm(4, 1, 0, true))
                .getMessage().contains("alpha"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.h2o(1.0))
                .getMessage().contains("recentFraction"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.snapKv(0, 5))
                .getMessage().contains("window"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.snapKv(4, 4))
                .getMessage().contains("kernel"));
        assertThrows(IllegalArgumentException.class, () -> cache(Policies.snapKv(), 1, 1, 1, 64));
    }
}
