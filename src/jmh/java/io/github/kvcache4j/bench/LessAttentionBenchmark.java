package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.less.FeatureMap;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cost of the LESS residual in decode attention: one layer in the Llama-3-8B shape (32 query
 * heads, 8 kv-heads, head dimension 128) with {@code tokens} resident tokens, after 256 evictions
 * (L2-norm policy) so that the residual is in use; {@code rank} 0 is the same cache without LESS.
 * With LESS each query head also computes its {@code R} log-features ({@code R × 128} multiply-adds)
 * and adds {@code R} rows of the state ({@code R × 128}).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class LessAttentionBenchmark {

    static final int QUERY_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;
    static final int EVICTED = 256;

    @Param({"4096"})
    int tokens;

    @Param({"0", "32"})
    int rank;

    @Param({"F32", "F16"})
    DType dtype;

    private KvCache cache;
    private float[] query;
    private float[] out;

    @Setup(Level.Trial)
    public void setUp() {
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(1).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                .headDim(HEAD_DIM).capacity(tokens).dtype(dtype).policy(Policies.knorm());
        if (rank > 0) {
            b.less(FeatureMap.positiveRandom(HEAD_DIM, rank, 42));
        }
        cache = KvCache.create(b.build());
        SplittableRandom random = new SplittableRandom(42);
        int chunk = 256;
        int total = tokens + EVICTED;
        float[] keys = new float[chunk * KV_HEADS * HEAD_DIM];
        float[] values = new float[chunk * KV_HEADS * HEAD_DIM];
        for (int p = 0; p < total; p += chunk) {
            int n = Math.min(chunk, total - p);
            DecodeAttentionBenchmark.fill(random, keys);
            DecodeAttentionBenchmark.fill(random, values);
            cache.append(0, p, n, Arrays.copyOf(keys, n * KV_HEADS * HEAD_DIM), Arrays.copyOf(values, n * KV_HEADS * HEAD_DIM));
        }
        query = new float[QUERY_HEADS * HEAD_DIM];
        DecodeAttentionBenchmark.fill(random, query);
        out = new float[QUERY_HEADS * HEAD_DIM];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
    }

    /** One decode step's attention for one layer, with the LESS term when {@code rank > 0}. */
    @Benchmark
    public float[] attend() {
        cache.attend(0, tokens + EVICTED - 1, query, out);
        return out;
    }
}
