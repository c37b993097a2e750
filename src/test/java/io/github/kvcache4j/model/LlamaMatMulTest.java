package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The decoder's matrix kernels against a float64 reference. */
class LlamaMatMulTest {

    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Test
    void widensEveryHalfFloatExactly() {
        VectorSpecies<Short> s = VectorSpecies.of(short.class,
                VectorShape.forBitSize(VectorMatMul.F.vectorBitSize() / 2));
        short[] halves = new short[s.length()];
        for (int base = 0; base < 65536; base += halves.length) {
            for (int i = 0; i < halves.length; i++) {
                halves[i] = (short) (base + i);
            }
            float[] got = VectorMatMul.halfToFloat(ShortVector.fromArray(s, halves, 0)).toArray();
            for (int i = 0; i < halves.length; i++) {
                float want = Float.float16ToFloat(halves[i]);
                if (Float.isNaN(want)) {
                    assertTrue(Float.isNaN(got[i]), "half 0x" + Integer.toHexString(base + i));
                } else {
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]),
                            "half 0x" + Integer.toHexString(base + i));
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4"})
    void matmulMatchesFloat64Reference(GgmlType type) {
        long seed = System.nanoTime();
        System.out.println(type + " seed " + seed);
        Random rnd = new Random(seed);
        int rows = 13;
        int bs = type.blockSize();
        int[] colChoices = bs == 1 ? new int[] {1, 7, 40, 256, 263} : bs == 32 ? new int[] {32, 96, 256} : new int[] {256, 768};
        try (Arena arena = Arena.ofConfined()) {
            for (int cols : colChoices) {
                float[][] w = new float[rows][cols];
                MemorySegment seg = encode(arena, type, w, rnd);
                Matrix m = new Matrix("w", seg, type, rows, cols);
                for (int tokens : new int[] {1, 3, 4, 5, 9, 37}) {
                    float[] x = new float[tokens * cols];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) rnd.nextGaussian();
                    }
                    float[] out = new float[tokens * rows];
                    MatMul.matmul(m, x, tokens, out, 0, rows);
                    float[] scalar = new float[tokens * rows];
                    ScalarMatMul.matmul(m, x, tokens, scalar, 0, rows);
                    for (int t = 0; t < tokens; t++) {
                        for (int r = 0; r < rows; r++) {
                            double ref = 0;
                            double mag = 0;
                            for (int c = 0; c < cols; c++) {
                                ref += (double) w[r][c] * x[t * cols + c];
                                mag += Math.abs((double) w[r][c] * x[t * cols + c]);
                            }
                            assertEquals(ref, out[t * rows + r], 1e-5 * mag + 1e-6,
                                    type + " cols " + cols + " tokens " + tokens + " row " + r + " token " + t);
                            assertEquals(ref, scalar[t * rows + r], 1e-5 * mag + 1e-6,
                                    "scalar " + type + " cols " + cols + " tokens " + tokens + " row " + r + " token " + t);
                        }
                    }
                }
                float[] row = new float[cols];
                MatMul.row(m, 5, row, 0);
                for (int c = 0; c < cols; c++) {
                    assertEquals(w[5][c], row[c], 0, "row 5 col " + c);
                }
            }
        }
    }

    /** Fills w with random values representable in the type and returns their encoding. */
    private static MemorySegment encode(Arena arena, GgmlType type, float[][] w, Random rnd) {
        int rows = w.length;
        int cols = w[0].length;
        long rowBytes = (long) cols / type.blockSize() * type.blockBytes();
        MemorySegment seg = arena.allocate(rows * rowBytes);
        for (int r = 0; r < rows; r++) {
            long base = r * rowBytes;
            switch (type) {
                case F32 -> {
                    for (int c = 0; c < cols; c++) {
                        w[r][c] = (float) rnd.nextGaussian();
                        seg.set(F32, base + 4L * c, w[r][c]);
                    }
                }
                case F16 -> {
                    for (int c = 0; c < cols; c++) {
                        short h = Float.floatToFloat16((float) rnd.nextGaussian() * (c % 5 == 0 ? 1e-5f : 1));
                        w[r][c] = Float.float16ToFloat(h);
                        seg.set(I16, base + 2L * c, h);
                    }
                }
                case BF16 -> {
                    for (int c = 0; c < cols; c++) {
                        int bits = Float.floatToIntBits((float) rnd.nextGaussian()) & 0xFFFF0000;
                        w[r][c] = Float.intBitsToFloat(bits);
                        seg.set(I16, base + 2L * c, (short) (bits >>> 16));
                    }
                }
                case Q8_0 -> {
                    for (int b = 0; b < cols / 32; b++) {
                        long blk = base + 34L * b;
                        short d = Float.floatToFloat16((float) (0.01 + rnd.nextDouble() * 0.05));
                        seg.set(I16, blk, d);
                        for (int j = 0; j < 32; j++) {
                            byte q = (byte) (rnd.nextInt(255) - 127);
                            seg.set(ValueLayout.JAVA_BYTE, blk + 2 + j, q);
                            w[r][b * 32 + j] = Float.float16ToFloat(d) * q;
                        }
                    }
                }
                default -> {
                    // Gaussian rows through the test quantizer; W is what the decoder reads back.
                    float[] v = new float[cols];
                    for (int c = 0; c < cols; c++) {
                        v[c] = (float) (rnd.nextGaussian() * (r % 3 == 0 ? 0.02 : 1));
                    }
                    byte[] q = TestQuantizer.quantize(type, v);
                    w[r] = TestQuantizer.dequantize(type, q);
                    MemorySegment.copy(MemorySegment.ofArray(q), 0, seg, base, rowBytes);
                }
            }
        }
        return seg;
    }

    @Test
    void rejectsUnsupportedTypesAndWrongSizes() {
        try (Arena arena = Arena.ofConfined()) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> new Matrix("blk.0.attn_q.weight", arena.allocate(66), GgmlType.IQ2_XXS, 1, 256));
            assertTrue(e.getMessage().contains("IQ2_XXS") && e.getMessage().contains("blk.0.attn_q.weight")
                    && e.getMessage().contains("Q4_K"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new Matrix("m", arena.allocate(144), GgmlType.Q4_K, 1, 128));
            assertThrows(IllegalArgumentException.class, () -> new Matrix("m", arena.allocate(10), GgmlType.F32, 1, 4));
            assertThrows(IllegalArgumentException.class, () -> new Matrix("m", arena.allocate(34), GgmlType.Q8_0, 1, 16));
        }
    }
}
