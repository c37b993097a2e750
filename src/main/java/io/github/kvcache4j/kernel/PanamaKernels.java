package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaBlocks.accumulate4x4Half;
import static io.github.kvcache4j.kernel.PanamaBlocks.scores4x4Half;
import static io.github.kvcache4j.kernel.PanamaHalf.KIND_BF16;
import static io.github.kvcache4j.kernel.PanamaHalf.KIND_F32;
import static io.github.kvcache4j.kernel.PanamaHalf.widen;
import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaScores.scoreTile;
import static io.github.kvcache4j.kernel.PanamaSoftmax.exponentialsOfBlock;
import static io.github.kvcache4j.kernel.PanamaSoftmax.maskAndRaise;
import static io.github.kvcache4j.kernel.PanamaSoftmax.start;
import static io.github.kvcache4j.kernel.PanamaValues.accumulate;
import static io.github.kvcache4j.kernel.Workspace.VALUE_BLOCK;
import static io.github.kvcache4j.layout.KeyTiles.TILE;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * Vector API kernels. Decode attention walks the slots in chunks of {@value #CHUNK}: a score pass
 * reads the chunk's key tiles as one forward stream (four query heads × {@value
 * io.github.kvcache4j.layout.KeyTiles#TILE} keys per dimension row, so one broadcast of a query
 * element feeds {@code TILE/L} FMAs; {@link PanamaScores}), then a value pass turns each block of
 * {@value Workspace#VALUE_BLOCK} scores into exponentials ({@link PanamaSoftmax}) and accumulates
 * the block's value rows into register-resident outputs ({@link PanamaValues}), while the block's
 * scores are still in L1. Between chunks the running maximum is carried over as in an online
 * softmax: when a chunk raises the maximum, the outputs and sums gathered so far are rescaled once.
 * Each pass is a long sequential read of one region; alternating small key and value blocks
 * measured slower.
 *
 * <p>F16 and BF16 keys and values of GQA groups of four (or eight) with head dimensions in
 * multiples of {@code 4L} are widened in registers as they are loaded ({@link PanamaHalf#loadHalf});
 * other half-precision shapes are widened into a small on-heap workspace first (C2 compiles the
 * loop over {@link Float#float16ToFloat} to the hardware conversion). The half-precision kernels
 * repeat the F32 ones with a different load on purpose, generated from one template
 * ({@link PanamaBlocks}): one kernel that chose its load per dtype at run time grew past C2's
 * inlining budget once it had seen several dtypes, and a vector returned from a call that is not
 * inlined is boxed on every step. Sums and exponentials use fixed sequences of lane-wise
 * operations, so results are bit-identical in every JIT tier and on every thread.
 *
 * <p>Q8 and Q4 rows go to {@link PanamaQuantAttention}, which dequantizes in registers.
 */
final class PanamaKernels implements Kernels {

    static final PanamaKernels INSTANCE = new PanamaKernels();

    /** Slots per chunk: the chunk's scores for a GQA group of 8 fit in 32 KiB. */
    static final int CHUNK = 1024;

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
        float s = PanamaLanes.sum(acc0.add(acc1));
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public void attend(AttentionCall call) {
        assert call.violation() == null : call.violation();
        // Dispatched here rather than inside the loop below: a larger loop method outgrows C2's
        // inlining budget, and its vectors are then boxed on every step.
        if (call.dtype.isQuantized()) {
            if (PanamaQuantAttention.SUPPORTED) {
                PanamaQuantAttention.attend(call);
            } else {
                ScalarKernels.INSTANCE.attend(call);
            }
            return;
        }
        attendElementwise(call);
    }

    /** {@link #attend} over F32, F16 and BF16 rows. */
    private static void attendElementwise(AttentionCall call) {
        final MemorySegment[] keyBlocks = call.keyBlocks;
        final MemorySegment[] valueBlocks = call.valueBlocks;
        final DType dtype = call.dtype;
        final int n = call.n;
        final float[] q = call.queries;
        final int qOff = call.queryOffset;
        final int group = call.group;
        final float scale = call.scale;
        final float[] w = call.weights;
        final int stride = call.stride;
        final float[] out = call.out;
        final int outOff = call.outOffset;
        final Workspace workspace = call.workspace;
        int kind = PanamaHalf.kind(dtype);
        int d = call.headDim;
        boolean halfInRegisters = kind != KIND_F32 && 4 * L == TILE && group % 4 == 0 && d % (4 * L) == 0;
        boolean bf16 = kind == KIND_BF16;
        start(call);
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int end = Math.min(n, c0 + CHUNK);
            for (int t0 = c0; t0 < end; t0 += TILE) {
                MemorySegment keys = keyBlocks[t0 / TILE];
                MemorySegment src = keys;
                long first = 0;
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
            maskAndRaise(call, c0, end);
            for (int j0 = c0; j0 < end; j0 += VALUE_BLOCK) {
                int rows = Math.min(VALUE_BLOCK, end - j0);
                exponentialsOfBlock(call, j0, rows);
                MemorySegment values = valueBlocks[j0 / TILE];
                MemorySegment src = values;
                long first = 0;
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
}
