package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Objects;

/**
 * Expected attention, NVIDIA kvpress's own {@code ExpectedAttentionPress} (Devoto, Jeblick,
 * Jégou 2025, "Expected Attention"): a key is worth the attention that queries yet to come are
 * expected to give it. The
 * queries seen so far (all but those of the first {@code sinks} positions, which carry outliers)
 * give per query head the mean {@code μ} and covariance {@code Σ} of the query before RoPE; the
 * RoPE rotation averaged over the next {@code F} positions, {@code R̄}, turns them into the
 * statistics of a future query ({@link QueryStatistics}). For a Gaussian query,
 * {@code E[exp(qᵀk / √d)] = exp(μ'ᵀk / √d + kᵀΣ'k / (2d))} with {@code μ' = R̄μ},
 * {@code Σ' = R̄ΣR̄ᵀ}; normalised over the non-sink keys per query head and averaged over the
 * group this is the score, {@code s_j = (1/G) Σ_g softmax_j(μ'_gᵀk_j / √d + k_jᵀΣ'_g k_j / (2d))},
 * then weighted by the value norm, {@code (s_j + ε) ‖v_j‖} (the part of the output the key
 * carries). The sinks, the tokens at positions below {@code sinks}, get the highest score of the
 * others, as in kvpress: with the earlier position winning ties they are the last to go, so they
 * stay unless a request leaves fewer tokens than sinks (no capacity is reserved for them).
 *
 * <p>The keys and values are the stored rows ({@link BufferView#key}, {@link BufferView#value});
 * the queries arrive with the attention weights ({@link AttentionWeights#query}), after RoPE, and
 * are turned back with the model's {@link Rope}. Scoring a buffer of {@code n} tokens costs
 * {@code O(n G d²)} with the covariance and {@code O(n G d)} without, on every request for
 * victims (a decode step that needs room included). Ties: the later position is evicted first.
 */
public final class ExpectedAttentionPolicy implements EvictionPolicy {

    private final Rope rope;
    private final int futurePositions;
    private final int sinks;
    private final boolean covariance;
    private final boolean valueNorms;
    private final double epsilon;

    /**
     * @param rope the RoPE of the model whose queries the cache sees
     * @param futurePositions positions {@code F} the rotation is averaged over, {@code >= 1}
     * @param sinks first positions whose queries are not counted and whose keys rank first, {@code >= 0}
     * @param covariance whether the covariance term {@code kᵀΣ'k / (2d)} is added
     * @param valueNorms whether the score is weighted by the value norm
     * @param epsilon added to the score before the value norm weights it, finite and {@code >= 0}
     * @throws IllegalArgumentException if an argument is out of range
     * @throws NullPointerException if {@code rope} is null
     */
    public ExpectedAttentionPolicy(Rope rope, int futurePositions, int sinks, boolean covariance, boolean valueNorms,
                                   double epsilon) {
        Objects.requireNonNull(rope, "rope");
        if (futurePositions < 1) {
            throw new IllegalArgumentException("futurePositions must be >= 1, got " + futurePositions);
        }
        if (sinks < 0) {
            throw new IllegalArgumentException("sinks must be >= 0, got " + sinks);
        }
        if (!(epsilon >= 0) || Double.isInfinite(epsilon)) {
            throw new IllegalArgumentException("epsilon must be finite and >= 0, got " + epsilon);
        }
        this.rope = rope;
        this.futurePositions = futurePositions;
        this.sinks = sinks;
        this.covariance = covariance;
        this.valueNorms = valueNorms;
        this.epsilon = epsilon;
    }

    /** Returns the RoPE the queries are turned back with. */
    public Rope rope() {
        return rope;
    }

    /** Returns the number of future positions the rotation is averaged over. */
    public int futurePositions() {
        return futurePositions;
    }

    /** Returns the number of sink positions. */
    public int sinks() {
        return sinks;
    }

    /** Returns whether the covariance term is added. */
    public boolean covariance() {
        return covariance;
    }

    /** Returns whether the score is weighted by the value norm. */
    public boolean valueNorms() {
        return valueNorms;
    }

