package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import java.util.function.LongConsumer;

/**
 * The model under evaluation and how its caches are made: one fresh cache per sequence, with the
 * given storage type, and a sink that hears how many tokens went through the model.
 *
 * @param model the decoder
 * @param tokenizer its tokenizer
 * @param dtype the cache's storage type
 * @param rotateKeys whether a Q8 or Q4 cache rotates keys before quantizing ({@link KvFormat})
 * @param tokensDone called with the number of tokens after every forward call (progress)
 * @param learnedLess the trained LESS feature map for the {@code +less_learned} recipes, or null
 * @param window tokens per continuation window, at most the model's context length
 * @param headRanking the needle-attention score of every (layer, kv-head) ({@link NeedleHeads}),
 *     or null before the calibration ran
 */
record EvalModel(LlamaModel model, Tokenizer tokenizer, DType dtype, boolean rotateKeys, LongConsumer tokensDone,
                 FeatureMap learnedLess, int window, double[] headRanking) {

    /** Largest number of tokens fed to the model in one call, so progress moves smoothly. */
    static final int FEED_CHUNK = 256;

    /** Creates the evaluation of {@code model} without a trained LESS map, on the default window. */
    EvalModel(LlamaModel model, Tokenizer tokenizer, DType dtype, LongConsumer tokensDone) {
        this(model, tokenizer, dtype, false, tokensDone, null, ContinuationTask.WINDOW, null);
    }

    /** Creates the evaluation of {@code model} with a trained LESS map, on the default window. */
    EvalModel(LlamaModel model, Tokenizer tokenizer, DType dtype, LongConsumer tokensDone, FeatureMap learnedLess) {
        this(model, tokenizer, dtype, false, tokensDone, learnedLess, ContinuationTask.WINDOW, null);
    }

    /** Creates the evaluation of {@code model} without a trained LESS map, on {@code window} tokens. */
    EvalModel(LlamaModel model, Tokenizer tokenizer, DType dtype, LongConsumer tokensDone, int window) {
        this(model, tokenizer, dtype, false, tokensDone, null, window, null);
    }

    /** Creates the evaluation of {@code model} in storage format {@code format}. */
    EvalModel(LlamaModel model, Tokenizer tokenizer, KvFormat format, LongConsumer tokensDone, FeatureMap learnedLess,
              int window) {
        this(model, tokenizer, format.dtype(), format.rotated(), tokensDone, learnedLess, window, null);
    }

    /** Creates the evaluation of {@code model} with a trained LESS map (or null), on {@code window} tokens. */
    EvalModel(LlamaModel model, Tokenizer tokenizer, DType dtype, LongConsumer tokensDone, FeatureMap learnedLess,
              int window) {
        this(model, tokenizer, dtype, false, tokensDone, learnedLess, window, null);
    }

    /** Returns this evaluation with the heads ranked by {@link NeedleHeads#rank} on {@code tokens}. */
    EvalModel withHeadRanking(int[] tokens) {
        return new EvalModel(model, tokenizer, dtype, rotateKeys, tokensDone, learnedLess, window,
                NeedleHeads.rank(this, tokens));
    }

    /**
     * Returns the head ranking.
     *
     * @throws IllegalStateException if the calibration did not run
     */
    @Override
    public double[] headRanking() {
        if (headRanking == null) {
            throw new IllegalStateException("the heads were not ranked: a head-split recipe needs withHeadRanking first");
        }
        return headRanking;
    }

    /** Creates a cache of {@code capacity} tokens per (layer, kv-head) built by {@code recipe}. */
    KvCache newCache(CacheRecipe recipe, int capacity) {
        KvCacheConfig.Builder b = new KvFormat(dtype, rotateKeys).applyTo(model.cacheConfig().capacity(capacity));
        return KvCache.create(recipe.applyTo(b, model.config().headDim(), model.config().rope(), learnedLess).build());
    }

    /**
     * Feeds {@code tokens[from .. to)} at positions {@code startPos ..} in chunks and returns the
     * logits of the last token.
     */
    float[] prefill(KvCache cache, int[] tokens, int from, int to, int startPos) {
        float[] logits = null;
        for (int c = from; c < to; c += FEED_CHUNK) {
            int n = Math.min(FEED_CHUNK, to - c);
            logits = model.forward(cache, java.util.Arrays.copyOfRange(tokens, c, c + n), startPos + c - from, false);
            tokensDone.accept(n);
        }
        return logits;
    }

    /** Feeds {@code tokens} at positions {@code startPos ..} and returns the logits of every token. */
    float[] score(KvCache cache, int[] tokens, int startPos) {
        int vocab = model.config().vocabSize();
        float[] logits = new float[tokens.length * vocab];
        for (int c = 0; c < tokens.length; c += FEED_CHUNK) {
            int n = Math.min(FEED_CHUNK, tokens.length - c);
            float[] part = model.forward(cache, java.util.Arrays.copyOfRange(tokens, c, c + n), startPos + c, true);
            System.arraycopy(part, 0, logits, c * vocab, part.length);
            tokensDone.accept(n);
        }
        return logits;
    }

    /** Runs one decode step and returns its logits. */
    float[] step(KvCache cache, int token, int position) {
        float[] logits = model.forward(cache, token, position);
        tokensDone.accept(1);
        return logits;
    }

    /** Returns the vocabulary size. */
    int vocab() {
        return model.config().vocabSize();
    }
}
