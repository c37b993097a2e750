package io.github.kvcache4j.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Both twins of the quantized-row kernels against float64 over random rows written byte by byte
 * in the layout of {@link QuantizedLayout}: random scales over twelve decades, minima and codes.
 */
class QuantizedRowsTest {

    private static final double U = 0x1p-24;
    private static final int[] HEAD_DIMS = {32, 64, 128, 256};
    private static final int ROWS = 3;

    /** A segment of {@value #ROWS} random rows and their exact values in float64. */
    private record Rows(MemorySegment bytes, long rowBytes, double[][] values, double[][] magnitudes) {
    }

    private static float randomScale(SplittableRandom r) {
        return (float) Math.pow(10, r.nextDouble(-6, 6));
    }

    private static Rows q8Rows(SplittableRandom r, int headDim) {
        long rowBytes = (long) headDim / 32 * QuantizedLayout.Q8_GROUP_BYTES;
        MemorySegment seg = MemorySegment.ofArray(new byte[(int) (ROWS * rowBytes)]);
        double[][] values = new double[ROWS][headDim];
        for (int row = 0; row < ROWS; row++) {
            for (int g = 0; g < headDim / 32; g++) {
                long at = row * rowBytes + (long) g * QuantizedLayout.Q8_GROUP_BYTES;
                float d = randomScale(r);
                seg.set(QuantizedLayout.F32, at + QuantizedLayout.Q8_SCALE, d);
                for (int i = 0; i < 32; i++) {
                    int c = r.nextInt(-127, 128);
                    seg.set(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q8_CODES + i, (byte) c);
                    values[row][g * 32 + i] = (double) d * c;
                }
            }
        }
        return new Rows(seg, rowBytes, values, abs(values));
    }

    private static Rows q4Rows(SplittableRandom r, int headDim) {
        long rowBytes = (long) headDim / 32 * QuantizedLayout.Q4_GROUP_BYTES;
        MemorySegment seg = MemorySegment.ofArray(new byte[(int) (ROWS * rowBytes)]);
        double[][] values = new double[ROWS][headDim];
        double[][] magnitudes = new double[ROWS][headDim];
        for (int row = 0; row < ROWS; row++) {
            for (int g = 0; g < headDim / 32; g++) {
                long at = row * rowBytes + (long) g * QuantizedLayout.Q4_GROUP_BYTES;
                float d = randomScale(r);
                float m = (float) (-15 * d * r.nextDouble(-1, 2));
                seg.set(QuantizedLayout.F32, at + QuantizedLayout.Q4_SCALE, d);
                seg.set(QuantizedLayout.F32, at + QuantizedLayout.Q4_MIN, m);
                int[] codes = r.ints(32, 0, 16).toArray();
                for (int j = 0; j < 16; j++) {
                    seg.set(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q4_CODES + j, (byte) (codes[j] | codes[j + 16] << 4));
                }
                for (int i = 0; i < 32; i++) {
                    values[row][g * 32 + i] = m + (double) d * codes[i];
                    magnitudes[row][g * 32 + i] = Math.abs(m) + (double) d * codes[i];
                }
            }
        }
        return new Rows(seg, rowBytes, values, magnitudes);
    }

    private static double[][] abs(double[][] a) {
        double[][] b = new double[a.length][];
        for (int i = 0; i < a.length; i++) {
            b[i] = a[i].clone();
            for (int j = 0; j < b[i].length; j++) {
                b[i][j] = Math.abs(b[i][j]);
            }
        }
        return b;
    }

    /** A dot-product kernel under test. */
    @FunctionalInterface
    private interface Dot {
        float dot(float[] q, int qOff, MemorySegment row, long rowOff, int headDim);
    }

    /** A weighted-accumulate kernel under test. */
    @FunctionalInterface
    private interface Accumulate {
        void accumulate(float w, MemorySegment row, long rowOff, float[] acc, int accOff, int headDim);
    }

    private static void checkDot(String name, Dot scalar, Dot vector, boolean q4, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int headDim : HEAD_DIMS) {
            for (int trial = 0; trial < 50; trial++) {
                Rows rows = q4 ? q4Rows(r, headDim) : q8Rows(r, headDim);
                int qOff = r.nextInt(8);
                float[] q = new float[qOff + headDim];
                for (int i = qOff; i < q.length; i++) {
                    q[i] = (float) r.nextGaussian() * 3;
                }
                int row = r.nextInt(ROWS);
                double want = 0;
                double magnitude = 0;
                for (int i = 0; i < headDim; i++) {
                    want += q[qOff + i] * rows.values[row][i];
                    magnitude += Math.abs(q[qOff + i]) * rows.magnitudes[row][i];
                }
                // Each value meets at most headDim / 2 + 8 roundings of magnitude at most its own term.
                double bound = (headDim + 8) * U * magnitude;
                String what = name + " headDim " + headDim + ", seed " + seed;
                assertEquals(want, scalar.dot(q, qOff, rows.bytes, row * rows.rowBytes, headDim), bound, "scalar " + what);
                assertEquals(want, vector.dot(q, qOff, rows.bytes, row * rows.rowBytes, headDim), bound, "vector " + what);
            }
        }
    }

    private static void checkAccumulate(String name, Accumulate scalar, Accumulate vector, boolean q4, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int headDim : HEAD_DIMS) {
            for (int trial = 0; trial < 50; trial++) {
                Rows rows = q4 ? q4Rows(r, headDim) : q8Rows(r, headDim);
                int accOff = r.nextInt(8);
                float[] acc = new float[accOff + headDim + 3];
                for (int i = 0; i < acc.length; i++) {
                    acc[i] = (float) r.nextGaussian();
                }
                float w = (float) r.nextDouble(-2, 2);
                int row = r.nextInt(ROWS);
                float[] got = acc.clone();
                float[] twin = acc.clone();
                scalar.accumulate(w, rows.bytes, row * rows.rowBytes, got, accOff, headDim);
                vector.accumulate(w, rows.bytes, row * rows.rowBytes, twin, accOff, headDim);
                String what = name + " headDim " + headDim + ", seed " + seed;
                assertArrayEquals(got, twin, "the twins round alike: " + what);
                for (int i = 0; i < acc.length; i++) {
                    boolean inRow = i >= accOff && i < accOff + headDim;
                    double want = acc[i] + (inRow ? w * rows.values[row][i - accOff] : 0);
                    double term = inRow ? Math.abs(w) * rows.magnitudes[row][i - accOff] : 0;
                    assertEquals(want, got[i], 3 * U * term + 2 * U * Math.abs(want), what + " element " + i);
                }
            }
        }
    }

    @Test
    void q8DotMatchesFloat64() {
        checkDot("q8", QuantizedRows::dotQ8, PanamaQuantizedRows::dotQ8, false, Seeds.fresh("q8DotMatchesFloat64"));
    }

    @Test
    void q4DotMatchesFloat64() {
        checkDot("q4", QuantizedRows::dotQ4, PanamaQuantizedRows::dotQ4, true, Seeds.fresh("q4DotMatchesFloat64"));
    }

    @Test
    void q8AccumulateMatchesFloat64() {
        checkAccumulate("q8", QuantizedRows::accumulateQ8, PanamaQuantizedRows::accumulateQ8, false,
                Seeds.fresh("q8AccumulateMatchesFloat64"));
    }

    @Test
    void q4AccumulateMatchesFloat64() {
        checkAccumulate("q4", QuantizedRows::accumulateQ4, PanamaQuantizedRows::accumulateQ4, true,
                Seeds.fresh("q4AccumulateMatchesFloat64"));
    }
}
