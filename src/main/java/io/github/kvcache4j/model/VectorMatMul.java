package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels for y = W x with W stored in a memory segment as F32, F16, BF16 or one of
 * the block-quantized types of {@link VectorQuants} (decoded block by block in registers by
 * {@link VectorQuantDots}; no weight is copied to the heap).
 *
 * <p>Each row is a dot product with two or more independent accumulators and one
 * {@code reduceLanes} at the end. The batched kernels multiply one weight row with
 * {@value #TILE} input vectors at once, so each weight vector is loaded and converted once per
 * tile; {@link #matmul} walks the tokens in blocks small enough to stay in cache.
 */
final class VectorMatMul {

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));

    /** Number of input vectors that share one pass over a weight row. */
    static final int TILE = 4;
    /** Number of input vectors per block of the outer loop (keeps the block in L1/L2). */
    private static final int TOKEN_BLOCK = 32;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private VectorMatMul() {
    }

    /**
     * out[t][r] = sum_c W[r][c] * x[t][c] for rows {@code [r0, r1)} and all {@code tokens}.
     *
     * @param w the weights
     * @param x inputs, {@code [tokens][w.cols()]}
     * @param tokens the number of input vectors
     * @param out outputs, {@code [tokens][w.rows()]}
     * @param r0 first row
     * @param r1 end row (exclusive)
     */
    static void matmul(Matrix w, float[] x, int tokens, float[] out, int r0, int r1) {
        int cols = w.cols();
        int rows = w.rows();
        float[] p = new float[VectorQuants.PARAMS];
        for (int t0 = 0; t0 < tokens; t0 += TOKEN_BLOCK) {
            int t1 = Math.min(tokens, t0 + TOKEN_BLOCK);
            for (int r = r0; r < r1; r++) {
                int t = t0;
                for (; t + TILE <= t1; t += TILE) {
                    dot4(w, r, x, t * cols, cols, out, t * rows + r, rows, p);
                }
                for (; t < t1; t++) {
                    out[t * rows + r] = dot(w, r, x, t * cols, p);
                }
            }
        }
    }

    /**
     * Returns W[row] . x[xOff .. xOff + cols); {@code p} is decoder scratch.
     */
    static float dot(Matrix w, int row, float[] x, int xOff, float[] p) {
        MemorySegment m = w.data();
        long base = row * w.rowBytes();
        int n = w.cols();
        return switch (w.type()) {
            case F32 -> dotF32(m, base, x, xOff, n);
            case F16 -> dotF16(m, base, x, xOff, n);
            case BF16 -> dotBF16(m, base, x, xOff, n);
            default -> VectorQuantDots.dot(w.type(), m, base, x, xOff, n, p);
        };
    }

    /**
     * out[o + j * os] = W[row] . x[x0 + j * xs ..] for j in 0..3; {@code p} is decoder scratch.
     */
    static void dot4(Matrix w, int row, float[] x, int x0, int xs, float[] out, int o, int os, float[] p) {
        MemorySegment m = w.data();
        long base = row * w.rowBytes();
        int n = w.cols();
        switch (w.type()) {
            case F32 -> dot4F32(m, base, x, x0, xs, n, out, o, os);
            case F16 -> dot4F16(m, base, x, x0, xs, n, out, o, os);
            case BF16 -> dot4BF16(m, base, x, x0, xs, n, out, o, os);
            default -> VectorQuantDots4.dot4(w.type(), m, base, x, x0, xs, n, p, out, o, os);
        }
    }

    /** Widens L half floats (binary16) to floats; exact for zero, subnormals, Inf and NaN. */
    static FloatVector halfToFloat(ShortVector h) {
        IntVector bits = (IntVector) h.convertShape(VectorOperators.S2I, I, 0);
        IntVector em = bits.and(0x7FFF);
        IntVector shifted = em.lanewise(VectorOperators.LSHL, 13);
        // Scaling by 2^112 re-biases the exponent and normalises subnormals in one multiply.
        IntVector finite = shifted.reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts();
        IntVector special = shifted.or(0x7F80_0000);
        IntVector mag = finite.blend(special, em.compare(VectorOperators.GE, 0x7C00));
        IntVector sign = bits.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        return mag.or(sign).reinterpretAsFloats();
    }

    private static FloatVector half(MemorySegment m, long off) {
        return halfToFloat(ShortVector.fromMemorySegment(S, m, off, LE));
    }

    private static FloatVector bf16(MemorySegment m, long off) {
        ShortVector h = ShortVector.fromMemorySegment(S, m, off, LE);
        IntVector bits = (IntVector) h.convertShape(VectorOperators.S2I, I, 0);
        return bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static float dotF32(MemorySegment m, long base, float[] x, int xo, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, m, base + 4L * i, LE).fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = FloatVector.fromMemorySegment(F, m, base + 4L * (i + L), LE)
                    .fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        for (; i + L <= n; i += L) {
            a0 = FloatVector.fromMemorySegment(F, m, base + 4L * i, LE).fma(FloatVector.fromArray(F, x, xo + i), a0);
        }
        float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            s += m.get(F32, base + 4L * i) * x[xo + i];
        }
        return s;
    }

    private static float dotF16(MemorySegment m, long base, float[] x, int xo, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            a0 = half(m, base + 2L * i).fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = half(m, base + 2L * (i + L)).fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        for (; i + L <= n; i += L) {
            a0 = half(m, base + 2L * i).fma(FloatVector.fromArray(F, x, xo + i), a0);
        }
        float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            s += Float.float16ToFloat(m.get(I16, base + 2L * i)) * x[xo + i];
        }
        return s;
    }

    private static float dotBF16(MemorySegment m, long base, float[] x, int xo, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            a0 = bf16(m, base + 2L * i).fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = bf16(m, base + 2L * (i + L)).fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        for (; i + L <= n; i += L) {
            a0 = bf16(m, base + 2L * i).fma(FloatVector.fromArray(F, x, xo + i), a0);
        }
        float s = a0.add(a1).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            s += Float.intBitsToFloat(m.get(I16, base + 2L * i) << 16) * x[xo + i];
        }
        return s;
    }

    private static void dot4F32(MemorySegment m, long base, float[] x, int x0, int xs, int n,
                                float[] out, int o, int os) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector wv = FloatVector.fromMemorySegment(F, m, base + 4L * i, LE);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x0 + xs + i), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x0 + 2 * xs + i), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x0 + 3 * xs + i), a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD);
        float s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD);
        float s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float wi = m.get(F32, base + 4L * i);
            s0 += wi * x[x0 + i];
            s1 += wi * x[x0 + xs + i];
            s2 += wi * x[x0 + 2 * xs + i];
            s3 += wi * x[x0 + 3 * xs + i];
        }
        store4(out, o, os, s0, s1, s2, s3);
    }

    private static void dot4F16(MemorySegment m, long base, float[] x, int x0, int xs, int n,
                                float[] out, int o, int os) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector wv = half(m, base + 2L * i);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x0 + xs + i), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x0 + 2 * xs + i), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x0 + 3 * xs + i), a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD);
        float s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD);
        float s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float wi = Float.float16ToFloat(m.get(I16, base + 2L * i));
            s0 += wi * x[x0 + i];
            s1 += wi * x[x0 + xs + i];
            s2 += wi * x[x0 + 2 * xs + i];
            s3 += wi * x[x0 + 3 * xs + i];
        }
        store4(out, o, os, s0, s1, s2, s3);
    }

    private static void dot4BF16(MemorySegment m, long base, float[] x, int x0, int xs, int n,
                                 float[] out, int o, int os) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector wv = bf16(m, base + 2L * i);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x0 + xs + i), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x0 + 2 * xs + i), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x0 + 3 * xs + i), a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD);
        float s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD);
        float s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float wi = Float.intBitsToFloat(m.get(I16, base + 2L * i) << 16);
            s0 += wi * x[x0 + i];
            s1 += wi * x[x0 + xs + i];
            s2 += wi * x[x0 + 2 * xs + i];
            s3 += wi * x[x0 + 3 * xs + i];
        }
        store4(out, o, os, s0, s1, s2, s3);
    }

    private static void store4(float[] out, int o, int os, float s0, float s1, float s2, float s3) {
        out[o] = s0;
        out[o + os] = s1;
        out[o + 2 * os] = s2;
        out[o + 3 * os] = s3;
    }
}
