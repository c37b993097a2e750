package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * SnapKV, "SnapKV: LLM Knows What You are Looking for Before Generation" (Li et al. 2024, arXiv
 * 2404.14469; kvpress {@code SnapKVPress}). The newest {@code window} tokens form the observation
 * window and are always kept. Every other ("prefix") key {@code j} scores the attention the last
 * {@code window} queries gave it, averaged over those queries and the query heads of the kv-head's
 * group, then smoothed along position order by a moving average of width {@code kernel} over the
 * prefix (zero padding, always divided by {@code kernel}):
 * {@code s_j = (1/k) Σ_{|d| ≤ k/2} m_{j+d}}, {@code m_j = (1/(W·G)) Σ_q Σ_g a_{q,g,j}}.
 * The weights are the softmax over all keys the query saw, window keys included, as kvpress
 * computes them before it drops the window columns.
 *
 * <p>The policy cannot know which query is the prompt's last, so it keeps the weights of the last
 * {@code window} query positions per (layer, kv-head) in a ring indexed by position modulo
 * {@code window} (summed over the group; with cross-layer sharing, over every reading layer that
 * reported that position), plus a running sum per slot. Columns follow the slots when the cache
 * moves them; pooling walks the slots in position order, so swapped slots need no sorting.
 * Memory: {@code window × capacity} floats per (layer, kv-head).
 *
 * <p>Decode time: the same score from the ring of the latest {@code window} queries, the newest
 * {@code window} tokens protected; one O(n·kernel) pass, no sort. Ties: the later position is evicted first.
 */
public final class SnapKvPolicy implements EvictionPolicy {

    private final int window;
    private final int kernel;

    /**
     * @param window observation window, {@code >= 1}
     * @param kernel width of the moving average, odd and {@code >= 1}
     * @throws IllegalArgumentException if an argument is out of range
     */
    public SnapKvPolicy(int window, int kernel) {
        if (window < 1) {
            throw new IllegalArgumentException("window must be >= 1, got " + window);
        }
        if (kernel < 1 || kernel % 2 == 0) {
            throw new IllegalArgumentException("kernel must be odd and >= 1, got " + kernel);
        }
        this.window = window;
        this.kernel = kernel;
    }

    /** Returns the observation window. */
    public int window() {
        return window;
    }

    /** Returns the width of the moving average. */
    public int kernel() {
        return kernel;
    }

    @Override
    public String name() {
        return "snapkv";
    }

    @Override
    public int protectedTokens() {
        return window;
    }

    @Override
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new SnapTracker(layers, kvHeads, groupSize, capacity);
    }

    private final class SnapTracker implements Tracker {
        private final int kvHeads;
        private final int group;
        private final int capacity;
        private final SlotOrder order;
        /** Per buffer, {@code window} rows of {@code capacity} floats: Σ_g a of one query position. */
        private final float[] ring;
        /** Per buffer and row: the query position it holds, or {@link Integer#MIN_VALUE}. */
        private final int[] stamp;
        /** Per buffer and row: head rows summed into it. */
        private final int[] heads;
        /** Per buffer and slot: Σ over the live rows. */
        private final double[] sum;
        /** Per buffer: the highest query position reported. */
        private final int[] latest;
        private final int[] slots;
        private final double[] mean;
        private final double[] score;
        private final int[] position;

        SnapTracker(int layers, int kvHeads, int group, int capacity) {
            int buffers = layers * kvHeads;
            this.kvHeads = kvHeads;
            this.group = group;
            this.capacity = capacity;
            this.order = new SlotOrder(buffers, capacity);
            this.ring = new float[buffers * window * capacity];
            this.stamp = new int[buffers * window];
            this.heads = new int[buffers * window];
            this.sum = new double[buffers * capacity];
            this.latest = new int[buffers];
            this.slots = new int[capacity];
            this.mean = new double[capacity];
            this.score = new double[capacity];
            this.position = new int[capacity];
            Arrays.fill(stamp, Integer.MIN_VALUE);
            Arrays.fill(latest, Integer.MIN_VALUE);
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            int b = layer * kvHeads + kvHead;
            order.append(b, slot, position);
            for (int r = 0; r < window; r++) {
                ring[(b * window + r) * capacity + slot] = 0f;
            }
            sum[b * capacity + slot] = 0.0;
        }

        @Override
        public void onAttention(int layer, int kvHead, int queryPosition, int readingLayer,
                                float[] weights, int stride, int visible) {
            int b = layer * kvHeads + kvHead;
            if (latest[b] != Integer.MIN_VALUE && queryPosition <= latest[b] - window) {
                return;
            }
            if (queryPosition > latest[b]) {
                latest[b] = queryPosition;
                for (int r = 0; r < window; r++) {
                    int st = stamp[b * window + r];
                    if (st != Integer.MIN_VALUE && st <= queryPosition - window) {
                        dropRow(b, r);
                    }
                }
            }
            int r = Math.floorMod(queryPosition, window);
            int row = b * window + r;
            if (stamp[row] != queryPosition) {
                assert stamp[row] == Integer.MIN_VALUE : "row " + r + " still holds position " + stamp[row];
                stamp[row] = queryPosition;
                heads[row] = 0;
                Arrays.fill(ring, row * capacity, row * capacity + order.size(b), 0f);
            }
            heads[row] += group;
            int at = row * capacity;
            int base = b * capacity;
            for (int j = 0; j < visible; j++) {
                if (order.position(b, j) > queryPosition) {
                    continue;
                }
                float s = 0f;
                for (int g = 0; g < group; g++) {
                    s += weights[g * stride + j];
                }
                float before = ring[at + j];
                ring[at + j] = before + s;
                sum[base + j] += (double) ring[at + j] - before;
            }
        }

        /** Takes row {@code r} of buffer {@code b} out of the running sums. */
        private void dropRow(int b, int r) {
            int row = b * window + r;
            int at = row * capacity;
            int base = b * capacity;
            int hi = order.size(b);
            for (int j = 0; j < hi; j++) {
                sum[base + j] -= ring[at + j];
                ring[at + j] = 0f;
            }
            stamp[row] = Integer.MIN_VALUE;
            heads[row] = 0;
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            int b = layer * kvHeads + kvHead;
            int base = b * capacity;
            int from = order.recentFrom(b, window);
            long headRows = 0;
            for (int r = 0; r < window; r++) {
                headRows += heads[b * window + r];
            }
            double norm = headRows == 0 ? 1.0 : headRows;
            int n = 0;
            for (int s = order.oldest(b); s >= 0; s = order.newer(b, s)) {
                int p = order.position(b, s);
                if (p >= from) {
                    break;
                }
                slots[n] = s;
                mean[n++] = sum[base + s] / norm;
                position[s] = p;
            }
            int half = kernel / 2;
            for (int i = 0; i < n; i++) {
                double pooled = 0.0;
                for (int k = Math.max(0, i - half); k <= Math.min(n - 1, i + half); k++) {
                    pooled += mean[k];
                }
                score[slots[i]] = pooled / kernel;
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
            for (int r = 0; r < window; r++) {
                int at = (b * window + r) * capacity;
                ring[at + to] = ring[at + from];
            }
            sum[b * capacity + to] = sum[b * capacity + from];
        }

        @Override
        public void reset() {
            order.clear();
            Arrays.fill(ring, 0f);
            Arrays.fill(stamp, Integer.MIN_VALUE);
            Arrays.fill(heads, 0);
            Arrays.fill(sum, 0.0);
            Arrays.fill(latest, Integer.MIN_VALUE);
        }
    }
}
