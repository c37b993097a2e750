package io.github.kvcache4j;

import io.github.kvcache4j.kernel.AttentionCall;
import io.github.kvcache4j.kernel.Kernels;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.HadamardRotation;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.util.Arrays;

/**
 * The attention of one kv-head's query group for one query token: the kernel over the buffer's
 * resident slots, then normalisation or the LESS residual term. One instance per kv-head, reused
 * for every call, so a decode step allocates nothing; instances of different kv-heads may run on
 * different threads at once.
 */
final class HeadAttention implements Runnable {

    private final int head;
    private final int group;
    private final int headDim;
    private final int stride;
    private final float scale;
    private final KvStore store;
    private final LessState less;
    private final Kernels kernels;
    private final float[] weights;
    private final float[] maxAndSum;
    private final AttentionCall call;
    private final LessState.Workspace lessWorkspace;
    /** The store's key rotation, or null; the group's queries are rotated alike into {@link #rotated}. */
    private final HadamardRotation rotation;
    private final float[] rotated;
    private int layer;
    private int buffer;
    private boolean readsLaterLayer;
    private int queryPosition;
    private float[] queries;
    private float[] out;
    private int offset;
    private int visible;
    /** Whether the weights are kept for the policy after the kernel ran. */
    private boolean keepWeights;
    /** Whether the query saw no token (only possible for a layer reading a later layer). */
    private boolean empty;

    HeadAttention(int head, KvCacheConfig config, KvStore store, LessState less, Kernels kernels) {
        this.head = head;
        this.group = config.groupSize();
        this.headDim = config.headDim();
        this.stride = KeyTiles.roundToTiles(config.capacity());
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        this.store = store;
        this.less = less;
        this.kernels = kernels;
        this.weights = new float[group * stride];
        this.maxAndSum = new float[2 * group];
        this.call = new AttentionCall(headDim);
        this.lessWorkspace = less == null ? null : less.newWorkspace();
        this.rotation = store.keyRotation();
        this.rotated = rotation == null ? null : new float[group * headDim];
    }

    /**
     * Sets up the next run: query token {@code queries[offset..]} of {@code layer} at
     * {@code queryPosition} over store buffer {@code buffer} (the layer's own or its source's);
     * results go to the same offset of {@code out}.
     */
    void prepare(int layer, int buffer, boolean readsLaterLayer, int queryPosition, float[] queries, float[] out, int offset,
                 boolean keepWeights) {
        this.layer = layer;
        this.buffer = buffer;
        this.readsLaterLayer = readsLaterLayer;
        this.queryPosition = queryPosition;
        this.queries = queries;
        this.out = out;
        this.offset = offset;
        this.keepWeights = keepWeights;
    }

    /** Drops the references to the caller's arrays once a call is over. */
    void release() {
        queries = null;
        out = null;
    }

    @Override
    public void run() {
        int b = buffer;
        int n = store.size(b);
        int[] positions = store.positions(b);
        int[] mask = null;
        if (store.ordered(b)) {
            visible = upperBound(positions, n, queryPosition);
        } else {
            visible = n;
            mask = positions;
        }
        int at = offset + head * group * headDim;
        empty = readsLaterLayer && noneVisible(positions, n, mask == null);
        if (empty) {
            // Softmax over no token: the attention contributes nothing (output zero).
            Arrays.fill(out, at, at + group * headDim, 0f);
            return;
        }
        float[] q = queries;
        int qAt = at;
        if (rotation != null) {
            // Rotated keys need rotated queries: (Rq)·(Rk) = q·k. LESS keeps un-rotated keys and reads queries.
            System.arraycopy(queries, at, rotated, 0, group * headDim);
            for (int g = 0; g < group; g++) {
                rotation.rotate(rotated, g * headDim);
            }
            q = rotated;
            qAt = 0;
        }
        kernels.attend(call.slots(store.keyBlocks(b), store.valueBlocks(b), store.dtype(), visible)
                .queries(q, qAt, group, scale).mask(mask, queryPosition)
                .weights(weights, stride, keepWeights).output(out, at, maxAndSum));
        if (less != null && !less.isEmpty(b)) {
            for (int g = 0; g < group; g++) {
                int o = at + g * headDim;
                less.attend(b, layer, head * group + g, queries, o, maxAndSum[2 * g], maxAndSum[2 * g + 1],
                        out, o, lessWorkspace);
            }
            return;
        }
        for (int g = 0; g < group; g++) {
            float inv = 1f / maxAndSum[2 * g + 1];
            int o = at + g * headDim;
            for (int i = 0; i < headDim; i++) {
                out[o + i] *= inv;
            }
        }
    }

    /** Returns whether the last run saw no resident token. */
    boolean empty() {
        return empty;
    }

    /** Returns the slots the last run attended over: {@code [0, visible)}. */
    int visible() {
        return visible;
    }

    /** Returns the query position of the last run. */
    int queryPosition() {
        return queryPosition;
    }

    /** Returns the row stride of {@link #normalisedWeights()}. */
    int stride() {
        return stride;
    }

    /**
     * Normalises the kept weights of the last run over the resident slots and returns them:
     * {@code weights[g * stride + j]} for {@code j < visible}.
     */
    float[] normalisedWeights() {
        for (int g = 0; g < group; g++) {
            float inv = 1f / maxAndSum[2 * g + 1];
            int base = g * stride;
            for (int j = 0; j < visible; j++) {
                weights[base + j] *= inv;
            }
        }
        return weights;
    }

    private boolean noneVisible(int[] positions, int n, boolean ordered) {
        if (ordered) {
            return visible == 0;
        }
        for (int j = 0; j < n; j++) {
            if (positions[j] <= queryPosition) {
                return false;
            }
        }
        return true;
    }

    private static int upperBound(int[] sorted, int n, int key) {
        int lo = 0;
        int hi = n;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid] <= key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }
}
