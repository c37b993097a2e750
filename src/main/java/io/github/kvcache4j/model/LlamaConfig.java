package io.github.kvcache4j.model;

import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Arrays;
import java.util.List;

/**
 * Hyper-parameters of a Llama-family decoder, as stored in GGUF metadata under the architecture's
 * prefix ({@code llama.*} for Llama 1/2/3, Mistral, SmolLM, TinyLlama; {@code qwen2.*} for Qwen2).
 *
 * @param architecture {@code general.architecture}: {@code llama} or {@code qwen2}
 * @param dim the embedding width ({@code .embedding_length})
 * @param layers the number of blocks ({@code .block_count})
 * @param heads the number of query heads ({@code .attention.head_count})
 * @param kvHeads the number of key/value heads ({@code .attention.head_count_kv})
 * @param headDim the width of one head ({@code .attention.key_length}, default {@code dim / heads})
 * @param ffnDim the SwiGLU hidden width ({@code .feed_forward_length})
 * @param vocabSize the vocabulary size
 * @param contextLength the training context length ({@code .context_length})
 * @param ropeBase the RoPE frequency base ({@code .rope.freq_base}, default 10000)
 * @param ropeDim the number of rotated elements per head ({@code .rope.dimension_count},
 *     default the head dimension)
 * @param ropeNeox whether RoPE rotates the pairs (i, i + ropeDim/2) of a head (GPT-NeoX order,
 *     Qwen2) rather than (2i, 2i+1) (Llama, whose GGUF q/k rows are permuted for it)
 * @param ropeFactors the divisor of each pair's frequency ({@link RopeScaling}), {@code ropeDim / 2}
 *     values; {@code null} means no scaling
 * @param rmsEps the RMSNorm epsilon ({@code .attention.layer_norm_rms_epsilon})
 * @param kvSourceLayers for each block the block whose keys/values it attends to
 *     ({@code .attention.kv_source_layers}, default the identity)
 */
