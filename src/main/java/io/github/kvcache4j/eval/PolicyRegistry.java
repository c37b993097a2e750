package io.github.kvcache4j.eval;

import io.github.kvcache4j.Allocation;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.eval.CacheRecipe.Less;
import io.github.kvcache4j.policy.Rope;
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

    /** The DuoAttention-style split, which needs the heads ranked ({@link EvalModel#withHeadRanking}). */
    static final String DUO_SPLIT = "duo_split";
    /** Ada-KV's safeguard fraction (Feng et al. 2024; kvpress {@code AdaKVPress} alpha_safeguard). */
    static final double ADAKV_SAFEGUARD = 0.2;
    /** PyramidKV's beta (kvpress {@code PyramidKVPress}). */
    static final double PYRAMID_BETA = 20;
    /** Sinks and recent window of the split's streaming heads: one 64-token block. */
    static final int DUO_SINKS = 4;
    static final int DUO_RECENT = 60;

    private static final Map<String, Supplier<CacheRecipe>> POLICIES = new LinkedHashMap<>();

    static {
        POLICIES.put(FULL, () -> CacheRecipe.of(Policies.full()));
        POLICIES.put("streaming_llm", () -> CacheRecipe.of(Policies.streamingLlm()));
        POLICIES.put("knorm", () -> CacheRecipe.of(Policies.knorm()));
        // Knorm as the L2-norm paper runs it: layers 0 and 1 are never compressed.
        POLICIES.put("knorm_skip01", () -> CacheRecipe.of(Policies.knorm(0, 0, 1)));
        POLICIES.put("snapkv", () -> CacheRecipe.of(Policies.snapKv()));
        // kvpress ObservedAttentionPress: accumulated attention over the queries that saw the key.
        POLICIES.put("h2o", () -> CacheRecipe.of(Policies.observedAttention()));
        POLICIES.put("tova", () -> CacheRecipe.of(Policies.tova()));
        POLICIES.put("corm", () -> CacheRecipe.of(Policies.corm()));
        POLICIES.put("keydiff", () -> CacheRecipe.of(Policies.keyDiff()));
        // kvpress ExpectedAttentionPress with its defaults; the RoPE here is a stand-in that
        // CacheRecipe.applyTo replaces with the evaluated model's.
        POLICIES.put("expected_attention", () -> CacheRecipe.of(Policies.expectedAttention(Rope.of(10000, 2, false))));
        // LESS with FAVOR+ random features (+less) and with the trained maps (+less_learned).
        POLICIES.put("knorm+less", () -> new CacheRecipe(Policies.knorm(), Less.RANDOM, null));
        POLICIES.put("h2o+less", () -> new CacheRecipe(Policies.observedAttention(), Less.RANDOM, null));
        POLICIES.put("snapkv+less", () -> new CacheRecipe(Policies.snapKv(), Less.RANDOM, null));
        POLICIES.put("streaming_llm+less", () -> new CacheRecipe(Policies.streamingLlm(), Less.RANDOM, null));
        POLICIES.put("h2o+less_learned", () -> new CacheRecipe(Policies.observedAttention(), Less.LEARNED, null));
        POLICIES.put("snapkv+less_learned", () -> new CacheRecipe(Policies.snapKv(), Less.LEARNED, null));
        POLICIES.put("streaming_llm+less_learned",
                () -> new CacheRecipe(Policies.streamingLlm(), Less.LEARNED, null));
        // Budgets shared among heads and layers at the same total (docs/memory.md): Ada-KV and
        // PyramidKV (kvpress's beta 20) on SnapKV's scores, and a DuoAttention-style split whose
        // retrieval heads are the ones that attend most to a needle (NeedleHeads).
        POLICIES.put("adakv_snapkv", () -> CacheRecipe.allocated(Policies.snapKv(), e -> Allocation.adaptive(ADAKV_SAFEGUARD)));
        POLICIES.put("pyramidkv_snapkv", () -> CacheRecipe.allocated(Policies.snapKv(), e -> Allocation.pyramid(PYRAMID_BETA)));
        POLICIES.put(DUO_SPLIT, () -> CacheRecipe.allocated(Policies.full(),
                e -> Allocation.headSplit(e.headRanking(), DUO_SINKS, DUO_RECENT)));
        // Training-free sharing plans that KVSharer's rule chose for austen-base on a calibration
        // text before the evaluation windows (docs/sharing.md): 2 and 4 of 8 layers read another.
        POLICIES.put("share2", () -> new CacheRecipe(Policies.full(), Less.NONE, SharingPlan.parse("0_1_2_3_4_5_5_5")));
        POLICIES.put("share4", () -> new CacheRecipe(Policies.full(), Less.NONE, SharingPlan.parse("0_1_2_2_2_5_5_5")));
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
