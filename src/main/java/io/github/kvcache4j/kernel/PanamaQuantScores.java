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
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_SCALE;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_SCALE;
import static io.github.kvcache4j.layout.KeyTiles.TILE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;

/**
 * The score pass of quantized decode attention ({@link PanamaQuantAttention}): the scores of one
 * block of stored Q8 or Q4 key rows for four query heads, {@code w_h[r] = scale·Σ_i q_h,i·k_r,i}
 * with {@code k_r,i} the stored value ({@link PanamaCodes}).
 *
 * <p>Rows are taken four at a time (a quad): sixteen accumulators, one per row and head, so each
 * query vector is loaded once per four rows and each row's codes are dequantized once per four
 * heads. A score is the lane sum of its accumulator. Instead of a horizontal sum per row and head,
 * the accumulators (stored in {@code part}: head {@code k}'s row {@code r} at
 * {@code k·PART + r·L}) are transposed and added in a tree: {@code merge(x, y, h)} keeps the lanes
 * of {@code x} whose bit {@code h} is clear and those of {@code y} whose bit is set, each plus its
 * partner lane {@code j^h} (two blends, one permute, one add), so one vector carries the partial
 * sums of twice as many rows. Levels {@code h = 1, 2} merge a quad into one vector, levels
 * {@code h = 4 .. L/2} merge {@code L/4} quads into the {@code L} scores of {@code L} consecutive
 * rows, lane {@code j} the score of row {@code j}, stored with one vector store: {@code L − 1}
 * merges per {@code L} rows and head, against {@code log2 L} permutes, blends and adds for each
 * halving lane sum. Every step is lane-wise, so the sums have the same order in every JIT tier.
 *
 * <p>A block's rows are padded to a multiple of {@code L} by repeating its last row (never reading
 * the bytes after it); the padded scores land in the weights row before the next tile, which the
 * softmax overwrites. Head offsets may repeat (a batch of fewer than four heads repeats its last
 * head): a repeated head computes and writes the same bits twice.
 */
final class PanamaQuantScores {

    /** Floats of {@code part} per head: one vector per row of a block. */
    static final int PART = TILE * L;

    /** A Q4 group's scale (low word) and minimum (high word), little-endian as {@link QuantizedLayout} stores them. */
    private static final ValueLayout.OfLong SCALE_AND_MIN =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final VectorMask<Float> BIT1 = laneBit(1);
    private static final VectorMask<Float> BIT2 = laneBit(2);
    private static final VectorMask<Float> BIT4 = L >= 8 ? laneBit(4) : null;
    private static final VectorMask<Float> BIT8 = L >= 16 ? laneBit(8) : null;
    private static final VectorShuffle<Float> SWAP1 = partner(1);
    private static final VectorShuffle<Float> SWAP2 = partner(2);
    private static final VectorShuffle<Float> SWAP4 = L >= 8 ? partner(4) : null;
    private static final VectorShuffle<Float> SWAP8 = L >= 16 ? partner(8) : null;

    private PanamaQuantScores() {
    }

    private static VectorMask<Float> laneBit(int h) {
        boolean[] set = new boolean[L];
        for (int j = 0; j < L; j++) {
            set[j] = (j & h) != 0;
        }
        return VectorMask.fromArray(F, set, 0);
    }

    private static VectorShuffle<Float> partner(int h) {
        return VectorShuffle.fromOp(F, j -> j ^ h);
    }

    /** Lane {@code j}: {@code x[j] + x[j^h]} where bit {@code h} of {@code j} is clear, else {@code y[j] + y[j^h]}. */
    private static FloatVector merge(FloatVector x, FloatVector y, VectorMask<Float> bit, VectorShuffle<Float> swap) {
        return x.blend(y, bit).add(y.blend(x, bit).rearrange(swap));
    }

