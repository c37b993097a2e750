package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The keys, values and query of the attention benchmarks, as flat arrays, so that kvcache4j and the
 * peer benchmarks attend over exactly the same numbers: Gaussian (σ = 0.5) from seed 42, generated
 * in 256-token chunks, keys before values, and the query last.
 *
 * <p>Layout of {@link #keys} and {@link #values}: {@code [position * kvDim + kvHead * headDim + i]}
 * with {@code kvDim = 8 × 128}, the layout llama3.java and Jlama use for one layer.
 */
final class AttentionData {

    /** Query heads of the Llama-3-8B shape. */
    static final int QUERY_HEADS = 32;
    /** Key/value heads of the Llama-3-8B shape. */
    static final int KV_HEADS = 8;
    /** Head dimension of the Llama-3-8B shape. */
    static final int HEAD_DIM = 128;
    /** Elements of one token's keys (or values) over all kv-heads. */
    static final int KV_DIM = KV_HEADS * HEAD_DIM;

    final int tokens;
    final float[] keys;
    final float[] values;
    final float[] query;

    private AttentionData(int tokens, float[] keys, float[] values, float[] query) {
        this.tokens = tokens;
        this.keys = keys;
        this.values = values;
        this.query = query;
    }

    /** Generates the data for {@code tokens} resident tokens (a multiple of nothing in particular). */
    static AttentionData generate(int tokens) {
        SplittableRandom random = new SplittableRandom(42);
        int chunk = 256;
        float[] keyChunk = new float[chunk * KV_DIM];
        float[] valueChunk = new float[chunk * KV_DIM];
        float[] keys = new float[tokens * KV_DIM];
        float[] values = new float[tokens * KV_DIM];
        for (int p = 0; p < tokens; p += chunk) {
            fill(random, keyChunk);
            fill(random, valueChunk);
            int rows = Math.min(chunk, tokens - p);
            System.arraycopy(keyChunk, 0, keys, p * KV_DIM, rows * KV_DIM);
            System.arraycopy(valueChunk, 0, values, p * KV_DIM, rows * KV_DIM);
        }
        float[] query = new float[QUERY_HEADS * HEAD_DIM];
        fill(random, query);
        return new AttentionData(tokens, keys, values, query);
    }

    /** Returns a one-layer cache of this shape in {@code dtype} holding every token of this data. */
    KvCache newLayerCache(DType dtype) {
        KvCache cache = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                .headDim(HEAD_DIM).capacity(tokens).dtype(dtype).build());
        appendTo(cache);
        return cache;
    }

    /** Appends every token to layer 0 of {@code cache} from position 0, in 256-token chunks. */
    void appendTo(KvCache cache) {
        int chunk = 256;
        for (int p = 0; p < tokens; p += chunk) {
            int rows = Math.min(chunk, tokens - p);
            cache.append(0, p, rows, Arrays.copyOfRange(keys, p * KV_DIM, (p + rows) * KV_DIM),
                    Arrays.copyOfRange(values, p * KV_DIM, (p + rows) * KV_DIM));
        }
    }

    /** Fills {@code a} with Gaussian values of standard deviation 0.5. */
    static void fill(SplittableRandom random, float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (random.nextGaussian() * 0.5);
        }
    }

    /** Returns the F16 bits of every element of {@code a}. */
    static short[] toF16(float[] a) {
        short[] out = new short[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = Float.floatToFloat16(a[i]);
        }
        return out;
    }
}
