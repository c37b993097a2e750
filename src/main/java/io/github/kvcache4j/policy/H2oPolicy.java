package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * Accumulated-attention eviction in two variants.
 *
 * <p><b>H2O</b>, "H₂O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language
 * Models" (Zhang et al. 2023, arXiv 2306.14048): the score of a key is the attention it received,
 * summed over every query that saw it, each query's weight averaged over the query heads of the
 * kv-head's group: {@code s_j = Σ_q (1/G) Σ_g a_{q,g,j}}. The newest {@code floor(f · kept)} of
 * the {@code kept} tokens that stay are the recent window and are never evicted ({@code f = 1/2}:
 * half heavy hitters, half recent); among the others the lowest score goes first.
 *
 * <p><b>Observed attention</b> (kvpress {@code ObservedAttentionPress}): the same sum divided by the
 * number of queries that saw the key, {@code s_j = (1/(G·n_j)) Σ_q Σ_g a_{q,g,j}}, no recent
 * window. A key no query has seen scores 0.
 *
 * <p>Ties: the later position is evicted first. Decode victims come from one O(n) scan over the
 * scores (they change with every query, so a heap would not pay); {@code compress} sorts. With
 * cross-layer sharing every reading layer's query counts as a query of its own.
 */
public final class H2oPolicy implements EvictionPolicy {

    private final double recentFraction;
    private final boolean perQuery;

    /**
     * @param recentFraction fraction of the kept tokens that forms the protected recent window,
     *     in {@code [0, 1)}
     * @param perQuery true for the observed-attention score (sum divided by the number of queries
     *     that saw the key), false for the H2O sum
     * @throws IllegalArgumentException if {@code recentFraction} is outside {@code [0, 1)}
     */
    public H2oPolicy(double recentFraction, boolean perQuery) {
        if (!(recentFraction >= 0.0 && recentFraction < 1.0)) {
            throw new IllegalArgumentException("recentFraction must be in [0, 1), got " + recentFraction);
        }
        this.recentFraction = recentFraction;
        this.perQuery = perQuery;
    }

    /** Returns the fraction of the kept tokens that forms the recent window. */
    public double recentFraction() {
        return recentFraction;
    }

    /** Returns whether the score is divided by the number of queries that saw the key. */
    public boolean perQuery() {
        return perQuery;
    }

    @Override
    public String name() {
        return perQuery ? "observed_attention" : "h2o";
    }

    @Override
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new AccumulatingTracker(layers, kvHeads, groupSize, capacity);
    }

    private final class AccumulatingTracker implements Tracker {
        private final int kvHeads;
        private final int group;
        private final int capacity;
        private final SlotOrder order;
        /** Per buffer and slot: Σ_q (1/G) Σ_g a. */
        private final double[] sum;
        /** Per buffer and slot: queries that saw the key. */
        private final int[] queries;
        private final int[] slots;
        private final double[] score;
        private final int[] position;

        AccumulatingTracker(int layers, int kvHeads, int group, int capacity) {
            this.kvHeads = kvHeads;
            this.group = group;
            this.capacity = capacity;
            this.order = new SlotOrder(layers * kvHeads, capacity);
            this.sum = new double[layers * kvHeads * capacity];
            this.queries = new int[layers * kvHeads * capacity];
            this.slots = new int[capacity];
            this.score = new double[capacity];
            this.position = new int[capacity];
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            int b = layer * kvHeads + kvHead;
            order.append(b, slot, position);
            sum[b * capacity + slot] = 0.0;
            queries[b * capacity + slot] = 0;
        }

        @Override
        public void onAttention(int layer, int kvHead, int queryPosition, int readingLayer,
                                float[] weights, int stride, int visible) {
            int b = layer * kvHeads + kvHead;
            int base = b * capacity;
            for (int j = 0; j < visible; j++) {
                if (order.position(b, j) > queryPosition) {
                    continue;
                }
                double s = 0.0;
                for (int g = 0; g < group; g++) {
                    s += weights[g * stride + j];
                }
                sum[base + j] += s / group;
                queries[base + j]++;
            }
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            int b = layer * kvHeads + kvHead;
            int base = b * capacity;
            int kept = Math.max(0, resident - count);
            int recent = perQuery ? 0 : (int) Math.floor(recentFraction * kept);
            int from = order.recentFrom(b, recent);
            int n = 0;
            for (int s = 0; s < resident; s++) {
                int p = order.position(b, s);
                if (p >= from) {
                    continue;
                }
                slots[n++] = s;
                position[s] = p;
                int q = queries[base + s];
                score[s] = !perQuery ? sum[base + s] : q == 0 ? 0.0 : sum[base + s] / q;
            }
            return Ranking.pick(slots, n, count, score, position, victims);
        }

        @Override
        public void onRemove(int layer, int kvHead, int slot) {
            order.remove(layer * kvHeads + kvHead, slot);
        }

        @Override
        public void onMove(int layer, int kvHead, int from, int to) {
            int b = layer * kvHeads + kvHead;
            order.move(b, from, to);
            sum[b * capacity + to] = sum[b * capacity + from];
            queries[b * capacity + to] = queries[b * capacity + from];
        }

        @Override
        public void reset() {
            order.clear();
            Arrays.fill(sum, 0.0);
            Arrays.fill(queries, 0);
        }
    }
}
