package io.github.kvcache4j.eval;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * The policy evaluator: runs every requested eviction policy at every compression ratio on a GGUF
 * Llama model and reports quality against KV memory — continuation NLL under the kvpress protocol,
 * passkey retrieval on kvpress's replayed prompts, copy retrieval, needle-in-a-haystack heatmaps
 * and, on request, the decode-time memory bound — as tables, CSV and plots in the output directory
 * ({@link Report}). The full cache always runs as the baseline. {@code --help} lists the options;
 * exit code 2 means a bad option, 1 an unreadable model or text.
 */
public final class Evaluator {

    /** Tokens a passkey prompt leaves free in a window for the question and the answer. */
    static final int PASSKEY_ROOM = 64;
    /** Tokens of the repeated span. */
    static final int COPY_SPAN = 64;

    private Evaluator() {
    }

    /**
     * Runs the evaluator and exits with its status.
     *
     * @param args the options; see {@code --help}
     */
    public static void main(String[] args) {
        System.setProperty("java.awt.headless", "true");
        System.exit(run(args, System.out, System.err));
    }

    /** Runs the evaluator; returns 0 on success, 2 for a bad option, 1 for an unreadable input. */
    static int run(String[] args, PrintStream out, PrintStream err) {
        EvalOptions o;
        try {
            o = EvalOptions.parse(args);
        } catch (UsageException e) {
            return usageError(err, e.getMessage());
        }
        if (o.help()) {
            out.print(EvalOptions.USAGE);
            return 0;
        }
        if (!Files.isRegularFile(o.model())) {
            return usageError(err, "--model: file not found: " + o.model().toAbsolutePath());
        }
        if (!Files.isRegularFile(o.text())) {
            return usageError(err, "--text: file not found: " + o.text().toAbsolutePath());
        }
        long t0 = System.nanoTime();
        try (GgufFile gguf = GgufFile.open(o.model()); LlamaModel model = LlamaModel.load(gguf, o.threads())) {
            int modelContext = model.config().contextLength();
            int window = o.window() > 0 ? o.window() : Math.min(ContinuationTask.WINDOW, modelContext);
            if (window > modelContext || window < EvalOptions.MIN_WINDOW) {
                return usageError(err, "--window: " + window + " tokens must be in [" + EvalOptions.MIN_WINDOW
                        + ", " + modelContext + "] (the model's context length)");
            }
            Tokenizer tok = Tokenizer.fromGguf(gguf);
            int[] tokens = tok.encode(readText(o.text()), true);
            long needed = o.start() + (long) o.windows() * window;
            if (needed > tokens.length) {
                return usageError(err, "--start/--windows: " + o.windows() + " windows from token " + o.start()
                        + " need " + needed + " tokens but " + o.text() + " has " + tokens.length
                        + " (at most " + Math.max(0, (tokens.length - o.start()) / window)
                        + " windows from this start)");
            }
            Samples samples;
            try {
                // kvpress's prompts are fixed token ids of 2,000 context tokens: they are replayed
                // on a window of the kvpress protocol; a shorter window gets prompts built to fit it.
                List<PasskeyTask.Prompt> replayed = o.passkeySamples() == 0 || !replays(window) ? null
                        : ReplayedPasskey.load(o.passkeyPrompts(), tok, tokens);
                samples = Samples.of(tok, tokens, replayed, o.passkeySamples(), o.copySamples(), window);
            } catch (IllegalArgumentException | IOException e) {
                return usageError(err, "--passkey/--passkey-prompts/--copy: " + e.getMessage());
            }
            FeatureMap learned = null;
            if (o.policies().stream().anyMatch(p -> PolicyRegistry.create(p).less() == CacheRecipe.Less.LEARNED)) {
                if (!Files.isRegularFile(o.lessMap())) {
                    return usageError(err, "--less-map: file not found: " + o.lessMap().toAbsolutePath());
                }
                learned = FeatureMap.load(o.lessMap());
            }
            out.printf(Locale.ROOT,
                    "model %s (%s), text %s: %d tokens; %d windows of %d from token %d; cache %s; %d threads%n",
                    o.model().getFileName(), model.config(), o.text().getFileName(), tokens.length, o.windows(),
                    window, o.start(), o.kvFormats().isEmpty() ? o.dtype()
                            : o.kvFormats().stream().map(KvFormat::name).toList(), o.threads());
            int configs = 1;
            for (String policy : o.policies()) {
                configs += policy.equals(PolicyRegistry.FULL) ? 0 : ratios(o, PolicyRegistry.create(policy)).length;
            }
            if (!o.kvFormats().isEmpty()) {
                Progress progress = new Progress(err, o.kvFormats().size() * work(o, samples, configs, window),
                        err == System.err && Progress.stderrIsTerminal());
                KvFormatSweep.run(o, window, model, tok, learned, tokens, samples, progress, out);
                out.printf(Locale.ROOT, "total %s%n", Progress.duration((System.nanoTime() - t0) / 1e9));
                return 0;
            }
            List<String> heatmapPolicies = heatmapPolicies(o);
            NeedleHeatmap.Grid heatmap = o.heatmap() == null ? null : NeedleHeatmap.fitting(o.heatmap(), window);
            if (o.decodeTimeWindows() > o.windows()) {
                return usageError(err, "--decode-time: " + o.decodeTimeWindows() + " windows, at most --windows ("
                        + o.windows() + ")");
            }
            boolean ranksHeads = o.policies().contains(PolicyRegistry.DUO_SPLIT);
            long work = work(o, samples, configs, window) + (ranksHeads ? NeedleHeads.work() : 0)
                    + (heatmap == null ? 0 : NeedleHeatmap.work(heatmap, heatmapPolicies.size()))
                    + (o.decodeTimeWindows() == 0 ? 0
                    : DecodeTimeRun.work(configs - 1, o.decodeTimeWindows(), window, samples.passkey()));
            Progress progress = new Progress(err, work, err == System.err && Progress.stderrIsTerminal());
            EvalModel eval = new EvalModel(model, tok, KvFormat.of(o.dtype()), progress::advance, learned, window);
            if (ranksHeads) {
                eval = eval.withHeadRanking(tokens);
                out.println("needle attention per (layer, kv-head), highest first: "
                        + NeedleHeads.describe(eval.headRanking(), model.config().kvHeads(), 8));
            }
            List<ResultRow> rows = evaluate(o, eval, tokens, samples);
            List<NeedleHeatmap.Map> maps = heatmap == null ? List.of()
                    : NeedleHeatmap.run(eval, heatmap, heatmapPolicies, o.heatmapRatio(), tokens, tokens.length / 4);
            List<DecodeTimeRun.Row> decodeTime = List.of();
            if (o.decodeTimeWindows() > 0) {
                int[][] windows = new int[o.decodeTimeWindows()][];
                for (int w = 0; w < windows.length; w++) {
                    windows[w] = ContinuationTask.window(tokens, o.start(), w, window);
                }
                decodeTime = DecodeTimeRun.run(eval, rows, windows, samples.passkey());
            }
            progress.finish();
            Report.write(o, window, rows, heatmap, maps, decodeTime, out);
            out.printf(Locale.ROOT, "total %s%n", Progress.duration((System.nanoTime() - t0) / 1e9));
            return 0;
        } catch (IOException | IllegalArgumentException e) {
            // A model file of an unsupported architecture or tokenizer is rejected by name, not a trace.
            err.println("error: " + e.getMessage());
            return 1;
        }
    }

