package io.github.kvcache4j.eval;

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
 * passkey retrieval and copy retrieval — as a table on standard output, {@code results.csv},
 * {@code windows.csv} (per-window NLL) and {@code nll-vs-kv-memory.png} in the output directory.
 * The full cache always runs as the baseline. {@code --help} lists the options; exit code 2 means
 * a bad option, 1 an unreadable model or text.
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
                samples = Samples.of(tok, tokens, o.passkeySamples(), o.copySamples(), window);
            } catch (IllegalArgumentException e) {
                return usageError(err, "--passkey/--copy: " + e.getMessage());
            }
            out.printf(Locale.ROOT,
                    "model %s (%s), text %s: %d tokens; %d windows of %d from token %d; cache %s; %d threads%n",
                    o.model().getFileName(), model.config(), o.text().getFileName(), tokens.length, o.windows(),
                    window, o.start(), o.dtype(), o.threads());
            List<ResultRow> rows = evaluate(o, new EvalModel(model, tok, o.dtype(), n -> { }, window), tokens, samples,
                    err);
            String table = ResultTable.format(rows);
            out.print(table);
            ResultTable.write(o.out().resolve("results.csv"), ResultTable.csv(rows));
            ResultTable.write(o.out().resolve("windows.csv"), ResultTable.windowsCsv(rows, o.start(), window));
            ResultTable.write(o.out().resolve("results.txt"), table);
            NllPlot.write(rows, "Continuation NLL vs KV memory: " + o.model().getFileName() + ", "
                    + o.text().getFileName() + ", " + o.windows() + " windows", o.out().resolve("nll-vs-kv-memory.png"));
            out.printf(Locale.ROOT, "wrote %s/{results.csv,windows.csv,results.txt,nll-vs-kv-memory.png}; total %s%n",
                    o.out(), Progress.duration((System.nanoTime() - t0) / 1e9));
            return 0;
        } catch (IOException | IllegalArgumentException e) {
            // A model file of an unsupported architecture or tokenizer is rejected by name, not a trace.
            err.println("error: " + e.getMessage());
            return 1;
        }
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
         * Builds the prompts from the second half of the text (the continuation windows use the
         * first part): passkey prompt {@code s} has {@code window - 64} context tokens, its needle
         * at depth {@code (s + 1/2) / n} and a key drawn from seed {@code s}; copy prompt
         * {@code s} has the context of a continuation window and repeats a span starting at
         * position {@code 64 + 192 s} (wrapping within the first quarter of the context).
         */
        static Samples of(Tokenizer tok, int[] tokens, int passkeySamples, int copySamples, int window) {
            int passkeyContext = window - PASSKEY_ROOM;
            int copyContext = ContinuationTask.contextOf(window);
            int offset = tokens.length / 2;
            List<PasskeyTask.Prompt> passkey = new ArrayList<>();
            for (int s = 0; s < passkeySamples; s++) {
                int[] filler = textAt(tok, tokens, offset, passkeyContext + PASSKEY_ROOM);
                offset += passkeyContext;
                String key = String.format(Locale.ROOT, "%05d", 10000 + new Random(s).nextInt(90000));
                passkey.add(PasskeyTask.build(tok, filler, passkeyContext, (s + 0.5) / passkeySamples, key));
            }
            List<CopyTask.Prompt> copy = new ArrayList<>();
            for (int s = 0; s < copySamples; s++) {
                int[] text = textAt(tok, tokens, offset, copyContext);
                offset += copyContext;
                int spanStart = 64 + 192 * s % (copyContext / 4);
                copy.add(CopyTask.build(text, tok.bos(), copyContext, spanStart, COPY_SPAN));
            }
            return new Samples(List.copyOf(passkey), List.copyOf(copy));
        }

        /** Returns {@code length} tokens from the first word start at or after {@code from}. */
        private static int[] textAt(Tokenizer tok, int[] tokens, int from, int length) {
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

        /** Returns the tokens one (policy, ratio) runs through the model for these prompts. */
        long work() {
            long sum = 0;
            for (PasskeyTask.Prompt p : passkey) {
                sum += p.context().length + p.question().length + p.answer().length - 1;
            }
            for (CopyTask.Prompt p : copy) {
                sum += p.context().length + p.span().length - 1;
            }
            return sum;
        }
    }

    private static List<ResultRow> evaluate(EvalOptions o, EvalModel quiet, int[] tokens, Samples samples,
                                            PrintStream err) {
        int window = quiet.window();
        List<String> policies = new ArrayList<>(o.policies());
        policies.remove(PolicyRegistry.FULL);
        int configs = 1;
        for (String policy : policies) {
            configs += ratios(o, policy).length;
        }
        long perConfig = (long) o.windows() * (window - 1) + samples.work();
        Progress progress = new Progress(err, configs * perConfig);
        EvalModel eval = new EvalModel(quiet.model(), quiet.tokenizer(), quiet.dtype(), progress::advance, window);
        int[][] windows = new int[o.windows()][];
        for (int w = 0; w < windows.length; w++) {
            windows[w] = ContinuationTask.window(tokens, o.start(), w, window);
        }
        warmUp(quiet, windows[0]);
        List<ResultRow> rows = new ArrayList<>();
        ResultRow full = evaluate(eval, PolicyRegistry.FULL, 0.0, windows, samples, Double.NaN);
        rows.add(full);
        for (String policy : policies) {
            for (double ratio : ratios(o, policy)) {
                rows.add(evaluate(eval, policy, ratio, windows, samples, full.nll()));
            }
        }
        progress.finish();
        return rows;
    }

    /** Returns the ratios {@code policy} runs at: all of them, or 0 alone for a sharing plan. */
    private static double[] ratios(EvalOptions o, String policy) {
        return PolicyRegistry.create(policy).compresses() ? o.ratios() : new double[] {0.0};
    }

    /**
     * Runs part of a window once, unscored, so the JIT has compiled the kernels before the first
     * timed run (otherwise the first configuration's tokens/s would include compilation).
     */
    private static void warmUp(EvalModel eval, int[] window) {
        int context = ContinuationTask.contextOf(window.length);
        try (var cache = eval.newCache(PolicyRegistry.create(PolicyRegistry.FULL), window.length)) {
            eval.prefill(cache, window, 0, context, 0);
            eval.score(cache, Arrays.copyOfRange(window, context, window.length - 1), context);
        }
    }

    private static ResultRow evaluate(EvalModel eval, String policyName, double ratio, int[][] windows,
                                      Samples samples, double fullNll) {
        CacheRecipe policy = PolicyRegistry.create(policyName);
        ContinuationTask continuation = new ContinuationTask(eval);
        double[] windowNll = new double[windows.length];
        double bytes = 0;
        double bytesEnd = 0;
        double top1 = 0;
        long tokens = 0;
        long nanos = 0;
        for (int w = 0; w < windows.length; w++) {
            ContinuationTask.Result r = continuation.run(windows[w], policy, ratio);
            windowNll[w] = r.meanNll();
            bytes += r.bytesAfterCompress();
            bytesEnd += r.bytesAtEnd();
            top1 += r.top1();
            tokens += r.tokens();
            nanos += r.nanos();
        }
        double nll = Arrays.stream(windowNll).average().orElse(Double.NaN);
        PasskeyTask passkeyTask = new PasskeyTask(eval);
        double correct = 0;
        double keyResident = 0;
        for (PasskeyTask.Prompt p : samples.passkey()) {
            PasskeyTask.Result r = passkeyTask.run(p, policy, ratio);
            correct += r.correct() ? 1 : 0;
            keyResident += r.keyResident();
        }
        CopyTask copyTask = new CopyTask(eval);
        double copyNll = 0;
        double copyTop1 = 0;
        double spanResident = 0;
        for (CopyTask.Prompt p : samples.copy()) {
            CopyTask.Result r = copyTask.run(p, policy, ratio);
            copyNll += r.meanNll();
            copyTop1 += r.top1();
            spanResident += r.spanResident();
        }
        int np = samples.passkey().size();
        int nc = samples.copy().size();
        int n = windows.length;
        return new ResultRow(policyName, ratio, ContinuationTask.kept(ContinuationTask.contextOf(eval.window()), ratio),
                bytes / n, bytesEnd / n, nll, Double.isNaN(fullNll) ? 0.0 : nll - fullNll, top1 / n, windowNll,
                correct / np, keyResident / np, copyNll / nc, copyTop1 / nc, spanResident / nc,
                tokens / (nanos / 1e9));
    }
}
