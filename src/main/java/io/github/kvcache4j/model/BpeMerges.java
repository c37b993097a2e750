package io.github.kvcache4j.model;

import java.util.Arrays;

/**
 * The ranked merge list of a byte-level BPE vocabulary ({@code tokenizer.ggml.merges}) and the
 * merge loop over one piece: starting from single-byte tokens, repeatedly replace the adjacent
 * pair of lowest rank (leftmost among equal ranks) by its merged token. Candidate pairs wait in a
 * binary heap keyed by {@code rank << 32 | position}, so a piece of n bytes takes O(n log n);
 * an entry is stale once the pair at its position no longer has its rank (a rank names one pair).
 *
 * <p>Instances are immutable and thread-safe; {@link #merge} allocates its own scratch arrays.
 */
final class BpeMerges {

    private static final long EMPTY = -1L;

    private final long[] keys;
    private final int[] ranks;
    private final int[] results;
    private final int mask;

    /**
     * Builds the table.
     *
     * @param left the left token id of each merge, in rank order
     * @param right the right token id of each merge
     * @param result the id of the merged token
     */
    BpeMerges(int[] left, int[] right, int[] result) {
        int n = result.length;
        int capacity = Integer.highestOneBit(Math.max(4, n) * 2) * 2;
        keys = new long[capacity];
        ranks = new int[capacity];
        Arrays.fill(keys, EMPTY);
        mask = capacity - 1;
        results = result.clone();
        for (int r = 0; r < n; r++) {
            long key = key(left[r], right[r]);
            int slot = slot(key);
            while (keys[slot] != EMPTY && keys[slot] != key) {
                slot = (slot + 1) & mask;
            }
            // A repeated pair keeps its first (lowest) rank.
            if (keys[slot] == EMPTY) {
                keys[slot] = key;
                ranks[slot] = r;
            }
        }
    }

    private static long key(int left, int right) {
        return (long) left << 32 | (right & 0xFFFFFFFFL);
    }

    private int slot(long key) {
        return (int) ((key * 0x9E3779B97F4A7C15L) >>> 40) & mask;
    }

    /** Returns the rank of the merge of {@code left} and {@code right}, or -1 if there is none. */
    int rank(int left, int right) {
        long key = key(left, right);
        for (int slot = slot(key); ; slot = (slot + 1) & mask) {
            long k = keys[slot];
            if (k == key) {
                return ranks[slot];
            }
            if (k == EMPTY) {
                return -1;
            }
        }
    }

    /**
     * Merges a piece in place.
     *
     * @param symbols the token id of each byte of the piece; overwritten
     * @param n the number of bytes
     * @return the number of tokens, which are then {@code symbols[0 .. return)}
     */
    int merge(int[] symbols, int n) {
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        // n - 1 initial pairs and at most two new pairs per merge.
        long[] heap = new long[Math.max(1, 3 * n)];
        int size = 0;
        for (int i = 0; i + 1 < n; i++) {
            size = offer(heap, size, symbols, next, i);
        }
        while (size > 0) {
            long top = heap[0];
            size = pollTop(heap, size);
            int rank = (int) (top >>> 32);
            int l = (int) top;
            int r = next[l];
            if (symbols[l] < 0 || r < 0 || rank(symbols[l], symbols[r]) != rank) {
                continue;
            }
            symbols[l] = results[rank];
            symbols[r] = -1;
            next[l] = next[r];
            if (next[r] >= 0) {
                prev[next[r]] = l;
            }
            if (prev[l] >= 0) {
                size = offer(heap, size, symbols, next, prev[l]);
            }
            if (next[l] >= 0) {
                size = offer(heap, size, symbols, next, l);
            }
        }
        int count = 0;
        for (int i = 0; i >= 0 && n > 0; i = next[i]) {
            symbols[count++] = symbols[i];
        }
        return count;
    }

    /** Queues the pair starting at {@code l}, if it merges; returns the new heap size. */
    private int offer(long[] heap, int size, int[] symbols, int[] next, int l) {
        int rank = rank(symbols[l], symbols[next[l]]);
        if (rank < 0) {
            return size;
        }
        long entry = (long) rank << 32 | l;
        int i = size;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (heap[parent] <= entry) {
                break;
            }
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = entry;
        return size + 1;
    }

    /** Removes the smallest entry; returns the new heap size. */
    private static int pollTop(long[] heap, int size) {
        long last = heap[--size];
        int i = 0;
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && heap[child + 1] < heap[child]) {
                child++;
            }
            if (heap[child] >= last) {
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        if (size > 0) {
            heap[i] = last;
        }
        return size;
    }
}
