package io.github.kvcache4j.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.Q4;
import io.github.kvcache4j.store.Q8;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Decode attention over Q8 and Q4 rows, both twins, against float64 attention over the
 * dequantized rows: the kernels add no error beyond the format's (relative error at most 1e-5).
 */
class QuantizedAttentionTest {

    private static final Kernels SCALAR = KernelProvider.scalar();
    private static final Kernels PANAMA = KernelProvider.panama();

    static Stream<Arguments> shapes() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (DType t : new DType[] {DType.Q8, DType.Q4}) {
            for (int d : new int[] {32, 64, 96, 128, 256}) {
                for (int group : new int[] {1, 2, 3, 4, 5, 8}) {
                    // Blocks of 1, 7, 19, 12 and 64 rows: quads and vector tiles with and without a remainder.
                    for (int n : new int[] {1, 7, 65, 83, 1100}) {
                        b.add(Arguments.of(t, d, group, n));
                    }
                }
            }
        }
        return b.build();
    }

    /** Rows of {@code n × d} values: mostly uniform, some rows with an outlier channel, some all zero. */
    private static float[] rows(SplittableRandom r, int n, int d) {
        float[] x = Seeds.uniform(r, n * d, 1.0);
        for (int j = 0; j < n; j++) {
            int kind = r.nextInt(10);
            if (kind == 0) {
                x[j * d + r.nextInt(d)] = (float) (r.nextBoolean() ? 20 : -20);
            } else if (kind == 1) {
                java.util.Arrays.fill(x, j * d, (j + 1) * d, 0f);
            }
        }
        return x;
    }

    @ParameterizedTest(name = "{0} d={1} group={2} n={3}")
    @MethodSource("shapes")
    void attentionMatchesFloat64OverTheDequantizedRows(DType dtype, int d, int group, int n) {
        long seed = Seeds.fresh("quantized attention " + dtype + " d=" + d + " g=" + group + " n=" + n);
        SplittableRandom r = new SplittableRandom(seed);
        float[] keys = rows(r, n, d);
        float[] values = rows(r, n, d);
        float[] q = Seeds.uniform(r, group * d, 2.0);
        int[] positions = null;
        boolean[] visible = null;
        if (r.nextBoolean() && n > 1) {
            positions = new int[n];
            visible = new boolean[n];
            for (int j = 0; j < n; j++) {
                positions[j] = j == 0 ? 0 : r.nextInt(2 * n);
                visible[j] = positions[j] <= n;
            }
        }
        double scale = 1 / Math.sqrt(d);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] k = blocks(arena, keys, n, d, dtype);
            MemorySegment[] v = blocks(arena, values, n, d, dtype);
            float[] storedKeys = decode(k, n, d, dtype);
            float[] storedValues = decode(v, n, d, dtype);
            float[][] outs = new float[2][];
            int t = 0;
            for (Kernels kernels : new Kernels[] {SCALAR, PANAMA}) {
                int stride = KeyTiles.roundToTiles(n) + KeyTiles.TILE;
                float[] w = new float[group * stride];
                float[] ms = new float[2 * group];
                float[] out = new float[group * d];
                kernels.attend(new AttentionCall(d).slots(k, v, dtype, n).queries(q, 0, group, (float) scale)
                        .mask(positions, n).weights(w, stride, true).output(out, 0, ms));
                for (int g = 0; g < group; g++) {
                    for (int i = 0; i < d; i++) {
                        out[g * d + i] /= ms[2 * g + 1];
                    }
                    double[] ref = Reference.attention(q, g * d, storedKeys, storedValues, n, d, scale, visible);
                    double err = Reference.relativeError(out, g * d, ref);
                    assertTrue(err <= 1e-5, kernels.name() + " head " + g + " relative error " + err
                            + " against the dequantized rows, seed " + seed);
                }
                outs[t++] = out;
            }
            for (int i = 0; i < outs[0].length; i++) {
                assertEquals(outs[0][i], outs[1][i], 1e-5 * (1 + Math.abs(outs[0][i])),
                        "scalar and vector differ at " + i + ", seed " + seed);
            }
        }
    }

    /**
     * Encodes {@code n} rows into a block table of one pool block's rows each, allocated in reverse
     * order (blocks of a shared pool do not lie in slot order), with garbage after the last row.
     */
    static MemorySegment[] blocks(Arena arena, float[] rows, int n, int d, DType dtype) {
        long rowBytes = dtype.rowBytes(d);
        int count = KeyTiles.roundToTiles(n) / KeyTiles.TILE;
        MemorySegment[] table = new MemorySegment[count];
        for (int i = count - 1; i >= 0; i--) {
            table[i] = arena.allocate(KeyTiles.TILE * rowBytes, 64);
            table[i].fill((byte) 0x7f);
        }
        for (int j = 0; j < n; j++) {
            MemorySegment block = table[j / KeyTiles.TILE];
            long at = (j % KeyTiles.TILE) * rowBytes;
            if (dtype == DType.Q8) {
                Q8.encode(rows, j * d, d, block, at);
            } else {
                Q4.encode(rows, j * d, d, block, at);
            }
        }
        return table;
    }

    /** The rows as the format gives them back. */
    static float[] decode(MemorySegment[] table, int n, int d, DType dtype) {
        long rowBytes = dtype.rowBytes(d);
        float[] out = new float[n * d];
        for (int j = 0; j < n; j++) {
            MemorySegment block = table[j / KeyTiles.TILE];
            long at = (j % KeyTiles.TILE) * rowBytes;
            if (dtype == DType.Q8) {
                Q8.decode(block, at, d, out, j * d);
            } else {
                Q4.decode(block, at, d, out, j * d);
            }
        }
        return out;
    }
}
