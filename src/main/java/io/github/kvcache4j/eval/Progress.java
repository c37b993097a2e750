package io.github.kvcache4j.eval;

import java.io.PrintStream;

/**
 * A one-line progress bar with an ETA, redrawn in place with {@code \r}. It stays silent for the
 * first seconds, so short runs print nothing, and redraws at most a few times a second.
 */
final class Progress {

    private static final long QUIET_NANOS = 2_000_000_000L;
    private static final long REDRAW_NANOS = 250_000_000L;
    private static final int WIDTH = 30;

    private final PrintStream err;
    private final long total;
    private final long t0 = System.nanoTime();
    private long done;
    private long lastDraw;
    private boolean drawn;

    /** Creates a bar for {@code total} units of work (tokens through the model). */
    Progress(PrintStream err, long total) {
        this.err = err;
        this.total = Math.max(1, total);
    }

    /** Records {@code n} more units done and redraws if it is time. */
    void advance(long n) {
        done += n;
        long now = System.nanoTime();
        if (now - t0 < QUIET_NANOS || now - lastDraw < REDRAW_NANOS) {
            return;
        }
        lastDraw = now;
        drawn = true;
        double fraction = Math.min(1.0, (double) done / total);
        int filled = (int) Math.round(fraction * WIDTH);
        double elapsed = (now - t0) / 1e9;
        String eta = done == 0 ? "?" : duration(elapsed * (total - done) / done);
        err.print("\r[" + "#".repeat(filled) + ".".repeat(WIDTH - filled) + "] "
                + String.format("%3d%% %s elapsed, ETA %s   ", Math.round(fraction * 100), duration(elapsed), eta));
        err.flush();
    }

    /** Ends the line if the bar was drawn. */
    void finish() {
        if (drawn) {
            err.println("\r[" + "#".repeat(WIDTH) + "] 100% " + duration((System.nanoTime() - t0) / 1e9)
                    + "                    ");
        }
    }

    /** Formats seconds as {@code 1h02m}, {@code 3m05s} or {@code 42s}. */
    static String duration(double seconds) {
        long s = Math.max(0, Math.round(seconds));
        if (s >= 3600) {
            return String.format("%dh%02dm", s / 3600, s % 3600 / 60);
        }
        if (s >= 60) {
            return String.format("%dm%02ds", s / 60, s % 60);
        }
        return s + "s";
    }
}
