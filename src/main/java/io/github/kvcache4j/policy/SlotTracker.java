package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Shape;
import java.util.Arrays;
import java.util.function.IntFunction;

/**
 * The base of a score-based {@link EvictionPolicy.Tracker}: it keeps every buffer's resident slots
 * in position order, moves the per-slot state a subclass registers along with the tokens and
 * zeroes it when a token is stored, and picks victims. Candidates are the resident slots outside
 * the protected recent window ({@link #recentWindow}); they are ranked by {@link #score}, lowest
 * first, and among equal scores the later position goes first (the earlier one is kept, as
 * {@code torch.topk} keeps the lower index). Adaptive victims come from
 * {@link #adaptiveVictims}. Picking allocates nothing.
 *
 * <p>Per-slot state is registered in the constructor ({@link #doublesPerSlot} and its siblings):
 * one array per buffer, {@code width} entries per slot, so {@code state[buffer][slot * width + i]}
 * never overflows, whatever the number of buffers. A policy that keeps the latest attention each
 * key received and protects the newest four tokens:
 *
 * <pre>{@code
 * public final class LastAttentionPolicy implements EvictionPolicy {
 *     public String name() { return "last_attention"; }
 *
 *     public int protectedTokens() { return 4; }
 *
 *     public Tracker newTracker(Shape shape) { return new LastAttention(shape); }
 *
 *     private static final class LastAttention extends SlotTracker {
 *         private final double[][] last;
 *
 *         LastAttention(Shape shape) {
 *             super(shape);
 *             last = doublesPerSlot(1);
 *         }
 *
 *         public boolean wantsAttention(int layer) { return true; }
 *
 *         public void onAttention(int buffer, BufferView view, AttentionWeights w) {
 *             for (int slot = 0; slot < w.visible(); slot++) {
 *                 double sum = 0;
 *                 for (int g = 0; g < w.groupSize(); g++) {
 *                     sum += w.weight(g, slot);
 *                 }
 *                 last[buffer][slot] = sum;
 *             }
 *         }
 *
 *         protected int recentWindow(int buffer, BufferView view, Reason reason, int count) { return 4; }
 *
 *         protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
 *             for (int i = 0; i < n; i++) {
 *                 scores[i] = last[buffer][candidates[i]];
 *             }
 *         }
 *     }
 * }
 * }</pre>
 */
public abstract class SlotTracker implements EvictionPolicy.Tracker {

    /** Per-slot state of every buffer: {@code arrays[buffer]}, {@code width} entries a slot. */
    private record Column(Object[] arrays, Object zeros, int width) {
    }

    private final Shape shape;
    private final SlotOrder order;
    private Column[] columns = new Column[0];
    private final int[] candidates;
    private final int[] ranked;
    private final double[] scores;
    private final int[] positions;

    /**
     * Creates the bookkeeping of a cache of the given shape.
     *
     * @throws NullPointerException if {@code shape} is null
     */
    protected SlotTracker(Shape shape) {
        this.shape = shape;
        this.order = new SlotOrder(shape.buffers(), shape.capacity());
        this.candidates = new int[shape.capacity()];
        this.ranked = new int[shape.capacity()];
        this.scores = new double[shape.capacity()];
        this.positions = new int[shape.capacity()];
    }

    /** Returns the shape of the cache this tracker serves. */
    protected final Shape shape() {
        return shape;
    }

    /**
     * Registers {@code width} doubles per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final double[][] doublesPerSlot(int width) {
        return register(width, double[][]::new, double[]::new);
    }

    /**
     * Registers {@code width} floats per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final float[][] floatsPerSlot(int width) {
        return register(width, float[][]::new, float[]::new);
    }

    /**
     * Registers {@code width} ints per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final int[][] intsPerSlot(int width) {
        return register(width, int[][]::new, int[]::new);
    }

    /**
     * Registers {@code width} longs per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final long[][] longsPerSlot(int width) {
        return register(width, long[][]::new, long[]::new);
    }

    private <A> A[] register(int width, IntFunction<A[]> perBuffer, IntFunction<A> array) {
        if (width < 1) {
            throw new IllegalArgumentException("width must be >= 1, got " + width);
        }
        if (shape.capacity() > Integer.MAX_VALUE / width) {
            throw new IllegalArgumentException("capacity * width must be <= " + Integer.MAX_VALUE + ", got "
                    + shape.capacity() + " * " + width);
        }
        A[] arrays = perBuffer.apply(shape.buffers());
        for (int b = 0; b < arrays.length; b++) {
            arrays[b] = array.apply(shape.capacity() * width);
        }
        columns = Arrays.copyOf(columns, columns.length + 1);
        columns[columns.length - 1] = new Column(arrays, array.apply(width), width);
        return arrays;
    }

    /** Returns the position of the token in {@code slot} of {@code buffer}. */
    protected final int position(int buffer, int slot) {
        return order.position(buffer, slot);
    }

