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
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        boolean[] skip = new boolean[layers];
        for (int l : skipLayers) {
            if (l >= layers) {
                throw new IllegalArgumentException("skipLayers entry " + l + " must be < layers (" + layers + ")");
            }
            skip[l] = true;
        }
        return new KnormTracker(layers, kvHeads, capacity, skip);
    }

    private final class KnormTracker implements Tracker {
        /** Per buffer, every slot keyed by (-norm, -position): the top is the next victim. */
        private final SlotHeap[] heaps;
        private final int kvHeads;
        private final boolean[] skip;
        private final int[] slots;
        private final double[] score;
        private final int[] position;

        KnormTracker(int layers, int kvHeads, int capacity, boolean[] skip) {
            this.kvHeads = kvHeads;
            this.skip = skip;
            this.heaps = new SlotHeap[layers * kvHeads];
            for (int i = 0; i < heaps.length; i++) {
                heaps[i] = new SlotHeap(capacity);
            }
            this.slots = new int[capacity];
            this.score = new double[capacity];
            this.position = new int[capacity];
        }

        @Override
        public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            heaps[layer * kvHeads + kvHead].add(slot, -keyNorm, -position);
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            if (compress && (skip[layer] || resident < pruneAfter)) {
                return 0;
            }
            SlotHeap heap = heaps[layer * kvHeads + kvHead];
            if (count == 1 && heap.size() > 0) {
                victims[0] = heap.top();
                return 1;
            }
            int n = heap.slots(slots);
            for (int i = 0; i < n; i++) {
                int s = slots[i];
                score[s] = heap.score(s);
                position[s] = -heap.position(s);
            }
            return Ranking.pick(slots, n, count, score, position, victims);
        }

        @Override
        public void onRemove(int layer, int kvHead, int slot) {
            heaps[layer * kvHeads + kvHead].remove(slot);
        }

        @Override
        public void onMove(int layer, int kvHead, int from, int to) {
            heaps[layer * kvHeads + kvHead].move(from, to);
        }

        @Override
        public void reset() {
            for (SlotHeap h : heaps) {
                h.clear();
            }
        }
    }
}
