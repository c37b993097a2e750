package io.github.kvcache4j.eval;

import io.github.kvcache4j.Allocation;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.policy.ExpectedAttentionPolicy;
import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Objects;
import java.util.function.Function;

/**
 * How the evaluator builds a cache for one row of its table: an eviction policy, optionally a LESS
 * residual, optionally a cross-layer sharing plan, and optionally a rule that shares the
 * compression budget among heads and layers.
 *
 * @param policy the eviction policy
 * @param less which LESS feature map the residual uses, {@link Less#NONE} for no residual
 * @param sharing the sharing plan, or null when every layer keeps its own KV
 * @param allocation how the evaluation's budget is shared among the (layer, kv-head) buffers
 *     (given the evaluation, for rules calibrated on the model), or null for the same budget in
 *     every buffer
 */
record CacheRecipe(EvictionPolicy policy, Less less, SharingPlan sharing, Function<EvalModel, Allocation> allocation) {

    /** Seed of the LESS random-feature map (the one docs/less.md reports first). */
    static final long LESS_SEED = 1;
    /** Rank of the FAVOR+ map (docs/less.md measures 8, 32 and 64). */
    static final int LESS_RANK = 32;

    /** The LESS residual of a recipe. */
    enum Less {
        /** No residual. */
        NONE,
        /** FAVOR+ positive random features, rank {@value #LESS_RANK}, seed {@value #LESS_SEED}. */
        RANDOM,
        /** The trained feature map the evaluator loaded ({@code --less-map}). */
        LEARNED
    }

    CacheRecipe {
        Objects.requireNonNull(policy, "policy");
        Objects.requireNonNull(less, "less");
    }

    /** Creates a recipe with the same budget in every buffer. */
    CacheRecipe(EvictionPolicy policy, Less less, SharingPlan sharing) {
        this(policy, less, sharing, null);
    }

    /** Returns the recipe of {@code policy} whose budget {@code allocation} shares among the buffers. */
    static CacheRecipe allocated(EvictionPolicy policy, Function<EvalModel, Allocation> allocation) {
        return new CacheRecipe(policy, Less.NONE, null, Objects.requireNonNull(allocation, "allocation"));
    }

    /**
     * Compresses {@code cache}, which holds a {@code context}-token context in every buffer, to
     * {@link ContinuationTask#kept} tokens per buffer, or to the same total shared by the
     * allocation.
     */
    void compress(KvCache cache, EvalModel eval, int context, double ratio) {
        if (allocation == null) {
            cache.compress(ContinuationTask.kept(context, ratio));
        } else {
            cache.compress(ratio, allocation.apply(eval));
        }
    }

    /** Returns the recipe of a plain eviction policy. */
    static CacheRecipe of(EvictionPolicy policy) {
        return new CacheRecipe(policy, Less.NONE, null);
    }

    /**
     * Returns whether the recipe is compressed to each ratio. A sharing plan fixes the memory by
     * itself: such a recipe runs once, uncompressed.
     */
    boolean compresses() {
        return sharing == null;
    }

    /**
     * Adds this recipe's policy, residual and sharing plan to {@code builder}. A policy that turns
     * queries back by RoPE (expected attention) gets the model's {@code rope}: the registry names
     * policies without knowing the model.
     *
     * @param learned the trained feature map, or null when none was loaded
     * @throws IllegalArgumentException if the recipe needs a trained map and {@code learned} is null
     */
    KvCacheConfig.Builder applyTo(KvCacheConfig.Builder builder, int headDim, Rope rope, FeatureMap learned) {
        builder.policy(policy instanceof ExpectedAttentionPolicy e ? e.withRope(rope) : policy);
        switch (less) {
            case NONE -> { }
            case RANDOM -> builder.less(FeatureMap.positiveRandom(headDim, LESS_RANK, LESS_SEED));
            case LEARNED -> {
                if (learned == null) {
                    throw new IllegalArgumentException("--less-map: a learned-LESS policy needs a trained feature map");
                }
                builder.less(learned);
            }
        }
        if (sharing != null) {
            builder.sharing(sharing);
        }
        return builder;
    }
}
