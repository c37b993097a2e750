package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * A tracker whose victims come from one {@link SlotHeap} per buffer, keyed once at append: the
 * heaps follow every removal and move, so the next victim is always at the top in O(log n). A
 * {@link #copy() fork} shares the heaps until either tracker changes one ({@link CopyOnWrite}).
 */
abstract class HeapTracker implements EvictionPolicy.Tracker {

    /** Version of the saved state: the heaps, then the subclass's {@link #saveExtra}. */
    private static final int VERSION = 1;

    private final EvictionPolicy.Shape shape;
    private final SlotHeap[] heaps;
    private final int[] slots;
    private final double[] score;
    private final int[] position;
    /** Shares the heaps with forks until a write. */
    private final CopyOnWrite sharing = new CopyOnWrite(this::copyShared);

    HeapTracker(EvictionPolicy.Shape shape) {
        this.shape = shape;
        this.heaps = new SlotHeap[shape.buffers()];
        for (int b = 0; b < heaps.length; b++) {
            heaps[b] = new SlotHeap(shape.capacity());
        }
        this.slots = new int[shape.capacity()];
        this.score = new double[shape.capacity()];
        this.position = new int[shape.capacity()];
    }

    /** Returns the shape of the cache this tracker serves. */
    final EvictionPolicy.Shape shape() {
        return shape;
    }

    /** Adds {@code slot} to the heap of {@code buffer}, keyed by {@code (score, position)}. */
    final void add(int buffer, int slot, float score, int position) {
        sharing.beforeWrite();
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

    /** {@inheritDoc} A slot's key in the heap; slots outside the heap (sinks) are protected. */
    @Override
    public boolean keepScores(int buffer, EvictionPolicy.BufferView view, int count, double[] scores) {
        Arrays.fill(scores, 0, view.resident(), Double.POSITIVE_INFINITY);
        SlotHeap heap = heaps[buffer];
        int n = heap.slots(slots);
        for (int i = 0; i < n; i++) {
            scores[slots[i]] = heap.score(slots[i]);
        }
        return true;
    }

    @Override
    public final void onRemove(int buffer, int slot) {
        sharing.beforeWrite();
        heaps[buffer].remove(slot);
    }

    @Override
    public final void onMove(int buffer, int from, int to) {
        sharing.beforeWrite();
        heaps[buffer].move(from, to);
    }

    /**
     * Empties every heap (heaps shared with a fork are let go, not copied); a subclass with state
     * of its own overrides this and calls super.
     */
    @Override
    public void reset() {
        if (sharing.isShared()) {
            release();
            Arrays.setAll(heaps, b -> new SlotHeap(shape.capacity()));
            return;
        }
        for (SlotHeap h : heaps) {
            h.clear();
        }
    }

    /** {@inheritDoc} Lets go of heaps shared with a fork, so the other holder need not copy them. */
    @Override
    public final void release() {
        sharing.release();
    }

    /** Replaces the state shared with a fork by a copy of this tracker's own. */
    private void copyShared() {
        for (int b = 0; b < heaps.length; b++) {
            heaps[b] = heaps[b].copy();
        }
    }

    /** Returns a new tracker of the same policy and shape, holding nothing. */
    abstract HeapTracker blank();

    /**
     * {@inheritDoc} A {@link #blank()} tracker that shares this one's heaps until either writes
     * (the writer copies them first) and gets the subclass's state through {@link #saveExtra} and
     * {@link #readExtra}.
     */
    @Override
    public final EvictionPolicy.Tracker copy() {
        HeapTracker t = blank();
        Runnable extra = StateFormat.transfer(this::saveExtra, t::readExtra, getClass().getName());
        sharing.shareWith(t.sharing);
        System.arraycopy(heaps, 0, t.heaps, 0, heaps.length);
        extra.run();
        return t;
    }

    /** {@inheritDoc} Writes a header, every buffer's heap in heap order, then {@link #saveExtra}. */
    @Override
    public final void saveState(DataOutput out) throws IOException {
        StateFormat.writeHeader(out, getClass().getName(), VERSION, shape);
        for (SlotHeap h : heaps) {
            h.write(out);
        }
        saveExtra(out);
    }

    /**
     * {@inheritDoc} Checks that heap sizes and slots lie within the capacity, no slot is named
     * twice and every score is finite, before it changes anything.
     */
    @Override
    public final void restoreState(DataInput in) throws IOException {
        StateFormat.readHeader(in, getClass().getName(), VERSION, shape);
        SlotHeap[] read = new SlotHeap[heaps.length];
        for (int b = 0; b < read.length; b++) {
            read[b] = SlotHeap.read(in, shape.capacity(), "the heap of buffer " + b);
        }
        Runnable extra = readExtra(in);
        release();
        System.arraycopy(read, 0, heaps, 0, heaps.length);
        extra.run();
    }

    /** Writes the subclass's own state; nothing by default. */
    void saveExtra(DataOutput out) throws IOException {
    }

    /**
     * Reads and checks what {@link #saveExtra} wrote without changing the tracker; returns the
     * action that installs it. The default reads nothing.
     */
    Runnable readExtra(DataInput in) throws IOException {
        return () -> {
        };
    }
}
