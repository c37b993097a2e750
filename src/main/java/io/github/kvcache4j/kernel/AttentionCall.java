package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.MemorySegment;

/**
 * The arguments of one {@link Kernels#attend} call: the stored slots of one kv-head, the queries
 * of its GQA group, the optional mask, and the buffers that receive the weights and the output.
 * Create one per thread and head dimension (it owns the call's working memory), set what changed
 * before each call, and pass it; setting allocates nothing. The kernels check the arguments only
 * with {@code assert}: the cache validated them before.
 */
public final class AttentionCall {

    final int headDim;
    final Workspace workspace;
    MemorySegment[] keyBlocks;
    MemorySegment[] valueBlocks;
    DType dtype;
    int n;
    float[] queries;
    int queryOffset;
    int group;
    float scale;
    int[] positions;
    int queryPosition;
    float[] weights;
    int stride;
    boolean keepWeights;
    float[] maxAndSum;
    float[] out;
    int outOffset;

    /**
     * Creates the arguments, and the working memory, of calls over {@code headDim}-element heads.
     *
     * @throws IllegalArgumentException if {@code headDim < 1}
     */
    public AttentionCall(int headDim) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        }
        this.headDim = headDim;
        this.workspace = new Workspace(headDim);
    }

    /**
     * Sets the slots to attend over: the first {@code n} stored keys and values, read through a
     * block table. Block {@code i} holds slots {@code [i·TILE, (i+1)·TILE)}: {@code keyBlocks[i]}
     * is one key tile in the {@link KeyTiles} layout (dimension-major, {@code [dim][TILE]}) and
     * {@code valueBlocks[i]} the tile's value rows {@code [slot % TILE][headDim]}. Blocks may lie
     * anywhere in memory; the arrays are read, not copied. For {@link DType#Q8} and {@link DType#Q4}
     * ({@code headDim} a multiple of 32) keys are rows too: {@code keyBlocks[i]} holds the tile's
     * key rows {@code [slot % TILE][rowBytes]} in the {@link QuantizedLayout} format.
     *
     * @param keyBlocks key tiles, at least {@code ceil(n / TILE)} of them
     * @param valueBlocks value blocks, as many
     * @param dtype storage type of keys and values
     * @param n number of slots, {@code n >= 1}
     * @return this
     */
    public AttentionCall slots(MemorySegment[] keyBlocks, MemorySegment[] valueBlocks, DType dtype, int n) {
        this.keyBlocks = keyBlocks;
        this.valueBlocks = valueBlocks;
        this.dtype = dtype;
        this.n = n;
        return this;
    }

    /**
     * Sets the queries of the group.
     *
     * @param queries queries {@code [group][headDim]} starting at {@code offset}
     * @param offset offset of the first query element
     * @param group query heads sharing this kv-head
     * @param scale score scale, usually {@code 1/sqrt(headDim)}
     * @return this
     */
    public AttentionCall queries(float[] queries, int offset, int group, float scale) {
        this.queries = queries;
        this.queryOffset = offset;
        this.group = group;
        this.scale = scale;
        return this;
    }

    /**
     * Sets the mask: slots whose position is after {@code queryPosition} get weight zero (causal
     * chunks whose slots are not in position order).
     *
     * @param positions slot positions, or null when every slot is visible
     * @param queryPosition position of the query
     * @return this
     */
    public AttentionCall mask(int[] positions, int queryPosition) {
        this.positions = positions;
        this.queryPosition = queryPosition;
        return this;
    }

    /**
     * Sets the buffer of the weights {@code w[g*stride + j]}. It is working memory of the call and
     * holds the weights afterwards only when {@code keep} is set (an eviction policy wants them).
     *
     * @param weights at least {@code (group − 1)·stride + roundToTiles(n)} floats
     * @param stride row stride, {@code >= roundToTiles(n)}
     * @param keep whether {@code weights} must hold the weights when the call returns
     * @return this
     */
    public AttentionCall weights(float[] weights, int stride, boolean keep) {
        this.weights = weights;
        this.stride = stride;
        this.keepWeights = keep;
        return this;
    }

    /**
     * Sets the buffers of the results.
     *
     * @param out receives {@code out_g} at {@code offset + g*headDim} (overwritten, not added)
     * @param offset offset of the first output element
     * @param maxAndSum receives {@code m[g]} at {@code 2g} and {@code l[g]} at {@code 2g+1}
     * @return this
     */
    public AttentionCall output(float[] out, int offset, float[] maxAndSum) {
        this.out = out;
        this.outOffset = offset;
        this.maxAndSum = maxAndSum;
        return this;
    }

    /**
     * Returns null when the arguments fit together, else what does not, with both sizes. Kernels
     * assert it on entry; it allocates only for the message.
     */
    String violation() {
        if (keyBlocks == null || valueBlocks == null || dtype == null || queries == null || weights == null
                || maxAndSum == null || out == null) {
            return "slots, queries, weights and output must all be set";
        }
        if (n < 1 || group < 1) {
            return "n and group must be >= 1, got " + n + " and " + group;
        }
        if (dtype.isQuantized() && headDim % QuantizedLayout.GROUP != 0) {
            return dtype + " rows need headDim a multiple of " + QuantizedLayout.GROUP + ", got " + headDim;
        }
        int tiled = KeyTiles.roundToTiles(n);
        int blocks = tiled / KeyTiles.TILE;
        if (keyBlocks.length < blocks || valueBlocks.length < blocks) {
            return keyBlocks.length + " key and " + valueBlocks.length + " value blocks, " + n + " slots need "
                    + blocks;
        }
        long tileBytes = KeyTiles.TILE * dtype.rowBytes(headDim);
        for (int i = 0; i < blocks; i++) {
            if (keyBlocks[i] == null || keyBlocks[i].byteSize() < tileBytes
                    || valueBlocks[i] == null || valueBlocks[i].byteSize() < tileBytes) {
                return "block " + i + " is missing or smaller than a tile of " + tileBytes + " bytes";
            }
        }
        long headFloats = (long) group * headDim;
        if (queryOffset < 0 || queryOffset + headFloats > queries.length) {
            return "queries [" + queryOffset + ", +" + headFloats + ") exceed length " + queries.length;
        }
        if (outOffset < 0 || outOffset + headFloats > out.length) {
            return "out [" + outOffset + ", +" + headFloats + ") exceeds length " + out.length;
        }
        if (positions != null && positions.length < n) {
            return "positions has " + positions.length + " entries, fewer than n = " + n;
        }
        if (stride < tiled) {
            return "stride " + stride + " is less than roundToTiles(n) = " + tiled;
        }
        long weightFloats = (long) (group - 1) * stride + tiled;
        if (weights.length < weightFloats) {
            return "weights has " + weights.length + " floats, " + group + " rows of stride " + stride
                    + " need " + weightFloats;
        }
        if (maxAndSum.length < 2 * group) {
            return "maxAndSum has " + maxAndSum.length + " floats, 2 * group = " + 2 * group + " needed";
        }
        return null;
    }
}
