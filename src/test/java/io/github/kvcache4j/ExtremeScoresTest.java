package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Attention stays finite and accurate when raw scores {@code q·k} reach ±10^4. */
class ExtremeScoresTest {

    private static final double MAX_DOT = 1e4;

    @ParameterizedTest
    @EnumSource(DType.class)
    void scoresUpTo1e4GiveFiniteAccurateAttention(DType dtype) {
        long seed = Seeds.fresh("scoresUpTo1e4GiveFiniteAccurateAttention " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        for (int c = 0; c < 300; c++) {
            // Quantized rows hold whole groups of 32 elements.
            int d = dtype.isQuantized() ? new int[] {32, 64}[r.nextInt(2)] : new int[] {16, 24, 64}[r.nextInt(3)];
            int kvHeads = r.nextInt(1, 3);
            int group = 1 << r.nextInt(3);
            int capacity = r.nextInt(2, 40);
            KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(kvHeads).queryHeads(kvHeads * group)
                    .headDim(d).capacity(capacity).dtype(dtype).policy(Policies.h2o()).build();
            // |q·k| <= d * qMax * kMax = MAX_DOT, with keys inside the F16 range.
            double kMax = Math.min(1000, Math.sqrt(MAX_DOT / d) * 10);
            double qMax = MAX_DOT / d / kMax;
            try (KvCache cache = KvCache.create(config)) {
                int tokens = r.nextInt(1, capacity * 2);
                for (int p = 0; p < tokens; p++) {
                    float[] k = Seeds.uniform(r, kvHeads * d, kMax);
                    if (r.nextInt(3) == 0) {
                        java.util.Arrays.fill(k, (float) (r.nextBoolean() ? kMax : -kMax));
                    }
                    cache.append(0, p, k, Seeds.uniform(r, kvHeads * d, 1));
                }
                float[] q = Seeds.uniform(r, kvHeads * group * d, qMax);
                if (r.nextBoolean()) {
                    java.util.Arrays.fill(q, (float) (r.nextBoolean() ? qMax : -qMax));
                }
                float[] out = new float[q.length];
                cache.attend(0, tokens - 1, q, out);
                float[] keys = new float[capacity * d];
                float[] values = new float[capacity * d];
                for (int h = 0; h < kvHeads; h++) {
                    int n = cache.read(0, h, keys, values);
                    for (int g = 0; g < group; g++) {
                        int off = (h * group + g) * d;
                        for (int i = 0; i < d; i++) {
                            assertTrue(Float.isFinite(out[off + i]), "case " + c + " output " + out[off + i]
                                    + ", seed " + seed);
                        }
                        double[] ref = Reference.attention(q, off, keys, values, n, d, 1 / Math.sqrt(d), null);
                        // Float scores of magnitude 1e4/sqrt(d) carry absolute errors up to ~1e-3; near-ties
                        // between keys turn that into the same relative error of the weights.
                        double err = Reference.relativeError(out, off, ref);
                        assertTrue(err <= 1e-3, "case " + c + " head " + (h * group + g) + " error " + err
                                + ", seed " + seed);
                    }
                }
            }
        }
    }
}
