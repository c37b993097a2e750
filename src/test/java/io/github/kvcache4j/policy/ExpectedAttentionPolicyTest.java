package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Expected attention in a real cache against a float64 reference on fresh random inputs: queries
 * drawn before RoPE from a Gaussian-like law with a mean and correlations of their own, rotated
 * to their positions by the test (the cache sees them after RoPE, as a decoder hands them over),
 * and the score recomputed from its definition with explicit matrices: mean and biased covariance
 * of the unrotated queries after the sinks, the rotation matrix averaged over the next {@code F}
 * positions, {@code softmax(μ'ᵀk/√d + kᵀΣ'k/(2d))} over the non-sink keys per query head, averaged
 * over the group, times {@code ‖v‖}, the sinks at the maximum.
 */
class ExpectedAttentionPolicyTest {

    private static final int KV_HEADS = 2;
    private static final int GROUP = 2;
    private static final int HEAD_DIM = 16;

    private record Settings(Rope rope, int future, int sinks, boolean covariance, boolean valueNorms, double epsilon) {
    }

    @Test
    void compressKeepsTheKeysOfHighestExpectedAttention() {
        long seed = Seeds.fresh("compressKeepsTheKeysOfHighestExpectedAttention");
        SplittableRandom r = new SplittableRandom(seed);
        int differ = 0;
        int total = 0;
        for (int round = 0; round < 24; round++) {
            Rope rope = Rope.of(r.nextBoolean() ? 10000 : 50, r.nextBoolean() ? HEAD_DIM : HEAD_DIM / 2, r.nextBoolean());
            Settings s = new Settings(rope, r.nextInt(1, 80), r.nextInt(5), round % 4 != 3, round % 3 != 2,
                    r.nextBoolean() ? 0.0 : 0.01);
            int n = r.nextInt(s.sinks() + 8, 100);
            int kept = r.nextInt(s.sinks() + 1, n);
            String what = "seed " + seed + " round " + round + " " + s;
            float[][] keys = rows(r, n, 1.5);
            float[][] values = rows(r, n, 1.0);
            double[][][] queries = queries(r, n);
            try (KvCache cache = KvCache.create(config(n, s))) {
                float[] out = new float[KV_HEADS * GROUP * HEAD_DIM];
                for (int p = 0; p < n; p++) {
                    cache.append(0, p, keys[p], values[p]);
                    cache.attend(0, p, rotated(queries[p], p, rope), out);
                }
                cache.compress(kept);
                for (int h = 0; h < KV_HEADS; h++) {
                    double[] ref = reference(s, keys, values, queries, h, n);
                    differ += KeptTopScores.assertKeepsTop(cache.positions(0, h), ref, kept, 1e-4, what + " kv-head " + h);
                    total += kept;
                    for (int p = 0; p < s.sinks(); p++) {
                        int sink = p;
                        assertTrue(Arrays.stream(cache.positions(0, h)).anyMatch(q -> q == sink),
                                what + ": sink " + p + " of kv-head " + h + " was evicted");
                    }
                }
            }
        }
        System.out.println("expected attention: " + differ + " of " + total + " kept positions differ from float64");
        assertTrue(differ <= total / 200, "seed " + seed + ": " + differ + " of " + total + " kept positions differ");
    }

    @Test
    void rejectsOutOfRangeSettings() {
        Rope rope = Rope.of(10000, HEAD_DIM, false);
        assertMessage("futurePositions must be >= 1, got 0", () -> Policies.expectedAttention(rope, 0, 4, true, true, 0));
        assertMessage("sinks must be >= 0, got -1", () -> Policies.expectedAttention(rope, 8, -1, true, true, 0));
        assertMessage("epsilon must be finite and >= 0, got NaN",
                () -> Policies.expectedAttention(rope, 8, 4, true, true, Double.NaN));
        assertMessage("base must be finite and > 1, got 1.0", () -> Rope.of(1, 8, false));
        assertMessage("dims must be even and >= 2, got 7", () -> Rope.of(10000, 7, false));
        assertMessage("frequencies[1] must be finite and >= 0, got -1.0",
                () -> Rope.ofFrequencies(new double[] {1, -1}, true));
        assertThrows(NullPointerException.class, () -> Policies.expectedAttention(null));
    }

    private static void assertMessage(String message, Runnable call) {
        assertEquals(message, assertThrows(IllegalArgumentException.class, call::run).getMessage());
    }

    private static KvCacheConfig config(int capacity, Settings s) {
        return KvCacheConfig.builder().layers(1).kvHeads(KV_HEADS).queryHeads(KV_HEADS * GROUP).headDim(HEAD_DIM)
                .capacity(capacity).dtype(DType.F32)
                .policy(Policies.expectedAttention(s.rope(), s.future(), s.sinks(), s.covariance(), s.valueNorms(),
                        s.epsilon()))
                .build();
    }

    /** Rows of every kv-head with norms spread over a factor of three. */
    private static float[][] rows(SplittableRandom r, int n, double scale) {
        float[][] rows = new float[n][];
        for (int p = 0; p < n; p++) {
            rows[p] = Seeds.uniform(r, KV_HEADS * HEAD_DIM, scale * (0.5 + r.nextDouble()));
        }
        return rows;
    }

