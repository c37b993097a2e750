package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaLanes.LE;
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
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The inner kernels of quantized decode attention ({@link PanamaQuantAttention}), four query heads
 * at a time: the scores of one stored Q8 or Q4 key row, and the accumulation of a block of value
 * rows into {@code 2L} output dimensions. Codes are loaded as {@code L} bytes, widened to floats
 * in registers ({@code B2F}; Q4's nibbles split by a mask and an unsigned shift first) and fed to
 * the FMAs of all four heads, so each byte is loaded once per batch of heads; a group's scale
 * multiplies the group's sum once. Head offsets {@code ha..he} may repeat (a batch of fewer than
 * four heads repeats its last head): a repeated head computes and writes the same bits twice.
 */
final class PanamaQuantBlocks {

    /** {@code L} bytes: the codes that widen to one float vector. */
    static final VectorSpecies<Byte> B = L >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * L)) : null;

    private PanamaQuantBlocks() {
    }

    private static FloatVector widen(ByteVector codes) {
        return (FloatVector) codes.convertShape(VectorOperators.B2F, F, 0);
    }

    /**
     * {@code w[h + r] = scale·Σ_g d_rg·Σ_{i∈g} q_h,i·c_r,i} for the four heads at query offsets
     * {@code qa..qe} and weight offsets {@code wa..we}, over the Q8 key rows {@code r < rows} from
     * byte 0 of {@code keys} (one block: the segment checks are hoisted out of the loop over rows).
     */
    static void scores4Q8(MemorySegment keys, int rows, long rowBytes, int d, float[] q, int qa, int qb, int qc,
                          int qe, float scale, float[] w, int wa, int wb, int wc, int we) {
        for (int r = 0; r < rows; r++) {
            long at = r * rowBytes;
            FloatVector ta = FloatVector.zero(F);
            FloatVector tb = FloatVector.zero(F);
            FloatVector tc = FloatVector.zero(F);
            FloatVector te = FloatVector.zero(F);
            for (int base = 0; base < d; base += GROUP) {
                long g = at + (long) base / GROUP * Q8_GROUP_BYTES;
                FloatVector sa = FloatVector.zero(F);
                FloatVector sb = FloatVector.zero(F);
                FloatVector sc = FloatVector.zero(F);
                FloatVector se = FloatVector.zero(F);
                for (int i = 0; i < GROUP; i += L) {
                    FloatVector k = widen(ByteVector.fromMemorySegment(B, keys, g + Q8_CODES + i, LE));
                    int o = base + i;
                    sa = FloatVector.fromArray(F, q, qa + o).fma(k, sa);
                    sb = FloatVector.fromArray(F, q, qb + o).fma(k, sb);
                    sc = FloatVector.fromArray(F, q, qc + o).fma(k, sc);
                    se = FloatVector.fromArray(F, q, qe + o).fma(k, se);
                }
                FloatVector scaleG = FloatVector.broadcast(F, keys.get(F32, g + Q8_SCALE));
                ta = sa.fma(scaleG, ta);
                tb = sb.fma(scaleG, tb);
                tc = sc.fma(scaleG, tc);
                te = se.fma(scaleG, te);
            }
            // The lane sums of PanamaLanes.sum, written out: a call here was not inlined and boxed
            // its vector argument on every row.
            for (int half = L / 2; half >= 1; half /= 2) {
                ta = ta.add(ta.slice(half));
                tb = tb.add(tb.slice(half));
                tc = tc.add(tc.slice(half));
                te = te.add(te.slice(half));
            }
            w[wa + r] = scale * ta.lane(0);
            w[wb + r] = scale * tb.lane(0);
            w[wc + r] = scale * tc.lane(0);
            w[we + r] = scale * te.lane(0);
        }
    }

    /**
     * {@code w[h + r] = scale·Σ_g (d_rg·Σ_{i∈g} q_h,i·c_r,i + m_rg·σ_h,g)} over the Q4 key rows
     * {@code r < rows} from byte 0 of {@code keys}, where {@code σ_h,g = Σ_{i∈g} q_h,i} is
     * {@code sums[h·groups + g]}, summed once per attention call.
     */
    static void scores4Q4(MemorySegment keys, int rows, long rowBytes, int d, float[] q, int qa, int qb, int qc,
                          int qe, float[] sums, float scale, float[] w, int wa, int wb, int wc, int we) {
        for (int r = 0; r < rows; r++) {
            long at = r * rowBytes;
            int groups = d / GROUP;
            FloatVector ta = FloatVector.zero(F);
            FloatVector tb = FloatVector.zero(F);
            FloatVector tc = FloatVector.zero(F);
            FloatVector te = FloatVector.zero(F);
            float ma = 0f;
            float mb = 0f;
            float mc = 0f;
            float me = 0f;
            for (int gi = 0; gi < groups; gi++) {
                long g = at + (long) gi * Q4_GROUP_BYTES;
                int base = gi * GROUP;
                FloatVector sa = FloatVector.zero(F);
                FloatVector sb = FloatVector.zero(F);
                FloatVector sc = FloatVector.zero(F);
                FloatVector se = FloatVector.zero(F);
                for (int j = 0; j < GROUP / 2; j += L) {
                    ByteVector packed = ByteVector.fromMemorySegment(B, keys, g + Q4_CODES + j, LE);
                    FloatVector lo = widen(packed.and((byte) 0xF));
                    FloatVector hi = widen(packed.lanewise(VectorOperators.LSHR, 4));
                    int o = base + j;
                    int p = o + GROUP / 2;
                    sa = FloatVector.fromArray(F, q, qa + p).fma(hi, FloatVector.fromArray(F, q, qa + o).fma(lo, sa));
                    sb = FloatVector.fromArray(F, q, qb + p).fma(hi, FloatVector.fromArray(F, q, qb + o).fma(lo, sb));
                    sc = FloatVector.fromArray(F, q, qc + p).fma(hi, FloatVector.fromArray(F, q, qc + o).fma(lo, sc));
                    se = FloatVector.fromArray(F, q, qe + p).fma(hi, FloatVector.fromArray(F, q, qe + o).fma(lo, se));
                }
                FloatVector scaleG = FloatVector.broadcast(F, keys.get(F32, g + Q4_SCALE));
                ta = sa.fma(scaleG, ta);
                tb = sb.fma(scaleG, tb);
                tc = sc.fma(scaleG, tc);
                te = se.fma(scaleG, te);
                float m = keys.get(F32, g + Q4_MIN);
                ma = Math.fma(m, sums[gi], ma);
                mb = Math.fma(m, sums[groups + gi], mb);
                mc = Math.fma(m, sums[2 * groups + gi], mc);
                me = Math.fma(m, sums[3 * groups + gi], me);
            }
            // The lane sums of PanamaLanes.sum, written out, as in scores4Q8.
            for (int half = L / 2; half >= 1; half /= 2) {
                ta = ta.add(ta.slice(half));
                tb = tb.add(tb.slice(half));
                tc = tc.add(tc.slice(half));
                te = te.add(te.slice(half));
            }
            w[wa + r] = scale * (ta.lane(0) + ma);
            w[wb + r] = scale * (tb.lane(0) + mb);
            w[wc + r] = scale * (tc.lane(0) + mc);
            w[we + r] = scale * (te.lane(0) + me);
        }
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
        FloatVector a0 = FloatVector.fromArray(F, out, oa + dim);
        FloatVector a1 = FloatVector.fromArray(F, out, oa + dim + L);
        FloatVector b0 = FloatVector.fromArray(F, out, ob + dim);
        FloatVector b1 = FloatVector.fromArray(F, out, ob + dim + L);
        FloatVector c0 = FloatVector.fromArray(F, out, oc + dim);
        FloatVector c1 = FloatVector.fromArray(F, out, oc + dim + L);
        FloatVector e0 = FloatVector.fromArray(F, out, oe + dim);
        FloatVector e1 = FloatVector.fromArray(F, out, oe + dim + L);
        for (int r = 0; r < rows; r++) {
            long row = r * rowBytes;
            float s = values.get(F32, row + scaleAt);
            FloatVector v0 = widen(ByteVector.fromMemorySegment(B, values, row + codesAt, LE));
            FloatVector v1 = widen(ByteVector.fromMemorySegment(B, values, row + codesAt + L, LE));
            FloatVector p = FloatVector.broadcast(F, w[wa + r] * s);
            a0 = v0.fma(p, a0);
            a1 = v1.fma(p, a1);
            p = FloatVector.broadcast(F, w[wb + r] * s);
            b0 = v0.fma(p, b0);
            b1 = v1.fma(p, b1);
            p = FloatVector.broadcast(F, w[wc + r] * s);
            c0 = v0.fma(p, c0);
            c1 = v1.fma(p, c1);
            p = FloatVector.broadcast(F, w[we + r] * s);
            e0 = v0.fma(p, e0);
            e1 = v1.fma(p, e1);
        }
        a0.intoArray(out, oa + dim);
        a1.intoArray(out, oa + dim + L);
        b0.intoArray(out, ob + dim);
        b1.intoArray(out, ob + dim + L);
        c0.intoArray(out, oc + dim);
        c1.intoArray(out, oc + dim + L);
        e0.intoArray(out, oe + dim);
        e1.intoArray(out, oe + dim + L);
    }

    /**
     * {@code out_h[i] += Σ_r w_h[r]·(m_r + d_r·c_r,i)} for dimensions {@code i} in
     * {@code [dim, dim + L)} and {@code [dim + 16, dim + 16 + L)} ({@code dim} in the low half of
     * its group: the low and the high nibbles of the same {@code L} bytes) over the {@code rows} Q4
     * value rows from byte 0 of {@code values}. The minimum's share {@code Σ_r w_h[r]·m_r} is summed
     * once and added to every dimension at the end.
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
        float ma = 0f;
        float mb = 0f;
        float mc = 0f;
        float me = 0f;
        for (int r = 0; r < rows; r++) {
            long row = r * rowBytes;
            float s = values.get(F32, row + group + Q4_SCALE);
            float m = values.get(F32, row + group + Q4_MIN);
            ByteVector packed = ByteVector.fromMemorySegment(B, values, row + codesAt, LE);
            FloatVector v0 = widen(packed.and((byte) 0xF));
            FloatVector v1 = widen(packed.lanewise(VectorOperators.LSHR, 4));
            FloatVector p = FloatVector.broadcast(F, w[wa + r] * s);
            a0 = v0.fma(p, a0);
            a1 = v1.fma(p, a1);
            ma = Math.fma(w[wa + r], m, ma);
            p = FloatVector.broadcast(F, w[wb + r] * s);
            b0 = v0.fma(p, b0);
            b1 = v1.fma(p, b1);
            mb = Math.fma(w[wb + r], m, mb);
            p = FloatVector.broadcast(F, w[wc + r] * s);
            c0 = v0.fma(p, c0);
            c1 = v1.fma(p, c1);
            mc = Math.fma(w[wc + r], m, mc);
            p = FloatVector.broadcast(F, w[we + r] * s);
            e0 = v0.fma(p, e0);
            e1 = v1.fma(p, e1);
            me = Math.fma(w[we + r], m, me);
        }
        a0.add(ma).intoArray(out, oa + dim);
        a1.add(ma).intoArray(out, oa + hi);
        b0.add(mb).intoArray(out, ob + dim);
        b1.add(mb).intoArray(out, ob + hi);
        c0.add(mc).intoArray(out, oc + dim);
        c1.add(mc).intoArray(out, oc + hi);
        e0.add(me).intoArray(out, oe + dim);
        e1.add(me).intoArray(out, oe + hi);
    }
}
