package io.github.kvcache4j.policy;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * The resident slots of every buffer (one (layer, kv-head)) as a doubly linked list in position
 * order, with each slot's position. Appends arrive with increasing positions and join the tail;
 * removals unlink in O(1); moves rename a node in place. So the position order never needs
 * sorting, even after swap-evictions left the slots themselves unordered. Every buffer has arrays
 * of its own, so no index is a product of the buffer count and the capacity, and they grow with
 * the buffer's resident tokens (geometrically, up to the capacity), so a long context costs memory
 * only in the buffers that hold it.
 */
final class SlotOrder {

    private static final int NONE = -1;

    private final int[][] prev;
    private final int[][] next;
    private final int[][] position;
    private final boolean[][] linked;
    private final int[] head;
    private final int[] tail;
    /** Per buffer, the linked slots: {@code [0, size)} once the cache finished a call. */
    private final int[] size;
    private final int capacity;

    SlotOrder(int buffers, int capacity) {
        this.capacity = capacity;
        this.prev = new int[buffers][0];
        this.next = new int[buffers][0];
        this.position = new int[buffers][0];
        this.linked = new boolean[buffers][0];
        this.head = new int[buffers];
        this.tail = new int[buffers];
        this.size = new int[buffers];
        clear();
    }

    /** Returns a deep copy: a forked tracker's order, sharing no array with this one. */
    SlotOrder copy() {
        SlotOrder o = new SlotOrder(size.length, capacity);
        for (int b = 0; b < size.length; b++) {
            o.prev[b] = prev[b].clone();
            o.next[b] = next[b].clone();
            o.position[b] = position[b].clone();
            o.linked[b] = linked[b].clone();
        }
        System.arraycopy(head, 0, o.head, 0, head.length);
        System.arraycopy(tail, 0, o.tail, 0, tail.length);
        System.arraycopy(size, 0, o.size, 0, size.length);
        return o;
    }

    /** The token at {@code position} was stored in {@code slot}, the first free slot of {@code b}. */
    void append(int b, int slot, int position) {
        assert slot == size[b] : "append to slot " + slot + " of a buffer holding " + size[b];
        if (slot >= linked[b].length) {
            reserve(b, StateFormat.grow(linked[b].length, slot + 1, capacity));
        }
        size[b]++;
        link(b, slot, position);
    }

    /** Joins {@code slot}, holding {@code position}, to the tail of {@code b}'s order. */
    private void link(int b, int slot, int position) {
        this.position[b][slot] = position;
        linked[b][slot] = true;
        next[b][slot] = NONE;
        prev[b][slot] = tail[b];
        if (tail[b] == NONE) {
            head[b] = slot;
        } else {
            next[b][tail[b]] = slot;
        }
        tail[b] = slot;
    }

    /** The token in {@code slot} was evicted. */
    void remove(int b, int slot) {
        assert linked[b][slot] : "slot " + slot + " is not resident";
        int p = prev[b][slot];
        int n = next[b][slot];
        relink(b, p, n, n, p);
        linked[b][slot] = false;
        size[b]--;
    }

    /** The content of {@code from} moved to {@code to}, whose token was removed before. */
    void move(int b, int from, int to) {
        boolean[] linked = this.linked[b];
        assert !linked[to] && linked[from] : "move " + from + " -> " + to;
        int p = prev[b][from];
        int n = next[b][from];
        prev[b][to] = p;
        next[b][to] = n;
        position[b][to] = position[b][from];
        linked[to] = true;
        linked[from] = false;
        relink(b, p, n, to, to);
    }

    /** Points {@code p} forward at {@code afterP} and {@code n} back at {@code beforeN}; NONE is an end. */
    private void relink(int b, int p, int n, int afterP, int beforeN) {
        if (p == NONE) {
            head[b] = afterP;
        } else {
            next[b][p] = afterP;
        }
        if (n == NONE) {
            tail[b] = beforeN;
        } else {
            prev[b][n] = beforeN;
        }
    }

    /** Returns the position of {@code slot} of buffer {@code b}. */
    int position(int b, int slot) {
        return position[b][slot];
    }

    /** Returns the number of resident slots of {@code b}. */
    int size(int b) {
        return size[b];
    }

    /** Returns the oldest resident slot of {@code b}, or -1. */
    int oldest(int b) {
        return head[b];
    }

    /** Returns the resident slot after {@code slot} in position order, or -1. */
    int newer(int b, int slot) {
        return next[b][slot];
    }

    /**
     * Returns the position from which on the {@code k} newest resident slots lie: those slots are
     * exactly the ones whose position is {@code >=} the answer. {@link Integer#MAX_VALUE} when
     * {@code k <= 0}; {@link Integer#MIN_VALUE} when fewer than {@code k} slots are resident. O(k).
     */
    int recentFrom(int b, int k) {
        if (k <= 0) {
            return Integer.MAX_VALUE;
        }
        int[] prev = this.prev[b];
        int seen = 0;
        for (int s = tail[b]; s != NONE; s = prev[s]) {
            if (++seen == k) {
                return position[b][s];
            }
        }
        return Integer.MIN_VALUE;
    }

    /** Makes room for {@code slots} slots in buffer {@code b}. */
    private void reserve(int b, int slots) {
        prev[b] = Arrays.copyOf(prev[b], slots);
        next[b] = Arrays.copyOf(next[b], slots);
        position[b] = Arrays.copyOf(position[b], slots);
        linked[b] = Arrays.copyOf(linked[b], slots);
    }

    /** Writes every buffer: its resident count, then each slot and its position in position order. */
    void write(DataOutput out) throws IOException {
        for (int b = 0; b < size.length; b++) {
            out.writeInt(size[b]);
            for (int s = head[b]; s != NONE; s = next[b][s]) {
                out.writeInt(s);
                out.writeInt(position[b][s]);
            }
        }
    }

    /**
     * Reads what {@link #write} wrote into a new order of the same dimensions.
     *
     * @throws IOException if a count exceeds the capacity, a slot is outside the resident ones or
     *     named twice, or the positions do not increase
     */
    static SlotOrder read(DataInput in, int buffers, int capacity) throws IOException {
        SlotOrder o = new SlotOrder(buffers, capacity);
        for (int b = 0; b < buffers; b++) {
            int n = StateFormat.readCount(in, capacity, "resident count of buffer " + b);
            o.reserve(b, n);
            long last = Long.MIN_VALUE;
            for (int i = 0; i < n; i++) {
                int slot = in.readInt();
                int p = in.readInt();
                StateFormat.check(slot >= 0 && slot < n && !o.linked[b][slot],
                        "slot " + slot + " of buffer " + b + " is outside [0, " + n + ") or named twice");
                StateFormat.check(p > last, "position " + p + " of buffer " + b + " does not follow " + last);
                last = p;
                o.link(b, slot, p);
                o.size[b]++;
            }
        }
        return o;
    }

    /** Forgets every buffer. */
    void clear() {
        for (boolean[] l : linked) {
            Arrays.fill(l, false);
        }
        Arrays.fill(head, NONE);
        Arrays.fill(tail, NONE);
        Arrays.fill(size, 0);
    }
}
