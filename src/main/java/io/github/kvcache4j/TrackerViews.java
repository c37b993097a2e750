package io.github.kvcache4j;

import io.github.kvcache4j.store.KvStore;
import java.util.Objects;

/**
 * The read-only views a cache hands its {@link EvictionPolicy.Tracker}. Each is one reused object
 * pointed at a buffer before a callback, so reporting allocates nothing; callbacks come from the
 * thread that calls the cache, one at a time.
 */
final class TrackerViews {

    private TrackerViews() {
    }

    /**
     * A buffer of the store: positions as the store holds them, key norms as the cache recorded
     * them at append. The norms follow the tokens through {@link #move}.
     */
    static final class Buffer implements EvictionPolicy.BufferView {
        private final KvStore store;
        /** Per store buffer and slot: the L2 norm of the key. */
        private final float[][] norms;
        private int layer;
        private int kvHead;
        private int b;

        Buffer(KvStore store) {
            this.store = store;
            this.norms = new float[store.buffers()][store.capacity()];
        }

        /** Points this view at store buffer {@code b}, which holds ({@code layer}, {@code kvHead}). */
        Buffer of(int layer, int kvHead, int b) {
            this.layer = layer;
            this.kvHead = kvHead;
            this.b = b;
            return this;
        }

        /** Records the key norm of the token just stored in {@code slot} of store buffer {@code b}. */
        void keyNorm(int b, int slot, float norm) {
            norms[b][slot] = norm;
        }

        /** Returns the key norm recorded for {@code slot} of store buffer {@code b}. */
        float storedNorm(int b, int slot) {
            return norms[b][slot];
        }

        /** Copies the key norms of slots {@code [0, n)} of store buffer {@code b} from {@code other}. */
        void copyNorms(Buffer other, int b, int n) {
            System.arraycopy(other.norms[b], 0, norms[b], 0, n);
        }

        /** The token in {@code from} of store buffer {@code b} moved to {@code to}. */
        void move(int b, int from, int to) {
            norms[b][to] = norms[b][from];
        }

        @Override
        public int layer() {
            return layer;
        }

        @Override
        public int kvHead() {
            return kvHead;
        }

        @Override
        public int resident() {
            return store.size(b);
        }

        @Override
        public int position(int slot) {
            return store.positions(b)[slot];
        }

        @Override
        public float keyNorm(int slot) {
            return norms[b][slot];
        }

        @Override
        public int headDim() {
            return store.headDim();
        }

        @Override
        public void key(int slot, float[] dst, int off) {
            checkRow(slot, dst, off);
            store.readKey(b, slot, dst, off);
        }

        @Override
        public void value(int slot, float[] dst, int off) {
            checkRow(slot, dst, off);
            store.readValue(b, slot, dst, off);
        }

        /** A slot outside the resident ones would read a freed or foreign row. */
        private void checkRow(int slot, float[] dst, int off) {
            Objects.checkIndex(slot, store.size(b));
            Objects.checkFromIndexSize(off, store.headDim(), dst.length);
        }
    }

    /**
     * The normalised weights of one kv-head's group, rows {@code stride} floats apart, and the
     * group's queries, {@code headDim} floats each.
     */
    static final class Weights implements EvictionPolicy.AttentionWeights {
        private final int groupSize;
        private final int stride;
        private final int headDim;
        private float[] weights;
        private int visible;
        private int queryPosition;
        private int readingLayer;
        private float[] queries;
        private int queryOffset;

        Weights(int groupSize, int stride, int headDim) {
            this.groupSize = groupSize;
            this.stride = stride;
            this.headDim = headDim;
        }

        /**
         * Points this view at {@code weights[g * stride + slot]} of one query, whose heads are
         * {@code queries[queryOffset + g * headDim ..]}.
         */
        Weights of(float[] weights, int visible, int queryPosition, int readingLayer, float[] queries, int queryOffset) {
            this.weights = weights;
            this.visible = visible;
            this.queryPosition = queryPosition;
            this.readingLayer = readingLayer;
            this.queries = queries;
            this.queryOffset = queryOffset;
            return this;
        }

        /** Drops the reference to the caller's queries once a call is over. */
        void release() {
            queries = null;
        }

        @Override
        public int queryPosition() {
            return queryPosition;
        }

        @Override
        public int readingLayer() {
            return readingLayer;
        }

        @Override
        public int groupSize() {
            return groupSize;
        }

        @Override
        public int visible() {
            return visible;
        }

        @Override
        public float weight(int g, int slot) {
            assert g >= 0 && g < groupSize && slot >= 0 && slot < visible : "weight(" + g + ", " + slot + ")";
            return weights[g * stride + slot];
        }

        @Override
        public void query(int g, float[] dst, int off) {
            Objects.checkIndex(g, groupSize);
            System.arraycopy(queries, queryOffset + g * headDim, dst, off, headDim);
        }
    }
}
