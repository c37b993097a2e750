package io.github.kvcache4j.model;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.util.List;

/**
 * Prefills several caches with one pass of the model. While no cache has evicted anything, every
 * cache holds the same keys and values and full attention gives the same output in each, so the
 * projections and the MLPs need to run only once: each cache stores the keys and values and
 * attends (so its policy observes the attention weights), and the first cache's output feeds the
 * model. A cache after the first attends only where its policy observes attention (its output
 * is discarded): on the layers whose tracker wants attention, and only for the queries at or
 * after a position the caller names (a policy that scores by the last queries of the prefill
 * needs no earlier ones). Comparing policies on one prompt this way costs one model pass plus the
 * observed part of attention per cache.
 */
public final class LockstepPrefill {

    private LockstepPrefill() {
    }

    /**
     * Runs {@code tokens} at positions {@code startPos ..} through {@code model} for every cache.
     * The caches must have room for the tokens without evicting, and must not drop tokens on their
     * own; the caller checks afterwards that each still holds every token
     * ({@link KvCache#stats()}), since an eviction would make the outputs differ.
     *
     * @param model the decoder
     * @param caches caches with this model's dimensions and no cross-layer sharing beyond the model's
     * @param tokens the token ids
     * @param startPos the position of {@code tokens[0]}
     * @param observeFrom per cache, the first query position its policy must observe; ignored for
     *     the first cache, which attends every query
     * @return the logits of the last token, {@code [vocab]}
     * @throws IllegalArgumentException if {@code caches} is empty, {@code observeFrom} has another
     *     length, or a cache does not fit the model
     */
    public static float[] forward(LlamaModel model, List<KvCache> caches, int[] tokens, int startPos,
                                  int[] observeFrom) {
        if (caches.isEmpty()) {
            throw new IllegalArgumentException("caches: empty list, need at least one cache");
        }
        if (observeFrom.length != caches.size()) {
            throw new IllegalArgumentException("observeFrom: " + observeFrom.length + " entries for "
                    + caches.size() + " caches");
        }
        LlamaConfig c = model.config();
        for (int i = 0; i < caches.size(); i++) {
            KvCacheConfig cc = caches.get(i).config();
            if (cc.layers() != c.layers() || cc.kvHeads() != c.kvHeads() || cc.queryHeads() != c.heads()
                    || cc.headDim() != c.headDim() || cc.sharing().readsLaterLayer()) {
                throw new IllegalArgumentException("caches[" + i + "]: layers/kvHeads/queryHeads/headDim " + cc.layers()
                        + "/" + cc.kvHeads() + "/" + cc.queryHeads() + "/" + cc.headDim()
                        + " must be the model's " + c.layers() + "/" + c.kvHeads() + "/" + c.heads() + "/"
                        + c.headDim() + ", without top-layer sharing");
            }
            for (int l = 0; l < c.layers(); l++) {
                if (cc.kvSourceLayers()[l] != c.kvSourceLayers()[l]) {
                    throw new IllegalArgumentException("caches[" + i + "]: kvSourceLayers[" + l + "] is "
                            + cc.kvSourceLayers()[l] + " but the model's is " + c.kvSourceLayers()[l]);
                }
            }
        }
        return model.forward(new Lockstep(caches, observeFrom), tokens, startPos, false);
    }

    /** Appends to every cache; attends in every cache, keeping the first one's output. */
    private static final class Lockstep implements KvAttention {
        private final List<KvCache> caches;
        /** {@code observes[i][layer]}: whether cache {@code i}'s policy watches attention there. */
        private final boolean[][] observes;
        private final int[] observeFrom;
        private float[] queryTail = new float[0];
        private float[] scratch = new float[0];

        Lockstep(List<KvCache> caches, int[] observeFrom) {
            this.caches = caches;
            this.observeFrom = observeFrom;
            this.observes = new boolean[caches.size()][];
            for (int i = 0; i < caches.size(); i++) {
                KvCacheConfig cc = caches.get(i).config();
                // A tracker's interest in attention is part of the policy's description, not of
                // its state, so a fresh tracker answers for the cache's own.
                EvictionPolicy.Tracker t = cc.policy().newTracker(cc.layers(), cc.kvHeads(),
                        cc.queryHeads() / cc.kvHeads(), cc.capacity());
                observes[i] = new boolean[cc.layers()];
                for (int l = 0; l < cc.layers(); l++) {
                    observes[i][l] = t.wantsAttention(cc.kvSourceLayers()[l]);
                }
            }
        }

        @Override
        public boolean storesKv(int layer) {
            return caches.getFirst().config().isSourceLayer(layer);
        }

        @Override
        public void append(int layer, int firstPosition, int tokens, float[] keys, float[] values) {
            for (KvCache cache : caches) {
                cache.append(layer, firstPosition, tokens, keys, values);
            }
        }

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
                float[] q = queries;
                if (skip > 0) {
                    q = tail(queries, skip * row, n * row);
                }
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
    }
}
