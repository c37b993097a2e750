package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels for y = W x with W stored as F32, F16, BF16 or Q8_0 in a memory segment.
 *
 * <p>Each row is a dot product with two or more independent accumulators and one
 * {@code reduceLanes} at the end. The batched kernels multiply one weight row with
 * {@value #TILE} input vectors at once, so each weight vector is loaded and converted once per
 * tile; {@link #matmul} walks the tokens in blocks small enough to stay in cache.
 */
final class MatMul {

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final VectorSpecies<Byte> B =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, F.vectorBitSize() / 4)));
    /** Float vectors obtained from one byte vector (1 unless the float vectors are 128 bits). */
    private static final int B_PARTS = B.length() / L;

    /** Number of input vectors that share one pass over a weight row. */
    static final int TILE = 4;
    /** Number of input vectors per block of the outer loop (keeps the block in L1/L2). */
    private static final int TOKEN_BLOCK = 32;

    private static final int Q8_BLOCK = 32;
    private static final int Q8_BYTES = 34;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    static {
        if (Q8_BLOCK % B.length() != 0 || 2 * L > Q8_BLOCK) {
            throw new ExceptionInInitializerError("unsupported vector width: " + F.vectorBitSize() + " bits");
        }
    }

    private MatMul() {
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
        for (int t0 = 0; t0 < tokens; t0 += TOKEN_BLOCK) {
            int t1 = Math.min(tokens, t0 + TOKEN_BLOCK);
            for (int r = r0; r < r1; r++) {
                int t = t0;
                for (; t + TILE <= t1; t += TILE) {
                    dot4(w, r, x, t * cols, cols, out, t * rows + r, rows);
                }
                for (; t < t1; t++) {
                    out[t * rows + r] = dot(w, r, x, t * cols);
                }
            }
        }
    }

    /**
     * Returns W[row] . x[xOff .. xOff + cols).
     */
    static float dot(Matrix w, int row, float[] x, int xOff) {
        MemorySegment m = w.data();
        long base = row * w.rowBytes();
        int n = w.cols();
        return switch (w.type()) {
            case F32 -> dotF32(m, base, x, xOff, n);
            case F16 -> dotF16(m, base, x, xOff, n);
            case BF16 -> dotBF16(m, base, x, xOff, n);
            case Q8_0 -> dotQ8(m, base, x, xOff, n);
            default -> throw new AssertionError(w.type());
        };
    }

    /**
     * out[o + j * os] = W[row] . x[x0 + j * xs ..] for j in 0..3.
     */
    static void dot4(Matrix w, int row, float[] x, int x0, int xs, float[] out, int o, int os) {
        MemorySegment m = w.data();
        long base = row * w.rowBytes();
        int n = w.cols();
        switch (w.type()) {
            case F32 -> dot4F32(m, base, x, x0, xs, n, out, o, os);
            case F16 -> dot4F16(m, base, x, x0, xs, n, out, o, os);
            case BF16 -> dot4BF16(m, base, x, x0, xs, n, out, o, os);
            case Q8_0 -> dot4Q8(m, base, x, x0, xs, n, out, o, os);
            default -> throw new AssertionError(w.type());
        }
    }

    /**
     * Copies row {@code row} of W, converted to float, into {@code out[off .. off + cols)}.
     */
    static void row(Matrix w, int row, float[] out, int off) {
        MemorySegment m = w.data();
        long base = row * w.rowBytes();
        int n = w.cols();
        switch (w.type()) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    out[off + i] = m.get(F32, base + 4L * i);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[off + i] = Float.float16ToFloat(m.get(I16, base + 2L * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[off + i] = Float.intBitsToFloat(m.get(I16, base + 2L * i) << 16);
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / Q8_BLOCK; b++) {
                    long blk = base + (long) b * Q8_BYTES;
                    float d = Float.float16ToFloat(m.get(I16, blk));
                    for (int j = 0; j < Q8_BLOCK; j++) {
                        out[off + b * Q8_BLOCK + j] = d * m.get(ValueLayout.JAVA_BYTE, blk + 2 + j);
                    }
                }
            }
            default -> throw new AssertionError(w.type());
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

    private static float dotQ8(MemorySegment m, long base, float[] x, int xo, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int blocks = n / Q8_BLOCK;
        for (int b = 0; b < blocks; b++) {
            long blk = base + (long) b * Q8_BYTES;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(m.get(I16, blk)));
            FloatVector s0 = FloatVector.zero(F);
            FloatVector s1 = FloatVector.zero(F);
            int xi = xo + b * Q8_BLOCK;
            for (int j = 0; j < Q8_BLOCK; j += B.length()) {
                ByteVector q = ByteVector.fromMemorySegment(B, m, blk + 2 + j, LE);
                for (int p = 0; p < B_PARTS; p++) {
                    FloatVector qf = (FloatVector) q.convertShape(VectorOperators.B2F, F, p);
                    FloatVector xv = FloatVector.fromArray(F, x, xi + j + p * L);
                    if ((p & 1) == 0) {
                        s0 = qf.fma(xv, s0);
                    } else {
                        s1 = qf.fma(xv, s1);
                    }
                }
            }
            if ((b & 1) == 0) {
                a0 = s0.add(s1).fma(d, a0);
            } else {
                a1 = s0.add(s1).fma(d, a1);
            }
        }
        return a0.add(a1).reduceLanes(VectorOperators.ADD);
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

    private static void dot4Q8(MemorySegment m, long base, float[] x, int x0, int xs, int n,
                               float[] out, int o, int os) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int blocks = n / Q8_BLOCK;
        for (int b = 0; b < blocks; b++) {
            long blk = base + (long) b * Q8_BYTES;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(m.get(I16, blk)));
            FloatVector s0 = FloatVector.zero(F);
            FloatVector s1 = FloatVector.zero(F);
            FloatVector s2 = FloatVector.zero(F);
            FloatVector s3 = FloatVector.zero(F);
            int xi = x0 + b * Q8_BLOCK;
            for (int j = 0; j < Q8_BLOCK; j += B.length()) {
                ByteVector q = ByteVector.fromMemorySegment(B, m, blk + 2 + j, LE);
                for (int p = 0; p < B_PARTS; p++) {
                    FloatVector qf = (FloatVector) q.convertShape(VectorOperators.B2F, F, p);
                    int k = xi + j + p * L;
                    s0 = qf.fma(FloatVector.fromArray(F, x, k), s0);
                    s1 = qf.fma(FloatVector.fromArray(F, x, k + xs), s1);
                    s2 = qf.fma(FloatVector.fromArray(F, x, k + 2 * xs), s2);
                    s3 = qf.fma(FloatVector.fromArray(F, x, k + 3 * xs), s3);
                }
            }
            a0 = s0.fma(d, a0);
            a1 = s1.fma(d, a1);
            a2 = s2.fma(d, a2);
            a3 = s3.fma(d, a3);
        }
        store4(out, o, os, a0.reduceLanes(VectorOperators.ADD), a1.reduceLanes(VectorOperators.ADD),
                a2.reduceLanes(VectorOperators.ADD), a3.reduceLanes(VectorOperators.ADD));
    }

    private static void store4(float[] out, int o, int os, float s0, float s1, float s2, float s3) {
        out[o] = s0;
        out[o + os] = s1;
        out[o + 2 * os] = s2;
        out[o + 3 * os] = s3;
    }
}
