package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * L2-norm eviction, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression"
 * (Devoto, Zhao, Scardapane, Minervini 2024, arXiv 2406.11430; kvpress {@code KnormPress}):
 * score {@code -‖k‖₂}, so the keys with the highest norm are evicted and the lowest-norm keys kept.
 * Query-agnostic: it needs no attention weights. The norm is the one the cache computes once at
 * append.
 *
 * <p>Ties (equal norms, e.g. equal tokens in the first layer, where RoPE preserves the norm): the
 * later position is evicted first, as {@code torch.topk} in kvpress keeps the earlier one. A decode
 * victim comes from a per-(layer, kv-head) heap in O(log n); {@code compress} sorts.
 *
 * <p>{@code skipLayers} and {@code pruneAfter} apply to {@code compress} only: a skipped layer, or
 * a buffer holding fewer than {@code pruneAfter} tokens, is left as it is. When an append needs
 * room the capacity is a hard bound, so every layer then evicts by the norm rule.
 */
public final class KnormPolicy implements EvictionPolicy {

    private final int pruneAfter;
    private final int[] skipLayers;

    /**
     * @param pruneAfter {@code compress} leaves buffers with fewer resident tokens alone, {@code >= 0}
     * @param skipLayers layers {@code compress} never prunes, each {@code >= 0} (copied)
     * @throws IllegalArgumentException if {@code pruneAfter < 0} or a layer is negative
     */
    public KnormPolicy(int pruneAfter, int... skipLayers) {
        if (pruneAfter < 0) {
            throw new IllegalArgumentException("pruneAfter must be >= 0, got " + pruneAfter);
        }
        for (int l : skipLayers) {
            if (l < 0) {
                throw new IllegalArgumentException("skipLayers entries must be >= 0, got " + l);
            }
        }
        this.pruneAfter = pruneAfter;
        this.skipLayers = Arrays.stream(skipLayers).distinct().sorted().toArray();
    }

    /** Returns the resident count below which {@code compress} leaves a buffer alone. */
    public int pruneAfter() {
        return pruneAfter;
    }

    /** Returns the layers {@code compress} never prunes, sorted, without duplicates. */
    public int[] skipLayers() {
        return skipLayers.clone();
    }

    @Override
    public String name() {
        return "knorm";
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if a skipped layer is not below {@code layers}
     */
    @Override
    public Tracker newTracker(Shape shape) {
        boolean[] skip = new boolean[shape.layers()];
        for (int l : skipLayers) {
            if (l >= shape.layers()) {
                throw new IllegalArgumentException("skipLayers entry " + l + " must be < layers (" + shape.layers() + ")");
            }
            skip[l] = true;
        }
        return new KnormTracker(shape, skip);
    }

    /** Per buffer, every slot keyed by (-norm, -position): the top is the next victim. */
    private final class KnormTracker extends HeapTracker {
        private final boolean[] skip;

        KnormTracker(Shape shape, boolean[] skip) {
            super(shape);
            this.skip = skip;
        }

        @Override
        HeapTracker blank() {
            return new KnormTracker(shape(), skip);
        }

        @Override
        public void onAppend(int buffer, BufferView view, int slot) {
            add(buffer, slot, -view.keyNorm(slot), -view.position(slot));
        }

        /** {@inheritDoc} Every token of a skipped layer, or of a buffer below the threshold, is protected. */
        @Override
        public boolean keepScores(int buffer, BufferView view, int count, double[] scores) {
            if (skip[view.layer()] || view.resident() < pruneAfter) {
                Arrays.fill(scores, 0, view.resident(), Double.POSITIVE_INFINITY);
                return true;
            }
            return super.keepScores(buffer, view, count, scores);
        }

        @Override
        public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
            if (reason == Reason.ADAPTIVE
                    || reason == Reason.COMPRESS && (skip[view.layer()] || view.resident() < pruneAfter)) {
                return 0;
            }
            return top(buffer, count, victims);
        }
    }
}
