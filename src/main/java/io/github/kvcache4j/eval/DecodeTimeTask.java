package io.github.kvcache4j.eval;

import io.github.kvcache4j.KvCache;
import java.util.Arrays;

/**
 * The decode-time memory bound, as the L2-norm and CORM papers measure it and as a server runs: the
 * cache has a capacity of {@code budget} tokens per (layer, kv-head) from the first token on, so it
 * never holds more. The context is fed in chunks of {@value #CHUNK} tokens and the policy evicts as
 * the chunks arrive (victims among the resident tokens, chosen from what the policy has seen so
 * far); the continuation, or the passkey question and answer, run with eviction still on. Every
 * configuration is its own model pass, since the caches differ from the first eviction on.
 */
final class DecodeTimeTask {

    /** Tokens per forward call: small, so eviction follows the sequence closely. */
    static final int CHUNK = 32;

    /**
     * The outcome of one window or prompt.
     *
     * @param meanNll mean NLL of the continuation tokens (NaN for a passkey prompt)
     * @param correct whether the passkey was decoded exactly (false for a window)
     * @param peakBytes the most KV bytes resident at any point
     */
    record Result(double meanNll, boolean correct, long peakBytes) {
    }

    private final EvalModel eval;

    DecodeTimeTask(EvalModel eval) {
        this.eval = eval;
    }

    /**
     * Scores a continuation window (the evaluator's window size) under the budget; the score covers
     * the same last quarter of the window as the kvpress protocol.
     */
    Result window(int[] window, CacheRecipe recipe, int budget) {
        int vocab = eval.vocab();
        long[] peak = {0};
        try (KvCache cache = eval.newCache(recipe, budget)) {
            float[] logits = feed(cache, Arrays.copyOf(window, window.length - 1), 0, true, peak);
            double sum = 0;
            int context = ContinuationTask.contextOf(window.length);
            for (int i = context - 1; i < window.length - 1; i++) {
                sum += Scoring.nll(logits, i, vocab, window[i + 1]);
            }
            return new Result(sum / (window.length - context), false, peak[0]);
        }
    }

    /** Runs a passkey prompt under the budget: context, question, then greedy digits. */
    Result passkey(PasskeyTask.Prompt p, CacheRecipe recipe, int budget) {
        long[] peak = {0};
        try (KvCache cache = eval.newCache(recipe, budget)) {
            int n = p.context().length;
            feed(cache, p.context(), 0, false, peak);
            float[] logits = feed(cache, p.question(), n, false, peak);
            int[] out = PasskeyTask.decode(eval, cache, logits, n + p.question().length, p.answer().length,
                    () -> peak[0] = Math.max(peak[0], cache.stats().residentBytes()));
            return new Result(Double.NaN, Arrays.equals(out, p.answer()), peak[0]);
        }
    }

    /**
     * Feeds {@code tokens} at positions {@code startPos ..} in chunks, tracking the peak resident
     * bytes; returns the logits of every token ({@code allLogits}) or of the last.
     */
    private float[] feed(KvCache cache, int[] tokens, int startPos, boolean allLogits, long[] peak) {
        int vocab = eval.vocab();
        float[] logits = allLogits ? new float[tokens.length * vocab] : null;
        for (int c = 0; c < tokens.length; c += CHUNK) {
            int n = Math.min(CHUNK, tokens.length - c);
            float[] part = eval.model().forward(cache, Arrays.copyOfRange(tokens, c, c + n), startPos + c, allLogits);
            eval.tokensDone().accept(n);
            peak[0] = Math.max(peak[0], cache.stats().residentBytes());
            if (allLogits) {
                System.arraycopy(part, 0, logits, c * vocab, part.length);
            } else {
                logits = part;
            }
        }
        return logits;
    }
}
