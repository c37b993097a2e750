package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.function.Executable;

/**
 * One test per row of {@code docs/errors.md}: the call fails with the documented exception type
 * and message, and a cache it was made on is unchanged afterwards ({@link Snapshot}).
 */
class ApiErrorsTest {

    private static final int D = 16;
    private static final int KV = 2;
    private static final int Q = 4;
    private static final int CAPACITY = 12;
    private static final long SEED = Seeds.fresh("ApiErrorsTest");

    /** A cache call to reject: it gets the fixture cache (3 layers, layer 2 reads layer 1). */
    @FunctionalInterface
    interface CacheCall {
        void call(KvCache cache, Arena arena) throws Throwable;
    }

    /** One documented rejection. */
    record Row(String method, String argument, Class<? extends Throwable> type, String message, CacheCall call) {
    }

    private static Row row(String method, String argument, Class<? extends Throwable> type, String message,
                           CacheCall call) {
        return new Row(method, argument, type, message, call);
    }

    private static float[] floats(int n) {
        return Seeds.uniform(new SplittableRandom(SEED + n), n, 1);
    }

    private static float[] with(float[] a, int i, float value) {
        a[i] = value;
        return a;
    }

    private static KvCacheConfig.Builder small() {
        return KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(4).headDim(8).capacity(16);
    }

    private static void build(Consumer<KvCacheConfig.Builder> change) {
        KvCacheConfig.Builder b = small();
        change.accept(b);
        b.build();
    }

    /**
     * A fixture cache: layers 0 and 1 hold positions 0..14 (StreamingLLM with 2 sinks, capacity
     * 12), layer 2 reads layer 1.
     */
    private static KvCache fixture() {
        KvCache cache = KvCache.create(KvCacheConfig.builder().layers(3).kvHeads(KV).queryHeads(Q).headDim(D)
                .capacity(CAPACITY).policy(Policies.streamingLlm(2)).kvSourceLayers(new int[] {0, 1, 1}).build());
        for (int p = 0; p < 15; p++) {
            cache.append(0, p, floats(KV * D), floats(KV * D));
            cache.append(1, p, floats(KV * D), floats(KV * D));
        }
        return cache;
    }

