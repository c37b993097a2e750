package io.github.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link Q8} and {@link Q4}: the documented byte layout, and per-element error bounds derived from the format. */
class QuantizedFormatsTest {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int D = 128;

    /** Rows of every kind the bounds must hold for, {@code headDim} {@value #D}. */
    static Map<String, float[]> rows(SplittableRandom r) {
        Map<String, float[]> rows = new LinkedHashMap<>();
        rows.put("gaussian", gaussian(r, D, 1));
        rows.put("wide gaussian", gaussian(r, D, 1e4));
        rows.put("zeros", new float[D]);
        float[] outlier = gaussian(r, D, 1);
        outlier[r.nextInt(D)] = (float) (r.nextBoolean() ? 1e3 : -1e3);
        rows.put("one outlier", outlier);
        float[] subnormal = new float[D];
        for (int i = 0; i < D; i++) {
            subnormal[i] = (float) ((r.nextDouble() * 2 - 1) * Float.MIN_NORMAL / 64);
        }
        rows.put("subnormal", subnormal);
        float[] deepSubnormal = new float[D];
        for (int i = 0; i < D; i++) {
            deepSubnormal[i] = Float.MIN_VALUE * r.nextInt(-40, 41);
        }
        rows.put("deep subnormal", deepSubnormal);
        float[] constant = new float[D];
        Arrays.fill(constant, (float) (r.nextDouble() * 20 - 10));
        rows.put("constant", constant);
        float[] extreme = new float[D];
        for (int i = 0; i < D; i++) {
            extreme[i] = r.nextBoolean() ? Float.MAX_VALUE : -Float.MAX_VALUE;
        }
        extreme[r.nextInt(D)] = 0;
        rows.put("float extremes", extreme);
        float[] mixed = gaussian(r, D, 1e-30);
        mixed[r.nextInt(D)] = 1e30f;
        rows.put("tiny and huge", mixed);
        return rows;
    }

