package io.github.kvcache4j.less;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A pair of positive feature maps {@code φ} (queries) and {@code ψ} (keys) of rank {@code R} whose
 * inner product {@code φ(q)·ψ(k)} stands in for the attention kernel {@code exp(q·k/√d)} of
 * tokens the cache evicted. Features are produced in log form ({@code log φ_r(q)}; negative
 * infinity for a zero feature) so that the cache can rescale them without ever forming a number
 * that overflows.
 *
 * <p>Implementations are immutable and may be shared by many caches and threads; the
 * {@code scratch} array a caller passes ({@link #scratchFloats()} floats) is its own.
 */
public interface FeatureMap {

    /** Returns the head dimension {@code d} the map accepts. */
    int headDim();

    /** Returns the rank {@code R}: the number of features. */
    int rank();

    /** Returns the floats of working memory {@link #logQueryFeatures} and {@link #logKeyFeatures} need. */
    default int scratchFloats() {
        return 0;
    }

    /**
     * Writes {@code log φ_r(q)} for {@code r < rank()} into {@code dst[0..]}.
     *
     * @param layer the layer whose query this is (the reading layer under cross-layer sharing)
     * @param queryHead the query head
     * @param query {@code headDim()} floats starting at {@code offset}
     * @param scratch at least {@link #scratchFloats()} floats of working memory
     */
    void logQueryFeatures(int layer, int queryHead, float[] query, int offset, float[] dst, float[] scratch);

    /**
     * Writes {@code log ψ_r(k)} for {@code r < rank()} into {@code dst[0..]}.
     *
     * @param layer the source layer that stored the key
     * @param kvHead the kv-head
     * @param key {@code headDim()} floats starting at {@code offset}
     * @param scratch at least {@link #scratchFloats()} floats of working memory
     */
    void logKeyFeatures(int layer, int kvHead, float[] key, int offset, float[] dst, float[] scratch);

    /**
     * Checks that the map covers a model of this shape (learned maps are per layer and head).
     *
     * @throws IllegalArgumentException naming the dimension that does not fit
     */
    default void checkShape(int layers, int queryHeads, int kvHeads) {
    }

    /**
     * Returns whether {@code φ(q)·ψ(k)} estimates {@code exp(q·k/√d)} for any {@code q} and
     * {@code k}. The cache may then centre keys on their mean before the map and restore the
     * exact factor (see the cache's LESS state, {@code docs/less.md}), which lowers the variance of random
     * features; maps that expect raw keys and queries (learned ones) return false.
     */
    default boolean estimatesExpKernel() {
        return false;
    }

    /** Returns a short description with the settings that reproduce the map, such as its seed. */
    String name();

    /**
     * Returns the training-free positive random features of Performer FAVOR+ (Choromanski et al.
     * 2021) used for both queries and keys:
     * {@code φ(x) = exp(Ωx/d^{1/4} − ‖x‖²/(2√d)) / √R} with {@code Ω} an {@code R × d} matrix of
     * independent standard Gaussians drawn from {@code seed}. {@code φ(q)·φ(k)} is an unbiased
     * estimate of {@code exp(q·k/√d)}; its relative error falls as {@code 1/√R}.
     *
     * @throws IllegalArgumentException if {@code headDim < 1} or {@code rank < 1}
     */
    static FeatureMap positiveRandom(int headDim, int rank, long seed) {
        return new PositiveRandomFeatures(headDim, rank, seed);
    }

    /**
     * Loads learned per-head maps (the two-layer MLPs of the LESS paper) from a file in the format
     * that {@code docs/less.md} describes. The header's sizes are checked against the file's
     * length before anything is allocated, and the weights are streamed: memory grows with the
     * weights read, never beyond them.
     *
     * @throws IOException if the file cannot be read or is not in that format, naming the field;
     *         also if a weight is NaN, infinite or of magnitude above {@code 65536}, naming the
     *         head, tensor, element and byte offset
     */
    static FeatureMap load(Path file) throws IOException {
        return LearnedFeatureMap.read(file);
    }
}
