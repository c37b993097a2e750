package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * CORM, "CORM: Cache Optimization with Recent Message for Large Language Model Inference" (Dai,
 * Huang, Jiang, Chen, Cai, Bi, Shi 2024, arXiv 2404.15949): an adaptive budget. Query {@code q}
 * finds key {@code j} important when some query head {@code g} of the kv-head's group gives it
 * {@code a_{q,g,j} >= alpha / t_q}, {@code t_q} the number of resident tokens {@code q} sees. A key
 * is dropped as soon as none of the last {@code w} queries that saw it found it important and at
 * least {@code w} queries saw it; the newest {@code r} tokens are never dropped. The cache asks for
 * these voluntary victims after each attention call.
 *
 * <p>Per slot the policy keeps a {@code w}-bit mask (bit 0: the latest query that saw the key) and
 * the maximum over the group and the last {@code w} queries of its attention, as a monotone deque,
 * so an attention report costs O(n) amortised and needs no sorting. With cross-layer sharing every
 * reading layer's query counts as a query of its own.
 *
 * <p>Hard capacity (on by default): when an append needs room, the key with the smallest recent
 * maximum attention outside the newest {@code r} is evicted (ties: the later position first);
 * {@code compress} uses the same ranking. Off, the policy names no victim then, and an append
 * beyond the capacity fails, as the paper's unbounded budget would.
 */
public final class CormPolicy implements EvictionPolicy {

    /** Bits in the importance mask of one slot. */
    public static final int MAX_WINDOW = 64;

    private final int window;
    private final int recent;
    private final double alpha;
    private final boolean hardCapacity;

    /**
     * @param window {@code w}: queries remembered per key, in {@code [1, 64]}
     * @param recent {@code r}: newest tokens never evicted, {@code >= 0}
     * @param alpha importance threshold factor, finite and {@code > 0}
     * @param hardCapacity whether an append beyond the capacity evicts the key with the smallest
     *     recent maximum attention
     * @throws IllegalArgumentException if an argument is out of range
     */
    public CormPolicy(int window, int recent, double alpha, boolean hardCapacity) {
        if (window < 1 || window > MAX_WINDOW) {
            throw new IllegalArgumentException("window must be in [1, " + MAX_WINDOW + "], got " + window);
        }
        if (recent < 0) {
            throw new IllegalArgumentException("recent must be >= 0, got " + recent);
        }
        if (!(alpha > 0.0 && alpha < Double.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("alpha must be finite and > 0, got " + alpha);
        }
        this.window = window;
        this.recent = recent;
        this.alpha = alpha;
        this.hardCapacity = hardCapacity;
    }

    /** Returns {@code w}, the queries remembered per key. */
    public int window() {
        return window;
    }

    /** Returns {@code r}, the newest tokens never evicted. */
    public int recent() {
        return recent;
    }

    /** Returns the importance threshold factor. */
    public double alpha() {
        return alpha;
    }

    /** Returns whether an append beyond the capacity evicts a key. */
    public boolean hardCapacity() {
        return hardCapacity;
    }

    @Override
    public String name() {
        return "corm";
    }

    @Override
    public int protectedTokens() {
        return recent;
    }

    @Override
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new CormTracker(layers, kvHeads, groupSize, capacity);
    }

    private final class CormTracker implements Tracker {
        private final int kvHeads;
        private final int group;
        private final int capacity;
        private final long bits;
        private final SlotOrder order;
        /** Per buffer and slot: importance over the last {@code w} queries that saw the key. */
        private final long[] mask;
        /** Per buffer and slot: queries that saw the key (also the stamp of the newest deque entry). */
        private final int[] seen;
        /** Per buffer and slot, {@code w} entries each: a deque of decreasing maxima and their stamps. */
        private final float[] dequeValue;
        private final int[] dequeStamp;
        private final int[] dequeHead;
        private final int[] dequeSize;
        private final int[] slots;
        private final double[] score;
        private final int[] position;

