package io.github.kvcache4j.policy;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * A binary min-heap over the slots of one buffer, ordered by {@code (score, position)}: the slot
 * with the lowest score, and among equal scores the lowest position key, is at the top (a caller
 * that wants the latest position first among ties passes the negated position). Slots are
 * renamed in place when the cache moves them, so every operation is O(log n) and allocation-free
 * once the arrays, which grow with the slots used (doubling, up to the capacity), are large enough.
 */
final class SlotHeap {

    private final int capacity;
    private int[] heap = new int[0];
    private int[] index = new int[0];
    private float[] score = new float[0];
    private int[] position = new int[0];
    private int size;

    SlotHeap(int capacity) {
        this.capacity = capacity;
    }

    /** Returns a heap with the same entries and layout, sharing no array with this one. */
    SlotHeap copy() {
        SlotHeap h = new SlotHeap(capacity);
        h.heap = heap.clone();
        h.index = index.clone();
        h.score = score.clone();
        h.position = position.clone();
        h.size = size;
        return h;
    }

    int size() {
        return size;
    }

    float score(int slot) {
        return score[slot];
    }

    int position(int slot) {
        return position[slot];
    }

    /** Returns the slot with the lowest (score, position); the heap must not be empty. */
    int top() {
        return heap[0];
    }

    void add(int slot, float s, int pos) {
        if (slot >= index.length) {
            reserve(StateFormat.grow(index.length, slot + 1, capacity));
        }
        assert index[slot] < 0 : "slot " + slot + " already in the heap";
        score[slot] = s;
        position[slot] = pos;
        heap[size] = slot;
        index[slot] = size;
        up(size++);
    }

    void remove(int slot) {
        int i = slot < index.length ? index[slot] : -1;
        if (i < 0) {
            return;
        }
        index[slot] = -1;
        int last = heap[--size];
        if (i != size) {
            heap[i] = last;
            index[last] = i;
            up(i);
            down(index[last]);
        }
    }

    /** Slot {@code from} now lives at {@code to}, which must not be in the heap. */
    void move(int from, int to) {
        int i = from < index.length ? index[from] : -1;
        if (i < 0) {
            return;
        }
        assert index[to] < 0 : "slot " + to + " is still in the heap";
        index[from] = -1;
        heap[i] = to;
        index[to] = i;
        score[to] = score[from];
        position[to] = position[from];
    }

    /** Makes room for slots {@code [0, slots)}; a heap never holds more entries than slots. */
    private void reserve(int slots) {
        int had = index.length;
        heap = Arrays.copyOf(heap, slots);
        index = Arrays.copyOf(index, slots);
        Arrays.fill(index, had, slots, -1);
        score = Arrays.copyOf(score, slots);
        position = Arrays.copyOf(position, slots);
    }

    /** Writes the entries in heap order: the size, then each slot, its score and position key. */
    void write(DataOutput out) throws IOException {
        out.writeInt(size);
        for (int i = 0; i < size; i++) {
            out.writeInt(heap[i]);
            out.writeFloat(score[heap[i]]);
            out.writeInt(position[heap[i]]);
        }
    }

    /**
     * Reads what {@link #write} wrote into a new heap of {@code capacity} slots; re-adding the
     * entries in heap order rebuilds the same layout.
     *
     * @throws IOException if the size exceeds the capacity, a slot is outside it or named twice, or
     *     a score is not finite
     */
    static SlotHeap read(DataInput in, int capacity, String what) throws IOException {
        SlotHeap h = new SlotHeap(capacity);
        int n = StateFormat.readCount(in, capacity, "entries of " + what);
        for (int i = 0; i < n; i++) {
            int slot = in.readInt();
            float s = in.readFloat();
            int p = in.readInt();
            StateFormat.check(slot >= 0 && slot < capacity && (slot >= h.index.length || h.index[slot] < 0),
                    "slot " + slot + " of " + what + " is outside [0, " + capacity + ") or named twice");
            StateFormat.check(Float.isFinite(s), "score " + s + " of slot " + slot + " of " + what + " is not finite");
            h.add(slot, s, p);
        }
        return h;
    }

    void clear() {
        for (int i = 0; i < size; i++) {
            index[heap[i]] = -1;
        }
        size = 0;
    }

    /** Copies the slots in the heap, in no particular order, into {@code dst}; returns how many. */
    int slots(int[] dst) {
        System.arraycopy(heap, 0, dst, 0, size);
        return size;
    }

    private boolean less(int a, int b) {
        float sa = score[a];
        float sb = score[b];
        return sa < sb || (sa == sb && position[a] < position[b]);
    }

    private void up(int i) {
        int slot = heap[i];
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            int p = heap[parent];
            if (!less(slot, p)) {
                break;
            }
            heap[i] = p;
            index[p] = i;
            i = parent;
        }
        heap[i] = slot;
        index[slot] = i;
    }

    private void down(int i) {
        int slot = heap[i];
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && less(heap[child + 1], heap[child])) {
                child++;
            }
            int c = heap[child];
            if (!less(c, slot)) {
                break;
            }
            heap[i] = c;
            index[c] = i;
            i = child;
        }
        heap[i] = slot;
        index[slot] = i;
    }
}
