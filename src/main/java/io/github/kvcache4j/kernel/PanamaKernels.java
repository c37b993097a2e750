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
 * Vector API kernels. Scores read key tiles ({@value Kernels#TILE} keys per dimension row) and
 * accumulate four query heads at once; values are accumulated into register-resident outputs for
 * four query heads and {@code 4·L} dimensions at a time, over blocks of slots that stay in L1.
 * Half-precision tiles and blocks are widened into a small on-heap workspace first (JDK 25 has no
 * half-float vector type; C2 turns an array loop over {@link Float#float16ToFloat} into the
 * hardware conversion, exact for zero, subnormals, infinities and NaN). Sums and
 * exponentials use fixed sequences of lane-wise operations, so results are bit-identical in every
 * JIT tier and on every thread.
 */
final class PanamaKernels implements Kernels {

    static final PanamaKernels INSTANCE = new PanamaKernels();

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
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

    @Override
    public void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                       float[] q, int qOff, int group, float scale,
                       int[] positions, int queryPosition,
                       float[] w, int stride, float[] maxAndSum,
                       float[] out, int outOff, Workspace workspace) {
        int kind = kind(dtype);
        scores(keys, kind, n, headDim, q, qOff, group, scale, w, stride, workspace);
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
        accumulate(values, kind, n, headDim, group, w, stride, out, outOff, workspace);
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
     * {@code w[g*stride+j] = scale·q_g·k_j} for whole key tiles covering {@code [0, n)}.
     * Half-precision tiles are first widened into the workspace, so the scoring loops only ever
     * read floats and stay small enough for the JIT to keep every vector in registers.
     */
    private static void scores(MemorySegment keys, int kind, int n, int d, float[] q, int qOff, int group,
                               float scale, float[] w, int stride, Workspace ws) {
        int tiles = (n + TILE - 1) / TILE;
        for (int t = 0; t < tiles; t++) {
            long first = (long) t * TILE * d;
            MemorySegment src = keys;
            if (kind != KIND_F32) {
                src = widen(keys, kind, first, TILE * d, ws);
                first = 0;
            }
            for (int lane = 0; lane < TILE; lane += L) {
                int col = t * TILE + lane;
                int g = 0;
                for (; g + 4 <= group; g += 4) {
                    scores4(src, first + lane, d, q, qOff + g * d, scale, w, g * stride + col, stride);
                }
                for (; g < group; g++) {
                    scores1(src, first + lane, d, q, qOff + g * d, scale, w, g * stride + col);
                }
            }
        }
    }

    /**
     * Widens {@code count} stored half-precision elements from element {@code first} into the
     * start of the workspace's floats and returns them as a segment. F16 goes through
     * {@link Float#float16ToFloat} in a plain array loop, which C2 compiles to the hardware
     * conversion instruction; BF16 is a lane-wise shift.
     */
    private static MemorySegment widen(MemorySegment src, int kind, long first, int count, Workspace ws) {
        float[] dst = ws.floats;
        if (kind == KIND_F16) {
            short[] halves = ws.halves;
            MemorySegment.copy(src, I16_LE, first * 2, halves, 0, count);
            halvesToFloats(halves, dst, count);
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

    /** Kept apart so that C2 vectorises the loop on its own. */
    static void halvesToFloats(short[] halves, float[] dst, int count) {
        for (int i = 0; i < count; i++) {
            dst[i] = Float.float16ToFloat(halves[i]);
        }
    }

    private static final java.lang.foreign.ValueLayout.OfShort I16_LE =
            java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private static final java.lang.foreign.ValueLayout.OfFloat F32_LE =
            java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    /**
     * Scores of {@code L} keys for four query heads: one key-row load feeds four FMAs, and even and
     * odd dimensions use separate accumulators so eight FMA chains are in flight.
     */
    private static void scores4(MemorySegment keys, long base, int d, float[] q, int qo,
                                float scale, float[] w, int wo, int stride) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        int i = 0;
        for (; i + 1 < d; i += 2) {
            FloatVector k = load(keys, base + (long) i * TILE);
            FloatVector k2 = load(keys, base + (long) (i + 1) * TILE);
            a0 = k.fma(FloatVector.broadcast(F, q[qo + i]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[qo + d + i]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[qo + 2 * d + i]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[qo + 3 * d + i]), a3);
            b0 = k2.fma(FloatVector.broadcast(F, q[qo + i + 1]), b0);
            b1 = k2.fma(FloatVector.broadcast(F, q[qo + d + i + 1]), b1);
            b2 = k2.fma(FloatVector.broadcast(F, q[qo + 2 * d + i + 1]), b2);
            b3 = k2.fma(FloatVector.broadcast(F, q[qo + 3 * d + i + 1]), b3);
        }
        if (i < d) {
            FloatVector k = load(keys, base + (long) i * TILE);
            a0 = k.fma(FloatVector.broadcast(F, q[qo + i]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[qo + d + i]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[qo + 2 * d + i]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[qo + 3 * d + i]), a3);
        }
        a0.add(b0).mul(scale).intoArray(w, wo);
        a1.add(b1).mul(scale).intoArray(w, wo + stride);
        a2.add(b2).mul(scale).intoArray(w, wo + 2 * stride);
        a3.add(b3).mul(scale).intoArray(w, wo + 3 * stride);
    }

    /** Scores of {@code L} keys for one query head, with two independent accumulators. */
    private static void scores1(MemorySegment keys, long base, int d, float[] q, int qo,
                                float scale, float[] w, int wo) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i + 1 < d; i += 2) {
            a0 = load(keys, base + (long) i * TILE).fma(FloatVector.broadcast(F, q[qo + i]), a0);
            a1 = load(keys, base + (long) (i + 1) * TILE).fma(FloatVector.broadcast(F, q[qo + i + 1]), a1);
        }
        if (i < d) {
            a0 = load(keys, base + (long) i * TILE).fma(FloatVector.broadcast(F, q[qo + i]), a0);
        }
        a0.add(a1).mul(scale).intoArray(w, wo);
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
            FloatVector e = expNonPositive(FloatVector.fromArray(F, w, off + j).sub(vm));
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
     * {@code out_g = Σ_j w[g][j]·v_j} over blocks of {@link Kernels#VALUE_BLOCK} slots, each read from
     * memory once (half-precision blocks are widened into the workspace first).
     */
    private static void accumulate(MemorySegment values, int kind, int n, int d, int group,
                                   float[] w, int stride, float[] out, int outOff, Workspace ws) {
        Arrays.fill(out, outOff, outOff + group * d, 0f);
        for (int j0 = 0; j0 < n; j0 += VALUE_BLOCK) {
            int rows = Math.min(VALUE_BLOCK, n - j0);
            MemorySegment src = values;
            long first = (long) j0 * d;
            if (kind != KIND_F32) {
                src = widen(values, kind, first, rows * d, ws);
                first = 0;
            }
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
    }

    private static DType dtypeOf(int kind) {
        return kind == KIND_F32 ? DType.F32 : kind == KIND_F16 ? DType.F16 : DType.BF16;
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
