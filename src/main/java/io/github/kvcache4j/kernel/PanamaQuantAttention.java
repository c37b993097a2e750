package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaKernels.CHUNK;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaQuantBlocks.values4Q4;
import static io.github.kvcache4j.kernel.PanamaQuantBlocks.values4Q8;
import static io.github.kvcache4j.kernel.PanamaQuantScores.scores4;
import static io.github.kvcache4j.kernel.PanamaSoftmax.exponentialsOfBlock;
import static io.github.kvcache4j.kernel.PanamaSoftmax.maskAndRaise;
import static io.github.kvcache4j.kernel.PanamaSoftmax.start;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.Workspace.VALUE_BLOCK;
import static io.github.kvcache4j.layout.KeyTiles.TILE;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;

/**
 * Vector API decode attention over Q8 and Q4 rows ({@link QuantizedLayout}), keys and values both
 * stored as rows. The same online softmax as {@link PanamaKernels} over chunks of
 * {@value PanamaKernels#CHUNK} slots: a score pass over the chunk's key rows, then per block of
 * {@value Workspace#VALUE_BLOCK} rows the exponentials and a value pass. Both passes dequantize in
 * registers ({@link PanamaQuantScores}, {@link PanamaQuantBlocks}) and serve four query heads per
 * byte loaded; a GQA group of more than four heads walks a chunk once per four heads, the later
 * walks reading the chunk from the cache (a Q8 chunk of head dimension 128 is 144 KiB). Needs
 * {@code L >= 8} float lanes (256-bit vectors); narrower machines run the scalar kernel for
 * quantized rows.
 */
final class PanamaQuantAttention {

    /** Whether the vector width suits the kernels: a byte vector of {@code L} lanes is at least 64 bits. */
    static final boolean SUPPORTED = L >= 8 && GROUP % (2 * L) == 0;

    private PanamaQuantAttention() {
    }

    /**
     * {@link Kernels#attend} over quantized rows.
     *
     * @param call the arguments; its dtype is {@link DType#Q8} or {@link DType#Q4}
     */
    static void attend(AttentionCall call) {
        assert SUPPORTED && call.dtype.isQuantized() : call.dtype;
        final MemorySegment[] keyBlocks = call.keyBlocks;
        final MemorySegment[] valueBlocks = call.valueBlocks;
        final boolean q8 = call.dtype == DType.Q8;
        final int n = call.n;
        final int d = call.headDim;
        final long rowBytes = call.dtype.rowBytes(d);
        final float[] q = call.queries;
        final int qOff = call.queryOffset;
        final int group = call.group;
        final float scale = call.scale;
        final float[] w = call.weights;
        final int stride = call.stride;
        final float[] out = call.out;
        final int outOff = call.outOffset;
        final float[] part = call.workspace.rowSums;
        start(call);
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int end = Math.min(n, c0 + CHUNK);
            for (int ha = 0; ha < group; ha += 4) {
                int hb = head(ha, 1, group);
                int hc = head(ha, 2, group);
                int he = head(ha, 3, group);
                // Chunks start on a block: slots t0 .. t0 + rows are rows 0 .. rows of one block.
                for (int t0 = c0; t0 < end; t0 += TILE) {
                    MemorySegment keys = keyBlocks[t0 / TILE];
                    int rows = Math.min(TILE, end - t0);
                    scores4(keys, q8, rows, rowBytes, d, q, qOff + ha * d, qOff + hb * d, qOff + hc * d,
                            qOff + he * d, scale, w, ha * stride + t0, hb * stride + t0, hc * stride + t0,
                            he * stride + t0, part);
                }
            }
            maskAndRaise(call, c0, end);
            for (int j0 = c0; j0 < end; j0 += VALUE_BLOCK) {
                int rows = Math.min(VALUE_BLOCK, end - j0);
                exponentialsOfBlock(call, j0, rows);
                // A value block is one pool block's rows from its first: VALUE_BLOCK = TILE, j0 % TILE = 0.
                MemorySegment values = valueBlocks[j0 / TILE];
                for (int ha = 0; ha < group; ha += 4) {
                    int hb = head(ha, 1, group);
                    int hc = head(ha, 2, group);
                    int he = head(ha, 3, group);
                    int wa = ha * stride + j0;
                    int wb = hb * stride + j0;
                    int wc = hc * stride + j0;
                    int we = he * stride + j0;
                    int oa = outOff + ha * d;
                    int ob = outOff + hb * d;
                    int oc = outOff + hc * d;
                    int oe = outOff + he * d;
                    for (int base = 0; base < d; base += GROUP) {
                        if (q8) {
                            for (int i = 0; i < GROUP; i += 2 * L) {
                                values4Q8(values, rows, rowBytes, base + i, w, wa, wb, wc, we, out, oa, ob, oc, oe);
                            }
                        } else {
                            for (int i = 0; i < GROUP / 2; i += L) {
                                values4Q4(values, rows, rowBytes, base + i, w, wa, wb, wc, we, out, oa, ob, oc, oe);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Returns head {@code first + k} of the batch from {@code first}, or the batch's last head where the group ends. */
    private static int head(int first, int k, int group) {
        return Math.min(first + k, Math.min(group, first + 4) - 1);
    }
}
