package io.github.kvcache4j.eval;

import java.util.List;
import java.util.Locale;

/**
 * The table of the storage-format sweep, as Markdown and CSV: per (format, policy, ratio) the KV
 * bytes per context token, continuation NLL, its difference to the first format's full cache,
 * passkey accuracy and copy NLL.
 */
final class KvFormatReport {

    private KvFormatReport() {
    }

    /** Returns the KV bytes per token of the context (of {@code context} tokens) that {@code r} kept resident. */
    static double bytesPerToken(ResultRow r, int context) {
        return r.kvBytes() / context;
    }

    /** Returns the NLL of the first format's full cache: the baseline of every ΔNLL. */
    private static double baseline(List<KvFormatSweep.Row> rows) {
        return rows.getFirst().result().nll();
    }

    /** Returns the Markdown table. */
    static String markdown(List<KvFormatSweep.Row> rows, int context) {
        double base = baseline(rows);
        StringBuilder b = new StringBuilder("| KV format | policy | ratio | KV bytes/token | NLL | ΔNLL vs "
                + rows.getFirst().format().name() + " full | passkey | copy NLL |\n"
                + "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (KvFormatSweep.Row row : rows) {
            ResultRow r = row.result();
            b.append(String.format(Locale.ROOT, "| %s | %s | %.2f | %.0f | %.4f | %+.4f | %.2f | %.4f |%n",
                    row.format().name(), r.policy(), r.ratio(), bytesPerToken(r, context), r.nll(), r.nll() - base,
                    r.passkey(), r.copyNll()));
        }
        return b.toString();
    }

    /** Returns the CSV with a header line. */
    static String csv(List<KvFormatSweep.Row> rows, int context) {
        double base = baseline(rows);
        StringBuilder b = new StringBuilder("format,policy,ratio,kv_bytes_per_token,nll,delta_nll,passkey,copy_nll\n");
        for (KvFormatSweep.Row row : rows) {
            ResultRow r = row.result();
            b.append(String.format(Locale.ROOT, "%s,%s,%.2f,%.1f,%.6f,%.6f,%.4f,%.6f%n", row.format().name(),
                    r.policy(), r.ratio(), bytesPerToken(r, context), r.nll(), r.nll() - base, r.passkey(),
                    r.copyNll()));
        }
        return b.toString();
    }
}
