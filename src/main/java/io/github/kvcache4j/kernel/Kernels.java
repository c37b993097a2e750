package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;

/**
 * The numeric kernels of the cache. One implementation uses the Vector API, the other plain
 * loops; {@link KernelProvider#kernels()} picks one. Kernels know nothing about policies: they read
 * stored rows, compute, and write into caller-provided buffers, without allocating.
 *
 * <p>Stored rows ({@code keys}, {@code values}) are row-major {@code [slot][headDim]} in the given
 * {@link DType}, little-endian, as written by {@code io.github.kvcache4j.store.Codec}.
 */
public interface Kernels {

    /** Returns {@code Σ a[aOff+i]·b[bOff+i]} for {@code i < n}. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** Returns {@code sqrt(Σ a[off+i]²)} for {@code i < n}. */
    float l2Norm(float[] a, int off, int n);

    /**
     * Decode attention of the {@code group} query heads of one kv-head over the first {@code n}
     * stored slots, unnormalised: {@code s[g][j] = scale·q_g·k_j}, {@code m[g] = max_j s[g][j]},
     * {@code w[g][j] = exp(s[g][j] − m[g])}, {@code l[g] = Σ_j w[g][j]},
     * {@code out_g = Σ_j w[g][j]·v_j}.
     *
     * <p>Each key and each value is read from memory once for all query heads of the group.
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
     * @param stride row stride of {@code w}, {@code >= n}
     * @param maxAndSum receives {@code m[g]} at {@code 2g} and {@code l[g]} at {@code 2g+1}
     * @param out receives {@code out_g} at {@code outOff + g*headDim} (overwritten, not added)
     * @param outOff offset of the first output element
     * @param scratch at least {@link #scratchFloats(int)} floats of working memory
     */
    void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                float[] q, int qOff, int group, float scale,
                int[] positions, int queryPosition,
                float[] w, int stride, float[] maxAndSum,
                float[] out, int outOff, float[] scratch);

    /** Returns the working memory {@link #attend} needs for the given head dimension. */
    static int scratchFloats(int headDim) {
        return BLOCK * headDim;
    }

    /** Slots processed together when accumulating values. */
    int BLOCK = 16;

    /** Returns a short name of the implementation, such as {@code "panama-512"} or {@code "scalar"}. */
    String name();
}
