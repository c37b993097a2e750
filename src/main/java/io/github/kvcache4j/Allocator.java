package io.github.kvcache4j;

import java.util.Arrays;

/**
 * Turns a total token budget and an {@link Allocation} into a resident count per buffer of a
 * cache, before anything changes: {@link #prepare} reads the resident counts (and, for a
 * head-wise rule, the policy's keep scores), {@link #plan} is arithmetic only, so a caller can
 * search the budget that fits a byte limit. Buffers are numbered by storage: source {@code i},
 * kv-head {@code h} is {@code i * kvHeads + h}.
 */
final class Allocator {

    /** Reads the keep scores of buffer {@code b} into {@code scores[0, resident)}. */
    @FunctionalInterface
    interface Scores {
        /** Returns false when the policy has no comparable scores. */
        boolean fill(int b, int count, double[] scores);
    }

    private final int[] layers;
    private final int kvHeads;
    private final int sources;
    private final int buffers;
    private final int[] resident;
    private final int[] low;
    private final int[] kept;
    /** Per buffer, during {@link #headWise}: its candidates scoring above the layer's cut. */
    private final int[] above;
    private final boolean[] byPosition;
    private final double[] weight;
    private final double[] scratch;
    private Allocation allocation;
    private int protectedTokens;
    /** Per buffer, its keep scores sorted ascending, at {@code offset[b]} (head-wise rules only). */
    private double[] sorted;
    private int[] offset;
    private double[] pool;

    /** @param layers the layer of each source, in storage order */
    Allocator(int[] layers, int kvHeads, int capacity) {
        this.layers = layers.clone();
        this.kvHeads = kvHeads;
        this.sources = layers.length;
        this.buffers = sources * kvHeads;
        this.resident = new int[buffers];
        this.low = new int[buffers];
        this.kept = new int[buffers];
        this.above = new int[buffers];
        this.byPosition = new boolean[buffers];
        this.weight = new double[sources];
        this.scratch = new double[capacity];
    }

    /**
     * Reads what {@link #plan} needs: the resident counts, and for a head-wise rule the policy's
     * scores ({@code hint} tokens is the budget the caller expects, for the policies' windows).
     *
     * @throws IllegalArgumentException if the rule needs scores the policy does not give
     */
    void prepare(Allocation allocation, int[] sizes, int protectedTokens, long hint, Scores scores, String policy) {
        this.allocation = allocation;
        this.protectedTokens = protectedTokens;
        System.arraycopy(sizes, 0, resident, 0, buffers);
        if (allocation.kind() != Allocation.Kind.ADAPTIVE && !allocation.splits()) {
            return;
        }
        if (allocation.splits()) {
            checkScores(scores.fill(0, 0, scratch), allocation, policy);
            return;
        }
        sorted = new double[Math.toIntExact(total())];
        offset = new int[buffers + 1];
        pool = new double[sorted.length];
        double share = (double) Math.max(0, hint) / buffers;
        for (int b = 0; b < buffers; b++) {
            offset[b + 1] = offset[b] + resident[b];
            int count = (int) Math.max(0, resident[b] - Math.floor(share));
            checkScores(scores.fill(b, count, scratch), allocation, policy);
            System.arraycopy(scratch, 0, sorted, offset[b], resident[b]);
            Arrays.sort(sorted, offset[b], offset[b + 1]);
        }
    }

    private static void checkScores(boolean given, Allocation allocation, String policy) {
        if (!given) {
            throw new IllegalArgumentException("allocation " + allocation + " treats each kv-head on its own, which "
                    + "needs a policy that gives keep scores (EvictionPolicy.Tracker.keepScores); policy " + policy
                    + " gives none");
        }
    }

    /** Returns the fewest tokens the prepared rule keeps in total. */
    long minimum() {
        long min = 0;
        for (int b = 0; b < buffers; b++) {
            min += lowOf(b);
        }
        if (allocation.kind() == Allocation.Kind.FIXED_SPLIT) {
            for (int b = 0; b < buffers; b++) {
                if (retrieval(b)) {
                    min += resident[b] - lowOf(b);
                }
            }
        }
        return min;
    }

    /** Returns every resident token. */
    long total() {
        long n = 0;
        for (int r : resident) {
            n += r;
        }
        return n;
    }

    /** Plans {@code total} tokens ({@link #minimum()} at least): afterwards {@link #kept} holds the counts. */
    void plan(long total) {
        for (int b = 0; b < buffers; b++) {
            low[b] = lowOf(b);
            byPosition[b] = false;
        }
        switch (allocation.kind()) {
            case UNIFORM, PYRAMID -> levels(total, allocation.beta());
            case ADAPTIVE -> {
                levels(total, allocation.beta());
                for (int i = 0; i < sources; i++) {
                    headWise(i);
                }
            }
            case RANKED_SPLIT, FIXED_SPLIT -> split(total);
        }
    }

    /** Returns the planned resident count of buffer {@code b}. */
    int kept(int b) {
        return kept[b];
    }

    /** Returns whether buffer {@code b} keeps its sinks and newest tokens instead of the policy's choice. */
    boolean byPosition(int b) {
        return byPosition[b];
    }

    private int lowOf(int b) {
        if (allocation.splits()) {
            return Math.min(resident[b], allocation.sinks() + allocation.recent());
        }
        return Math.min(resident[b], protectedTokens);
    }

