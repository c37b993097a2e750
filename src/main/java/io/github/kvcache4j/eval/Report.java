package io.github.kvcache4j.eval;

import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;

/**
 * Writes the evaluator's results: the table on standard output and in {@code results.txt},
 * {@code results.csv}, {@code windows.csv}, the NLL plot, and when they ran the heatmaps
 * ({@code heatmap.csv}, {@code heatmap-<policy>.png}, {@code needle-heatmaps.png}) and the
 * decode-time comparison ({@code decode-time.md}).
 */
final class Report {

    private Report() {
    }

    /**
     * Writes every output of a run on windows of {@code window} tokens into {@code o.out()} and
     * prints the tables on {@code out}; {@code heatmap} is the grid the maps were run on.
     */
    static void write(EvalOptions o, int window, List<ResultRow> rows, NeedleHeatmap.Grid heatmap,
                      List<NeedleHeatmap.Map> maps,
                      List<DecodeTimeRun.Row> decodeTime, PrintStream out) throws IOException {
        String model = String.valueOf(o.model().getFileName());
        String table = ResultTable.format(rows);
        out.print(table);
        ResultTable.write(o.out().resolve("results.csv"), ResultTable.csv(rows));
        ResultTable.write(o.out().resolve("windows.csv"), ResultTable.windowsCsv(rows, o.start(), window));
        ResultTable.write(o.out().resolve("results.txt"), table);
        NllPlot.write(rows, "Continuation NLL vs KV memory: " + model + ", " + o.text().getFileName() + ", "
                + o.windows() + " windows", o.out().resolve("nll-vs-kv-memory.png"));
        String written = "results.csv,windows.csv,results.txt,nll-vs-kv-memory.png";
        if (!maps.isEmpty()) {
            ResultTable.write(o.out().resolve("heatmap.csv"), NeedleHeatmap.csv(heatmap, maps));
            StringBuilder summary = new StringBuilder("needle in a haystack, passkey accuracy at ratio "
                    + o.heatmapRatio() + ":");
            for (NeedleHeatmap.Map m : maps) {
                HeatmapPlot.write(heatmap, m, model,
                        o.out().resolve("heatmap-" + m.policy().replace('+', '-') + ".png"));
                summary.append(String.format(Locale.ROOT, " %s %.2f", m.policy(), m.accuracy()));
            }
            HeatmapPlot.writeSummary(heatmap, maps, "Needle in a haystack: " + model + ", ratio "
                    + o.heatmapRatio(), o.out().resolve("needle-heatmaps.png"));
            out.println(summary);
            written += ",heatmap.csv,needle-heatmaps.png,heatmap-*.png";
        }
        if (!decodeTime.isEmpty()) {
            String comparison = DecodeTimeRun.format(decodeTime);
            out.print("decode-time memory bound (" + o.decodeTimeWindows() + " windows) against prefill-then-compress:\n"
                    + comparison);
            ResultTable.write(o.out().resolve("decode-time.md"), comparison);
            written += ",decode-time.md";
        }
        out.println("wrote " + o.out() + "/{" + written + "}");
    }
}
