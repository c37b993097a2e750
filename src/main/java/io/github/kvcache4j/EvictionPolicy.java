package io.github.kvcache4j;

/**
 * Decides which tokens a {@link KvCache} forgets. A policy is an immutable description (what
 * {@link Policies} returns and {@link KvCacheConfig} holds); each cache asks it for a
 * {@link Tracker} that keeps the per-slot state of that cache.
 *
 * <p>Slots are indices {@code [0, resident)} into the buffer of one (source layer, kv-head). The
 * cache tells the tracker about every token it stores ({@link Tracker#onAppend}), evicts
 * ({@link Tracker#onRemove}) or moves ({@link Tracker#onMove}), and, when the tracker asks, the attention weights each query
 * produced ({@link Tracker#onAttention}); it asks the tracker for victims when an append would
 * exceed the capacity, when {@link KvCache#compress} runs, and after each attention call
 * ({@link Tracker#chooseVoluntaryVictims}, for policies with an adaptive budget).
 */
public interface EvictionPolicy {

    /** Returns a short, stable name such as {@code "h2o"}, used in reports. */
    String name();

    /**
     * Returns how many tokens per (layer, kv-head) this policy never evicts once it holds them
     * (sinks, recent windows); the cache capacity must be larger.
     */
    default int protectedTokens() {
        return 0;
    }

    /**
     * Creates the state of this policy for one cache.
     *
     * @param layers layers of the cache (slots of a layer that reads another layer's KV belong to
     *     the source layer)
     * @param kvHeads kv-heads per layer
     * @param groupSize query heads per kv-head
     * @param capacity slots per (layer, kv-head)
     */
    Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity);

    /**
     * Per-cache state of a policy. Calls come from the thread that calls the cache; for one
     * (layer, kv-head) they come in token order.
     */
    interface Tracker {

        /** Returns whether {@link #onAttention} should be called for attention on {@code layer}. */
        default boolean wantsAttention(int layer) {
            return false;
        }

        /**
         * A token was stored in {@code slot}.
         *
         * @param keyNorm the L2 norm of its key (after RoPE), computed once at append
         */
        void onAppend(int layer, int kvHead, int slot, int position, float keyNorm);

        /**
         * One query token attended over the buffer of ({@code layer}, {@code kvHead}).
         * {@code weights[g * stride + j]} is the softmax probability query head {@code g} of the
         * kv-head's group gave slot {@code j}, for {@code j < visible}; slots the query could not
         * see (after its position) have weight zero. The weights are normalised over the resident
         * slots only: with a LESS residual ({@link KvCacheConfig#less()}) the evicted tokens' share
         * is left out, so the visible slots' weights still sum to 1 and a policy ranks its slots as
         * it would without the residual. {@code layer} is the source layer whose slots
         * these are, also when a sharing layer attended. The array is reused after the call.
         */
        default void onAttention(int layer, int kvHead, int queryPosition, int readingLayer,
                                 float[] weights, int stride, int visible) {
        }

        /**
         * Names {@code count} distinct resident slots to evict from ({@code layer}, {@code kvHead})
         * into {@code victims[0..]}; returns how many it named, fewer when protected slots leave
         * no more. Must not change the tracker's state: the cache may not act on the answer.
         *
         * @param compress true for {@link KvCache#compress}, false when an append needs room
         */
        int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims);

        /**
         * Names slots the policy wants to drop although the cache is not full (adaptive budgets);
         * called after each attention call. Returns how many it named. Must not change state.
         */
        default int chooseVoluntaryVictims(int layer, int kvHead, int resident, int[] victims) {
            return 0;
        }

        /**
         * The token in {@code slot} was evicted. Called for every evicted slot, before the
         * {@link #onMove} calls that refill freed slots.
         */
        void onRemove(int layer, int kvHead, int slot);

        /**
         * The content of slot {@code from} moved to slot {@code to}, whose token was removed
         * before; {@code from} is free afterwards.
         */
        void onMove(int layer, int kvHead, int from, int to);

        /** Forgets everything (the cache was reset). */
        void reset();
    }
}