    static float[] gaussian(SplittableRandom r, int n, double sigma) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double u = 1 - r.nextDouble();
            a[i] = (float) (sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.nextDouble()));
        }
        return a;
    }

    @Test
    void rowBytesFollowTheLayout() {
        assertEquals(144, Q8.rowBytes(128));
        assertEquals(96, Q4.rowBytes(128));
        assertEquals(36, Q8.rowBytes(32));
        assertEquals(24, Q4.rowBytes(32));
        for (int bad : new int[] {0, -32, 48, 100}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Q8.rowBytes(bad));
            assertEquals("headDim must be a positive multiple of 32, got " + bad, e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Q4.rowBytes(bad));
        }
    }

    @Test
    void q8WritesTheDocumentedBytes() {
        float[] x = new float[64];
        for (int i = 0; i < 64; i++) {
            x[i] = i < 32 ? i - 16 : 0.5f * (i - 40);
        }
        byte[] bytes = new byte[(int) Q8.rowBytes(64)];
        Q8.encode(x, 0, 64, MemorySegment.ofArray(bytes), 0);
        MemorySegment seg = MemorySegment.ofArray(bytes);
        for (int g = 0; g < 2; g++) {
            double amax = g == 0 ? 16 : 11.5;
            float d = seg.get(F32, g * 36L);
            assertEquals((float) (amax / 127), d, Math.ulp(d), "scale of group " + g);
            assertTrue(d <= amax / 127, "rounded down");
            for (int i = 0; i < 32; i++) {
                assertEquals(Math.rint(x[g * 32 + i] / (double) d), bytes[g * 36 + 4 + i], "code " + (g * 32 + i));
            }
        }
    }

    @Test
    void q4WritesTheDocumentedBytes() {
        float[] x = new float[32];
        for (int i = 0; i < 32; i++) {
            x[i] = 3 - i;
        }
        byte[] bytes = new byte[(int) Q4.rowBytes(32)];
        MemorySegment seg = MemorySegment.ofArray(bytes);
        Q4.encode(x, 0, 32, seg, 0);
        float d = seg.get(F32, 0);
        assertTrue(d <= 31.0 / 15 && Math.nextUp(d) > 31.0 / 15, "scale " + d);
        assertEquals(-28f, seg.get(F32, 4), "minimum");
        for (int j = 0; j < 16; j++) {
            long low = Math.round((x[j] + 28.0) / d);
            long high = Math.round((x[j + 16] + 28.0) / d);
            assertEquals(low | high << 4, bytes[8 + j] & 0xFF, "byte " + j);
        }
    }

    /** Asserts the formats' bound {@code |x_i − y_i| ≤ d/2 + maxCode·ulp(d) + ulp(y_i)/2} over group {@code g}. */
    private static void assertGroupWithinBound(float[] x, float[] y, int g, float d, int maxCode, String what) {
        for (int i = g * 32; i < g * 32 + 32; i++) {
            double bound = d / 2.0 + maxCode * (double) Math.ulp(d) + Math.ulp(y[i]) / 2.0;
            assertTrue(Float.isFinite(y[i]) && Math.abs((double) x[i] - y[i]) <= bound,
                    what + ": x[" + i + "] = " + x[i] + " decoded " + y[i] + ", bound " + bound);
        }
    }

    @Test
    void q8DecodesWithinHalfAScaleOfEveryElement() {
        long seed = Seeds.fresh("q8DecodesWithinHalfAScaleOfEveryElement");
        SplittableRandom r = new SplittableRandom(seed);
        for (int trial = 0; trial < 20; trial++) {
            for (Map.Entry<String, float[]> row : rows(r).entrySet()) {
                float[] x = row.getValue();
                MemorySegment seg = MemorySegment.ofArray(new byte[(int) Q8.rowBytes(D)]);
                Q8.encode(x, 0, D, seg, 0);
                float[] y = new float[D];
                Q8.decode(seg, 0, D, y, 0);
                for (int g = 0; g < D / 32; g++) {
                    double amax = 0;
                    for (int i = g * 32; i < g * 32 + 32; i++) {
                        amax = Math.max(amax, Math.abs((double) x[i]));
                    }
                    float d = Q8.scale(seg, 0, g);
                    String what = row.getKey() + " group " + g + ", seed " + seed;
                    assertTrue(d <= amax / 127 && Math.nextUp(d) > amax / 127, what + ": scale " + d);
                    assertGroupWithinBound(x, y, g, d, 127, what);
                }
            }
        }
    }

    @Test
    void q4DecodesWithinHalfAScaleOfEveryElement() {
        long seed = Seeds.fresh("q4DecodesWithinHalfAScaleOfEveryElement");
        SplittableRandom r = new SplittableRandom(seed);
        for (int trial = 0; trial < 20; trial++) {
            for (Map.Entry<String, float[]> row : rows(r).entrySet()) {
                float[] x = row.getValue();
                MemorySegment seg = MemorySegment.ofArray(new byte[(int) Q4.rowBytes(D)]);
                Q4.encode(x, 0, D, seg, 0);
                float[] y = new float[D];
                Q4.decode(seg, 0, D, y, 0);
                for (int g = 0; g < D / 32; g++) {
                    double min = Double.POSITIVE_INFINITY;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int i = g * 32; i < g * 32 + 32; i++) {
                        min = Math.min(min, x[i]);
                        max = Math.max(max, x[i]);
                    }
                    float d = Q4.scale(seg, 0, g);
                    String what = row.getKey() + " group " + g + ", seed " + seed;
                    assertEquals(min, seg.get(F32, g * 24L + 4), what + ": minimum");
                    assertTrue(d <= (max - min) / 15 && Math.nextUp(d) > (max - min) / 15, what + ": scale " + d);
                    assertGroupWithinBound(x, y, g, d, 15, what);
                }
            }
        }
    }

    @Test
    void encodesAtAnOffsetWithoutTouchingNeighbours() {
        long seed = Seeds.fresh("encodesAtAnOffsetWithoutTouchingNeighbours");
        SplittableRandom r = new SplittableRandom(seed);
        float[] src = gaussian(r, 3 * D, 1);
        byte[] q8 = new byte[(int) Q8.rowBytes(D) + 10];
        byte[] q4 = new byte[(int) Q4.rowBytes(D) + 10];
        Arrays.fill(q8, (byte) 0x5A);
        Arrays.fill(q4, (byte) 0x5A);
        Q8.encode(src, D, D, MemorySegment.ofArray(q8), 7);
        Q4.encode(src, D, D, MemorySegment.ofArray(q4), 7);
        byte[] alone8 = new byte[(int) Q8.rowBytes(D)];
        byte[] alone4 = new byte[(int) Q4.rowBytes(D)];
        Q8.encode(Arrays.copyOfRange(src, D, 2 * D), 0, D, MemorySegment.ofArray(alone8), 0);
        Q4.encode(Arrays.copyOfRange(src, D, 2 * D), 0, D, MemorySegment.ofArray(alone4), 0);
        assertArrayEquals(alone8, Arrays.copyOfRange(q8, 7, 7 + alone8.length), "seed " + seed);
        assertArrayEquals(alone4, Arrays.copyOfRange(q4, 7, 7 + alone4.length), "seed " + seed);
        for (byte[] b : new byte[][] {q8, q4}) {
            for (int i : new int[] {0, 6, b.length - 3, b.length - 1}) {
                assertEquals((byte) 0x5A, b[i], "byte " + i + " outside the row");
            }
        }
        float[] out = new float[3 * D];
        Q4.decode(MemorySegment.ofArray(q4), 7, D, out, D);
        for (int i = 0; i < D; i++) {
            assertEquals(0f, out[i]);
            assertEquals(0f, out[2 * D + i]);
        }
    }
}
