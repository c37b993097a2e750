package io.github.kvcache4j;

import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.util.Objects;

/**
 * Compression of a whole cache to one budget (a ratio, a token count or a byte count) that an
 * {@link Allocation} shares among the buffers: the budget is checked and planned in full
 * ({@link Allocator}) before {@link Eviction} removes anything.
 */
final class BudgetCompression {

    private final String policyName;
    private final int protectedTokens;
    private final int kvHeads;
    private final KvStore store;
    private final LessState less;
    private final Eviction eviction;
    private final Allocator allocator;
    private final Allocator.Scores scores;
    private final int[] sizes;

    BudgetCompression(KvCacheConfig config, KvStore store, LessState less, Eviction eviction,
                      EvictionPolicy.Shape shape, EvictionPolicy.Tracker tracker, TrackerViews.Buffer view) {
        this.policyName = config.policy().name();
        this.protectedTokens = config.policy().protectedTokens();
        this.kvHeads = config.kvHeads();
        this.store = store;
        this.less = less;
        this.eviction = eviction;
        SharingPlan plan = config.sharing();
        int[] layers = new int[plan.sourceCount()];
        for (int l = 0; l < plan.layers(); l++) {
            if (plan.isSource(l)) {
                layers[plan.storageIndex(l)] = l;
            }
        }
        this.allocator = new Allocator(layers, kvHeads, config.capacity());
        this.scores = (b, count, out) -> {
            int layer = layers[b / kvHeads];
            int h = b % kvHeads;
            return tracker.keepScores(shape.buffer(layer, h), view.of(layer, h, b), count, out);
        };
        this.sizes = new int[store.buffers()];
    }

    /** {@link KvCache#compress(double, Allocation)}: never below what the allocation keeps at least. */
    void toRatio(double ratio, Allocation allocation) {
        Arguments.checkRatio(ratio);
        Objects.requireNonNull(allocation, "allocation");
        long total = 0;
        for (int b = 0; b < store.buffers(); b++) {
            total += (long) Math.floor(store.size(b) * (1.0 - ratio));
        }
        prepare(allocation, total);
        apply(Math.max(total, allocator.minimum()), allocation, false);
    }

    /** {@link KvCache#compressToTokens}. */
    void toTokens(long totalTokens, Allocation allocation) {
        if (totalTokens < 0) {
            throw new IllegalArgumentException("totalTokens must be >= 0, got " + totalTokens);
        }
        Objects.requireNonNull(allocation, "allocation");
        prepare(allocation, totalTokens);
        long min = allocator.minimum();
        if (totalTokens < min) {
            throw new IllegalArgumentException("totalTokens " + totalTokens + " is below the " + min
                    + " tokens that allocation " + allocation + " keeps at least with policy " + policyName);
        }
        apply(Math.min(totalTokens, allocator.total()), allocation, true);
    }

    /**
     * {@link KvCache#compressToBytes}: the largest token budget whose blocks, plus the LESS
     * state, fit in {@code bytes}.
     */
    void toBytes(long bytes, Allocation allocation) {
        if (bytes < 0) {
            throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
        }
        Objects.requireNonNull(allocation, "allocation");
        long fixed = less == null ? 0 : less.bytes();
        long blockBytes = store.pool().blockBytes();
        prepare(allocation, Math.max(0, bytes - fixed) / blockBytes * KvPool.BLOCK_TOKENS);
        long lo = allocator.minimum();
        long least = held(lo) + fixed;
        if (least > bytes) {
            throw new IllegalArgumentException("bytes " + bytes + " is below the " + least + " bytes that allocation "
                    + allocation + " needs at least with policy " + policyName + " (" + lo + " tokens in blocks of "
                    + blockBytes + " bytes per " + KvPool.BLOCK_TOKENS + " tokens" + (fixed > 0 ? ", and " + fixed
                    + " bytes of LESS state)" : ")"));
        }
        long hi = allocator.total();
        while (lo < hi) {
            long mid = lo + (hi - lo + 1) / 2;
            if (held(mid) + fixed <= bytes) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        apply(lo, allocation, true);
    }

    private void prepare(Allocation allocation, long hint) {
        for (int b = 0; b < sizes.length; b++) {
            sizes[b] = store.size(b);
        }
        allocator.prepare(allocation, sizes, protectedTokens, hint, scores, policyName);
    }

    /** Returns the bytes of the blocks the buffers hold under a plan of {@code total} tokens. */
    private long held(long total) {
        allocator.plan(total);
        long blocks = 0;
        for (int b = 0; b < sizes.length; b++) {
            blocks += KvStore.blocksFor(allocator.kept(b));
        }
        return blocks * store.pool().blockBytes();
    }

    /** Carries out the plan of {@code total} tokens; {@code strict}: the policy must not keep more. */
    private void apply(long total, Allocation allocation, boolean strict) {
        allocator.plan(total);
        eviction.compress(allocator, allocation.sinks(), strict);
    }
}