    /**
     * Whether kvpress's passkey prompts can be replayed on windows of {@code window} tokens: their
     * 2,000 context tokens, question and answer need a window of the kvpress protocol.
     */
    static boolean replays(int window) {
        return window >= ContinuationTask.WINDOW;
    }

    /**
     * Returns the policies of the heatmaps: the full cache and every requested compressing policy
     * without a LESS residual.
     */
    private static List<String> heatmapPolicies(EvalOptions o) {
        List<String> names = new ArrayList<>(List.of(PolicyRegistry.FULL));
        for (String p : o.policies()) {
            CacheRecipe recipe = PolicyRegistry.create(p);
            // A LESS residual barely moves passkey (docs/less.md) and folding every evicted
            // token costs more than the prompt itself: the heatmaps show the eviction rules.
            if (!p.equals(PolicyRegistry.FULL) && recipe.compresses() && recipe.less() == CacheRecipe.Less.NONE) {
                names.add(p);
            }
        }
        return names;
    }

    private static int usageError(PrintStream err, String message) {
        err.println("error: " + message);
        err.println("Run with --help for the options.");
        return 2;
    }

    /** Reads UTF-8 text, dropping a byte-order mark and turning CRLF into LF. */
    static String readText(Path file) throws IOException {
        String text = Files.readString(file);
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        return text.replace("\r\n", "\n");
    }

