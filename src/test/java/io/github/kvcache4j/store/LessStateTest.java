package io.github.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.testutil.Seeds;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The LESS state against float64 sums over exactly the evicted tokens, and attention against its formula. */
class LessStateTest {

    private static final int LAYERS = 2;
    private static final int KV_HEADS = 2;
    private static final int QUERY_HEADS = 4;
    private static final int D = 16;
    private static final int RANK = 8;
    private static final int CAPACITY = 24;

    /** Every key and value appended, by (layer, kv-head, position). */
    private final Map<Long, float[][]> appended = new HashMap<>();

    private static long id(int layer, int h, int position) {
        return ((long) layer * KV_HEADS + h) << 32 | position;
    }

    private static KvCacheConfig config(EvictionPolicy policy, FeatureMap map) {
        return KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS).headDim(D)
                .capacity(CAPACITY).policy(policy).less(map).build();
    }

    /** Decodes {@code tokens} tokens one by one (attending, so attention policies see weights), then compresses. */
    private int run(KvCache cache, SplittableRandom r, int tokens, double ratio) {
        int pos = 0;
        float[] q = new float[QUERY_HEADS * D];
        float[] out = new float[QUERY_HEADS * D];
        for (; pos < tokens; pos++) {
            for (int l = 0; l < LAYERS; l++) {
                float[] k = Seeds.uniform(r, KV_HEADS * D, 1.0);
                float[] v = Seeds.uniform(r, KV_HEADS * D, 1.0);
                for (int h = 0; h < KV_HEADS; h++) {
                    appended.put(id(l, h, pos), new float[][] {
                            java.util.Arrays.copyOfRange(k, h * D, h * D + D),
                            java.util.Arrays.copyOfRange(v, h * D, h * D + D)});
                }
                cache.append(l, pos, k, v);
                System.arraycopy(Seeds.uniform(r, q.length, 1.0), 0, q, 0, q.length);
                cache.attend(l, pos, q, out);
            }
        }
        cache.compress(ratio);
        return pos;
    }

    /**
     * Float64 {@code Σ ψ'(k)vᵀ} (first {@code RANK * D}) and {@code Σ ψ'(k)} (last {@code RANK}) over the
     * evicted set, with {@code ψ'(k) = ψ(k−μ)} for the state's key mean {@code μ}.
     */
    private double[] referenceState(KvCache cache, FeatureMap map, int layer, int h, int tokens) {
        LessState state = stateOf(cache);
        int b = layer * KV_HEADS + h;
        float[] mu = state.keyMean(b);
        Set<Integer> resident = new HashSet<>();
        for (int p : cache.positions(layer, h)) {
            resident.add(p);
        }
        double[] s = new double[RANK * D + RANK];
        float[] lf = new float[RANK];
        float[] scratch = new float[map.scratchFloats()];
        for (int p = 0; p < tokens; p++) {
            if (resident.contains(p)) {
                continue;
            }
            float[][] kv = appended.get(id(layer, h, p));
            float[] centred = new float[D];
            for (int i = 0; i < D; i++) {
                centred[i] = kv[0][i] - mu[i];
            }
            map.logKeyFeatures(layer, h, centred, 0, lf, scratch);
            for (int rr = 0; rr < RANK; rr++) {
                double psi = Math.exp(lf[rr]);
                for (int i = 0; i < D; i++) {
                    s[rr * D + i] += psi * kv[1][i];
                }
                s[RANK * D + rr] += psi;
            }
        }
        return s;
    }

    private static double[] scaledState(LessState state, int b) {
        float[] h = new float[RANK * D];
        float[] z = new float[RANK];
        float[] c = new float[RANK];
        state.copy(b, h, z, c);
        double[] s = new double[RANK * D + RANK];
        for (int r = 0; r < RANK; r++) {
            double scale = Math.exp(c[r]);
            for (int i = 0; i < D; i++) {
                s[r * D + i] = c[r] == Float.NEGATIVE_INFINITY ? 0 : scale * h[r * D + i];
            }
            s[RANK * D + r] = c[r] == Float.NEGATIVE_INFINITY ? 0 : scale * z[r];
        }
        return s;
    }

    @Test
    void stateEqualsSumsOverExactlyTheEvictedTokens() {
        long seed = Seeds.fresh("stateEqualsSumsOverExactlyTheEvictedTokens");
        EvictionPolicy[] policies = {Policies.knorm(), Policies.h2o(), Policies.corm(4, 4, 1.0, true),
                Policies.streamingLlm(2)};
        for (EvictionPolicy policy : policies) {
            SplittableRandom r = new SplittableRandom(seed);
            FeatureMap map = FeatureMap.positiveRandom(D, RANK, seed);
            appended.clear();
            try (KvCache cache = KvCache.create(config(policy, map))) {
                int tokens = run(cache, r, 60, 0.5);
                LessState state = stateOf(cache);
                long evicted = 0;
                for (int l = 0; l < LAYERS; l++) {
                    for (int h = 0; h < KV_HEADS; h++) {
                        int b = l * KV_HEADS + h;
                        evicted += state.absorbed(b);
                        assertEquals(tokens - cache.positions(l, h).length, state.absorbed(b), policy.name());
                        double[] ref = referenceState(cache, map, l, h, tokens);
                        double[] got = scaledState(state, b);
                        for (int rr = 0; rr < RANK; rr++) {
                            double zRef = ref[RANK * D + rr];
                            assertEquals(zRef, got[RANK * D + rr], 1e-5 * zRef + 1e-300,
                                    policy.name() + " z[" + rr + "], seed " + seed);
                            for (int i = 0; i < D; i++) {
                                // |v| <= 1, so z bounds the magnitude of every element's terms
                                assertEquals(ref[rr * D + i], got[rr * D + i], 1e-5 * zRef + 1e-300,
                                        policy.name() + " H[" + rr + "][" + i + "], seed " + seed);
                            }
                        }
                    }
                }
                assertEquals(cache.stats().evicted(), evicted, policy.name());
                assertTrue(evicted > LAYERS * KV_HEADS * (60 - CAPACITY), policy.name() + " evicted " + evicted);
            }
        }
    }

    @Test
    void attentionEqualsTheLessFormulaInFloat64() {
        long seed = Seeds.fresh("attentionEqualsTheLessFormulaInFloat64");
        SplittableRandom r = new SplittableRandom(seed);
        FeatureMap map = FeatureMap.positiveRandom(D, RANK, seed ^ 0x5EED);
        appended.clear();
        try (KvCache cache = KvCache.create(config(Policies.knorm(), map))) {
            int tokens = run(cache, r, 50, 0.25);
            int group = QUERY_HEADS / KV_HEADS;
            float[] keys = new float[CAPACITY * D];
            float[] values = new float[CAPACITY * D];
            float[] lf = new float[RANK];
            for (int l = 0; l < LAYERS; l++) {
                float[] q = Seeds.uniform(r, QUERY_HEADS * D, 1.5);
                float[] out = new float[QUERY_HEADS * D];
                cache.attend(l, tokens, q, out);
                for (int h = 0; h < KV_HEADS; h++) {
                    int n = cache.read(l, h, keys, values);
                    double[] state = referenceState(cache, map, l, h, tokens);
                    for (int g = 0; g < group; g++) {
                        int qh = h * group + g;
                        double[] num = new double[D];
                        double den = 0;
                        for (int j = 0; j < n; j++) {
                            double dot = 0;
                            for (int i = 0; i < D; i++) {
                                dot += (double) q[qh * D + i] * keys[j * D + i];
                            }
                            double e = Math.exp(dot / Math.sqrt(D));
                            den += e;
                            for (int i = 0; i < D; i++) {
                                num[i] += e * values[j * D + i];
                            }
                        }
                        LessState less = stateOf(cache);
                        float[] mu = less.keyMean(l * KV_HEADS + h);
                        double shift = 0;
                        for (int i = 0; i < D; i++) {
                            shift += (double) q[qh * D + i] * mu[i] / Math.sqrt(D);
                        }
                        map.logQueryFeatures(l, qh, q, qh * D, lf, new float[0]);
                        for (int rr = 0; rr < RANK; rr++) {
                            double phi = Math.exp(lf[rr] + shift);
                            den += phi * state[RANK * D + rr];
                            for (int i = 0; i < D; i++) {
                                num[i] += phi * state[rr * D + i];
                            }
                        }
                        for (int i = 0; i < D; i++) {
                            assertEquals(num[i] / den, out[qh * D + i], 2e-5,
                                    "layer " + l + " query head " + qh + " [" + i + "], seed " + seed);
                        }
                    }
                }
            }
        }
    }

    @Test
    void lessOverTheFullCacheIsExactlyTheFullCache() {
        long seed = Seeds.fresh("lessOverTheFullCacheIsExactlyTheFullCache");
        // Element-wise dtypes: D = 16 is below a quantized row's group of 32 (QuantizedCacheTest covers LESS over Q8, Q4).
        for (DType dtype : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            KvCacheConfig plain = KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                    .headDim(D).capacity(64).dtype(dtype).policy(Policies.h2o()).build();
            KvCacheConfig withLess = plain.toBuilder().less(FeatureMap.positiveRandom(D, RANK, seed)).build();
            try (KvCache a = KvCache.create(plain); KvCache b = KvCache.create(withLess)) {
                SplittableRandom r = new SplittableRandom(seed);
                int chunk = 20;
                for (int l = 0; l < LAYERS; l++) {
                    float[] k = Seeds.uniform(r, chunk * KV_HEADS * D, 2.0);
                    float[] v = Seeds.uniform(r, chunk * KV_HEADS * D, 2.0);
                    float[] q = Seeds.uniform(r, chunk * QUERY_HEADS * D, 2.0);
                    a.append(l, 0, chunk, k, v);
                    b.append(l, 0, chunk, k, v);
                    float[] outA = new float[q.length];
                    float[] outB = new float[q.length];
                    a.attend(l, 0, chunk, q, outA);
                    b.attend(l, 0, chunk, q, outB);
                    assertArrayEquals(outA, outB, dtype + " prefill, seed " + seed);
                }
                a.compress(0.0);
                b.compress(0.0);
                for (int pos = chunk; pos < 64; pos++) {
                    for (int l = 0; l < LAYERS; l++) {
                        float[] k = Seeds.uniform(r, KV_HEADS * D, 2.0);
                        float[] v = Seeds.uniform(r, KV_HEADS * D, 2.0);
                        float[] q = Seeds.uniform(r, QUERY_HEADS * D, 2.0);
                        a.append(l, pos, k, v);
                        b.append(l, pos, k, v);
                        float[] outA = new float[q.length];
                        float[] outB = new float[q.length];
                        a.attend(l, pos, q, outA);
                        b.attend(l, pos, q, outB);
                        assertArrayEquals(outA, outB, dtype + " decode position " + pos + ", seed " + seed);
                    }
                }
                assertEquals(0, b.stats().evicted());
            }
        }
    }

    @Test
    void noNanOrInfinityForScoresUpTo1e4() {
        long seed = Seeds.fresh("noNanOrInfinityForScoresUpTo1e4");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        int kvHeads = 2;
        int queryHeads = 4;
        for (DType dtype : new DType[] {DType.F32, DType.F16}) {
            KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(kvHeads).queryHeads(queryHeads).headDim(d)
                    .capacity(16).dtype(dtype).policy(Policies.streamingLlm(0))
                    .less(FeatureMap.positiveRandom(d, 32, seed)).build();
            float[][] units = new float[40][];
            try (KvCache cache = KvCache.create(config)) {
                float maxV = 0;
                for (int pos = 0; pos < units.length; pos++) {
                    units[pos] = unit(r, d);
                    float[] k = new float[kvHeads * d];
                    float[] v = Seeds.uniform(r, kvHeads * d, 3.0);
                    for (float x : v) {
                        maxV = Math.max(maxV, Math.abs(x));
                    }
                    for (int h = 0; h < kvHeads; h++) {
                        for (int i = 0; i < d; i++) {
                            k[h * d + i] = 100f * units[pos][i];
                        }
                    }
                    cache.append(0, pos, k, v);
                    // queries aligned (q·k = ±1e4) with an evicted, a resident or the newest key
                    for (int target : new int[] {0, pos / 2, pos}) {
                        for (float sign : new float[] {1f, -1f}) {
                            float[] q = new float[queryHeads * d];
                            for (int h = 0; h < queryHeads; h++) {
                                for (int i = 0; i < d; i++) {
                                    q[h * d + i] = sign * 100f * units[target][i];
                                }
                            }
                            float[] out = new float[q.length];
                            cache.attend(0, pos, q, out);
                            for (int i = 0; i < out.length; i++) {
                                assertTrue(Float.isFinite(out[i]), dtype + " out[" + i + "] = " + out[i]
                                        + " at position " + pos + ", seed " + seed);
                                // a convex combination of values (resident and evicted) stays within their range
                                assertTrue(Math.abs(out[i]) <= maxV * 1.001f, dtype + " out[" + i + "] = " + out[i]
                                        + " beyond max |v| " + maxV + ", seed " + seed);
                            }
                        }
                    }
                }
                assertTrue(cache.stats().evicted() > 0);
            }
        }
    }

    @Test
    void anchorsOnTheMeanOfTheKeysResidentAtTheFirstEviction() {
        long seed = Seeds.fresh("anchorsOnTheMeanOfTheKeysResidentAtTheFirstEviction");
        SplittableRandom r = new SplittableRandom(seed);
        try (KvCache cache = KvCache.create(config(Policies.knorm(), FeatureMap.positiveRandom(D, RANK, seed)))) {
            double[][] keySum = new double[KV_HEADS][D];
            float[] out = new float[QUERY_HEADS * D];
            for (int pos = 0; pos <= CAPACITY; pos++) {
                float[] k = Seeds.uniform(r, KV_HEADS * D, 1.0);
                float[] q = Seeds.uniform(r, QUERY_HEADS * D, 1.0);
                cache.append(0, pos, k, Seeds.uniform(r, KV_HEADS * D, 1.0));
                for (int i = 0; i < KV_HEADS * D && pos < CAPACITY; i++) {
                    keySum[i / D][i % D] += k[i];
                }
                cache.attend(0, pos, q, out);
            }
            LessState state = stateOf(cache);
            for (int h = 0; h < KV_HEADS; h++) {
                assertEquals(1, state.absorbed(h));
                float[] mu = state.keyMean(h);
                for (int i = 0; i < D; i++) {
                    assertEquals(keySum[h][i] / CAPACITY, mu[i], 1e-5, "mu[" + i + "], seed " + seed);
                }
            }
        }
    }

    @Test
    void attentionApproachesTheFullCacheAsTheRankGrows() {
        long seed = Seeds.fresh("attentionApproachesTheFullCacheAsTheRankGrows");
        int[] ranks = {16, 256, 4096};
        double[] error = new double[ranks.length];
        double evictedOnly = 0;
        for (int ri = 0; ri < ranks.length; ri++) {
            SplittableRandom r = new SplittableRandom(seed);
            // keys and queries with a large shared component, as in trained models: centring removes it
            float[] keyBias = Seeds.uniform(r, D, 1.5);
            float[] queryBias = Seeds.uniform(r, D, 1.5);
            int tokens = 80;
            float[] keys = new float[tokens * D];
            float[] values = Seeds.uniform(r, tokens * D, 1.0);
            KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(1).headDim(D)
                    .capacity(16).policy(Policies.streamingLlm(0))
                    .less(FeatureMap.positiveRandom(D, ranks[ri], seed)).build();
            try (KvCache cache = KvCache.create(config)) {
                float[] out = new float[D];
                for (int pos = 0; pos < tokens; pos++) {
                    for (int i = 0; i < D; i++) {
                        keys[pos * D + i] = keyBias[i] + (float) (0.4 * r.nextGaussian());
                    }
                    cache.append(0, pos, java.util.Arrays.copyOfRange(keys, pos * D, pos * D + D),
                            java.util.Arrays.copyOfRange(values, pos * D, pos * D + D));
                    float[] q = new float[D];
                    for (int i = 0; i < D; i++) {
                        q[i] = queryBias[i] + (float) (0.4 * r.nextGaussian());
                    }
                    cache.attend(0, pos, q, out);
                    if (pos == tokens - 1) {
                        double[] exact = io.github.kvcache4j.testutil.Reference.attention(q, 0, keys, values, tokens, D,
                                1 / Math.sqrt(D), null);
                        error[ri] = io.github.kvcache4j.testutil.Reference.relativeError(out, 0, exact);
                        if (ri == 0) {
                            try (KvCache plain = KvCache.create(config.toBuilder().less(null).build())) {
                                for (int p = tokens - 16; p < tokens; p++) {
                                    plain.append(0, p, java.util.Arrays.copyOfRange(keys, p * D, p * D + D),
                                            java.util.Arrays.copyOfRange(values, p * D, p * D + D));
                                }
                                float[] o = new float[D];
                                plain.attend(0, pos, q, o);
                                evictedOnly = io.github.kvcache4j.testutil.Reference.relativeError(o, 0, exact);
                            }
                        }
                    }
                }
            }
            System.out.printf("R = %4d: relative error to the full cache %.4f%n", ranks[ri], error[ri]);
        }
        System.out.printf("without LESS: %.4f%n", evictedOnly);
        assertTrue(error[2] < error[0], "R 4096 should beat R 16; seed " + seed);
        assertTrue(error[2] < 0.25 * evictedOnly, "R 4096 should be far closer to the full cache than eviction alone; seed " + seed);
    }

    @Test
    void policiesSeeTheSameWeightsAndEvictTheSameTokens() {
        long seed = Seeds.fresh("policiesSeeTheSameWeightsAndEvictTheSameTokens");
        for (EvictionPolicy policy : new EvictionPolicy[] {Policies.h2o(), Policies.corm(4, 4, 1.0, true),
                Policies.observedAttention()}) {
            KvCacheConfig plain = config(policy, null);
            KvCacheConfig withLess = plain.toBuilder().less(FeatureMap.positiveRandom(D, RANK, seed)).build();
            try (KvCache a = KvCache.create(plain); KvCache b = KvCache.create(withLess)) {
                SplittableRandom r = new SplittableRandom(seed);
                float[] out = new float[QUERY_HEADS * D];
                for (int pos = 0; pos < 60; pos++) {
                    for (int l = 0; l < LAYERS; l++) {
                        float[] k = Seeds.uniform(r, KV_HEADS * D, 1.0);
                        float[] v = Seeds.uniform(r, KV_HEADS * D, 1.0);
                        float[] q = Seeds.uniform(r, QUERY_HEADS * D, 1.0);
                        a.append(l, pos, k, v);
                        b.append(l, pos, k, v);
                        a.attend(l, pos, q, out);
                        b.attend(l, pos, q, out);
                        for (int h = 0; h < KV_HEADS; h++) {
                            assertArrayEquals(a.positions(l, h), b.positions(l, h),
                                    policy.name() + " position " + pos + ", seed " + seed);
                        }
                    }
                }
                assertTrue(b.stats().evicted() > 0);
            }
        }
    }

    @Test
    void statsCountTheStateBytes() {
        FeatureMap map = FeatureMap.positiveRandom(D, RANK, 1);
        try (KvCache cache = KvCache.create(config(Policies.knorm(), map))) {
            long perBuffer = ((long) RANK * D + 2 * RANK + D) * Float.BYTES;
            assertEquals(LAYERS * KV_HEADS * perBuffer, cache.stats().stateBytes());
        }
        try (KvCache cache = KvCache.create(KvCacheConfig.builder().layers(4).kvHeads(KV_HEADS)
                .queryHeads(QUERY_HEADS).headDim(D).capacity(CAPACITY).kvSourceLayers(new int[] {0, 0, 2, 2})
                .less(map).build())) {
            long perBuffer = ((long) RANK * D + 2 * RANK + D) * Float.BYTES;
            assertEquals(2 * KV_HEADS * perBuffer, cache.stats().stateBytes(), "only source layers keep state");
        }
        try (KvCache cache = KvCache.create(config(Policies.knorm(), null))) {
            assertEquals(0, cache.stats().stateBytes());
        }
    }

    @Test
    void rejectsFeatureMapOfAnotherHeadDim() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> config(Policies.knorm(), FeatureMap.positiveRandom(D + 1, RANK, 1)));
        assertTrue(e.getMessage().contains("headDim"), e.getMessage());
    }

    private static float[] unit(SplittableRandom r, int d) {
        float[] u = new float[d];
        double norm = 0;
        for (int i = 0; i < d; i++) {
            u[i] = (float) r.nextGaussian();
            norm += u[i] * u[i];
        }
        float inv = (float) (1 / Math.sqrt(norm));
        for (int i = 0; i < d; i++) {
            u[i] *= inv;
        }
        return u;
    }

    private static LessState stateOf(KvCache cache) {
        try {
            java.lang.reflect.Field f = cache.getClass().getDeclaredField("less");
            f.setAccessible(true);
            return (LessState) f.get(cache);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }
}
