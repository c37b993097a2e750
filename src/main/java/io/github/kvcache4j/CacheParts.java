package io.github.kvcache4j;

import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;

/**
 * The state of one cache that a fork copies and a save writes: the stored rows and positions, the
 * policy's tracker, the key norms the tracker views report, the LESS residual (null without one),
 * the evicted count and the last position appended to each layer. Valid while the cache's
 * owner is inside one of its calls; the arrays are the cache's own, not copies.
 */
record CacheParts(KvCacheConfig config, KvStore store, EvictionPolicy.Tracker tracker, TrackerViews.Buffer view,
                  LessState less, Eviction eviction, int[] lastPosition) {
}
