package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;

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
    public Tracker newTracker(Shape shape) {
        return new CormTracker(shape);
    }

    private final class CormTracker extends SlotTracker {
        private final long bits;
        /** Per buffer and slot: importance over the last {@code w} queries that saw the key. */
        private final long[][] mask;
        /** Per buffer and slot: queries that saw the key (also the stamp of the newest deque entry). */
        private final int[][] seen;
        /** Per buffer and slot, {@code w} entries each: a deque of decreasing maxima and their stamps. */
        private final float[][] dequeValue;
        private final int[][] dequeStamp;
        private final int[][] dequeHead;
        private final int[][] dequeSize;

        CormTracker(Shape shape) {
            super(shape);
            this.bits = window == 64 ? -1L : (1L << window) - 1;
            this.mask = longsPerSlot(1);
            this.seen = intsPerSlot(1);
            this.dequeValue = floatsPerSlot(window);
            this.dequeStamp = intsPerSlot(window);
            this.dequeHead = intsPerSlot(1);
            this.dequeSize = intsPerSlot(1);
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            int query = weights.queryPosition();
            int visible = weights.visible();
            int t = 0;
            for (int j = 0; j < visible; j++) {
                if (view.position(j) <= query) {
                    t++;
                }
            }
            if (t == 0) {
                return;
            }
            double threshold = alpha / t;
            long[] mask = this.mask[buffer];
            int[] seen = this.seen[buffer];
            for (int j = 0; j < visible; j++) {
                if (view.position(j) > query) {
                    continue;
                }
                float m = weights.weight(0, j);
                for (int g = 1; g < weights.groupSize(); g++) {
                    m = Math.max(m, weights.weight(g, j));
                }
                mask[j] = ((mask[j] << 1) | (m >= threshold ? 1L : 0L)) & bits;
                push(buffer, j, m, ++seen[j]);
            }
        }

        /** Adds the maximum {@code m} of query number {@code stamp} to the sliding maximum of {@code slot}. */
        private void push(int buffer, int slot, float m, int stamp) {
            float[] value = dequeValue[buffer];
            int[] stamps = dequeStamp[buffer];
            int at = slot * window;
            int head = dequeHead[buffer][slot];
            int size = dequeSize[buffer][slot];
            while (size > 0 && stamps[at + head] <= stamp - window) {
                head = (head + 1) % window;
                size--;
            }
            while (size > 0 && value[at + (head + size - 1) % window] <= m) {
                size--;
            }
            int tail = (head + size) % window;
            value[at + tail] = m;
            stamps[at + tail] = stamp;
            size++;
            dequeHead[buffer][slot] = head;
            dequeSize[buffer][slot] = size;
        }

        @Override
        protected int adaptiveVictims(int buffer, BufferView view, int[] victims) {
            int from = recentFrom(buffer, recent);
            long[] mask = this.mask[buffer];
            int[] seen = this.seen[buffer];
            int n = 0;
            for (int s = 0; s < view.resident(); s++) {
                if (mask[s] == 0L && seen[s] >= window && view.position(s) < from) {
                    victims[n++] = s;
                }
            }
            return n;
        }

        @Override
        protected SlotTracker blank() {
            return new CormTracker(shape());
        }

        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return reason == Reason.MAKE_ROOM && !hardCapacity ? Integer.MAX_VALUE : recent;
        }

        /** The largest attention over the group and the last {@code w} queries, 0 if none. */
        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            float[] value = dequeValue[buffer];
            int[] head = dequeHead[buffer];
            int[] size = dequeSize[buffer];
            for (int i = 0; i < n; i++) {
                int s = candidates[i];
                scores[i] = size[s] == 0 ? 0.0 : value[s * window + head[s]];
            }
        }
    }
}
