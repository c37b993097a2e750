package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels. Decode attention walks the slots in chunks of {@value #CHUNK}: a score pass
 * reads the chunk's key tiles as one forward stream (four query heads × {@value Kernels#TILE} keys
 * per dimension row, so one broadcast of a query element feeds {@code TILE/L} FMAs), then a value
 * pass turns each block of {@value Kernels#VALUE_BLOCK} scores into exponentials and accumulates
 * the block's value rows into register-resident outputs, while the block's scores are still in L1.
 * Between chunks the running maximum is carried over as in an online softmax: when a chunk raises
 * the maximum, the outputs and sums gathered so far are rescaled once. Each pass is a long
 * sequential read of one region; alternating small key and value blocks measured slower.
 *
 * <p>F16 and BF16 keys and values of GQA groups of four (or eight) with head dimensions in
 * multiples of {@code 4L} are widened in registers as they are loaded ({@link #loadHalf}); other
 * half-precision shapes are widened into a small on-heap workspace first (JDK 25 has no half-float
 * vector type; C2 compiles the loop over {@link Float#float16ToFloat} to the hardware conversion).
 * The half-precision kernels repeat the F32 ones with a different load on purpose: one kernel that
 * chose its load per dtype at run time grew past C2's inlining budget once it had seen several
 * dtypes, and a vector returned from a call that is not inlined is boxed on every step. Sums and exponentials
 * use fixed sequences of lane-wise operations, so results are bit-identical in every JIT tier and
 * on every thread.
 */
final class PanamaKernels implements Kernels {

    static final PanamaKernels INSTANCE = new PanamaKernels();

    /**
     * The preferred float species, capped at 512 bits so that four vectors never exceed a key tile
     * row ({@value Kernels#TILE} floats): {@code TILE % (4·L) == 0} for 128, 256 and 512 bits.
     */
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.vectorBitSize() > 512
            ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I =
            VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int L = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final int KIND_F32 = 0;
    private static final int KIND_F16 = 1;
    private static final int KIND_BF16 = 2;

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.42860682030941723212e-6f;

    private PanamaKernels() {
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

    /** Slots per chunk: the chunk's scores for a GQA group of 8 fit in 32 KiB. */
    static final int CHUNK = 1024;

    @Override
    public void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                       float[] q, int qOff, int group, float scale,
                       int[] positions, int queryPosition,
                       float[] w, int stride, boolean keepWeights, float[] maxAndSum,
                       float[] out, int outOff, Workspace workspace) {
        int kind = kind(dtype);
        int d = headDim;
        boolean halfInRegisters = kind != KIND_F32 && 4 * L == TILE && group % 4 == 0 && d % (4 * L) == 0;
        boolean bf16 = kind == KIND_BF16;
        Arrays.fill(out, outOff, outOff + group * d, 0f);
        for (int g = 0; g < group; g++) {
            maxAndSum[2 * g] = Float.NEGATIVE_INFINITY;
            maxAndSum[2 * g + 1] = 0f;
        }
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int end = Math.min(n, c0 + CHUNK);
            for (int t0 = c0; t0 < end; t0 += TILE) {
                MemorySegment src = keys;
                long first = (long) t0 * d;
                if (halfInRegisters) {
                    for (int g = 0; g < group; g += 4) {
                        scores4x4Half(keys, bf16, first, d, q, qOff + g * d, scale, w, g * stride + t0, stride);
                    }
                    continue;
                }
                if (kind != KIND_F32) {
                    src = widen(keys, kind, first, TILE * d, workspace);
                    first = 0;
                }
                scoreTile(src, first, d, q, qOff, group, scale, w, t0, stride);
            }
            if (positions != null) {
                for (int j = c0; j < end; j++) {
                    if (positions[j] > queryPosition) {
                        for (int g = 0; g < group; g++) {
                            w[g * stride + j] = Float.NEGATIVE_INFINITY;
                        }
                    }
                }
            }
            for (int g = 0; g < group; g++) {
                raiseMax(w, g * stride, c0, end, keepWeights, maxAndSum, 2 * g, out, outOff + g * d, d);
            }
            for (int j0 = c0; j0 < end; j0 += VALUE_BLOCK) {
                int rows = Math.min(VALUE_BLOCK, end - j0);
                for (int g = 0; g < group; g++) {
                    maxAndSum[2 * g + 1] += exponentials(w, g * stride + j0, rows, maxAndSum[2 * g], workspace.lanes);
                }
                MemorySegment src = values;
                long first = (long) j0 * d;
                if (halfInRegisters) {
                    int passes = d / (4 * L);
                    for (int p = 0; p < passes; p++) {
                        for (int g = 0; g < group; g += 4) {
                            accumulate4x4Half(values, bf16, first + p * L, rows, d, passes * L,
                                    w, g * stride + j0, stride, out, outOff + g * d + p * L);
                        }
                    }
                    continue;
                }
                if (kind != KIND_F32) {
                    src = widen(values, kind, first, rows * d, workspace);
                    first = 0;
                }
                accumulate(src, first, rows, d, group, w, j0, stride, out, outOff);
            }
        }
    }

    /**
     * Makes {@code maxAndSum[at]} the maximum of the scores seen so far, including
     * {@code w[off+c0 .. off+end)}. When it rises, the output, the sum and (if kept) the earlier
     * weights are rescaled by {@code exp(old − new)}. {@link StrictMath#exp} keeps the factor the
     * same in every JIT tier; it runs a few times per call, not per slot.
     */
    private static void raiseMax(float[] w, int off, int c0, int end, boolean keepWeights, float[] maxAndSum, int at,
                                 float[] out, int o, int d) {
        FloatVector vmax = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int j = c0;
        for (; j <= end - L; j += L) {
            vmax = vmax.max(FloatVector.fromArray(F, w, off + j));
        }
        float chunkMax = vmax.reduceLanes(VectorOperators.MAX);
        for (; j < end; j++) {
            chunkMax = Math.max(chunkMax, w[off + j]);
        }
        float m = maxAndSum[at];
        if (chunkMax > m) {
            if (m != Float.NEGATIVE_INFINITY) {
                float f = (float) StrictMath.exp(m - chunkMax);
                scale(out, o, d, f);
                maxAndSum[at + 1] *= f;
                if (keepWeights) {
                    scale(w, off, c0, f);
                }
            }
            maxAndSum[at] = chunkMax;
        }
    }

    private static void scale(float[] a, int off, int count, float f) {
        int i = 0;
        for (; i <= count - L; i += L) {
            FloatVector.fromArray(F, a, off + i).mul(f).intoArray(a, off + i);
        }
        for (; i < count; i++) {
            a[off + i] *= f;
        }
    }

    /**
     * Replaces the {@code rows} scores at {@code w[off..]} by {@code exp(s − m)} and returns their
     * sum. Whole vectors are processed (the row has room up to the next tile); lanes past
     * {@code rows} are set to zero. With {@code m = −∞} nothing is visible yet and every weight is 0.
     */
    private static float exponentials(float[] w, int off, int rows, float m, float[] lanes) {
        if (m == Float.NEGATIVE_INFINITY) {
            Arrays.fill(w, off, off + rows, 0f);
            return 0f;
        }
        FloatVector vm = FloatVector.broadcast(F, m);
        FloatVector acc = FloatVector.zero(F);
        for (int k = 0; k < rows; k += L) {
            FloatVector e = expNonPositive(FloatVector.fromArray(F, w, off + k).sub(vm));
            if (k + L > rows) {
                e = FloatVector.zero(F).blend(e, F.indexInRange(k, rows));
            }
            e.intoArray(w, off + k);
            acc = acc.add(e);
        }
        // Spilled and summed in order rather than through sum(FloatVector): this call site runs once
        // per block, too rarely for C2 to inline sum, and a vector passed to a call that is not
        // inlined is boxed.
        acc.intoArray(lanes, 0);
        float sum = 0f;
        for (int i = 0; i < L; i++) {
            sum += lanes[i];
        }
        return sum;
    }

    private static int kind(DType dtype) {
        return switch (dtype) {
            case F32 -> KIND_F32;
            case F16 -> KIND_F16;
            case BF16 -> KIND_BF16;
        };
    }

    /**
     * Lane sum in a fixed pairwise order (upper half onto lower half). {@code reduceLanes(ADD)}
     * may order the additions differently in compiled and interpreted code.
     */
    private static float sum(FloatVector v) {
        FloatVector x = v;
        for (int half = L / 2; half >= 1; half /= 2) {
            x = x.add(x.slice(half));
        }
        return x.lane(0);
    }

    /**
     * {@code w[g*stride + t0 + j] = scale·q_g·k_j} for the {@value Kernels#TILE} keys of the tile at
     * element {@code first}: four, two or one query heads at a time, {@code 4·L} keys per step.
     */
    private static void scoreTile(MemorySegment keys, long first, int d, float[] q, int qOff, int group,
                                  float scale, float[] w, int t0, int stride) {
        for (int lane = 0; lane < TILE; lane += 4 * L) {
            int g = 0;
            for (; g + 4 <= group; g += 4) {
                scores4x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane, stride);
            }
            for (; g + 2 <= group; g += 2) {
                scores2x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane, stride);
            }
            for (; g < group; g++) {
                scores1x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane);
            }
        }
    }

    /**
     * Widens {@code count} stored half-precision elements from element {@code first} into the
     * start of the workspace's floats and returns them as a segment. F16 goes through
     * {@link Float#float16ToFloat} in a plain loop, which C2 compiles to the hardware
     * conversion instruction; BF16 is a lane-wise shift.
     */
    private static MemorySegment widen(MemorySegment src, int kind, long first, int count, Workspace ws) {
        float[] dst = ws.floats;
        if (kind == KIND_F16) {
            halvesToFloats(src, first * 2, dst, count);
        } else {
            int i = 0;
            for (; i <= count - L; i += L) {
                ((IntVector) ShortVector.fromMemorySegment(S, src, (first + i) * 2, LE)
                        .convertShape(VectorOperators.S2I, I, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, i);
            }
            for (; i < count; i++) {
                dst[i] = ScalarKernels.element(src, DType.BF16, first + i);
            }
        }
        return ws.floatSegment;
    }

    /** Kept apart so that C2 compiles the loop on its own, to the hardware conversion. */
    static void halvesToFloats(MemorySegment src, long byteOffset, float[] dst, int count) {
        for (int i = 0; i < count; i++) {
            dst[i] = Float.float16ToFloat(src.get(I16_LE, byteOffset + 2L * i));
        }
    }

    private static final java.lang.foreign.ValueLayout.OfShort I16_LE =
            java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private static final java.lang.foreign.ValueLayout.OfFloat F32_LE =
            java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    /**
     * Scores of {@code 4L} keys for four query heads: per dimension, four key-row loads and four
     * broadcasts feed sixteen independent FMA chains.
     */
    private static void scores4x4(MemorySegment keys, long base, int d, float[] q, int qo,
                                  float scale, float[] w, int wo, int stride) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        FloatVector c0 = FloatVector.zero(F);
        FloatVector c1 = FloatVector.zero(F);
        FloatVector c2 = FloatVector.zero(F);
        FloatVector c3 = FloatVector.zero(F);
        FloatVector e0 = FloatVector.zero(F);
        FloatVector e1 = FloatVector.zero(F);
        FloatVector e2 = FloatVector.zero(F);
        FloatVector e3 = FloatVector.zero(F);
        for (int i = 0; i < d; i++) {
            long at = base + (long) i * TILE;
            FloatVector k0 = load(keys, at);
            FloatVector k1 = load(keys, at + L);
            FloatVector k2 = load(keys, at + 2 * L);
            FloatVector k3 = load(keys, at + 3 * L);
            FloatVector p = FloatVector.broadcast(F, q[qo + i]);
            a0 = k0.fma(p, a0);
            a1 = k1.fma(p, a1);
            a2 = k2.fma(p, a2);
            a3 = k3.fma(p, a3);
            p = FloatVector.broadcast(F, q[qo + d + i]);
            b0 = k0.fma(p, b0);
            b1 = k1.fma(p, b1);
            b2 = k2.fma(p, b2);
            b3 = k3.fma(p, b3);
            p = FloatVector.broadcast(F, q[qo + 2 * d + i]);
            c0 = k0.fma(p, c0);
            c1 = k1.fma(p, c1);
            c2 = k2.fma(p, c2);
            c3 = k3.fma(p, c3);
            p = FloatVector.broadcast(F, q[qo + 3 * d + i]);
            e0 = k0.fma(p, e0);
            e1 = k1.fma(p, e1);
            e2 = k2.fma(p, e2);
            e3 = k3.fma(p, e3);
        }
        a0.mul(scale).intoArray(w, wo);
        a1.mul(scale).intoArray(w, wo + L);
        a2.mul(scale).intoArray(w, wo + 2 * L);
        a3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        b0.mul(scale).intoArray(w, wo);
        b1.mul(scale).intoArray(w, wo + L);
        b2.mul(scale).intoArray(w, wo + 2 * L);
        b3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        c0.mul(scale).intoArray(w, wo);
        c1.mul(scale).intoArray(w, wo + L);
        c2.mul(scale).intoArray(w, wo + 2 * L);
        c3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        e0.mul(scale).intoArray(w, wo);
        e1.mul(scale).intoArray(w, wo + L);
        e2.mul(scale).intoArray(w, wo + 2 * L);
        e3.mul(scale).intoArray(w, wo + 3 * L);
    }

    /** Scores of {@code 4L} keys for two query heads (eight FMA chains). */
    private static void scores2x4(MemorySegment keys, long base, int d, float[] q, int qo,
                                  float scale, float[] w, int wo, int stride) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        for (int i = 0; i < d; i++) {
            long at = base + (long) i * TILE;
            FloatVector k0 = load(keys, at);
            FloatVector k1 = load(keys, at + L);
            FloatVector k2 = load(keys, at + 2 * L);
            FloatVector k3 = load(keys, at + 3 * L);
            FloatVector p = FloatVector.broadcast(F, q[qo + i]);
            a0 = k0.fma(p, a0);
            a1 = k1.fma(p, a1);
            a2 = k2.fma(p, a2);
            a3 = k3.fma(p, a3);
            p = FloatVector.broadcast(F, q[qo + d + i]);
            b0 = k0.fma(p, b0);
            b1 = k1.fma(p, b1);
            b2 = k2.fma(p, b2);
            b3 = k3.fma(p, b3);
        }
        a0.mul(scale).intoArray(w, wo);
        a1.mul(scale).intoArray(w, wo + L);
        a2.mul(scale).intoArray(w, wo + 2 * L);
        a3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        b0.mul(scale).intoArray(w, wo);
        b1.mul(scale).intoArray(w, wo + L);
        b2.mul(scale).intoArray(w, wo + 2 * L);
        b3.mul(scale).intoArray(w, wo + 3 * L);
    }

    /** Scores of {@code 4L} keys for one query head (four FMA chains). */
    private static void scores1x4(MemorySegment keys, long base, int d, float[] q, int qo,
                                  float scale, float[] w, int wo) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        for (int i = 0; i < d; i++) {
            long at = base + (long) i * TILE;
            FloatVector p = FloatVector.broadcast(F, q[qo + i]);
            a0 = load(keys, at).fma(p, a0);
            a1 = load(keys, at + L).fma(p, a1);
            a2 = load(keys, at + 2 * L).fma(p, a2);
            a3 = load(keys, at + 3 * L).fma(p, a3);
        }
        a0.mul(scale).intoArray(w, wo);
        a1.mul(scale).intoArray(w, wo + L);
        a2.mul(scale).intoArray(w, wo + 2 * L);
        a3.mul(scale).intoArray(w, wo + 3 * L);
    }

    /**
     * Loads {@code L} stored half-precision elements as floats, widened in registers:
     * {@code float(((int) h << shift) & mask) · rebias} with {@code h} sign-extended. For BF16
     * ({@code 16, 0xFFFF0000, 1}) that is the upper half of a float. For F16 ({@code 13, 0x8FFFE000,
     * 2^112}) sign, exponent and mantissa land in float position and the product rebiases the
     * exponent: exact for zero, subnormals and normal numbers; stored F16 elements are always finite
     * (the cache rejects values beyond ±65504), so exponent 31 needs no case. One formula with
     * run-time constants keeps the compiled loop the same for both dtypes: a branch per dtype inside
     * the loop grew past C2's inlining budget once both had run, and a vector returned from a call
     * that is not inlined is boxed on every step. The helpers stay under the always-inline size.
     */
    private static FloatVector loadHalf(MemorySegment seg, long index, int shift, int mask, float rebias) {
        return shortsToInts(seg, index).lanewise(VectorOperators.LSHL, shift).and(mask)
                .reinterpretAsFloats().mul(rebias);
    }

    private static int halfShift(boolean bf16) {
        return bf16 ? 16 : 13;
    }

    private static int halfMask(boolean bf16) {
        return bf16 ? 0xFFFF0000 : 0x8FFFE000;
    }

    private static float halfRebias(boolean bf16) {
        return bf16 ? 1f : 0x1p112f;
    }

    private static IntVector shortsToInts(MemorySegment seg, long index) {
        return (IntVector) ShortVector.fromMemorySegment(S, seg, index * 2, LE).convertShape(VectorOperators.S2I, I, 0);
    }


    /** {@link #loadHalf} of one vector into {@code dst} (for tests). */
    static void loadHalfForTest(MemorySegment seg, DType dtype, long index, float[] dst) {
        boolean bf16 = dtype == DType.BF16;
        loadHalf(seg, index, halfShift(bf16), halfMask(bf16), halfRebias(bf16)).intoArray(dst, 0);
    }

    /** Elements per vector (for tests). */
    static int lanes() {
        return L;
    }

    /** {@link #scores4x4} over stored F16 or BF16 keys, widened in registers. */
    private static void scores4x4Half(MemorySegment keys, boolean bf16, long base, int d, float[] q, int qo,
                                  float scale, float[] w, int wo, int stride) {
        int shift = halfShift(bf16);
        int mask = halfMask(bf16);
        float rebias = halfRebias(bf16);
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        FloatVector c0 = FloatVector.zero(F);
        FloatVector c1 = FloatVector.zero(F);
        FloatVector c2 = FloatVector.zero(F);
        FloatVector c3 = FloatVector.zero(F);
        FloatVector e0 = FloatVector.zero(F);
        FloatVector e1 = FloatVector.zero(F);
        FloatVector e2 = FloatVector.zero(F);
        FloatVector e3 = FloatVector.zero(F);
        for (int i = 0; i < d; i++) {
            long at = base + (long) i * TILE;
            FloatVector k0 = loadHalf(keys, at, shift, mask, rebias);
            FloatVector k1 = loadHalf(keys, at + L, shift, mask, rebias);
            FloatVector k2 = loadHalf(keys, at + 2 * L, shift, mask, rebias);
            FloatVector k3 = loadHalf(keys, at + 3 * L, shift, mask, rebias);
            FloatVector p = FloatVector.broadcast(F, q[qo + i]);
            a0 = k0.fma(p, a0);
            a1 = k1.fma(p, a1);
            a2 = k2.fma(p, a2);
            a3 = k3.fma(p, a3);
            p = FloatVector.broadcast(F, q[qo + d + i]);
            b0 = k0.fma(p, b0);
            b1 = k1.fma(p, b1);
            b2 = k2.fma(p, b2);
            b3 = k3.fma(p, b3);
            p = FloatVector.broadcast(F, q[qo + 2 * d + i]);
            c0 = k0.fma(p, c0);
            c1 = k1.fma(p, c1);
            c2 = k2.fma(p, c2);
            c3 = k3.fma(p, c3);
            p = FloatVector.broadcast(F, q[qo + 3 * d + i]);
            e0 = k0.fma(p, e0);
            e1 = k1.fma(p, e1);
            e2 = k2.fma(p, e2);
            e3 = k3.fma(p, e3);
        }
        a0.mul(scale).intoArray(w, wo);
        a1.mul(scale).intoArray(w, wo + L);
        a2.mul(scale).intoArray(w, wo + 2 * L);
        a3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        b0.mul(scale).intoArray(w, wo);
        b1.mul(scale).intoArray(w, wo + L);
        b2.mul(scale).intoArray(w, wo + 2 * L);
        b3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        c0.mul(scale).intoArray(w, wo);
        c1.mul(scale).intoArray(w, wo + L);
        c2.mul(scale).intoArray(w, wo + 2 * L);
        c3.mul(scale).intoArray(w, wo + 3 * L);
        wo += stride;
        e0.mul(scale).intoArray(w, wo);
        e1.mul(scale).intoArray(w, wo + L);
        e2.mul(scale).intoArray(w, wo + 2 * L);
        e3.mul(scale).intoArray(w, wo + 3 * L);
    }


    /**
     * {@link #accumulate4x4} over stored F16 or BF16 values, widened in registers, for the four
     * vectors at {@code 0, step, 2·step, 3·step} of each row. The caller passes
     * {@code step = (d / 4L)·L}, so the passes over a block interleave: the first pass already
     * touches every cache line of each half-precision row (a 64-byte line holds two vectors), the
     * block streams from memory once and in order, and the later passes find it in L1. Contiguous
     * vectors (each pass reading half of every row) measured 17 % slower.
     */
    private static void accumulate4x4Half(MemorySegment values, boolean bf16, long first, int rows, int d, int step,
                                      float[] w, int wo, int stride, float[] out, int o) {
        int shift = halfShift(bf16);
        int mask = halfMask(bf16);
        float rebias = halfRebias(bf16);
        FloatVector c00 = FloatVector.fromArray(F, out, o);
        FloatVector c01 = FloatVector.fromArray(F, out, o + step);
        FloatVector c02 = FloatVector.fromArray(F, out, o + 2 * step);
        FloatVector c03 = FloatVector.fromArray(F, out, o + 3 * step);
        FloatVector c10 = FloatVector.fromArray(F, out, o + d);
        FloatVector c11 = FloatVector.fromArray(F, out, o + d + step);
        FloatVector c12 = FloatVector.fromArray(F, out, o + d + 2 * step);
        FloatVector c13 = FloatVector.fromArray(F, out, o + d + 3 * step);
        FloatVector c20 = FloatVector.fromArray(F, out, o + 2 * d);
        FloatVector c21 = FloatVector.fromArray(F, out, o + 2 * d + step);
        FloatVector c22 = FloatVector.fromArray(F, out, o + 2 * d + 2 * step);
        FloatVector c23 = FloatVector.fromArray(F, out, o + 2 * d + 3 * step);
        FloatVector c30 = FloatVector.fromArray(F, out, o + 3 * d);
        FloatVector c31 = FloatVector.fromArray(F, out, o + 3 * d + step);
        FloatVector c32 = FloatVector.fromArray(F, out, o + 3 * d + 2 * step);
        FloatVector c33 = FloatVector.fromArray(F, out, o + 3 * d + 3 * step);
        for (int r = 0; r < rows; r++) {
            long row = first + (long) r * d;
            FloatVector v0 = loadHalf(values, row, shift, mask, rebias);
            FloatVector v1 = loadHalf(values, row + step, shift, mask, rebias);
            FloatVector v2 = loadHalf(values, row + 2 * step, shift, mask, rebias);
            FloatVector v3 = loadHalf(values, row + 3 * step, shift, mask, rebias);
            FloatVector p = FloatVector.broadcast(F, w[wo + r]);
            c00 = v0.fma(p, c00);
            c01 = v1.fma(p, c01);
            c02 = v2.fma(p, c02);
            c03 = v3.fma(p, c03);
            p = FloatVector.broadcast(F, w[wo + stride + r]);
            c10 = v0.fma(p, c10);
            c11 = v1.fma(p, c11);
            c12 = v2.fma(p, c12);
            c13 = v3.fma(p, c13);
            p = FloatVector.broadcast(F, w[wo + 2 * stride + r]);
            c20 = v0.fma(p, c20);
            c21 = v1.fma(p, c21);
            c22 = v2.fma(p, c22);
            c23 = v3.fma(p, c23);
            p = FloatVector.broadcast(F, w[wo + 3 * stride + r]);
            c30 = v0.fma(p, c30);
            c31 = v1.fma(p, c31);
            c32 = v2.fma(p, c32);
            c33 = v3.fma(p, c33);
        }
        c00.intoArray(out, o);
        c01.intoArray(out, o + step);
        c02.intoArray(out, o + 2 * step);
        c03.intoArray(out, o + 3 * step);
        c10.intoArray(out, o + d);
        c11.intoArray(out, o + d + step);
        c12.intoArray(out, o + d + 2 * step);
        c13.intoArray(out, o + d + 3 * step);
        c20.intoArray(out, o + 2 * d);
        c21.intoArray(out, o + 2 * d + step);
        c22.intoArray(out, o + 2 * d + 2 * step);
        c23.intoArray(out, o + 2 * d + 3 * step);
        c30.intoArray(out, o + 3 * d);
        c31.intoArray(out, o + 3 * d + step);
        c32.intoArray(out, o + 3 * d + 2 * step);
        c33.intoArray(out, o + 3 * d + 3 * step);
    }

    /** Loads {@code L} floats starting at element {@code index}. */
    private static FloatVector load(MemorySegment seg, long index) {
        return FloatVector.fromMemorySegment(F, seg, index * 4, LE);
    }

    /**
     * {@code exp(x)} for {@code x <= 0}, within 2 ulp of {@link Math#exp} down to the smallest
     * normal float, 0 below it and for {@code -Inf}: Cody-Waite reduction by ln 2 and a degree-7
     * polynomial. Unlike {@code VectorOperators.EXP}, whose compiled (SVML) and interpreted forms
     * may differ in the last bit, it gives the same bits in every JIT tier.
     */
    static FloatVector expNonPositive(FloatVector x) {
        FloatVector c = x.max(-104f);
        // k = round(-x / ln 2), computed on a non-negative value so truncation rounds.
        IntVector k = (IntVector) c.mul(-LOG2E).add(0.5f).convert(VectorOperators.F2I, 0);
        FloatVector kf = (FloatVector) k.convert(VectorOperators.I2F, 0);
        // r = x + k ln2 in [-ln2/2, ln2/2], with ln2 split so the first product is exact.
        FloatVector r = kf.fma(FloatVector.broadcast(F, LN2_HI), c).add(kf.mul(LN2_LO));
        FloatVector p = r.fma(1f / 5040, 1f / 720)
                .fma(r, FloatVector.broadcast(F, 1f / 120))
                .fma(r, FloatVector.broadcast(F, 1f / 24))
                .fma(r, FloatVector.broadcast(F, 1f / 6))
                .fma(r, FloatVector.broadcast(F, 0.5f))
                .fma(r, FloatVector.broadcast(F, 1f))
                .fma(r, FloatVector.broadcast(F, 1f));
        VectorMask<Integer> underflow = k.compare(VectorOperators.GT, 126);
        IntVector pow2 = k.neg().add(127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(pow2.reinterpretAsFloats()).blend(0f, underflow.cast(F));
    }

    /**
     * {@code out_g += Σ_r w[g][j0+r]·v_r} over the {@code rows} value rows at element {@code first}
     * (one block, read from memory once; half-precision blocks were widened by the caller).
     */
    private static void accumulate(MemorySegment src, long first, int rows, int d, int group,
                                   float[] w, int j0, int stride, float[] out, int outOff) {
        int i = 0;
        for (; i + 8 * L <= d; i += 8 * L) {
            int g = 0;
            for (; g + 2 <= group; g += 2) {
                accumulate2x8(src, first + i, rows, d, w, g * stride + j0, stride, out, outOff + g * d + i);
            }
            for (; g < group; g++) {
                accumulate1x4(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
                accumulate1x4(src, first + i + 4 * L, rows, d, w, g * stride + j0, out, outOff + g * d + i + 4 * L);
            }
        }
        for (; i + 4 * L <= d; i += 4 * L) {
            int g = 0;
            for (; g + 4 <= group; g += 4) {
                accumulate4x4(src, first + i, rows, d, w, g * stride + j0, stride, out, outOff + g * d + i);
            }
            for (; g < group; g++) {
                accumulate1x4(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
            }
        }
        for (; i + L <= d; i += L) {
            for (int g = 0; g < group; g++) {
                accumulate1x1(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
            }
        }
        for (; i < d; i++) {
            for (int g = 0; g < group; g++) {
                float acc = out[outOff + g * d + i];
                for (int r = 0; r < rows; r++) {
                    acc += w[g * stride + j0 + r] * src.get(F32_LE, (first + (long) r * d + i) * 4);
                }
                out[outOff + g * d + i] = acc;
            }
        }
    }

    /** Four query heads × {@code 4L} dimensions kept in sixteen registers over a block of slots. */
    private static void accumulate4x4(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, int stride, float[] out, int o) {
        FloatVector c00 = FloatVector.fromArray(F, out, o);
        FloatVector c01 = FloatVector.fromArray(F, out, o + L);
        FloatVector c02 = FloatVector.fromArray(F, out, o + 2 * L);
        FloatVector c03 = FloatVector.fromArray(F, out, o + 3 * L);
        FloatVector c10 = FloatVector.fromArray(F, out, o + d);
        FloatVector c11 = FloatVector.fromArray(F, out, o + d + L);
        FloatVector c12 = FloatVector.fromArray(F, out, o + d + 2 * L);
        FloatVector c13 = FloatVector.fromArray(F, out, o + d + 3 * L);
        FloatVector c20 = FloatVector.fromArray(F, out, o + 2 * d);
        FloatVector c21 = FloatVector.fromArray(F, out, o + 2 * d + L);
        FloatVector c22 = FloatVector.fromArray(F, out, o + 2 * d + 2 * L);
        FloatVector c23 = FloatVector.fromArray(F, out, o + 2 * d + 3 * L);
        FloatVector c30 = FloatVector.fromArray(F, out, o + 3 * d);
        FloatVector c31 = FloatVector.fromArray(F, out, o + 3 * d + L);
        FloatVector c32 = FloatVector.fromArray(F, out, o + 3 * d + 2 * L);
        FloatVector c33 = FloatVector.fromArray(F, out, o + 3 * d + 3 * L);
        for (int r = 0; r < rows; r++) {
            long row = first + (long) r * d;
            FloatVector v0 = load(values, row);
            FloatVector v1 = load(values, row + L);
            FloatVector v2 = load(values, row + 2 * L);
            FloatVector v3 = load(values, row + 3 * L);
            FloatVector p = FloatVector.broadcast(F, w[wo + r]);
            c00 = v0.fma(p, c00);
            c01 = v1.fma(p, c01);
            c02 = v2.fma(p, c02);
            c03 = v3.fma(p, c03);
            p = FloatVector.broadcast(F, w[wo + stride + r]);
            c10 = v0.fma(p, c10);
            c11 = v1.fma(p, c11);
            c12 = v2.fma(p, c12);
            c13 = v3.fma(p, c13);
            p = FloatVector.broadcast(F, w[wo + 2 * stride + r]);
            c20 = v0.fma(p, c20);
            c21 = v1.fma(p, c21);
            c22 = v2.fma(p, c22);
            c23 = v3.fma(p, c23);
            p = FloatVector.broadcast(F, w[wo + 3 * stride + r]);
            c30 = v0.fma(p, c30);
            c31 = v1.fma(p, c31);
            c32 = v2.fma(p, c32);
            c33 = v3.fma(p, c33);
        }
        c00.intoArray(out, o);
        c01.intoArray(out, o + L);
        c02.intoArray(out, o + 2 * L);
        c03.intoArray(out, o + 3 * L);
        c10.intoArray(out, o + d);
        c11.intoArray(out, o + d + L);
        c12.intoArray(out, o + d + 2 * L);
        c13.intoArray(out, o + d + 3 * L);
        c20.intoArray(out, o + 2 * d);
        c21.intoArray(out, o + 2 * d + L);
        c22.intoArray(out, o + 2 * d + 2 * L);
        c23.intoArray(out, o + 2 * d + 3 * L);
        c30.intoArray(out, o + 3 * d);
        c31.intoArray(out, o + 3 * d + L);
        c32.intoArray(out, o + 3 * d + 2 * L);
        c33.intoArray(out, o + 3 * d + 3 * L);
    }

    /** Two query heads × {@code 8L} dimensions: each value vector is loaded once for both heads. */
    private static void accumulate2x8(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, int stride, float[] out, int o) {
        int e = o + d;
        FloatVector c0 = FloatVector.fromArray(F, out, o);
        FloatVector c1 = FloatVector.fromArray(F, out, o + L);
        FloatVector c2 = FloatVector.fromArray(F, out, o + 2 * L);
        FloatVector c3 = FloatVector.fromArray(F, out, o + 3 * L);
        FloatVector c4 = FloatVector.fromArray(F, out, o + 4 * L);
        FloatVector c5 = FloatVector.fromArray(F, out, o + 5 * L);
        FloatVector c6 = FloatVector.fromArray(F, out, o + 6 * L);
        FloatVector c7 = FloatVector.fromArray(F, out, o + 7 * L);
        FloatVector e0 = FloatVector.fromArray(F, out, e);
        FloatVector e1 = FloatVector.fromArray(F, out, e + L);
        FloatVector e2 = FloatVector.fromArray(F, out, e + 2 * L);
        FloatVector e3 = FloatVector.fromArray(F, out, e + 3 * L);
        FloatVector e4 = FloatVector.fromArray(F, out, e + 4 * L);
        FloatVector e5 = FloatVector.fromArray(F, out, e + 5 * L);
        FloatVector e6 = FloatVector.fromArray(F, out, e + 6 * L);
        FloatVector e7 = FloatVector.fromArray(F, out, e + 7 * L);
        for (int r = 0; r < rows; r++) {
            long row = first + (long) r * d;
            FloatVector p = FloatVector.broadcast(F, w[wo + r]);
            FloatVector p2 = FloatVector.broadcast(F, w[wo + stride + r]);
            FloatVector v = load(values, row);
            c0 = v.fma(p, c0);
            e0 = v.fma(p2, e0);
            v = load(values, row + L);
            c1 = v.fma(p, c1);
            e1 = v.fma(p2, e1);
            v = load(values, row + 2 * L);
            c2 = v.fma(p, c2);
            e2 = v.fma(p2, e2);
            v = load(values, row + 3 * L);
            c3 = v.fma(p, c3);
            e3 = v.fma(p2, e3);
            v = load(values, row + 4 * L);
            c4 = v.fma(p, c4);
            e4 = v.fma(p2, e4);
            v = load(values, row + 5 * L);
            c5 = v.fma(p, c5);
            e5 = v.fma(p2, e5);
            v = load(values, row + 6 * L);
            c6 = v.fma(p, c6);
            e6 = v.fma(p2, e6);
            v = load(values, row + 7 * L);
            c7 = v.fma(p, c7);
            e7 = v.fma(p2, e7);
        }
        c0.intoArray(out, o);
        c1.intoArray(out, o + L);
        c2.intoArray(out, o + 2 * L);
        c3.intoArray(out, o + 3 * L);
        c4.intoArray(out, o + 4 * L);
        c5.intoArray(out, o + 5 * L);
        c6.intoArray(out, o + 6 * L);
        c7.intoArray(out, o + 7 * L);
        e0.intoArray(out, e);
        e1.intoArray(out, e + L);
        e2.intoArray(out, e + 2 * L);
        e3.intoArray(out, e + 3 * L);
        e4.intoArray(out, e + 4 * L);
        e5.intoArray(out, e + 5 * L);
        e6.intoArray(out, e + 6 * L);
        e7.intoArray(out, e + 7 * L);
    }

    /** One query head × {@code 4L} dimensions over a block of slots. */
    private static void accumulate1x4(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, float[] out, int o) {
        FloatVector c0 = FloatVector.fromArray(F, out, o);
        FloatVector c1 = FloatVector.fromArray(F, out, o + L);
        FloatVector c2 = FloatVector.fromArray(F, out, o + 2 * L);
        FloatVector c3 = FloatVector.fromArray(F, out, o + 3 * L);
        for (int r = 0; r < rows; r++) {
            long row = first + (long) r * d;
            FloatVector p = FloatVector.broadcast(F, w[wo + r]);
            c0 = load(values, row).fma(p, c0);
            c1 = load(values, row + L).fma(p, c1);
            c2 = load(values, row + 2 * L).fma(p, c2);
            c3 = load(values, row + 3 * L).fma(p, c3);
        }
        c0.intoArray(out, o);
        c1.intoArray(out, o + L);
        c2.intoArray(out, o + 2 * L);
        c3.intoArray(out, o + 3 * L);
    }

    /** One query head × {@code L} dimensions over a block of slots. */
    private static void accumulate1x1(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, float[] out, int o) {
        FloatVector c = FloatVector.fromArray(F, out, o);
        for (int r = 0; r < rows; r++) {
            c = load(values, first + (long) r * d).fma(FloatVector.broadcast(F, w[wo + r]), c);
        }
        c.intoArray(out, o);
    }

    /** Widens stored elements {@code [index, index+count)} to floats at {@code dst[dOff..]} (for tests). */
    static void widenRow(MemorySegment seg, DType dtype, long index, int count, float[] dst, int dOff) {
        Workspace ws = new Workspace(1);
        for (int done = 0; done < count; ) {
            int chunk = Math.min(ws.floats.length, count - done);
            if (dtype == DType.F32) {
                MemorySegment.copy(seg, F32_LE, (index + done) * 4, dst, dOff + done, chunk);
            } else {
                widen(seg, kind(dtype), index + done, chunk, ws);
                System.arraycopy(ws.floats, 0, dst, dOff + done, chunk);
            }
            done += chunk;
        }
    }
}
