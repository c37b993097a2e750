package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
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
 * The per-token cost of each eviction policy at decode time: one layer in the Llama-3-8B shape
 * (32 query heads, 8 kv-heads, head dimension 128, F16) holding a full cache of 4096 tokens per
 * kv-head. {@link #decodeStep} appends one token (the policy evicts one per kv-head) and attends.
 * The baseline is {@link DecodeAttentionBenchmark} at {@code tokens=4096, dtype=F16}: plain
 * attention over the same number of resident tokens, run in the same JMH invocation.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class PolicyCostBenchmark {

    private static final int QUERY_HEADS = AttentionData.QUERY_HEADS;
    private static final int KV_HEADS = AttentionData.KV_HEADS;
    private static final int HEAD_DIM = AttentionData.HEAD_DIM;
    static final int TOKENS = 4096;

    @Param({"streaming_llm", "knorm", "h2o", "observed_attention", "snapkv", "tova", "corm"})
    String policy;

    private KvCache cache;
    private float[] query;
    private float[] keys;
    private float[] values;
    private float[] out;
    private int position;

    static EvictionPolicy policy(String name) {
        return switch (name) {
            case "streaming_llm" -> Policies.streamingLlm();
            case "knorm" -> Policies.knorm();
            case "h2o" -> Policies.h2o();
            case "observed_attention" -> Policies.observedAttention();
            case "snapkv" -> Policies.snapKv();
            case "tova" -> Policies.tova();
            case "corm" -> Policies.corm();
            default -> throw new IllegalArgumentException("unknown policy " + name);
        };
    }

    @Setup(Level.Iteration)
    public void setUp() {
        cache = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                .headDim(HEAD_DIM).capacity(TOKENS).dtype(DType.F16).policy(policy(policy)).build());
        SplittableRandom random = new SplittableRandom(7);
        int row = KV_HEADS * HEAD_DIM;
        query = new float[QUERY_HEADS * HEAD_DIM];
        out = new float[QUERY_HEADS * HEAD_DIM];
        keys = new float[row];
        values = new float[row];
        float[] chunkKeys = new float[64 * row];
        float[] chunkValues = new float[64 * row];
        float[] chunkQueries = new float[64 * QUERY_HEADS * HEAD_DIM];
        float[] chunkOut = new float[chunkQueries.length];
        for (position = 0; position < TOKENS; position += 64) {
            AttentionData.fill(random, chunkKeys);
            AttentionData.fill(random, chunkValues);
            AttentionData.fill(random, chunkQueries);
            cache.append(0, position, 64, chunkKeys, chunkValues);
            cache.attend(0, position, 64, chunkQueries, chunkOut);
        }
        AttentionData.fill(random, query);
        AttentionData.fill(random, keys);
        AttentionData.fill(random, values);
    }

    @TearDown(Level.Iteration)
    public void tearDown() {
        cache.close();
    }

    /** One decode step: append a token (evicting one per kv-head when full) and attend. */
    @Benchmark
    public float[] decodeStep() {
        cache.append(0, position, keys, values);
        cache.attend(0, position, query, out);
        position++;
        return out;
    }
}
