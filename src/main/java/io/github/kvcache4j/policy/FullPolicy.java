package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/** Keeps every token: the baseline every other policy is measured against. */
public final class FullPolicy implements EvictionPolicy {

    /** The single instance. */
    public static final FullPolicy INSTANCE = new FullPolicy();

    private FullPolicy() {
    }

    @Override
    public String name() {
        return "full";
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new FullTracker(shape);
    }

    /** Holds nothing but the shape its saved state is checked against. */
    private record FullTracker(Shape shape) implements Tracker {

        /** Version of the saved state, which is the header alone. */
        private static final int VERSION = 1;

        @Override
        public void onAppend(int buffer, BufferView view, int slot) {
        }

        @Override
        public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
            return 0;
        }

        /** {@inheritDoc} Every token is protected. */
        @Override
        public boolean keepScores(int buffer, BufferView view, int count, double[] scores) {
            Arrays.fill(scores, 0, view.resident(), Double.POSITIVE_INFINITY);
            return true;
        }

        @Override
        public void onRemove(int buffer, int slot) {
        }

        @Override
        public void onMove(int buffer, int from, int to) {
        }

        @Override
        public void reset() {
        }

        @Override
        public Tracker copy() {
            return new FullTracker(shape);
        }

        @Override
        public void saveState(DataOutput out) throws IOException {
            StateFormat.writeHeader(out, "full", VERSION, shape);
        }

        @Override
        public void restoreState(DataInput in) throws IOException {
            StateFormat.readHeader(in, "full", VERSION, shape);
        }
    }
}
