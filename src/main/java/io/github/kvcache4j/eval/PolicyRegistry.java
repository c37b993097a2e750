package io.github.kvcache4j.eval;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.Policies;
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

    private static final Map<String, Supplier<EvictionPolicy>> POLICIES = new LinkedHashMap<>();

    static {
        POLICIES.put(FULL, Policies::full);
        POLICIES.put("streaming_llm", Policies::streamingLlm);
        POLICIES.put("knorm", Policies::knorm);
        POLICIES.put("snapkv", Policies::snapKv);
        // kvpress ObservedAttentionPress: accumulated attention over the queries that saw the key.
        POLICIES.put("h2o", Policies::observedAttention);
        POLICIES.put("tova", Policies::tova);
        POLICIES.put("corm", Policies::corm);
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
     * Creates the policy called {@code name}.
     *
     * @throws IllegalArgumentException if the name is unknown
     */
    static EvictionPolicy create(String name) {
        Supplier<EvictionPolicy> factory = POLICIES.get(name);
        if (factory == null) {
            throw new IllegalArgumentException("unknown policy '" + name + "'; known: " + String.join(", ", names()));
        }
        return factory.get();
    }
}
