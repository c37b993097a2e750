package io.github.kvcache4j.eval;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The storage-format sweep ({@code --dtypes}): the evaluator's tasks for every policy and ratio in
 * each storage format, so that eviction and quantization are compared on one model and one set of
 * prompts. Quality is reported against KV bytes per context token ({@link KvFormatReport},
 * {@link KvFormatPlot}).
 */
final class KvFormatSweep {

    private KvFormatSweep() {
    }

    /** One (format, policy, ratio) result. */
    record Row(KvFormat format, ResultRow result) {
    }

    /**
     * Runs the tasks of {@code o} in each of {@code o.kvFormats()} and writes the report into
     * {@code o.out()}, printing the table on {@code out}.
     */
    static void run(EvalOptions o, int window, LlamaModel model, Tokenizer tok, FeatureMap learned, int[] tokens,
                    Evaluator.Samples samples, Progress progress, PrintStream out) throws IOException {
        List<Row> rows = new ArrayList<>();
        for (KvFormat format : o.kvFormats()) {
            EvalModel eval = new EvalModel(model, tok, format, progress::advance, learned, window);
            for (ResultRow r : Evaluator.evaluate(o, eval, tokens, samples)) {
                rows.add(new Row(format, r));
            }
        }
        progress.finish();
        int context = ContinuationTask.contextOf(window);
        String table = KvFormatReport.markdown(rows, context);
        out.print(table);
        ResultTable.write(o.out().resolve("kv-formats.md"), table);
        ResultTable.write(o.out().resolve("kv-formats.csv"), KvFormatReport.csv(rows, context));
        String title = o.model().getFileName() + ", " + o.windows() + " windows, " + samples.passkey().size()
                + " passkey prompts";
        KvFormatPlot.write(rows, context, false, "Continuation NLL vs KV bytes per token: " + title,
                o.out().resolve("kv-formats-nll.png"));
        KvFormatPlot.write(rows, context, true, "Passkey accuracy vs KV bytes per token: " + title,
                o.out().resolve("kv-formats-passkey.png"));
        out.println("wrote " + o.out() + "/{kv-formats.md,kv-formats.csv,kv-formats-nll.png,kv-formats-passkey.png}");
    }
}
