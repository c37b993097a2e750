package io.github.kvcache4j.model;

import java.util.Random;

/**
 * A small decoder of a chosen layout with random weights: written as GGUF by
 * {@link TestGgufWriter} (matrices in a chosen type, norms and biases F32; llama.cpp's names and
 * keys), and run by a float64 reference forward pass written from the architecture's definition,
 * independently of {@link LlamaModel}. In a quantized type the weights are the dequantized values
 * ({@link TestQuantizer#roundTrip}), which the type's quantizer reproduces exactly, so the file
 * and the reference hold the same numbers.
 */
final class SyntheticModel {

    /**
     * The layout.
     *
     * @param arch {@code general.architecture}
     * @param dim embedding width
     * @param layers blocks
     * @param heads query heads
     * @param kvHeads key/value heads
     * @param headDim head width; written as {@code attention.key_length} when not {@code dim / heads}
     * @param ffn feed-forward width
     * @param vocab vocabulary size
     * @param ropeBase RoPE base
     * @param neox whether RoPE pairs are (i, i + headDim/2) rather than (2i, 2i+1)
     * @param biases whether the q/k/v projections have biases
     * @param tied whether the output matrix is the token embedding (no {@code output.weight})
     */
    record Spec(String arch, int dim, int layers, int heads, int kvHeads, int headDim, int ffn, int vocab,
                double ropeBase, boolean neox, boolean biases, boolean tied) {
    }

    /** Training context written to the file. */
    static final int CONTEXT = 512;
    private static final float RMS_EPS = 1e-5f;

    final Spec spec;
    private final GgmlType type;
    private final float[] embedding;
    private final float[] output;
    private final float[] outputNorm;
    private final Block[] blocks;

    private record Block(float[] attnNorm, float[] wq, float[] bq, float[] wk, float[] bk, float[] wv, float[] bv,
                         float[] wo, float[] ffnNorm, float[] gate, float[] up, float[] down) {
    }

    SyntheticModel(Spec spec, long seed) {
        this(spec, seed, GgmlType.F32);
    }

    /** A model whose matrices (embedding included) are stored as {@code type}; same seed, same weights before rounding. */
    SyntheticModel(Spec spec, long seed, GgmlType type) {
        this.spec = spec;
        this.type = type;
        Random r = new Random(seed);
        int qDim = spec.heads() * spec.headDim();
        int kvDim = spec.kvHeads() * spec.headDim();
        embedding = stored(gaussian(r, spec.vocab() * spec.dim(), 1.0));
        output = spec.tied() ? embedding : stored(gaussian(r, spec.vocab() * spec.dim(), 1.0 / Math.sqrt(spec.dim())));
        outputNorm = norm(r, spec.dim());
        blocks = new Block[spec.layers()];
        for (int l = 0; l < blocks.length; l++) {
            blocks[l] = new Block(norm(r, spec.dim()),
                    matrix(r, qDim, spec.dim()), spec.biases() ? gaussian(r, qDim, 0.5) : null,
                    matrix(r, kvDim, spec.dim()), spec.biases() ? gaussian(r, kvDim, 0.5) : null,
                    matrix(r, kvDim, spec.dim()), spec.biases() ? gaussian(r, kvDim, 0.5) : null,
                    matrix(r, spec.dim(), qDim), norm(r, spec.dim()),
                    matrix(r, spec.ffn(), spec.dim()), matrix(r, spec.ffn(), spec.dim()), matrix(r, spec.dim(), spec.ffn()));
        }
    }

    private static float[] gaussian(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }

    /** A {@code rows x cols} matrix scaled so that its products keep unit variance, as stored. */
    private float[] matrix(Random r, int rows, int cols) {
        return stored(gaussian(r, rows * cols, 1.0 / Math.sqrt(cols)));
    }

    private float[] stored(float[] values) {
        return type == GgmlType.F32 ? values : TestQuantizer.roundTrip(type, values);
    }

    private static float[] norm(Random r, int n) {
        float[] a = gaussian(r, n, 0.2);
        for (int i = 0; i < n; i++) {
            a[i] += 1f;
        }
        return a;
    }

    /** Returns a writer holding the hyperparameters and every tensor; the caller may add keys. */
    TestGgufWriter writer() {
        Spec s = spec;
        String p = s.arch() + ".";
        TestGgufWriter w = new TestGgufWriter();
        w.kvString("general.architecture", s.arch());
        w.kvU32(p + "embedding_length", s.dim());
        w.kvU32(p + "block_count", s.layers());
        w.kvU32(p + "attention.head_count", s.heads());
        w.kvU32(p + "attention.head_count_kv", s.kvHeads());
        if (s.headDim() * s.heads() != s.dim()) {
            w.kvU32(p + "attention.key_length", s.headDim());
            w.kvU32(p + "attention.value_length", s.headDim());
        }
        w.kvU32(p + "feed_forward_length", s.ffn());
        w.kvU32(p + "context_length", CONTEXT);
        w.kvU32(p + "vocab_size", s.vocab());
        w.kvF32(p + "rope.freq_base", (float) s.ropeBase());
        w.kvF32(p + "attention.layer_norm_rms_epsilon", RMS_EPS);
        w.tensor("token_embd.weight", type, embedding, s.dim(), s.vocab());
        if (!s.tied()) {
            w.tensor("output.weight", type, output, s.dim(), s.vocab());
        }
        w.tensor("output_norm.weight", GgmlType.F32, outputNorm, s.dim());
        int qDim = s.heads() * s.headDim();
        int kvDim = s.kvHeads() * s.headDim();
        for (int l = 0; l < blocks.length; l++) {
            Block b = blocks[l];
            String n = "blk." + l + ".";
            w.tensor(n + "attn_norm.weight", GgmlType.F32, b.attnNorm(), s.dim());
            w.tensor(n + "attn_q.weight", type, b.wq(), s.dim(), qDim);
            w.tensor(n + "attn_k.weight", type, b.wk(), s.dim(), kvDim);
            w.tensor(n + "attn_v.weight", type, b.wv(), s.dim(), kvDim);
            if (s.biases()) {
                w.tensor(n + "attn_q.bias", GgmlType.F32, b.bq(), qDim);
                w.tensor(n + "attn_k.bias", GgmlType.F32, b.bk(), kvDim);
                w.tensor(n + "attn_v.bias", GgmlType.F32, b.bv(), kvDim);
            }
            w.tensor(n + "attn_output.weight", type, b.wo(), qDim, s.dim());
            w.tensor(n + "ffn_norm.weight", GgmlType.F32, b.ffnNorm(), s.dim());
            w.tensor(n + "ffn_gate.weight", type, b.gate(), s.dim(), s.ffn());
            w.tensor(n + "ffn_up.weight", type, b.up(), s.dim(), s.ffn());
            w.tensor(n + "ffn_down.weight", type, b.down(), s.ffn(), s.dim());
        }
        return w;
    }

