package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.less.FeatureMap;
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
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(1).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM).capacity(tokens).dtype(dtype).policy(Policies.knorm());
        if (rank > 0) {
            b.less(FeatureMap.positiveRandom(AttentionData.HEAD_DIM, rank, 42));
        }
        cache = KvCache.create(b.build());
        AttentionData data = AttentionData.generate(tokens + EVICTED);
        data.appendTo(cache);
        query = data.query;
        out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
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
