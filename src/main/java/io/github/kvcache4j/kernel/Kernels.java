package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;

/**
 * The numeric kernels of the cache. One implementation uses the Vector API, the other plain
 * loops; {@link KernelProvider#kernels()} picks one. Kernels know nothing about policies: they read
 * stored rows, compute, and write into caller-provided buffers, without allocating.
 *
 * <p>Stored elements are little-endian in the given {@link DType}. Values are row-major
 * {@code [slot][headDim]}. Keys are tiled: {@value #TILE} consecutive slots form a tile stored
 * dimension-major, {@code [slot / TILE][dim][slot % TILE]} (see {@link #keyIndex}), so that one
 * vector load brings the same dimension of {@value #TILE} keys and a score needs no horizontal
 * reduction.
 */
public interface Kernels {

    /** Returns {@code Σ a[aOff+i]·b[bOff+i]} for {@code i < n}. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** Returns {@code sqrt(Σ a[off+i]²)} for {@code i < n}. */
    default float l2Norm(float[] a, int off, int n) {
        return (float) Math.sqrt(dot(a, off, a, off, n));
    }

    /**
     * Decode attention of the {@code group} query heads of one kv-head over the first {@code n}
     * stored slots, unnormalised: {@code s[g][j] = scale·q_g·k_j}, {@code m[g] = max_j s[g][j]},
     * {@code w[g][j] = exp(s[g][j] − m[g])}, {@code l[g] = Σ_j w[g][j]},
     * {@code out_g = Σ_j w[g][j]·v_j}.
     *
     * <p>Each key and each value is read from memory once for all query heads of the group.
     * {@code w} is working memory of the call; it holds the weights afterwards only when
     * {@code keepWeights} is set (an eviction policy wants the attention).
     * Slots whose position is after {@code queryPosition} get weight zero when {@code positions}
     * is not null (causal chunks whose slots are not in position order).
     *
     * @param keys stored keys, at least {@code n} rows
     * @param values stored values, at least {@code n} rows
     * @param dtype storage type of keys and values
     * @param n number of slots to attend over, {@code n >= 1}
     * @param headDim elements per row
     * @param q queries {@code [group][headDim]} starting at {@code qOff}
     * @param qOff offset of the first query element
     * @param group query heads sharing this kv-head
     * @param scale score scale, usually {@code 1/sqrt(headDim)}
     * @param positions slot positions for masking, or null when every slot is visible
     * @param queryPosition position of the query; slots after it are masked
     * @param w receives the weights {@code w[g*stride + j]}
     * @param stride row stride of {@code w}, {@code >= roundToTiles(n)}
     * @param keepWeights whether {@code w} must hold the weights when the call returns
     * @param maxAndSum receives {@code m[g]} at {@code 2g} and {@code l[g]} at {@code 2g+1}
     * @param out receives {@code out_g} at {@code outOff + g*headDim} (overwritten, not added)
     * @param outOff offset of the first output element
     * @param workspace working memory for this head dimension, used by one thread at a time
     */
    void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                float[] q, int qOff, int group, float scale,
                int[] positions, int queryPosition,
                float[] w, int stride, boolean keepWeights, float[] maxAndSum,
                float[] out, int outOff, Workspace workspace);

    /**
     * Working memory of {@link #attend}: half-precision key tiles and value blocks of shapes
     * without an in-register path are widened here, and lane sums are spilled to {@code lanes}.
     * Create one per thread and head dimension; reuse it.
     */
    final class Workspace {
        final float[] floats;
        final MemorySegment floatSegment;
        /** One vector's lanes (64 covers every species up to 2048 bits). */
        final float[] lanes = new float[64];

        /** Creates the working memory for {@code headDim}-element heads. */
        public Workspace(int headDim) {
            this.floats = new float[Math.max(TILE, VALUE_BLOCK) * headDim];
            this.floatSegment = MemorySegment.ofArray(floats);
        }
    }

    /**
     * Value rows accumulated per block: 64 rows of 128 floats are 32 KiB, inside L1, and the
     * block's 64 weights per head are turned into exponentials just before.
     */
    int VALUE_BLOCK = 64;

    /**
     * Slots per key tile. A dimension row of a tile is 64 floats (256 bytes), four 512-bit vectors:
     * one broadcast of a query element feeds four FMAs, and a tile is one forward stream.
     */
    int TILE = 64;

    /** Returns the element index of dimension {@code dim} of the key in {@code slot}. */
    static long keyIndex(int slot, int dim, int headDim) {
        return ((long) (slot / TILE) * headDim + dim) * TILE + slot % TILE;
    }

    /** Returns {@code n} rounded up to a whole number of key tiles. */
    static int roundToTiles(int n) {
        return (n + TILE - 1) / TILE * TILE;
    }

    /** Returns a short name of the implementation, such as {@code "panama-512"} or {@code "scalar"}. */
    String name();
}
