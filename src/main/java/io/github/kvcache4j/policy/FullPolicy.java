package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;

/** Keeps every token: the baseline every other policy is measured against. */
public final class FullPolicy implements EvictionPolicy {

    /** The single instance. */
    public static final FullPolicy INSTANCE = new FullPolicy();

    private FullPolicy() {
    }

    @Override
    public String name() {
        return "full";
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new Tracker() {
            @Override
            public void onAppend(int buffer, BufferView view, int slot) {
            }

            @Override
            public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
                return 0;
            }

            @Override
            public void onRemove(int buffer, int slot) {
            }

            @Override
            public void onMove(int buffer, int from, int to) {
            }

            @Override
            public void reset() {
            }
        };
    }
}