    /** A policy that names the slots it is given, valid or not. */
    private static EvictionPolicy rogue(int... slots) {
        return new EvictionPolicy() {
            @Override
            public String name() {
                return "rogue";
            }

            @Override
            public Tracker newTracker(Shape shape) {
                return new Tracker() {
                    @Override
                    public void onAppend(int buffer, BufferView view, int slot) {
                    }

                    @Override
                    public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
                        System.arraycopy(slots, 0, victims, 0, slots.length);
                        return slots.length;
                    }

                    @Override
                    public void onRemove(int buffer, int slot) {
                    }

                    @Override
                    public void onMove(int buffer, int from, int to) {
                    }

                    @Override
                    public void reset() {
                    }
                };
            }
        };
    }

    /** Runs {@code call} on a separate 1-layer cache of capacity 4 holding 4 tokens. */
    private static CacheCall onFull(KvCacheConfig.Builder config, CacheCall call) {
        return (ignored, arena) -> {
            try (KvCache full = KvCache.create(config.layers(1).kvHeads(1).queryHeads(1).headDim(D).capacity(4).build())) {
                full.append(0, 0, 4, floats(4 * D), floats(4 * D));
                Snapshot before = Snapshot.of(full);
                try {
                    call.call(full, arena);
                } finally {
                    assertEquals(before, Snapshot.of(full), "cache changed by a rejected call, seed " + SEED);
                }
            }
        };
    }

    /** A policy whose tracker calls {@code call} on its cache from {@code chooseVictims}, once. */
    private static RogueCallbackTest.Rogue reentrant(Consumer<KvCache> call) {
        RogueCallbackTest.Rogue rogue = new RogueCallbackTest.Rogue(null, RogueCallbackTest.Where.CHOOSE_VICTIMS);
        rogue.hook = call;
        return rogue;
    }

    /** Appends to a full 1-layer cache of {@code policy}, which must leave it unchanged. */
    private static CacheCall onRogue(RogueCallbackTest.Rogue policy) {
        return (ignored, arena) -> {
            SplittableRandom r = new SplittableRandom(SEED);
            Consumer<KvCache> hook = policy.hook;
            policy.hook = null;
            try (KvCache full = RogueCallbackTest.full(policy, r)) {
                Snapshot before = Snapshot.of(full);
                policy.hook = hook;
                try {
                    RogueCallbackTest.append(full, 100, r);
                } finally {
                    assertEquals(before, Snapshot.of(full), "cache changed by a rejected call, seed " + SEED);
                }
            }
        };
    }

    private static CacheCall onF16(CacheCall call) {
        return (ignored, arena) -> {
            try (KvCache f16 = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(KV).queryHeads(Q).headDim(D)
                    .capacity(CAPACITY).dtype(DType.F16).build())) {
                f16.append(0, 0, floats(KV * D), floats(KV * D));
                Snapshot before = Snapshot.of(f16);
                try {
                    call.call(f16, arena);
                } finally {
                    assertEquals(before, Snapshot.of(f16), "cache changed by a rejected call, seed " + SEED);
                }
            }
        };
    }

    /** A step on a cache of the {@link #small} shape. */
    @FunctionalInterface
    interface Step {
        void on(KvCache cache);
    }

    /** Runs {@code call} on a fresh cache of the {@link #small} shape after {@code setup}. */
    private static CacheCall onSmall(Step setup, Step call) {
        return (ignored, arena) -> {
            try (KvCache c = KvCache.create(small().build())) {
                setup.on(c);
                Snapshot before = Snapshot.of(c);
                try {
                    call.on(c);
                } finally {
                    assertEquals(before, Snapshot.of(c), "cache changed by a rejected call, seed " + SEED);
                }
            }
        };
    }

    private static CacheCall closed(CacheCall call) {
        return (cache, arena) -> {
            KvCache c = fixture();
            c.close();
            call.call(c, arena);
        };
    }

    private static MemorySegment segment(Arena arena, float[] a) {
        MemorySegment s = arena.allocate(a.length * 4L);
        MemorySegment.copy(a, 0, s, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, a.length);
        return s;
    }

    static List<Row> rows() {
        Class<IllegalArgumentException> iae = IllegalArgumentException.class;
        Class<IllegalStateException> ise = IllegalStateException.class;
        Class<NullPointerException> npe = NullPointerException.class;
        int row = KV * D;
        return List.of(
                // KvCache.create
                row("KvCache.create", "config null", npe, "config", (c, a) -> KvCache.create(null)),
                row("KvCache.create", "knorm skip layer >= layers", iae, "skipLayers entry 5 must be < layers (2)",
                        (c, a) -> KvCache.create(small().policy(Policies.knorm(0, 5)).build())),
                row("KvCache.create", "more off-heap memory than the machine has", OutOfMemoryError.class,
                        "Unable to allocate", (c, a) -> KvCache.create(KvCacheConfig.builder().layers(1 << 14).kvHeads(1)
                                .queryHeads(1).headDim(2048).capacity(1 << 19).build())),
                row("KvCache.create", "more blocks than a pool holds", iae,
                        "the cache needs 8589934592 blocks of 64 tokens (source layers x kvHeads x ceil(capacity / 64)),"
                                + " more than a pool holds (2147483639)",
                        (c, a) -> KvCache.create(KvCacheConfig.builder().layers(1 << 20).kvHeads(1)
                                .queryHeads(1).headDim(2048).capacity(1 << 19).build())),
                // append(layer, position, keys, values) and the float[] chunk form
                row("append", "closed", ise, "cache is closed", closed((c, a) -> c.append(0, 20, floats(row), floats(row)))),
                row("append", "layer >= layers", iae, "layer must be in [0, 3), got 3",
                        (c, a) -> c.append(3, 20, floats(row), floats(row))),
                row("append", "layer < 0", iae, "layer must be in [0, 3), got -1",
                        (c, a) -> c.append(-1, 20, floats(row), floats(row))),
                row("append", "layer reads another layer's KV", iae,
                        "layer 2 reads the KV of layer 1 and stores none: append to layer 1",
                        (c, a) -> c.append(2, 20, floats(row), floats(row))),
                row("append", "tokens < 1", iae, "tokens must be in [1, 12] (the capacity), got 0",
                        (c, a) -> c.append(0, 20, 0, new float[0], new float[0])),
                row("append", "tokens > capacity", iae, "tokens must be in [1, 12] (the capacity), got 13",
                        (c, a) -> c.append(0, 20, 13, floats(13 * row), floats(13 * row))),
                row("append", "firstPosition < 0", iae, "firstPosition must be in [0, 2147483647] for 1 tokens, got -5",
                        (c, a) -> c.append(0, -5, floats(row), floats(row))),
                row("append", "firstPosition + tokens - 1 overflows", iae,
                        "firstPosition must be in [0, 2147483646] for 2 tokens, got 2147483647",
                        (c, a) -> c.append(0, Integer.MAX_VALUE, 2, floats(2 * row), floats(2 * row))),
                row("append", "position not after the last appended", iae,
                        "position must be > 14 (the last position appended to layer 0), got 14",
                        (c, a) -> c.append(0, 14, floats(row), floats(row))),
                row("append", "keys null", npe, "keys", (c, a) -> c.append(0, 20, null, floats(row))),
                row("append", "values null", npe, "values", (c, a) -> c.append(0, 20, floats(row), null)),
                row("append", "keys of wrong length", iae, "keys must have 32 floats, got 31",
                        (c, a) -> c.append(0, 20, new float[31], floats(row))),
                row("append", "values of wrong length", iae, "values must have 96 floats, got 32",
                        (c, a) -> c.append(0, 20, 3, floats(3 * row), floats(row))),
                row("append", "key not finite", iae, "keys[7] must be finite, got NaN",
                        (c, a) -> c.append(0, 20, with(floats(row), 7, Float.NaN), floats(row))),
                row("append", "value not finite", iae, "values[65] must be finite, got Infinity",
                        (c, a) -> c.append(0, 20, 3, floats(3 * row), with(floats(3 * row), 65, Float.POSITIVE_INFINITY))),
                row("append", "key beyond the F16 range, F16 storage", iae,
                        "keys[3] = 70000.0 is outside the F16 range [-65504, 65504]",
                        onF16((c, a) -> c.append(0, 1, with(floats(row), 3, 70000f), floats(row)))),
                row("append", "value beyond the F16 range, F16 storage", iae,
                        "values[0] = -65505.0 is outside the F16 range [-65504, 65504]",
                        onF16((c, a) -> c.append(0, 1, floats(row), with(floats(row), 0, -65505f)))),
                row("append", "full cache, policy evicts nothing (full)", ise,
                        "appending 1 tokens to layer 0 needs 1 free slots of kv-head 0 (capacity 4, resident 4), "
                                + "but policy full can evict only 0",
                        onFull(KvCacheConfig.builder(), (c, a) -> c.append(0, 4, floats(D), floats(D)))),
                row("append", "full cache, chunk needs protected slots", ise,
                        "needs 3 free slots of kv-head 0 (capacity 4, resident 4), but policy streaming_llm can evict only 2",
                        onFull(KvCacheConfig.builder().policy(Policies.streamingLlm(2)),
                                (c, a) -> c.append(0, 4, 3, floats(3 * D), floats(3 * D)))),
                row("append", "policy names a slot outside the resident ones", ise,
                        "policy rogue named slot 7 of layer 0, kv-head 0, outside [0, 4)",
                        onFull(KvCacheConfig.builder().policy(rogue(7)), (c, a) -> c.append(0, 4, floats(D), floats(D)))),
                row("append", "policy names a slot twice", ise, "policy rogue named slot 1 of layer 0, kv-head 0 twice",
                        onFull(KvCacheConfig.builder().policy(rogue(1, 1)),
                                (c, a) -> c.append(0, 4, 2, floats(2 * D), floats(2 * D)))),
                // append(layer, firstPosition, tokens, MemorySegment keys, MemorySegment values)
                row("append(MemorySegment)", "closed", ise, "cache is closed",
                        closed((c, a) -> c.append(0, 20, 1, segment(a, floats(row)), segment(a, floats(row))))),
                row("append(MemorySegment)", "keys null", npe, "keys",
                        (c, a) -> c.append(0, 20, 1, null, segment(a, floats(row)))),
                row("append(MemorySegment)", "values null", npe, "values",
                        (c, a) -> c.append(0, 20, 1, segment(a, floats(row)), null)),
                row("append(MemorySegment)", "keys of wrong size", iae, "keys must have 128 bytes (32 floats), got 8",
                        (c, a) -> c.append(0, 20, 1, a.allocate(8), segment(a, floats(row)))),
                row("append(MemorySegment)", "values of wrong size", iae, "values must have 256 bytes (64 floats), got 128",
                        (c, a) -> c.append(0, 20, 2, segment(a, floats(2 * row)), segment(a, floats(row)))),
                row("append(MemorySegment)", "key not finite", iae, "keys[37] must be finite, got NaN",
                        (c, a) -> c.append(0, 20, 2, segment(a, with(floats(2 * row), 37, Float.NaN)),
                                segment(a, floats(2 * row)))),
                row("append(MemorySegment)", "value beyond the F16 range, F16 storage", iae,
                        "values[5] = 1.0E9 is outside the F16 range [-65504, 65504]",
                        onF16((c, a) -> c.append(0, 1, 1, segment(a, floats(row)), segment(a, with(floats(row), 5, 1e9f))))),
                row("append(MemorySegment)", "layer, tokens, positions", iae, "tokens must be in [1, 12] (the capacity), got 0",
                        (c, a) -> c.append(0, 20, 0, a.allocate(0), a.allocate(0))),
                // attend(layer, position, queries, out) and the chunk form
                row("attend", "closed", ise, "cache is closed", closed((c, a) -> c.attend(0, 14, floats(Q * D), new float[Q * D]))),
                row("attend", "layer out of range", iae, "layer must be in [0, 3), got -1",
                        (c, a) -> c.attend(-1, 14, floats(Q * D), new float[Q * D])),
                row("attend", "tokens out of range", iae, "tokens must be in [1, 12] (the capacity), got 0",
                        (c, a) -> c.attend(0, 14, 0, new float[0], new float[0])),
                row("attend", "firstPosition < 0", iae, "firstPosition must be in [0, 2147483647] for 1 tokens, got -1",
                        (c, a) -> c.attend(0, -1, floats(Q * D), new float[Q * D])),
                row("attend", "queries null", npe, "queries", (c, a) -> c.attend(0, 14, null, new float[Q * D])),
                row("attend", "out null", npe, "out", (c, a) -> c.attend(0, 14, floats(Q * D), null)),
                row("attend", "queries of wrong length", iae, "queries must have 64 floats, got 32",
                        (c, a) -> c.attend(0, 14, floats(KV * D), new float[Q * D])),
                row("attend", "out of wrong length", iae, "out must have 128 floats, got 64",
                        (c, a) -> c.attend(0, 13, 2, floats(2 * Q * D), new float[Q * D])),
                row("attend", "query not finite", iae, "queries[63] must be finite, got -Infinity",
                        (c, a) -> c.attend(0, 14, with(floats(Q * D), 63, Float.NEGATIVE_INFINITY), new float[Q * D])),
                row("attend", "position before every resident token", iae,
                        "position 2 precedes every token resident in layer 0, kv-head 0 (earliest 3)",
                        onSmall(c -> c.append(0, 3, floats(16), floats(16)), c -> c.attend(0, 2, floats(32), new float[32]))),
                row("attend", "nothing resident", iae,
                        "position 0 precedes every token resident in layer 1, kv-head 0 (none is resident)",
                        onSmall(c -> c.append(0, 3, floats(16), floats(16)), c -> c.attend(1, 0, floats(32), new float[32]))),
                // compress
                row("compress(double)", "closed", ise, "cache is closed", closed((c, a) -> c.compress(0.5))),
                row("compress(double)", "ratio < 0", iae, "ratio must be in [0, 1), got -0.1", (c, a) -> c.compress(-0.1)),
                row("compress(double)", "ratio >= 1", iae, "ratio must be in [0, 1), got 1.0", (c, a) -> c.compress(1.0)),
                row("compress(double)", "ratio NaN", iae, "ratio must be in [0, 1), got NaN", (c, a) -> c.compress(Double.NaN)),
                row("compress(int)", "closed", ise, "cache is closed", closed((c, a) -> c.compress(3))),
                row("compress(int)", "targetTokens < 0", iae, "targetTokens must be >= 0, got -1", (c, a) -> c.compress(-1)),
                row("compress(double, Allocation)", "closed", ise, "cache is closed",
                        closed((c, a) -> c.compress(0.5, Allocation.uniform()))),
                row("compress(double, Allocation)", "ratio >= 1", iae, "ratio must be in [0, 1), got 1.0",
                        (c, a) -> c.compress(1.0, Allocation.uniform())),
                row("compress(double, Allocation)", "allocation null", npe, "allocation", (c, a) -> c.compress(0.5, null)),
                row("compressToTokens", "totalTokens < 0", iae, "totalTokens must be >= 0, got -1",
                        (c, a) -> c.compressToTokens(-1, Allocation.uniform())),
                row("compressToTokens", "allocation null", npe, "allocation", (c, a) -> c.compressToTokens(5, null)),
                row("compressToBytes", "bytes < 0", iae, "bytes must be >= 0, got -1",
                        (c, a) -> c.compressToBytes(-1, Allocation.uniform())),
                row("compressToBytes", "closed", ise, "cache is closed",
                        closed((c, a) -> c.compressToBytes(1, Allocation.uniform()))),
                // reset, positions, read
                row("reset", "closed", ise, "cache is closed", closed((c, a) -> c.reset())),
                row("positions", "closed", ise, "cache is closed", closed((c, a) -> c.positions(0, 0))),
                row("positions", "layer out of range", iae, "layer must be in [0, 3), got 3", (c, a) -> c.positions(3, 0)),
                row("positions", "kvHead out of range", iae, "kvHead must be in [0, 2), got 2", (c, a) -> c.positions(0, 2)),
                row("read", "closed", ise, "cache is closed",
                        closed((c, a) -> c.read(0, 0, new float[CAPACITY * D], new float[CAPACITY * D]))),
                row("read", "layer out of range", iae, "layer must be in [0, 3), got 5",
                        (c, a) -> c.read(5, 0, new float[CAPACITY * D], new float[CAPACITY * D])),
                row("read", "kvHead out of range", iae, "kvHead must be in [0, 2), got -1",
                        (c, a) -> c.read(0, -1, new float[CAPACITY * D], new float[CAPACITY * D])),
                row("read", "keys null", npe, "keys", (c, a) -> c.read(0, 0, null, new float[CAPACITY * D])),
                row("read", "values null", npe, "values", (c, a) -> c.read(0, 0, new float[CAPACITY * D], null)),
                row("read", "arrays shorter than resident * headDim", iae,
                        "keys and values need 192 floats, got 191 and 192",
                        (c, a) -> c.read(0, 0, new float[CAPACITY * D - 1], new float[CAPACITY * D])),
                // custom policies that break the SPI's rules (RogueCallbackTest drives them further)
                row("append", "custom policy names a victim count below 0", ise,
                        "policy rogue named -1 victims in layer 0, kv-head 0, outside [0, 1] (the number asked for)",
                        onRogue(new RogueCallbackTest.Rogue(-1, null))),
                row("append", "custom policy names more victims than asked", ise,
                        "policy rogue named 2 victims in layer 0, kv-head 0, outside [0, 1] (the number asked for)",
                        onRogue(new RogueCallbackTest.Rogue(2, null))),
                row("KvCache.create", "newTracker returns null", iae, "policy rogue returned no tracker",
                        (c, a) -> KvCache.create(small().policy(new EvictionPolicy() {
                            @Override
                            public String name() {
                                return "rogue";
                            }

                            @Override
                            public Tracker newTracker(Shape shape) {
                                return null;
                            }
                        }).build())),
                row("append", "called from inside a policy callback", ise,
                        "a cache may not be called from inside one of its own calls (a policy or feature-map callback)",
                        onRogue(reentrant(inner -> inner.append(0, 100, floats(8), floats(8))))),
                row("close", "called from inside a policy callback", ise,
                        "close called from inside a cache call (a policy callback)", onRogue(reentrant(KvCache::close))),
                row("KvCache.create", "snapKv window x capacity beyond a Java array", iae,
                        "capacity * width must be <= 2147483647, got 65537 * 65536",
                        (c, a) -> KvCache.create(small().capacity(65537).policy(Policies.snapKv(65536, 1)).build())),
                row("attend", "out is the queries array", iae,
                        "out must not be the queries array (attention reads the queries while it writes the output)",
                        (c, a) -> {
                            float[] q = floats(Q * D);
                            c.attend(0, 14, q, q);
                        }),
                row("append", "BF16 element that rounds to infinity", iae,
                        "keys[3] = 3.4028235E38 is outside the BF16 range (-3.3961775E38, 3.3961775E38)",
                        (c, a) -> {
                            try (KvCache bf16 = KvCache.create(small().dtype(DType.BF16).build())) {
                                Snapshot before = Snapshot.of(bf16);
                                try {
                                    bf16.append(0, 0, with(floats(2 * 8), 3, Float.MAX_VALUE), floats(2 * 8));
                                } finally {
                                    assertEquals(before, Snapshot.of(bf16), "cache changed by a rejected call, seed " + SEED);
                                }
                            }
                        }),
                row("append", "key beyond Float.MAX_VALUE / sqrt(headDim) with key rotation", iae,
                        "keys[3] = 3.4028235E38 exceeds 6.015398E37 (Float.MAX_VALUE / sqrt(headDim))",
                        (c, a) -> {
                            try (KvCache rotated = KvCache.create(small().headDim(32).dtype(DType.Q4).keyRotation(1).build())) {
                                Snapshot before = Snapshot.of(rotated);
                                try {
                                    rotated.append(0, 0, with(floats(2 * 32), 3, Float.MAX_VALUE), floats(2 * 32));
                                } finally {
                                    assertEquals(before, Snapshot.of(rotated), "cache changed by a rejected call, seed " + SEED);
                                }
                            }
                        }),
                // KvCacheConfig.Builder.build and KvCacheConfig
                row("Builder.build", "layers unset or <= 0", iae, "layers must be > 0, got 0",
                        (c, a) -> KvCacheConfig.builder().build()),
                row("Builder.build", "kvHeads <= 0", iae, "kvHeads must be > 0, got -2", (c, a) -> build(b -> b.kvHeads(-2))),
                row("Builder.build", "queryHeads <= 0", iae, "queryHeads must be > 0, got 0", (c, a) -> build(b -> b.queryHeads(0))),
                row("Builder.build", "headDim <= 0", iae, "headDim must be > 0, got 0", (c, a) -> build(b -> b.headDim(0))),
                row("Builder.build", "capacity <= 0", iae, "capacity must be > 0, got 0", (c, a) -> build(b -> b.capacity(0))),
                row("Builder.build", "queryHeads not a multiple of kvHeads", iae,
                        "queryHeads (6) must be a multiple of kvHeads (4)", (c, a) -> build(b -> b.queryHeads(6).kvHeads(4))),
                row("Builder.build", "capacity x headDim beyond a Java array", iae,
                        "capacity (2147483647) rounded up to 2147483648 times max(headDim, queryHeads / kvHeads) (8) "
                                + "must be at most 2147483639", (c, a) -> build(b -> b.capacity(Integer.MAX_VALUE))),
                row("Builder.build", "queryHeads x headDim beyond a Java array", iae,
                        "queryHeads (65536) times headDim (32768) must be at most 2147483639, got 2147483648",
                        (c, a) -> build(b -> b.queryHeads(1 << 16).headDim(1 << 15))),
                row("Builder.build", "layers x kvHeads beyond a Java array", iae,
                        "layers (2147483647) times kvHeads (2) must be at most 2147483639",
                        (c, a) -> build(b -> b.layers(Integer.MAX_VALUE).kvSourceLayers(null))),
                row("Builder.build", "headDim not a multiple of 32 for Q8 or Q4", iae,
                        "headDim must be a multiple of 32 for dtype Q8 (its groups of 32 elements share a scale), got 8",
                        (c, a) -> build(b -> b.dtype(DType.Q8))),
                row("Builder.build", "keyRotation with an unquantized dtype", iae,
                        "keyRotation applies to the quantized dtypes Q8 and Q4 only, got dtype F32",
                        (c, a) -> build(b -> b.keyRotation(1))),
                row("Builder.build", "dtype null", npe, "dtype", (c, a) -> build(b -> b.dtype(null))),
                row("Builder.build", "policy null", npe, "policy", (c, a) -> build(b -> b.policy(null))),
                row("Builder.build", "capacity not above the protected tokens", iae,
                        "capacity (4) must be > the 4 tokens policy streaming_llm protects",
                        (c, a) -> build(b -> b.capacity(4).policy(Policies.streamingLlm(4)))),
                row("Builder.build", "kvSourceLayers of wrong length", iae,
                        "kvSourceLayers has 1 entries, expected one per layer (2)", (c, a) -> build(b -> b.kvSourceLayers(new int[] {0}))),
                row("Builder.build", "kvSourceLayers entry out of range", iae, "kvSourceLayers[1] = 2 is outside [0, 2)",
                        (c, a) -> build(b -> b.kvSourceLayers(new int[] {0, 2}))),
                row("Builder.build", "kvSourceLayers entry not a source", iae,
                        "kvSourceLayers[2] = 1 is not a source layer: kvSourceLayers[1] = 0 (a source reads itself)",
                        (c, a) -> build(b -> b.layers(3).kvSourceLayers(new int[] {0, 0, 1}))),
                row("KvCacheConfig.isSourceLayer", "layer out of range", iae, "layer must be in [0, 3), got 3",
                        (c, a) -> c.config().isSourceLayer(3)),
                // Policies
                row("Policies.streamingLlm", "sinks < 0", iae, "sinks must be >= 0, got -1", (c, a) -> Policies.streamingLlm(-1)),
                row("Policies.knorm", "pruneAfter < 0", iae, "pruneAfter must be >= 0, got -1", (c, a) -> Policies.knorm(-1)),
                row("Policies.knorm", "skipLayers entry < 0", iae, "skipLayers entries must be >= 0, got -3",
                        (c, a) -> Policies.knorm(0, 1, -3)),
                row("Policies.knorm", "skipLayers null", npe, "skipLayers", (c, a) -> Policies.knorm(0, (int[]) null)),
                row("Policies.corm", "window outside [1, 64]", iae, "window must be in [1, 64], got 65",
                        (c, a) -> Policies.corm(65, 1, 1, true)),
                row("Policies.corm", "recent < 0", iae, "recent must be >= 0, got -1", (c, a) -> Policies.corm(4, -1, 1, true)),
                row("Policies.corm", "alpha not finite or <= 0", iae, "alpha must be finite and > 0, got NaN",
                        (c, a) -> Policies.corm(4, 1, Double.NaN, true)),
                row("Policies.h2o", "recentFraction outside [0, 1)", iae, "recentFraction must be in [0, 1), got 1.0",
                        (c, a) -> Policies.h2o(1.0)),
                row("Policies.snapKv", "window < 1", iae, "window must be >= 1, got 0", (c, a) -> Policies.snapKv(0, 5)),
                row("Policies.snapKv", "kernel even or < 1", iae, "kernel must be odd and >= 1, got 4",
                        (c, a) -> Policies.snapKv(8, 4)),
                // CacheStats
                row("CacheStats", "resident null", npe, "resident", (c, a) -> new CacheStats(null, 0, 0, 0, 0, 0)),
                row("CacheStats.resident", "index out of range", ArrayIndexOutOfBoundsException.class,
                        "Index 3 out of bounds for length 3", (c, a) -> c.stats().resident(3, 0)));
    }

    @TestFactory
    Stream<DynamicTest> everyDocumentedRejection() {
        return rows().stream().map(r -> DynamicTest.dynamicTest(r.method() + ": " + r.argument(), () -> check(r)));
    }

    private static void check(Row r) {
        KvCache cache = fixture();
        try (Arena arena = Arena.ofConfined()) {
            Snapshot before = Snapshot.of(cache);
            Throwable e = assertThrows(r.type(), () -> r.call().call(cache, arena), r.method() + " " + r.argument());
            assertTrue(String.valueOf(e.getMessage()).contains(r.message()),
                    "message '" + e.getMessage() + "' lacks '" + r.message() + "', seed " + SEED);
            assertEquals(before, Snapshot.of(cache), "cache changed by a rejected call: " + e.getMessage()
                    + ", seed " + SEED);
        } finally {
            cache.close();
        }
    }

    @TestFactory
    Stream<DynamicTest> callsThatNeverThrow() {
        Executable statsAfterClose = () -> {
            KvCache c = fixture();
            c.close();
            CacheStats s = c.stats();
            assertEquals(0, s.reservedBytes());
            assertEquals(0, s.totalResident());
            c.close();
            assertEquals(c.config(), c.config());
        };
        Executable settersValidateNothing = () -> KvCacheConfig.builder().layers(-1).kvHeads(-1).queryHeads(-1)
                .headDim(-1).capacity(-1).dtype(null).policy(null).executor(null).kvSourceLayers(null);
        return Stream.of(DynamicTest.dynamicTest("stats, config and close after close", statsAfterClose),
                DynamicTest.dynamicTest("builder setters", settersValidateNothing));
    }
}
