package io.github.kvcache4j.model;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;

/**
 * A Llama-architecture decoder whose weights are views of a mapped {@link GgufFile} (nothing is
 * copied to the heap except the small norm vectors), and whose attention goes through a KV cache
 * the caller owns (one per sequence).
 *
 * <p>Per block: RMSNorm, Q/K/V projections (plus their biases where the file has them, as Qwen2
 * does), RoPE (elements 2i and 2i+1 of a head, or i and i + ropeDim/2 in GPT-NeoX order, rotated
 * by {@code pos * base^(-2i/ropeDim) / ropeFactors[i]}), attention over the cache (grouped-query:
 * query head h reads KV head {@code h / (heads / kvHeads)}; blocks that share another block's KV
 * only attend), output projection, RMSNorm, SwiGLU feed-forward; then a final RMSNorm and the
 * logits. {@code output.weight} falls back to {@code token_embd.weight} (tied embeddings).
 *
 * <p>Matrix products run on the Vector API for F32, F16, BF16 and block-quantized weights
 * (the types listed at {@link GgmlType}), decoded block by block in registers. A chunk of
 * tokens is processed as matrix-matrix products that load each weight row once per several
 * tokens. Rows can be split over a {@link ForkJoinPool} of {@code threads} workers.
 *
 * <p>Not thread-safe: one instance computes one forward pass at a time. The file must stay open
 * while the model is used.
 */
public final class LlamaModel implements AutoCloseable {

    /** Largest number of tokens processed together; longer inputs are split into chunks. */
    static final int MAX_CHUNK = 256;
    /** Below this many multiply-adds a matrix product is not worth splitting over threads. */
    private static final long PARALLEL_THRESHOLD = 1 << 15;

    private final LlamaConfig config;
    private final Matrix tokenEmbedding;
    private final Matrix output;
    private final float[] outputNorm;
    private final Layer[] layers;
    private final int threads;
    private final ForkJoinPool pool;

    /** One block's weights; the biases are {@code null} when the file has none. */
    private record Layer(float[] attnNorm, Matrix wq, float[] bq, Matrix wk, float[] bk, Matrix wv, float[] bv,
                         Matrix wo, float[] ffnNorm, Matrix gate, Matrix up, Matrix down) {
    }