    /** Returns the number of resident tokens of {@code buffer}. */
    protected final int resident(int buffer) {
        return order.size(buffer);
    }

    /**
     * Returns the position from which on the {@code k} newest resident tokens of {@code buffer}
     * lie: {@link Integer#MAX_VALUE} when {@code k <= 0}, {@link Integer#MIN_VALUE} when fewer than
     * {@code k} are resident. O(k).
     */
    protected final int recentFrom(int buffer, int k) {
        return order.recentFrom(buffer, k);
    }

    /**
     * Returns how many of the newest resident tokens {@code buffer} protects for this request
     * ({@code reason} is {@link Reason#MAKE_ROOM} or {@link Reason#COMPRESS}). 0 by default; the
     * resident count or more protects every token, so the policy names no victim.
     */
    protected int recentWindow(int buffer, BufferView view, Reason reason, int count) {
        return 0;
    }

    /**
     * Scores the candidates {@code candidates[0..n)}, the resident slots outside the recent window
     * in position order (oldest first): writes {@code scores[i]} for {@code candidates[i]}; lower
     * is evicted first. Must not change state.
     */
    protected abstract void score(int buffer, BufferView view, int[] candidates, int n, double[] scores);

    /**
     * Names the slots an adaptive budget drops after an attention call on {@code buffer}
     * ({@link Reason#ADAPTIVE}); returns how many. None by default. Must not change state.
     */
    protected int adaptiveVictims(int buffer, BufferView view, int[] victims) {
        return 0;
    }

    /** {@inheritDoc} Links the slot into the position order and zeroes its registered state. */
    @Override
    public final void onAppend(int buffer, BufferView view, int slot) {
        order.append(buffer, slot, view.position(slot));
        for (Column c : columns) {
            System.arraycopy(c.zeros, 0, c.arrays[buffer], slot * c.width, c.width);
        }
    }

    /** {@inheritDoc} Does nothing by default. */
    @Override
    public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
    }

    /** {@inheritDoc} */
    @Override
    public final int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
        if (reason == Reason.ADAPTIVE) {
            return adaptiveVictims(buffer, view, victims);
        }
        assert view.resident() == order.size(buffer) : "the cache and the tracker disagree on the resident count";
        int n = Math.max(0, order.size(buffer) - Math.max(0, recentWindow(buffer, view, reason, count)));
        int s = order.oldest(buffer);
        for (int i = 0; i < n; i++, s = order.newer(buffer, s)) {
            candidates[i] = s;
            positions[i] = order.position(buffer, s);
            ranked[i] = i;
        }
        score(buffer, view, candidates, n, scores);
        int k = Ranking.pick(ranked, n, count, scores, positions, victims);
        for (int i = 0; i < k; i++) {
            victims[i] = candidates[victims[i]];
        }
        return k;
    }

    /** {@inheritDoc} */
    @Override
    public final void onRemove(int buffer, int slot) {
        order.remove(buffer, slot);
    }

    /** {@inheritDoc} Moves the slot's registered state along. */
    @Override
    public final void onMove(int buffer, int from, int to) {
        order.move(buffer, from, to);
        for (Column c : columns) {
            Object a = c.arrays[buffer];
            System.arraycopy(a, from * c.width, a, to * c.width, c.width);
        }
    }

    /**
     * {@inheritDoc} Forgets the position order; registered state needs no clearing, as every slot
     * is zeroed when a token is stored. A subclass with state of its own overrides this and calls
     * {@code super.reset()}.
     */
    @Override
    public void reset() {
        order.clear();
    }
}
