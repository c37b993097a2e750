package io.github.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link HadamardRotation} against its float64 definition, and what it does for 4-bit quantization. */
class HadamardRotationTest {

    private static final double U = 0x1p-24;
    private static final int[] HEAD_DIMS = {128, 96, 80, 64, 256, 2, 1};

    /** Float64 {@code H·D·x / √b} from the documented definition. */
    private static double[] reference(int headDim, long seed, float[] x) {
        int b = Integer.lowestOneBit(headDim);
        SplittableRandom signs = new SplittableRandom(seed);
        double[] s = new double[headDim];
        for (int i = 0; i < headDim; i++) {
            s[i] = signs.nextBoolean() ? 1 : -1;
        }
        double[] y = new double[headDim];
        for (int start = 0; start < headDim; start += b) {
            for (int i = 0; i < b; i++) {
                double sum = 0;
                for (int j = 0; j < b; j++) {
                    sum += (Integer.bitCount(i & j) % 2 == 0 ? 1 : -1) * s[start + j] * x[start + j];
                }
                y[start + i] = sum / Math.sqrt(b);
            }
        }
        return y;
    }

    private static double norm(float[] x) {
        double s = 0;
        for (float v : x) {
            s += (double) v * v;
        }
        return Math.sqrt(s);
    }

    /** Rounding of {@code log2 b} butterfly passes and one scaling, relative to {@code ‖x‖}. */
    private static double tolerance(HadamardRotation rotation) {
        return (Integer.numberOfTrailingZeros(rotation.blockSize()) + 2) * U;
    }

    @Test
    void rotatesByTheDocumentedMatrix() {
        long seed = Seeds.fresh("rotatesByTheDocumentedMatrix");
        SplittableRandom r = new SplittableRandom(seed);
        for (int headDim : HEAD_DIMS) {
            long signSeed = r.nextLong();
            HadamardRotation rotation = new HadamardRotation(headDim, signSeed);
            assertEquals(Integer.lowestOneBit(headDim), rotation.blockSize());
            float[] x = QuantizedFormatsTest.gaussian(r, headDim, 3);
            double[] want = reference(headDim, signSeed, x);
            double bound = tolerance(rotation) * norm(x);
            float[] got = x.clone();
            rotation.rotate(got, 0);
            for (int i = 0; i < headDim; i++) {
                assertEquals(want[i], got[i], bound, "headDim " + headDim + " element " + i + ", seed " + seed);
            }
        }
    }

    @Test
    void keepsEveryDotProductAndInvertsItself() {
        long seed = Seeds.fresh("keepsEveryDotProductAndInvertsItself");
        SplittableRandom r = new SplittableRandom(seed);
        for (int headDim : HEAD_DIMS) {
            HadamardRotation rotation = new HadamardRotation(headDim, r.nextLong());
            for (int trial = 0; trial < 50; trial++) {
                float[] q = QuantizedFormatsTest.gaussian(r, headDim, 2);
                float[] k = QuantizedFormatsTest.gaussian(r, headDim, 2);
                k[r.nextInt(headDim)] *= 50;
                double want = 0;
                for (int i = 0; i < headDim; i++) {
                    want += (double) q[i] * k[i];
                }
                float[] rq = q.clone();
                float[] rk = k.clone();
                rotation.rotate(rq, 0);
                rotation.rotate(rk, 0);
                double got = 0;
                for (int i = 0; i < headDim; i++) {
                    got += (double) rq[i] * rk[i];
                }
                String what = "headDim " + headDim + ", seed " + seed;
                assertEquals(want, got, 2 * tolerance(rotation) * norm(q) * norm(k), what);
                rotation.unrotate(rk, 0);
                for (int i = 0; i < headDim; i++) {
                    assertEquals(k[i], rk[i], 2 * tolerance(rotation) * norm(k), what + " element " + i);
                }
            }
        }
    }

    @Test
    void rowsNearTheFloatRangeStayFinite() {
        HadamardRotation rotation = new HadamardRotation(128, 7);
        float[] x = new float[128];
        x[5] = Float.MAX_VALUE;
        float[] spread = new float[128];
        Arrays.fill(spread, Float.MAX_VALUE / 12);
        for (float[] row : new float[][] {x, spread}) {
            float[] y = row.clone();
            rotation.rotate(y, 0);
            rotation.unrotate(y, 0);
            for (int i = 0; i < 128; i++) {
                assertEquals(row[i], y[i], 4 * tolerance(rotation) * Float.MAX_VALUE, "element " + i);
            }
        }
    }

    @Test
    void rejectsAnEmptyRow() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new HadamardRotation(0, 1));
        assertEquals("headDim must be > 0, got 0", e.getMessage());
    }

    @Test
    void rotationCutsTheFourBitErrorOfRowsWithAnOutlierChannel() {
        long seed = Seeds.fresh("rotationCutsTheFourBitErrorOfRowsWithAnOutlierChannel");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 128;
        HadamardRotation rotation = new HadamardRotation(d, r.nextLong());
        int channel = r.nextInt(d);
        double[] plain = new double[2];
        double[] rotated = new double[2];
        MemorySegment q4 = MemorySegment.ofArray(new byte[(int) Q4.rowBytes(d)]);
        MemorySegment q8 = MemorySegment.ofArray(new byte[(int) Q8.rowBytes(d)]);
        for (int row = 0; row < 256; row++) {
            float[] x = QuantizedFormatsTest.gaussian(r, d, 1);
            x[channel] = (float) ((r.nextBoolean() ? 1 : -1) * (20 + 80 * r.nextDouble()));
            for (int format = 0; format < 2; format++) {
                plain[format] += squaredError(x, x.clone(), format == 0 ? q4 : q8, format, null);
                rotated[format] += squaredError(x, x.clone(), format == 0 ? q4 : q8, format, rotation);
            }
        }
        System.out.printf("squared error over 256 rows with an outlier channel: Q4 %.1f plain, %.1f rotated;"
                + " Q8 %.3f plain, %.3f rotated%n", plain[0], rotated[0], plain[1], rotated[1]);
        assertTrue(rotated[0] < 0.4 * plain[0], "Q4 rotated " + rotated[0] + " vs plain " + plain[0] + ", seed " + seed);
        assertTrue(rotated[1] < 0.4 * plain[1], "Q8 rotated " + rotated[1] + " vs plain " + plain[1] + ", seed " + seed);
    }

    /** Returns {@code ‖x − decoded‖²} in float64, quantizing {@code work} (a copy of x) in the rotated basis if given. */
    private static double squaredError(float[] x, float[] work, MemorySegment bytes, int format,
                                       HadamardRotation rotation) {
        int d = x.length;
        if (rotation != null) {
            rotation.rotate(work, 0);
        }
        if (format == 0) {
            Q4.encode(work, 0, d, bytes, 0);
            Q4.decode(bytes, 0, d, work, 0);
        } else {
            Q8.encode(work, 0, d, bytes, 0);
            Q8.decode(bytes, 0, d, work, 0);
        }
        if (rotation != null) {
            rotation.unrotate(work, 0);
        }
        double e = 0;
        for (int i = 0; i < d; i++) {
            double diff = (double) x[i] - work[i];
            e += diff * diff;
        }
        return e;
    }
}
