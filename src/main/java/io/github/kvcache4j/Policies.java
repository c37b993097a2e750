package io.github.kvcache4j;

import io.github.kvcache4j.policy.FullPolicy;
import io.github.kvcache4j.policy.StreamingLlmPolicy;

/** Creates the built-in eviction policies. Each method documents its defaults and its paper. */
public final class Policies {

    /** The default number of StreamingLLM sink tokens (kvpress {@code n_sink}). */
    public static final int DEFAULT_SINKS = 4;

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
}
