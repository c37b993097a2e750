package io.github.kvcache4j.eval;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Formats the report rows as a text table and as CSV. */
final class ResultTable {

    private static final String[] CSV_HEADER = {"policy", "ratio", "kept_tokens", "kv_bytes", "held_bytes", "kv_bytes_end",
        "kv_bytes_peak",
        "mean_nll", "perplexity", "delta_nll", "top1", "passkey_acc", "key_resident", "copy_nll", "copy_top1",
        "span_resident", "tokens_per_s"};

    private ResultTable() {
    }

    /** Returns the rows as an aligned text table (KV memory in MiB). */
    static String format(List<ResultRow> rows) {
        List<String[]> cells = new ArrayList<>();
        cells.add(new String[] {"policy", "ratio", "kept", "KV MiB", "held MiB", "NLL", "PPL", "dNLL", "passkey",
            "key kept", "copy NLL", "copy top1", "tok/s"});
        for (ResultRow r : rows) {
            cells.add(new String[] {r.policy(), f("%.2f", r.ratio()), Integer.toString(r.kept()),
                f("%.2f", r.kvBytes() / (1 << 20)), f("%.2f", r.heldBytes() / (1 << 20)), f("%.4f", r.nll()), f("%.2f", r.perplexity()),
                f("%+.4f", r.deltaNll()), f("%.2f", r.passkey()), f("%.2f", r.keyResident()),
                f("%.3f", r.copyNll()), f("%.3f", r.copyTop1()), f("%.0f", r.tokensPerSecond())});
        }
        int[] width = new int[cells.get(0).length];
        for (String[] row : cells) {
            for (int c = 0; c < row.length; c++) {
                width[c] = Math.max(width[c], row[c].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < cells.size(); i++) {
            String[] row = cells.get(i);
            for (int c = 0; c < row.length; c++) {
                String cell = c == 0 ? String.format("%-" + width[c] + "s", row[c])
                        : String.format("%" + width[c] + "s", row[c]);
                sb.append(c == 0 ? "" : "  ").append(cell);
            }
            sb.append('\n');
            if (i == 0) {
                sb.append("-".repeat(sb.length() - 1)).append('\n');
            }
        }
        return sb.toString();
    }

    /** Returns the rows as CSV (one header line; empty cells for tasks that did not run). */
    static String csv(List<ResultRow> rows) {
        StringBuilder sb = new StringBuilder(String.join(",", CSV_HEADER)).append('\n');
        for (ResultRow r : rows) {
            sb.append(String.join(",", r.policy(), num(r.ratio()), Integer.toString(r.kept()),
                    num(Math.rint(r.kvBytes())), num(Math.rint(r.heldBytes())), num(Math.rint(r.kvBytesEnd())), Long.toString(r.kvBytesPeak()), num(r.nll()),
                    num(r.perplexity()), num(r.deltaNll()), num(r.top1()), num(r.passkey()),
                    num(r.keyResident()), num(r.copyNll()), num(r.copyTop1()), num(r.spanResident()),
                    num(Math.rint(r.tokensPerSecond())))).append('\n');
        }
        return sb.toString();
    }

    /** Returns the per-window NLLs of windows of {@code window} tokens as CSV: policy, ratio, window, window start, NLL. */
    static String windowsCsv(List<ResultRow> rows, int start, int window) {
        StringBuilder sb = new StringBuilder("policy,ratio,window,window_start,nll\n");
        for (ResultRow r : rows) {
            for (int w = 0; w < r.windowNll().length; w++) {
                sb.append(String.join(",", r.policy(), num(r.ratio()), Integer.toString(w),
                        Integer.toString(start + w * window), num(r.windowNll()[w]))).append('\n');
            }
        }
        return sb.toString();
    }

    /** Writes {@code content} to {@code file}, creating its directory. */
    static void write(Path file, String content) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, content);
    }

    private static String f(String format, double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, format, v);
    }

    private static String num(double v) {
        if (Double.isNaN(v)) {
            return "";
        }
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return String.format(Locale.ROOT, "%.6g", v).replaceAll("(\\.\\d*?)0+$", "$1").replaceAll("\\.$", "");
    }
}
