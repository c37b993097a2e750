package io.github.kvcache4j.policy;

import java.util.Arrays;

/**
 * The resident slots of every buffer (one (layer, kv-head)) as a doubly linked list in position
 * order, with each slot's position. Appends arrive with increasing positions and join the tail;
 * removals unlink in O(1); moves rename a node in place. So the position order never needs
 * sorting, even after swap-evictions left the slots themselves unordered.
 */
final class SlotOrder {

    private static final int NONE = -1;

    private final int capacity;
    private final int[] prev;
    private final int[] next;
    private final int[] position;
    private final boolean[] linked;
    private final int[] head;
    private final int[] tail;
    /** Per buffer, the linked slots: {@code [0, size)} once the cache finished a call. */
    private final int[] size;

    SlotOrder(int buffers, int capacity) {
        this.capacity = capacity;
        int n = buffers * capacity;
        this.prev = new int[n];
        this.next = new int[n];
        this.position = new int[n];
        this.linked = new boolean[n];
        this.head = new int[buffers];
        this.tail = new int[buffers];
        this.size = new int[buffers];
        clear();
    }

    /** The token at {@code position} was stored in {@code slot}, the first free slot of {@code b}. */
    void append(int b, int slot, int position) {
        assert slot == size[b] : "append to slot " + slot + " of a buffer holding " + size[b];
        int base = b * capacity;
        size[b]++;
        int i = base + slot;
        this.position[i] = position;
        linked[i] = true;
        next[i] = NONE;
        prev[i] = tail[b];
        if (tail[b] == NONE) {
            head[b] = slot;
        } else {
            next[base + tail[b]] = slot;
        }
        tail[b] = slot;
    }

    /** The token in {@code slot} was evicted. */
    void remove(int b, int slot) {
        assert linked[b * capacity + slot] : "slot " + slot + " is not resident";
        unlink(b, slot);
        size[b]--;
    }

    /** The content of {@code from} moved to {@code to}, whose token was removed before. */
    void move(int b, int from, int to) {
        int base = b * capacity;
        assert !linked[base + to] && linked[base + from] : "move " + from + " -> " + to;
        int f = base + from;
        int p = prev[f];
        int n = next[f];
        int t = base + to;
        prev[t] = p;
        next[t] = n;
        position[t] = position[f];
        linked[t] = true;
        linked[f] = false;
        if (p == NONE) {
            head[b] = to;
        } else {
            next[base + p] = to;
        }
        if (n == NONE) {
            tail[b] = to;
        } else {
            prev[base + n] = to;
        }
    }

    /** Returns the position of {@code slot} of buffer {@code b}. */
    int position(int b, int slot) {
        return position[b * capacity + slot];
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
        return next[b * capacity + slot];
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
        int base = b * capacity;
        int seen = 0;
        for (int s = tail[b]; s != NONE; s = prev[base + s]) {
            if (++seen == k) {
                return position[base + s];
            }
        }
        return Integer.MIN_VALUE;
    }

    /** Returns the resident slot of {@code b} with the highest position, or -1. */
    int newest(int b) {
        return tail[b];
    }

    /** Forgets every buffer. */
    void clear() {
        Arrays.fill(linked, false);
        Arrays.fill(head, NONE);
        Arrays.fill(tail, NONE);
        Arrays.fill(size, 0);
    }

    private void unlink(int b, int slot) {
        int base = b * capacity;
        int i = base + slot;
        int p = prev[i];
        int n = next[i];
        if (p == NONE) {
            head[b] = n;
        } else {
            next[base + p] = n;
        }
        if (n == NONE) {
            tail[b] = p;
        } else {
            prev[base + n] = p;
        }
        linked[i] = false;
    }
}
