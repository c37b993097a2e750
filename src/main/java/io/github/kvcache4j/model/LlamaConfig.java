package io.github.kvcache4j.model;

import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Arrays;

/**
 * Hyper-parameters of a Llama-architecture decoder, as stored in GGUF metadata.
 *
 * @param dim the embedding width ({@code llama.embedding_length})
 * @param layers the number of blocks ({@code llama.block_count})
 * @param heads the number of query heads ({@code llama.attention.head_count})
 * @param kvHeads the number of key/value heads ({@code llama.attention.head_count_kv})
 * @param ffnDim the SwiGLU hidden width ({@code llama.feed_forward_length})
 * @param vocabSize the vocabulary size
 * @param contextLength the training context length ({@code llama.context_length})
 * @param ropeBase the RoPE frequency base ({@code llama.rope.freq_base}, default 10000)
 * @param ropeDim the number of rotated elements per head ({@code llama.rope.dimension_count},
 *     default the head dimension)
 * @param rmsEps the RMSNorm epsilon ({@code llama.attention.layer_norm_rms_epsilon})
 * @param kvSourceLayers for each block the block whose keys/values it attends to
 *     ({@code llama.attention.kv_source_layers}, default the identity)
 */
public record LlamaConfig(int dim, int layers, int heads, int kvHeads, int ffnDim, int vocabSize,
                          int contextLength, double ropeBase, int ropeDim, float rmsEps,
                          int[] kvSourceLayers) {

    /**
     * Validates the dimensions and copies {@code kvSourceLayers}.
     *
     * @throws IllegalArgumentException if a dimension is not positive, the heads do not divide the
     *     embedding or each other, or a KV source is not an earlier source layer
     */
    public LlamaConfig {
        positive("dim", dim);
        positive("layers", layers);
        positive("heads", heads);
        positive("kvHeads", kvHeads);
        positive("ffnDim", ffnDim);
        positive("vocabSize", vocabSize);
        positive("contextLength", contextLength);
        if (dim % heads != 0) {
            throw new IllegalArgumentException("heads: " + heads + " does not divide dim " + dim);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("kvHeads: " + kvHeads + " does not divide heads " + heads);
        }
        if (ropeDim <= 0 || ropeDim > dim / heads || ropeDim % 2 != 0) {
            throw new IllegalArgumentException("ropeDim: " + ropeDim + " must be even and in [2, "
                    + dim / heads + "]");
        }
        if (!(ropeBase > 0)) {
            throw new IllegalArgumentException("ropeBase: " + ropeBase + " must be positive");
        }
        if (!(rmsEps >= 0)) {
            throw new IllegalArgumentException("rmsEps: " + rmsEps + " must be non-negative");
        }
        if (kvSourceLayers == null) {
            kvSourceLayers = new int[layers];
            Arrays.setAll(kvSourceLayers, i -> i);
        } else {
            kvSourceLayers = kvSourceLayers.clone();
        }
        if (kvSourceLayers.length != layers) {
            throw new IllegalArgumentException("kvSourceLayers: length " + kvSourceLayers.length
                    + " must equal layers " + layers);
        }
        for (int i = 0; i < layers; i++) {
            int s = kvSourceLayers[i];
            if (s < 0 || s > i || kvSourceLayers[s] != s) {
                throw new IllegalArgumentException("kvSourceLayers[" + i + "]: " + s
                        + " must be a layer in [0, " + i + "] that is its own source");
            }
        }
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException(name + ": " + v + " must be positive");
        }
    }

    /**
     * Returns the model's cross-layer sharing plan: which block's keys and values each block
     * attends to ({@code llama.attention.kv_source_layers}; the identity without the key).
     */
    public SharingPlan sharingPlan() {
        return SharingPlan.of(kvSourceLayers);
    }

    /**
     * Reads the configuration of a {@code llama} GGUF file.
     *
     * @param gguf the file
     * @return the configuration
     * @throws IllegalArgumentException if the architecture is not llama or a key is missing or invalid
     */
    public static LlamaConfig fromGguf(GgufFile gguf) {
        String arch = gguf.contains("general.architecture") ? gguf.getString("general.architecture") : "llama";
        if (!arch.equals("llama")) {
            throw new IllegalArgumentException("general.architecture: '" + arch + "' is not supported (only llama)");
        }
        int dim = gguf.getInt("llama.embedding_length");
        int heads = gguf.getInt("llama.attention.head_count");
        int vocab;
        if (gguf.contains("llama.vocab_size")) {
            vocab = gguf.getInt("llama.vocab_size");
        } else if (gguf.contains("tokenizer.ggml.tokens")) {
            vocab = gguf.getStringArray("tokenizer.ggml.tokens").length;
        } else {
            vocab = (int) gguf.findTensor("token_embd.weight")
                    .orElseThrow(() -> new IllegalArgumentException("token_embd.weight: missing")).dim(1);
        }
        int layers = gguf.getInt("llama.block_count");
        // Every block has several tensors: a corrupt count must fail here, not allocate per block.
        if (layers > gguf.tensors().size()) {
            throw new IllegalArgumentException("llama.block_count: " + layers + " blocks exceed the "
                    + gguf.tensors().size() + " tensors of the file");
        }
        return new LlamaConfig(dim, layers, heads,
                gguf.getInt("llama.attention.head_count_kv", heads),
                gguf.getInt("llama.feed_forward_length"),
                vocab,
                gguf.getInt("llama.context_length"),
                gguf.getDouble("llama.rope.freq_base", 10000.0),
                gguf.getInt("llama.rope.dimension_count", dim / heads),
                (float) gguf.getDouble("llama.attention.layer_norm_rms_epsilon", 1e-5),
                gguf.contains("llama.attention.kv_source_layers")
                        ? gguf.getIntArray("llama.attention.kv_source_layers") : null);
    }

    /** Returns the dimension of one head. */
    public int headDim() {
        return dim / heads;
    }

    /** Returns the width of the keys (and values) of one token: {@code kvHeads * headDim}. */
    public int kvDim() {
        return kvHeads * headDim();
    }

    /** Returns a copy of the KV source of each block. */
    @Override
    public int[] kvSourceLayers() {
        return kvSourceLayers.clone();
    }

    /**
     * Tells whether a block computes and stores its own keys and values.
     *
     * @param layer the block index
     * @return whether {@code kvSourceLayers[layer] == layer}
     */
    public boolean isKvSource(int layer) {
        return kvSourceLayers[layer] == layer;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LlamaConfig c && dim == c.dim && layers == c.layers && heads == c.heads
                && kvHeads == c.kvHeads && ffnDim == c.ffnDim && vocabSize == c.vocabSize
                && contextLength == c.contextLength && Double.compare(ropeBase, c.ropeBase) == 0
                && ropeDim == c.ropeDim && Float.compare(rmsEps, c.rmsEps) == 0
                && Arrays.equals(kvSourceLayers, c.kvSourceLayers);
    }

    @Override
    public int hashCode() {
        return ((dim * 31 + layers) * 31 + heads) * 31 + Arrays.hashCode(kvSourceLayers);
    }

    @Override
    public String toString() {
        return "LlamaConfig[dim=" + dim + ", layers=" + layers + ", heads=" + heads + ", kvHeads=" + kvHeads
                + ", ffnDim=" + ffnDim + ", vocabSize=" + vocabSize + ", contextLength=" + contextLength
                + ", ropeBase=" + ropeBase + ", ropeDim=" + ropeDim + ", rmsEps=" + rmsEps
                + ", kvSourceLayers=" + Arrays.toString(kvSourceLayers) + "]";
    }
}
