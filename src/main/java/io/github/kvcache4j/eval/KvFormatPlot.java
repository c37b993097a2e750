package io.github.kvcache4j.eval;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/**
 * Draws the storage-format sweep as a PNG (JFreeChart, headless AWT): continuation NLL or passkey
 * accuracy against KV bytes per context token, one set of points per format (every policy and
 * ratio), and the Pareto front across all of them as a line.
 */
final class KvFormatPlot {

    private KvFormatPlot() {
    }

    /**
     * Writes the plot of {@code rows} to {@code png}: passkey accuracy (higher is better) if
     * {@code passkey}, else NLL (lower is better), over contexts of {@code context} tokens.
     */
    static void write(List<KvFormatSweep.Row> rows, int context, boolean passkey, String title, Path png)
            throws IOException {
        System.setProperty("java.awt.headless", "true");
        Map<String, XYSeries> series = new LinkedHashMap<>();
        for (KvFormatSweep.Row row : rows) {
            series.computeIfAbsent(row.format().name(), p -> new XYSeries(p, true, true))
                    .add(KvFormatReport.bytesPerToken(row.result(), context), quality(row, passkey));
        }
        XYSeries front = new XYSeries("Pareto front", true, true);
        double best = Double.NaN;
        List<KvFormatSweep.Row> byBytes = rows.stream()
                .sorted(Comparator.comparingDouble(r -> KvFormatReport.bytesPerToken(r.result(), context))).toList();
        for (KvFormatSweep.Row row : byBytes) {
            double q = quality(row, passkey);
            // Higher is better for passkey, lower for NLL; a point joins the front when it beats every cheaper one.
            if (Double.isNaN(best) || (passkey ? q > best : q < best)) {
                best = q;
                front.add(KvFormatReport.bytesPerToken(row.result(), context), q);
            }
        }
        XYSeriesCollection data = new XYSeriesCollection();
        series.values().forEach(data::addSeries);
        data.addSeries(front);
        NumberAxis x = new NumberAxis("KV bytes per context token after compressing the context");
        NumberAxis y = new NumberAxis(passkey ? "passkey accuracy" : "mean continuation NLL (nats/token)");
        y.setAutoRangeIncludesZero(false);
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(false, true);
        int last = data.getSeriesCount() - 1;
        renderer.setSeriesLinesVisible(last, true);
        renderer.setSeriesShapesVisible(last, false);
        renderer.setSeriesStroke(last, new BasicStroke(1.5f));
        renderer.setSeriesPaint(last, Color.DARK_GRAY);
        NllPlot.save(new XYPlot(data, x, y, renderer), title, png);
    }

    private static double quality(KvFormatSweep.Row row, boolean passkey) {
        return passkey ? row.result().passkey() : row.result().nll();
    }
}
