package io.github.kvcache4j.eval;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Runs the decode-time memory bound ({@link DecodeTimeTask}) for every compressing row of a
 * kvpress-protocol run, at the budgets its ratios keep (continuation: {@code kept(1536, ratio)},
 * passkey: {@code kept(2000, ratio)}), and puts the two protocols side by side with their peak KV
 * bytes.
 */
final class DecodeTimeRun {

    /**
     * One row of the comparison.
     *
     * @param kvpress the kvpress-protocol row of the same policy and ratio
     * @param budget tokens per (layer, kv-head) of the continuation's cache
     * @param nll mean continuation NLL under the budget
     * @param passkey passkey accuracy under the budget (NaN without prompts)
     * @param peakBytes the most KV bytes resident at any point of a window
     */
    record Row(ResultRow kvpress, int budget, double nll, double passkey, long peakBytes) {
    }

    private DecodeTimeRun() {
    }

    /**
     * Runs the protocol on the first {@code windows} windows and every passkey prompt for each
     * compressing row of {@code rows} (the full cache, sharing plans and budgets shared among heads
     * are skipped).
     */
    static List<Row> run(EvalModel eval, List<ResultRow> rows, int[][] windows, List<PasskeyTask.Prompt> passkey) {
        DecodeTimeTask task = new DecodeTimeTask(eval);
        List<Row> out = new ArrayList<>();
        for (ResultRow r : rows) {
            if (r.ratio() == 0) {
                continue;
            }
            CacheRecipe recipe = PolicyRegistry.create(r.policy());
            if (recipe.allocation() != null) {
                // A budget shared among heads is a rule of compress; the decode-time bound is per buffer.
                continue;
            }
            int budget = ContinuationTask.kept(ContinuationTask.contextOf(eval.window()), r.ratio());
            double nll = 0;
            long peak = 0;
            for (int[] window : windows) {
                DecodeTimeTask.Result w = task.window(window, recipe, budget);
                nll += w.meanNll();
                peak = Math.max(peak, w.peakBytes());
            }
            int correct = 0;
            for (PasskeyTask.Prompt p : passkey) {
                correct += task.passkey(p, recipe, ContinuationTask.kept(p.context().length, r.ratio())).correct() ? 1 : 0;
            }
            out.add(new Row(r, budget, nll / windows.length, (double) correct / passkey.size(), peak));
        }
        return out;
    }

    /** Returns the tokens the model runs for {@code configs} rows on windows of {@code window} tokens (progress). */
    static long work(int configs, int windows, int window, List<PasskeyTask.Prompt> passkey) {
        long perConfig = windows * (window - 1L);
        for (PasskeyTask.Prompt p : passkey) {
            perConfig += p.context().length + p.question().length + p.answer().length - 1;
        }
        return configs * perConfig;
    }

    /** Formats the comparison as a Markdown table (KV memory in MiB). */
    static String format(List<Row> rows) {
        StringBuilder sb = new StringBuilder("| policy | ratio | budget | NLL compress | NLL decode-time | passkey compress"
                + " | passkey decode-time | peak MiB compress | peak MiB decode-time |\n"
                + "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (Row r : rows) {
            ResultRow k = r.kvpress();
            sb.append(String.format(Locale.ROOT, "| %s | %.2f | %d | %.4f | %.4f | %.2f | %.2f | %.2f | %.2f |%n",
                    k.policy(), k.ratio(), r.budget(), k.nll(), r.nll(), k.passkey(), r.passkey(),
                    k.kvBytesPeak() / 1048576.0, r.peakBytes() / 1048576.0));
        }
        return sb.toString();
    }
}
