package io.github.kvcache4j.eval;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Objects;

/**
 * How the evaluator builds a cache for one row of its table: an eviction policy, optionally a LESS
 * residual (FAVOR+ random features of rank {@code lessRank}, seed {@value #LESS_SEED}) and
 * optionally a cross-layer sharing plan.
 *
 * @param policy the eviction policy
 * @param lessRank rank of the LESS feature map, 0 for no residual
 * @param sharing the sharing plan, or null when every layer keeps its own KV
 */
record CacheRecipe(EvictionPolicy policy, int lessRank, SharingPlan sharing) {

    /** Seed of the LESS random-feature map (the one docs/less.md reports first). */
    static final long LESS_SEED = 1;

    CacheRecipe {
        Objects.requireNonNull(policy, "policy");
    }

    /** Returns the recipe of a plain eviction policy. */
    static CacheRecipe of(EvictionPolicy policy) {
        return new CacheRecipe(policy, 0, null);
    }

    /**
     * Returns whether the recipe is compressed to each ratio. A sharing plan fixes the memory by
     * itself: such a recipe runs once, uncompressed.
     */
    boolean compresses() {
        return sharing == null;
    }

    /** Adds this recipe's policy, residual and sharing plan to {@code builder}. */
    KvCacheConfig.Builder applyTo(KvCacheConfig.Builder builder, int headDim) {
        builder.policy(policy);
        if (lessRank > 0) {
            builder.less(FeatureMap.positiveRandom(headDim, lessRank, LESS_SEED));
        }
        if (sharing != null) {
            builder.sharing(sharing);
        }
        return builder;
    }
}
