package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * The online softmax of the Vector API attention: the running maximum with its rescaling, and the
 * exponentials of a block of scores. Every step is a fixed sequence of lane-wise operations, so the
 * results are the same bits in every JIT tier and on every thread.
 */
final class PanamaSoftmax {

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.42860682030941723212e-6f;

    private PanamaSoftmax() {
    }

    /**
     * Makes {@code maxAndSum[at]} the maximum of the scores seen so far, including
     * {@code w[off+c0 .. off+end)}. When it rises, the output, the sum and (if kept) the earlier
     * weights are rescaled by {@code exp(old − new)}. {@link StrictMath#exp} keeps the factor the
     * same in every JIT tier; it runs a few times per call, not per slot.
     */
    static void raiseMax(float[] w, int off, int c0, int end, boolean keepWeights, float[] maxAndSum, int at,
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

    /**
     * Gives the masked slots of {@code [c0, end)} score {@code −∞} for every head of the call, then
     * raises each head's running maximum over the chunk ({@link #raiseMax}).
     */
    static void maskAndRaise(AttentionCall call, int c0, int end) {
        float[] w = call.weights;
        int stride = call.stride;
        int group = call.group;
        int[] positions = call.positions;
        if (positions != null) {
            for (int j = c0; j < end; j++) {
                if (positions[j] > call.queryPosition) {
                    for (int g = 0; g < group; g++) {
                        w[g * stride + j] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
        }
        int d = call.headDim;
        for (int g = 0; g < group; g++) {
            raiseMax(w, g * stride, c0, end, call.keepWeights, call.maxAndSum, 2 * g, call.out, call.outOffset + g * d, d);
        }
    }

    /** Turns the scores of slots {@code [j0, j0 + rows)} of every head into exponentials and adds them to the sums. */
    static void exponentialsOfBlock(AttentionCall call, int j0, int rows) {
        float[] maxAndSum = call.maxAndSum;
        for (int g = 0; g < call.group; g++) {
            maxAndSum[2 * g + 1] += exponentials(call.weights, g * call.stride + j0, rows, maxAndSum[2 * g],
                    call.workspace.lanes);
        }
    }

    /** Zeroes the call's outputs and sets every head's maximum to {@code −∞} and its sum to 0. */
    static void start(AttentionCall call) {
        Arrays.fill(call.out, call.outOffset, call.outOffset + call.group * call.headDim, 0f);
        for (int g = 0; g < call.group; g++) {
            call.maxAndSum[2 * g] = Float.NEGATIVE_INFINITY;
            call.maxAndSum[2 * g + 1] = 0f;
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
    static float exponentials(float[] w, int off, int rows, float m, float[] lanes) {
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
        // Spilled and summed in order rather than through PanamaLanes.sum: this call site runs once
        // per block, too rarely for C2 to inline sum, and a vector passed to a call that is not
        // inlined is boxed.
        acc.intoArray(lanes, 0);
        float sum = 0f;
        for (int i = 0; i < L; i++) {
            sum += lanes[i];
        }
        return sum;
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
}
