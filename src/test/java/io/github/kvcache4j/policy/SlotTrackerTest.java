package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Shape;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The bookkeeping {@link SlotTracker} does for every policy built on it, driven by hand. */
class SlotTrackerTest {

    /** Scores a slot by the first of its two registered doubles; protects {@code window} tokens. */
    private static final class Scored extends SlotTracker {
        final double[][] state;
        final long[][] flags;
        final int window;

        Scored(Shape shape, int window) {
            super(shape);
            this.state = doublesPerSlot(2);
            this.flags = longsPerSlot(1);
            this.window = window;
        }

        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return window;
        }

        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            for (int i = 0; i < n; i++) {
                scores[i] = state[buffer][2 * candidates[i]];
            }
        }
    }

    @Test
    void perSlotStateMovesWithItsTokenAndStartsAtZero() {
        Scored t = new Scored(new Shape(1, 1, 1, 3), 0);
        FakeBuffer b = new FakeBuffer(3);
        for (int p = 0; p < 3; p++) {
            b.append(t, p, 1f);
            t.state[0][2 * p] = 10 + p;
            t.state[0][2 * p + 1] = 20 + p;
            t.flags[0][p] = 30 + p;
        }
        b.evict(t, 0);
        assertArrayEquals(new double[] {12, 22}, Arrays.copyOfRange(t.state[0], 0, 2), "slot 0 now holds position 2");
        assertEquals(32, t.flags[0][0]);
        b.append(t, 3, 1f);
        assertArrayEquals(new double[] {0, 0}, Arrays.copyOfRange(t.state[0], 4, 6), "a new token starts at zero");
        assertEquals(0, t.flags[0][2]);
    }

    @Test
    void evictsLowestScoreOutsideTheWindowLaterPositionFirstAmongTies() {
        Scored t = new Scored(new Shape(1, 1, 1, 6), 2);
        FakeBuffer b = new FakeBuffer(6);
        double[] score = {0.5, 0.1, 0.5, 0.1, 0.0, 0.0};
        for (int p = 0; p < 6; p++) {
            b.append(t, p, 1f);
            t.state[0][2 * p] = score[p];
        }
        int[] v = new int[6];
        // 4 and 5 are the window; among 0..3: 0.1 at 1 and 3 (3 first), then 0.5 at 0 and 2 (2 first)
        assertEquals(4, b.victims(t, Reason.COMPRESS, 6, v));
        assertArrayEquals(new int[] {3, 1, 2, 0}, Arrays.copyOf(v, 4));
        assertEquals(1, b.victims(t, Reason.MAKE_ROOM, 1, v));
        assertEquals(3, v[0]);
        assertEquals(0, b.victims(t, Reason.ADAPTIVE, 6, v), "no adaptive budget by default");
    }

    @Test
    void rejectsPerSlotStateBeyondIntIndexing() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new SlotTracker(new Shape(1, 1, 1, 1 << 20)) {
                    final float[][] rows = floatsPerSlot(1 << 12);

                    @Override
                    protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
                    }
                });
        assertTrue(e.getMessage().contains("1048576 * 4096"), e.getMessage());
    }
}
