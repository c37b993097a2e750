package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaCodes.bytes;
import static io.github.kvcache4j.kernel.PanamaCodes.q4;
import static io.github.kvcache4j.kernel.PanamaCodes.q8;
import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.QuantizedLayout.F32;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_MIN;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_SCALE;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_SCALE;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;

/**
 * The value pass of quantized decode attention ({@link PanamaQuantAttention}): a block of stored
 * Q8 or Q4 value rows accumulated into {@code 2L} output dimensions of four query heads,
 * {@code out_h[i] += Σ_r w_h[r]·v_r,i} with {@code v_r,i} the stored value ({@link PanamaCodes}).
 * The eight accumulators stay in registers over the block; per row, two vectors of codes are
 * dequantized once (one multiply, or one FMA for Q4's minimum, per vector) and feed eight FMAs,
 * each with a weight broadcast straight from memory. Head offsets may repeat, as in
 * {@link PanamaQuantScores}.
 */
final class PanamaQuantValues {

    private PanamaQuantValues() {
    }

    /**
     * {@code out_h[i] += Σ_r w_h[r]·d_r·c_r,i} for the {@code 2L} dimensions {@code i} from
     * {@code dim} (inside one group) over the {@code rows} Q8 value rows from byte 0 of
     * {@code values}: weights at {@code wa..we}, outputs at {@code oa..oe}.
     */
    static void values4Q8(MemorySegment values, int rows, long rowBytes, int dim, float[] w, int wa, int wb, int wc,
                          int we, float[] out, int oa, int ob, int oc, int oe) {
        long group = (long) dim / GROUP * Q8_GROUP_BYTES;
        long scaleAt = group + Q8_SCALE;
        long codesAt = group + Q8_CODES + dim % GROUP;
        int next = dim + L;
        FloatVector a0 = FloatVector.fromArray(F, out, oa + dim);
        FloatVector a1 = FloatVector.fromArray(F, out, oa + next);
        FloatVector b0 = FloatVector.fromArray(F, out, ob + dim);
        FloatVector b1 = FloatVector.fromArray(F, out, ob + next);
        FloatVector c0 = FloatVector.fromArray(F, out, oc + dim);
        FloatVector c1 = FloatVector.fromArray(F, out, oc + next);
        FloatVector e0 = FloatVector.fromArray(F, out, oe + dim);
        FloatVector e1 = FloatVector.fromArray(F, out, oe + next);
        for (int r = 0; r < rows; r++) {
            long row = r * rowBytes;
            float s = values.get(F32, row + scaleAt);
            FloatVector v0 = q8(values, row + codesAt, s);
            FloatVector v1 = q8(values, row + codesAt + L, s);
            FloatVector p = FloatVector.broadcast(F, w[wa + r]);
            a0 = v0.fma(p, a0);
            a1 = v1.fma(p, a1);
            p = FloatVector.broadcast(F, w[wb + r]);
            b0 = v0.fma(p, b0);
            b1 = v1.fma(p, b1);
            p = FloatVector.broadcast(F, w[wc + r]);
            c0 = v0.fma(p, c0);
            c1 = v1.fma(p, c1);
            p = FloatVector.broadcast(F, w[we + r]);
            e0 = v0.fma(p, e0);
            e1 = v1.fma(p, e1);
        }
        a0.intoArray(out, oa + dim);
        a1.intoArray(out, oa + next);
        b0.intoArray(out, ob + dim);
        b1.intoArray(out, ob + next);
        c0.intoArray(out, oc + dim);
        c1.intoArray(out, oc + next);
        e0.intoArray(out, oe + dim);
        e1.intoArray(out, oe + next);
    }

    /**
     * {@code out_h[i] += Σ_r w_h[r]·fma(d_r, c_r,i, m_r)} for dimensions {@code i} in
     * {@code [dim, dim + L)} and {@code [dim + 16, dim + 16 + L)} ({@code dim} in the low half of
     * its group: the low and the high nibbles of the same {@code L} bytes) over the {@code rows} Q4
     * value rows from byte 0 of {@code values}.
     */
    static void values4Q4(MemorySegment values, int rows, long rowBytes, int dim, float[] w, int wa, int wb, int wc,
                          int we, float[] out, int oa, int ob, int oc, int oe) {
        long group = (long) dim / GROUP * Q4_GROUP_BYTES;
        long codesAt = group + Q4_CODES + dim % GROUP;
        int hi = dim + GROUP / 2;
        FloatVector a0 = FloatVector.fromArray(F, out, oa + dim);
        FloatVector a1 = FloatVector.fromArray(F, out, oa + hi);
        FloatVector b0 = FloatVector.fromArray(F, out, ob + dim);
        FloatVector b1 = FloatVector.fromArray(F, out, ob + hi);
        FloatVector c0 = FloatVector.fromArray(F, out, oc + dim);
        FloatVector c1 = FloatVector.fromArray(F, out, oc + hi);
        FloatVector e0 = FloatVector.fromArray(F, out, oe + dim);
        FloatVector e1 = FloatVector.fromArray(F, out, oe + hi);
        for (int r = 0; r < rows; r++) {
            long row = r * rowBytes;
            float s = values.get(F32, row + group + Q4_SCALE);
            float m = values.get(F32, row + group + Q4_MIN);
            ByteVector packed = bytes(values, row + codesAt);
            FloatVector v0 = q4(packed, 0, s, m);
            FloatVector v1 = q4(packed, 4, s, m);
            FloatVector p = FloatVector.broadcast(F, w[wa + r]);
            a0 = v0.fma(p, a0);
            a1 = v1.fma(p, a1);
            p = FloatVector.broadcast(F, w[wb + r]);
            b0 = v0.fma(p, b0);
            b1 = v1.fma(p, b1);
            p = FloatVector.broadcast(F, w[wc + r]);
            c0 = v0.fma(p, c0);
            c1 = v1.fma(p, c1);
            p = FloatVector.broadcast(F, w[we + r]);
            e0 = v0.fma(p, e0);
            e1 = v1.fma(p, e1);
        }
        a0.intoArray(out, oa + dim);
        a1.intoArray(out, oa + hi);
        b0.intoArray(out, ob + dim);
        b1.intoArray(out, ob + hi);
        c0.intoArray(out, oc + dim);
        c1.intoArray(out, oc + hi);
        e0.intoArray(out, oe + dim);
        e1.intoArray(out, oe + hi);
    }
}
