package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.Shape;
import io.github.kvcache4j.testutil.Seeds;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The bookkeeping {@link SlotTracker} does for every policy built on it, driven by hand. */
class SlotTrackerTest {

    /**
     * Scores a slot by the first of its two registered doubles, which sums the attention the slot
     * received; protects {@code window} tokens.
     */
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
        protected void attend(int buffer, BufferView view, AttentionWeights weights) {
            for (int j = 0; j < weights.visible(); j++) {
                state[buffer][2 * j] += weights.weight(0, j);
            }
        }

        @Override
        protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
            return window;
        }

        @Override
        protected SlotTracker blank() {
            return new Scored(shape(), window);
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

    /** Reports fresh random weights over {@code b}'s slots to {@code t}; returns them. */
    private static float[] attendRandomly(Scored t, FakeBuffer b, int query, int visible, SplittableRandom r) {
        float[] w = new float[visible];
        for (int j = 0; j < visible; j++) {
            w[j] = (float) r.nextDouble();
        }
        b.attend(t, query, w, visible, visible);
        return w;
    }

    private static double[] scores(double[] state, int slots) {
        double[] s = new double[slots];
        for (int j = 0; j < slots; j++) {
            s[j] = state[2 * j];
        }
        return s;
    }

    private static double[] plus(double[] a, float[] w) {
        double[] s = a.clone();
        for (int j = 0; j < w.length; j++) {
            s[j] += w[j];
        }
        return s;
    }

    @Test
    void aCopySharesPerSlotStateUntilAWriteAndTheLastHolderWritesInPlace() {
        long seed = Seeds.fresh("aCopySharesPerSlotStateUntilAWriteAndTheLastHolderWritesInPlace");
        SplittableRandom r = new SplittableRandom(seed);
        int n = 5 + r.nextInt(20);
        Scored t = new Scored(new Shape(1, 1, 1, 64), 1);
        FakeBuffer b = new FakeBuffer(64);
        for (int p = 0; p < n; p++) {
            b.append(t, p, 1f);
        }
        double[] before = plus(new double[n], attendRandomly(t, b, n, n, r));

        Scored fork = (Scored) t.copy();
        FakeBuffer forkBuffer = b.copy();
        assertSame(t.state[0], fork.state[0], "a fork copies no per-slot state");
        double[] forkExpected = plus(before, attendRandomly(fork, forkBuffer, n + 1, n, r));
        assertNotSame(t.state[0], fork.state[0], "the fork's first write works on a copy");
        assertArrayEquals(before, scores(t.state[0], n), "the fork's write changed the original");
        assertArrayEquals(forkExpected, scores(fork.state[0], n));

        double[] mine = t.state[0];
        double[] once = plus(before, attendRandomly(t, b, n + 1, n, r));
        assertSame(mine, t.state[0], "the last holder writes in place");
        assertArrayEquals(once, scores(t.state[0], n));
        assertArrayEquals(forkExpected, scores(fork.state[0], n), "the original's write changed the fork");

        Scored dropped = (Scored) t.copy();
        dropped.release();
        double[] expected = plus(once, attendRandomly(t, b, n + 2, n, r));
        assertSame(mine, t.state[0], "a released fork holds nothing");

        Scored cleared = (Scored) t.copy();
        cleared.reset();
        new FakeBuffer(64).append(cleared, 0, 1f);
        assertEquals(0.0, cleared.state[0][0], "a reset fork starts empty");
        assertArrayEquals(expected, scores(t.state[0], n), "resetting a fork changed the original");
        int[] victims = new int[64];
        assertEquals(n - 1, b.victims(t, Reason.COMPRESS, 64, victims), "all but the window of 1");
        int lowest = 0;
        for (int j = 1; j < n - 1; j++) {
            lowest = expected[j] < expected[lowest] ? j : lowest;
        }
        assertEquals(lowest, victims[0], "the original ranks by its own scores (seed " + seed + ")");
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
