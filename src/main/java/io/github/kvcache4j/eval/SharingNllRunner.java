package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.sharing.SharingPlan;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Measures the NLL cost of calibrated training-free sharing plans next to eviction policies at the
 * same KV memory, with the kvpress continuation protocol of {@code models/README.md}: tokens =
 * [BOS] + encode(text); windows of 2048 tokens from token 4096; a 1536-token context prefilled
 * with full attention (then {@code compress(ratio)} for an eviction policy); the mean NLL of the
 * 512 continuation tokens, fed over the cache without further eviction. The plans are calibrated
 * on the first {@code --tokens} tokens, which precede every window. Prints a markdown table.
 *
 * <p>Options are those of {@link SharingCalibration#main} plus {@code --windows} (default 4),
 * {@code --policies} (default {@code knorm,streaming,snapkv,tova}; {@code none} for none),
 * {@code --ratios} (default {@code 0.25,0.5}) and {@code --plans} (explicit plans in
 * {@code layer_types} form, comma-separated); {@code --shared none} skips the calibration.
 */
final class SharingNllRunner {

    private static final int FIRST_WINDOW = 4096;
    private static final int WINDOW = 2048;
    private static final int CONTEXT = 1536;

    private SharingNllRunner() {
    }

    /** One row of the table: a plan or an eviction policy at a ratio. */
    private record Setup(String name, SharingPlan plan, EvictionPolicy policy, double ratio) {
    }

    /**
     * Runs the measurement and prints the table.
     *
     * @param args see the class comment
     * @throws IOException if a file cannot be read
     */
    public static void main(String[] args) throws IOException {
        SharingCalibration.Options o = SharingCalibration.Options.parse(args);
        try (GgufFile gguf = GgufFile.open(o.model());
             LlamaModel model = LlamaModel.load(gguf, o.threads())) {
            int layers = model.config().layers();
            int[] all = Tokenizer.fromGguf(gguf).encode(Files.readString(o.text()), true);
            if (all.length < FIRST_WINDOW + o.windows() * WINDOW) {
                throw new IllegalArgumentException("the text has " + all.length + " tokens, " + o.windows()
                        + " windows need " + (FIRST_WINDOW + o.windows() * WINDOW));
            }
            if (o.tokens() > FIRST_WINDOW) {
                throw new IllegalArgumentException("--tokens " + o.tokens() + " would overlap the first window at "
                        + FIRST_WINDOW);
            }
            List<Setup> setups = new ArrayList<>();
            setups.add(new Setup("full cache", SharingPlan.identity(layers), Policies.full(), 0));
            for (String types : o.plans()) {
                setups.add(new Setup("plan " + types, SharingPlan.parse(types), Policies.full(), 0));
            }
            SharingCalibration cal = o.shared().length == 0 ? null
                    : SharingCalibration.collect(model, Arrays.copyOf(all, o.tokens()));
            int[] check = Arrays.copyOf(all, o.check());
            for (int shared : o.shared()) {
                SharingPlan sim = cal.similarityPlan(shared);
                SharingPlan dis = cal.dissimilarityPlan(model, check, shared, o.threshold());
                setups.add(new Setup("similarity (MiniCache-style) " + sim.toLayerTypes(), sim, Policies.full(), 0));
                setups.add(new Setup("dissimilarity (KVSharer) " + dis.toLayerTypes(), dis, Policies.full(), 0));
            }
            for (double ratio : o.ratios()) {
                for (String p : o.policies()) {
                    setups.add(new Setup(p + " @ " + ratio, SharingPlan.identity(layers), policy(p), ratio));
                }
            }
            System.out.printf(Locale.ROOT, "%d windows from token %d; calibration on tokens [0, %d), output check on "
                    + "[0, %d), threshold %.3f%n%n", o.windows(), FIRST_WINDOW, o.tokens(), o.check(), o.threshold());
            System.out.println("| setup | KV after context | mean NLL | Δ vs full | per window |");
            System.out.println("| --- | --- | --- | --- | --- |");
            double full = Double.NaN;
            long fullBytes = 0;
            for (Setup s : setups) {
                double[] nll = new double[o.windows()];
                long bytes = 0;
                for (int w = 0; w < o.windows(); w++) {
                    int[] window = Arrays.copyOfRange(all, FIRST_WINDOW + w * WINDOW, FIRST_WINDOW + (w + 1) * WINDOW);
                    try (KvCache cache = KvCache.create(model.cacheConfig().sharing(s.plan()).capacity(WINDOW)
                            .dtype(DType.F32).policy(s.policy()).build())) {
                        Score score = continuationNll(model, cache, window, s.ratio());
                        nll[w] = score.nll();
                        bytes = score.contextBytes();
                    }
                }
                double mean = Arrays.stream(nll).average().orElseThrow();
                if (Double.isNaN(full)) {
                    full = mean;
                    fullBytes = bytes;
                }
                StringBuilder per = new StringBuilder();
                for (double v : nll) {
                    per.append(per.isEmpty() ? "" : " ").append(String.format(Locale.ROOT, "%.4f", v));
                }
                System.out.printf(Locale.ROOT, "| %s | %.1f%% | %.4f | %+.4f | %s |%n", s.name(),
                        100.0 * bytes / fullBytes, mean, mean - full, per);
            }
        }
    }

    /** The mean continuation NLL of a window and the resident KV bytes after its context. */
    private record Score(double nll, long contextBytes) {
    }

    /** Prefills the context, compresses, scores the continuation. */
    private static Score continuationNll(LlamaModel model, KvCache cache, int[] window, double ratio) {
        int vocab = model.config().vocabSize();
        float[] last = model.forward(cache, Arrays.copyOf(window, CONTEXT), 0, false);
        if (ratio > 0) {
            cache.compress(ratio);
        }
        long contextBytes = cache.stats().residentBytes();
        int continuation = window.length - CONTEXT;
        double sum = Scoring.nll(last, 0, vocab, window[CONTEXT]);
        float[] logits = model.forward(cache, Arrays.copyOfRange(window, CONTEXT, window.length - 1), CONTEXT, true);
        for (int t = 0; t + 1 < continuation; t++) {
            sum += Scoring.nll(logits, t, vocab, window[CONTEXT + t + 1]);
        }
        return new Score(sum / continuation, contextBytes);
    }

    private static EvictionPolicy policy(String name) {
        return switch (name) {
            case "knorm" -> Policies.knorm();
            case "streaming" -> Policies.streamingLlm();
            case "snapkv" -> Policies.snapKv();
            case "tova" -> Policies.tova();
            case "h2o" -> Policies.h2o();
            case "observed" -> Policies.observedAttention();
            default -> throw new IllegalArgumentException("unknown policy " + name
                    + "; known: knorm, streaming, snapkv, tova, h2o, observed");
        };
    }
}
