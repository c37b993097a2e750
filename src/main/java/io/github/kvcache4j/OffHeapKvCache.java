package io.github.kvcache4j;

import io.github.kvcache4j.kernel.KernelProvider;
import io.github.kvcache4j.kernel.Kernels;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.store.BlockPool;
import io.github.kvcache4j.store.HadamardRotation;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.nio.channels.WritableByteChannel;
import java.util.Arrays;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link KvCache} over an off-heap {@link KvStore}: checks arguments ({@link Arguments}),
 * makes room ({@link Eviction}), stores rows, and runs attention per kv-head
 * ({@link HeadAttention}), fanned out on the config's executor ({@link FanOut}).
 */
final class OffHeapKvCache implements KvCache {

    private static final Logger LOG = LoggerFactory.getLogger(KvCache.class);
    private static final Cleaner CLEANER = Cleaner.create();
    /** The most blocks one pool holds (its tables are Java arrays). */
    private static final long MAX_BLOCKS = Integer.MAX_VALUE - 8;

    private final KvCacheConfig config;
    /** The pool the blocks come from when shared with other caches; null for a private pool. */
    private final KvPool sharedPool;
    private final Arguments args;
    private final SharingPlan plan;
    private final int kvHeads;
    private final int headDim;
    private final int[] lastPosition;
    private final KvStore store;
    private final EvictionPolicy.Shape shape;
    private final EvictionPolicy.Tracker tracker;
    private final TrackerViews.Buffer view;
    private final TrackerViews.Weights attention;
    private final Kernels kernels;
    private final LessState less;
    private final Eviction eviction;
    private final BudgetCompression budgets;
    private final HeadAttention[] heads;
    private final FanOut fanOut;
    /** Per kv-head, the most tokens the append being checked may leave resident. */
    private final int[] limit;
    private final float[] rowKeys;
    private final float[] rowValues;
    private final FloatRows.OfArray keysArray = new FloatRows.OfArray();
    private final FloatRows.OfArray valuesArray = new FloatRows.OfArray();
    private final FloatRows.OfSegment keysSegment = new FloatRows.OfSegment();
    private final FloatRows.OfSegment valuesSegment = new FloatRows.OfSegment();
    private final FloatRows.OfArray queriesArray = new FloatRows.OfArray();
    private final Cleaner.Cleanable cleanable;
    /** The thread inside a call, to reject calls from policy callbacks; null between calls. */
    private Thread inside;
    private final Failure failure = new Failure();
    private volatile boolean closed;

    OffHeapKvCache(KvCacheConfig config, KvPool shared) {
        this(config, shared, null);
    }

    /**
     * Creates an empty cache on {@code shared} (null: a private pool) whose policy state is
     * {@code given}, the state a fork or a load fills in afterwards (null: a new tracker).
     */
    OffHeapKvCache(KvCacheConfig config, KvPool shared, EvictionPolicy.Tracker given) {
        this.config = config;
        this.sharedPool = shared;
        this.args = new Arguments(config);
        this.plan = config.sharing();
        int layers = config.layers();
        this.kvHeads = config.kvHeads();
        this.headDim = config.headDim();
        this.shape = new EvictionPolicy.Shape(layers, kvHeads, config.groupSize(), config.capacity());
        this.tracker = given != null ? given : config.policy().newTracker(shape);
        if (tracker == null) {
            throw new IllegalArgumentException("policy " + config.policy().name() + " returned no tracker");
        }
        this.kernels = KernelProvider.kernels();
        this.lastPosition = new int[layers];
        Arrays.fill(lastPosition, -1);
        this.rowKeys = new float[kvHeads * headDim];
        this.rowValues = new float[kvHeads * headDim];
        int buffers = plan.sourceCount() * kvHeads;
        this.less = config.less() == null ? null : new LessState(config.less(), buffers);
        // Off-heap memory last: a policy that rejects the shape, or a failed heap allocation,
        // must not leave a reserved arena behind.
        if (shared != null && (shared.headDim() != headDim || shared.dtype() != config.dtype())) {
            throw new IllegalArgumentException("pool: its blocks hold " + shared.headDim() + " " + shared.dtype()
                    + " elements per row, the config " + headDim + " " + config.dtype());
        }
        BlockPool pool = shared != null ? shared.blocks() : privatePool(buffers, config);
        HadamardRotation rotation = config.keyRotationSeed().isPresent()
                ? new HadamardRotation(headDim, config.keyRotationSeed().getAsLong()) : null;
        this.store = new KvStore(buffers, headDim, config.capacity(), config.dtype(), rotation, pool, shared == null);
        this.limit = new int[kvHeads];
        this.view = new TrackerViews.Buffer(store);
        this.attention = new TrackerViews.Weights(config.groupSize(), KeyTiles.roundToTiles(config.capacity()),
                config.headDim());
        this.eviction = new Eviction(config, store, shape, tracker, view, less, failure);
        this.budgets = new BudgetCompression(config, store, less, eviction, shape, tracker, view);
        this.heads = new HeadAttention[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            heads[h] = new HeadAttention(h, config, store, less, kernels);
        }
        this.fanOut = config.executor() == null ? null : new FanOut(config.executor(), heads);
        this.cleanable = CLEANER.register(this, new Leak(store));
    }

