package io.github.kvcache4j.spi;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.policy.SlotTracker;

/**
 * Keeps every {@code k}-th position and the newest {@code window} tokens, written against the
 * public policy SPI only. Outside the window the tokens off the grid go first, then grid tokens;
 * among equals the later position goes first (the base class's tie rule).
 */
public final class EveryKthPolicy implements EvictionPolicy {

    private final int k;
    private final int window;

    /**
     * @param k grid step, {@code >= 1}
     * @param window newest tokens never evicted, {@code >= 0}
     * @throws IllegalArgumentException if an argument is out of range
     */
    public EveryKthPolicy(int k, int window) {
        if (k < 1 || window < 0) {
            throw new IllegalArgumentException("k must be >= 1 and window >= 0, got " + k + " and " + window);
        }
        this.k = k;
        this.window = window;
    }

    @Override
    public String name() {
        return "every_kth";
    }

    @Override
    public int protectedTokens() {
        return window;
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new SlotTracker(shape) {
            @Override
            protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
                return window;
            }

            @Override
            protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
                for (int i = 0; i < n; i++) {
                    scores[i] = view.position(candidates[i]) % k == 0 ? 1.0 : 0.0;
                }
            }
        };
    }
}
