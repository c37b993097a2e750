package io.github.kvcache4j;

import io.github.kvcache4j.policy.CormPolicy;
import io.github.kvcache4j.policy.ExpectedAttentionPolicy;
import io.github.kvcache4j.policy.FullPolicy;
import io.github.kvcache4j.policy.H2oPolicy;
import io.github.kvcache4j.policy.KeyDiffPolicy;
import io.github.kvcache4j.policy.KnormPolicy;
import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.policy.SnapKvPolicy;
import io.github.kvcache4j.policy.StreamingLlmPolicy;
import io.github.kvcache4j.policy.TovaPolicy;
import java.util.Objects;

/** Creates the built-in eviction policies. Each method documents its defaults and its paper. */
public final class Policies {

    /** The default number of StreamingLLM sink tokens (kvpress {@code n_sink}). */
    public static final int DEFAULT_SINKS = 4;

    /** The default CORM query window {@code w}: queries remembered per key. */
    public static final int DEFAULT_CORM_WINDOW = 32;

    /** The default CORM recent window {@code r}: newest tokens never evicted (equal to {@code w}). */
    public static final int DEFAULT_CORM_RECENT = 32;

    /** The default CORM threshold factor: important means at least the uniform share {@code 1/t}. */
    public static final double DEFAULT_CORM_ALPHA = 1.0;

    /** The default H2O recent window, as a fraction of the kept tokens (half recent, half heavy). */
    public static final double DEFAULT_H2O_RECENT_FRACTION = 0.5;

    /** The default SnapKV observation window (kvpress {@code window_size}). */
    public static final int DEFAULT_SNAPKV_WINDOW = 64;

    /** The default SnapKV pooling width (kvpress {@code kernel_size}). */
    public static final int DEFAULT_SNAPKV_KERNEL = 5;

    /** The default expected-attention future window (kvpress {@code n_future_positions}). */
    public static final int DEFAULT_EXPECTED_ATTENTION_FUTURE = 512;

    private Policies() {
    }

    /** Returns the policy that never evicts: appends beyond capacity fail. */
    public static EvictionPolicy full() {
        return FullPolicy.INSTANCE;
    }

    /**
     * Returns StreamingLLM (Xiao et al. 2023) with {@value #DEFAULT_SINKS} sinks: keep the first
     * tokens and the most recent ones.
     */
    public static EvictionPolicy streamingLlm() {
        return streamingLlm(DEFAULT_SINKS);
    }

    /**
     * Returns StreamingLLM with {@code sinks} sink tokens.
     *
     * @throws IllegalArgumentException if {@code sinks < 0}
     */
    public static EvictionPolicy streamingLlm(int sinks) {
        return new StreamingLlmPolicy(sinks);
    }

    /**
     * Returns L2-norm eviction (Devoto et al. 2024, arXiv 2406.11430; kvpress {@code KnormPress}):
     * evict the keys with the highest L2 norm, keep the lowest. No skipped layers and no
     * {@code pruneAfter}, as kvpress.
     */
    public static EvictionPolicy knorm() {
        return new KnormPolicy(0);
    }

    /**
     * Returns L2-norm eviction whose {@link KvCache#compress} leaves the given layers, and every
     * buffer holding fewer than {@code pruneAfter} tokens, unpruned (the paper skips layers 0 and
     * 1). An append beyond the capacity still evicts by norm in every layer.
     *
     * @throws IllegalArgumentException if {@code pruneAfter < 0} or a layer is negative (a layer
     *     not below the model's layer count is rejected when the cache is created)
     * @throws NullPointerException if {@code skipLayers} is null
     */
    public static EvictionPolicy knorm(int pruneAfter, int... skipLayers) {
        return new KnormPolicy(pruneAfter, Objects.requireNonNull(skipLayers, "skipLayers"));
    }

    /**
     * Returns CORM (Dai et al. 2024, arXiv 2404.15949) with {@code w} = {@value #DEFAULT_CORM_WINDOW},
     * {@code r} = {@value #DEFAULT_CORM_RECENT}, {@code alpha} = {@value #DEFAULT_CORM_ALPHA} and the
     * hard capacity on: a key is dropped once none of the last {@code w} queries gave it at least
     * {@code alpha / t} attention; the newest {@code r} tokens are kept.
     */
    public static EvictionPolicy corm() {
        return corm(DEFAULT_CORM_WINDOW, DEFAULT_CORM_RECENT, DEFAULT_CORM_ALPHA, true);
    }

