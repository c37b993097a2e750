package io.github.kvcache4j.bench;

import java.util.SplittableRandom;

/**
 * The keys, values and query {@link DecodeAttentionBenchmark} feeds kvcache4j, regenerated as flat
 * arrays so the peer benchmarks attend over exactly the same numbers: the same seed, the same
 * 256-token chunks, keys before values, and the query last.
 *
 * <p>Layout of {@link #keys} and {@link #values}: {@code [position * kvDim + kvHead * headDim + i]}
 * with {@code kvDim = 8 × 128}, the layout llama3.java and Jlama use for one layer.
 */
final class AttentionData {

    /** Query heads of the Llama-3-8B shape. */
    static final int QUERY_HEADS = DecodeAttentionBenchmark.QUERY_HEADS;
    /** Key/value heads of the Llama-3-8B shape. */
    static final int KV_HEADS = DecodeAttentionBenchmark.KV_HEADS;
    /** Head dimension of the Llama-3-8B shape. */
    static final int HEAD_DIM = DecodeAttentionBenchmark.HEAD_DIM;
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
            DecodeAttentionBenchmark.fill(random, keyChunk);
            DecodeAttentionBenchmark.fill(random, valueChunk);
            int rows = Math.min(chunk, tokens - p);
            System.arraycopy(keyChunk, 0, keys, p * KV_DIM, rows * KV_DIM);
            System.arraycopy(valueChunk, 0, values, p * KV_DIM, rows * KV_DIM);
        }
        float[] query = new float[QUERY_HEADS * HEAD_DIM];
        DecodeAttentionBenchmark.fill(random, query);
        return new AttentionData(tokens, keys, values, query);
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
