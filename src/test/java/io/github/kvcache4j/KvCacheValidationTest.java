package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every rejected call names the argument and its bound, and leaves the cache as it was. */
class KvCacheValidationTest {

    private static final int D = 16;
    private static final int KV = 2;
    private static final int Q = 4;
    private static final int CAPACITY = 12;

    private KvCache cache;
    private SplittableRandom random;

    @BeforeEach
    void fill() {
        random = new SplittableRandom(Seeds.fresh("KvCacheValidationTest"));
        cache = KvCache.create(KvCacheConfig.builder().layers(3).kvHeads(KV).queryHeads(Q).headDim(D)
                .capacity(CAPACITY).policy(Policies.streamingLlm(2)).kvSourceLayers(new int[] {0, 1, 1}).build());
        for (int p = 0; p < 15; p++) {
            cache.append(0, p, row(KV), row(KV));
            cache.append(1, p, row(KV), row(KV));
        }
    }

    private float[] row(int heads) {
        return Seeds.uniform(random, heads * D, 1);
    }

    private void rejects(Class<? extends Throwable> type, String[] mustMention, Executable call) {
        Snapshot before = Snapshot.of(cache);
        Throwable e = assertThrows(type, call);
        for (String word : mustMention) {
            assertTrue(e.getMessage().contains(word), "message '" + e.getMessage() + "' lacks '" + word + "'");
        }
        assertEquals(before, Snapshot.of(cache), "cache changed by a rejected call: " + e.getMessage());
    }

    private static String[] words(String... w) {
        return w;
    }

    @Test
    void rejectsKeysOfWrongLength() {
        rejects(IllegalArgumentException.class, words("keys", String.valueOf(KV * D), "31"),
                () -> cache.append(0, 20, new float[31], row(KV)));
        rejects(IllegalArgumentException.class, words("values", String.valueOf(3 * KV * D)),
                () -> cache.append(0, 20, 3, new float[3 * KV * D], new float[KV * D]));
    }

    @Test
    void rejectsQueriesAndOutputOfWrongLength() {
        rejects(IllegalArgumentException.class, words("queries", String.valueOf(Q * D)),
                () -> cache.attend(0, 14, new float[KV * D], new float[Q * D]));
        rejects(IllegalArgumentException.class, words("out", String.valueOf(Q * D)),
                () -> cache.attend(0, 14, row(Q), new float[Q * D + 1]));
    }

    @Test
    void rejectsLayerOutOfRange() {
        rejects(IllegalArgumentException.class, words("layer", "[0, 3)", "3"),
                () -> cache.append(3, 20, row(KV), row(KV)));
        rejects(IllegalArgumentException.class, words("layer", "[0, 3)", "-1"),
                () -> cache.attend(-1, 14, row(Q), new float[Q * D]));
        rejects(IllegalArgumentException.class, words("kvHead", "[0, 2)"),
                () -> cache.positions(0, 2));
    }

    @Test
    void rejectsAppendToSharingLayer() {
        rejects(IllegalArgumentException.class, words("layer 2", "layer 1"),
                () -> cache.append(2, 20, row(KV), row(KV)));
    }

    @Test
    void rejectsPositionsThatDoNotIncrease() {
        rejects(IllegalArgumentException.class, words("position", "> 14", "14"),
                () -> cache.append(0, 14, row(KV), row(KV)));
        rejects(IllegalArgumentException.class, words("position", "> 14", "3"),
                () -> cache.append(1, 3, 2, new float[2 * KV * D], new float[2 * KV * D]));
        rejects(IllegalArgumentException.class, words("firstPosition", "-5"),
                () -> cache.append(0, -5, row(KV), row(KV)));
    }

    @Test
    void rejectsQueryBeforeEveryResidentToken() {
        KvCache recentOnly = KvCache.create(cache.config().toBuilder().policy(Policies.streamingLlm(0)).build());
        for (int p = 0; p < 15; p++) {
            recentOnly.append(0, p, row(KV), row(KV));
        }
        KvCache saved = cache;
        cache = recentOnly;
        try {
            rejects(IllegalArgumentException.class, words("position 2", "precedes", "earliest 3"),
                    () -> recentOnly.attend(0, 2, row(Q), new float[Q * D]));
            rejects(IllegalArgumentException.class, words("position 0", "none is resident"),
                    () -> recentOnly.attend(1, 0, row(Q), new float[Q * D]));
            rejects(IllegalArgumentException.class, words("firstPosition", "[0, ", "-1"),
                    () -> recentOnly.attend(0, -1, row(Q), new float[Q * D]));
        } finally {
            cache = saved;
            recentOnly.close();
        }
    }

