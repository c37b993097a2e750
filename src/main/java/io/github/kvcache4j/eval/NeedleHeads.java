package io.github.kvcache4j.eval;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * Ranks (layer, kv-head) pairs for a DuoAttention-style split ({@link io.github.kvcache4j.Allocation#headSplit})
 * by how much attention they pay to a needle: on synthetic passkey prompts built from a stretch
 * of text the evaluation does not score, the queries that retrieve the key (the question's last
 * token and the answer's digits, teacher-forced) give, per query head, the attention weight that
 * falls on the needle's key digits; a kv-head's score is the mean over its group's query heads,
 * those queries and the prompts. Retrieval heads, which the split
 * keeps whole, are the ones with the highest scores (DuoAttention, Xiao et al. 2024, finds them by
 * optimisation on synthetic passkey data; the attention mass is the training-free stand-in).
 */
final class NeedleHeads {

    /** Calibration prompts: needles at depths spread over the context. */
    static final int PROMPTS = 6;
    /** Context tokens of a calibration prompt. */
    static final int CONTEXT = 1024;
    /** First text token of the calibration filler: before the evaluation's first window. */
    static final int FILLER_START = 1;

    private NeedleHeads() {
    }

    /** Returns the model tokens the calibration runs ({@link Progress}). */
    static long work() {
        return (long) PROMPTS * (CONTEXT + 16);
    }

    /**
     * Scores every (layer, kv-head) of the model, indexed {@code layer * kvHeads + kvHead}.
     *
     * @param tokens {@code [BOS] + encode(text)}; the filler is taken from {@link #FILLER_START}
     */
    static double[] rank(EvalModel eval, int[] tokens) {
        return rank(eval, tokens, PROMPTS, CONTEXT);
    }

    /** Scores as {@link #rank(EvalModel, int[])} does, on {@code prompts} prompts of {@code context} tokens. */
    static double[] rank(EvalModel eval, int[] tokens, int prompts, int context) {
        int layers = eval.model().config().layers();
        int kvHeads = eval.model().config().kvHeads();
        int[] filler = Arrays.copyOfRange(tokens, FILLER_START, Math.min(tokens.length, FILLER_START + context + 1));
        SplittableRandom keys = new SplittableRandom(prompts);
        Probe probe = new Probe(layers * kvHeads);
        for (int i = 0; i < prompts; i++) {
            String key = String.format(Locale.ROOT, "%05d", keys.nextInt(10_000, 100_000));
            PasskeyTask.Prompt p = PasskeyTask.build(eval.tokenizer(), filler, context, (i + 0.5) / prompts, key);
            // The queries that retrieve: the question's last token (it predicts the first digit)
            // and the answer's digits but the last, fed as the model would have produced them.
            int[] asked = Arrays.copyOf(p.question(), p.question().length + p.answer().length - 1);
            System.arraycopy(p.answer(), 0, asked, p.question().length, p.answer().length - 1);
            probe.watch(p.keyPositions(), p.context().length + p.question().length - 1);
            try (KvCache cache = eval.newCache(CacheRecipe.of(probe), p.context().length + asked.length)) {
                eval.prefill(cache, p.context(), 0, p.context().length, 0);
                eval.score(cache, asked, p.context().length);
            }
        }
        return probe.scores();
    }

    /** Returns the {@code most} best-ranked heads as {@code L<layer>H<kvHead> score}, best first. */
    static String describe(double[] scores, int kvHeads, int most) {
        return IntStream.range(0, scores.length).boxed()
                .sorted((a, b) -> Double.compare(scores[b], scores[a]))
                .limit(most)
                .map(b -> String.format(Locale.ROOT, "L%dH%d %.3f", b / kvHeads, b % kvHeads, scores[b]))
                .collect(Collectors.joining(", "));
    }

    /**
     * A policy that keeps every token and sums, for queries from a given position on, the weight
     * each buffer's query heads give to the needle's positions.
     */
    private static final class Probe implements EvictionPolicy, EvictionPolicy.Tracker {
        private final double[] mass;
        private final long[] rows;
        private boolean[] needle = new boolean[0];
        private int from;

        Probe(int buffers) {
            this.mass = new double[buffers];
            this.rows = new long[buffers];
        }

        void watch(int[][] keyPositions, int firstQuery) {
            needle = new boolean[firstQuery];
            for (int[] run : keyPositions) {
                for (int p : run) {
                    needle[p] = true;
                }
            }
            from = firstQuery;
        }

        double[] scores() {
            double[] s = new double[mass.length];
            for (int b = 0; b < s.length; b++) {
                s[b] = rows[b] == 0 ? 0 : mass[b] / rows[b];
            }
            return s;
        }

        @Override
        public String name() {
            return "needle_probe";
        }

        @Override
        public Tracker newTracker(Shape shape) {
            return this;
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
            if (weights.queryPosition() < from) {
                return;
            }
            for (int g = 0; g < weights.groupSize(); g++) {
                for (int j = 0; j < weights.visible(); j++) {
                    int p = view.position(j);
                    if (p < needle.length && needle[p]) {
                        mass[buffer] += weights.weight(g, j);
                    }
                }
            }
            rows[buffer] += weights.groupSize();
        }

        @Override
        public void onAppend(int buffer, BufferView view, int slot) {
        }

        @Override
        public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
            return 0;
        }

        @Override
        public void onRemove(int buffer, int slot) {
        }

        @Override
        public void onMove(int buffer, int from, int to) {
        }

        @Override
        public void reset() {
        }
    }
}
