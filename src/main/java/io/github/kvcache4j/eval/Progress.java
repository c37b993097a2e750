package io.github.kvcache4j.eval;

import java.io.PrintStream;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Progress with an ETA on stderr. On a terminal it is one bar redrawn in place with {@code \r} a
 * few times a second; into a file or a pipe, where a carriage return would pile up redraws in one
 * endless line, it writes a plain line every {@value #LOG_SECONDS} seconds. Either way it stays
 * silent for the first seconds, so short runs print nothing.
 */
final class Progress {

    private static final long QUIET_NANOS = 2_000_000_000L;
    private static final long REDRAW_NANOS = 250_000_000L;
    private static final int LOG_SECONDS = 10;
    private static final int WIDTH = 30;

    private final PrintStream err;
    private final long total;
    private final boolean terminal;
    private final LongSupplier clock;
    private final long t0;
    private long done;
    private long lastDraw;
    private boolean drawn;

    /**
     * Creates progress for {@code total} units of work (tokens through the model).
     *
     * @param terminal whether {@code err} is a terminal (redraw in place) or a file or pipe (lines)
     */
    Progress(PrintStream err, long total, boolean terminal) {
        this(err, total, terminal, System::nanoTime);
    }

    /** Creates progress that reads the time in nanoseconds from {@code clock}. */
    Progress(PrintStream err, long total, boolean terminal, LongSupplier clock) {
        this.err = err;
        this.total = Math.max(1, total);
        this.terminal = terminal;
        this.clock = clock;
        this.t0 = clock.getAsLong();
    }

    /** Returns whether the process's stderr is a terminal. */
    static boolean stderrIsTerminal() {
        return System.console() != null && System.console().isTerminal();
    }

    /** Records {@code n} more units done and reports if it is time. */
    void advance(long n) {
        done += n;
        long now = clock.getAsLong();
        long interval = terminal ? REDRAW_NANOS : LOG_SECONDS * 1_000_000_000L;
        if (now - t0 < QUIET_NANOS || (drawn && now - lastDraw < interval)) {
            return;
        }
        lastDraw = now;
        drawn = true;
        // The estimate of the work can fall short (a policy prefilled again on its own): never
        // claim to be done before finish().
        double fraction = Math.min(0.99, (double) done / total);
        double elapsed = (now - t0) / 1e9;
        String status = String.format(Locale.ROOT, "%3d%% %s elapsed, ETA %s", Math.round(fraction * 100),
                duration(elapsed), fraction == 0 ? "?" : duration(elapsed * (1 - fraction) / fraction));
        if (terminal) {
            int filled = (int) Math.round(fraction * WIDTH);
            err.print("\r[" + "#".repeat(filled) + ".".repeat(WIDTH - filled) + "] " + status + "   ");
        } else {
            err.println("progress " + status);
        }
        err.flush();
    }

    /** Ends the bar (or writes the last line) if anything was reported. */
    void finish() {
        if (!drawn) {
            return;
        }
        String elapsed = duration((clock.getAsLong() - t0) / 1e9);
        err.println(terminal ? "\r[" + "#".repeat(WIDTH) + "] 100% " + elapsed + "                    "
                : "progress 100% " + elapsed);
    }

    /** Formats seconds as {@code 1h02m}, {@code 3m05s} or {@code 42s}. */
    static String duration(double seconds) {
        long s = Math.max(0, Math.round(seconds));
        if (s >= 3600) {
            return String.format(Locale.ROOT, "%dh%02dm", s / 3600, s % 3600 / 60);
        }
        if (s >= 60) {
            return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
        }
        return s + "s";
    }
}