    /**
     * {@code w[h + r] = scale·Σ_i q_h,i·d_r,g(i)·c_r,i} for the four heads at query offsets
     * {@code qa..qe} and weight offsets {@code wa..we}, over the Q8 key rows {@code r < rows} from
     * byte 0 of {@code keys}; {@code part} holds {@code 4·PART} floats of working memory.
     */
    static void scores4Q8(MemorySegment keys, int rows, long rowBytes, int d, float[] q, int qa, int qb, int qc,
                          int qe, float scale, float[] w, int wa, int wb, int wc, int we, float[] part) {
        assert rows >= 1 && rows <= TILE && part.length >= 4 * PART : rows;
        int padded = (rows + L - 1) / L * L;
        long last = rows - 1;
        for (int r = 0; r < padded; r += 4) {
            quadQ8(keys, Math.min(r, last) * rowBytes, Math.min(r + 1, last) * rowBytes,
                    Math.min(r + 2, last) * rowBytes, Math.min(r + 3, last) * rowBytes, d, q, qa, qb, qc, qe,
                    part, r * L);
        }
        scoresOfRows(part, padded / L, scale, w, wa, wb, wc, we);
    }

    /**
     * {@code w[h + r] = scale·Σ_i q_h,i·fma(d_r,g(i), c_r,i, m_r,g(i))}, as {@link #scores4Q8} over
     * Q4 key rows.
     */
    static void scores4Q4(MemorySegment keys, int rows, long rowBytes, int d, float[] q, int qa, int qb, int qc,
                          int qe, float scale, float[] w, int wa, int wb, int wc, int we, float[] part) {
        assert rows >= 1 && rows <= TILE && part.length >= 4 * PART : rows;
        assert QuantizedLayout.Q4_MIN == Q4_SCALE + Float.BYTES : "SCALE_AND_MIN reads the minimum after the scale";
        int padded = (rows + L - 1) / L * L;
        long last = rows - 1;
        for (int r = 0; r < padded; r += 4) {
            quadQ4(keys, Math.min(r, last) * rowBytes, Math.min(r + 1, last) * rowBytes,
                    Math.min(r + 2, last) * rowBytes, Math.min(r + 3, last) * rowBytes, d, q, qa, qb, qc, qe,
                    part, r * L);
        }
        scoresOfRows(part, padded / L, scale, w, wa, wb, wc, we);
    }

