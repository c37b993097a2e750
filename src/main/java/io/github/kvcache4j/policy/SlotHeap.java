package io.github.kvcache4j.policy;

/**
 * A binary min-heap over the slots of one buffer, ordered by {@code (score, position)}: the slot
 * with the lowest score, and among equal scores the lowest position key, is at the top (a caller
 * that wants the latest position first among ties passes the negated position). Slots are
 * renamed in place when the cache moves them, so every operation is O(log n) and allocation-free.
 */
final class SlotHeap {

    private final int[] heap;
    private final int[] index;
    private final float[] score;
    private final int[] position;
    private int size;

    SlotHeap(int capacity) {
        heap = new int[capacity];
        index = new int[capacity];
        score = new float[capacity];
        position = new int[capacity];
        java.util.Arrays.fill(index, -1);
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
        assert index[slot] < 0 : "slot " + slot + " already in the heap";
        score[slot] = s;
        position[slot] = pos;
        heap[size] = slot;
        index[slot] = size;
        up(size++);
    }

    void remove(int slot) {
        int i = index[slot];
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
        assert index[to] < 0 : "slot " + to + " is still in the heap";
        int i = index[from];
        if (i < 0) {
            return;
        }
        index[from] = -1;
        heap[i] = to;
        index[to] = i;
        score[to] = score[from];
        position[to] = position[from];
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
