package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * KeyDiff in a real cache against a float64 reference of its score, {@code -cos(k_j, a)} with the
 * anchor {@code a} the mean of the normalised resident keys, on fresh random keys.
 */
class KeyDiffPolicyTest {

    private static final int LAYERS = 2;
    private static final int KV_HEADS = 2;
    private static final int QUERY_HEADS = 4;
    private static final int HEAD_DIM = 16;

    @Test
    void compressKeepsTheKeysLeastLikeTheMeanKey() {
        long seed = Seeds.fresh("compressKeepsTheKeysLeastLikeTheMeanKey");
        SplittableRandom r = new SplittableRandom(seed);
        for (int round = 0; round < 20; round++) {
            int n = r.nextInt(8, 120);
            int kept = r.nextInt(1, n);
            float[][][] keys = new float[LAYERS][][];
            try (KvCache cache = KvCache.create(config(n))) {
                for (int l = 0; l < LAYERS; l++) {
                    keys[l] = biasedKeys(r, n);
                    for (int p = 0; p < n; p++) {
                        cache.append(l, p, keys[l][p], Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1));
                    }
                }
                cache.compress(kept);
                for (int l = 0; l < LAYERS; l++) {
                    for (int h = 0; h < KV_HEADS; h++) {
                        double[] ref = reference(keys[l], h, n);
                        int differ = KeptTopScores.assertKeepsTop(cache.positions(l, h), ref, kept, 1e-6,
                                "seed " + seed + " round " + round + " layer " + l + " kv-head " + h);
                        assertEquals(0, differ, "seed " + seed + ": kept set differs from the float64 top-" + kept);
                    }
                }
            }
        }
    }

    @Test
    void appendBeyondCapacityEvictsTheKeyMostLikeTheMeanKey() {
        long seed = Seeds.fresh("appendBeyondCapacityEvictsTheKeyMostLikeTheMeanKey");
        SplittableRandom r = new SplittableRandom(seed);
        int capacity = 24;
        int n = 60;
        float[][] keys = biasedKeys(r, n);
        boolean[] resident = new boolean[n];
        try (KvCache cache = KvCache.create(config(capacity))) {
            for (int p = 0; p < n; p++) {
                if (p >= capacity) {
                    // The victim is chosen among the resident keys before the new one is stored.
                    double[] ref = reference(keys, 0, p, resident);
                    int victim = -1;
                    for (int q = 0; q < p; q++) {
                        if (resident[q] && (victim < 0 || ref[q] < ref[victim])) {
                            victim = q;
                        }
                    }
                    resident[victim] = false;
                }
                for (int l = 0; l < LAYERS; l++) {
                    cache.append(l, p, keys[p], Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1));
                }
                resident[p] = true;
                int[] ours = cache.positions(0, 0);
                boolean[] mine = new boolean[n];
                for (int q : ours) {
                    mine[q] = true;
                }
                for (int q = 0; q <= p; q++) {
                    assertEquals(resident[q], mine[q], "seed " + seed + ": position " + q + " after appending " + p);
                }
            }
        }
    }

    private static KvCacheConfig config(int capacity) {
        return KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS).headDim(HEAD_DIM)
                .capacity(capacity).dtype(DType.F32).policy(Policies.keyDiff()).build();
    }

    /** Keys sharing a common direction plus noise, with norms that vary by a factor of four. */
    private static float[][] biasedKeys(SplittableRandom r, int n) {
        float[] common = Seeds.uniform(r, KV_HEADS * HEAD_DIM, 1);
        float[][] keys = new float[n][KV_HEADS * HEAD_DIM];
        for (int p = 0; p < n; p++) {
            double scale = 0.5 + 1.5 * r.nextDouble();
            for (int i = 0; i < keys[p].length; i++) {
                keys[p][i] = (float) (scale * (common[i] + 1.2 * (r.nextDouble() * 2 - 1)));
            }
        }
        return keys;
    }

    private static double[] reference(float[][] keys, int kvHead, int n) {
        boolean[] all = new boolean[n];
        Arrays.fill(all, true);
        return reference(keys, kvHead, n, all);
    }

    /** {@code -cos(k_j, mean_i k_i / |k_i|)} over the positions {@code p < n} with {@code in[p]}. */
    private static double[] reference(float[][] keys, int kvHead, int n, boolean[] in) {
        double[] anchor = new double[HEAD_DIM];
        for (int p = 0; p < n; p++) {
            if (in[p]) {
                double norm = norm(keys[p], kvHead);
                for (int i = 0; i < HEAD_DIM; i++) {
                    anchor[i] += keys[p][kvHead * HEAD_DIM + i] / norm;
                }
            }
        }
        double anchorNorm = Math.sqrt(Arrays.stream(anchor).map(a -> a * a).sum());
        double[] score = new double[n];
        for (int p = 0; p < n; p++) {
            double dot = 0;
            for (int i = 0; i < HEAD_DIM; i++) {
                dot += keys[p][kvHead * HEAD_DIM + i] * anchor[i];
            }
            score[p] = -dot / (norm(keys[p], kvHead) * anchorNorm);
        }
        return score;
    }

    private static double norm(float[] key, int kvHead) {
        double s = 0;
        for (int i = 0; i < HEAD_DIM; i++) {
            s += (double) key[kvHead * HEAD_DIM + i] * key[kvHead * HEAD_DIM + i];
        }
        return Math.sqrt(s);
    }
}
