package io.github.kvcache4j.eval;

import io.github.kvcache4j.Allocation;
import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Several caches that a decoder prefills as one. While no cache has evicted anything, every cache
 * holds the same keys and values and full attention gives the same output in each, so the model
 * needs to run only once: every append goes to every cache, and the first cache's attention
 * output feeds the model. The others attend only where their policy observes attention (their
 * output is discarded): on the layers whose tracker wants attention, and only for the queries at
 * or after a position the caller names (a policy that scores by the last queries of the prefill
 * needs no earlier ones). Only the prefill calls are supported; the caller checks afterwards that
 * no cache evicted ({@link CacheStats#evicted()}), since an eviction makes the outputs differ.
 */
final class LockstepCache implements KvCache {

    private final List<KvCache> caches;
    /** {@code observes[i][layer]}: whether cache {@code i}'s policy watches attention there. */
    private final boolean[][] observes;
    private final int[] observeFrom;
    private float[] queryTail = new float[0];
    private float[] scratch = new float[0];

    /**
     * Joins {@code caches}, which must have one shape (the first one's config is this cache's).
     *
     * @param observeFrom per cache, the first query position its policy must observe; ignored for
     *     the first cache, which attends every query
     * @throws IllegalArgumentException if {@code caches} is empty, {@code observeFrom} has another
     *     length, or a cache has another shape than the first
     */
    LockstepCache(List<KvCache> caches, int[] observeFrom) {
        if (caches.isEmpty()) {
            throw new IllegalArgumentException("caches: empty list, need at least one cache");
        }
        if (observeFrom.length != caches.size()) {
            throw new IllegalArgumentException("observeFrom: " + observeFrom.length + " entries for "
                    + caches.size() + " caches");
        }
        KvCacheConfig first = caches.getFirst().config();
        this.caches = List.copyOf(caches);
        this.observeFrom = observeFrom.clone();
        this.observes = new boolean[caches.size()][];
        for (int i = 0; i < caches.size(); i++) {
            KvCacheConfig cc = caches.get(i).config();
            if (cc.layers() != first.layers() || cc.kvHeads() != first.kvHeads()
                    || cc.queryHeads() != first.queryHeads() || cc.headDim() != first.headDim()
                    || !cc.sharing().equals(first.sharing())) {
                throw new IllegalArgumentException("caches[" + i + "]: shape or sharing " + cc
                        + " differs from caches[0]: " + first);
            }
            // A tracker's interest in attention is part of the policy's description, not of its
            // state, so a fresh tracker answers for the cache's own.
            EvictionPolicy.Tracker t = cc.policy().newTracker(new EvictionPolicy.Shape(cc.layers(), cc.kvHeads(),
                    cc.groupSize(), cc.capacity()));
            observes[i] = new boolean[cc.layers()];
            for (int l = 0; l < cc.layers(); l++) {
                observes[i][l] = t.wantsAttention(cc.kvSourceLayers()[l]);
            }
        }
    }

    /** {@inheritDoc} The first cache's configuration. */
    @Override
    public KvCacheConfig config() {
        return caches.getFirst().config();
    }

    /** {@inheritDoc} Appends to every cache. */
    @Override
    public void append(int layer, int firstPosition, int tokens, float[] keys, float[] values) {
        for (KvCache cache : caches) {
            cache.append(layer, firstPosition, tokens, keys, values);
        }
    }

    /** {@inheritDoc} Appends to every cache. */
    @Override
    public void append(int layer, int firstPosition, int tokens, MemorySegment keys, MemorySegment values) {
        for (KvCache cache : caches) {
            cache.append(layer, firstPosition, tokens, keys, values);
        }
    }

    /** {@inheritDoc} The first cache's output; the others attend where their policy observes. */
    @Override
    public void attend(int layer, int firstPosition, int tokens, float[] queries, float[] out) {
        caches.getFirst().attend(layer, firstPosition, tokens, queries, out);
        int row = queries.length / tokens;
        for (int i = 1; i < caches.size(); i++) {
            int skip = Math.max(0, observeFrom[i] - firstPosition);
            if (!observes[i][layer] || skip >= tokens) {
                continue;
            }
            int n = tokens - skip;
            float[] q = skip == 0 ? queries : tail(queries, skip * row, n * row);
            if (scratch.length != n * row) {
                scratch = new float[n * row];
            }
            caches.get(i).attend(layer, firstPosition + skip, n, q, scratch);
        }
    }

    /** Copies {@code length} floats of {@code a} from {@code from} into a reused array. */
    private float[] tail(float[] a, int from, int length) {
        if (queryTail.length != length) {
            queryTail = new float[length];
        }
        System.arraycopy(a, from, queryTail, 0, length);
        return queryTail;
    }

    /** Not supported: each cache is compressed on its own after the prefill. */
    @Override
    public void compress(double ratio) {
        throw compressPerCache();
    }

    /** Not supported: each cache is compressed on its own after the prefill. */
    @Override
    public void compress(int targetTokens) {
        throw compressPerCache();
    }

    /** Not supported: each cache is compressed on its own after the prefill. */
    @Override
    public void compress(double ratio, Allocation allocation) {
        throw compressPerCache();
    }

    /** Not supported: each cache is compressed on its own after the prefill. */
    @Override
    public void compressToTokens(long totalTokens, Allocation allocation) {
        throw compressPerCache();
    }

    /** Not supported: each cache is compressed on its own after the prefill. */
    @Override
    public void compressToBytes(long bytes, Allocation allocation) {
        throw compressPerCache();
    }

    private static UnsupportedOperationException compressPerCache() {
        return new UnsupportedOperationException("compress each cache of the lockstep on its own");
    }

    /** {@inheritDoc} Resets every cache. */
    @Override
    public void reset() {
        caches.forEach(KvCache::reset);
    }

    /** {@inheritDoc} The first cache's occupancy. */
    @Override
    public CacheStats stats() {
        return caches.getFirst().stats();
    }

    /** {@inheritDoc} The first cache's positions. */
    @Override
    public int[] positions(int layer, int kvHead) {
        return caches.getFirst().positions(layer, kvHead);
    }

    /** {@inheritDoc} The first cache's keys and values. */
    @Override
    public int read(int layer, int kvHead, float[] keys, float[] values) {
        return caches.getFirst().read(layer, kvHead, keys, values);
    }

    /** Does nothing: the caller owns and closes the caches. */
    @Override
    public void close() {
    }
}
