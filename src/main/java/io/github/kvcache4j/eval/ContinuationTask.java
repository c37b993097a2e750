package io.github.kvcache4j.eval;

import io.github.kvcache4j.KvCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * Continuation NLL under the kvpress protocol: a window of {@value #WINDOW} tokens (or the
 * evaluator's {@code --window}) is a context of three quarters of it ({@value #CONTEXT}) and a
 * continuation of the last quarter ({@value #CONTINUATION}). The context is prefilled with full
 * attention (the policy observes it), then every (layer, kv-head) is compressed to
 * {@code floor(CONTEXT * (1 - ratio))} tokens; the last context token's logits predict
 * continuation token 0, and continuation tokens {@code 0 .. CONTINUATION - 2} are fed at
 * positions {@code CONTEXT ..} over the compressed cache (no further compression) and predict the
 * rest. The score is the mean NLL of the continuation tokens.
 */
final class ContinuationTask {

    /** Tokens per window by default (the kvpress protocol). */
    static final int WINDOW = 2048;
    /** Context tokens of a default window (prefilled, then compressed). */
    static final int CONTEXT = 1536;
    /** Continuation tokens of a default window (scored). */
    static final int CONTINUATION = WINDOW - CONTEXT;

    /**
     * The outcome of one window.
     *
     * @param meanNll mean NLL (nats) of the continuation tokens
     * @param top1 fraction of continuation tokens that were the most likely token
     * @param bytesAfterCompress resident KV bytes right after compression
     * @param bytesAtEnd resident KV bytes after the continuation
     * @param peakBytes the most KV bytes resident at any point: the whole context before
     *     compression, or the compressed cache plus the continuation if that is more
     * @param tokens continuation tokens run through the model over the compressed cache
     * @param nanos wall time of the continuation
     */
    record Result(double meanNll, double top1, long bytesAfterCompress, long heldAfterCompress, long bytesAtEnd, long peakBytes, int tokens,
                  long nanos) {
    }

    private final EvalModel eval;
    private final SharedPrefill prefill;
    private final int window;
    private final int context;

    ContinuationTask(EvalModel eval) {
        this.eval = eval;
        this.prefill = new SharedPrefill(eval);
        this.window = eval.window();
        this.context = contextOf(window);
    }

    /** Returns the context tokens of a window of {@code window} tokens: three quarters of it. */
    static int contextOf(int window) {
        return window - window / 4;
    }

    /**
     * Returns window {@code w} of {@code size} tokens: {@code tokens[start + w * size .. + size)}.
     *
     * @throws IllegalArgumentException if the window does not fit in {@code tokens}
     */
    static int[] window(int[] tokens, int start, int w, int size) {
        long from = start + (long) w * size;
        if (start < 0 || from + size > tokens.length) {
            throw new IllegalArgumentException("window " + w + " needs tokens [" + from + ", " + (from + size)
                    + ") but the text has " + tokens.length + " tokens");
        }
        return Arrays.copyOfRange(tokens, (int) from, (int) from + size);
    }

    /**
     * Returns the tokens a {@code context}-token context keeps per (layer, kv-head) at
     * {@code ratio}: {@code floor(context * (1 - ratio))}, as kvpress. The evaluator compresses to
     * this budget rather than by ratio, so a policy that already dropped tokens on its own (CORM)
     * is held to the same memory bound as the others.
     */
    static int kept(int context, double ratio) {
        return (int) Math.floor(context * (1.0 - ratio));
    }

    /** Scores one window with {@code policy} at compression {@code ratio} (0 = no compression). */
    Result run(int[] window, CacheRecipe policy, double ratio) {
        return run(window, policy, ratio, cache -> { });
    }

    /**
     * Scores one window; {@code afterCompress} sees the cache right after compression (for
     * inspecting what was kept).
     */
    Result run(int[] window, CacheRecipe policy, double ratio, Consumer<KvCache> afterCompress) {
        return runAll(window, List.of(new SharedPrefill.Config(policy, ratio)), afterCompress).getFirst();
    }

    /**
     * Scores one window for every configuration, prefilling the context for all of them at once
     * ({@link SharedPrefill}); {@code afterCompress} sees each cache right after compression.
     * {@link Result#nanos} is the time of that configuration's continuation.
     */
    List<Result> runAll(int[] window, List<SharedPrefill.Config> configs, Consumer<KvCache> afterCompress) {
        if (window.length != this.window) {
            throw new IllegalArgumentException("window: " + window.length + " tokens, expected " + this.window);
        }
        int vocab = eval.vocab();
        int continuation = this.window - context;
        return prefill.map(configs, Arrays.copyOf(window, context), this.window, p -> {
            long t0 = System.nanoTime();
            KvCache cache = p.cache();
            long bytesAfter = cache.stats().residentBytes();
            long heldAfter = cache.stats().heldBytes() + cache.stats().stateBytes();
            afterCompress.accept(cache);
            int[] fed = Arrays.copyOfRange(window, context, this.window - 1);
            float[] logits = eval.score(cache, fed, context);
            float[] last = p.lastLogits();
            double sum = Scoring.nll(last, 0, vocab, window[context]);
            int hits = Scoring.argmax(last, 0, vocab) == window[context] ? 1 : 0;
            for (int i = 0; i < fed.length; i++) {
                int target = window[context + 1 + i];
                sum += Scoring.nll(logits, i, vocab, target);
                hits += Scoring.argmax(logits, i, vocab) == target ? 1 : 0;
            }
            long bytesEnd = cache.stats().residentBytes();
            return new Result(sum / continuation, (double) hits / continuation, bytesAfter, heldAfter, bytesEnd,
                    Math.max(p.bytesBeforeCompress(), bytesEnd), fed.length, System.nanoTime() - t0);
        });
    }
}
