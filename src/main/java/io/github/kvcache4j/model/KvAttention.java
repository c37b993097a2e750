package io.github.kvcache4j.model;

/**
 * The attention a decoder needs from a KV cache, for a chunk of consecutive tokens. Implemented
 * over {@code io.github.kvcache4j.KvCache}; tests also implement it with a plain reference.
 */
interface KvAttention {

    /**
     * Tells whether the cache stores keys and values for a layer; other layers only attend (to
     * the KV of their source layer), so the decoder need not compute their keys and values.
     *
     * @param layer the layer
     * @return whether {@link #append} is expected for the layer
     */
    boolean storesKv(int layer);

    /**
     * Stores the keys and values of {@code tokens} consecutive tokens of one layer.
     *
     * @param layer the layer
     * @param firstPosition the position of the first token
     * @param tokens the number of tokens
     * @param keys RoPE-rotated keys, {@code [token][kvHead][headDim]}
     * @param values values, {@code [token][kvHead][headDim]}
     */
    void append(int layer, int firstPosition, int tokens, float[] keys, float[] values);

    /**
     * Computes causal attention for {@code tokens} consecutive queries of one layer.
     *
     * @param layer the layer
     * @param firstPosition the position of the first query
     * @param tokens the number of queries
     * @param queries RoPE-rotated queries, {@code [token][qHead][headDim]}
     * @param out the attention output, {@code [token][qHead][headDim]}
     */
    void attend(int layer, int firstPosition, int tokens, float[] queries, float[] out);
}