public record LlamaConfig(String architecture, int dim, int layers, int heads, int kvHeads, int headDim, int ffnDim,
                          int vocabSize, int contextLength, double ropeBase, int ropeDim, boolean ropeNeox,
                          float[] ropeFactors, float rmsEps, int[] kvSourceLayers) {

    /** The values of {@code general.architecture} the decoder runs. */
    public static final List<String> ARCHITECTURES = List.of("llama", "qwen2");

    /**
     * Validates the dimensions and copies the arrays.
     *
     * @throws IllegalArgumentException if the architecture is not supported, a dimension is not
     *     positive, the KV heads do not divide the query heads, the RoPE settings do not fit the
     *     head, or a KV source is not an earlier source layer
     */
    public LlamaConfig {
        checkArchitecture("architecture", architecture);
        positive("dim", dim);
        positive("layers", layers);
        positive("heads", heads);
        positive("kvHeads", kvHeads);
        positive("headDim", headDim);
        positive("ffnDim", ffnDim);
        positive("vocabSize", vocabSize);
        positive("contextLength", contextLength);
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("kvHeads: " + kvHeads + " does not divide heads " + heads);
        }
        if (ropeDim <= 0 || ropeDim > headDim || ropeDim % 2 != 0) {
            throw new IllegalArgumentException("ropeDim: " + ropeDim + " must be even and in [2, " + headDim + "]");
        }
        if (!(ropeBase > 0)) {
            throw new IllegalArgumentException("ropeBase: " + ropeBase + " must be positive");
        }
        if (ropeFactors == null) {
            ropeFactors = new float[ropeDim / 2];
            Arrays.fill(ropeFactors, 1f);
        } else {
            ropeFactors = ropeFactors.clone();
        }
        if (ropeFactors.length != ropeDim / 2) {
            throw new IllegalArgumentException("ropeFactors: length " + ropeFactors.length + " must be ropeDim / 2 = "
                    + ropeDim / 2);
        }
        for (int i = 0; i < ropeFactors.length; i++) {
            if (!(ropeFactors[i] > 0) || Float.isInfinite(ropeFactors[i])) {
                throw new IllegalArgumentException("ropeFactors[" + i + "]: " + ropeFactors[i]
                        + " must be positive and finite");
            }
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

    private static void checkArchitecture(String name, String arch) {
        if (!ARCHITECTURES.contains(arch)) {
            throw new IllegalArgumentException(name + ": '" + arch + "' is not supported (supported: "
                    + String.join(", ", ARCHITECTURES) + ")");
        }
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException(name + ": " + v + " must be positive");
        }
    }

    /**
     * Returns the RoPE of this model as a policy that turns queries back needs it: pair {@code i}
     * turns by {@code pos * ropeBase^(-2i/ropeDim) / ropeFactors[i]}, in this model's pair order.
     */
    public Rope rope() {
        double[] f = new double[ropeDim / 2];
        for (int i = 0; i < f.length; i++) {
            f[i] = Math.pow(ropeBase, -2.0 * i / ropeDim) / ropeFactors[i];
        }
        return Rope.ofFrequencies(f, ropeNeox);
    }

    /**
     * Returns the model's cross-layer sharing plan: which block's keys and values each block
     * attends to ({@code .attention.kv_source_layers}; the identity without the key).
     */
    public SharingPlan sharingPlan() {
        return SharingPlan.of(kvSourceLayers);
    }

    /**
     * Reads the configuration of a GGUF file.
     *
     * @param gguf the file
     * @return the configuration
     * @throws IllegalArgumentException if the architecture is not supported or a key is missing or invalid
     */
    public static LlamaConfig fromGguf(GgufFile gguf) {
        String arch = gguf.contains("general.architecture") ? gguf.getString("general.architecture") : "llama";
        checkArchitecture("general.architecture", arch);
        String p = arch + ".";
        int dim = gguf.getInt(p + "embedding_length");
        int heads = gguf.getInt(p + "attention.head_count");
        if (heads <= 0) {
            throw new IllegalArgumentException(p + "attention.head_count: " + heads + " must be positive");
        }
        int headDim = gguf.getInt(p + "attention.key_length", dim / heads);
        int valueDim = gguf.getInt(p + "attention.value_length", headDim);
        if (valueDim != headDim) {
            throw new IllegalArgumentException(p + "attention.value_length: " + valueDim
                    + " must equal the key length " + headDim);
        }
        int vocab;
        if (gguf.contains(p + "vocab_size")) {
            vocab = gguf.getInt(p + "vocab_size");
        } else if (gguf.contains("tokenizer.ggml.tokens")) {
            vocab = gguf.getStringArray("tokenizer.ggml.tokens").length;
        } else {
            vocab = (int) gguf.findTensor("token_embd.weight")
                    .orElseThrow(() -> new IllegalArgumentException("token_embd.weight: missing")).dim(1);
        }
        int layers = gguf.getInt(p + "block_count");
        // Every block has several tensors: a corrupt count must fail here, not allocate per block.
        if (layers > gguf.tensors().size()) {
            throw new IllegalArgumentException(p + "block_count: " + layers + " blocks exceed the "
                    + gguf.tensors().size() + " tensors of the file");
        }
        double ropeBase = gguf.getDouble(p + "rope.freq_base", 10000.0);
        int ropeDim = gguf.getInt(p + "rope.dimension_count", headDim);
        if (ropeDim <= 0 || ropeDim > headDim || ropeDim % 2 != 0) {
            throw new IllegalArgumentException(p + "rope.dimension_count: " + ropeDim + " must be even and in [2, "
                    + headDim + "]");
        }
        return new LlamaConfig(arch, dim, layers, heads,
                gguf.getInt(p + "attention.head_count_kv", heads),
                headDim,
                gguf.getInt(p + "feed_forward_length"),
                vocab,
                gguf.getInt(p + "context_length"),
                ropeBase,
                ropeDim,
                arch.equals("qwen2"),
                RopeScaling.fromGguf(gguf, arch, ropeBase, ropeDim),
                (float) gguf.getDouble(p + "attention.layer_norm_rms_epsilon", 1e-5),
                gguf.contains(p + "attention.kv_source_layers")
                        ? gguf.getIntArray(p + "attention.kv_source_layers") : null);
    }

    /** Returns the width of the queries (and attention output) of one token: {@code heads * headDim}. */
    public int qDim() {
        return heads * headDim;
    }

    /** Returns the width of the keys (and values) of one token: {@code kvHeads * headDim}. */
    public int kvDim() {
        return kvHeads * headDim();
    }

    /** Returns a copy of the divisor of each RoPE pair's frequency. */
    @Override
    public float[] ropeFactors() {
        return ropeFactors.clone();
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
        return o instanceof LlamaConfig c && architecture.equals(c.architecture) && dim == c.dim && layers == c.layers
                && heads == c.heads && kvHeads == c.kvHeads && headDim == c.headDim && ffnDim == c.ffnDim
                && vocabSize == c.vocabSize && contextLength == c.contextLength
                && Double.compare(ropeBase, c.ropeBase) == 0 && ropeDim == c.ropeDim && ropeNeox == c.ropeNeox
                && Arrays.equals(ropeFactors, c.ropeFactors) && Float.compare(rmsEps, c.rmsEps) == 0
                && Arrays.equals(kvSourceLayers, c.kvSourceLayers);
    }

    @Override
    public int hashCode() {
        return (((architecture.hashCode() * 31 + dim) * 31 + layers) * 31 + heads) * 31 + headDim
                + Arrays.hashCode(kvSourceLayers);
    }

    @Override
    public String toString() {
        return "LlamaConfig[architecture=" + architecture + ", dim=" + dim + ", layers=" + layers + ", heads=" + heads
                + ", kvHeads=" + kvHeads + ", headDim=" + headDim + ", ffnDim=" + ffnDim + ", vocabSize=" + vocabSize
                + ", contextLength=" + contextLength + ", ropeBase=" + ropeBase + ", ropeDim=" + ropeDim
                + (ropeNeox ? ", ropeNeox" : "") + (scaled() ? ", ropeScaled" : "")
                + ", rmsEps=" + rmsEps + ", kvSourceLayers=" + Arrays.toString(kvSourceLayers) + "]";
    }

    private boolean scaled() {
        for (float f : ropeFactors) {
            if (f != 1f) {
                return true;
            }
        }
        return false;
    }
}
