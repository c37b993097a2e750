package io.github.kvcache4j;

import java.util.Arrays;
import java.util.Objects;

/**
 * How a total budget of resident tokens is shared among the (layer, kv-head) buffers of a cache by
 * {@link KvCache#compress(double, Allocation)}, {@link KvCache#compressToTokens} and
 * {@link KvCache#compressToBytes}. Every rule gives each buffer at least the tokens its policy
 * protects ({@link EvictionPolicy#protectedTokens()}) and at most what it holds; what a rule
 * leaves unused where a buffer holds less than its share goes to the others. Within a buffer the
 * policy still names the victims, except under a {@link #headSplit head split}.
 *
 * <ul>
 *   <li>{@link #uniform()}: the same share for every buffer.</li>
 *   <li>{@link #pyramid(double)} (PyramidKV, Cai et al. 2024): per-head shares fall linearly with
 *       depth, from {@code 2k - k/β} at the first layer to {@code k/β} at the last, {@code k} the
 *       mean share.</li>
 *   <li>{@link #adaptive(double)} (Ada-KV, Feng et al. 2024): a layer's budget goes to the
 *       highest-scoring tokens across its kv-heads, after every head got the safeguard fraction
 *       {@code α} of an even share; scores come from {@link EvictionPolicy.Tracker#keepScores}.</li>
 *   <li>{@link #headSplit(double[], int, int)} (DuoAttention, Xiao et al. 2024): retrieval heads keep
 *       every token, streaming heads keep the first {@code sinks} and the last {@code recent}.</li>
 * </ul>
 *
 * <p>{@code docs/memory.md} gives the formulas and the measured quality at equal bytes.
 */
public final class Allocation {

    /** The rule behind an allocation. */
    enum Kind {
        UNIFORM, PYRAMID, ADAPTIVE, RANKED_SPLIT, FIXED_SPLIT
    }

    private final Kind kind;
    private final double beta;
    private final double safeguard;
    private final double[] headScores;
    private final boolean[] retrieval;
    private final int sinks;
    private final int recent;

    private Allocation(Kind kind, double beta, double safeguard, double[] headScores, boolean[] retrieval,
                       int sinks, int recent) {
        this.kind = kind;
        this.beta = beta;
        this.safeguard = safeguard;
        this.headScores = headScores;
        this.retrieval = retrieval;
        this.sinks = sinks;
        this.recent = recent;
    }

    /** Returns the allocation that gives every buffer the same share. */
    public static Allocation uniform() {
        return new Allocation(Kind.UNIFORM, 1, Double.NaN, null, null, 0, 0);
    }

    /**
     * Returns PyramidKV's layer-wise allocation: the per-head share of source layer {@code i} of
     * {@code L} is {@code max - (max - min) · i / (L - 1)} with {@code min = k / beta} and
     * {@code max = 2k - min}, so the shares still sum to the budget.
     *
     * @param beta how much smaller the last layer's share is than the mean ({@code >= 1}; 1 is uniform)
     * @throws IllegalArgumentException if {@code beta < 1} or is not finite
     */
    public static Allocation pyramid(double beta) {
        checkBeta(beta);
        return new Allocation(Kind.PYRAMID, beta, Double.NaN, null, null, 0, 0);
    }

    /**
     * Returns Ada-KV's head-wise allocation under uniform layer budgets: each layer keeps its
     * {@code kvHeads · k} highest-scoring tokens across its kv-heads, after each head got
     * {@code floor(safeguard · k)} of its own best.
     *
     * @param safeguard the fraction of an even share every head keeps, in {@code [0, 1]}
     *     (Ada-KV uses 0.2)
     * @throws IllegalArgumentException if {@code safeguard} is outside {@code [0, 1]}
     */
    public static Allocation adaptive(double safeguard) {
        return adaptive(1, safeguard);
    }

    /**
     * Returns Ada-KV's head-wise allocation inside PyramidKV's layer budgets.
     *
     * @param beta the pyramid's {@code beta} ({@code >= 1}; 1 is uniform layers)
     * @param safeguard the fraction of an even share every head keeps, in {@code [0, 1]}
     * @throws IllegalArgumentException if an argument is out of range
     */
    public static Allocation adaptive(double beta, double safeguard) {
        checkBeta(beta);
        if (!(safeguard >= 0 && safeguard <= 1)) {
            throw new IllegalArgumentException("safeguard must be in [0, 1], got " + safeguard);
        }
        return new Allocation(Kind.ADAPTIVE, beta, safeguard, null, null, 0, 0);
    }

