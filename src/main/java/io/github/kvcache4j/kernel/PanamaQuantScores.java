package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaQuantBlocks.quadQ4;
import static io.github.kvcache4j.kernel.PanamaQuantBlocks.quadQ8;
import static io.github.kvcache4j.layout.KeyTiles.TILE;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;

/**
 * The score pass of quantized decode attention ({@link PanamaQuantAttention}): the scores of one
 * block of stored Q8 or Q4 key rows for four query heads, {@code w_h[r] = scale·Σ_i q_h,i·k_r,i}
 * with {@code k_r,i} the stored value ({@link PanamaCodes}).
 *
 * <p>Rows are taken four at a time (a quad, {@link PanamaQuantBlocks#quadQ8}): sixteen
 * accumulators, one per row and head, so each query vector is loaded once per four rows and each
 * row's codes are dequantized once per four heads. A score is the lane sum of its accumulator.
 * Instead of a horizontal sum per row and head, the accumulators (stored in {@code part}: head
 * {@code k}'s row {@code r} at {@code k·PART + r·L}) are transposed and added in a tree:
 * {@code merge(x, y, h)} keeps the lanes of {@code x} whose bit {@code h} is clear and those of
 * {@code y} whose bit is set, each plus its partner lane {@code j^h} (two blends, one permute, one
 * add), so one vector carries the partial sums of twice as many rows. Levels {@code h = 1, 2}
 * merge a quad into one vector, levels {@code h = 4 .. L/2} merge {@code L/4} quads into the
 * {@code L} scores of {@code L} consecutive rows, lane {@code j} the score of row {@code j}, stored
 * with one vector store: {@code L − 1} merges per {@code L} rows and head, against
 * {@code log2 L} permutes, blends and adds for each halving lane sum. Every step is lane-wise, so
 * the sums have the same order in every JIT tier.
 *
 * <p>A block's rows are padded to a multiple of {@code L} by repeating its last row (never reading
 * the bytes after it); the padded scores land in the weights row before the next tile, which the
 * softmax overwrites. Head offsets may repeat (a batch of fewer than four heads repeats its last
 * head): a repeated head computes and writes the same bits twice.
 */
final class PanamaQuantScores {

    /** Floats of {@code part} per head: one vector per row of a block. */
    static final int PART = TILE * L;

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
     * {@code w[h + r] = scale·Σ_i q_h,i·k_r,i} for the four heads at query offsets {@code qa..qe}
     * and weight offsets {@code wa..we}, over the Q8 ({@code q8}) or Q4 key rows {@code r < rows}
     * from byte 0 of {@code keys}; {@code part} holds {@code 4·PART} floats of working memory.
     */
    static void scores4(MemorySegment keys, boolean q8, int rows, long rowBytes, int d, float[] q, int qa, int qb,
                        int qc, int qe, float scale, float[] w, int wa, int wb, int wc, int we, float[] part) {
        assert rows >= 1 && rows <= TILE && part.length >= 4 * PART : rows;
        assert QuantizedLayout.Q4_MIN == QuantizedLayout.Q4_SCALE + Float.BYTES : "SCALE_AND_MIN reads scale, then minimum";
        int padded = (rows + L - 1) / L * L;
        long last = rows - 1;
        for (int r = 0; r < padded; r += 4) {
            long r0 = Math.min(r, last) * rowBytes;
            long r1 = Math.min(r + 1, last) * rowBytes;
            long r2 = Math.min(r + 2, last) * rowBytes;
            long r3 = Math.min(r + 3, last) * rowBytes;
            if (q8) {
                quadQ8(keys, r0, r1, r2, r3, d, q, qa, qb, qc, qe, part, r * L);
            } else {
                quadQ4(keys, r0, r1, r2, r3, d, q, qa, qb, qc, qe, part, r * L);
            }
        }
        scoresOfRows(part, padded / L, scale, w, wa, wb, wc, we);
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

    /**
     * Replaces the four row sums at {@code part[at]} by one vector, lane {@code j} a partial sum of
     * row {@code j % 4}.
     */
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
