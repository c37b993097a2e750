package io.github.kvcache4j;

import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.util.Arrays;
import java.util.function.IntBinaryOperator;
import java.util.function.IntUnaryOperator;

/**
 * The eviction step of a cache: asks the policy's tracker for victims, checks its answer, folds
 * every victim into the LESS residual (when there is one) and removes it from the store, telling
 * the tracker about each removal and move. Victims are chosen for every kv-head before the first
 * one is removed, so a request the policy cannot serve changes nothing.
 */
final class Eviction {

    private final String policyName;
    private final int kvHeads;
    private final int headDim;
    private final int capacity;
    private final SharingPlan plan;
    private final KvStore store;
    private final EvictionPolicy.Shape shape;
    private final EvictionPolicy.Tracker tracker;
    private final TrackerViews.Buffer view;
    private final LessState less;
    private final Failure failure;
    private final int[][] victims;
    private final boolean[] keep;
    /** All false between calls; marks the victims {@link #checkVictims} has seen. */
    private final boolean[] named;
    private final int[] need;
    private final int[] sortedPositions;
    private final float[] evictedKey;
    private final float[] evictedValue;
    private long evicted;

    Eviction(KvCacheConfig config, KvStore store, EvictionPolicy.Shape shape, EvictionPolicy.Tracker tracker,
             TrackerViews.Buffer view, LessState less, Failure failure) {
        this.policyName = config.policy().name();
        this.kvHeads = config.kvHeads();
        this.headDim = config.headDim();
        this.capacity = config.capacity();
        this.plan = config.sharing();
        this.store = store;
        this.shape = shape;
        this.tracker = tracker;
        this.view = view;
        this.less = less;
        this.failure = failure;
        this.victims = new int[kvHeads][capacity];
        this.keep = new boolean[capacity];
        this.named = new boolean[capacity];
        this.need = new int[kvHeads];
        this.sortedPositions = new int[capacity];
        this.evictedKey = new float[headDim];
        this.evictedValue = new float[headDim];
    }

    /** Returns the tokens evicted since creation or the last {@link #reset}. */
    long evicted() {
        return evicted;
    }

    void reset() {
        evicted = 0;
    }

    /** Sets the evicted count (a fork or a loaded cache continues the count of its origin). */
    void evicted(long count) {
        evicted = count;
    }

    private int buffer(int layer, int h) {
        return plan.storageIndex(layer) * kvHeads + h;
    }

    /**
     * Chooses, per kv-head of source {@code layer}, the victims an append of {@code tokens} needs
     * so that kv-head {@code h} holds at most {@code limit[h]} tokens afterwards (its capacity, or
     * less where the pool lends no more blocks), and fails before removing any if the policy
     * cannot name them all.
     *
     * @return whether anything must be removed ({@link #commitRoom})
     */
    boolean chooseRoom(int layer, int tokens, int[] limit) {
        boolean any = false;
        for (int h = 0; h < kvHeads; h++) {
            int b = buffer(layer, h);
            int n = store.size(b);
            need[h] = n + tokens - limit[h];
            if (need[h] > 0) {
                int chosen = tracker.chooseVictims(shape.buffer(layer, h), view.of(layer, h, b),
                        EvictionPolicy.Reason.MAKE_ROOM, need[h], victims[h]);
                checkCount(layer, h, chosen, need[h]);
                if (chosen < need[h]) {
                    throw new IllegalStateException("appending " + tokens + " tokens to layer " + layer
                            + " needs " + need[h] + " free slots of kv-head " + h + " ("
                            + (limit[h] < capacity ? "room " + limit[h] + " in the blocks the pool lends, " : "")
                            + "capacity " + capacity + ", resident " + n + "), but policy " + policyName
                            + " can evict only " + chosen);
                }
                checkVictims(layer, h, victims[h], chosen, n);
                any = true;
            }
        }
        return any;
    }

    /**
     * Makes the blocks the append {@link #chooseRoom} checked will write the cache's own: every
     * block of a kv-head that evicts (its moves reach any of them), else the block the rows go
     * to. Only a fork shares blocks; a copy changes no content, so a failure changes nothing.
     *
     * @throws PoolExhaustedException if the pool has no free block for a copy
     */
    void unshareForAppend(int layer) {
        for (int h = 0; h < kvHeads; h++) {
            int b = buffer(layer, h);
            if (!(need[h] > 0 ? store.unshareAll(b) : store.unshareTail(b))) {
                throw noBlockToCopy(layer, h);
            }
        }
    }

    private PoolExhaustedException noBlockToCopy(int layer, int h) {
        return new PoolExhaustedException("layer " + layer + ", kv-head " + h + " shares blocks with a fork and "
                + "must copy one before writing, but the pool of " + store.pool().blocks() + " blocks has none free");
    }

