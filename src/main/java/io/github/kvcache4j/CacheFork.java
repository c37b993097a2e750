package io.github.kvcache4j;

import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;

/**
 * Forks a cache: a new cache with the same rows, positions, policy state, LESS residual and
 * statistics. On a shared {@link KvPool} the fork holds the same blocks (the pool counts their
 * holders, and each cache copies a shared block before it writes to it), so a fork costs the block
 * tables, not the rows; a cache on its private pool is copied into a new private pool.
 */
final class CacheFork {

    private CacheFork() {
    }

    /**
     * Returns a fork of the cache whose state is {@code from}, on {@code shared} (null: a private
     * pool). The original is unchanged whatever happens; a failure frees what the fork took.
     *
     * @throws UnsupportedOperationException if the policy's tracker cannot be copied
     */
    static KvCache fork(CacheParts from, KvPool shared) {
        EvictionPolicy.Tracker tracker = from.tracker().copy();
        if (tracker == null || tracker == from.tracker()) {
            throw new IllegalStateException("tracker " + from.tracker().getClass().getName()
                    + ".copy() must return a new tracker, got " + (tracker == null ? "null" : "itself"));
        }
        OffHeapKvCache fork = new OffHeapKvCache(from.config(), shared, tracker);
        try {
            copyInto(from, fork.parts());
            return fork;
        } catch (RuntimeException | Error e) {
            fork.close();
            throw e;
        }
    }

    /** Copies everything but the tracker from {@code from} into the empty cache {@code to}. */
    private static void copyInto(CacheParts from, CacheParts to) {
        KvStore source = from.store();
        to.store().forkFrom(source);
        for (int b = 0; b < source.buffers(); b++) {
            to.view().copyNorms(from.view(), b, source.size(b));
        }
        LessState less = from.less();
        if (less != null) {
            float[] state = new float[less.stateFloats()];
            for (int b = 0; b < source.buffers(); b++) {
                less.save(b, state);
                to.less().restore(b, less.absorbed(b), state);
            }
        }
        to.eviction().evicted(from.eviction().evicted());
        System.arraycopy(from.lastPosition(), 0, to.lastPosition(), 0, from.lastPosition().length);
    }
}
