package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;

/**
 * A tracker whose victims come from one {@link SlotHeap} per buffer, keyed once at append: the
 * heaps follow every removal and move, so the next victim is always at the top in O(log n).
 */
abstract class HeapTracker implements EvictionPolicy.Tracker {

    private final SlotHeap[] heaps;
    private final int[] slots;
    private final double[] score;
    private final int[] position;

    HeapTracker(EvictionPolicy.Shape shape) {
        this.heaps = new SlotHeap[shape.buffers()];
        for (int b = 0; b < heaps.length; b++) {
            heaps[b] = new SlotHeap(shape.capacity());
        }
        this.slots = new int[shape.capacity()];
        this.score = new double[shape.capacity()];
        this.position = new int[shape.capacity()];
    }

    /** Adds {@code slot} to the heap of {@code buffer}, keyed by {@code (score, position)}. */
    final void add(int buffer, int slot, float score, int position) {
        heaps[buffer].add(slot, score, position);
    }

    /**
     * Names the {@code min(count, size)} slots at the top of {@code buffer}'s heap, in heap order;
     * returns how many. One victim is the top, O(1); more are sorted out of the heap's slots.
     */
    final int top(int buffer, int count, int[] victims) {
        SlotHeap heap = heaps[buffer];
        if (count == 1 && heap.size() > 0) {
            victims[0] = heap.top();
            return 1;
        }
        int n = heap.slots(slots);
        for (int i = 0; i < n; i++) {
            int s = slots[i];
            score[s] = heap.score(s);
            // Ranking evicts the later position first among ties, the heap the lower key.
            position[s] = -heap.position(s);
        }
        return Ranking.pick(slots, n, count, score, position, victims);
    }

    @Override
    public final void onRemove(int buffer, int slot) {
        heaps[buffer].remove(slot);
    }

    @Override
    public final void onMove(int buffer, int from, int to) {
        heaps[buffer].move(from, to);
    }

    /** Empties every heap; a subclass with state of its own overrides this and calls super. */
    @Override
    public void reset() {
        for (SlotHeap h : heaps) {
            h.clear();
        }
    }
}
