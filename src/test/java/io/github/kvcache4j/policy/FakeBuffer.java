package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Tracker;

/**
 * Buffer 0 (layer 0, kv-head 0) of a tracker driven by hand, standing in for the cache: it
 * stores tokens in the next slot, evicts by swapping the last slot in, and hands the tracker
 * weights laid out as rows {@code stride} floats apart.
 */
final class FakeBuffer implements BufferView {

    private final int[] positions;
    private final float[] norms;
    private int resident;

    FakeBuffer(int capacity) {
        this.positions = new int[capacity];
        this.norms = new float[capacity];
    }

    /** Returns a buffer holding the same tokens, for a copy of the tracker this one drives. */
    FakeBuffer copy() {
        FakeBuffer b = new FakeBuffer(positions.length);
        System.arraycopy(positions, 0, b.positions, 0, resident);
        System.arraycopy(norms, 0, b.norms, 0, resident);
        b.resident = resident;
        return b;
    }

    /** Stores the token at {@code position} in the next slot and tells {@code t}. */
    void append(Tracker t, int position, float norm) {
        positions[resident] = position;
        norms[resident] = norm;
        t.onAppend(0, this, resident++);
    }

    /** Evicts {@code slot} and moves the last slot into it, as the cache does at decode. */
    void evict(Tracker t, int slot) {
        t.onRemove(0, slot);
        int last = --resident;
        if (slot != last) {
            positions[slot] = positions[last];
            norms[slot] = norms[last];
            t.onMove(0, last, slot);
        }
    }

    /** Reports the attention {@code weights[g * stride + slot]} of the query at {@code query}. */
    void attend(Tracker t, int query, float[] weights, int stride, int visible) {
        int group = weights.length / stride;
        t.onAttention(0, this, new AttentionWeights() {
            @Override
            public int queryPosition() {
                return query;
            }

            @Override
            public int readingLayer() {
                return 0;
            }

            @Override
            public int groupSize() {
                return group;
            }

            @Override
            public int visible() {
                return visible;
            }

            @Override
            public float weight(int g, int slot) {
                return weights[g * stride + slot];
            }

            @Override
            public void query(int g, float[] dst, int off) {
                throw new UnsupportedOperationException("the fake buffer reports weights, not queries");
            }
        });
    }

    /** Asks {@code t} for {@code count} victims of this buffer. */
    int victims(Tracker t, Reason reason, int count, int[] victims) {
        return t.chooseVictims(0, this, reason, count, victims);
    }

    @Override
    public int layer() {
        return 0;
    }

    @Override
    public int kvHead() {
        return 0;
    }

    @Override
    public int resident() {
        return resident;
    }

    @Override
    public int position(int slot) {
        return positions[slot];
    }

    @Override
    public float keyNorm(int slot) {
        return norms[slot];
    }

    @Override
    public int headDim() {
        return 0;
    }

    @Override
    public void key(int slot, float[] dst, int off) {
        throw new UnsupportedOperationException("the fake buffer holds norms, not key rows");
    }

    @Override
    public void value(int slot, float[] dst, int off) {
        throw new UnsupportedOperationException("the fake buffer holds norms, not value rows");
    }
}