    /**
     * Returns a DuoAttention-style split ranked by {@code headScores}: the buffers with the highest
     * scores keep every token, as many as the budget allows, in score order; the one after them
     * keeps its sinks and whatever the budget has left as its recent window; the rest keep
     * {@code sinks} and {@code recent}. Scores are indexed {@code layer * kvHeads + kvHead} (a
     * calibration such as the evaluator's needle-attention ranking gives them); entries of layers
     * that read another layer's KV are ignored.
     *
     * @throws NullPointerException if {@code headScores} is null
     * @throws IllegalArgumentException if a score is not finite or a count is negative
     */
    public static Allocation headSplit(double[] headScores, int sinks, int recent) {
        Objects.requireNonNull(headScores, "headScores");
        checkCounts(sinks, recent);
        for (int i = 0; i < headScores.length; i++) {
            if (!Double.isFinite(headScores[i])) {
                throw new IllegalArgumentException("headScores[" + i + "] must be finite, got " + headScores[i]);
            }
        }
        return new Allocation(Kind.RANKED_SPLIT, 1, Double.NaN, headScores.clone(), null, sinks, recent);
    }

    /**
     * Returns a fixed DuoAttention split: buffer {@code layer * kvHeads + kvHead} keeps every
     * token where {@code retrieval} is set, its first {@code sinks} and last {@code recent} tokens
     * elsewhere. The budget is a bound the split must fit in.
     *
     * @throws NullPointerException if {@code retrieval} is null
     * @throws IllegalArgumentException if a count is negative
     */
    public static Allocation headSplit(boolean[] retrieval, int sinks, int recent) {
        Objects.requireNonNull(retrieval, "retrieval");
        checkCounts(sinks, recent);
        return new Allocation(Kind.FIXED_SPLIT, 1, Double.NaN, null, retrieval.clone(), sinks, recent);
    }

    private static void checkBeta(double beta) {
        if (!(beta >= 1) || Double.isInfinite(beta)) {
            throw new IllegalArgumentException("beta must be finite and >= 1, got " + beta);
        }
    }

    private static void checkCounts(int sinks, int recent) {
        if (sinks < 0 || recent < 0) {
            throw new IllegalArgumentException("sinks and recent must be >= 0, got " + sinks + " and " + recent);
        }
    }

    Kind kind() {
        return kind;
    }

    double beta() {
        return beta;
    }

    double safeguard() {
        return safeguard;
    }

    /** Returns whether buffers are split into retrieval and streaming heads. */
    boolean splits() {
        return kind == Kind.RANKED_SPLIT || kind == Kind.FIXED_SPLIT;
    }

    /** Returns the ranking score of buffer {@code id} (0 beyond the array), or for a fixed split 1 or 0. */
    double headScore(int id) {
        if (kind == Kind.FIXED_SPLIT) {
            return id < retrieval.length && retrieval[id] ? 1 : 0;
        }
        return id < headScores.length ? headScores[id] : 0;
    }

    int sinks() {
        return sinks;
    }

    int recent() {
        return recent;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Allocation a && kind == a.kind && Double.compare(beta, a.beta) == 0
                && Double.compare(safeguard, a.safeguard) == 0 && Arrays.equals(headScores, a.headScores)
                && Arrays.equals(retrieval, a.retrieval) && sinks == a.sinks && recent == a.recent;
    }

    @Override
    public int hashCode() {
        return Objects.hash(kind, beta, safeguard, Arrays.hashCode(headScores), Arrays.hashCode(retrieval), sinks,
                recent);
    }

    /** Returns the rule and its parameters, e.g. {@code adaptive(beta=1.0, safeguard=0.2)}. */
    @Override
    public String toString() {
        return switch (kind) {
            case UNIFORM -> "uniform";
            case PYRAMID -> "pyramid(beta=" + beta + ")";
            case ADAPTIVE -> "adaptive(beta=" + beta + ", safeguard=" + safeguard + ")";
            case RANKED_SPLIT -> "headSplit(ranked " + headScores.length + " heads, sinks=" + sinks + ", recent="
                    + recent + ")";
            case FIXED_SPLIT -> "headSplit(mask of " + retrieval.length + " heads, sinks=" + sinks + ", recent="
                    + recent + ")";
        };
    }
}
