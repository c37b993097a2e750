package io.github.kvcache4j.eval;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.policy.ExpectedAttentionPolicy;
import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Objects;

/**
 * How the evaluator builds a cache for one row of its table: an eviction policy, optionally a LESS
 * residual and optionally a cross-layer sharing plan.
 *
 * @param policy the eviction policy
 * @param less which LESS feature map the residual uses, {@link Less#NONE} for no residual
 * @param sharing the sharing plan, or null when every layer keeps its own KV
 */
record CacheRecipe(EvictionPolicy policy, Less less, SharingPlan sharing) {

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
