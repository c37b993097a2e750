package io.github.kvcache4j.bench;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/**
 * Turns a JMH JSON result file ({@code -rf json -rff target/jmh.json}) into a Markdown table and a
 * PNG plot of bandwidth against resident tokens.
 *
 * <p>Per benchmark and parameter set the table gives the median (the primary metric's 50th
 * percentile, else its score), the score ± error, and, where the bytes read per call are known,
 * GB/s: decode attention reads {@code tokens × 8 × 128 × 2 × bytes(dtype)} bytes (F32: 4, F16 and
 * BF16: 2), the streaming read {@code tokens × 8 × 128 × 2 × bytesPerElement}. It relates each
 * attention result to the streaming-read ceiling at the same tokens and element size (fraction of
 * its GB/s) and to the Jlama and scalar-loop peers at the same tokens and dtype (their median time
 * over this one's: above 1 is faster than the peer).
 *
 * <p>Usage: {@code BenchmarkReport <jmh.json> [--md <out.md>] [--png <out.png>]}; the table always
 * goes to standard output as well. The JSON is read with a small built-in parser.
 */
public final class BenchmarkReport {

    private static final String STREAMING = "StreamingRead";
    private static final String JLAMA = "JlamaAttention";
    private static final String SCALAR = "ScalarLoopAttention";

    private BenchmarkReport() {
    }

    /** One JMH result: benchmark label, parameters and the primary metric. */
    public record Result(String benchmark, Map<String, String> params, double median, double score,
            double error, String unit) {

        /** Returns the median time of one call in seconds, or NaN for a unit that is not a time. */
        public double secondsPerOp() {
            String[] parts = unit.split("/");
            if (parts.length != 2) {
                return Double.NaN;
            }
            if (parts[1].equals("op")) {
                return median * seconds(parts[0]);
            }
            if (parts[0].equals("ops")) {
                return seconds(parts[1]) / median;
            }
            return Double.NaN;
        }

        /** Returns the bytes one call reads, or 0 when unknown. */
        public long bytesRead() {
            String tokens = params.get("tokens");
            if (tokens == null) {
                return 0;
            }
            int element = elementBytes();
            return element == 0 ? 0 : Long.parseLong(tokens) * AttentionData.KV_DIM * 2L * element;
        }

        /** Returns the bytes per stored element from {@code bytesPerElement} or {@code dtype}, else 0. */
        public int elementBytes() {
            String bpe = params.get("bytesPerElement");
            if (bpe != null) {
                return Integer.parseInt(bpe);
            }
            String dtype = params.get("dtype");
            if (dtype == null) {
                return 0;
            }
            return switch (dtype) {
                case "F32" -> 4;
                case "F16", "BF16" -> 2;
                default -> 0;
            };
        }

        /** Returns the bandwidth in GB/s (10^9 bytes), or NaN when the bytes are unknown. */
        public double gbPerSecond() {
            long bytes = bytesRead();
            return bytes == 0 ? Double.NaN : bytes / secondsPerOp() / 1e9;
        }

        /** Returns the parameters as {@code k=v} pairs joined by spaces. */
        public String paramText() {
            StringBuilder sb = new StringBuilder();
            params.forEach((k, v) -> sb.append(sb.isEmpty() ? "" : " ").append(k).append('=').append(v));
            return sb.toString();
        }

        /** Returns the series name of the plot: benchmark, dtype (or element bytes) and threads. */
        public String series() {
            String name = benchmark;
            if (params.containsKey("dtype")) {
                name += " " + params.get("dtype");
            } else if (params.containsKey("bytesPerElement")) {
                name += " " + params.get("bytesPerElement") + " B";
            }
            if (params.containsKey("threads")) {
                name += " ×" + params.get("threads");
            }
            return name;
        }
    }

    private static double seconds(String unit) {
        return switch (unit) {
            case "s" -> 1;
            case "ms" -> 1e-3;
            case "us" -> 1e-6;
            case "ns" -> 1e-9;
            case "min" -> 60;
            default -> Double.NaN;
        };
    }

