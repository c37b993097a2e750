package io.github.kvcache4j.eval;

import java.util.Arrays;

/** Sums one configuration's task results until its report row is made. */
final class Tally {

    private final double[] windowNll;
    private double bytes;
    private double held;
    private double bytesEnd;
    private long peakBytes;
    private double top1;
    private long tokens;
    private long nanos;
    private int passkeyPrompts;
    private int passkeyCorrect;
    private double keyResident;
    private int copyPrompts;
    private double copyNll;
    private double copyTop1;
    private double spanResident;

    /** Creates a tally for {@code windows} continuation windows. */
    Tally(int windows) {
        windowNll = new double[windows];
    }

    /** Adds the result of continuation window {@code w}. */
    void add(int w, ContinuationTask.Result r) {
        windowNll[w] = r.meanNll();
        bytes += r.bytesAfterCompress();
        held += r.heldAfterCompress();
        bytesEnd += r.bytesAtEnd();
        peakBytes = Math.max(peakBytes, r.peakBytes());
        top1 += r.top1();
        tokens += r.tokens();
        nanos += r.nanos();
    }

    /** Adds the result of a passkey prompt. */
    void add(PasskeyTask.Result r) {
        passkeyPrompts++;
        passkeyCorrect += r.correct() ? 1 : 0;
        keyResident += r.keyResident();
    }

    /** Adds the result of a copy prompt. */
    void add(CopyTask.Result r) {
        copyPrompts++;
        copyNll += r.meanNll();
        copyTop1 += r.top1();
        spanResident += r.spanResident();
    }

    /** Returns the mean continuation NLL over the windows. */
    double nll() {
        return Arrays.stream(windowNll).average().orElse(Double.NaN);
    }

    /** Returns the report row; {@code fullNll} is the baseline of {@code deltaNll}. */
    ResultRow row(String policy, double ratio, int kept, double fullNll) {
        int n = windowNll.length;
        double nll = nll();
        return new ResultRow(policy, ratio, kept, bytes / n, held / n, bytesEnd / n, peakBytes, nll, nll - fullNll, top1 / n,
                windowNll.clone(), (double) passkeyCorrect / passkeyPrompts, keyResident / passkeyPrompts,
                copyNll / copyPrompts, copyTop1 / copyPrompts, spanResident / copyPrompts, tokens / (nanos / 1e9));
    }
}
