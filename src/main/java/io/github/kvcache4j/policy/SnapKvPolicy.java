package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
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
    public Tracker newTracker(Shape shape) {
        return new SnapTracker(shape);
    }

    private final class SnapTracker extends SlotTracker {
        /** Per buffer and slot, {@code window} rows: Σ_g a of one query position each. */
        private final float[][] ring;
        /** Per buffer and slot: Σ over the live rows. */
        private final double[][] sum;
        /** Per buffer and row: the query position it holds, or {@link Integer#MIN_VALUE}. */
        private final int[][] stamp;
        /** Per buffer and row: head rows summed into it. */
        private final int[][] heads;
        /** Per buffer: the highest query position reported. */
        private final int[] latest;
        private final double[] mean;

        SnapTracker(Shape shape) {
            super(shape);
            this.ring = floatsPerSlot(window);
            this.sum = doublesPerSlot(1);
            this.stamp = new int[shape.buffers()][window];
            this.heads = new int[shape.buffers()][window];
            this.latest = new int[shape.buffers()];
            this.mean = new double[shape.capacity()];
            forget();
        }

        @Override
        public boolean wantsAttention(int layer) {
            return true;
        }

        @Override
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            // A query after the newest token sees what one at the newest does; counting it as
            // later would push every genuine query out of the window.
            int query = Math.min(weights.queryPosition(), recentFrom(buffer, 1));
            int resident = view.resident();
            int[] stamp = this.stamp[buffer];
            if (latest[buffer] != Integer.MIN_VALUE && query <= latest[buffer] - window) {
                return;
            }
            if (query > latest[buffer]) {
                latest[buffer] = query;
                for (int r = 0; r < window; r++) {
                    if (stamp[r] != Integer.MIN_VALUE && stamp[r] <= query - window) {
                        dropRow(buffer, r, resident);
                    }
                }
            }
            int r = Math.floorMod(query, window);
            float[] ring = this.ring[buffer];
            if (stamp[r] != query) {
                assert stamp[r] == Integer.MIN_VALUE : "row " + r + " still holds position " + stamp[r];
                stamp[r] = query;
                heads[buffer][r] = 0;
                for (int j = 0; j < resident; j++) {
                    ring[j * window + r] = 0f;
                }
            }
            heads[buffer][r] += weights.groupSize();
            double[] sum = this.sum[buffer];
            for (int j = 0; j < weights.visible(); j++) {
                if (view.position(j) > query) {
                    continue;
                }
                float s = 0f;
                for (int g = 0; g < weights.groupSize(); g++) {
                    s += weights.weight(g, j);
                }
                int at = j * window + r;
                float before = ring[at];
                ring[at] = before + s;
                sum[j] += (double) ring[at] - before;
            }
        }

        /** Takes row {@code r} of {@code buffer} out of the running sums. */
        private void dropRow(int buffer, int r, int resident) {
            float[] ring = this.ring[buffer];
            double[] sum = this.sum[buffer];
            for (int j = 0; j < resident; j++) {
                sum[j] -= ring[j * window + r];
                ring[j * window + r] = 0f;
            }
            stamp[buffer][r] = Integer.MIN_VALUE;
            heads[buffer][r] = 0;
        }

        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return window;
        }

        /** The mean over the live rows, pooled along position order with zero padding. */
        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            long headRows = 0;
            for (int h : heads[buffer]) {
                headRows += h;
            }
            double norm = headRows == 0 ? 1.0 : headRows;
            double[] sum = this.sum[buffer];
            for (int i = 0; i < n; i++) {
                mean[i] = sum[candidates[i]] / norm;
            }
            int half = kernel / 2;
            for (int i = 0; i < n; i++) {
                double pooled = 0.0;
                for (int k = Math.max(0, i - half); k <= Math.min(n - 1, i + half); k++) {
                    pooled += mean[k];
                }
                scores[i] = pooled / kernel;
            }
        }

        @Override
        protected SlotTracker blank() {
            return new SnapTracker(shape());
        }

        @Override
        protected void saveExtra(DataOutput out) throws IOException {
            for (int b = 0; b < latest.length; b++) {
                out.writeInt(latest[b]);
                for (int r = 0; r < window; r++) {
                    out.writeInt(stamp[b][r]);
                    out.writeInt(heads[b][r]);
                }
            }
        }

        /** Checks that every live row holds a query position of the window ending at the latest. */
        @Override
        protected Runnable readExtra(DataInput in) throws IOException {
            int[] readLatest = new int[latest.length];
            int[][] readStamp = new int[latest.length][window];
            int[][] readHeads = new int[latest.length][window];
            for (int b = 0; b < latest.length; b++) {
                int last = in.readInt();
                readLatest[b] = last;
                for (int r = 0; r < window; r++) {
                    int st = in.readInt();
                    boolean live = st != Integer.MIN_VALUE;
                    StateFormat.check(!live || (st <= last && (long) st > (long) last - window
                            && Math.floorMod(st, window) == r), "row " + r + " of buffer " + b
                            + " holds query position " + st + ", outside the window ending at " + last);
                    readStamp[b][r] = st;
                    readHeads[b][r] = StateFormat.readCount(in, live ? Integer.MAX_VALUE : 0,
                            "head rows of row " + r + " of buffer " + b);
                }
            }
            return () -> {
                System.arraycopy(readLatest, 0, latest, 0, latest.length);
                System.arraycopy(readStamp, 0, stamp, 0, stamp.length);
                System.arraycopy(readHeads, 0, heads, 0, heads.length);
            };
        }

        @Override
        public void reset() {
            super.reset();
            forget();
        }

        private void forget() {
            for (int b = 0; b < latest.length; b++) {
                Arrays.fill(stamp[b], Integer.MIN_VALUE);
                Arrays.fill(heads[b], 0);
            }
            Arrays.fill(latest, Integer.MIN_VALUE);
        }
    }
}
