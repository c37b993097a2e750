package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * TOVA, "Transformers are Multi-State RNNs" (Oren, Hassid, Yarden, Adi, Schwartz 2024, arXiv
 * 2401.06104; kvpress {@code TOVAPress}): the score of a key is the attention the latest query gave
 * it, averaged over <em>all</em> query heads of the layer, {@code s_j = (1/H) Σ_h a_{h,j}}. One
 * decision per layer: every kv-head evicts the same tokens, so the slot layouts of a layer's
 * kv-heads stay identical (asserted when attention arrives). The newest resident token is never
 * evicted (kvpress keeps the last position).
 *
 * <p>"Latest query" is the highest query position reported for the layer; reports at that position
 * from every kv-head (and, with cross-layer sharing, from every reading layer) are averaged; a
 * report for an older position is ignored. A key the latest query did not see scores 0. Ties: the
 * later position is evicted first. At decode time the cache asks for a victim before it stores the
 * new token, so the previous token's query decides and the previous token itself is kept: TOVA's
 * step with the roles of "append" and "evict" swapped. Victims come from one O(n) scan.
 */
public final class TovaPolicy implements EvictionPolicy {

    /** Creates TOVA. */
    public TovaPolicy() {
    }

    @Override
    public String name() {
        return "tova";
    }

    @Override
    public int protectedTokens() {
        return 1;
    }

    @Override
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new TovaTracker(layers, kvHeads, groupSize, capacity);
    }

    private static final class TovaTracker implements Tracker {
        private final int kvHeads;
        private final int group;
        private final int capacity;
        private final SlotOrder order;
        /**
         * Per buffer and slot: Σ of the latest query's weights over every head of the layer. Each
         * kv-head holds its own copy in its own slot layout, so a compaction of one kv-head does
         * not disturb the scores another kv-head is about to be asked for.
         */
        private final double[] sum;
        /** Per layer: the latest query position and how many head rows it contributed. */
        private final int[] latest;
        private final int[] rows;
        private final int[] slots;
        private final double[] score;
        private final int[] position;

        TovaTracker(int layers, int kvHeads, int group, int capacity) {
            this.kvHeads = kvHeads;
            this.group = group;
            this.capacity = capacity;
            this.order = new SlotOrder(layers * kvHeads, capacity);
            this.sum = new double[layers * kvHeads * capacity];
            this.latest = new int[layers];
            this.rows = new int[layers];
            this.slots = new int[capacity];
            this.score = new double[capacity];
            this.position = new int[capacity];
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
            sum[b * capacity + slot] = 0.0;
        }

        @Override
        public void onAttention(int layer, int kvHead, int queryPosition, int readingLayer,
                                float[] weights, int stride, int visible) {
            if (queryPosition < latest[layer]) {
                return;
            }
            int first = layer * kvHeads;
            assert sameLayout(first, kvHead, visible) : "TOVA: kv-heads of layer " + layer + " hold different slots";
            if (queryPosition > latest[layer]) {
                latest[layer] = queryPosition;
                rows[layer] = 0;
                for (int h = 0; h < kvHeads; h++) {
                    int base = (first + h) * capacity;
                    Arrays.fill(sum, base, base + order.size(first + h), 0.0);
                }
            }
            rows[layer] += group;
            int b = first + kvHead;
            for (int j = 0; j < visible; j++) {
                if (order.position(b, j) > queryPosition) {
                    continue;
                }
                double s = 0.0;
                for (int g = 0; g < group; g++) {
                    s += weights[g * stride + j];
                }
                for (int h = 0; h < kvHeads; h++) {
                    sum[(first + h) * capacity + j] += s;
                }
            }
        }

        private boolean sameLayout(int first, int kvHead, int visible) {
            for (int j = 0; j < visible; j++) {
                if (order.position(first + kvHead, j) != order.position(first, j)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
            int b = layer * kvHeads + kvHead;
            int base = b * capacity;
            int keep = order.newest(b);
            double norm = rows[layer] == 0 ? 1.0 : rows[layer];
            int n = 0;
            for (int s = 0; s < resident; s++) {
                if (s == keep) {
                    continue;
                }
                slots[n++] = s;
                position[s] = order.position(b, s);
                score[s] = sum[base + s] / norm;
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
            sum[b * capacity + to] = sum[b * capacity + from];
        }

        @Override
        public void reset() {
            order.clear();
            Arrays.fill(sum, 0.0);
            Arrays.fill(latest, Integer.MIN_VALUE);
            Arrays.fill(rows, 0);
        }
    }
}
