package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
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
    public Tracker newTracker(Shape shape) {
        return new TovaTracker(shape);
    }

    private static final class TovaTracker extends SlotTracker {
        /**
         * Per buffer and slot: Σ of the latest query's weights over every head of the layer. Each
         * kv-head holds its own copy in its own slot layout, so a compaction of one kv-head does
         * not disturb the scores another kv-head is about to be asked for.
         */
        private final double[][] sum;
        /** Per layer: the latest query position and how many head rows it contributed. */
        private final int[] latest;
        private final int[] rows;

        TovaTracker(Shape shape) {
            super(shape);
            this.sum = doublesPerSlot(1);
            this.latest = new int[shape.layers()];
            this.rows = new int[shape.layers()];
            Arrays.fill(latest, Integer.MIN_VALUE);
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            int layer = view.layer();
            // A query after the newest token sees what one at the newest does; counting it as
            // later would make a stray far-future report the latest forever.
            int query = Math.min(weights.queryPosition(), recentFrom(buffer, 1));
            if (query < latest[layer]) {
                return;
            }
            int first = shape().buffer(layer, 0);
            int kvHeads = shape().kvHeads();
            assert sameLayout(first, buffer, weights.visible()) : "TOVA: kv-heads of layer " + layer + " hold different slots";
            if (query > latest[layer]) {
                latest[layer] = query;
                rows[layer] = 0;
                for (int h = 0; h < kvHeads; h++) {
                    Arrays.fill(sum[first + h], 0, resident(first + h), 0.0);
                }
            }
            rows[layer] += weights.groupSize();
            for (int j = 0; j < weights.visible(); j++) {
                if (view.position(j) > query) {
                    continue;
                }
                double s = 0.0;
                for (int g = 0; g < weights.groupSize(); g++) {
                    s += weights.weight(g, j);
                }
                for (int h = 0; h < kvHeads; h++) {
                    sum[first + h][j] += s;
                }
            }
        }

        private boolean sameLayout(int first, int buffer, int visible) {
            for (int j = 0; j < visible; j++) {
                if (position(buffer, j) != position(first, j)) {
                    return false;
                }
            }
            return true;
        }

        /**
         * {@inheritDoc} None: TOVA decides for a whole layer, so its kv-heads must keep the same
         * tokens and head-wise allocations do not apply.
         */
        @Override
        public boolean keepScores(int buffer, BufferView view, int count, double[] scores) {
            return false;
        }

        /** The newest resident token is kept, as kvpress keeps the last position. */
        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return 1;
        }

        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            int layer = view.layer();
            double norm = rows[layer] == 0 ? 1.0 : rows[layer];
            double[] sum = this.sum[buffer];
            for (int i = 0; i < n; i++) {
                scores[i] = sum[candidates[i]] / norm;
            }
        }

        @Override
        protected SlotTracker blank() {
            return new TovaTracker(shape());
        }

        @Override
        protected void saveExtra(DataOutput out) throws IOException {
            for (int l = 0; l < latest.length; l++) {
                out.writeInt(latest[l]);
                out.writeInt(rows[l]);
            }
        }

        @Override
        protected Runnable readExtra(DataInput in) throws IOException {
            int[] readLatest = new int[latest.length];
            int[] readRows = new int[rows.length];
            for (int l = 0; l < latest.length; l++) {
                readLatest[l] = in.readInt();
                readRows[l] = StateFormat.readCount(in, Integer.MAX_VALUE, "head rows of layer " + l);
            }
            return () -> {
                System.arraycopy(readLatest, 0, latest, 0, latest.length);
                System.arraycopy(readRows, 0, rows, 0, rows.length);
            };
        }

        @Override
        public void reset() {
            super.reset();
            Arrays.fill(latest, Integer.MIN_VALUE);
            Arrays.fill(rows, 0);
        }
    }
}
