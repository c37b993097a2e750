package io.github.kvcache4j;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;

/**
 * Decides which tokens a {@link KvCache} forgets. A policy is an immutable description (what
 * {@link Policies} returns and {@link KvCacheConfig} holds); each cache asks it for a
 * {@link Tracker} that keeps the per-slot state of that cache.
 *
 * <p>The cache stores tokens in <em>buffers</em>, one per (source layer, kv-head), numbered
 * {@code layer * kvHeads + kvHead} ({@link Shape#buffer}). A buffer's resident tokens occupy
 * <em>slots</em> {@code [0, resident)}; the order of the slots is not the order of the positions
 * (evictions move tokens between slots), and the cache says so with {@link Tracker#onMove}.
 * The cache tells the tracker about every token it stores ({@link Tracker#onAppend}), evicts
 * ({@link Tracker#onRemove}) or moves ({@link Tracker#onMove}), and, when the tracker asks, the
 * attention weights each query produced ({@link Tracker#onAttention}); it asks for victims with
 * a {@link Reason}: an append needs room, {@link KvCache#compress} runs, or an attention call
 * ended (adaptive budgets).
 *
 * <p>Writing a policy: extend {@link io.github.kvcache4j.policy.SlotTracker}, which keeps the
 * position order of every buffer and moves per-slot state along with the tokens; give each slot
 * a score and, if the policy protects the newest tokens, the size of that window.
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
     * @throws IllegalArgumentException if the policy cannot serve this shape (the message names
     *     the dimension and the bound)
     */
    Tracker newTracker(Shape shape);

    /**
     * The dimensions of the cache a tracker serves.
     *
     * @param layers layers of the cache (the slots of a layer that reads another layer's KV belong
     *     to the source layer's buffers)
     * @param kvHeads kv-heads per layer
     * @param groupSize query heads per kv-head
     * @param capacity slots per buffer
     */
    record Shape(int layers, int kvHeads, int groupSize, int capacity) {

        /** Returns the number of buffer ids, {@code layers * kvHeads}. */
        public int buffers() {
            return layers * kvHeads;
        }

        /** Returns the buffer id of ({@code layer}, {@code kvHead}). */
        public int buffer(int layer, int kvHead) {
            return layer * kvHeads + kvHead;
        }

        /** Returns the layer of buffer {@code buffer}. */
        public int layerOf(int buffer) {
            return buffer / kvHeads;
        }

        /** Returns the kv-head of buffer {@code buffer}. */
        public int kvHeadOf(int buffer) {
            return buffer % kvHeads;
        }
    }

    /** Why the cache asks for victims. */
    enum Reason {
        /**
         * An append needs room: the policy names exactly {@code count} victims, or fewer when it
         * cannot, and then the append fails with an exception and nothing is evicted.
         */
        MAKE_ROOM,
        /**
         * {@link KvCache#compress} asks to remove {@code count} tokens; naming fewer keeps more
         * (protected tokens, or a policy that does not compress this buffer).
         */
        COMPRESS,
        /**
         * An attention call on the buffer ended; the policy may name any number of victims up to
         * {@code count} (the resident tokens), usually none (adaptive budgets such as CORM's).
         */
        ADAPTIVE
    }

    /**
     * A read-only view of one buffer's resident tokens, valid only during the callback it is
     * passed to (the cache reuses it).
     */
    interface BufferView {

        /** Returns the (source) layer of the buffer. */
        int layer();

        /** Returns the kv-head of the buffer. */
        int kvHead();

        /** Returns the number of resident tokens (slots {@code [0, resident)}). */
        int resident();

        /** Returns the absolute position of the token in {@code slot}. */
        int position(int slot);

        /** Returns the L2 norm of the key (after RoPE, before storage rounding) in {@code slot}. */
        float keyNorm(int slot);

        /** Returns the number of floats of a key or value row (the cache's head dimension). */
        int headDim();

        /**
         * Writes the key in {@code slot} as the cache stores it (after RoPE, decoded from the
         * storage type) to {@code dst[off .. off + headDim())}. Decodes one row: O(headDim).
         *
         * @throws IndexOutOfBoundsException if {@code slot} is not resident or {@code dst} has no
         *     room
         */
        void key(int slot, float[] dst, int off);

        /**
         * Writes the value in {@code slot} as the cache stores it (decoded from the storage type)
         * to {@code dst[off .. off + headDim())}.
         *
         * @throws IndexOutOfBoundsException if {@code slot} is not resident or {@code dst} has no
         *     room
         */
        void value(int slot, float[] dst, int off);
    }

    /**
     * The attention of one query token over one buffer's slots, valid only during
     * {@link Tracker#onAttention} (the cache reuses it). Weights are softmax probabilities
     * normalised over the resident slots only: with a LESS residual ({@link KvCacheConfig#less()})
     * the evicted tokens' share is left out, so the visible slots' weights still sum to 1 and a
     * policy ranks its slots as it would without the residual.
     */
    interface AttentionWeights {

        /** Returns the position of the query token. */
        int queryPosition();

        /**
         * Returns the layer whose query attended: the buffer's own layer, or a layer that reads
         * it through cross-layer sharing.
         */
        int readingLayer();

        /** Returns the query heads of the kv-head's group. */
        int groupSize();

        /**
         * Returns the number of slots that carry weights: {@code [0, visible)}. Slots whose
         * position is after the query's have weight zero.
         */
        int visible();

        /** Returns the weight query head {@code g} of the group gave {@code slot < visible()}. */
        float weight(int g, int slot);

        /**
         * Writes the query of head {@code g} of the group, as the caller passed it to
         * {@link KvCache#attend} (after RoPE), to {@code dst[off .. off + headDim)}, where
         * {@code headDim} is {@link BufferView#headDim()} of the buffer the weights belong to.
         *
         * @throws IndexOutOfBoundsException if {@code g} is not in {@code [0, groupSize())} or
         *     {@code dst} has no room
         */
        void query(int g, float[] dst, int off);
    }

    /**
     * Per-cache state of a policy. Calls come from the thread that calls the cache; for one
     * buffer they come in token order. A tracker must not call back into the cache.
     */
    interface Tracker {

        /** Returns whether {@link #onAttention} should be called for attention on {@code layer}. */
        default boolean wantsAttention(int layer) {
            return false;
        }

        /** A token was stored in {@code slot}, the last resident slot of the buffer. */
        void onAppend(int buffer, BufferView view, int slot);

        /** One query token attended over the buffer (only when {@link #wantsAttention} said so). */
        default void onAttention(int buffer, BufferView view, AttentionWeights weights) {
        }

        /**
         * Names up to {@code count} distinct resident slots to evict into {@code victims[0..]};
         * returns how many it named. Must not change the tracker's state: the cache may not act
         * on the answer.
         */
        int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims);

        /**
         * Writes into {@code scores[slot]}, for every resident slot, how much the policy wants to
         * keep the token (higher is kept first, {@link Double#POSITIVE_INFINITY} for tokens it
         * protects from {@link KvCache#compress}), on one scale for every buffer of the cache, so that
         * a head-wise {@link Allocation#adaptive allocation} can compare tokens of different kv-heads.
         * {@code count} is how many tokens an even allocation would remove from the buffer (a
         * protected window may depend on it). Returns false when the policy has no such scores (the
         * default). Must not change the tracker's state.
         */
        default boolean keepScores(int buffer, BufferView view, int count, double[] scores) {
            return false;
        }

        /**
         * The token in {@code slot} was evicted. Called for every evicted slot, before the
         * {@link #onMove} calls that refill freed slots.
         */
        void onRemove(int buffer, int slot);

        /**
         * The token in slot {@code from} moved to slot {@code to}, whose token was removed before;
         * {@code from} is free afterwards.
         */
        void onMove(int buffer, int from, int to);

        /** Forgets everything (the cache was reset). */
        void reset();

        /**
         * The cache was closed and will not call this tracker again: a tracker that shares state
         * with a {@link #copy() fork} lets it go here, so the fork need not copy it. Does nothing by
         * default.
         */
        default void release() {
        }

        /**
         * Returns an independent copy of this tracker (a forked cache gets one): both then name
         * the same victims for the same callbacks, and changing one never changes the other. The
         * two may share state copy on write; the copy may be used on another thread than this
         * tracker.
         * Every built-in policy supports it; the default does not.
         *
         * @throws UnsupportedOperationException if the tracker does not support fork
         */
        default Tracker copy() {
            throw new UnsupportedOperationException("tracker " + getClass().getName()
                    + " does not support fork: its policy does not implement Tracker.copy()");
        }

        /**
         * Writes this tracker's state, tagged with a version of its format, so that
         * {@link #restoreState} of a tracker of the same policy and shape reproduces it. Every
         * built-in policy supports it; the default does not.
         *
         * @throws UnsupportedOperationException if the tracker does not support save
         * @throws IOException if {@code out} fails
         */
        default void saveState(DataOutput out) throws IOException {
            throw new UnsupportedOperationException("tracker " + getClass().getName()
                    + " does not support save: its policy does not implement Tracker.saveState()");
        }

        /**
         * Replaces this tracker's state with what {@link #saveState} wrote. Everything read is
         * checked before anything changes: on an exception the tracker is as it was.
         *
         * @throws UnsupportedOperationException if the tracker does not support load
         * @throws IOException if {@code in} fails, or what it holds is not the state of a tracker
         *     of this policy and shape, or is inconsistent (a count beyond the capacity, a slot
         *     outside the resident ones, a score that is not finite)
         */
        default void restoreState(DataInput in) throws IOException {
            throw new UnsupportedOperationException("tracker " + getClass().getName()
                    + " does not support load: its policy does not implement Tracker.restoreState()");
        }
    }
}
