package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaConfig;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.sharing.SharingPlan;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Training-free cross-layer sharing for a model trained without it: one pass of the reference
 * decoder over a calibration text records every layer's keys (after RoPE) and values, and two
 * rules choose which layers read another layer's KV.
 *
 * <ul>
 *   <li>{@link #similarityPlan} (in the spirit of MiniCache, Liu et al. 2024): adjacent layers
 *       whose KV states point the same way are redundant. Score of layers {@code a, b}: the mean,
 *       over tokens and kv-heads, of {@code (cos(k_a, k_b) + cos(v_a, v_b)) / 2}. Layers form
 *       contiguous groups that read their first layer; greedily, the group whose first layer
 *       {@code j} has the highest score against the source of layer {@code j - 1} joins that
 *       layer's group.
 *   <li>{@link #dissimilarityPlan} (KVSharer, Yang et al. 2024): sharing the KV of a
 *       <em>dissimilar</em> layer hurts less than intuition suggests. Layer pairs are ranked by the
 *       Euclidean distance of their KV over the calibration sequence, most distant first; the later
 *       layer of a pair reads the earlier one if the model's output on a check sequence stays close
 *       (mean cosine similarity of the logits at least a threshold).
 * </ul>
 *
 * <p>{@link #main} runs both rules on a GGUF model and a text file and prints the plans.
 */
public final class SharingCalibration {

    private final int layers;
    private final double[][] similarity;
    private final double[][] distance;

    private SharingCalibration(double[][] similarity, double[][] distance) {
        this.layers = similarity.length;
        this.similarity = similarity;
        this.distance = distance;
    }

    /**
     * Runs {@code tokens} (positions 0..) through {@code model} with a full cache and collects the
     * statistics of every pair of layers.
     *
     * @throws IllegalArgumentException if the model already shares layers or {@code tokens} is empty
     */
    public static SharingCalibration collect(LlamaModel model, int[] tokens) {
        LlamaConfig c = model.config();
        if (!SharingPlan.of(c.kvSourceLayers()).equals(SharingPlan.identity(c.layers()))) {
            throw new IllegalArgumentException("the model already shares layers (kv_source_layers "
                    + SharingPlan.of(c.kvSourceLayers()).toLayerTypes() + "); calibrate a model without sharing");
        }
        if (tokens.length == 0) {
            throw new IllegalArgumentException("tokens must not be empty");
        }
        int n = tokens.length;
        int layers = c.layers();
        int kvHeads = c.kvHeads();
        int d = c.headDim();
        float[][][] keys = new float[layers][kvHeads][n * d];
        float[][][] values = new float[layers][kvHeads][n * d];
        try (KvCache cache = KvCache.create(model.cacheConfig().capacity(n).dtype(DType.F32)
                .policy(Policies.full()).build())) {
            model.forward(cache, tokens, 0, false);
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    cache.read(l, h, keys[l][h], values[l][h]);
                }
            }
        }
        double[][] similarity = new double[layers][layers];
        double[][] distance = new double[layers][layers];
        for (int a = 0; a < layers; a++) {
            similarity[a][a] = 1.0;
            for (int b = a + 1; b < layers; b++) {
                double cos = 0;
                double squares = 0;
                for (int h = 0; h < kvHeads; h++) {
                    for (int t = 0; t < n; t++) {
                        cos += cosine(keys[a][h], keys[b][h], t * d, d) + cosine(values[a][h], values[b][h], t * d, d);
                    }
                    squares += squaredDistance(keys[a][h], keys[b][h]) + squaredDistance(values[a][h], values[b][h]);
                }
                similarity[a][b] = similarity[b][a] = cos / (2.0 * kvHeads * n);
                distance[a][b] = distance[b][a] = Math.sqrt(squares);
            }
        }
        return new SharingCalibration(similarity, distance);
    }

    /** cos(x, y) of the {@code d} elements at {@code off}; 0 when either is zero. */
    private static double cosine(float[] x, float[] y, int off, int d) {
        double xy = 0;
        double xx = 0;
        double yy = 0;
        for (int i = off; i < off + d; i++) {
            xy += (double) x[i] * y[i];
            xx += (double) x[i] * x[i];
            yy += (double) y[i] * y[i];
        }
        return xx == 0 || yy == 0 ? 0 : xy / Math.sqrt(xx * yy);
    }

    private static double squaredDistance(float[] x, float[] y) {
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            double e = (double) x[i] - y[i];
            s += e * e;
        }
        return s;
    }

    /** Returns the number of layers. */
    public int layers() {
        return layers;
    }

    /**
     * Returns the mean cosine similarity of the KV of layers {@code a} and {@code b}: over tokens
     * and kv-heads, {@code (cos(k_a, k_b) + cos(v_a, v_b)) / 2}.
     */
    public double similarity(int a, int b) {
        return similarity[a][b];
    }

    /** Returns the Euclidean distance of the KV of layers {@code a} and {@code b} over the sequence. */
    public double distance(int a, int b) {
        return distance[a][b];
    }

    /**
     * Returns the plan in which {@code shared} layers read the source of the layer below them,
     * chosen greedily by {@link #similarity} (in MiniCache's spirit; see the class comment).
     * Layer 0 always stores its own KV.
     *
     * @throws IllegalArgumentException if {@code shared} is outside {@code [0, layers)}
     */
    public SharingPlan similarityPlan(int shared) {
        checkShared(shared);
        int[] src = identity();
        for (int step = 0; step < shared; step++) {
            int best = -1;
            double bestScore = Double.NEGATIVE_INFINITY;
            for (int j = 1; j < layers; j++) {
                if (src[j] != j) {
                    continue;
                }
                double score = similarity[src[j - 1]][j];
                if (score > bestScore) {
                    bestScore = score;
                    best = j;
                }
            }
            int target = src[best - 1];
            for (int l = best; l < layers; l++) {
                if (src[l] == best) {
                    src[l] = target;
                }
            }
        }
        return SharingPlan.of(src);
    }

    /**
     * Returns the plan in which {@code shared} layers read an earlier layer's KV, chosen by
     * KVSharer's rule: candidate pairs {@code (i < j)} in order of decreasing {@link #distance};
     * layer {@code j} reads layer {@code i} if both still store their own KV, no layer reads
     * {@code j}, and the mean cosine similarity of the logits on {@code checkTokens} to those of
     * the model without sharing stays at least {@code threshold}. If the candidates run out
     * before {@code shared} layers share, each further step takes the admissible pair with the
     * highest output similarity (a simplification of KVSharer, which would stop).
     *
     * @throws IllegalArgumentException if {@code shared} is outside {@code [0, layers)} or
     *     {@code checkTokens} is empty
     */
    public SharingPlan dissimilarityPlan(LlamaModel model, int[] checkTokens, int shared, double threshold) {
        return dissimilarityPlan(model, checkTokens, shared, threshold, s -> { });
    }

    SharingPlan dissimilarityPlan(LlamaModel model, int[] checkTokens, int shared, double threshold,
                                  Consumer<String> trace) {
        checkShared(shared);
        if (model.config().layers() != layers) {
            throw new IllegalArgumentException("model has " + model.config().layers()
                    + " layers, the calibration " + layers);
        }
        if (checkTokens.length == 0) {
            throw new IllegalArgumentException("checkTokens must not be empty");
        }
        float[] reference = logits(model, checkTokens, SharingPlan.identity(layers));
        List<int[]> pairs = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            for (int j = i + 1; j < layers; j++) {
                pairs.add(new int[] {i, j});
            }
        }
        pairs.sort((p, q) -> Double.compare(distance[q[0]][q[1]], distance[p[0]][p[1]]));
        int[] src = identity();
        int done = 0;
        for (int[] p : pairs) {
            if (done == shared) {
                break;
            }
            if (!admissible(src, p[0], p[1])) {
                continue;
            }
            src[p[1]] = p[0];
            double sim = outputSimilarity(model, checkTokens, SharingPlan.of(src), reference);
            boolean keep = sim >= threshold;
            trace.accept(String.format(Locale.ROOT, "layer %d reads %d: distance %.1f, output similarity %.5f, %s",
                    p[1], p[0], distance[p[0]][p[1]], sim, keep ? "kept" : "rejected"));
            if (keep) {
                done++;
            } else {
                src[p[1]] = p[1];
            }
        }
        while (done < shared) {
            int[] best = null;
            double bestSim = Double.NEGATIVE_INFINITY;
            for (int[] p : pairs) {
                if (!admissible(src, p[0], p[1])) {
                    continue;
                }
                src[p[1]] = p[0];
                double sim = outputSimilarity(model, checkTokens, SharingPlan.of(src), reference);
                src[p[1]] = p[1];
                if (sim > bestSim) {
                    bestSim = sim;
                    best = p;
                }
            }
            src[best[1]] = best[0];
            done++;
            trace.accept(String.format(Locale.ROOT, "below threshold, best remaining: layer %d reads %d, output "
                    + "similarity %.5f", best[1], best[0], bestSim));
        }
        return SharingPlan.of(src);
    }

    /** Whether layer j may start reading layer i: both store their own KV and nobody reads j. */
    private static boolean admissible(int[] src, int i, int j) {
        return src[i] == i && free(src, j);
    }

    /** Whether layer j stores its own KV and no other layer reads it. */
    private static boolean free(int[] src, int j) {
        if (src[j] != j) {
            return false;
        }
        for (int l = 0; l < src.length; l++) {
            if (l != j && src[l] == j) {
                return false;
            }
        }
        return true;
    }

    private int[] identity() {
        int[] s = new int[layers];
        Arrays.setAll(s, i -> i);
        return s;
    }

    private void checkShared(int shared) {
        if (shared < 0 || shared >= layers) {
            throw new IllegalArgumentException("shared must be in [0, " + layers + "), got " + shared);
        }
    }

    private static float[] logits(LlamaModel model, int[] tokens, SharingPlan plan) {
        try (KvCache cache = KvCache.create(model.cacheConfig().sharing(plan).capacity(tokens.length)
                .dtype(DType.F32).policy(Policies.full()).build())) {
            return model.forward(cache, tokens, 0, true);
        }
    }

    /** Mean over tokens of cos(logits with the plan, reference logits). */
    private static double outputSimilarity(LlamaModel model, int[] tokens, SharingPlan plan, float[] reference) {
        float[] l = logits(model, tokens, plan);
        int vocab = model.config().vocabSize();
        double sum = 0;
        for (int t = 0; t < tokens.length; t++) {
            sum += cosine(l, reference, t * vocab, vocab);
        }
        return sum / tokens.length;
    }

    /**
     * Calibrates on the first tokens of a text and prints the statistics and plans. Arguments
     * ({@code --name value}): {@code --model} (GGUF, default
     * {@code ../shared/models/austen-base-f16.gguf}), {@code --text} (default
     * {@code ../shared/data/persuasion.txt}), {@code --tokens} (calibration length, default 2048:
     * BOS and the text's first 2047 tokens), {@code --check} (output-check length, default 512),
     * {@code --shared} (comma-separated counts, default {@code 2,4}), {@code --threshold} (default
     * {@value #DEFAULT_THRESHOLD}), {@code --threads} (default 1).
     *
     * @throws IOException if a file cannot be read
     */
    public static void main(String[] args) throws IOException {
        Options o = Options.parse(args);
        try (GgufFile gguf = GgufFile.open(o.model());
             LlamaModel model = LlamaModel.load(gguf, o.threads())) {
            int[] all = Tokenizer.fromGguf(gguf).encode(Files.readString(o.text()), true);
            long t0 = System.nanoTime();
            SharingCalibration cal = collect(model, Arrays.copyOf(all, o.tokens()));
            System.out.printf(Locale.ROOT, "calibration: %d tokens in %.1f s%n", o.tokens(), (System.nanoTime() - t0) / 1e9);
            System.out.println("mean cosine similarity of KV (row a, column b):");
            System.out.print(cal.format(cal.similarity, "%7.3f"));
            System.out.println("Euclidean distance of KV:");
            System.out.print(cal.format(cal.distance, "%7.0f"));
            int[] check = Arrays.copyOf(all, o.check());
            for (int shared : o.shared()) {
                System.out.println("similarity rule, " + shared + " shared: " + cal.similarityPlan(shared).toLayerTypes());
                SharingPlan p = cal.dissimilarityPlan(model, check, shared, o.threshold(), s -> System.out.println("  " + s));
                System.out.println("dissimilarity rule, " + shared + " shared: " + p.toLayerTypes());
            }
        }
    }

    /** The default output-similarity threshold of the dissimilarity rule. */
    public static final double DEFAULT_THRESHOLD = 0.95;

    private String format(double[][] m, String cell) {
        StringBuilder b = new StringBuilder();
        for (double[] row : m) {
            for (double v : row) {
                b.append(String.format(Locale.ROOT, cell, v));
            }
            b.append('\n');
        }
        return b.toString();
    }

    /** Command-line options shared by {@link #main} and the NLL runner. */
    record Options(Path model, Path text, int tokens, int check, int[] shared, double threshold, int threads,
                   int windows, String[] policies, double[] ratios, String[] plans) {

        static Options parse(String[] args) {
            Path model = Path.of("../shared/models/austen-base-f16.gguf");
            Path text = Path.of("../shared/data/persuasion.txt");
            int tokens = 2048;
            int check = 512;
            int[] shared = {2, 4};
            double threshold = DEFAULT_THRESHOLD;
            int threads = 1;
            int windows = 4;
            String[] policies = {"knorm", "streaming", "snapkv", "tova"};
            double[] ratios = {0.25, 0.5};
            String[] plans = {};
            for (int i = 0; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("option " + args[i] + " needs a value");
                }
                String v = args[i + 1];
                switch (args[i]) {
                    case "--model" -> model = Path.of(v);
                    case "--text" -> text = Path.of(v);
                    case "--tokens" -> tokens = Integer.parseInt(v);
                    case "--check" -> check = Integer.parseInt(v);
                    case "--shared" -> shared = v.equals("none") ? new int[0]
                            : Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                    case "--threshold" -> threshold = Double.parseDouble(v);
                    case "--threads" -> threads = Integer.parseInt(v);
                    case "--windows" -> windows = Integer.parseInt(v);
                    case "--policies" -> policies = v.equals("none") ? new String[0] : v.split(",");
                    case "--plans" -> plans = v.split(",");
                    case "--ratios" -> ratios = Arrays.stream(v.split(",")).mapToDouble(Double::parseDouble).toArray();
                    default -> throw new IllegalArgumentException("unknown option " + args[i] + "; options: --model, "
                            + "--text, --tokens, --check, --shared, --threshold, --threads, --windows, --policies, --ratios, --plans");
                }
            }
            if (check > tokens) {
                throw new IllegalArgumentException("--check " + check + " must be <= --tokens " + tokens);
            }
            return new Options(model, text, tokens, check, shared, threshold, threads, windows, policies, ratios,
                    plans);
        }
    }
}