    /** The passkey and copy prompts, built once and shared by every (policy, ratio). */
    record Samples(List<PasskeyTask.Prompt> passkey, List<CopyTask.Prompt> copy) {

        /**
         * Takes {@code passkeySamples} of the replayed kvpress prompts {@code replayed}, spread
         * evenly over their depths, or, with {@code replayed} null, builds them from the second half
         * of the text: prompt {@code s} has {@code window - 64} context tokens, its needle at depth
         * {@code (s + 1/2) / n} and a key drawn from seed {@code s}. The copy prompts come from the
         * second half of the text (the continuation windows use the first part), after any built
         * passkey prompts: copy prompt {@code s} has the context of a continuation window and
         * repeats a span starting at position {@code 64 + 192 s} (wrapping within the first
         * quarter of the context).
         *
         * @throws IllegalArgumentException if more passkey prompts are asked for than exist, or the
         *     text is too short for the prompts
         */
        static Samples of(Tokenizer tok, int[] tokens, List<PasskeyTask.Prompt> replayed, int passkeySamples,
                          int copySamples, int window) {
            int offset = tokens.length / 2;
            List<PasskeyTask.Prompt> passkey = new ArrayList<>();
            if (replayed == null) {
                int passkeyContext = window - PASSKEY_ROOM;
                for (int s = 0; s < passkeySamples; s++) {
                    int[] filler = textAt(tok, tokens, offset, passkeyContext + PASSKEY_ROOM);
                    offset += passkeyContext;
                    String key = String.format(Locale.ROOT, "%05d", 10000 + new Random(s).nextInt(90000));
                    passkey.add(PasskeyTask.build(tok, filler, passkeyContext, (s + 0.5) / passkeySamples, key));
                }
            } else {
                if (passkeySamples > replayed.size()) {
                    throw new IllegalArgumentException(passkeySamples + " passkey prompts asked for, the prompt list has "
                            + replayed.size());
                }
                for (int i : spread(replayed.size(), passkeySamples)) {
                    passkey.add(replayed.get(i));
                }
            }
            int copyContext = ContinuationTask.contextOf(window);
            List<CopyTask.Prompt> copy = new ArrayList<>();
            for (int s = 0; s < copySamples; s++) {
                int[] text = textAt(tok, tokens, offset, copyContext);
                offset += copyContext;
                int spanStart = 64 + 192 * s % (copyContext / 4);
                copy.add(CopyTask.build(text, tok.bos(), copyContext, spanStart, COPY_SPAN));
            }
            return new Samples(List.copyOf(passkey), List.copyOf(copy));
        }

        /** Returns {@code k} indices of {@code [0, n)} spread evenly, the first and the last included. */
        static int[] spread(int n, int k) {
            if (k <= 1) {
                return k == 1 ? new int[] {0} : new int[0];
            }
            int[] idx = new int[k];
            for (int i = 0; i < k; i++) {
                idx[i] = (int) Math.round(i * (n - 1.0) / (k - 1));
            }
            return idx;
        }

