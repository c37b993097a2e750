package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;

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
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new StreamingTracker(layers, kvHeads, capacity);
    }

    private final class StreamingTracker implements Tracker {
        /** Evictable (non-sink) slots per buffer, ordered by position. */
        private final SlotHeap[] heaps;
        private final int[] appended;
        private final int kvHeads;
        private final int[] scratch;

        StreamingTracker(int layers, int kvHeads, int capacity) {
            this.kvHeads = kvHeads;
            this.heaps = new SlotHeap[layers * kvHeads];
            for (int i = 0; i < heaps.length; i++) {
                heaps[i] = new SlotHeap(capacity);
            }
            this.appended = new int[layers * kvHeads];
            this.scratch = new int[capacity];
        }

        @Override
        public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            int b = layer * kvHeads + kvHead;
            if (appended[b]++ >= sinks) {
                heaps[b].add(slot, position, position);
            }
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            SlotHeap heap = heaps[layer * kvHeads + kvHead];
            if (count == 1 && heap.size() > 0) {
                victims[0] = heap.top();
                return 1;
            }
            int n = heap.slots(scratch);
            return lowestPositions(heap, n, count, victims);
        }

        private int lowestPositions(SlotHeap heap, int n, int count, int[] victims) {
            int[] order = java.util.Arrays.copyOf(scratch, n);
            long[] keyed = new long[n];
            for (int i = 0; i < n; i++) {
                keyed[i] = ((long) heap.position(order[i]) << 32) | order[i];
            }
            java.util.Arrays.sort(keyed);
            int k = Math.min(count, n);
            for (int i = 0; i < k; i++) {
                victims[i] = (int) keyed[i];
            }
            return k;
        }

        @Override
        public void onRemove(int layer, int kvHead, int slot) {
            heaps[layer * kvHeads + kvHead].remove(slot);
        }

        @Override
        public void onMove(int layer, int kvHead, int from, int to) {
            heaps[layer * kvHeads + kvHead].move(from, to);
        }

        @Override
        public void reset() {
            for (SlotHeap h : heaps) {
                h.clear();
            }
            java.util.Arrays.fill(appended, 0);
        }
    }
}
