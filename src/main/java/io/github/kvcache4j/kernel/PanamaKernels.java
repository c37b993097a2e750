package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels. Half-precision rows are widened lane-wise with integer bit arithmetic that
 * is exact for zero, subnormals, infinities and NaN (JDK 25 has no half-float vector type).
 */
final class PanamaKernels implements Kernels {

    static final PanamaKernels INSTANCE = new PanamaKernels();

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int L = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** 2^112: moves a half's exponent bias (15) to a float's (127). */
    private static final float HALF_TO_FLOAT_SCALE = 0x1p112f;

    /** Shuffles that rotate lanes by L/2, L/4, ..., 1, for a reduction whose order never varies. */
    private static final VectorShuffle<Float>[] HALVES = halves();

    private PanamaKernels() {
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] halves() {
        int steps = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] shuffles = new VectorShuffle[steps];
        for (int s = 0; s < steps; s++) {
            int shift = L >> (s + 1);
            shuffles[s] = VectorShuffle.fromOp(F, i -> (i + shift) % L);
        }
        return shuffles;
    }

    /**
     * Sum of the lanes in a fixed pairwise order. {@code reduceLanes(ADD)} may order the additions
     * differently in compiled and interpreted code, which would make results depend on JIT timing.
     */
    private static float sum(FloatVector v) {
        for (VectorShuffle<Float> shuffle : HALVES) {
            v = v.add(v.rearrange(shuffle));
        }
        return v.lane(0);
    }

    @Override
    public String name() {
        return "panama-" + F.vectorBitSize();
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        int i = 0;
        for (; i <= n - 2 * L; i += 2 * L) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
            acc1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), acc1);
        }
        for (; i <= n - L; i += L) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
        }
        float s = sum(acc0.add(acc1));
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public float l2Norm(float[] a, int off, int n) {
        return (float) Math.sqrt(dot(a, off, a, off, n));
    }

    @Override
    public void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                       float[] q, int qOff, int group, float scale,
                       int[] positions, int queryPosition,
                       float[] w, int stride, float[] maxAndSum,
                       float[] out, int outOff, float[] scratch) {
        scores(keys, dtype, n, headDim, q, qOff, group, scale, w, stride, scratch);
        if (positions != null) {
            for (int j = 0; j < n; j++) {
                if (positions[j] > queryPosition) {
                    for (int g = 0; g < group; g++) {
                        w[g * stride + j] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
        }
        for (int g = 0; g < group; g++) {
            softmaxNumerators(w, g * stride, n, maxAndSum, 2 * g);
        }
        accumulate(values, dtype, n, headDim, group, w, stride, out, outOff, scratch);
    }

    /** {@code w[g*stride+j] = scale · q_g·k_j}: one read of each key for the whole group. */
    private static void scores(MemorySegment keys, DType dtype, int n, int d,
                               float[] q, int qOff, int group, float scale,
                               float[] w, int stride, float[] row) {
        if (dtype == DType.F32) {
            long bytes = (long) d * 4;
            for (int j = 0; j < n; j++) {
                long base = j * bytes;
                for (int g = 0; g < group; g++) {
                    w[g * stride + j] = scale * dotSegment(keys, base, q, qOff + g * d, d);
                }
            }
        } else {
            for (int j = 0; j < n; j++) {
                widenRow(keys, dtype, (long) j * d, d, row, 0);
                for (int g = 0; g < group; g++) {
                    w[g * stride + j] = scale * INSTANCE.dot(row, 0, q, qOff + g * d, d);
                }
            }
        }
    }

    private static float dotSegment(MemorySegment seg, long base, float[] q, int qOff, int d) {
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        int i = 0;
        for (; i <= d - 2 * L; i += 2 * L) {
            acc0 = FloatVector.fromMemorySegment(F, seg, base + i * 4L, LE)
                    .fma(FloatVector.fromArray(F, q, qOff + i), acc0);
            acc1 = FloatVector.fromMemorySegment(F, seg, base + (i + L) * 4L, LE)
                    .fma(FloatVector.fromArray(F, q, qOff + i + L), acc1);
        }
        for (; i <= d - L; i += L) {
            acc0 = FloatVector.fromMemorySegment(F, seg, base + i * 4L, LE)
                    .fma(FloatVector.fromArray(F, q, qOff + i), acc0);
        }
        float s = sum(acc0.add(acc1));
        for (; i < d; i++) {
            s += ScalarKernels.element(seg, DType.F32, base / 4 + i) * q[qOff + i];
        }
        return s;
    }

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.42860682030941723212e-6f;

    /**
     * {@code exp(x)} for {@code x <= 0}, within 2 ulp of {@link Math#exp} down to the smallest
     * normal float, 0 below it and for {@code -Inf}. A fixed sequence of lane-wise operations:
     * unlike {@code VectorOperators.EXP}, whose compiled (SVML) and interpreted forms may differ in
     * the last bit, it gives the same bits in every JIT tier, so results never depend on timing or
     * on the thread a head ran on.
     */
    static FloatVector expNonPositive(FloatVector x) {
        FloatVector c = x.max(-104f);
        // k = round(x / ln 2), computed on the non-negative value so truncation rounds.
        IntVector k = (IntVector) c.mul(-LOG2E).add(0.5f).convert(VectorOperators.F2I, 0);
        FloatVector kf = (FloatVector) k.convert(VectorOperators.I2F, 0);
        // r = x + k ln2 in [-ln2/2, ln2/2], with ln2 split for an exact first product.
        FloatVector r = kf.fma(FloatVector.broadcast(F, LN2_HI), c).add(kf.mul(LN2_LO));
        FloatVector p = r.fma(1f / 5040, 1f / 720)
                .fma(r, FloatVector.broadcast(F, 1f / 120))
                .fma(r, FloatVector.broadcast(F, 1f / 24))
                .fma(r, FloatVector.broadcast(F, 1f / 6))
                .fma(r, FloatVector.broadcast(F, 0.5f))
                .fma(r, FloatVector.broadcast(F, 1f))
                .fma(r, FloatVector.broadcast(F, 1f));
        VectorMask<Integer> underflow = k.compare(VectorOperators.GT, 126);
        IntVector scale = k.neg().add(127).lanewise(VectorOperators.LSHL, 23);
        FloatVector result = p.mul(scale.reinterpretAsFloats());
        return result.blend(0f, underflow.cast(F));
    }

    /** Max-subtracted exponentials of one row in place; records the max and the sum. */
    private static void softmaxNumerators(float[] w, int off, int n, float[] maxAndSum, int at) {
        FloatVector vmax = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int j = 0;
        for (; j <= n - L; j += L) {
            vmax = vmax.max(FloatVector.fromArray(F, w, off + j));
        }
        float m = vmax.reduceLanes(VectorOperators.MAX);
        for (; j < n; j++) {
            m = Math.max(m, w[off + j]);
        }
        FloatVector vm = FloatVector.broadcast(F, m);
        FloatVector sum0 = FloatVector.zero(F);
        j = 0;
        for (; j <= n - L; j += L) {
            FloatVector e = FloatVector.fromArray(F, w, off + j).sub(vm);
            e = expNonPositive(e);
            e.intoArray(w, off + j);
            sum0 = sum0.add(e);
        }
        float l = sum(sum0);
        for (; j < n; j++) {
            float e = (float) Math.exp(w[off + j] - m);
            w[off + j] = e;
            l += e;
        }
        maxAndSum[at] = m;
        maxAndSum[at + 1] = l;
    }

    /**
     * {@code out_g = Σ_j w[g][j]·v_j}, in blocks of {@link #BLOCK} slots so each output vector is
     * loaded and stored once per block rather than once per slot.
     */
    private static void accumulate(MemorySegment values, DType dtype, int n, int d, int group,
                                   float[] w, int stride, float[] out, int outOff, float[] block) {
        java.util.Arrays.fill(out, outOff, outOff + group * d, 0f);
        for (int j0 = 0; j0 < n; j0 += BLOCK) {
            int count = Math.min(BLOCK, n - j0);
            for (int b = 0; b < count; b++) {
                widenRow(values, dtype, (long) (j0 + b) * d, d, block, b * d);
            }
            for (int g = 0; g < group; g++) {
                int wOff = g * stride + j0;
                int o = outOff + g * d;
                int i = 0;
                for (; i <= d - L; i += L) {
                    FloatVector acc = FloatVector.fromArray(F, out, o + i);
                    for (int b = 0; b < count; b++) {
                        acc = FloatVector.fromArray(F, block, b * d + i)
                                .fma(FloatVector.broadcast(F, w[wOff + b]), acc);
                    }
                    acc.intoArray(out, o + i);
                }
                for (; i < d; i++) {
                    float acc = out[o + i];
                    for (int b = 0; b < count; b++) {
                        acc += w[wOff + b] * block[b * d + i];
                    }
                    out[o + i] = acc;
                }
            }
        }
    }

    /** Widens stored row elements {@code [index, index+count)} to floats at {@code dst[dOff..]}. */
    static void widenRow(MemorySegment seg, DType dtype, long index, int count, float[] dst, int dOff) {
        int i = 0;
        switch (dtype) {
            case F32 -> {
                for (; i <= count - L; i += L) {
                    FloatVector.fromMemorySegment(F, seg, (index + i) * 4, LE).intoArray(dst, dOff + i);
                }
            }
            case F16 -> {
                for (; i <= count - L; i += L) {
                    halfToFloat(shortsAsInts(seg, (index + i) * 2)).intoArray(dst, dOff + i);
                }
            }
            case BF16 -> {
                for (; i <= count - L; i += L) {
                    shortsAsInts(seg, (index + i) * 2).lanewise(VectorOperators.LSHL, 16)
                            .reinterpretAsFloats().intoArray(dst, dOff + i);
                }
            }
        }
        for (; i < count; i++) {
            dst[dOff + i] = ScalarKernels.element(seg, dtype, index + i);
        }
    }

    private static IntVector shortsAsInts(MemorySegment seg, long byteOffset) {
        return (IntVector) ShortVector.fromMemorySegment(S, seg, byteOffset, LE)
                .convertShape(VectorOperators.S2I, I, 0);
    }

    /** Exact binary16 to binary32 conversion of the low 16 bits of each lane. */
    static FloatVector halfToFloat(IntVector h) {
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        IntVector magnitude = h.and(0x7fff);
        IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13);
        // Normal and subnormal halves: rebias the exponent with one exact multiplication.
        IntVector finite = shifted.reinterpretAsFloats().mul(HALF_TO_FLOAT_SCALE).reinterpretAsInts();
        // Infinities and NaNs: all exponent bits set, payload kept.
        VectorMask<Integer> special = magnitude.compare(VectorOperators.GE, 0x7c00);
        IntVector bits = finite.blend(shifted.or(0x7f800000), special).or(sign);
        return bits.reinterpretAsFloats();
    }
}
