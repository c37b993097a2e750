package io.github.kvcache4j.eval;

/**
 * Negative log-likelihood and top-1 checks on rows of logits, in double precision. Shared by the
 * evaluator, the sharing runner and the tests that score a model.
 */
public final class Scoring {

    private Scoring() {
    }

    /**
     * Returns {@code -log softmax(logits[row])[target]}, where row {@code row} holds
     * {@code logits[row * vocab .. (row + 1) * vocab)}.
     */
    public static double nll(float[] logits, int row, int vocab, int target) {
        int off = row * vocab;
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return max + Math.log(sum) - logits[off + target];
    }

    /** Returns the index of the largest logit of row {@code row} (the first one among ties). */
    public static int argmax(float[] logits, int row, int vocab) {
        int off = row * vocab;
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[off + i] > logits[off + best]) {
                best = i;
            }
        }
        return best;
    }
}
