package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.store.Codec;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class KvCacheTest {

    private static KvCacheConfig.Builder shape(int layers, int kvHeads, int queryHeads, int headDim, int capacity) {
        return KvCacheConfig.builder().layers(layers).kvHeads(kvHeads).queryHeads(queryHeads)
                .headDim(headDim).capacity(capacity);
    }

    /** Checks every query head's output against float64 attention over exactly the resident slots. */
    private static void assertAttentionOverResident(KvCache cache, int layer, int position, float[] q,
                                                    double tolerance, long seed) {
        KvCacheConfig c = cache.config();
        int d = c.headDim();
        float[] out = new float[c.queryHeads() * d];
        cache.attend(layer, position, q, out);
        float[] k = new float[c.capacity() * d];
        float[] v = new float[c.capacity() * d];
        for (int h = 0; h < c.kvHeads(); h++) {
            int n = cache.read(layer, h, k, v);
            int[] pos = cache.positions(layer, h);
            boolean[] visible = new boolean[n];
            for (int j = 0; j < n; j++) {
                visible[j] = pos[j] <= position;
            }
            for (int g = 0; g < c.groupSize(); g++) {
                int qh = h * c.groupSize() + g;
                double[] ref = Reference.attention(q, qh * d, k, v, n, d, 1 / Math.sqrt(d), visible);
                double err = Reference.relativeError(out, qh * d, ref);
                assertTrue(err <= tolerance, "query head " + qh + " error " + err + ", seed " + seed);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void attentionAfterEvictionsCoversExactlyTheResidentSlots(DType dtype) {
        long seed = Seeds.fresh("attentionAfterEvictions " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        int d = dtype.isQuantized() ? 96 : 80; // a quantized row holds whole groups of 32
        int kvHeads = 2;
        int queryHeads = 8;
        int capacity = 37;
        KvCacheConfig config = shape(2, kvHeads, queryHeads, d, capacity).dtype(dtype)
                .policy(Policies.streamingLlm(3)).build();
        try (KvCache cache = KvCache.create(config)) {
            for (int p = 0; p < 100; p++) {
                for (int l = 0; l < 2; l++) {
                    cache.append(l, p, Seeds.uniform(r, kvHeads * d, 1), Seeds.uniform(r, kvHeads * d, 1));
                    assertAttentionOverResident(cache, l, p, Seeds.uniform(r, queryHeads * d, 2), 1e-5, seed);
                }
            }
            assertEquals(capacity, cache.stats().resident(1, 1));
            assertEquals(2L * kvHeads * (100 - capacity), cache.stats().evicted());
        }
    }

    @Test
    void streamingLlmKeepsExactlySinksAndRecent() {
        int capacity = 10;
        int sinks = 4;
        KvCacheConfig config = shape(1, 1, 1, 16, capacity).policy(Policies.streamingLlm(sinks)).build();
        try (KvCache cache = KvCache.create(config)) {
            float[] row = new float[16];
            for (int p = 0; p < 50; p += 2) {
                row[0] = p;
                cache.append(0, p, row, row);
                int[] pos = cache.positions(0, 0);
                Arrays.sort(pos);
                int resident = Math.min(p / 2 + 1, capacity);
                int[] expected = new int[resident];
                for (int i = 0; i < resident; i++) {
                    // sinks are positions 0, 2, 4, 6; the rest are the newest
                    expected[i] = i < sinks || resident < capacity ? 2 * i : p - 2 * (resident - 1 - i);
                }
                assertArrayEquals(expected, pos, "after appending position " + p);
            }
        }
    }

    @Test
    void compressKeepsFloorOfRemainingFraction() {
        KvCacheConfig config = shape(2, 2, 2, 16, 64).policy(Policies.streamingLlm()).build();
        try (KvCache cache = KvCache.create(config)) {
            float[] chunk = new float[50 * 2 * 16];
            Arrays.fill(chunk, 0.5f);
            cache.append(0, 0, 50, chunk, chunk);
            cache.append(1, 0, 50, chunk, chunk);
            cache.compress(0.75);
            assertEquals(12, cache.stats().resident(0, 1), "floor(50 * 0.25)");
            int[] pos = cache.positions(1, 0);
            assertArrayEquals(new int[] {0, 1, 2, 3, 42, 43, 44, 45, 46, 47, 48, 49}, pos, "in order, sinks + recent");
            cache.compress(5);
            assertEquals(5, cache.stats().resident(1, 1));
            cache.compress(0.0);
            assertEquals(5, cache.stats().resident(0, 0));
            assertEquals(4L * (50 - 5), cache.stats().evicted());
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void causalChunkEqualsTokenByToken(DType dtype) {
        long seed = Seeds.fresh("causalChunkEqualsTokenByToken " + dtype);
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        int tokens = 21;
        KvCacheConfig config = shape(1, 2, 4, d, 64).dtype(dtype).build();
        float[] k = Seeds.uniform(r, tokens * 2 * d, 1);
        float[] v = Seeds.uniform(r, tokens * 2 * d, 1);
        float[] q = Seeds.uniform(r, tokens * 4 * d, 2);
        float[] chunkOut = new float[tokens * 4 * d];
        float[] stepOut = new float[tokens * 4 * d];
        try (KvCache chunked = KvCache.create(config); KvCache stepped = KvCache.create(config)) {
            chunked.append(0, 5, tokens, k, v);
            chunked.attend(0, 5, tokens, q, chunkOut);
            for (int t = 0; t < tokens; t++) {
                stepped.append(0, 5 + t, Arrays.copyOfRange(k, t * 2 * d, (t + 1) * 2 * d),
                        Arrays.copyOfRange(v, t * 2 * d, (t + 1) * 2 * d));
                float[] o = new float[4 * d];
                stepped.attend(0, 5 + t, Arrays.copyOfRange(q, t * 4 * d, (t + 1) * 4 * d), o);
                System.arraycopy(o, 0, stepOut, t * 4 * d, 4 * d);
            }
        }
        assertArrayEquals(stepOut, chunkOut, "seed " + seed);
    }

    @Test
    void causalChunkMasksLaterSlotsWhenSlotsAreOutOfOrder() {
        long seed = Seeds.fresh("causalChunkMasksLaterSlots");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        KvCacheConfig config = shape(1, 1, 2, d, 16).policy(Policies.streamingLlm(2)).build();
        try (KvCache cache = KvCache.create(config)) {
            for (int p = 0; p < 20; p++) {
                cache.append(0, p, Seeds.uniform(r, d, 1), Seeds.uniform(r, d, 1));
            }
            cache.append(0, 20, 6, Seeds.uniform(r, 6 * d, 1), Seeds.uniform(r, 6 * d, 1));
            // swap-removal left the slots out of position order; query 22 must not see 23..25
            assertAttentionOverResident(cache, 0, 22, Seeds.uniform(r, 2 * d, 2), 1e-5, seed);
            assertAttentionOverResident(cache, 0, 25, Seeds.uniform(r, 2 * d, 2), 1e-5, seed);
        }
    }

    @Test
    void executorFanOutIsBitIdentical() {
        long seed = Seeds.fresh("executorFanOutIsBitIdentical");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 128;
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            KvCacheConfig serial = shape(1, 8, 32, d, 300).dtype(DType.F16).policy(Policies.streamingLlm()).build();
            KvCacheConfig parallel = serial.toBuilder().executor(pool).build();
            try (KvCache a = KvCache.create(serial); KvCache b = KvCache.create(parallel)) {
                for (int p = 0; p < 400; p++) {
                    float[] k = Seeds.uniform(r, 8 * d, 1);
                    float[] v = Seeds.uniform(r, 8 * d, 1);
                    float[] q = Seeds.uniform(r, 32 * d, 1);
                    a.append(0, p, k, v);
                    b.append(0, p, k, v);
                    float[] oa = new float[32 * d];
                    float[] ob = new float[32 * d];
                    a.attend(0, p, q, oa);
                    b.attend(0, p, q, ob);
                    assertArrayEquals(oa, ob, "position " + p + ", seed " + seed);
                }
            }
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void sharingLayersReadTheirSourceAndReserveNothing() {
        long seed = Seeds.fresh("sharingLayersReadTheirSource");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        KvCacheConfig plain = shape(4, 2, 4, d, 32).build();
        KvCacheConfig shared = plain.toBuilder().kvSourceLayers(new int[] {0, 0, 2, 2}).build();
        try (KvCache a = KvCache.create(plain); KvCache b = KvCache.create(shared)) {
            assertEquals(a.stats().reservedBytes() / 2, b.stats().reservedBytes());
            for (int p = 0; p < 10; p++) {
                float[] k = Seeds.uniform(r, 2 * d, 1);
                float[] v = Seeds.uniform(r, 2 * d, 1);
                b.append(0, p, k, v);
                a.append(0, p, k, v);
                a.append(1, p, k, v);
            }
            float[] q = Seeds.uniform(r, 4 * d, 1);
            float[] oa = new float[4 * d];
            float[] ob = new float[4 * d];
            a.attend(1, 9, q, oa);
            b.attend(1, 9, q, ob);
            assertArrayEquals(oa, ob);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> b.append(1, 10, new float[2 * d], new float[2 * d]));
            assertTrue(e.getMessage().contains("reads the KV of layer 0"), e.getMessage());
        }
    }

    @Test
    void segmentAppendEqualsArrayAppend() {
        long seed = Seeds.fresh("segmentAppendEqualsArrayAppend");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        KvCacheConfig config = shape(1, 2, 2, d, 16).dtype(DType.BF16).build();
        float[] k = Seeds.uniform(r, 3 * 2 * d, 1);
        float[] v = Seeds.uniform(r, 3 * 2 * d, 1);
        try (KvCache a = KvCache.create(config); KvCache b = KvCache.create(config); Arena arena = Arena.ofConfined()) {
            MemorySegment ks = arena.allocate(k.length * 4L);
            MemorySegment vs = arena.allocate(v.length * 4L);
            MemorySegment.copy(k, 0, ks, ValueLayout.JAVA_FLOAT, 0, k.length);
            MemorySegment.copy(v, 0, vs, ValueLayout.JAVA_FLOAT, 0, v.length);
            a.append(0, 0, 3, k, v);
            b.append(0, 0, 3, ks, vs);
            float[] ka = new float[16 * d];
            float[] kb = new float[16 * d];
            float[] va = new float[16 * d];
            float[] vb = new float[16 * d];
            for (int h = 0; h < 2; h++) {
                assertEquals(3, a.read(0, h, ka, va));
                assertEquals(3, b.read(0, h, kb, vb));
                assertArrayEquals(ka, kb);
                assertArrayEquals(va, vb);
                assertEquals(Codec.roundTrip(k[h * d], DType.BF16), ka[0]);
            }
        }
    }

    @Test
    void statsCountBytesAndCloseReleasesThem() {
        KvCacheConfig config = shape(3, 2, 4, 64, 100).dtype(DType.F16).build();
        KvCache cache = KvCache.create(config);
        // a private pool of whole blocks of 64 slots: 128 key rows and 128 value rows per buffer
        assertEquals(3L * 2 * (128 + 128) * 64 * 2, cache.stats().reservedBytes());
        cache.append(1, 0, 7, new float[7 * 2 * 64], new float[7 * 2 * 64]);
        assertEquals(7L * 2 * 2 * 64 * 2, cache.stats().residentBytes());
        cache.reset();
        assertEquals(0, cache.stats().totalResident());
        cache.close();
        cache.close();
        assertEquals(0, cache.stats().reservedBytes());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.compress(0.5));
        assertTrue(e.getMessage().contains("closed"));
    }
}