    /** Removes the victims {@link #chooseRoom} chose. */
    void commitRoom(int layer) {
        try {
            for (int h = 0; h < kvHeads; h++) {
                if (need[h] > 0) {
                    evictSwap(layer, h, victims[h], need[h]);
                }
            }
        } catch (RuntimeException | Error e) {
            failure.record(e);
            throw e;
        }
    }

    /** Lets the policy drop tokens of source {@code layer} after an attention call (adaptive budgets). */
    void dropVoluntary(int layer) {
        boolean changed = false;
        for (int h = 0; h < kvHeads; h++) {
            int b = buffer(layer, h);
            int n = store.size(b);
            int chosen = choose(changed, layer, h, b, EvictionPolicy.Reason.ADAPTIVE, n, n);
            if (chosen > 0) {
                if (!store.unshareAll(b)) {
                    throw noBlockToCopy(layer, h);
                }
                changed = true;
                try {
                    evictSwap(layer, h, victims[h], chosen);
                    store.trim(b);
                } catch (RuntimeException | Error e) {
                    failure.record(e);
                    throw e;
                }
            }
        }
    }

    /** Compresses every buffer of every source layer to {@code keptOf(resident)} tokens. */
    void compress(IntUnaryOperator keptOf) {
        compress((b, n) -> keptOf.applyAsInt(n), null, 0);
    }

    /**
     * Compresses every buffer to the count {@code allocation} planned for it; the policy names
     * the victims, except in buffers the plan keeps by position (the first {@code sinks} tokens
     * and the newest).
     */
    void compress(Allocator allocation, int sinks, boolean strict) {
        if (strict) {
            checkServable(allocation);
        }
        compress((b, n) -> allocation.kept(b), allocation, sinks);
    }

    /**
     * Asks the policy, before anything changes, for the victims of every buffer the plan shrinks,
     * and rejects the plan if a buffer would keep more than planned. The answers are asked again
     * when the plan is carried out: a tracker names the same victims while its state is unchanged.
     */
    private void checkServable(Allocator allocation) {
        for (int l = 0; l < plan.layers(); l++) {
            for (int h = 0; h < kvHeads && plan.isSource(l); h++) {
                int b = buffer(l, h);
                int n = store.size(b);
                int count = n - allocation.kept(b);
                if (count <= 0 || allocation.byPosition(b)) {
                    continue;
                }
                int chosen = choose(false, l, h, b, EvictionPolicy.Reason.COMPRESS, count, n);
                if (chosen < count) {
                    throw new IllegalArgumentException("the budget leaves " + allocation.kept(b) + " of the " + n
                            + " tokens of layer " + l + ", kv-head " + h + ", but policy " + policyName + " names only "
                            + chosen + " of the " + count + " victims: it protects the rest");
                }
            }
        }
    }

    private void compress(IntBinaryOperator keptOf, Allocator allocation, int sinks) {
        unshareForCompress(keptOf);
        boolean changed = false;
        for (int l = 0; l < plan.layers(); l++) {
            if (!plan.isSource(l)) {
                continue;
            }
            for (int h = 0; h < kvHeads; h++) {
                int b = buffer(l, h);
                int n = store.size(b);
                int count = n - keptOf.applyAsInt(b, n);
                if (count <= 0) {
                    continue;
                }
                int chosen = allocation != null && allocation.byPosition(b)
                        ? outsideSinksAndRecent(b, sinks, n - count, victims[h])
                        : choose(changed, l, h, b, EvictionPolicy.Reason.COMPRESS, count, n);
                changed |= chosen > 0;
                try {
                    retainAllBut(l, h, b, victims[h], chosen, n);
                    store.trim(b);
                } catch (RuntimeException | Error e) {
                    failure.record(e);
                    throw e;
                }
            }
        }
    }

    /** Before anything changes, makes every buffer {@link #compress} may compact the cache's own. */
    private void unshareForCompress(IntBinaryOperator keptOf) {
        for (int l = 0; l < plan.layers(); l++) {
            for (int h = 0; plan.isSource(l) && h < kvHeads; h++) {
                int b = buffer(l, h);
                int n = store.size(b);
                if (n > keptOf.applyAsInt(b, n) && !store.unshareAll(b)) {
                    throw noBlockToCopy(l, h);
                }
            }
        }
    }

    /**
     * Asks for and checks up to {@code count} victims of ({@code layer}, {@code h}) holding
     * {@code n} tokens into {@code victims[h]}. A policy that throws, or names invalid victims,
     * after an earlier buffer of the same call was {@code changed} leaves the call half done, so
     * the cache is marked failed; before any change the call simply fails and changes nothing.
     */
    private int choose(boolean changed, int layer, int h, int b, EvictionPolicy.Reason reason, int count, int n) {
        try {
            int chosen = tracker.chooseVictims(shape.buffer(layer, h), view.of(layer, h, b), reason, count, victims[h]);
            checkCount(layer, h, chosen, count);
            if (chosen > 0) {
                checkVictims(layer, h, victims[h], chosen, n);
            }
            return chosen;
        } catch (RuntimeException | Error e) {
            if (changed) {
                failure.record(e);
            }
            throw e;
        }
    }