    /** Stores the lane-wise dot products of the Q8 rows at bytes {@code r0..r3} with four queries to {@code part[k·PART + at + i·L]}. */
    private static void quadQ8(MemorySegment keys, long r0, long r1, long r2, long r3, int d, float[] q, int qa,
                               int qb, int qc, int qe, float[] part, int at) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector b0 = a0;
        FloatVector b1 = a0;
        FloatVector b2 = a0;
        FloatVector b3 = a0;
        FloatVector c0 = a0;
        FloatVector c1 = a0;
        FloatVector c2 = a0;
        FloatVector c3 = a0;
        FloatVector e0 = a0;
        FloatVector e1 = a0;
        FloatVector e2 = a0;
        FloatVector e3 = a0;
        for (int base = 0; base < d; base += GROUP) {
            long g = (long) base / GROUP * Q8_GROUP_BYTES;
            float s0 = keys.get(F32, r0 + g + Q8_SCALE);
            float s1 = keys.get(F32, r1 + g + Q8_SCALE);
            float s2 = keys.get(F32, r2 + g + Q8_SCALE);
            float s3 = keys.get(F32, r3 + g + Q8_SCALE);
            for (int i = 0; i < GROUP; i += L) {
                long codes = g + Q8_CODES + i;
                FloatVector k0 = q8(keys, r0 + codes, s0);
                FloatVector k1 = q8(keys, r1 + codes, s1);
                FloatVector k2 = q8(keys, r2 + codes, s2);
                FloatVector k3 = q8(keys, r3 + codes, s3);
                int o = base + i;
                FloatVector x = FloatVector.fromArray(F, q, qa + o);
                a0 = x.fma(k0, a0);
                a1 = x.fma(k1, a1);
                a2 = x.fma(k2, a2);
                a3 = x.fma(k3, a3);
                x = FloatVector.fromArray(F, q, qb + o);
                b0 = x.fma(k0, b0);
                b1 = x.fma(k1, b1);
                b2 = x.fma(k2, b2);
                b3 = x.fma(k3, b3);
                x = FloatVector.fromArray(F, q, qc + o);
                c0 = x.fma(k0, c0);
                c1 = x.fma(k1, c1);
                c2 = x.fma(k2, c2);
                c3 = x.fma(k3, c3);
                x = FloatVector.fromArray(F, q, qe + o);
                e0 = x.fma(k0, e0);
                e1 = x.fma(k1, e1);
                e2 = x.fma(k2, e2);
                e3 = x.fma(k3, e3);
            }
        }
        a0.intoArray(part, at);
        a1.intoArray(part, at + L);
        a2.intoArray(part, at + 2 * L);
        a3.intoArray(part, at + 3 * L);
        b0.intoArray(part, PART + at);
        b1.intoArray(part, PART + at + L);
        b2.intoArray(part, PART + at + 2 * L);
        b3.intoArray(part, PART + at + 3 * L);
        c0.intoArray(part, 2 * PART + at);
        c1.intoArray(part, 2 * PART + at + L);
        c2.intoArray(part, 2 * PART + at + 2 * L);
        c3.intoArray(part, 2 * PART + at + 3 * L);
        e0.intoArray(part, 3 * PART + at);
        e1.intoArray(part, 3 * PART + at + L);
        e2.intoArray(part, 3 * PART + at + 2 * L);
        e3.intoArray(part, 3 * PART + at + 3 * L);
    }

    /**
     * {@link #quadQ8} over Q4 rows: the {@code L} bytes at {@code j < 16} of a group hold its
     * elements {@code j} (low nibbles) and {@code j + 16} (high nibbles); each half is a pass.
     */
    private static void quadQ4(MemorySegment keys, long r0, long r1, long r2, long r3, int d, float[] q, int qa,
                               int qb, int qc, int qe, float[] part, int at) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector b0 = a0;
        FloatVector b1 = a0;
        FloatVector b2 = a0;
        FloatVector b3 = a0;
        FloatVector c0 = a0;
        FloatVector c1 = a0;
        FloatVector c2 = a0;
        FloatVector c3 = a0;
        FloatVector e0 = a0;
        FloatVector e1 = a0;
        FloatVector e2 = a0;
        FloatVector e3 = a0;
        for (int base = 0; base < d; base += GROUP) {
            long g = (long) base / GROUP * Q4_GROUP_BYTES;
            // Scale and minimum in one 8-byte load each: fewer segment accesses keep the method
            // inside C2's node budget (past it, C2 stops inlining and boxes the vectors).
            long sm0 = keys.get(SCALE_AND_MIN, r0 + g + Q4_SCALE);
            long sm1 = keys.get(SCALE_AND_MIN, r1 + g + Q4_SCALE);
            long sm2 = keys.get(SCALE_AND_MIN, r2 + g + Q4_SCALE);
            long sm3 = keys.get(SCALE_AND_MIN, r3 + g + Q4_SCALE);
            float s0 = Float.intBitsToFloat((int) sm0);
            float s1 = Float.intBitsToFloat((int) sm1);
            float s2 = Float.intBitsToFloat((int) sm2);
            float s3 = Float.intBitsToFloat((int) sm3);
            float m0 = Float.intBitsToFloat((int) (sm0 >>> 32));
            float m1 = Float.intBitsToFloat((int) (sm1 >>> 32));
            float m2 = Float.intBitsToFloat((int) (sm2 >>> 32));
            float m3 = Float.intBitsToFloat((int) (sm3 >>> 32));
            for (int k = 0; k < GROUP; k += L) {
                long codes = g + Q4_CODES + k % (GROUP / 2);
                int shift = k < GROUP / 2 ? 0 : 4;
                FloatVector k0 = q4(bytes(keys, r0 + codes), shift, s0, m0);
                FloatVector k1 = q4(bytes(keys, r1 + codes), shift, s1, m1);
                FloatVector k2 = q4(bytes(keys, r2 + codes), shift, s2, m2);
                FloatVector k3 = q4(bytes(keys, r3 + codes), shift, s3, m3);
                int o = base + k;
                FloatVector x = FloatVector.fromArray(F, q, qa + o);
                a0 = x.fma(k0, a0);
                a1 = x.fma(k1, a1);
                a2 = x.fma(k2, a2);
                a3 = x.fma(k3, a3);
                x = FloatVector.fromArray(F, q, qb + o);
                b0 = x.fma(k0, b0);
                b1 = x.fma(k1, b1);
                b2 = x.fma(k2, b2);
                b3 = x.fma(k3, b3);
                x = FloatVector.fromArray(F, q, qc + o);
                c0 = x.fma(k0, c0);
                c1 = x.fma(k1, c1);
                c2 = x.fma(k2, c2);
                c3 = x.fma(k3, c3);
                x = FloatVector.fromArray(F, q, qe + o);
                e0 = x.fma(k0, e0);
                e1 = x.fma(k1, e1);
                e2 = x.fma(k2, e2);
                e3 = x.fma(k3, e3);
            }
        }
        a0.intoArray(part, at);
        a1.intoArray(part, at + L);
        a2.intoArray(part, at + 2 * L);
        a3.intoArray(part, at + 3 * L);
        b0.intoArray(part, PART + at);
        b1.intoArray(part, PART + at + L);
        b2.intoArray(part, PART + at + 2 * L);
        b3.intoArray(part, PART + at + 3 * L);
        c0.intoArray(part, 2 * PART + at);
        c1.intoArray(part, 2 * PART + at + L);
        c2.intoArray(part, 2 * PART + at + 2 * L);
        c3.intoArray(part, 2 * PART + at + 3 * L);
        e0.intoArray(part, 3 * PART + at);
        e1.intoArray(part, 3 * PART + at + L);
        e2.intoArray(part, 3 * PART + at + 2 * L);
        e3.intoArray(part, 3 * PART + at + 3 * L);
    }

    /**
     * Merges each head's row sums in {@code part} into {@code tiles·L} scores, scaled, at
     * {@code wa..we}. Each merging method has one call site, in a loop: inlined more often, the
     * vector operations of a caller passed C2's node budget, it stopped inlining {@link #merge},
     * and every vector crossing the call was boxed.
     */
    private static void scoresOfRows(float[] part, int tiles, float scale, float[] w, int wa, int wb, int wc,
                                     int we) {
        for (int k = 0; k < 4; k++) {
            int base = k * PART;
            for (int at = base; at < base + tiles * L * L; at += 4 * L) {
                mergeQuad(part, at);
            }
            int wo = k == 0 ? wa : k == 1 ? wb : k == 2 ? wc : we;
            for (int t = 0; t < tiles; t++) {
                tileScores(part, base + t * L * L, scale, w, wo + t * L);
            }
        }
    }

    /** Replaces the four row sums at {@code part[at]} by one vector, lane {@code j} a partial sum of row {@code j % 4}. */
    private static void mergeQuad(float[] part, int at) {
        FloatVector x = merge(FloatVector.fromArray(F, part, at), FloatVector.fromArray(F, part, at + L), BIT1, SWAP1);
        FloatVector y = merge(FloatVector.fromArray(F, part, at + 2 * L), FloatVector.fromArray(F, part, at + 3 * L),
                BIT1, SWAP1);
        merge(x, y, BIT2, SWAP2).intoArray(part, at);
    }

    /**
     * Writes {@code scale} times the lane sums of the {@code L} rows whose {@link #mergeQuad merged
     * quads} are at {@code part[at + 4L·i]} to {@code w[o..]}.
     */
    private static void tileScores(float[] part, int at, float scale, float[] w, int o) {
        FloatVector sums = merge(FloatVector.fromArray(F, part, at), FloatVector.fromArray(F, part, at + 4 * L),
                BIT4, SWAP4);
        if (L == 16) {
            FloatVector high = merge(FloatVector.fromArray(F, part, at + 8 * L),
                    FloatVector.fromArray(F, part, at + 12 * L), BIT4, SWAP4);
            sums = merge(sums, high, BIT8, SWAP8);
        }
        sums.mul(scale).intoArray(w, o);
    }
}