    private LlamaModel(GgufFile gguf, int threads) throws GgufFormatException {
        this.config = LlamaConfig.fromGguf(gguf);
        int dim = config.dim();
        int qDim = config.qDim();
        int kvDim = config.kvDim();
        int ffn = config.ffnDim();
        int vocab = config.vocabSize();
        tokenEmbedding = matrix(gguf, "token_embd.weight", vocab, dim);
        output = gguf.findTensor("output.weight").isPresent()
                ? matrix(gguf, "output.weight", vocab, dim) : tokenEmbedding;
        outputNorm = vector(gguf, "output_norm.weight", dim);
        layers = new Layer[config.layers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "blk." + l + ".";
            boolean source = config.isKvSource(l);
            layers[l] = new Layer(
                    vector(gguf, p + "attn_norm.weight", dim),
                    matrix(gguf, p + "attn_q.weight", qDim, dim),
                    optionalVector(gguf, p + "attn_q.bias", qDim),
                    source ? matrix(gguf, p + "attn_k.weight", kvDim, dim) : null,
                    source ? optionalVector(gguf, p + "attn_k.bias", kvDim) : null,
                    source ? matrix(gguf, p + "attn_v.weight", kvDim, dim) : null,
                    source ? optionalVector(gguf, p + "attn_v.bias", kvDim) : null,
                    matrix(gguf, p + "attn_output.weight", dim, qDim),
                    vector(gguf, p + "ffn_norm.weight", dim),
                    matrix(gguf, p + "ffn_gate.weight", ffn, dim),
                    matrix(gguf, p + "ffn_up.weight", ffn, dim),
                    matrix(gguf, p + "ffn_down.weight", dim, ffn));
        }
        this.threads = threads;
        this.pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    /**
     * Loads a model with single-threaded matrix products.
     *
     * @param gguf an open llama GGUF file; it must stay open while the model is used
     * @return the model
     * @throws GgufFormatException if a tensor is missing, has the wrong shape or a type the
     *     decoder does not read
     * @throws IllegalArgumentException if a setting ({@code llama.*} metadata) is missing or invalid
     */
    public static LlamaModel load(GgufFile gguf) throws GgufFormatException {
        return load(gguf, 1);
    }

    /**
     * Loads a model.
     *
     * @param gguf an open llama GGUF file; it must stay open while the model is used
     * @param threads the number of threads matrix products are split over (1 = caller thread only)
     * @return the model; close it to stop its worker threads
     * @throws GgufFormatException if a tensor is missing, has the wrong shape or a type the decoder does not read
     * @throws IllegalArgumentException if {@code threads < 1} or a setting is missing or invalid
     */
    public static LlamaModel load(GgufFile gguf, int threads) throws GgufFormatException {
        if (threads < 1) {
            throw new IllegalArgumentException("threads: " + threads + " must be at least 1");
        }
        return new LlamaModel(gguf, threads);
    }

    private static GgufTensorInfo tensor(GgufFile gguf, String name, long... dims) throws GgufFormatException {
        GgufTensorInfo t = gguf.findTensor(name)
                .orElseThrow(() -> new GgufFormatException("tensor '" + name + "': missing"));
        if (!Arrays.equals(t.dims(), dims)) {
            throw new GgufFormatException("tensor '" + name + "': dims " + Arrays.toString(t.dims())
                    + " but the configuration requires " + Arrays.toString(dims));
        }
        return t;
    }

    private static Matrix matrix(GgufFile gguf, String name, int rows, int cols) throws GgufFormatException {
        GgufTensorInfo t = tensor(gguf, name, cols, rows);
        if (!Matrix.supports(t.type())) {
            throw new GgufFormatException("tensor '" + name + "': type " + t.type()
                    + " is not supported by the decoder (supported: " + Matrix.SUPPORTED + ")");
        }
        return new Matrix(name, gguf.tensorData(t), t.type(), rows, cols);
    }

    private static float[] vector(GgufFile gguf, String name, int n) throws GgufFormatException {
        GgufTensorInfo t = tensor(gguf, name, n);
        if (t.type() != GgmlType.F32) {
            throw new GgufFormatException("tensor '" + name + "': type " + t.type() + " but norms and biases must be F32");
        }
        return gguf.tensorData(t).toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
    }

    private static float[] optionalVector(GgufFile gguf, String name, int n) throws GgufFormatException {
        return gguf.findTensor(name).isPresent() ? vector(gguf, name, n) : null;
    }

    /** Returns the configuration. */
    public LlamaConfig config() {
        return config;
    }

    /** Returns the number of threads matrix products are split over. */
    public int threads() {
        return threads;
    }

    /** Returns whether the output matrix is the token embedding (tied weights). */
    public boolean tiedEmbeddings() {
        return output == tokenEmbedding;
    }

    /**
     * Returns a cache configuration builder preset with this model's dimensions (layers, KV heads,
     * query heads, head dimension, KV source layers); the caller adds capacity, dtype and policy.
     * A cache may share more layers than the model does (lossy cross-layer sharing, see
     * {@link KvCacheConfig.Builder#sharing}): a layer the cache does not store is then not
     * projected to keys and values at all. A layer may even read a later layer (top-layer mode).
     *
     * @return a new builder
     */
    public KvCacheConfig.Builder cacheConfig() {
        return KvCacheConfig.builder()
                .layers(config.layers())
                .kvHeads(config.kvHeads())
                .queryHeads(config.heads())
                .headDim(config.headDim())
                .kvSourceLayers(config.kvSourceLayers());
    }

    /**
     * Runs one token through the model (decode step): appends its keys and values to the cache
     * and returns the logits that predict the next token.
     *
     * @param cache the sequence's cache, configured with this model's dimensions
     * @param token the token id
     * @param position its position
     * @return the logits, {@code [vocab]}
     * @throws IllegalArgumentException if the cache does not fit the model or an argument is out of range
     */
    public float[] forward(KvCache cache, int token, int position) {
        return forward(cache, new int[] {token}, position, false);
    }

    /**
     * Runs tokens at consecutive positions through the model (prefill or teacher forcing), in
     * chunks of at most {@value #MAX_CHUNK} tokens; one token at a time when the cache's sharing
     * plan has a layer that reads a later layer (LCKV's top-layer mode: the lower layer attends
     * to the previous tokens of its source, as in a decode step).
     *
     * @param cache the sequence's cache, configured with this model's dimensions
     * @param tokens the token ids
     * @param startPos the position of {@code tokens[0]}
     * @param allLogits whether to return the logits of every token ({@code [tokens][vocab]},
     *     token-major) or only of the last one ({@code [vocab]})
     * @return the logits
     * @throws IllegalArgumentException if the cache does not fit the model or an argument is out of range
     */
    public float[] forward(KvCache cache, int[] tokens, int startPos, boolean allLogits) {
        checkCache(cache.config());
        // A layer that reads a later layer needs the source's KV of every earlier token, which
        // exists only after the whole stack has run on that token: one token at a time.
        int chunk = cache.config().sharing().readsLaterLayer() ? 1 : MAX_CHUNK;
        return forward(cache, tokens, startPos, allLogits, chunk);
    }

    private void checkCache(KvCacheConfig cc) {
        if (cc.layers() != config.layers() || cc.kvHeads() != config.kvHeads()
                || cc.queryHeads() != config.heads() || cc.headDim() != config.headDim()) {
            throw new IllegalArgumentException("cache: layers/kvHeads/queryHeads/headDim " + cc.layers() + "/"
                    + cc.kvHeads() + "/" + cc.queryHeads() + "/" + cc.headDim() + " but the model has "
                    + config.layers() + "/" + config.kvHeads() + "/" + config.heads() + "/" + config.headDim());
        }
        int[] sources = cc.kvSourceLayers();
        for (int l = 0; l < config.layers(); l++) {
            if (!config.isKvSource(l) && sources[l] != config.kvSourceLayers()[l]) {
                throw new IllegalArgumentException("cache: kvSourceLayers[" + l + "] is " + sources[l]
                        + " but the model's layer " + l + " has no K/V weights and must read layer "
                        + config.kvSourceLayers()[l]);
            }
        }
    }

    private float[] forward(KvCache kv, int[] tokens, int startPos, boolean allLogits, int maxChunk) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("tokens: length 0, need at least one token");
        }
        if (startPos < 0 || startPos > Integer.MAX_VALUE - tokens.length) {
            throw new IllegalArgumentException("startPos: " + startPos + " must be in [0, "
                    + (Integer.MAX_VALUE - tokens.length) + "]");
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= config.vocabSize()) {
                throw new IllegalArgumentException("tokens[" + i + "]: " + tokens[i] + " is outside [0, "
                        + config.vocabSize() + ")");
            }
        }
        int vocab = config.vocabSize();
        if (allLogits && (long) tokens.length * vocab > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tokens: " + tokens.length + " tokens of " + vocab
                    + " logits each exceed the largest float[]; request fewer tokens or only the last logits");
        }
        float[] logits = new float[allLogits ? tokens.length * vocab : vocab];
        for (int c = 0; c < tokens.length; c += maxChunk) {
            int n = Math.min(maxChunk, tokens.length - c);
            boolean last = c + n == tokens.length;
            if (allLogits || last) {
                float[] chunkLogits = chunk(kv, tokens, c, n, startPos + c, allLogits);
                int dst = allLogits ? c * vocab : 0;
                System.arraycopy(chunkLogits, 0, logits, dst, chunkLogits.length);
            } else {
                chunk(kv, tokens, c, n, startPos + c, false);
            }
        }
        return logits;
    }

    /** Forward pass of tokens[from .. from + n) at positions pos0..; returns logits of all or the last. */
    private float[] chunk(KvCache kv, int[] tokens, int from, int n, int pos0, boolean allLogits) {
        LlamaConfig c = config;
        int dim = c.dim();
        int qDim = c.qDim();
        int kvDim = c.kvDim();
        int ffn = c.ffnDim();
        float[] x = new float[n * dim];
        float[] xb = new float[n * dim];
        float[] q = new float[n * qDim];
        float[] k = new float[n * kvDim];
        float[] v = new float[n * kvDim];
        float[] att = new float[n * qDim];
        float[] h1 = new float[n * ffn];
        float[] h3 = new float[n * ffn];
        for (int t = 0; t < n; t++) {
            MatMul.row(tokenEmbedding, tokens[from + t], x, t * dim);
        }
        float[][] rope = ropeTable(pos0, n);
        for (int l = 0; l < layers.length; l++) {
            Layer w = layers[l];
            rmsNorm(x, w.attnNorm(), xb, n);
            matmul(w.wq(), xb, n, q);
            addBias(q, w.bq());
            rotate(q, n, c.heads(), rope);
            if (kv.config().isSourceLayer(l)) {
                matmul(w.wk(), xb, n, k);
                addBias(k, w.bk());
                matmul(w.wv(), xb, n, v);
                addBias(v, w.bv());
                rotate(k, n, c.kvHeads(), rope);
                kv.append(l, pos0, n, k, v);
            }
            kv.attend(l, pos0, n, q, att);
            matmul(w.wo(), att, n, xb);
            add(x, xb);
            rmsNorm(x, w.ffnNorm(), xb, n);
            matmul(w.gate(), xb, n, h1);
            matmul(w.up(), xb, n, h3);
            swiglu(h1, h3);
            matmul(w.down(), h1, n, xb);
            add(x, xb);
        }
        int outTokens = allLogits ? n : 1;
        float[] last = new float[outTokens * dim];
        System.arraycopy(x, (n - outTokens) * dim, last, 0, outTokens * dim);
        float[] normed = new float[outTokens * dim];
        rmsNorm(last, outputNorm, normed, outTokens);
        float[] logits = new float[outTokens * c.vocabSize()];
        matmul(output, normed, outTokens, logits);
        return logits;
    }

    /** cos/sin of every (token, frequency) of the chunk: [0] cos, [1] sin, index t * ropeDim/2 + i. */
    private float[][] ropeTable(int pos0, int n) {
        int half = config.ropeDim() / 2;
        float[] factors = config.ropeFactors();
        float[] cos = new float[n * half];
        float[] sin = new float[n * half];
        for (int i = 0; i < half; i++) {
            double freq = Math.pow(config.ropeBase(), -2.0 * i / config.ropeDim()) / factors[i];
            for (int t = 0; t < n; t++) {
                double angle = (double) (pos0 + t) * freq;
                cos[t * half + i] = (float) Math.cos(angle);
                sin[t * half + i] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }

    /** Rotates pairs (2i, 2i+1), or (i, i + half) in NeoX order, of every head of every token in place. */
    private void rotate(float[] vec, int n, int nHeads, float[][] rope) {
        int hd = config.headDim();
        int half = config.ropeDim() / 2;
        // Offset of pair i's first element and distance to its second.
        int stride = config.ropeNeox() ? 1 : 2;
        int gap = config.ropeNeox() ? half : 1;
        float[] cos = rope[0];
        float[] sin = rope[1];
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < nHeads; h++) {
                int base = (t * nHeads + h) * hd;
                for (int i = 0; i < half; i++) {
                    float c = cos[t * half + i];
                    float s = sin[t * half + i];
                    int e = base + stride * i;
                    float a = vec[e];
                    float b = vec[e + gap];
                    vec[e] = a * c - b * s;
                    vec[e + gap] = a * s + b * c;
                }
            }
        }
    }

    /** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, for n rows of weight.length. */
    private void rmsNorm(float[] x, float[] weight, float[] out, int n) {
        int d = weight.length;
        for (int t = 0; t < n; t++) {
            int o = t * d;
            double ss = 0;
            for (int i = 0; i < d; i++) {
                ss += (double) x[o + i] * x[o + i];
            }
            float inv = (float) (1.0 / Math.sqrt(ss / d + config.rmsEps()));
            for (int i = 0; i < d; i++) {
                out[o + i] = x[o + i] * inv * weight[i];
            }
        }
    }

    /** gate = silu(gate) * up. */
    private static void swiglu(float[] gate, float[] up) {
        for (int i = 0; i < gate.length; i++) {
            float g = gate[i];
            gate[i] = g / (1.0f + (float) Math.exp(-g)) * up[i];
        }
    }

    /** Adds {@code bias} to every row of {@code x}; nothing when there is no bias. */
    private static void addBias(float[] x, float[] bias) {
        if (bias == null) {
            return;
        }
        for (int o = 0; o < x.length; o += bias.length) {
            for (int i = 0; i < bias.length; i++) {
                x[o + i] += bias[i];
            }
        }
    }

    private static void add(float[] x, float[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }

    /** out[t] = W x[t] for n tokens, rows split over the pool when it pays. */
    private void matmul(Matrix w, float[] in, int n, float[] out) {
        int rows = w.rows();
        if (pool == null || (long) rows * w.cols() * n < PARALLEL_THRESHOLD) {
            MatMul.matmul(w, in, n, out, 0, rows);
            return;
        }
        int parts = Math.min(threads, rows);
        List<ForkJoinTask<?>> tasks = new ArrayList<>(parts);
        for (int p = 0; p < parts; p++) {
            int r0 = (int) ((long) rows * p / parts);
            int r1 = (int) ((long) rows * (p + 1) / parts);
            tasks.add(ForkJoinTask.adapt(() -> MatMul.matmul(w, in, n, out, r0, r1)));
        }
        // invokeAll must run inside the pool, or its forks would go to the common pool.
        pool.invoke(ForkJoinTask.adapt(() -> ForkJoinTask.invokeAll(tasks)));
    }

    /** Stops the worker threads, if any. The GGUF file is not closed. */
    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
    }
}
