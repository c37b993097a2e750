package io.github.kvcache4j.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.Codec;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class KernelsTest {

    private static final Kernels SCALAR = KernelProvider.scalar();
    private static final Kernels PANAMA = KernelProvider.panama();
    /** The element-wise dtypes; Q8 and Q4 rows are tested by {@code QuantizedAttentionTest}. */
    private static final DType[] ELEMENTWISE = {DType.F32, DType.F16, DType.BF16};

    static Stream<Arguments> shapes() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (DType t : ELEMENTWISE) {
            for (int d : new int[] {64, 80, 128}) {
                for (int group : new int[] {1, 2, 4, 8}) {
                    for (int n : new int[] {1, 7, 33, 257, 2100}) {
                        b.add(Arguments.of(t, d, group, n));
                    }
                }
            }
        }
        return b.build();
    }

    @Test
    void vectorKernelsAreSelectedWhenTheModuleIsPresent() {
        assertTrue(KernelProvider.kernels().name().startsWith("panama"), KernelProvider.kernels().name());
    }

    @ParameterizedTest(name = "{0} d={1} group={2} n={3}")
    @MethodSource("shapes")
    void attentionMatchesFloat64Reference(DType dtype, int d, int group, int n) {
        long seed = Seeds.fresh("attention " + dtype + " d=" + d + " g=" + group + " n=" + n);
        SplittableRandom r = new SplittableRandom(seed);
        float[] keys = Seeds.uniform(r, n * d, 1.0);
        float[] values = Seeds.uniform(r, n * d, 1.0);
        float[] q = Seeds.uniform(r, group * d, 2.0);
        // Against the inputs as given, the storage rounding dominates: F16 keeps 11 significant
        // bits, BF16 only 8 (unit roundoff 2^-9 = 1.95e-3 per element), hence BF16's wider bound.
        // Against the values as stored, every dtype must meet the float32 bound.
        double inputTolerance = switch (dtype) {
            case F32 -> 1e-5;
            case F16 -> 2e-3;
            case BF16 -> 8e-3;
            case Q8, Q4 -> throw new IllegalArgumentException(dtype + " is not element-wise");
        };
        double scale = 1 / Math.sqrt(d);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = storeKeys(arena, keys, n, d, dtype);
            MemorySegment v = storeValues(arena, values, n, d, dtype);
            float[] storedKeys = new float[n * d];
            float[] storedValues = new float[n * d];
            for (int j = 0; j < n; j++) {
                Codec.decode(k, dtype, KeyTiles.keyIndex(j, 0, d), KeyTiles.TILE, storedKeys, j * d, d);
            }
            Codec.decode(v, dtype, 0, storedValues, 0, n * d);
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                float[] out = run(kernels, k, v, dtype, n, d, q, group, (float) scale, null, 0);
                for (int g = 0; g < group; g++) {
                    double[] stored = Reference.attention(q, g * d, storedKeys, storedValues, n, d, scale, null);
                    double err = Reference.relativeError(out, g * d, stored);
                    assertTrue(err <= 1e-5, kernels.name() + " head " + g + " relative error " + err
                            + " against the stored values, seed " + seed);
                    double[] given = Reference.attention(q, g * d, keys, values, n, d, scale, null);
                    double inputErr = Reference.relativeError(out, g * d, given);
                    assertTrue(inputErr <= inputTolerance, kernels.name() + " head " + g + " relative error "
                            + inputErr + " > " + inputTolerance + " against the inputs, seed " + seed);
                }
            }
            float[] a = run(SCALAR, k, v, dtype, n, d, q, group, (float) scale, null, 0);
            float[] b = run(PANAMA, k, v, dtype, n, d, q, group, (float) scale, null, 0);
            for (int i = 0; i < a.length; i++) {
                assertEquals(a[i], b[i], 1e-5 * (1 + Math.abs(a[i])), "scalar and vector differ at " + i + ", seed " + seed);
            }
        }
    }

    /**
     * Three chunks whose scores rise from chunk to chunk, so the running maximum is raised twice
     * and the outputs, sums and kept weights gathered before are rescaled; a third of the slots
     * are masked. The kept weights, normalised, must be the float64 softmax.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dtypes")
    void weightsAcrossChunksMatchFloat64(DType dtype) {
        long seed = Seeds.fresh("weightsAcrossChunksMatchFloat64 " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        int n = 2 * PanamaKernels.CHUNK + 300;
        int d = 64;
        int group = 4;
        float[] keys = Seeds.uniform(r, n * d, 1.0);
        float[] values = Seeds.uniform(r, n * d, 1.0);
        float[] q = Seeds.uniform(r, group * d, 1.0);
        for (int j = 0; j < n; j++) {
            keys[j * d] = 4f * j / PanamaKernels.CHUNK; // later chunks score higher for q[0] > 0
        }
        for (int g = 0; g < group; g++) {
            q[g * d] = 2f + g;
        }
        int[] positions = new int[n];
        boolean[] visible = new boolean[n];
        for (int j = 0; j < n; j++) {
            positions[j] = r.nextInt(3) == 0 ? n + j : j;
            visible[j] = positions[j] <= n;
        }
        double scale = 1 / Math.sqrt(d);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = storeKeys(arena, keys, n, d, dtype);
            MemorySegment v = storeValues(arena, values, n, d, dtype);
            float[] stored = new float[n * d];
            for (int j = 0; j < n; j++) {
                Codec.decode(k, dtype, KeyTiles.keyIndex(j, 0, d), KeyTiles.TILE, stored, j * d, d);
            }
            float[] storedValues = new float[n * d];
            Codec.decode(v, dtype, 0, storedValues, 0, n * d);
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                int stride = KeyTiles.roundToTiles(n);
                float[] w = new float[group * stride];
                float[] ms = new float[2 * group];
                float[] out = new float[group * d];
                kernels.attend(new AttentionCall(d).slots(blocks(arena, k, n, d, dtype), blocks(arena, v, n, d, dtype), dtype, n).queries(q, 0, group, (float) scale)
                        .mask(positions, n).weights(w, stride, true).output(out, 0, ms));
                for (int g = 0; g < group; g++) {
                    double[] s = new double[n];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) {
                        double dot = 0;
                        for (int i = 0; i < d; i++) {
                            dot += (double) q[g * d + i] * stored[j * d + i];
                        }
                        s[j] = visible[j] ? dot * scale : Double.NEGATIVE_INFINITY;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < n; j++) {
                        sum += Math.exp(s[j] - max);
                    }
                    assertEquals(max, ms[2 * g], 1e-5 * Math.abs(max), kernels.name() + " max of head " + g + ", seed " + seed);
                    assertEquals(sum, ms[2 * g + 1], 1e-5 * sum, kernels.name() + " sum of head " + g + ", seed " + seed);
                    for (int j = 0; j < n; j++) {
                        double expected = Math.exp(s[j] - max) / sum;
                        assertEquals(expected, w[g * stride + j] / ms[2 * g + 1], 1e-6 + 1e-5 * expected,
                                kernels.name() + " weight " + j + " of head " + g + ", seed " + seed);
                    }
                    double[] ref = Reference.attention(q, g * d, stored, storedValues, n, d, scale, visible);
                    float[] normalised = new float[d];
                    for (int i = 0; i < d; i++) {
                        normalised[i] = out[g * d + i] / ms[2 * g + 1];
                    }
                    double err = Reference.relativeError(normalised, 0, ref);
                    assertTrue(err <= 1e-5, kernels.name() + " head " + g + " relative error " + err + ", seed " + seed);
                }
            }
        }
    }

    static Stream<DType> dtypes() {
        return Stream.of(ELEMENTWISE);
    }

    @Test
    void maskedSlotsGetZeroWeight() {
        long seed = Seeds.fresh("maskedSlotsGetZeroWeight");
        SplittableRandom r = new SplittableRandom(seed);
        int n = 45;
        int d = 80;
        int group = 2;
        float[] keys = Seeds.uniform(r, n * d, 1.0);
        float[] values = Seeds.uniform(r, n * d, 1.0);
        float[] q = Seeds.uniform(r, group * d, 2.0);
        int[] positions = new int[n];
        boolean[] visible = new boolean[n];
        for (int j = 0; j < n; j++) {
            positions[j] = r.nextInt(100);
            visible[j] = positions[j] <= 50;
        }
        positions[0] = 3;
        visible[0] = true;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = storeKeys(arena, keys, n, d, DType.F32);
            MemorySegment v = storeValues(arena, values, n, d, DType.F32);
            double scale = 1 / Math.sqrt(d);
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                float[] out = run(kernels, k, v, DType.F32, n, d, q, group, (float) scale, positions, 50);
                for (int g = 0; g < group; g++) {
                    double[] ref = Reference.attention(q, g * d, keys, values, n, d, scale, visible);
                    double err = Reference.relativeError(out, g * d, ref);
                    assertTrue(err <= 1e-5, kernels.name() + " relative error " + err + ", seed " + seed);
                }
            }
        }
    }

    @Test
    void halfWideningIsExactForEveryBitPattern() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(1 << 17);
            for (int i = 0; i < 1 << 16; i++) {
                seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) i);
            }
            float[] wide = new float[1 << 16];
            for (DType t : new DType[] {DType.F16, DType.BF16}) {
                PanamaHalf.widenRow(seg, t, 0, 1 << 16, wide, 0);
                for (int i = 0; i < 1 << 16; i++) {
                    float expected = t == DType.F16 ? Float.float16ToFloat((short) i) : Codec.bf16ToFloat((short) i);
                    if (Float.isNaN(expected)) {
                        assertTrue(Float.isNaN(wide[i]), t + " bits " + Integer.toHexString(i));
                    } else {
                        assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(wide[i]),
                                t + " bits " + Integer.toHexString(i));
                    }
                }
            }
        }
    }

    /**
     * The half-precision attention kernels widen in registers. Every finite F16 bit pattern (the
     * cache stores no others) and every BF16 pattern must come out exactly.
     */
    @Test
    void inRegisterWideningIsExactForEveryStorablePattern() {
        int lanes = PanamaLanes.L;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(1 << 17);
            for (int i = 0; i < 1 << 16; i++) {
                seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) i);
            }
            float[] wide = new float[lanes];
            int checked = 0;
            for (DType t : new DType[] {DType.F16, DType.BF16}) {
                for (int i = 0; i < 1 << 16; i += lanes) {
                    PanamaHalf.loadHalfForTest(seg, t, i, wide);
                    for (int k = 0; k < lanes; k++) {
                        short bits = (short) (i + k);
                        if (t == DType.F16 && ((bits >> 10) & 0x1f) == 0x1f) {
                            continue; // F16 infinities and NaN are never stored
                        }
                        float expected = t == DType.F16 ? Float.float16ToFloat(bits) : Codec.bf16ToFloat(bits);
                        if (Float.isNaN(expected)) {
                            assertTrue(Float.isNaN(wide[k]), t + " bits " + Integer.toHexString(i + k));
                        } else {
                            assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(wide[k]),
                                    t + " bits " + Integer.toHexString(i + k));
                        }
                        checked++;
                    }
                }
            }
            assertEquals(2 * 65536 - 2048, checked);
        }
    }

    @Test
    void vectorExpIsWithinTwoUlpOfMathExp() {
        long seed = Seeds.fresh("vectorExpIsWithinTwoUlpOfMathExp");
        SplittableRandom r = new SplittableRandom(seed);
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        float[] x = new float[lanes];
        float[] y = new float[lanes];
        for (int round = 0; round < 200_000; round++) {
            for (int i = 0; i < lanes; i++) {
                x[i] = round % 2 == 0 ? (float) (-r.nextDouble() * 87.3) : (float) (-r.nextDouble() * 2);
            }
            if (round == 0) {
                x[0] = 0f;
                x[1] = -0f;
                x[2] = Float.NEGATIVE_INFINITY;
                x[3] = -200f;
                x[4] = -87.33654f;
            }
            PanamaSoftmax.expNonPositive(jdk.incubator.vector.FloatVector.fromArray(
                    jdk.incubator.vector.FloatVector.SPECIES_PREFERRED, x, 0)).intoArray(y, 0);
            for (int i = 0; i < lanes; i++) {
                double exact = Math.exp(x[i]);
                if (exact < Float.MIN_NORMAL) {
                    assertTrue(y[i] >= 0 && y[i] <= Float.MIN_NORMAL, "exp(" + x[i] + ") = " + y[i]);
                } else {
                    assertEquals(exact, y[i], 2 * Math.ulp((float) exact), "exp(" + x[i] + "), seed " + seed);
                }
            }
        }
    }

    @Test
    void dotAndNormMatchFloat64() {
        long seed = Seeds.fresh("dotAndNormMatchFloat64");
        SplittableRandom r = new SplittableRandom(seed);
        for (int n : new int[] {1, 15, 16, 17, 64, 80, 128, 1001}) {
            float[] a = Seeds.uniform(r, n + 3, 1.0);
            float[] b = Seeds.uniform(r, n + 5, 1.0);
            double dot = 0;
            double sq = 0;
            double mag = 0;
            for (int i = 0; i < n; i++) {
                dot += (double) a[3 + i] * b[5 + i];
                sq += (double) a[3 + i] * a[3 + i];
                mag += Math.abs((double) a[3 + i] * b[5 + i]);
            }
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                assertEquals(dot, kernels.dot(a, 3, b, 5, n), 1e-6 * mag, kernels.name() + " dot n=" + n + ", seed " + seed);
                assertEquals(Math.sqrt(sq), kernels.l2Norm(a, 3, n), 1e-6 * Math.sqrt(sq), kernels.name() + " norm n=" + n);
            }
        }
    }

    @Test
    void largeScoresStayFinite() {
        int n = 9;
        int d = 64;
        float[] keys = new float[n * d];
        float[] values = new float[n * d];
        float[] q = new float[d];
        for (int j = 0; j < n; j++) {
            keys[j * d] = (j - 4) * 1000f;
            values[j * d + 1] = j;
        }
        q[0] = 80f; // scores up to |q·k|/sqrt(d) = 80 * 4000 / 8 = 4e4
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = storeKeys(arena, keys, n, d, DType.F32);
            MemorySegment v = storeValues(arena, values, n, d, DType.F32);
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                float[] out = run(kernels, k, v, DType.F32, n, d, q, 1, 0.125f, null, 0);
                assertEquals(8f, out[1], 1e-6, kernels.name() + ": the largest score takes all the weight");
            }
        }
    }

    /** Tests run with {@code -ea}: a weight stride short of the tiled slots fails at the kernel's entry, naming both. */
    @Test
    void assertsThatTheWeightStrideCoversTheTiledSlots() {
        int n = 70;
        int d = 64;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = storeKeys(arena, new float[n * d], n, d, DType.F32);
            MemorySegment v = storeValues(arena, new float[n * d], n, d, DType.F32);
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                AttentionCall call = new AttentionCall(d).slots(blocks(arena, k, n, d, DType.F32), blocks(arena, v, n, d, DType.F32), DType.F32, n).queries(new float[d], 0, 1, 1f)
                        .mask(null, 0).weights(new float[2 * KeyTiles.TILE], KeyTiles.TILE, false)
                        .output(new float[d], 0, new float[2]);
                AssertionError e = assertThrows(AssertionError.class, () -> kernels.attend(call), kernels.name());
                assertEquals("stride 64 is less than roundToTiles(n) = 128", e.getMessage(), kernels.name());
            }
        }
    }

    /** Keys in the tiled layout of {@link KeyTiles}, with garbage in the unused lanes of the last tile. */
    static MemorySegment storeKeys(Arena arena, float[] keys, int n, int d, DType dtype) {
        MemorySegment k = arena.allocate((long) KeyTiles.roundToTiles(n) * d * dtype.bytes(), 64);
        k.fill((byte) 0x7f);
        for (int j = 0; j < n; j++) {
            Codec.encode(keys, j * d, k, dtype, KeyTiles.keyIndex(j, 0, d), KeyTiles.TILE, d);
        }
        return k;
    }

    /**
     * Splits stored keys (tiled) or values (rows) into a block table of one tile each, every block
     * copied to a separate allocation, allocated in reverse order so that the blocks do not lie in
     * slot order in memory (as blocks from a shared pool do not).
     */
    static MemorySegment[] blocks(Arena arena, MemorySegment stored, int n, int d, DType dtype) {
        long tileBytes = (long) KeyTiles.TILE * d * dtype.bytes();
        int count = KeyTiles.roundToTiles(n) / KeyTiles.TILE;
        MemorySegment[] table = new MemorySegment[count];
        for (int i = count - 1; i >= 0; i--) {
            table[i] = arena.allocate(tileBytes, 64);
            long from = i * tileBytes;
            MemorySegment.copy(stored, from, table[i], 0, Math.min(tileBytes, stored.byteSize() - from));
        }
        return table;
    }

    static MemorySegment storeValues(Arena arena, float[] values, int n, int d, DType dtype) {
        MemorySegment v = arena.allocate((long) n * d * dtype.bytes(), 64);
        Codec.encode(values, 0, v, dtype, 0, n * d);
        return v;
    }

    private static float[] run(Kernels kernels, MemorySegment k, MemorySegment v, DType dtype, int n, int d,
                               float[] q, int group, float scale, int[] positions, int queryPosition) {
        int stride = KeyTiles.roundToTiles(n) + KeyTiles.TILE;
        float[] w = new float[group * stride];
        float[] ms = new float[2 * group];
        float[] out = new float[group * d];
        try (Arena arena = Arena.ofConfined()) {
            kernels.attend(new AttentionCall(d).slots(blocks(arena, k, n, d, dtype), blocks(arena, v, n, d, dtype), dtype, n)
                    .queries(q, 0, group, scale).mask(positions, queryPosition).weights(w, stride, true)
                    .output(out, 0, ms));
        }
        for (int g = 0; g < group; g++) {
            for (int i = 0; i < d; i++) {
                out[g * d + i] /= ms[2 * g + 1];
            }
        }
        return out;
    }
}
