package io.github.kvcache4j.spi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.testutil.Seeds;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * A policy written outside the library's policy package ({@link EveryKthPolicy}) runs in a real
 * cache and keeps what it promises; {@code CacheInvariantsPropertyTest} runs it too.
 */
class EveryKthPolicyTest {

    private static final int K = 3;
    private static final int WINDOW = 4;
    private static final int D = 16;

    @Test
    void decodeKeepsEveryKthPositionAndTheRecentWindow() {
        // The victim is chosen before the new token is stored, so the window of the last choice
        // plus the new token stay: positions [n - 1 - WINDOW, n). Below them, 12 grid positions
        // 0, 3, .., 33; a capacity of WINDOW + 1 + 12 leaves no room for anything else.
        int n = 40;
        int grid = (n - 1 - WINDOW + K - 1) / K;
        int capacity = WINDOW + 1 + grid;
        SplittableRandom r = new SplittableRandom(Seeds.fresh("decodeKeepsEveryKthPositionAndTheRecentWindow"));
        KvCacheConfig config = KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(4).headDim(D)
                .capacity(capacity).policy(new EveryKthPolicy(K, WINDOW)).build();
        try (KvCache cache = KvCache.create(config)) {
            for (int p = 0; p < n; p++) {
                for (int layer = 0; layer < 2; layer++) {
                    cache.append(layer, p, Seeds.uniform(r, 2 * D, 1), Seeds.uniform(r, 2 * D, 1));
                    cache.attend(layer, p, Seeds.uniform(r, 4 * D, 1), new float[4 * D]);
                }
            }
            int[] expected = IntStream.concat(IntStream.range(0, grid).map(i -> i * K),
                    IntStream.range(n - 1 - WINDOW, n)).toArray();
            assertResident(cache, expected);

            // Compress to 10: 35, the only token off the grid outside the window, goes first, then
            // the latest grid tokens.
            cache.compress(10);
            assertResident(cache, new int[] {0, 3, 6, 9, 12, 15, 36, 37, 38, 39});
        }
    }

    private static void assertResident(KvCache cache, int[] expected) {
        for (int layer = 0; layer < 2; layer++) {
            for (int h = 0; h < 2; h++) {
                int[] kept = cache.positions(layer, h);
                Arrays.sort(kept);
                assertArrayEquals(expected, kept, "layer " + layer + ", kv-head " + h);
            }
        }
    }
}