    /** Reads a JMH JSON file, writes the table (and plot) and prints the table. */
    public static void main(String[] args) throws IOException {
        if (args.length == 0 || args[0].startsWith("-")) {
            System.err.println("usage: BenchmarkReport <jmh.json> [--md <out.md>] [--png <out.png>]");
            System.exit(2);
        }
        Path json = Path.of(args[0]);
        Path md = null;
        Path png = null;
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--md" -> md = Path.of(args[i + 1]);
                case "--png" -> png = Path.of(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        List<Result> results = parse(Files.readString(json, StandardCharsets.UTF_8));
        String table = markdown(results);
        System.out.print(table);
        if (md != null) {
            Files.writeString(md, table, StandardCharsets.UTF_8);
        }
        if (png != null) {
            plot(results, png);
        }
    }

    /** Parses the results of a JMH JSON document. */
    @SuppressWarnings("unchecked")
    public static List<Result> parse(String json) {
        List<Result> out = new ArrayList<>();
        for (Object o : (List<Object>) new Json(json).document()) {
            Map<String, Object> entry = (Map<String, Object>) o;
            Map<String, String> params = new LinkedHashMap<>();
            Object p = entry.get("params");
            if (p != null) {
                ((Map<String, Object>) p).forEach((k, v) -> params.put(k, String.valueOf(v)));
            }
            Map<String, Object> metric = (Map<String, Object>) entry.get("primaryMetric");
            double score = number(metric.get("score"));
            Object percentiles = metric.get("scorePercentiles");
            Object median = percentiles == null ? null : ((Map<String, Object>) percentiles).get("50.0");
            out.add(new Result(label((String) entry.get("benchmark")), params,
                    median == null ? score : number(median), score, number(metric.get("scoreError")),
                    (String) metric.get("scoreUnit")));
        }
        return out;
    }

    private static double number(Object o) {
        return o instanceof Double d ? d : Double.NaN; // JMH writes "NaN" as a string
    }

    /** Returns {@code Class.method} without the package and the class's "Benchmark" suffix; the
     * method is dropped when it is the only one worth naming ({@code attend}, {@code read}). */
    static String label(String benchmark) {
        String[] parts = benchmark.split("\\.");
        String cls = parts.length >= 2 ? parts[parts.length - 2] : benchmark;
        String method = parts[parts.length - 1];
        cls = cls.endsWith("Benchmark") ? cls.substring(0, cls.length() - "Benchmark".length()) : cls;
        return method.equals("attend") || method.equals("read") ? cls : cls + "." + method;
    }

    /** Returns the Markdown table of {@code results}. */
    public static String markdown(List<Result> results) {
        StringBuilder sb = new StringBuilder();
        sb.append("| Benchmark | Params | Median | Score ± error | Unit | GB/s | of ceiling | vs Jlama | vs scalar loop |\n");
        sb.append("|---|---|---:|---:|---|---:|---:|---:|---:|\n");
        for (Result r : results) {
            Result ceiling = find(results, STREAMING, r.params.get("tokens"), r.elementBytes(), null);
            Result jlama = find(results, JLAMA, r.params.get("tokens"), 0, r.params.get("dtype"));
            Result scalar = find(results, SCALAR, r.params.get("tokens"), 0, r.params.get("dtype"));
            boolean attention = r.params.containsKey("dtype") && r.bytesRead() > 0;
            sb.append("| ").append(r.benchmark).append(" | ").append(r.paramText())
                    .append(" | ").append(fmt(r.median)).append(" | ").append(fmt(r.score))
                    .append(Double.isNaN(r.error) ? "" : " ± " + fmt(r.error)).append(" | ").append(r.unit)
                    .append(" | ").append(fmt(r.gbPerSecond()))
                    .append(" | ").append(attention && ceiling != null
                            ? percent(r.gbPerSecond() / ceiling.gbPerSecond()) : "")
                    .append(" | ").append(attention && jlama != null && jlama != r
                            ? times(jlama.secondsPerOp() / r.secondsPerOp()) : "")
                    .append(" | ").append(attention && scalar != null && scalar != r
                            ? times(scalar.secondsPerOp() / r.secondsPerOp()) : "")
                    .append(" |\n");
        }
        return sb.toString();
    }

    private static Result find(List<Result> results, String benchmark, String tokens, int elementBytes,
            String dtype) {
        if (tokens == null) {
            return null;
        }
        for (Result r : results) {
            if (r.benchmark.equals(benchmark) && tokens.equals(r.params.get("tokens"))
                    && (elementBytes == 0 || r.elementBytes() == elementBytes)
                    && (dtype == null || dtype.equals(r.params.get("dtype")))) {
                return r;
            }
        }
        return null;
    }

    private static String fmt(double v) {
        if (Double.isNaN(v)) {
            return "";
        }
        double a = Math.abs(v);
        return String.format(Locale.ROOT, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3g", v);
    }

    private static String percent(double v) {
        return Double.isNaN(v) ? "" : String.format(Locale.ROOT, "%.0f%%", v * 100);
    }

    private static String times(double v) {
        return Double.isNaN(v) ? "" : String.format(Locale.ROOT, "%.2f×", v);
    }

    /** Writes a PNG line plot of GB/s against tokens, one series per benchmark/dtype, the
     * streaming-read ceilings dashed. */
    public static void plot(List<Result> results, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Map<String, XYSeries> series = new TreeMap<>();
        for (Result r : results) {
            double gbps = r.gbPerSecond();
            if (!Double.isNaN(gbps) && !Double.isInfinite(gbps)) {
                series.computeIfAbsent(r.series(), XYSeries::new)
                        .add(Double.parseDouble(r.params.get("tokens")), gbps);
            }
        }
        XYSeriesCollection data = new XYSeriesCollection();
        series.values().forEach(data::addSeries);
        JFreeChart chart = ChartFactory.createXYLineChart("Decode attention bandwidth (one thread unless ×n)",
                "resident tokens", "GB/s", data, PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        LogAxis tokens = new LogAxis("resident tokens");
        tokens.setBase(2);
        plot.setDomainAxis(tokens);
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(true, true);
        BasicStroke dashed = new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f,
                new float[] {8f, 6f}, 0f);
        for (int i = 0; i < data.getSeriesCount(); i++) {
            boolean ceiling = data.getSeriesKey(i).toString().startsWith(STREAMING);
            renderer.setSeriesStroke(i, ceiling ? dashed : new BasicStroke(2f));
            if (ceiling) {
                renderer.setSeriesPaint(i, Color.GRAY);
            }
        }
        plot.setRenderer(renderer);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        ChartUtils.saveChartAsPNG(png.toFile(), chart, 1000, 650);
    }

    /** A minimal JSON reader: objects become maps, arrays lists, numbers doubles. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        /** Parses the whole input as one value. */
        Object document() {
            Object v = value();
            skip();
            if (i != s.length()) {
                throw error("trailing characters");
            }
            return v;
        }

        private Object value() {
            skip();
            if (i >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{' -> {
                    Map<String, Object> map = new LinkedHashMap<>();
                    i++;
                    skip();
                    if (peek('}')) {
                        return map;
                    }
                    do {
                        skip();
                        String key = string();
                        skip();
                        expect(':');
                        map.put(key, value());
                        skip();
                    } while (peek(','));
                    expect('}');
                    return map;
                }
                case '[' -> {
                    List<Object> list = new ArrayList<>();
                    i++;
                    skip();
                    if (peek(']')) {
                        return list;
                    }
                    do {
                        list.add(value());
                        skip();
                    } while (peek(','));
                    expect(']');
                    return list;
                }
                case '"' -> {
                    return string();
                }
                default -> {
                    return literal();
                }
            }
        }

        private Object literal() {
            int start = i;
            while (i < s.length() && "+-.0123456789eEtruefalsn".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            String word = s.substring(start, i);
            return switch (word) {
                case "true" -> Boolean.TRUE;
                case "false" -> Boolean.FALSE;
                case "null" -> null;
                default -> {
                    try {
                        yield Double.parseDouble(word);
                    } catch (NumberFormatException e) {
                        throw error("bad literal '" + word + "'");
                    }
                }
            };
        }

        private String string() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                if (i >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(i++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n' -> sb.append('\n');
                    case 't' -> sb.append('\t');
                    case 'r' -> sb.append('\r');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'u' -> {
                        sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> sb.append(e);
                }
            }
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private IllegalArgumentException error(String message) {
            return new IllegalArgumentException("JSON: " + message + " at offset " + i);
        }
    }
}
