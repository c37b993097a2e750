package io.github.kvcache4j.less;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.eval.Scoring;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Continuation NLL with and without LESS under the kvpress protocol ({@code ../shared/models/README.md}):
 * tokens = [BOS] + Persuasion; windows of 2048 tokens from token 4096; prefill 1536 tokens into a
 * cache of capacity 2048 whose policy observes the attention; {@code compress(ratio)}; score the 512
 * continuation tokens at positions 1536.. (no further eviction). Prints mean NLL per setting and the
 * fraction of the policy's gap to the full cache that LESS recovers.
 *
 * <p>Run (not part of the test suite; JDK 25):
 * <pre>
 * mvn -q test-compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 * java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes:$(cat target/cp.txt) \
 *     io.github.kvcache4j.less.LessQuality --windows 6
 * </pre>
 * Options: {@code --windows N} (default 6), {@code --ratios 0.75,0.9}, {@code --ranks 8,32,64},
 * {@code --policies knorm,h2o,observed}, {@code --seed S} (feature-map seed, default 1),
 * {@code --model PATH}, {@code --text PATH}, {@code --threads T} (matrix products, default 1).
 */
public final class LessQuality {

    private static final int FIRST = 4096;
    private static final int WINDOW = 2048;
    private static final int CONTEXT = 1536;

    private LessQuality() {
    }

    /** Runs the measurement; see the class comment for the options. */
    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        Path shared = Path.of(opt.getOrDefault("shared", "../shared"));
        Path modelPath = Path.of(opt.getOrDefault("model", shared.resolve("models/austen-base-f16.gguf").toString()));
        Path textPath = Path.of(opt.getOrDefault("text", shared.resolve("data/persuasion.txt").toString()));
        int windows = Integer.parseInt(opt.getOrDefault("windows", "6"));
        double[] ratios = doubles(opt.getOrDefault("ratios", "0.75,0.9"));
        int[] ranks = ints(opt.getOrDefault("ranks", "8,32,64"));
        String[] policies = opt.getOrDefault("policies", "knorm,h2o,observed").split(",");
        long seed = Long.parseLong(opt.getOrDefault("seed", "1"));
        int threads = Integer.parseInt(opt.getOrDefault("threads", "1"));

        try (GgufFile gguf = GgufFile.open(modelPath); LlamaModel model = LlamaModel.load(gguf, threads)) {
            int[] tokens = Tokenizer.fromGguf(gguf).encode(Files.readString(textPath), true);
            int headDim = model.config().headDim();
            System.out.printf(Locale.ROOT, "model %s, %d windows from token %d, feature-map seed %d%n",
                    modelPath.getFileName(), windows, FIRST, seed);
            double full = 0;
            for (int w = 0; w < windows; w++) {
                full += nll(model, tokens, w, Policies.full(), null, 0.0) / windows;
            }
            System.out.printf(Locale.ROOT, "full cache: %.4f%n", full);
            List<String> rows = new ArrayList<>();
            for (String name : policies) {
                for (double ratio : ratios) {
                    double plain = 0;
                    double[] less = new double[ranks.length];
                    for (int w = 0; w < windows; w++) {
                        plain += nll(model, tokens, w, policy(name), null, ratio) / windows;
                        for (int i = 0; i < ranks.length; i++) {
                            less[i] += nll(model, tokens, w, policy(name),
                                    FeatureMap.positiveRandom(headDim, ranks[i], seed), ratio) / windows;
                        }
                    }
                    StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "| %s | %.2f | %.4f |",
                            name, ratio, plain));
                    for (double l : less) {
                        row.append(String.format(Locale.ROOT, " %.4f (%+.0f%%) |", l, 100 * (plain - l) / (plain - full)));
                    }
                    rows.add(row.toString());
                    System.out.println(row);
                }
            }
            StringBuilder header = new StringBuilder("| policy | ratio | without LESS |");
            for (int r : ranks) {
                header.append(" LESS R=").append(r).append(" (gap recovered) |");
            }
            System.out.printf(Locale.ROOT, "%nfull cache %.4f%n%s%n", full, header);
            rows.forEach(System.out::println);
        }
    }

    private static EvictionPolicy policy(String name) {
        return switch (name) {
            case "knorm" -> Policies.knorm();
            case "h2o" -> Policies.h2o();
            case "observed" -> Policies.observedAttention();
            case "snapkv" -> Policies.snapKv();
            case "tova" -> Policies.tova();
            case "streaming" -> Policies.streamingLlm();
            default -> throw new IllegalArgumentException("policy: unknown " + name);
        };
    }

    /** Mean NLL of the 512 continuation tokens of window {@code w}. */
    static double nll(LlamaModel model, int[] tokens, int w, EvictionPolicy policy, FeatureMap less, double ratio) {
        int start = FIRST + w * WINDOW;
        int[] context = java.util.Arrays.copyOfRange(tokens, start, start + CONTEXT);
        int[] continuation = java.util.Arrays.copyOfRange(tokens, start + CONTEXT, start + WINDOW);
        KvCacheConfig config = model.cacheConfig().capacity(WINDOW).dtype(DType.F32).policy(policy).less(less).build();
        try (KvCache cache = KvCache.create(config)) {
            float[] last = model.forward(cache, context, 0, false);
            if (ratio > 0) {
                cache.compress(ratio);
            }
            int vocab = last.length;
            double sum = Scoring.nll(last, 0, vocab, continuation[0]);
            float[] logits = model.forward(cache, java.util.Arrays.copyOf(continuation, continuation.length - 1),
                    CONTEXT, true);
            for (int t = 1; t < continuation.length; t++) {
                sum += Scoring.nll(logits, t - 1, vocab, continuation[t]);
            }
            return sum / continuation.length;
        }
    }

    private static double[] doubles(String s) {
        String[] p = s.split(",");
        double[] a = new double[p.length];
        for (int i = 0; i < p.length; i++) {
            a[i] = Double.parseDouble(p[i]);
        }
        return a;
    }

    private static int[] ints(String s) {
        String[] p = s.split(",");
        int[] a = new int[p.length];
        for (int i = 0; i < p.length; i++) {
            a[i] = Integer.parseInt(p[i]);
        }
        return a;
    }
}