    /** A pool with blocks for every buffer at full capacity: what a cache without a shared pool reserves. */
    private static BlockPool privatePool(int buffers, KvCacheConfig config) {
        long blocks = (long) buffers * KvStore.blocksFor(config.capacity());
        if (blocks > MAX_BLOCKS) {
            throw new IllegalArgumentException("the cache needs " + blocks + " blocks of "
                    + KvPool.BLOCK_TOKENS + " tokens (source layers x kvHeads x ceil(capacity / "
                    + KvPool.BLOCK_TOKENS + ")), more than a pool holds (" + MAX_BLOCKS + ")");
        }
        return new BlockPool(config.dtype().rowBytes(config.headDim()), (int) blocks);
    }

    @Override
    public KvCacheConfig config() {
        return config;
    }

    @Override
    public void append(int layer, int firstPosition, int tokens, float[] keys, float[] values) {
        enter();
        try {
            append(layer, firstPosition, tokens, keysArray.of("keys", keys), valuesArray.of("values", values));
        } finally {
            keysArray.clear();
            valuesArray.clear();
            leave();
        }
    }

    @Override
    public void append(int layer, int firstPosition, int tokens, MemorySegment keys, MemorySegment values) {
        enter();
        try {
            append(layer, firstPosition, tokens, keysSegment.of("keys", keys), valuesSegment.of("values", values));
        } finally {
            keysSegment.clear();
            valuesSegment.clear();
            leave();
        }
    }

    private void append(int layer, int firstPosition, int tokens, FloatRows keys, FloatRows values) {
        args.checkLayer(layer);
        args.checkAppend(layer, plan.sourceOf(layer), firstPosition, tokens, lastPosition[layer]);
        int row = kvHeads * headDim;
        args.checkStorableKeys(keys, (long) tokens * row);
        args.checkStorable(values, (long) tokens * row);
        int base = plan.storageIndex(layer) * kvHeads;
        boolean evict;
        try {
            lendBlocks(layer, base, tokens);
            evict = eviction.chooseRoom(layer, tokens, limit);
            eviction.unshareForAppend(layer);
        } catch (RuntimeException | Error e) {
            for (int h = 0; h < kvHeads; h++) {
                store.trim(base + h);
            }
            throw e;
        }
        try {
            if (evict) {
                eviction.commitRoom(layer);
            }
            for (int t = 0; t < tokens; t++) {
                int position = firstPosition + t;
                keys.copyTo((long) t * row, rowKeys, row);
                values.copyTo((long) t * row, rowValues, row);
                for (int h = 0; h < kvHeads; h++) {
                    int off = h * headDim;
                    int b = base + h;
                    int slot = store.append(b, rowKeys, off, rowValues, off, position);
                    view.keyNorm(b, slot, kernels.l2Norm(rowKeys, off, headDim));
                    tracker.onAppend(shape.buffer(layer, h), view.of(layer, h, b), slot);
                }
            }
            lastPosition[layer] = firstPosition + tokens - 1;
            for (int h = 0; h < kvHeads; h++) {
                store.trim(base + h);
            }
        } catch (RuntimeException | Error e) {
            failure.record(e);
            throw e;
        }
    }

