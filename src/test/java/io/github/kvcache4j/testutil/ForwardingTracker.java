package io.github.kvcache4j.testutil;

import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Tracker;

/**
 * A tracker that passes every callback to another one; tests override the callbacks they
 * misbehave in (throw, call back into the cache, name wrong victims) and call {@code super}.
 */
public class ForwardingTracker implements Tracker {

    private final Tracker inner;

    /** Forwards to {@code inner}. */
    public ForwardingTracker(Tracker inner) {
        this.inner = inner;
    }

    @Override
    public boolean wantsAttention(int layer) {
        return inner.wantsAttention(layer);
    }

    @Override
    public void onAppend(int buffer, BufferView view, int slot) {
        inner.onAppend(buffer, view, slot);
    }

    @Override
    public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
        inner.onAttention(buffer, view, weights);
    }

    @Override
    public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
        return inner.chooseVictims(buffer, view, reason, count, victims);
    }

    @Override
    public void onRemove(int buffer, int slot) {
        inner.onRemove(buffer, slot);
    }

    @Override
    public void onMove(int buffer, int from, int to) {
        inner.onMove(buffer, from, to);
    }

    @Override
    public void reset() {
        inner.reset();
    }

    @Override
    public void release() {
        inner.release();
    }
}
