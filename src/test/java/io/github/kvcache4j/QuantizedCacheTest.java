package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.store.HadamardRotation;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A cache storing {@link DType#Q8} or {@link DType#Q4} rows, with and without key rotation: what
 * {@link KvCache#read} returns is within the format's bound of what was appended (float64), attention
 * over it is exact to float rounding (so a rotation keeps {@code q·k}), bad input is rejected
 * without a change, and LESS and a shared pool compose with it.
 */
class QuantizedCacheTest {

    static Stream<Arguments> formats() {
        return Stream.of(Arguments.of(DType.Q8, false), Arguments.of(DType.Q8, true),
                Arguments.of(DType.Q4, false), Arguments.of(DType.Q4, true));
    }

    private static KvCacheConfig.Builder shape(DType dtype, boolean rotate, int d, int capacity, long seed) {
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(4).headDim(d)
                .capacity(capacity).dtype(dtype);
        return rotate ? b.keyRotation(seed) : b;
    }

    /** Rows of the kinds a group scale must survive: random, zeros, one large outlier, subnormal. */
    private static List<float[]> rows(SplittableRandom r, int d) {
        List<float[]> rows = new ArrayList<>();
        rows.add(Seeds.uniform(r, d, 3));
        rows.add(new float[d]);
        float[] outlier = Seeds.uniform(r, d, 1);
        outlier[r.nextInt(d)] = r.nextBoolean() ? 500f : -500f;
        rows.add(outlier);
        float[] subnormal = new float[d];
        for (int i = 0; i < d; i++) {
            subnormal[i] = (float) ((r.nextDouble() * 2 - 1) * Float.MIN_NORMAL / 16);
        }
        rows.add(subnormal);
        return rows;
    }

    /**
     * The format's bound on {@code ‖x − y‖₂} for a row {@code x} as stored ({@code docs/quantization.md}):
     * per group {@code |x_i − y_i| ≤ d/2 + maxCode·ulp(d) + ulp(x_i)}, with {@code d} the group's
     * scale from its range, summed in squares; plus the rotation's rounding, {@code 2⁻²⁰·‖x‖}.
     */
    private static double bound(float[] x, DType dtype) {
        double squares = 0;
        for (int g = 0; g < x.length / 32; g++) {
            double lo = Double.POSITIVE_INFINITY;
            double hi = Double.NEGATIVE_INFINITY;
            double amax = 0;
            for (int i = g * 32; i < g * 32 + 32; i++) {
                lo = Math.min(lo, x[i]);
                hi = Math.max(hi, x[i]);
                amax = Math.max(amax, Math.abs(x[i]));
            }
            int maxCode = dtype == DType.Q8 ? 127 : 15;
            double scale = dtype == DType.Q8 ? amax / 127 : (hi - lo) / 15;
            for (int i = g * 32; i < g * 32 + 32; i++) {
                double e = scale / 2 + maxCode * Math.ulp((float) scale) + Math.ulp(x[i]) + Float.MIN_VALUE;
                squares += e * e;
            }
        }
        return Math.sqrt(squares) + 0x1p-20 * norm(x);
    }

    private static double norm(float[] x) {
        double s = 0;
        for (float f : x) {
            s += (double) f * f;
        }
        return Math.sqrt(s);
    }

    @ParameterizedTest(name = "{0} rotated={1}")
    @MethodSource("formats")
    void readReturnsEveryRowWithinTheFormatBound(DType dtype, boolean rotate) {
        long seed = Seeds.fresh("readReturnsEveryRowWithinTheFormatBound " + dtype + " " + rotate);
        SplittableRandom r = new SplittableRandom(seed);
        int d = 96;
        HadamardRotation rotation = new HadamardRotation(d, seed);
        try (KvCache cache = KvCache.create(shape(dtype, rotate, d, 64, seed).layers(1).kvHeads(1).build())) {
            List<float[]> rows = rows(r, d);
            for (int p = 0; p < rows.size(); p++) {
                cache.append(0, p, rows.get(p), rows.get(rows.size() - 1 - p));
            }
            float[] keys = new float[rows.size() * d];
            float[] values = new float[rows.size() * d];
            assertEquals(rows.size(), cache.read(0, 0, keys, values));
            for (int p = 0; p < rows.size(); p++) {
                float[] key = rows.get(p);
                // A rotated key is quantized as R·k: the bound is that row's, carried back by R's orthogonality.
                float[] asQuantized = key.clone();
                if (rotate) {
                    rotation.rotate(asQuantized, 0);
                }
                assertWithin(key, keys, p * d, bound(asQuantized, dtype), "key " + p + ", seed " + seed);
                float[] value = rows.get(rows.size() - 1 - p);
                assertWithin(value, values, p * d, bound(value, dtype), "value " + p + ", seed " + seed);
            }
        }
    }

    private static void assertWithin(float[] expected, float[] actual, int off, double bound, String what) {
        double s = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = (double) expected[i] - actual[off + i];
            s += e * e;
        }
        assertTrue(Math.sqrt(s) <= bound, what + ": error " + Math.sqrt(s) + " > bound " + bound);
    }

    /**
     * The kernel adds no error beyond the format: attention equals float64 attention over the rows
     * {@code read} returns, to 1e-5. With rotation those keys are un-rotated and the queries given
     * as they are, so this also shows {@code (Rq)·(Rk) = q·k} to float rounding.
     */
    @ParameterizedTest(name = "{0} rotated={1}")
    @MethodSource("formats")
    void attentionMatchesFloat64OverTheRowsAsRead(DType dtype, boolean rotate) {
        long seed = Seeds.fresh("attentionMatchesFloat64OverTheRowsAsRead " + dtype + " " + rotate);
        SplittableRandom r = new SplittableRandom(seed);
        int d = 128;
        int capacity = 150;
        try (KvCache cache = KvCache.create(shape(dtype, rotate, d, capacity, seed).policy(Policies.h2o()).build())) {
            for (int p = 0; p < 200; p++) {
                float[] k = Seeds.uniform(r, 2 * d, 1);
                k[r.nextInt(2 * d)] = 12f;
                cache.append(p % 2, p / 2 + 1000 * (p % 2), k, Seeds.uniform(r, 2 * d, 1));
            }
            for (int layer = 0; layer < 2; layer++) {
                for (int rep = 0; rep < 3; rep++) {
                    int position = 1000 * layer + 100 + rep;
                    cache.append(layer, position, Seeds.uniform(r, 2 * d, 1), Seeds.uniform(r, 2 * d, 1));
                    float[] q = Seeds.uniform(r, 4 * d, 2);
                    float[] keys = new float[capacity * d];
                    float[] values = new float[capacity * d];
                    float[][] kh = new float[2][];
                    float[][] vh = new float[2][];
                    int[] n = new int[2];
                    for (int h = 0; h < 2; h++) {
                        n[h] = cache.read(layer, h, keys, values);
                        kh[h] = keys.clone();
                        vh[h] = values.clone();
                    }
                    float[] out = new float[4 * d];
                    cache.attend(layer, position, q, out);
                    for (int qh = 0; qh < 4; qh++) {
                        int h = qh / 2;
                        double[] ref = Reference.attention(q, qh * d, kh[h], vh[h], n[h], d, 1 / Math.sqrt(d), null);
                        double err = Reference.relativeError(out, qh * d, ref);
                        assertTrue(err <= 1e-5, "layer " + layer + " head " + qh + " relative error " + err
                                + ", seed " + seed);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} rotated={1}")
    @MethodSource("formats")
    void rejectsNanAndInfinityAtAppendWithoutAChange(DType dtype, boolean rotate) {
        long seed = Seeds.fresh("rejectsNanAndInfinityAtAppendWithoutAChange " + dtype + " " + rotate);
        SplittableRandom r = new SplittableRandom(seed);
        int d = 32;
        try (KvCache cache = KvCache.create(shape(dtype, rotate, d, 8, seed).build())) {
            cache.append(0, 0, Seeds.uniform(r, 2 * d, 1), Seeds.uniform(r, 2 * d, 1));
            Snapshot before = Snapshot.of(cache);
            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[] k = Seeds.uniform(r, 2 * d, 1);
                float[] v = Seeds.uniform(r, 2 * d, 1);
                int at = r.nextInt(2 * d);
                k[at] = bad;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.append(0, 1, k, v));
                assertEquals("keys[" + at + "] must be finite, got " + bad, e.getMessage());
                k[at] = 0;
                v[at] = bad;
                e = assertThrows(IllegalArgumentException.class, () -> cache.append(0, 1, k, v));
                assertEquals("values[" + at + "] must be finite, got " + bad, e.getMessage());
                assertEquals(before, Snapshot.of(cache), "seed " + seed);
            }
            if (rotate) {
                float[] k = new float[2 * d];
                k[3] = Float.MAX_VALUE;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.append(0, 1, k, new float[2 * d]));
                assertTrue(e.getMessage().startsWith("keys[3] = " + Float.MAX_VALUE + " exceeds "), e.getMessage());
                assertEquals(before, Snapshot.of(cache), "seed " + seed);
            }
        }
    }

    @Test
    void rejectsHeadDimensionsOutsideWholeGroupsAndRotationOfUnquantizedRows() {
        for (DType dtype : new DType[] {DType.Q8, DType.Q4}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> shape(dtype, false, 80, 8, 0).build());
            assertEquals("headDim must be a multiple of 32 for dtype " + dtype
                    + " (its groups of 32 elements share a scale), got 80", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> KvPool.create(48, dtype, 1 << 20));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> shape(DType.F16, true, 64, 8, 0).build());
        assertEquals("keyRotation applies to the quantized dtypes Q8 and Q4 only, got dtype F16", e.getMessage());
        KvCacheConfig rotated = shape(DType.Q4, true, 64, 8, 7).build();
        assertEquals(7L, rotated.toBuilder().build().keyRotationSeed().getAsLong());
        assertTrue(rotated.toBuilder().noKeyRotation().dtype(DType.F16).build().keyRotationSeed().isEmpty());
        assertEquals(144, DType.Q8.rowBytes(128));
        assertEquals(96, DType.Q4.rowBytes(128));
        assertThrows(UnsupportedOperationException.class, DType.Q4::bytes);
    }

    /**
     * LESS folds the dequantized rows: a quantized cache with LESS gives the attention of an F32
     * cache with LESS that was appended exactly the rows the quantized one read back, under
     * eviction by StreamingLLM and by H2O.
     */
    @ParameterizedTest(name = "{0} rotated={1}")
    @MethodSource("formats")
    void lessFoldsTheDequantizedRows(DType dtype, boolean rotate) {
        long seed = Seeds.fresh("lessFoldsTheDequantizedRows " + dtype + " " + rotate);
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        int capacity = 24;
        for (EvictionPolicy policy : new EvictionPolicy[] {Policies.streamingLlm(2), Policies.h2o()}) {
            FeatureMap map = FeatureMap.positiveRandom(d, 16, seed);
            KvCacheConfig quantized = shape(dtype, rotate, d, capacity, seed).layers(1).policy(policy).less(map).build();
            KvCacheConfig exact = quantized.toBuilder().noKeyRotation().dtype(DType.F32).build();
            try (KvCache q = KvCache.create(quantized); KvCache f = KvCache.create(exact)) {
                float[] keys = new float[capacity * d];
                float[] values = new float[capacity * d];
                float[] rowK = new float[2 * d];
                float[] rowV = new float[2 * d];
                for (int p = 0; p < 80; p++) {
                    q.append(0, p, Seeds.uniform(r, 2 * d, 1), Seeds.uniform(r, 2 * d, 1));
                    for (int h = 0; h < 2; h++) {
                        int n = q.read(0, h, keys, values);
                        int[] pos = q.positions(0, h);
                        for (int j = 0; j < n; j++) {
                            if (pos[j] == p) {
                                System.arraycopy(keys, j * d, rowK, h * d, d);
                                System.arraycopy(values, j * d, rowV, h * d, d);
                            }
                        }
                    }
                    f.append(0, p, rowK, rowV);
                    float[] query = Seeds.uniform(r, 4 * d, 2);
                    float[] outQ = new float[4 * d];
                    float[] outF = new float[4 * d];
                    q.attend(0, p, query, outQ);
                    f.attend(0, p, query, outF);
                    for (int qh = 0; qh < 4; qh++) {
                        double[] ref = new double[d];
                        for (int i = 0; i < d; i++) {
                            ref[i] = outF[qh * d + i];
                        }
                        double err = Reference.relativeError(outQ, qh * d, ref);
                        assertTrue(err <= 1e-4, policy.name() + " position " + p + " head " + qh + " error " + err
                                + ", seed " + seed);
                    }
                }
                assertTrue(q.stats().evicted() > 0 && q.stats().stateBytes() > 0, "seed " + seed);
                assertEquals(q.stats().evicted(), f.stats().evicted(), policy.name() + ", seed " + seed);
            }
        }
    }

    /** Caches of Q4 rows share a pool whose blocks are a quarter-size-and-a-bit of F32's, and evict when it runs out. */
    @Test
    void sharedPoolOfQuantizedBlocksEvictsWhenItRunsOut() {
        long seed = Seeds.fresh("sharedPoolOfQuantizedBlocksEvictsWhenItRunsOut");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 128;
        long block = KvPool.blockBytes(d, DType.Q4);
        assertEquals(2 * 64 * 96, block);
        try (KvPool pool = KvPool.create(d, DType.Q4, 6 * block)) {
            KvCacheConfig config = shape(DType.Q4, true, d, 256, seed).layers(1).policy(Policies.streamingLlm(4))
                    .poolExhaustion(KvPool.Exhaustion.EVICT).build();
            try (KvCache a = KvCache.create(config, pool); KvCache b = KvCache.create(config, pool)) {
                for (int p = 0; p < 300; p++) {
                    a.append(0, p, Seeds.uniform(r, 2 * d, 1), Seeds.uniform(r, 2 * d, 1));
                    b.append(0, p, Seeds.uniform(r, 2 * d, 1), Seeds.uniform(r, 2 * d, 1));
                }
                assertEquals(6, pool.stats().usedBlocks(), "seed " + seed);
                assertEquals(3 * 64 * 2, a.stats().resident(0, 0) + a.stats().resident(0, 1)
                        + b.stats().resident(0, 0) + b.stats().resident(0, 1), "seed " + seed);
                assertEquals(6 * block, a.stats().heldBytes() + b.stats().heldBytes());
            }
        }
    }
}
