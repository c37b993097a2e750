package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;

/**
 * The numeric kernels of the cache. One implementation uses the Vector API, the other plain
 * loops; {@link KernelProvider#kernels()} picks one. Kernels know nothing about policies: they read
 * stored rows, compute, and write into caller-provided buffers, without allocating.
 *
 * <p>Stored elements are little-endian in the given {@link DType}. Values are row-major
 * {@code [slot][headDim]}; keys are in the tiled layout of {@link KeyTiles}.
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
     * {@code out_g = Σ_j w[g][j]·v_j}, with masked slots at {@code s = −∞}.
     *
     * <p>Each key and each value is read from memory once for all query heads of the group. The
     * call's working memory is used by one thread at a time.
     *
     * @param call the slots, queries, mask and result buffers; see {@link AttentionCall}
     */
    void attend(AttentionCall call);

    /** Returns a short name of the implementation, such as {@code "panama-512"} or {@code "scalar"}. */
    String name();
}
