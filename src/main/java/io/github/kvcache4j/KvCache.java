package io.github.kvcache4j;

import io.github.kvcache4j.kernel.KernelProvider;
import io.github.kvcache4j.kernel.Kernels;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * The key/value cache of one sequence. An inference loop appends, per layer, the keys (after RoPE)
 * and values of each token, and asks for attention over what the cache holds; the cache keeps at
 * most {@link KvCacheConfig#capacity()} tokens per (layer, kv-head) off-heap and lets its
 * {@link EvictionPolicy} decide what to forget.
 *
 * <p>Layouts: one token's keys or values are {@code [kvHead][headDim]}; its queries and outputs
 * {@code [queryHead][headDim]}; a chunk of tokens stacks these, token-major. Query head {@code h}
 * reads kv-head {@code h / groupSize}.
 *
 * <p>Every mutating call validates all its arguments before it changes anything: on an exception
 * the cache is as it was. Not thread-safe: one thread at a time may call a cache; attention fans
 * out over kv-heads on the configured {@link java.util.concurrent.Executor}, if any.
 *
 * <p>With {@link KvCacheConfig.Builder#less} the cache also keeps a LESS residual: every token it
 * evicts, on any path, is folded into a constant-size state that attention reads
 * ({@code docs/less.md}).
 */
public final class KvCache implements AutoCloseable {

    private static final ValueLayout.OfFloat F32 =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.nativeOrder());

    private final KvCacheConfig config;
    private final int layers;
    private final int kvHeads;
    private final int queryHeads;
    private final int group;
    private final int headDim;
    private final int capacity;
    private final int[] source;
    /** Per layer, the store buffer of its source's kv-head 0; -1 never happens (sources map to themselves). */
    private final int[] bufferBase;
    private final KvStore store;
    private final EvictionPolicy.Shape shape;
    private final EvictionPolicy.Tracker tracker;
    private final TrackerViews.Buffer view;
    private final TrackerViews.Weights attention;
    private final Kernels kernels;
    private final float scale;
    /** Row stride of the attention weight buffers: the capacity in whole key tiles. */
    private final int stride;
    private final int[] lastPosition;
    private final HeadWork[] work;
    private final FanOut fanOut;
    private final int[][] victims;
    private final boolean[] keep;
    /** All false between calls; marks the victims {@link #checkVictims} has seen. */
    private final boolean[] named;
    private final int[] need;
    private final float[] segmentKeys;
    private final float[] segmentValues;
    /** The LESS residual, or null. */
    private final LessState less;
    private final float[] evictedKey;
    private final float[] evictedValue;
    private long evicted;
    private volatile boolean closed;

    private KvCache(KvCacheConfig config) {
        this.config = config;
        this.layers = config.layers();
        this.kvHeads = config.kvHeads();
        this.queryHeads = config.queryHeads();
        this.group = config.groupSize();
        this.headDim = config.headDim();
        this.capacity = config.capacity();
        this.source = config.kvSourceLayers();
        this.bufferBase = new int[layers];
        int sources = 0;
        for (int l = 0; l < layers; l++) {
            if (source[l] == l) {
                bufferBase[l] = sources++ * kvHeads;
            }
        }
        for (int l = 0; l < layers; l++) {
            bufferBase[l] = bufferBase[source[l]];
        }
        this.shape = new EvictionPolicy.Shape(layers, kvHeads, group, capacity);
        this.tracker = config.policy().newTracker(shape);
        this.kernels = KernelProvider.kernels();
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        this.stride = Kernels.roundToTiles(capacity);
        this.attention = new TrackerViews.Weights(group, stride);
        this.lastPosition = new int[layers];
        Arrays.fill(lastPosition, -1);
        this.victims = new int[kvHeads][capacity];
        this.keep = new boolean[capacity];
        this.named = new boolean[capacity];
        this.need = new int[kvHeads];
        this.segmentKeys = new float[kvHeads * headDim];
        this.segmentValues = new float[kvHeads * headDim];
        this.less = config.less() == null ? null : new LessState(config.less(), sources * kvHeads);
        this.evictedKey = new float[headDim];
        this.evictedValue = new float[headDim];
        this.work = new HeadWork[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            work[h] = new HeadWork(h);
        }
        this.fanOut = config.executor() == null ? null : new FanOut(config.executor(), work);
        // Off-heap memory last: a policy that rejects the shape, or a failed heap allocation,
        // must not leave a reserved arena behind.
        this.store = new KvStore(sources * kvHeads, headDim, capacity, config.dtype());
        this.view = new TrackerViews.Buffer(store);
    }

    /**
     * Creates a cache and reserves its off-heap memory.
     *
     * @throws NullPointerException if {@code config} is null
     */
    public static KvCache create(KvCacheConfig config) {
        return new KvCache(Objects.requireNonNull(config, "config"));
    }

    /** Returns the configuration this cache was created with. */
    public KvCacheConfig config() {
        return config;
    }

    /**
     * Appends one token's keys (already rotated) and values to {@code layer}.
     *
     * @param keys {@code kvHeads * headDim} floats
     * @param values {@code kvHeads * headDim} floats
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or the policy cannot make room
     */
    public void append(int layer, int position, float[] keys, float[] values) {
        append(layer, position, 1, keys, values);
    }

    /**
     * Appends a chunk of {@code tokens} consecutive tokens at positions
     * {@code firstPosition .. firstPosition + tokens - 1}. Positions of a layer must increase.
     * When the chunk does not fit, the policy names victims among the tokens already resident.
     *
     * @param keys {@code tokens * kvHeads * headDim} floats, token-major
     * @param values {@code tokens * kvHeads * headDim} floats, token-major
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or the policy cannot make room
     */
    public void append(int layer, int firstPosition, int tokens, float[] keys, float[] values) {
        checkOpen();
        checkAppend(layer, firstPosition, tokens);
        int row = kvHeads * headDim;
        checkArray("keys", keys, (long) tokens * row);
        checkArray("values", values, (long) tokens * row);
        checkStorable("keys", keys, 0, tokens * row);
        checkStorable("values", values, 0, tokens * row);
        makeRoom(layer, tokens);
        for (int t = 0; t < tokens; t++) {
            store(layer, firstPosition + t, keys, values, t * row);
        }
        lastPosition[layer] = firstPosition + tokens - 1;
    }

    /**
     * Appends a chunk from native memory: {@code keys} and {@code values} hold
     * {@code tokens * kvHeads * headDim} floats in native byte order, token-major.
     *
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or the policy cannot make room
     */
    public void append(int layer, int firstPosition, int tokens, MemorySegment keys, MemorySegment values) {
        checkOpen();
        checkAppend(layer, firstPosition, tokens);
        int row = kvHeads * headDim;
        checkSegment("keys", keys, (long) tokens * row);
        checkSegment("values", values, (long) tokens * row);
        for (int t = 0; t < tokens; t++) {
            checkStorable("keys", keys, (long) t * row, row);
            checkStorable("values", values, (long) t * row, row);
        }
        makeRoom(layer, tokens);
        for (int t = 0; t < tokens; t++) {
            MemorySegment.copy(keys, F32, (long) t * row * 4, segmentKeys, 0, row);
            MemorySegment.copy(values, F32, (long) t * row * 4, segmentValues, 0, row);
            store(layer, firstPosition + t, segmentKeys, segmentValues, 0);
        }
        lastPosition[layer] = firstPosition + tokens - 1;
    }

    /**
     * Attention of one query token at {@code position}: for every query head,
     * {@code softmax(q·Kᵀ/√d)·V} over the resident tokens of {@code layer}'s source whose position
     * is at most {@code position}. A layer that reads a later layer (LCKV's top-layer mode)
     * attends before its source has stored {@code position}, so it sees the previous tokens;
     * when it sees none (the first token) its output is zero. For every other layer a query that
     * sees no resident token is an error.
     *
     * @param queries {@code queryHeads * headDim} floats
     * @param out receives {@code queryHeads * headDim} floats
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed
     */
    public void attend(int layer, int position, float[] queries, float[] out) {
        attend(layer, position, 1, queries, out);
    }

    /**
     * Causal attention of a chunk of query tokens at positions {@code firstPosition ..}: query
     * {@code t} sees the resident tokens at positions up to {@code firstPosition + t}.
     *
     * @param queries {@code tokens * queryHeads * headDim} floats, token-major
     * @param out receives {@code tokens * queryHeads * headDim} floats
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed
     */
    public void attend(int layer, int firstPosition, int tokens, float[] queries, float[] out) {
        checkOpen();
        checkLayer(layer);
        checkTokens(tokens);
        checkFirstPosition(firstPosition, tokens);
        int row = queryHeads * headDim;
        checkArray("queries", queries, (long) tokens * row);
        checkArray("out", out, (long) tokens * row);
        checkFinite("queries", queries, 0, tokens * row);
        checkVisible(layer, firstPosition);
        boolean report = tracker.wantsAttention(source[layer]);
        for (int t = 0; t < tokens; t++) {
            int queryPosition = firstPosition + t;
            for (HeadWork w : work) {
                w.prepare(layer, queryPosition, queries, out, t * row, report);
            }
            if (fanOut == null) {
                for (HeadWork w : work) {
                    w.run();
                }
            } else {
                fanOut.runAll();
            }
            if (report) {
                for (HeadWork w : work) {
                    if (!w.empty) {
                        w.report(layer);
                    }
                }
            }
        }
        if (report) {
            dropVoluntary(source[layer]);
        }
    }

    /**
     * Compresses every (layer, kv-head) to {@code floor(n * (1 - ratio))} of its {@code n}
     * resident tokens (kvpress semantics: {@code ratio} is the fraction removed). The policy picks
     * the victims; a policy may keep more where it protects tokens.
     *
     * @throws IllegalArgumentException if {@code ratio} is not in {@code [0, 1)}
     * @throws IllegalStateException if the cache is closed
     */
    public void compress(double ratio) {
        checkOpen();
        if (!(ratio >= 0.0 && ratio < 1.0)) {
            throw new IllegalArgumentException("ratio must be in [0, 1), got " + ratio);
        }
        compressTo(n -> (int) Math.floor(n * (1.0 - ratio)));
    }

    /**
     * Compresses every (layer, kv-head) to at most {@code targetTokens} resident tokens.
     *
     * @throws IllegalArgumentException if {@code targetTokens < 0}
     * @throws IllegalStateException if the cache is closed
     */
    public void compress(int targetTokens) {
        checkOpen();
        if (targetTokens < 0) {
            throw new IllegalArgumentException("targetTokens must be >= 0, got " + targetTokens);
        }
        compressTo(n -> Math.min(n, targetTokens));
    }

    /** Forgets every token and all policy state; the memory stays reserved. */
    public void reset() {
        checkOpen();
        store.clear();
        tracker.reset();
        Arrays.fill(lastPosition, -1);
        evicted = 0;
        if (less != null) {
            less.clear();
        }
    }

    /** Returns a snapshot of the occupancy. */
    public CacheStats stats() {
        int[][] resident = new int[layers][kvHeads];
        long residentSlots = 0;
        if (!closed) {
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    resident[l][h] = store.size(bufferBase[l] + h);
                    if (source[l] == l) {
                        residentSlots += resident[l][h];
                    }
                }
            }
        }
        return new CacheStats(resident, evicted, residentSlots * store.bytesPerSlot(),
                store.reservedBytes(), less == null ? 0 : less.bytes());
    }

    /** Returns the resident positions of ({@code layer}, {@code kvHead}) in slot order. */
    public int[] positions(int layer, int kvHead) {
        checkOpen();
        checkLayer(layer);
        checkIndex("kvHead", kvHead, kvHeads);
        int b = bufferBase[layer] + kvHead;
        return Arrays.copyOf(store.positions(b), store.size(b));
    }

    /**
     * Decodes the resident keys and values of ({@code layer}, {@code kvHead}) as stored, in slot
     * order, into {@code keys} and {@code values} ({@code resident * headDim} floats each, or
     * more); returns the number of resident tokens.
     */
    public int read(int layer, int kvHead, float[] keys, float[] values) {
        checkOpen();
        checkLayer(layer);
        checkIndex("kvHead", kvHead, kvHeads);
        Objects.requireNonNull(keys, "keys");
        Objects.requireNonNull(values, "values");
        int b = bufferBase[layer] + kvHead;
        int n = store.size(b);
        if (keys.length < n * headDim || values.length < n * headDim) {
            throw new IllegalArgumentException("keys and values need " + n * headDim
                    + " floats, got " + keys.length + " and " + values.length);
        }
        for (int j = 0; j < n; j++) {
            store.readKey(b, j, keys, j * headDim);
            store.readValue(b, j, values, j * headDim);
        }
        return n;
    }

    /** Releases the off-heap memory. Idempotent; every later call but this and stats fails. */
    @Override
    public void close() {
        closed = true;
        store.close();
    }

    private void compressTo(java.util.function.IntUnaryOperator keptOf) {
        for (int l = 0; l < layers; l++) {
            if (source[l] != l) {
                continue;
            }
            for (int h = 0; h < kvHeads; h++) {
                int b = bufferBase[l] + h;
                int n = store.size(b);
                int count = n - keptOf.applyAsInt(n);
                if (count <= 0) {
                    continue;
                }
                int[] v = victims[h];
                int id = shape.buffer(l, h);
                int chosen = tracker.chooseVictims(id, view.of(l, h, b), EvictionPolicy.Reason.COMPRESS, count, v);
                checkVictims(l, h, v, chosen, n);
                Arrays.fill(keep, 0, n, true);
                for (int i = 0; i < chosen; i++) {
                    keep[v[i]] = false;
                    remember(l, h, b, v[i]);
                    tracker.onRemove(id, v[i]);
                }
                store.retain(b, keep, (from, to) -> {
                    view.move(b, from, to);
                    tracker.onMove(id, from, to);
                });
                evicted += chosen;
            }
        }
    }

    /** Evicts, per kv-head, what an append of {@code tokens} needs; all or nothing. */
    private void makeRoom(int layer, int tokens) {
        int[] need = this.need;
        boolean any = false;
        for (int h = 0; h < kvHeads; h++) {
            int b = bufferBase[layer] + h;
            int n = store.size(b);
            need[h] = n + tokens - capacity;
            if (need[h] > 0) {
                int chosen = tracker.chooseVictims(shape.buffer(layer, h), view.of(layer, h, b),
                        EvictionPolicy.Reason.MAKE_ROOM, need[h], victims[h]);
                if (chosen < need[h]) {
                    throw new IllegalStateException("appending " + tokens + " tokens to layer " + layer
                            + " needs " + need[h] + " free slots of kv-head " + h + " (capacity "
                            + capacity + ", resident " + n + "), but policy " + config.policy().name()
                            + " can evict only " + chosen);
                }
                checkVictims(layer, h, victims[h], chosen, n);
                any = true;
            }
        }
        if (!any) {
            return;
        }
        for (int h = 0; h < kvHeads; h++) {
            if (need[h] > 0) {
                evictSwap(layer, h, victims[h], need[h]);
            }
        }
    }

    private void dropVoluntary(int layer) {
        for (int h = 0; h < kvHeads; h++) {
            int b = bufferBase[layer] + h;
            int n = store.size(b);
            int chosen = tracker.chooseVictims(shape.buffer(layer, h), view.of(layer, h, b),
                    EvictionPolicy.Reason.ADAPTIVE, n, victims[h]);
            if (chosen > 0) {
                checkVictims(layer, h, victims[h], chosen, n);
                evictSwap(layer, h, victims[h], chosen);
            }
        }
    }

    /** Removes the given slots, largest first, so a moved slot is never a pending victim. */
    private void evictSwap(int layer, int h, int[] v, int count) {
        Arrays.sort(v, 0, count);
        int b = bufferBase[layer] + h;
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
        if (less != null) {
            if (less.isEmpty(b) && less.centring()) {
                anchor(b);
            }
            store.readKey(b, slot, evictedKey, 0);
            store.readValue(b, slot, evictedValue, 0);
            less.absorb(b, layer, h, evictedKey, 0, evictedValue, 0);
        }
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

    /** Rejects victims outside the resident slots or named twice (either would corrupt the buffer). */
    private void checkVictims(int layer, int h, int[] v, int chosen, int n) {
        for (int i = 0; i < chosen; i++) {
            if (v[i] < 0 || v[i] >= n) {
                Arrays.fill(named, 0, n, false);
                throw new IllegalStateException("policy " + config.policy().name() + " named slot "
                        + v[i] + " of layer " + layer + ", kv-head " + h + ", outside [0, " + n + ")");
            }
            if (named[v[i]]) {
                Arrays.fill(named, 0, n, false);
                throw new IllegalStateException("policy " + config.policy().name() + " named slot "
                        + v[i] + " of layer " + layer + ", kv-head " + h + " twice");
            }
            named[v[i]] = true;
        }
        for (int i = 0; i < chosen; i++) {
            named[v[i]] = false;
        }
    }

    private void store(int layer, int position, float[] keys, float[] values, int offset) {
        for (int h = 0; h < kvHeads; h++) {
            int off = offset + h * headDim;
            int b = bufferBase[layer] + h;
            int slot = store.append(b, keys, off, values, off, position);
            view.keyNorm(b, slot, kernels.l2Norm(keys, off, headDim));
            tracker.onAppend(shape.buffer(layer, h), view.of(layer, h, b), slot);
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("cache is closed");
        }
    }

    private void checkLayer(int layer) {
        checkIndex("layer", layer, layers);
    }

    private static void checkIndex(String name, int value, int bound) {
        if (value < 0 || value >= bound) {
            throw new IllegalArgumentException(name + " must be in [0, " + bound + "), got " + value);
        }
    }

    private void checkTokens(int tokens) {
        if (tokens < 1 || tokens > capacity) {
            throw new IllegalArgumentException("tokens must be in [1, " + capacity + "] (the capacity), got " + tokens);
        }
    }

    private static void checkFirstPosition(int firstPosition, int tokens) {
        if (firstPosition < 0 || firstPosition > Integer.MAX_VALUE - tokens + 1) {
            throw new IllegalArgumentException("firstPosition must be in [0, " + (Integer.MAX_VALUE - tokens + 1)
                    + "] for " + tokens + " tokens, got " + firstPosition);
        }
    }

    private void checkAppend(int layer, int firstPosition, int tokens) {
        checkLayer(layer);
        if (source[layer] != layer) {
            throw new IllegalArgumentException("layer " + layer + " reads the KV of layer " + source[layer]
                    + " and stores none: append to layer " + source[layer]);
        }
        checkTokens(tokens);
        checkFirstPosition(firstPosition, tokens);
        if (firstPosition <= lastPosition[layer]) {
            throw new IllegalArgumentException("position must be > " + lastPosition[layer]
                    + " (the last position appended to layer " + layer + "), got " + firstPosition);
        }
    }

    private void checkVisible(int layer, int firstPosition) {
        if (source[layer] > layer) {
            return; // top-layer mode: before the source's first token nothing is visible, by design
        }
        for (int h = 0; h < kvHeads; h++) {
            int b = bufferBase[layer] + h;
            int n = store.size(b);
            int[] pos = store.positions(b);
            int earliest = Integer.MAX_VALUE;
            if (store.ordered(b)) {
                earliest = n == 0 ? earliest : pos[0];
            } else {
                for (int j = 0; j < n; j++) {
                    earliest = Math.min(earliest, pos[j]);
                }
            }
            if (earliest > firstPosition) {
                throw new IllegalArgumentException("position " + firstPosition + " precedes every token "
                        + "resident in layer " + layer + ", kv-head " + h
                        + (n == 0 ? " (none is resident)" : " (earliest " + earliest + ")"));
            }
        }
    }

    private static void checkArray(String name, float[] a, long expected) {
        Objects.requireNonNull(a, name);
        if (a.length != expected) {
            throw new IllegalArgumentException(name + " must have " + expected + " floats, got " + a.length);
        }
    }

    private static void checkSegment(String name, MemorySegment s, long expectedFloats) {
        Objects.requireNonNull(s, name);
        if (s.byteSize() != expectedFloats * 4) {
            throw new IllegalArgumentException(name + " must have " + expectedFloats * 4 + " bytes ("
                    + expectedFloats + " floats), got " + s.byteSize());
        }
    }

    /** Largest finite binary16 magnitude; larger keys or values would be stored as infinities. */
    private static final float F16_MAX = 65504f;

    /** Rejects non-finite elements, and for F16 storage elements beyond its finite range. */
    private void checkStorable(String name, float[] a, int from, int to) {
        checkFinite(name, a, from, to);
        if (config.dtype() == DType.F16) {
            for (int i = from; i < to; i++) {
                if (Math.abs(a[i]) > F16_MAX) {
                    throw new IllegalArgumentException(name + "[" + i + "] = " + a[i]
                            + " is outside the F16 range [-65504, 65504]");
                }
            }
        }
    }

    private void checkStorable(String name, MemorySegment s, long fromFloat, int count) {
        checkFinite(name, s, fromFloat, count);
        if (config.dtype() == DType.F16) {
            for (int i = 0; i < count; i++) {
                float f = s.get(F32, (fromFloat + i) * 4);
                if (Math.abs(f) > F16_MAX) {
                    throw new IllegalArgumentException(name + "[" + (fromFloat + i) + "] = " + f
                            + " is outside the F16 range [-65504, 65504]");
                }
            }
        }
    }

    private static void checkFinite(String name, float[] a, int from, int to) {
        for (int i = from; i < to; i++) {
            if (!Float.isFinite(a[i])) {
                throw new IllegalArgumentException(name + "[" + i + "] must be finite, got " + a[i]);
            }
        }
    }

    private static void checkFinite(String name, MemorySegment s, long fromFloat, int count) {
        for (int i = 0; i < count; i++) {
            float f = s.get(F32, (fromFloat + i) * 4);
            if (!Float.isFinite(f)) {
                throw new IllegalArgumentException(name + "[" + (fromFloat + i) + "] must be finite, got " + f);
            }
        }
    }

    /** The attention of one kv-head for the current query token; reused across calls. */
    private final class HeadWork implements Runnable {
        private final int head;
        private final float[] weights;
        private final float[] maxAndSum;
        private final Kernels.Workspace workspace;
        private final LessState.Workspace lessWorkspace;
        private int layer;
        private int queryPosition;
        private float[] queries;
        private float[] out;
        private int offset;
        private int visible;
        /** Whether the weights are reported to the policy after the kernel ran. */
        private boolean keepWeights;
        /** Whether the query saw no token (only possible for a layer reading a later layer). */
        private boolean empty;

        HeadWork(int head) {
            this.head = head;
            this.weights = new float[group * stride];
            this.maxAndSum = new float[2 * group];
            this.workspace = new Kernels.Workspace(headDim);
            this.lessWorkspace = less == null ? null : less.newWorkspace();
        }

        void prepare(int layer, int queryPosition, float[] queries, float[] out, int offset, boolean keepWeights) {
            this.layer = layer;
            this.keepWeights = keepWeights;
            this.queryPosition = queryPosition;
            this.queries = queries;
            this.out = out;
            this.offset = offset;
        }

        @Override
        public void run() {
            int b = bufferBase[layer] + head;
            int n = store.size(b);
            int[] positions = store.positions(b);
            int[] mask = null;
            if (store.ordered(b)) {
                visible = upperBound(positions, n, queryPosition);
            } else {
                visible = n;
                mask = positions;
            }
            int at = offset + head * group * headDim;
            empty = source[layer] > layer && noneVisible(positions, n, mask == null);
            if (empty) {
                // Softmax over no token: the attention contributes nothing (output zero).
                Arrays.fill(out, at, at + group * headDim, 0f);
                return;
            }
            kernels.attend(store.keys(b), store.values(b), store.dtype(), visible, headDim,
                    queries, at, group, scale, mask, queryPosition,
                    weights, stride, keepWeights, maxAndSum, out, at, workspace);
            if (less != null && !less.isEmpty(b)) {
                for (int g = 0; g < group; g++) {
                    int o = at + g * headDim;
                    less.attend(b, layer, head * group + g, queries, o, maxAndSum[2 * g], maxAndSum[2 * g + 1],
                            out, o, lessWorkspace);
                }
                return;
            }
            for (int g = 0; g < group; g++) {
                float inv = 1f / maxAndSum[2 * g + 1];
                int o = at + g * headDim;
                for (int i = 0; i < headDim; i++) {
                    out[o + i] *= inv;
                }
            }
        }

        void report(int readingLayer) {
            for (int g = 0; g < group; g++) {
                float inv = 1f / maxAndSum[2 * g + 1];
                int base = g * stride;
                for (int j = 0; j < visible; j++) {
                    weights[base + j] *= inv;
                }
            }
            int l = source[readingLayer];
            tracker.onAttention(shape.buffer(l, head), view.of(l, head, bufferBase[l] + head),
                    attention.of(weights, visible, queryPosition, readingLayer));
        }

        private boolean noneVisible(int[] positions, int n, boolean ordered) {
            if (ordered) {
                return visible == 0;
            }
            for (int j = 0; j < n; j++) {
                if (positions[j] <= queryPosition) {
                    return false;
                }
            }
            return true;
        }

        private static int upperBound(int[] sorted, int n, int key) {
            int lo = 0;
            int hi = n;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (sorted[mid] <= key) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo;
        }
    }
}
