package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import io.github.kvcache4j.EvictionPolicy.BufferView;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Shape;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;

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
 * never overflows, whatever the number of buffers. A subclass reads {@code state[buffer]} afresh in
 * every call and never keeps one buffer's array: after a {@link #copy() fork} the arrays are
 * shared until one of the two trackers writes, and the writer then works on a copy of its own. A
 * policy that keeps the latest attention each
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
 *         protected void attend(int buffer, BufferView view, AttentionWeights w) {
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

    /** Version of the generic part of the saved state. */
    private static final int VERSION = 1;

    private final Shape shape;
    private SlotOrder order;
    private final SlotColumns columns;
    private final int[] candidates;
    private final int[] ranked;
    private final double[] scores;
    private final int[] positions;
    /** Shares {@link #order} and the registered arrays with forks until a write. */
    private final CopyOnWrite sharing = new CopyOnWrite(this::copyShared);

    /**
     * Creates the bookkeeping of a cache of the given shape.
     *
     * @throws NullPointerException if {@code shape} is null
     */
    protected SlotTracker(Shape shape) {
        this.shape = shape;
        this.order = new SlotOrder(shape.buffers(), shape.capacity());
        this.columns = new SlotColumns(shape.buffers(), shape.capacity());
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
        return (double[][]) columns.register(width, SlotColumns.Kind.DOUBLE, new double[shape.buffers()][]);
    }

    /**
     * Registers {@code width} floats per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final float[][] floatsPerSlot(int width) {
        return (float[][]) columns.register(width, SlotColumns.Kind.FLOAT, new float[shape.buffers()][]);
    }

    /**
     * Registers {@code width} ints per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final int[][] intsPerSlot(int width) {
        return (int[][]) columns.register(width, SlotColumns.Kind.INT, new int[shape.buffers()][]);
    }

    /**
     * Registers {@code width} longs per slot of every buffer: {@code [buffer][slot * width + i]}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    protected final long[][] longsPerSlot(int width) {
        return (long[][]) columns.register(width, SlotColumns.Kind.LONG, new long[shape.buffers()][]);
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

    /**
     * {@inheritDoc} Links the slot into the position order and zeroes its registered state; the
     * registered arrays of the buffer grow (doubling, up to the capacity) when the slot is new.
     */
    @Override
    public final void onAppend(int buffer, BufferView view, int slot) {
        sharing.beforeWrite();
        columns.stored(buffer, slot);
        order.append(buffer, slot, view.position(slot));
    }

    /** {@inheritDoc} Calls {@link #attend} on state this tracker does not share with a fork. */
    @Override
    public final void onAttention(int buffer, BufferView view, AttentionWeights weights) {
        sharing.beforeWrite();
        attend(buffer, view, weights);
    }

    /**
     * One query token attended over {@code buffer} ({@link #onAttention}): the place to update
     * registered state, of this buffer or of others of its layer. Does nothing by default.
     */
    protected void attend(int buffer, BufferView view, AttentionWeights weights) {
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

    /**
     * {@inheritDoc} The slots outside the recent window get their {@link #score}, the window
     * {@link Double#POSITIVE_INFINITY}.
     */
    @Override
    public boolean keepScores(int buffer, BufferView view, int count, double[] scores) {
        int resident = order.size(buffer);
        int n = Math.max(0, resident - Math.max(0, recentWindow(buffer, view, Reason.COMPRESS, count)));
        int s = order.oldest(buffer);
        for (int i = 0; i < resident; i++, s = order.newer(buffer, s)) {
            if (i < n) {
                candidates[i] = s;
            } else {
                scores[s] = Double.POSITIVE_INFINITY;
            }
        }
        score(buffer, view, candidates, n, this.scores);
        for (int i = 0; i < n; i++) {
            scores[candidates[i]] = this.scores[i];
        }
        return true;
    }

    /** {@inheritDoc} */
    @Override
    public final void onRemove(int buffer, int slot) {
        sharing.beforeWrite();
        order.remove(buffer, slot);
    }

    /** {@inheritDoc} Moves the slot's registered state along. */
    @Override
    public final void onMove(int buffer, int from, int to) {
        sharing.beforeWrite();
        order.move(buffer, from, to);
        columns.move(buffer, from, to);
    }

    /**
     * {@inheritDoc} Forgets the position order; registered state needs no clearing, as every slot
     * is zeroed when a token is stored; state shared with a fork is let go, not copied. A subclass
     * with state of its own overrides this and calls {@code super.reset()}.
     */
    @Override
    public void reset() {
        if (!sharing.isShared()) {
            order.clear();
            return;
        }
        release();
        order = new SlotOrder(shape.buffers(), shape.capacity());
        columns.forget();
    }

    /** {@inheritDoc} Lets go of state shared with a fork, so the other holder need not copy it. */
    @Override
    public final void release() {
        sharing.release();
    }

    /** Replaces the state shared with a fork by a copy of this tracker's own. */
    private void copyShared() {
        order = order.copy();
        columns.copyArrays();
    }

    /**
     * {@inheritDoc} A new tracker from {@link #blank()} that shares the position order and every
     * registered array with this one until either writes (the writer copies them first), and gets
     * the subclass's other state through {@link #saveExtra} and {@link #readExtra}. So a fork costs
     * no copy of the per-slot state; the first write after it does, once for every holder but the
     * last.
     *
     * @throws UnsupportedOperationException if the subclass does not override {@link #blank()}
     */
    @Override
    public final SlotTracker copy() {
        SlotTracker t = blank();
        if (t.getClass() != getClass() || !columns.sameLayout(t.columns)) {
            throw new IllegalStateException(getClass().getName() + ".blank() must return a tracker of its class "
                    + "registering the same per-slot arrays");
        }
        Runnable extra = StateFormat.transfer(this::saveExtra, t::readExtra, getClass().getName());
        sharing.shareWith(t.sharing);
        t.order = order;
        columns.shareInto(t.columns);
        extra.run();
        return t;
    }

    /**
     * {@inheritDoc} Writes a header (the tracker's class, {@link #stateVersion()}, the shape, the
     * registered arrays' types and widths), every buffer's resident count and position order, the
     * used part of every registered array, then {@link #saveExtra}.
     */
    @Override
    public final void saveState(DataOutput out) throws IOException {
        StateFormat.writeHeader(out, getClass().getName(), VERSION * 1000 + stateVersion(), shape);
        columns.writeLayout(out);
        order.write(out);
        columns.writeArrays(out, order);
        saveExtra(out);
    }

    /**
     * {@inheritDoc} Reads and checks everything before it changes anything: the header must match
     * this tracker, resident counts lie within the capacity, each buffer's order names each of its
     * resident slots once with increasing positions, and every double or float is finite.
     */
    @Override
    public final void restoreState(DataInput in) throws IOException {
        StateFormat.readHeader(in, getClass().getName(), VERSION * 1000 + stateVersion(), shape);
        columns.checkLayout(in);
        SlotOrder read = SlotOrder.read(in, shape.buffers(), shape.capacity());
        Runnable arrays = columns.read(in, read);
        Runnable extra = readExtra(in);
        release();
        order = read;
        arrays.run();
        extra.run();
    }

    /**
     * Returns a new tracker of the same policy and shape, holding nothing; {@link #copy()} restores
     * this tracker's state into it. By default a {@code SlotTracker} cannot be copied.
     *
     * @throws UnsupportedOperationException unless overridden
     */
    protected SlotTracker blank() {
        throw new UnsupportedOperationException(getClass().getName()
                + " does not support fork: its SlotTracker does not override blank()");
    }

    /**
     * Returns the version of the subclass's saved state ({@link #saveExtra} and the meaning of its
     * registered arrays), in {@code [0, 1000)}; a restore of another version fails. 1 by default.
     */
    protected int stateVersion() {
        return 1;
    }

    /**
     * Writes the subclass's state that is not registered per slot (windows, per-layer stamps).
     * Nothing by default; a subclass with such state overrides this and {@link #readExtra}.
     */
    protected void saveExtra(DataOutput out) throws IOException {
    }

    /**
     * Reads and checks what {@link #saveExtra} wrote, without changing the tracker, and returns
     * the action that installs it; the registered arrays and the position order are already
     * restored when it runs. The default reads nothing.
     *
     * @throws IOException if the state read is inconsistent
     */
    protected Runnable readExtra(DataInput in) throws IOException {
        return () -> {
        };
    }
}