    /**
     * Takes from the pool the blocks each kv-head of {@code layer} needs to hold
     * {@code min(resident + tokens, capacity)} tokens, and sets {@link #limit} to what it may
     * hold. With {@link KvPool.Exhaustion#THROW} a pool that falls short fails the append; with
     * {@code EVICT} the limit shrinks to the blocks the kv-head holds and the policy makes room.
     */
    private void lendBlocks(int layer, int base, int tokens) {
        int capacity = config.capacity();
        for (int h = 0; h < kvHeads; h++) {
            int b = base + h;
            int wanted = Math.min(store.size(b) + tokens, capacity);
            if (store.ensure(b, wanted)) {
                limit[h] = capacity;
                continue;
            }
            int room = store.heldBlocks(b) * KvPool.BLOCK_TOKENS;
            boolean evict = config.poolExhaustion() == KvPool.Exhaustion.EVICT;
            if (!evict || room < tokens) {
                PoolStats p = new PoolStats(store.pool().blocks(), store.pool().usedBlocks(),
                        store.pool().peakBlocks(), store.pool().blockBytes());
                throw new PoolExhaustedException("appending " + tokens + " tokens to layer " + layer + ", kv-head "
                        + h + " needs " + (KvStore.blocksFor(wanted) - store.heldBlocks(b)) + " more blocks of "
                        + p.blockBytes() + " bytes, but the pool of " + p.blocks() + " blocks (" + p.reservedBytes()
                        + " bytes) lends " + p.usedBlocks() + " (" + p.usedBytes() + " bytes) and has none free"
                        + (evict ? " (the kv-head holds room for " + room + " tokens only)" : ""));
            }
            limit[h] = Math.min(room, capacity);
        }
    }

    @Override
    public void attend(int layer, int firstPosition, int tokens, float[] queries, float[] out) {
        enter();
        try {
            args.checkLayer(layer);
            args.checkTokens(tokens);
            Arguments.checkFirstPosition(firstPosition, tokens);
            int row = config.queryHeads() * headDim;
            Arguments.checkFinite(queriesArray.of("queries", queries), (long) tokens * row);
            Objects.requireNonNull(out, "out");
            if (out.length != (long) tokens * row) {
                throw new IllegalArgumentException("out must have " + (long) tokens * row + " floats, got " + out.length);
            }
            Arguments.checkNotAliased(queries, out);
            args.checkVisible(store, layer, firstPosition);
            attendChecked(layer, firstPosition, tokens, queries, out, row);
        } finally {
            queriesArray.clear();
            for (HeadAttention h : heads) {
                h.release();
            }
            attention.release();
            leave();
        }
    }