    /** Returns the epsilon added to the score before the value-norm weighting. */
    public double epsilon() {
        return epsilon;
    }

    /** Returns this policy with {@code other} as its RoPE (the same policy if it already is). */
    public ExpectedAttentionPolicy withRope(Rope other) {
        return rope.equals(other) ? this
                : new ExpectedAttentionPolicy(other, futurePositions, sinks, covariance, valueNorms, epsilon);
    }

    @Override
    public String name() {
        return "expected_attention";
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new ExpectedTracker(shape);
    }

    private final class ExpectedTracker extends SlotTracker {
        private final QueryStatistics stats;
        /** Per candidate and head: {@code logits[g * capacity + i]}. */
        private final double[] logits;
        private float[] key = new float[0];
        private float[] value = new float[0];
        private double[] mu = new double[0];
        private double[] cov;

        ExpectedTracker(Shape shape) {
            super(shape);
            this.stats = new QueryStatistics(rope, shape.buffers(), shape.groupSize(), futurePositions);
            this.logits = new double[shape.groupSize() * shape.capacity()];
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            if (weights.queryPosition() >= sinks) {
                stats.add(buffer, view.headDim(), weights);
            }
        }

        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            int d = view.headDim();
            int group = shape().groupSize();
            int capacity = shape().capacity();
            if (key.length != d) {
                key = new float[d];
                value = new float[d];
                mu = new double[d];
                cov = covariance ? new double[d * d] : null;
            }
            for (int g = 0; g < group; g++) {
                stats.expected(buffer, g, 1.0 / Math.sqrt(d), mu, 0.5 / d, cov);
                for (int i = 0; i < n; i++) {
                    if (view.position(candidates[i]) < sinks) {
                        continue;
                    }
                    view.key(candidates[i], key, 0);
                    logits[g * capacity + i] = logit(key, d);
                }
            }
            double best = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                scores[i] = 0;
            }
            for (int g = 0; g < group; g++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int i = 0; i < n; i++) {
                    if (view.position(candidates[i]) >= sinks) {
                        max = Math.max(max, logits[g * capacity + i]);
                    }
                }
                double sum = 0;
                for (int i = 0; i < n; i++) {
                    if (view.position(candidates[i]) >= sinks) {
                        double e = Math.exp(logits[g * capacity + i] - max);
                        logits[g * capacity + i] = e;
                        sum += e;
                    }
                }
                for (int i = 0; i < n; i++) {
                    if (view.position(candidates[i]) >= sinks) {
                        scores[i] += logits[g * capacity + i] / (sum * group);
                    }
                }
            }
            for (int i = 0; i < n; i++) {
                if (view.position(candidates[i]) < sinks) {
                    continue;
                }
                if (valueNorms) {
                    view.value(candidates[i], value, 0);
                    scores[i] = (scores[i] + epsilon) * RowMath.norm(value);
                }
                best = Math.max(best, scores[i]);
            }
            for (int i = 0; i < n; i++) {
                if (view.position(candidates[i]) < sinks) {
                    scores[i] = best == Double.NEGATIVE_INFINITY ? 0 : best;
                }
            }
        }

        /** {@code μ'ᵀk + kᵀΣ'k} with the scales folded into {@link #mu} and {@link #cov}. */
        private double logit(float[] k, int d) {
            double linear = 0;
            double quadratic = 0;
            for (int a = 0; a < d; a++) {
                linear += mu[a] * k[a];
                if (cov != null) {
                    double row = 0;
                    for (int b = 0; b < d; b++) {
                        row += cov[a * d + b] * k[b];
                    }
                    quadratic += k[a] * row;
                }
            }
            return linear + quadratic;
        }

        @Override
        protected SlotTracker blank() {
            return new ExpectedTracker(shape());
        }

        @Override
        protected void saveExtra(DataOutput out) throws IOException {
            stats.write(out);
        }

        @Override
        protected Runnable readExtra(DataInput in) throws IOException {
            return stats.read(in);
        }

        @Override
        public void reset() {
            super.reset();
            stats.clear();
        }
    }
}
