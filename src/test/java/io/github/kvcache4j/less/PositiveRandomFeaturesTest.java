package io.github.kvcache4j.less;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** FAVOR+ positive random features: the estimate of {@code Σ_j exp(q·k_j/√d)·v_j} and its convergence in the rank. */
class PositiveRandomFeaturesTest {

    private static final int D = 64;
    private static final int TOKENS = 256;
    private static final int[] RANKS = {16, 64, 256, 1024};
    private static final int MAP_SEEDS = 8;
    private static final int QUERIES = 4;

    @Test
    void estimateConvergesAsTheRankGrows() {
        long seed = Seeds.fresh("estimateConvergesAsTheRankGrows");
        SplittableRandom r = new SplittableRandom(seed);
        double sigma = 0.3;
        float[] keys = gaussian(r, TOKENS * D, sigma);
        float[] values = Seeds.uniform(r, TOKENS * D, 1.0);
        float[] queries = gaussian(r, QUERIES * D, sigma);
        double[] error = new double[RANKS.length];
        for (int ri = 0; ri < RANKS.length; ri++) {
            int rank = RANKS[ri];
            for (int s = 1; s <= MAP_SEEDS; s++) {
                FeatureMap map = FeatureMap.positiveRandom(D, rank, s);
                double[] h = new double[rank * D];
                double[] z = new double[rank];
                float[] lf = new float[rank];
                for (int j = 0; j < TOKENS; j++) {
                    map.logKeyFeatures(0, 0, keys, j * D, lf, null);
                    for (int k = 0; k < rank; k++) {
                        double psi = Math.exp(lf[k]);
                        z[k] += psi;
                        for (int i = 0; i < D; i++) {
                            h[k * D + i] += psi * values[j * D + i];
                        }
                    }
                }
                for (int qi = 0; qi < QUERIES; qi++) {
                    double[] exact = new double[D + 1];
                    for (int j = 0; j < TOKENS; j++) {
                        double dot = 0;
                        for (int i = 0; i < D; i++) {
                            dot += (double) queries[qi * D + i] * keys[j * D + i];
                        }
                        double e = Math.exp(dot / Math.sqrt(D));
                        exact[D] += e;
                        for (int i = 0; i < D; i++) {
                            exact[i] += e * values[j * D + i];
                        }
                    }
                    map.logQueryFeatures(0, 0, queries, qi * D, lf, null);
                    double[] estimate = new double[D + 1];
                    for (int k = 0; k < rank; k++) {
                        double phi = Math.exp(lf[k]);
                        estimate[D] += phi * z[k];
                        for (int i = 0; i < D; i++) {
                            estimate[i] += phi * h[k * D + i];
                        }
                    }
                    double diff = 0;
                    double norm = 0;
                    for (int i = 0; i <= D; i++) {
                        diff += (estimate[i] - exact[i]) * (estimate[i] - exact[i]);
                        norm += exact[i] * exact[i];
                    }
                    error[ri] += Math.sqrt(diff / norm) / (MAP_SEEDS * QUERIES);
                }
            }
            System.out.printf("R = %4d: mean relative error %.4f (x sqrt(R) = %.3f)%n",
                    rank, error[ri], error[ri] * Math.sqrt(rank));
        }
        for (int ri = 1; ri < RANKS.length; ri++) {
            // 4x the rank should halve the error; allow for the noise of 32 samples
            double ratio = error[ri - 1] / error[ri];
            assertTrue(ratio > 1.3 && ratio < 3.2, "R " + RANKS[ri - 1] + " -> " + RANKS[ri]
                    + ": error fell by " + ratio + ", expected about 2; seed " + seed);
        }
        assertTrue(error[0] / error[RANKS.length - 1] > 5, "16 -> 1024 should cut the error about 8x; seed " + seed);
    }

    @Test
    void sameSeedGivesTheSameFeatures() {
        float[] x = Seeds.uniform(new SplittableRandom(3), D, 1.0);
        float[] a = new float[32];
        float[] b = new float[32];
        FeatureMap.positiveRandom(D, 32, 99).logKeyFeatures(0, 0, x, 0, a, null);
        FeatureMap.positiveRandom(D, 32, 99).logQueryFeatures(5, 7, x, 0, b, null);
        assertArrayEquals(a, b);
        assertTrue(FeatureMap.positiveRandom(D, 32, 99).name().contains("seed=99"));
    }

    @Test
    void rejectsNonPositiveDimensions() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FeatureMap.positiveRandom(D, 0, 1));
        assertTrue(e.getMessage().contains("rank"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> FeatureMap.positiveRandom(0, 8, 1));
        assertTrue(e.getMessage().contains("headDim"), e.getMessage());
    }

    private static float[] gaussian(SplittableRandom r, int n, double sigma) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * sigma);
        }
        return a;
    }
}
