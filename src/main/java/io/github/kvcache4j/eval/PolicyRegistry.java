package io.github.kvcache4j.eval;

import io.github.kvcache4j.Policies;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The policies the evaluator knows, by the name used on the command line and in reports. New
 * policies (LESS, cross-layer sharing variants) are added here with one line each.
 */
final class PolicyRegistry {

    /** The name of the full cache, the baseline every other policy is compared with. */
    static final String FULL = "full";

    /** Rank of the LESS residual in the {@code +less} rows (docs/less.md measures 8, 32 and 64). */
    static final int LESS_RANK = 32;

    private static final Map<String, Supplier<CacheRecipe>> POLICIES = new LinkedHashMap<>();

    static {
        POLICIES.put(FULL, () -> CacheRecipe.of(Policies.full()));
        POLICIES.put("streaming_llm", () -> CacheRecipe.of(Policies.streamingLlm()));
        POLICIES.put("knorm", () -> CacheRecipe.of(Policies.knorm()));
        POLICIES.put("snapkv", () -> CacheRecipe.of(Policies.snapKv()));
        // kvpress ObservedAttentionPress: accumulated attention over the queries that saw the key.
        POLICIES.put("h2o", () -> CacheRecipe.of(Policies.observedAttention()));
        POLICIES.put("tova", () -> CacheRecipe.of(Policies.tova()));
        POLICIES.put("corm", () -> CacheRecipe.of(Policies.corm()));
        POLICIES.put("knorm+less", () -> new CacheRecipe(Policies.knorm(), LESS_RANK, null));
        POLICIES.put("h2o+less", () -> new CacheRecipe(Policies.observedAttention(), LESS_RANK, null));
        // Training-free sharing plans that KVSharer's rule chose for austen-base on a calibration
        // text before the evaluation windows (docs/sharing.md): 2 and 4 of 8 layers read another.
        POLICIES.put("share2", () -> new CacheRecipe(Policies.full(), 0, SharingPlan.parse("0_1_2_3_4_5_5_5")));
        POLICIES.put("share4", () -> new CacheRecipe(Policies.full(), 0, SharingPlan.parse("0_1_2_2_2_5_5_5")));
    }

    private PolicyRegistry() {
    }

    /** Returns every known name, in report order. */
    static Set<String> names() {
        return POLICIES.keySet();
    }

    /** Returns whether {@code name} is known. */
    static boolean contains(String name) {
        return POLICIES.containsKey(name);
    }

    /**
     * Creates the recipe called {@code name}.
     *
     * @throws IllegalArgumentException if the name is unknown
     */
    static CacheRecipe create(String name) {
        Supplier<CacheRecipe> factory = POLICIES.get(name);
        if (factory == null) {
            throw new IllegalArgumentException("unknown policy '" + name + "'; known: " + String.join(", ", names()));
        }
        return factory.get();
    }
}