    private boolean retrieval(int b) {
        return allocation.headScore(layerId(b)) > 0;
    }

    /** The id a head split's scores use for buffer {@code b}: {@code layer * kvHeads + kvHead}. */
    private int layerId(int b) {
        return layers[b / kvHeads] * kvHeads + b % kvHeads;
    }

    /**
     * Gives every buffer of source {@code i} the same level {@code floor(c · w_i)}, clamped to
     * {@code [low, resident]}, with the largest {@code c} whose total fits {@code total}:
     * {@code w_i = 1} (uniform), or PyramidKV's linear fall from {@code 2 - 1/beta} at the first
     * source to {@code 1/beta} at the last. Where a buffer holds less than its level, raising
     * {@code c} hands the rest to the others, and the kv-heads of a layer keep equal counts.
     */
    private void levels(long total, double beta) {
        double min = 1 / beta;
        double max = 2 - min;
        for (int i = 0; i < sources; i++) {
            weight[i] = sources == 1 ? 1 : max - (max - min) * i / (sources - 1);
        }
        int most = 0;
        for (int r : resident) {
            most = Math.max(most, r);
        }
        double lo = 0;
        double hi = (most + 1.0) / min;
        for (int step = 0; step < 200 && hi - lo > 1e-9 * Math.max(1, hi); step++) {
            double mid = (lo + hi) / 2;
            if (sum(mid) <= total) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if (sum(hi) <= total) {
            lo = hi;
        }
        sum(lo);
    }

    /** Sets {@link #kept} to the levels of scale {@code c} and returns their total. */
    private long sum(double c) {
        long n = 0;
        for (int b = 0; b < buffers; b++) {
            double level = Math.floor(c * weight[b / kvHeads]);
            kept[b] = (int) Math.max(low[b], Math.min(resident[b], level));
            n += kept[b];
        }
        return n;
    }

    /**
     * Ada-KV inside source {@code i}: each head first keeps its {@code floor(safeguard · B / H)} best
     * tokens (at least what the policy protects), then the rest of the layer budget {@code B} goes
     * to the best remaining tokens of all its heads; equal scores at the cut go to the lower head.
     */
    private void headWise(int i) {
        int first = i * kvHeads;
        long budget = 0;
        for (int h = 0; h < kvHeads; h++) {
            budget += kept[first + h];
        }
        long guard = (long) Math.floor(allocation.safeguard() * budget / kvHeads);
        long floors = 0;
        for (int h = 0; h < kvHeads; h++) {
            int b = first + h;
            low[b] = (int) Math.max(low[b], Math.min(resident[b], guard));
            floors += low[b];
        }
        if (floors > budget) {
            return;
        }
        int rest = (int) (budget - floors);
        int pooled = 0;
        for (int h = 0; h < kvHeads; h++) {
            int b = first + h;
            int candidates = resident[b] - low[b];
            System.arraycopy(sorted, offset[b], pool, pooled, candidates);
            pooled += candidates;
        }
        if (rest == 0) {
            for (int h = 0; h < kvHeads; h++) {
                kept[first + h] = low[first + h];
            }
            return;
        }
        Arrays.sort(pool, 0, pooled);
        double cut = pool[pooled - rest];
        int ties = rest;
        for (int h = 0; h < kvHeads; h++) {
            int b = first + h;
            above[b] = count(b, cut, false);
            ties -= above[b];
        }
        for (int h = 0; h < kvHeads; h++) {
            int b = first + h;
            int take = Math.min(count(b, cut, true) - above[b], ties);
            ties -= take;
            kept[b] = low[b] + above[b] + take;
        }
    }

    /**
     * Among buffer {@code b}'s candidates (its scores below its floor's), how many exceed
     * {@code cut}, or reach it if {@code orEqual}.
     */
    private int count(int b, double cut, boolean orEqual) {
        int n = resident[b] - low[b];
        int from = offset[b];
        int count = 0;
        for (int j = 0; j < n; j++) {
            double s = sorted[from + j];
            count += s > cut || orEqual && s == cut ? 1 : 0;
        }
        return count;
    }

    /**
     * DuoAttention: streaming heads keep {@code sinks + recent}; retrieval heads (the mask, or the
     * best-ranked heads while the budget lasts) keep everything; under a ranking the first head
     * that no longer fits widens its recent window with what is left.
     */
    private void split(long total) {
        long left = total;
        for (int b = 0; b < buffers; b++) {
            kept[b] = low[b];
            byPosition[b] = true;
            left -= low[b];
        }
        if (allocation.kind() == Allocation.Kind.FIXED_SPLIT) {
            for (int b = 0; b < buffers; b++) {
                if (retrieval(b)) {
                    kept[b] = resident[b];
                    byPosition[b] = false;
                }
            }
            return;
        }
        Integer[] order = new Integer[buffers];
        for (int b = 0; b < buffers; b++) {
            order[b] = b;
        }
        Arrays.sort(order, (x, y) -> Double.compare(allocation.headScore(layerId(y)), allocation.headScore(layerId(x))));
        for (int b : order) {
            int extra = resident[b] - low[b];
            if (extra <= left) {
                kept[b] = resident[b];
                byPosition[b] = false;
                left -= extra;
            } else {
                kept[b] += (int) left;
                return;
            }
        }
    }
}