    /**
     * Unrotated queries {@code [p][head][i]}: per head a mean plus a mixing matrix applied to
     * uniform noise, so the covariance is far from diagonal.
     */
    private static double[][][] queries(SplittableRandom r, int n) {
        int heads = KV_HEADS * GROUP;
        double[][] mean = new double[heads][HEAD_DIM];
        double[][][] mix = new double[heads][HEAD_DIM][HEAD_DIM];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < HEAD_DIM; i++) {
                mean[h][i] = 2 * r.nextDouble() - 1;
                for (int j = 0; j < HEAD_DIM; j++) {
                    mix[h][i][j] = (2 * r.nextDouble() - 1) * 0.6;
                }
            }
        }
        double[][][] q = new double[n][heads][HEAD_DIM];
        double[] z = new double[HEAD_DIM];
        for (int p = 0; p < n; p++) {
            for (int h = 0; h < heads; h++) {
                for (int j = 0; j < HEAD_DIM; j++) {
                    z[j] = 2 * r.nextDouble() - 1;
                }
                for (int i = 0; i < HEAD_DIM; i++) {
                    double v = mean[h][i];
                    for (int j = 0; j < HEAD_DIM; j++) {
                        v += mix[h][i][j] * z[j];
                    }
                    q[p][h][i] = (float) v;
                }
            }
        }
        return q;
    }

    /** The queries of position {@code p} rotated to {@code p}, as the cache receives them. */
    private static float[] rotated(double[][] q, int p, Rope rope) {
        float[] out = new float[q.length * HEAD_DIM];
        double[][] rot = rotation(rope, p);
        for (int h = 0; h < q.length; h++) {
            double[] v = times(rot, q[h]);
            for (int i = 0; i < HEAD_DIM; i++) {
                out[h * HEAD_DIM + i] = (float) v[i];
            }
        }
        return out;
    }

    /** The RoPE rotation at position {@code t} as a matrix. */
    private static double[][] rotation(Rope rope, long t) {
        double[][] m = new double[HEAD_DIM][HEAD_DIM];
        for (int i = 0; i < HEAD_DIM; i++) {
            m[i][i] = 1;
        }
        for (int i = 0; i < rope.pairs(); i++) {
            double a = t * rope.frequency(i);
            int x = rope.first(i);
            int y = rope.second(i);
            m[x][x] = Math.cos(a);
            m[x][y] = -Math.sin(a);
            m[y][x] = Math.sin(a);
            m[y][y] = Math.cos(a);
        }
        return m;
    }

    private static double[] times(double[][] m, double[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            for (int j = 0; j < v.length; j++) {
                out[i] += m[i][j] * v[j];
            }
        }
        return out;
    }

    private static double[] reference(Settings s, float[][] keys, float[][] values, double[][][] queries, int kvHead,
                                      int n) {
        double[][] avg = new double[HEAD_DIM][HEAD_DIM];
        for (int t = n; t < n + s.future(); t++) {
            double[][] rot = rotation(s.rope(), t);
            for (int i = 0; i < HEAD_DIM; i++) {
                for (int j = 0; j < HEAD_DIM; j++) {
                    avg[i][j] += rot[i][j] / s.future();
                }
            }
        }
        double[] score = new double[n];
        for (int g = 0; g < GROUP; g++) {
            int head = kvHead * GROUP + g;
            double[] mu = new double[HEAD_DIM];
            double[][] cov = new double[HEAD_DIM][HEAD_DIM];
            int count = n - s.sinks();
            for (int p = s.sinks(); p < n; p++) {
                for (int i = 0; i < HEAD_DIM; i++) {
                    mu[i] += queries[p][head][i] / count;
                }
            }
            for (int p = s.sinks(); p < n; p++) {
                for (int i = 0; i < HEAD_DIM; i++) {
                    for (int j = 0; j < HEAD_DIM; j++) {
                        cov[i][j] += (queries[p][head][i] - mu[i]) * (queries[p][head][j] - mu[j]) / count;
                    }
                }
            }
            double[] muR = times(avg, mu);
            double[][] covR = new double[HEAD_DIM][HEAD_DIM];
            for (int i = 0; i < HEAD_DIM; i++) {
                for (int j = 0; j < HEAD_DIM; j++) {
                    for (int a = 0; a < HEAD_DIM; a++) {
                        for (int b = 0; b < HEAD_DIM; b++) {
                            covR[i][j] += avg[i][a] * cov[a][b] * avg[j][b];
                        }
                    }
                }
            }
            double[] logit = new double[n];
            double max = Double.NEGATIVE_INFINITY;
            for (int p = s.sinks(); p < n; p++) {
                double lin = 0;
                double quad = 0;
                for (int i = 0; i < HEAD_DIM; i++) {
                    double ki = keys[p][kvHead * HEAD_DIM + i];
                    lin += muR[i] * ki;
                    for (int j = 0; j < HEAD_DIM; j++) {
                        quad += ki * covR[i][j] * keys[p][kvHead * HEAD_DIM + j];
                    }
                }
                logit[p] = lin / Math.sqrt(HEAD_DIM) + (s.covariance() ? quad / (2.0 * HEAD_DIM) : 0);
                max = Math.max(max, logit[p]);
            }
            double z = 0;
            for (int p = s.sinks(); p < n; p++) {
                z += Math.exp(logit[p] - max);
            }
            for (int p = s.sinks(); p < n; p++) {
                score[p] += Math.exp(logit[p] - max) / z / GROUP;
            }
        }
        double best = Double.NEGATIVE_INFINITY;
        for (int p = s.sinks(); p < n; p++) {
            if (s.valueNorms()) {
                double norm = 0;
                for (int i = 0; i < HEAD_DIM; i++) {
                    norm += (double) values[p][kvHead * HEAD_DIM + i] * values[p][kvHead * HEAD_DIM + i];
                }
                score[p] = (score[p] + s.epsilon()) * Math.sqrt(norm);
            }
            best = Math.max(best, score[p]);
        }
        for (int p = 0; p < s.sinks(); p++) {
            score[p] = best;
        }
        return score;
    }
}