    @Test
    void rejectsNonFiniteInputs() {
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            float[] k = row(KV);
            k[7] = bad;
            rejects(IllegalArgumentException.class, words("keys[7]", "finite"), () -> cache.append(0, 20, k, row(KV)));
            float[] v = new float[3 * KV * D];
            v[2 * KV * D + 1] = bad;
            rejects(IllegalArgumentException.class, words("values[" + (2 * KV * D + 1) + "]", "finite"),
                    () -> cache.append(0, 20, 3, new float[3 * KV * D], v));
            float[] q = row(Q);
            q[Q * D - 1] = bad;
            rejects(IllegalArgumentException.class, words("queries[" + (Q * D - 1) + "]", "finite"),
                    () -> cache.attend(0, 14, q, new float[Q * D]));
        }
    }

    @Test
    void rejectsValuesBeyondTheF16RangeForF16Storage() {
        KvCache f16 = KvCache.create(cache.config().toBuilder().dtype(DType.F16).build());
        f16.append(0, 0, row(KV), row(KV));
        KvCache saved = cache;
        cache = f16;
        try {
            float[] k = row(KV);
            k[3] = 70000f;
            rejects(IllegalArgumentException.class, words("keys[3] = 70000.0", "F16 range [-65504, 65504]"),
                    () -> f16.append(0, 1, k, row(KV)));
            float[] v = row(KV);
            v[0] = -65505f;
            rejects(IllegalArgumentException.class, words("values[0]", "F16 range"), () -> f16.append(0, 1, row(KV), v));
            float[] edge = row(KV);
            edge[0] = 65504f;
            f16.append(0, 1, edge, edge);
            assertEquals(2, f16.stats().resident(0, 0));
        } finally {
            cache = saved;
            f16.close();
        }
    }

    @Test
    void rejectsNonFiniteSegmentInputs() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = arena.allocate(KV * D * 4L);
            MemorySegment v = arena.allocate(KV * D * 4L);
            k.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 5, Float.NaN);
            rejects(IllegalArgumentException.class, words("keys[5]", "finite"), () -> cache.append(0, 20, 1, k, v));
            rejects(IllegalArgumentException.class, words("values", String.valueOf(KV * D * 4)),
                    () -> cache.append(0, 20, 1, v, arena.allocate(8)));
        }
    }

    @Test
    void rejectsChunkLargerThanCapacity() {
        int tokens = CAPACITY + 1;
        rejects(IllegalArgumentException.class, words("tokens", "[1, " + CAPACITY + "]"),
                () -> cache.append(0, 20, tokens, new float[tokens * KV * D], new float[tokens * KV * D]));
    }

    @Test
    void rejectsAppendThePolicyCannotMakeRoomFor() {
        KvCache full = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(1).headDim(D)
                .capacity(4).build());
        full.append(0, 0, 4, new float[4 * D], new float[4 * D]);
        KvCache saved = cache;
        cache = full;
        try {
            rejects(IllegalStateException.class, words("capacity 4", "full", "evict only 0"),
                    () -> full.append(0, 4, new float[D], new float[D]));
        } finally {
            cache = saved;
            full.close();
        }
    }

    @Test
    void rejectsCompressionOutsideItsRange() {
        for (double ratio : new double[] {-0.1, 1.0, 1.5, Double.NaN}) {
            rejects(IllegalArgumentException.class, words("ratio", "[0, 1)"), () -> cache.compress(ratio));
        }
        rejects(IllegalArgumentException.class, words("targetTokens", ">= 0", "-1"), () -> cache.compress(-1));
    }

    @Test
    void rejectsConfigurationsOutOfRange() {
        Consumer<KvCacheConfig.Builder> none = b -> { };
        assertConfig("capacity (4) must be > the 4 tokens policy streaming_llm protects",
                b -> b.capacity(4).policy(Policies.streamingLlm(4)));
        assertConfig("queryHeads (6) must be a multiple of kvHeads (4)", b -> b.queryHeads(6).kvHeads(4));
        assertConfig("headDim must be > 0, got 0", b -> b.headDim(0));
        assertConfig("kvSourceLayers[1] = 2 is outside [0, 2)", b -> b.kvSourceLayers(new int[] {0, 2}));
        assertConfig("kvSourceLayers[2] = 1 is not a source layer", b -> b.layers(3).kvSourceLayers(new int[] {0, 0, 1}));
        assertConfig("kvSourceLayers has 1 entries, expected one per layer (2)", b -> b.kvSourceLayers(new int[] {0}));
        assertThrows(IllegalArgumentException.class, () -> Policies.streamingLlm(-1));
        none.accept(KvCacheConfig.builder());
    }

    private static void assertConfig(String message, Consumer<KvCacheConfig.Builder> change) {
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(4).headDim(8).capacity(16);
        change.accept(b);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void rejectsUseAfterClose() {
        cache.close();
        for (Executable call : new Executable[] {
            () -> cache.append(0, 20, row(KV), row(KV)),
            () -> cache.attend(0, 14, row(Q), new float[Q * D]),
            () -> cache.compress(0.5),
            () -> cache.compress(3),
            () -> cache.reset(),
            () -> cache.positions(0, 0),
        }) {
            IllegalStateException e = assertThrows(IllegalStateException.class, call);
            assertEquals("cache is closed", e.getMessage());
        }
        cache.close();
        assertEquals(0, cache.stats().reservedBytes());
    }
}