        CormTracker(int layers, int kvHeads, int group, int capacity) {
            int n = layers * kvHeads * capacity;
            this.kvHeads = kvHeads;
            this.group = group;
            this.capacity = capacity;
            this.bits = window == 64 ? -1L : (1L << window) - 1;
            this.order = new SlotOrder(layers * kvHeads, capacity);
            this.mask = new long[n];
            this.seen = new int[n];
            this.dequeValue = new float[n * window];
            this.dequeStamp = new int[n * window];
            this.dequeHead = new int[n];
            this.dequeSize = new int[n];
            this.slots = new int[capacity];
            this.score = new double[capacity];
            this.position = new int[capacity];
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            int b = layer * kvHeads + kvHead;
            order.append(b, slot, position);
            int i = b * capacity + slot;
            mask[i] = 0L;
            seen[i] = 0;
            dequeHead[i] = 0;
            dequeSize[i] = 0;
        }

        @Override
        public void onAttention(int layer, int kvHead, int queryPosition, int readingLayer,
                                float[] weights, int stride, int visible) {
            int b = layer * kvHeads + kvHead;
            int t = 0;
            for (int j = 0; j < visible; j++) {
                if (order.position(b, j) <= queryPosition) {
                    t++;
                }
            }
            if (t == 0) {
                return;
            }
            double threshold = alpha / t;
            int base = b * capacity;
            for (int j = 0; j < visible; j++) {
                if (order.position(b, j) > queryPosition) {
                    continue;
                }
                float m = weights[j];
                for (int g = 1; g < group; g++) {
                    m = Math.max(m, weights[g * stride + j]);
                }
                int i = base + j;
                mask[i] = ((mask[i] << 1) | (m >= threshold ? 1L : 0L)) & bits;
                push(i, m, ++seen[i]);
            }
        }

        /** Adds the maximum {@code m} of query number {@code stamp} to the sliding maximum of {@code i}. */
        private void push(int i, float m, int stamp) {
            int at = i * window;
            int head = dequeHead[i];
            int size = dequeSize[i];
            while (size > 0 && dequeStamp[at + head] <= stamp - window) {
                head = (head + 1) % window;
                size--;
            }
            while (size > 0 && dequeValue[at + (head + size - 1) % window] <= m) {
                size--;
            }
            int tail = (head + size) % window;
            dequeValue[at + tail] = m;
            dequeStamp[at + tail] = stamp;
            size++;
            dequeHead[i] = head;
            dequeSize[i] = size;
        }

        /** Returns the largest attention over the group and the last {@code w} queries, 0 if none. */
        private double recentMax(int i) {
            return dequeSize[i] == 0 ? 0.0 : dequeValue[i * window + dequeHead[i]];
        }

        @Override
        public int chooseVoluntaryVictims(int layer, int kvHead, int resident, int[] victims) {
            int b = layer * kvHeads + kvHead;
            int from = order.recentFrom(b, recent);
            int base = b * capacity;
            int n = 0;
            for (int s = 0; s < resident; s++) {
                int i = base + s;
                if (mask[i] == 0L && seen[i] >= window && order.position(b, s) < from) {
                    victims[n++] = s;
                }
            }
            return n;
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            if (!compress && !hardCapacity) {
                return 0;
            }
            int b = layer * kvHeads + kvHead;
            int from = order.recentFrom(b, recent);
            int base = b * capacity;
            int n = 0;
            for (int s = 0; s < resident; s++) {
                int p = order.position(b, s);
                if (p < from) {
                    slots[n++] = s;
                    position[s] = p;
                    score[s] = recentMax(base + s);
                }
            }
            return Ranking.pick(slots, n, count, score, position, victims);
        }

        @Override
        public void onRemove(int layer, int kvHead, int slot) {
            order.remove(layer * kvHeads + kvHead, slot);
        }

        @Override
        public void onMove(int layer, int kvHead, int from, int to) {
            int b = layer * kvHeads + kvHead;
            order.move(b, from, to);
            int f = b * capacity + from;
            int t = b * capacity + to;
            mask[t] = mask[f];
            seen[t] = seen[f];
            dequeHead[t] = dequeHead[f];
            dequeSize[t] = dequeSize[f];
            System.arraycopy(dequeValue, f * window, dequeValue, t * window, window);
            System.arraycopy(dequeStamp, f * window, dequeStamp, t * window, window);
        }

        @Override
        public void reset() {
            order.clear();
            Arrays.fill(mask, 0L);
            Arrays.fill(seen, 0);
            Arrays.fill(dequeSize, 0);
            Arrays.fill(dequeHead, 0);
        }
    }
}