    /**
     * The float64 forward pass over {@code tokens} at positions 0, 1, ... with full causal
     * attention.
     *
     * @param tokens the token ids
     * @param ropeFactors the divisor of each pair's frequency, or {@code null} for none
     * @return the logits of every position, {@code [position][vocab]}
     */
    double[][] logits(int[] tokens, double[] ropeFactors) {
        Spec s = spec;
        int n = tokens.length;
        int hd = s.headDim();
        int group = s.heads() / s.kvHeads();
        double[][] x = new double[n][];
        for (int t = 0; t < n; t++) {
            x[t] = row(embedding, tokens[t], s.dim());
        }
        for (Block b : blocks) {
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            for (int t = 0; t < n; t++) {
                double[] h = rmsNorm(x[t], b.attnNorm());
                q[t] = rope(plus(times(b.wq(), h), b.bq()), t, s.heads(), ropeFactors);
                k[t] = rope(plus(times(b.wk(), h), b.bk()), t, s.kvHeads(), ropeFactors);
                v[t] = plus(times(b.wv(), h), b.bv());
            }
            for (int t = 0; t < n; t++) {
                double[] att = new double[s.heads() * hd];
                for (int head = 0; head < s.heads(); head++) {
                    int kvOff = head / group * hd;
                    double[] w = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += q[t][head * hd + i] * k[j][kvOff + i];
                        }
                        w[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, w[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        w[j] = Math.exp(w[j] - max);
                        sum += w[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < hd; i++) {
                            att[head * hd + i] += w[j] / sum * v[j][kvOff + i];
                        }
                    }
                }
                double[] o = times(b.wo(), att);
                for (int i = 0; i < s.dim(); i++) {
                    x[t][i] += o[i];
                }
                double[] h = rmsNorm(x[t], b.ffnNorm());
                double[] g = times(b.gate(), h);
                double[] u = times(b.up(), h);
                for (int i = 0; i < g.length; i++) {
                    g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
                }
                double[] d = times(b.down(), g);
                for (int i = 0; i < s.dim(); i++) {
                    x[t][i] += d[i];
                }
            }
        }
        double[][] logits = new double[n][];
        for (int t = 0; t < n; t++) {
            logits[t] = times(output, rmsNorm(x[t], outputNorm));
        }
        return logits;
    }

    private static double[] row(float[] m, int r, int cols) {
        double[] out = new double[cols];
        for (int i = 0; i < cols; i++) {
            out[i] = m[r * cols + i];
        }
        return out;
    }

    private static double[] times(float[] m, double[] x) {
        int rows = m.length / x.length;
        double[] out = new double[rows];
        for (int r = 0; r < rows; r++) {
            double acc = 0;
            for (int c = 0; c < x.length; c++) {
                acc += m[r * x.length + c] * x[c];
            }
            out[r] = acc;
        }
        return out;
    }

    private static double[] plus(double[] x, float[] bias) {
        if (bias != null) {
            for (int i = 0; i < x.length; i++) {
                x[i] += bias[i];
            }
        }
        return x;
    }

    private static double[] rmsNorm(double[] x, float[] w) {
        double ss = 0;
        for (double e : x) {
            ss += e * e;
        }
        double inv = 1 / Math.sqrt(ss / x.length + RMS_EPS);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * inv * w[i];
        }
        return out;
    }

    /** Rotates every head of {@code x} to position {@code pos}, in the layout's pair order. */
    private double[] rope(double[] x, int pos, int nHeads, double[] factors) {
        int hd = spec.headDim();
        int half = hd / 2;
        for (int h = 0; h < nHeads; h++) {
            for (int i = 0; i < half; i++) {
                double theta = pos * Math.pow(spec.ropeBase(), -2.0 * i / hd) / (factors == null ? 1 : factors[i]);
                int a = h * hd + (spec.neox() ? i : 2 * i);
                int b = a + (spec.neox() ? half : 1);
                double xa = x[a];
                double xb = x[b];
                x[a] = xa * Math.cos(theta) - xb * Math.sin(theta);
                x[b] = xa * Math.sin(theta) + xb * Math.cos(theta);
            }
        }
        return x;
    }
}
