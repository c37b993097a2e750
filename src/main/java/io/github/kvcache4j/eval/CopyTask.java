package io.github.kvcache4j.eval;

import io.github.kvcache4j.KvCache;
import java.util.Arrays;
import java.util.List;

/**
 * Copy retrieval: a span of natural text from early in the context is repeated right after the
 * context. The context (everything before the repeat) is compressed; the repeat is then fed
 * uncompressed with teacher forcing, and each repeat token after the first is scored by its NLL
 * and by whether it was the model's top-1 prediction. A model that can look back at the first
 * occurrence predicts the repeat far better than fresh text; a policy that evicted the span's keys
 * loses that advantage.
 */
final class CopyTask {

    /**
     * A copy prompt.
     *
     * @param context BOS followed by natural text
     * @param spanStart the context position of the span's first token
     * @param span the span's tokens, {@code context[spanStart .. spanStart + span.length)}
     */
    record Prompt(int[] context, int spanStart, int[] span) {
    }

    /**
     * The outcome of one prompt.
     *
     * @param meanNll mean NLL of repeat tokens {@code 1 .. span.length - 1}
     * @param top1 fraction of those tokens that were the top-1 prediction
     * @param spanResident fraction of the span's (layer, kv-head, position) entries still resident
     *     after compression
     * @param tokens tokens run through the model after the shared prefill
     */
    record Result(double meanNll, double top1, double spanResident, int tokens) {
    }

    private final EvalModel eval;
    private final SharedPrefill prefill;

    CopyTask(EvalModel eval) {
        this.eval = eval;
        this.prefill = new SharedPrefill(eval);
    }

    /**
     * Builds a prompt: BOS and {@code contextTokens - 1} text tokens; the span is
     * {@code spanLength} tokens from {@code spanStart}.
     *
     * @param text token ids of natural text, at least {@code contextTokens - 1} long
     * @param bos the BOS token id
     * @throws IllegalArgumentException if the span does not fit in the context
     */
    static Prompt build(int[] text, int bos, int contextTokens, int spanStart, int spanLength) {
        if (text.length < contextTokens - 1) {
            throw new IllegalArgumentException("text: " + text.length + " tokens, the context needs " + (contextTokens - 1));
        }
        if (spanLength < 2 || spanStart < 1 || spanStart + spanLength > contextTokens) {
            throw new IllegalArgumentException("span [" + spanStart + ", " + (spanStart + spanLength)
                    + ") must have at least 2 tokens and lie in [1, " + contextTokens + ")");
        }
        int[] context = new int[contextTokens];
        context[0] = bos;
        System.arraycopy(text, 0, context, 1, contextTokens - 1);
        return new Prompt(context, spanStart, Arrays.copyOfRange(context, spanStart, spanStart + spanLength));
    }

    /** Runs one prompt with {@code policy}, compressing the context at {@code ratio} (0 = none). */
    Result run(Prompt p, CacheRecipe policy, double ratio) {
        return runAll(p, List.of(new SharedPrefill.Config(policy, ratio))).getFirst();
    }

    /** Runs one prompt for every configuration, prefilling the context once for all of them. */
    List<Result> runAll(Prompt p, List<SharedPrefill.Config> configs) {
        int n = p.context().length;
        int[] span = p.span();
        int vocab = eval.vocab();
        return prefill.map(configs, p.context(), n + span.length, prefilled -> {
            KvCache cache = prefilled.cache();
            double resident = spanResident(cache, p.spanStart(), span.length);
            float[] logits = eval.score(cache, Arrays.copyOf(span, span.length - 1), n);
            double sum = 0;
            int hits = 0;
            for (int i = 0; i + 1 < span.length; i++) {
                sum += Scoring.nll(logits, i, vocab, span[i + 1]);
                hits += Scoring.argmax(logits, i, vocab) == span[i + 1] ? 1 : 0;
            }
            int scored = span.length - 1;
            return new Result(sum / scored, (double) hits / scored, resident, scored);
        });
    }

    private static double spanResident(KvCache cache, int start, int length) {
        long held = 0;
        int layers = cache.config().layers();
        int kvHeads = cache.config().kvHeads();
        for (int l = 0; l < layers; l++) {
            for (int h = 0; h < kvHeads; h++) {
                for (int position : cache.positions(l, h)) {
                    if (position >= start && position < start + length) {
                        held++;
                    }
                }
            }
        }
        return (double) held / ((long) layers * kvHeads * length);
    }
}