        /** Returns {@code length} tokens from the first word start at or after {@code from}. */
        static int[] textAt(Tokenizer tok, int[] tokens, int from, int length) {
            int i = from;
            while (i < tokens.length && !tok.startsWord(tokens[i])) {
                i++;
            }
            if (i + length > tokens.length) {
                throw new IllegalArgumentException("the text is too short for the prompts: they need tokens up to "
                        + (i + length) + " but it has " + tokens.length + "; ask for fewer");
            }
            return Arrays.copyOfRange(tokens, i, i + length);
        }
    }

    /** Runs the continuation, passkey and copy tasks for the full cache and every (policy, ratio) of {@code o}. */
    static List<ResultRow> evaluate(EvalOptions o, EvalModel eval, int[] tokens, Samples samples) {
        List<String> names = new ArrayList<>(List.of(PolicyRegistry.FULL));
        List<SharedPrefill.Config> configs = new ArrayList<>(List.of(
                new SharedPrefill.Config(PolicyRegistry.create(PolicyRegistry.FULL), 0)));
        for (String policy : o.policies()) {
            if (!policy.equals(PolicyRegistry.FULL)) {
                // One recipe for all ratios: the prefill forks one cache per ratio from one prefill.
                CacheRecipe recipe = PolicyRegistry.create(policy);
                for (double ratio : ratios(o, recipe)) {
                    names.add(policy);
                    configs.add(new SharedPrefill.Config(recipe, ratio));
                }
            }
        }
        int n = configs.size();
        Tally[] tally = new Tally[n];
        for (int c = 0; c < n; c++) {
            tally[c] = new Tally(o.windows());
        }
        ContinuationTask continuation = new ContinuationTask(eval);
        for (int w = 0; w < o.windows(); w++) {
            List<ContinuationTask.Result> r = continuation.runAll(ContinuationTask.window(tokens, o.start(), w, eval.window()),
                    configs, cache -> { });
            for (int c = 0; c < n; c++) {
                tally[c].add(w, r.get(c));
            }
        }
        PasskeyTask passkeyTask = new PasskeyTask(eval);
        for (PasskeyTask.Prompt p : samples.passkey()) {
            List<PasskeyTask.Result> r = passkeyTask.runAll(p, configs);
            for (int c = 0; c < n; c++) {
                tally[c].add(r.get(c));
            }
        }
        CopyTask copyTask = new CopyTask(eval);
        for (CopyTask.Prompt p : samples.copy()) {
            List<CopyTask.Result> r = copyTask.runAll(p, configs);
            for (int c = 0; c < n; c++) {
                tally[c].add(r.get(c));
            }
        }
        List<ResultRow> rows = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            double ratio = configs.get(c).ratio();
            rows.add(tally[c].row(names.get(c), ratio, ContinuationTask.kept(ContinuationTask.contextOf(eval.window()), ratio),
                    tally[0].nll()));
        }
        return rows;
    }

    /** Returns the tokens the model runs for {@code configs} configurations (progress). */
    static long work(EvalOptions o, Samples samples, int configs, int window) {
        long passes = (configs + SharedPrefill.MAX_GROUP - 1) / SharedPrefill.MAX_GROUP;
        int context = ContinuationTask.contextOf(window);
        long sum = o.windows() * (passes * context + configs * (window - context - 1L));
        for (PasskeyTask.Prompt p : samples.passkey()) {
            sum += passes * p.context().length + configs * (p.question().length + p.answer().length - 1L);
        }
        for (CopyTask.Prompt p : samples.copy()) {
            sum += passes * p.context().length + configs * (p.span().length - 1L);
        }
        return sum;
    }

    /** Returns the ratios {@code recipe} runs at: all of them, or 0 alone for a sharing plan. */
    private static double[] ratios(EvalOptions o, CacheRecipe recipe) {
        return recipe.compresses() ? o.ratios() : new double[] {0.0};
    }
}
