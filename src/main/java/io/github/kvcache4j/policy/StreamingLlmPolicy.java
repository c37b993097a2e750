package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * StreamingLLM (Xiao et al. 2023, arXiv 2309.17453): keep the first {@code sinks} tokens
 * ("attention sinks") and the most recent ones; evict the oldest token after the sinks. Victims
 * come from a per-(layer, kv-head) heap keyed by position, O(log n) per decode step.
 */
public final class StreamingLlmPolicy implements EvictionPolicy {

    private final int sinks;

    /**
     * @param sinks tokens at the start of the sequence that are never evicted, {@code >= 0}
     */
    public StreamingLlmPolicy(int sinks) {
        if (sinks < 0) {
            throw new IllegalArgumentException("sinks must be >= 0, got " + sinks);
        }
        this.sinks = sinks;
    }

    /** Returns the number of sink tokens. */
    public int sinks() {
        return sinks;
    }

    @Override
    public String name() {
        return "streaming_llm";
    }

    @Override
    public int protectedTokens() {
        return sinks;
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new StreamingTracker(shape);
    }

    /** Per buffer, the evictable (non-sink) slots ordered by position. */
    private final class StreamingTracker extends HeapTracker {
        private final int[] appended;

        StreamingTracker(Shape shape) {
            super(shape);
            this.appended = new int[shape.buffers()];
        }

        @Override
        HeapTracker blank() {
            return new StreamingTracker(shape());
        }

        @Override
        void saveExtra(DataOutput out) throws IOException {
            for (int a : appended) {
                out.writeInt(a);
            }
        }

        @Override
        Runnable readExtra(DataInput in) throws IOException {
            int[] read = new int[appended.length];
            for (int b = 0; b < read.length; b++) {
                read[b] = StateFormat.readCount(in, Integer.MAX_VALUE, "tokens appended to buffer " + b);
            }
            return () -> System.arraycopy(read, 0, appended, 0, read.length);
        }

        @Override
        public void onAppend(int buffer, BufferView view, int slot) {
            if (appended[buffer]++ >= sinks) {
                int position = view.position(slot);
                add(buffer, slot, position, position);
            }
        }

        @Override
        public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
            return reason == Reason.ADAPTIVE ? 0 : top(buffer, count, victims);
        }

        @Override
        public void reset() {
            super.reset();
            Arrays.fill(appended, 0);
        }
    }
}