    /**
     * Returns CORM with the given windows and threshold factor.
     *
     * @param window queries remembered per key, in {@code [1, 64]}
     * @param recent newest tokens never evicted, {@code >= 0}
     * @param alpha threshold factor, finite and {@code > 0}
     * @param hardCapacity whether an append beyond the capacity evicts the key with the smallest
     *     recent maximum attention (false: such an append fails)
     * @throws IllegalArgumentException if an argument is out of range
     */
    public static EvictionPolicy corm(int window, int recent, double alpha, boolean hardCapacity) {
        return new CormPolicy(window, recent, alpha, hardCapacity);
    }

    /**
     * Returns H2O (Zhang et al. 2023, arXiv 2306.14048): keys ranked by the attention they
     * accumulated (mean over the group's query heads), the newest half of the kept tokens
     * protected as the recent window.
     */
    public static EvictionPolicy h2o() {
        return h2o(DEFAULT_H2O_RECENT_FRACTION);
    }

    /**
     * Returns H2O whose recent window is {@code floor(recentFraction * kept)} of the kept tokens.
     *
     * @throws IllegalArgumentException if {@code recentFraction} is outside {@code [0, 1)}
     */
    public static EvictionPolicy h2o(double recentFraction) {
        return new H2oPolicy(recentFraction, false);
    }

    /**
     * Returns kvpress's {@code ObservedAttentionPress}: the attention a key accumulated divided by
     * the number of queries that saw it, averaged over the group's query heads; no recent window.
     */
    public static EvictionPolicy observedAttention() {
        return new H2oPolicy(0.0, true);
    }

    /**
     * Returns SnapKV (Li et al. 2024, arXiv 2404.14469; kvpress {@code SnapKVPress}) with window
     * {@value #DEFAULT_SNAPKV_WINDOW} and pooling width {@value #DEFAULT_SNAPKV_KERNEL}. The
     * capacity must exceed the window.
     */
    public static EvictionPolicy snapKv() {
        return snapKv(DEFAULT_SNAPKV_WINDOW, DEFAULT_SNAPKV_KERNEL);
    }

    /**
     * Returns SnapKV with the given observation window and pooling width.
     *
     * @throws IllegalArgumentException if {@code window < 1} or {@code kernel} is not odd and
     *     {@code >= 1}
     */
    public static EvictionPolicy snapKv(int window, int kernel) {
        return new SnapKvPolicy(window, kernel);
    }

    /**
     * Returns TOVA (Oren et al. 2024, arXiv 2401.06104; kvpress {@code TOVAPress}): keys ranked by
     * the latest query's attention averaged over all query heads of the layer, one decision per
     * layer; the newest token is kept.
     */
    public static EvictionPolicy tova() {
        return new TovaPolicy();
    }

    /**
     * Returns KeyDiff (Park et al. 2025; kvpress {@code KeyDiffPress}): per (layer, kv-head), the
     * keys least similar to the mean of the normalised keys are kept, score
     * {@code -cos(k_j, (1/n) Σ_i k_i / ‖k_i‖)}. Query-agnostic.
     */
    public static EvictionPolicy keyDiff() {
        return new KeyDiffPolicy();
    }

    /**
     * Returns expected attention (kvpress {@code ExpectedAttentionPress}, with its defaults:
     * {@value #DEFAULT_EXPECTED_ATTENTION_FUTURE} future positions, {@value #DEFAULT_SINKS} sinks,
     * covariance and value norms on, epsilon 0): the attention future queries are expected to
     * give a key, from the mean and covariance of the queries seen so far,
     * {@code (1/G) Σ_g softmax_j(μ'ᵀk_j / √d + k_jᵀΣ'k_j / (2d)) · ‖v_j‖}, the sinks kept.
     * {@code rope} is the model's RoPE, with which the cache's queries are turned back to their
     * unrotated form.
     *
     * @throws NullPointerException if {@code rope} is null
     */
    public static EvictionPolicy expectedAttention(Rope rope) {
        return expectedAttention(rope, DEFAULT_EXPECTED_ATTENTION_FUTURE, DEFAULT_SINKS, true, true, 0.0);
    }

    /**
     * Returns expected attention with the given settings ({@link ExpectedAttentionPolicy}).
     *
     * @param rope the model's RoPE
     * @param futurePositions positions the RoPE rotation is averaged over, {@code >= 1}
     * @param sinks first positions whose queries are not counted and whose keys rank first, {@code >= 0}
     * @param covariance whether the covariance term is added
     * @param valueNorms whether the score is weighted by the value norm
     * @param epsilon added to the score before the value-norm weighting, finite and {@code >= 0}
     * @throws IllegalArgumentException if an argument is out of range
     * @throws NullPointerException if {@code rope} is null
     */
    public static EvictionPolicy expectedAttention(Rope rope, int futurePositions, int sinks, boolean covariance,
                                                   boolean valueNorms, double epsilon) {
        return new ExpectedAttentionPolicy(rope, futurePositions, sinks, covariance, valueNorms, epsilon);
    }
}
