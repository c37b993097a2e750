package io.github.kvcache4j.testutil;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Everything observable about a cache's contents, for "the cache is unchanged" checks. */
public record Snapshot(List<String> buffers, String stats) {

    /** Captures positions, keys and values of every (layer, kv-head), and the stats. */
    public static Snapshot of(KvCache cache) {
        KvCacheConfig c = cache.config();
        List<String> buffers = new ArrayList<>();
        float[] k = new float[c.capacity() * c.headDim()];
        float[] v = new float[c.capacity() * c.headDim()];
        for (int l = 0; l < c.layers(); l++) {
            for (int h = 0; h < c.kvHeads(); h++) {
                int n = cache.read(l, h, k, v);
                buffers.add(l + "/" + h + " " + Arrays.toString(cache.positions(l, h)) + " "
                        + Arrays.hashCode(Arrays.copyOf(k, n * c.headDim())) + " "
                        + Arrays.hashCode(Arrays.copyOf(v, n * c.headDim())));
            }
        }
        var s = cache.stats();
        return new Snapshot(buffers, Arrays.deepToString(s.resident()) + " evicted=" + s.evicted()
                + " resident=" + s.residentBytes() + " reserved=" + s.reservedBytes());
    }
}
