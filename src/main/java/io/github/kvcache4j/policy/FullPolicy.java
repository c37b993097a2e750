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
    public Tracker newTracker(int layers, int kvHeads, int groupSize, int capacity) {
        return new Tracker() {
            @Override
            public void onAppend(int layer, int kvHead, int slot, int position, float keyNorm) {
            }

            @Override
            public int chooseVictims(int layer, int kvHead, int resident, int count, boolean compress, int[] victims) {
                return 0;
            }

            @Override
            public void onRemove(int layer, int kvHead, int slot) {
            }

            @Override
            public void onMove(int layer, int kvHead, int from, int to) {
            }

            @Override
            public void reset() {
            }
        };
    }
}