    private void attendChecked(int layer, int firstPosition, int tokens, float[] queries, float[] out, int row) {
        int source = plan.sourceOf(layer);
        int base = plan.storageIndex(layer) * kvHeads;
        boolean readsLater = source > layer;
        boolean report = tracker.wantsAttention(source);
        try {
            for (int t = 0; t < tokens; t++) {
                int queryPosition = firstPosition + t;
                for (int h = 0; h < kvHeads; h++) {
                    heads[h].prepare(layer, base + h, readsLater, queryPosition, queries, out, t * row, report);
                }
                if (fanOut == null) {
                    for (HeadAttention h : heads) {
                        h.run();
                    }
                } else {
                    fanOut.runAll();
                }
                if (report) {
                    for (int h = 0; h < kvHeads; h++) {
                        HeadAttention w = heads[h];
                        if (!w.empty()) {
                            tracker.onAttention(shape.buffer(source, h), view.of(source, h, base + h),
                                    attention.of(w.normalisedWeights(), w.visible(), w.queryPosition(), layer,
                                            queries, t * row + h * config.groupSize() * headDim));
                        }
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            failure.record(e);
            throw e;
        }
        if (report) {
            eviction.dropVoluntary(source);
        }
    }

    @Override
    public void compress(double ratio) {
        guarded(() -> {
            Arguments.checkRatio(ratio);
            eviction.compress(n -> (int) Math.floor(n * (1.0 - ratio)));
        });
    }

    @Override
    public void compress(int targetTokens) {
        guarded(() -> {
            Arguments.checkTarget(targetTokens);
            eviction.compress(n -> Math.min(n, targetTokens));
        });
    }

    @Override
    public void compress(double ratio, Allocation allocation) {
        guarded(() -> budgets.toRatio(ratio, allocation));
    }

    @Override
    public void compressToTokens(long totalTokens, Allocation allocation) {
        guarded(() -> budgets.toTokens(totalTokens, allocation));
    }

    @Override
    public void compressToBytes(long bytes, Allocation allocation) {
        guarded(() -> budgets.toBytes(bytes, allocation));
    }

    /** Runs a call that is not on the decode path between {@link #enter} and {@link #leave}. */
    private void guarded(Runnable call) {
        enter();
        try {
            call.run();
        } finally {
            leave();
        }
    }

    @Override
    public void reset() {
        checkOpen();
        checkNotInside();
        inside = Thread.currentThread();
        try {
            store.clear();
            tracker.reset();
            Arrays.fill(lastPosition, -1);
            eviction.reset();
            if (less != null) {
                less.clear();
            }
            failure.clear();
        } catch (RuntimeException | Error e) {
            failure.record(e);
            throw e;
        } finally {
            leave();
        }
    }

    @Override
    public KvCache fork() {
        enter();
        try {
            return CacheFork.fork(parts(), sharedPool);
        } finally {
            leave();
        }
    }

    @Override
    public void save(WritableByteChannel out) throws IOException {
        enter();
        try {
            CacheWriter.write(parts(), Objects.requireNonNull(out, "out"));
        } finally {
            leave();
        }
    }

    /** Returns the state a fork copies and a save writes: valid while the caller is inside a call. */
    CacheParts parts() {
        return new CacheParts(config, store, tracker, view, less, eviction, lastPosition);
    }

    @Override
    public CacheStats stats() {
        int layers = config.layers();
        int[][] resident = new int[layers][kvHeads];
        long residentSlots = 0;
        if (!closed) {
            for (int l = 0; l < layers; l++) {
                int base = plan.storageIndex(l) * kvHeads;
                for (int h = 0; h < kvHeads; h++) {
                    resident[l][h] = store.size(base + h);
                    if (plan.isSource(l)) {
                        residentSlots += resident[l][h];
                    }
                }
            }
        }
        return new CacheStats(resident, eviction.evicted(), residentSlots * store.bytesPerSlot(),
                store.reservedBytes(), less == null ? 0 : less.bytes(), closed ? 0 : store.heldBytes());
    }

    @Override
    public int[] positions(int layer, int kvHead) {
        enter();
        try {
            args.checkLayer(layer);
            args.checkKvHead(kvHead);
            int b = plan.storageIndex(layer) * kvHeads + kvHead;
            return Arrays.copyOf(store.positions(b), store.size(b));
        } finally {
            leave();
        }
    }

    @Override
    public int read(int layer, int kvHead, float[] keys, float[] values) {
        enter();
        try {
            args.checkLayer(layer);
            args.checkKvHead(kvHead);
            Objects.requireNonNull(keys, "keys");
            Objects.requireNonNull(values, "values");
            int b = plan.storageIndex(layer) * kvHeads + kvHead;
            int n = store.size(b);
            if (keys.length < (long) n * headDim || values.length < (long) n * headDim) {
                throw new IllegalArgumentException("keys and values need " + (long) n * headDim
                        + " floats, got " + keys.length + " and " + values.length);
            }
            for (int j = 0; j < n; j++) {
                store.readKey(b, j, keys, j * headDim);
                store.readValue(b, j, values, j * headDim);
            }
            return n;
        } finally {
            leave();
        }
    }

    @Override
    public void close() {
        if (inside == Thread.currentThread()) {
            throw new IllegalStateException("close called from inside a cache call (a policy callback)");
        }
        if (closed) {
            return;
        }
        closed = true;
        try {
            store.close();
            cleanable.clean();
        } finally {
            tracker.release();
        }
    }

    /** Rejects calls on a closed or failed cache and calls from inside a call; marks the call as running. */
    private void enter() {
        checkOpen();
        checkNotInside();
        failure.check();
        inside = Thread.currentThread();
    }

    private void leave() {
        inside = null;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("cache is closed");
        }
    }

    private void checkNotInside() {
        if (inside == Thread.currentThread()) {
            throw new IllegalStateException("a cache may not be called from inside one of its own calls "
                    + "(a policy or feature-map callback)");
        }
    }

    /**
     * Frees the off-heap memory of a cache that was never closed, once it is unreachable, and
     * says so once per cache. Holds the store, not the cache, so the cache can become unreachable.
     */
    private record Leak(KvStore store) implements Runnable {
        @Override
        public void run() {
            long bytes = store.reservedBytes();
            if (bytes > 0) {
                LOG.warn("a KvCache holding {} off-heap bytes was not closed; freed when it became unreachable",
                        bytes);
                store.close();
            }
        }
    }
}
