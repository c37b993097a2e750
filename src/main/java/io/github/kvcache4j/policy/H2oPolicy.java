package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;

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
    public Tracker newTracker(Shape shape) {
        return new AccumulatingTracker(shape);
    }

    private final class AccumulatingTracker extends SlotTracker {
        /** Per buffer and slot: Σ_q (1/G) Σ_g a. */
        private final double[][] sum;
        /** Per buffer and slot: queries that saw the key. */
        private final int[][] queries;

        AccumulatingTracker(Shape shape) {
            super(shape);
            this.sum = doublesPerSlot(1);
            this.queries = intsPerSlot(1);
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            int group = weights.groupSize();
            int query = weights.queryPosition();
            double[] sum = this.sum[buffer];
            int[] queries = this.queries[buffer];
            for (int j = 0; j < weights.visible(); j++) {
                if (view.position(j) > query) {
                    continue;
                }
                double s = 0.0;
                for (int g = 0; g < group; g++) {
                    s += weights.weight(g, j);
                }
                sum[j] += s / group;
                queries[j]++;
            }
        }

        @Override
        protected SlotTracker blank() {
            return new AccumulatingTracker(shape());
        }

        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return perQuery ? 0 : (int) Math.floor(recentFraction * Math.max(0, view.resident() - count));
        }

        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            double[] sum = this.sum[buffer];
            int[] queries = this.queries[buffer];
            for (int i = 0; i < n; i++) {
                int s = candidates[i];
                int q = queries[s];
                scores[i] = !perQuery ? sum[s] : q == 0 ? 0.0 : sum[s] / q;
            }
        }
    }
}