    /**
     * Names the slots of buffer {@code b} outside its {@code min(sinks, kept)} oldest and the rest
     * of its {@code kept} newest positions; returns how many.
     */
    private int outsideSinksAndRecent(int b, int sinks, int kept, int[] v) {
        int n = store.size(b);
        int[] positions = store.positions(b);
        System.arraycopy(positions, 0, sortedPositions, 0, n);
        Arrays.sort(sortedPositions, 0, n);
        int first = Math.min(sinks, kept);
        int last = kept - first;
        int sinkEnd = first == 0 ? Integer.MIN_VALUE : sortedPositions[first - 1];
        int recentStart = last == 0 ? Integer.MAX_VALUE : sortedPositions[n - last];
        int count = 0;
        for (int slot = 0; slot < n; slot++) {
            if (positions[slot] > sinkEnd && positions[slot] < recentStart) {
                v[count++] = slot;
            }
        }
        return count;
    }

    /** Removes the given slots and compacts the buffer in slot order. */
    private void retainAllBut(int layer, int h, int b, int[] v, int count, int n) {
        int id = shape.buffer(layer, h);
        Arrays.fill(keep, 0, n, true);
        for (int i = 0; i < count; i++) {
            keep[v[i]] = false;
            remember(layer, h, b, v[i]);
            tracker.onRemove(id, v[i]);
        }
        store.retain(b, keep, (from, to) -> {
            view.move(b, from, to);
            tracker.onMove(id, from, to);
        });
        evicted += count;
    }

    /** Removes the given slots, largest first, so a moved slot is never a pending victim. */
    private void evictSwap(int layer, int h, int[] v, int count) {
        Arrays.sort(v, 0, count);
        int b = buffer(layer, h);
        int id = shape.buffer(layer, h);
        for (int i = count - 1; i >= 0; i--) {
            remember(layer, h, b, v[i]);
            tracker.onRemove(id, v[i]);
            int moved = store.removeSwap(b, v[i]);
            if (moved != v[i]) {
                view.move(b, moved, v[i]);
                tracker.onMove(id, moved, v[i]);
            }
        }
        evicted += count;
    }

    /** Folds the token in {@code slot} into the LESS residual before its slot is reused. */
    private void remember(int layer, int h, int b, int slot) {
        if (less == null) {
            return;
        }
        if (less.isEmpty(b) && less.centring()) {
            anchor(b);
        }
        store.readKey(b, slot, evictedKey, 0);
        store.readValue(b, slot, evictedValue, 0);
        less.absorb(b, layer, h, evictedKey, 0, evictedValue, 0);
    }

    /** Anchors buffer {@code b}'s residual on the mean of the keys resident at its first eviction. */
    private void anchor(int b) {
        // evictedValue is free until the victim is read: it serves as the sum here
        int n = store.size(b);
        Arrays.fill(evictedValue, 0f);
        for (int j = 0; j < n; j++) {
            store.readKey(b, j, evictedKey, 0);
            for (int i = 0; i < headDim; i++) {
                evictedValue[i] += evictedKey[i];
            }
        }
        for (int i = 0; i < headDim; i++) {
            evictedValue[i] /= n;
        }
        less.anchor(b, evictedValue, 0);
    }

    /** Rejects a victim count outside {@code [0, asked]}. */
    private void checkCount(int layer, int h, int chosen, int asked) {
        if (chosen < 0 || chosen > asked) {
            throw new IllegalStateException("policy " + policyName + " named " + chosen + " victims in layer "
                    + layer + ", kv-head " + h + ", outside [0, " + asked + "] (the number asked for)");
        }
    }

    /** Rejects victims outside the resident slots or named twice (either would corrupt the buffer). */
    private void checkVictims(int layer, int h, int[] v, int chosen, int n) {
        for (int i = 0; i < chosen; i++) {
            if (v[i] < 0 || v[i] >= n) {
                Arrays.fill(named, 0, n, false);
                throw new IllegalStateException("policy " + policyName + " named slot "
                        + v[i] + " of layer " + layer + ", kv-head " + h + ", outside [0, " + n + ")");
            }
            if (named[v[i]]) {
                Arrays.fill(named, 0, n, false);
                throw new IllegalStateException("policy " + policyName + " named slot "
                        + v[i] + " of layer " + layer + ", kv-head " + h + " twice");
            }
            named[v[i]] = true;
        }
        for (int i = 0; i < chosen; i++) {
            named[v[i]] = false;
        }
    }
}
