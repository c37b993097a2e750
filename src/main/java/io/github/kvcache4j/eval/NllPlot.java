package io.github.kvcache4j.eval;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/**
 * Draws mean continuation NLL against KV memory, one line per policy, as a PNG (JFreeChart,
 * headless AWT).
 */
final class NllPlot {

    private static final int WIDTH = 900;
    private static final int HEIGHT = 600;

    private NllPlot() {
    }

    /** Writes the plot of {@code rows} to {@code png}; {@code title} names the model and data. */
    static void write(List<ResultRow> rows, String title, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Map<String, XYSeries> series = new LinkedHashMap<>();
        for (ResultRow r : rows) {
            // XYSeries(key, autoSort, allowDuplicateXValues): sorted by memory, as the line is drawn.
            series.computeIfAbsent(r.policy(), p -> new XYSeries(p, true, true))
                    .add(r.kvBytes() / (1 << 20), r.nll());
        }
        XYSeriesCollection data = new XYSeriesCollection();
        series.values().forEach(data::addSeries);
        NumberAxis x = new NumberAxis("KV memory after compressing the context (MiB)");
        NumberAxis y = new NumberAxis("mean continuation NLL (nats/token)");
        y.setAutoRangeIncludesZero(false);
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(true, true);
        for (int i = 0; i < data.getSeriesCount(); i++) {
            renderer.setSeriesStroke(i, new BasicStroke(2f));
        }
        save(new XYPlot(data, x, y, renderer), title, png);
    }

    /** Writes {@code plot} under {@code title} to {@code png} in the evaluator's plot style: white, grey grid, legend. */
    static void save(XYPlot plot, String title, Path png) throws IOException {
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        JFreeChart chart = new JFreeChart(title, JFreeChart.DEFAULT_TITLE_FONT, plot, true);
        chart.setBackgroundPaint(Color.WHITE);
        Files.createDirectories(png.toAbsolutePath().getParent());
        ChartUtils.saveChartAsPNG(png.toFile(), chart, WIDTH, HEIGHT);
    }
}
