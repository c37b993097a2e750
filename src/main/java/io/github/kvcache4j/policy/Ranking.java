package io.github.kvcache4j.policy;

/**
 * Picks victims among candidate slots by score, allocation-free. The shared tie rule of the
 * score-based policies: a lower score is evicted first; among equal scores the later position is
 * evicted first, so the earlier one is kept. That is what {@code torch.topk} does in kvpress (it
 * keeps the lower index among ties, as the tied block-0 keys in the kvpress golden file show).
 */
final class Ranking {

    private Ranking() {
    }

    /** Returns whether slot {@code a} is evicted before slot {@code b}. */
    static boolean evictsBefore(double[] score, int[] position, int a, int b) {
        double sa = score[a];
        double sb = score[b];
        return sa < sb || (sa == sb && position[a] > position[b]);
    }

    /**
     * Writes into {@code victims} the {@code min(count, n)} candidates {@code slots[0..n)} that are
     * evicted first, in eviction order; returns how many. {@code score} and {@code position} are
     * indexed by slot. One O(n) scan when {@code count == 1}, else an in-place heap sort of
     * {@code slots} (reordered).
     */
    static int pick(int[] slots, int n, int count, double[] score, int[] position, int[] victims) {
        if (n == 0 || count <= 0) {
            return 0;
        }
        if (count == 1) {
            int best = slots[0];
            for (int i = 1; i < n; i++) {
                if (evictsBefore(score, position, slots[i], best)) {
                    best = slots[i];
                }
            }
            victims[0] = best;
            return 1;
        }
        sort(slots, n, score, position);
        int k = Math.min(count, n);
        System.arraycopy(slots, 0, victims, 0, k);
        return k;
    }

    /** Sorts {@code slots[0..n)} into eviction order (heap sort: O(n log n), no allocation). */
    static void sort(int[] slots, int n, double[] score, int[] position) {
        for (int i = n / 2 - 1; i >= 0; i--) {
            siftDown(slots, i, n, score, position);
        }
        for (int end = n - 1; end > 0; end--) {
            int t = slots[0];
            slots[0] = slots[end];
            slots[end] = t;
            siftDown(slots, 0, end, score, position);
        }
    }

    /** Max-heap on eviction order: the slot evicted last sits at the root. */
    private static void siftDown(int[] a, int i, int n, double[] score, int[] position) {
        int x = a[i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= n) {
                break;
            }
            if (c + 1 < n && evictsBefore(score, position, a[c], a[c + 1])) {
                c++;
            }
            if (!evictsBefore(score, position, x, a[c])) {
                break;
            }
            a[i] = a[c];
            i = c;
        }
        a[i] = x;
    }
}
