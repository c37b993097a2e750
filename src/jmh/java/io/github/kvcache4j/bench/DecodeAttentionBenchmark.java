package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
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
 * Decode attention of one layer in the Llama-3-8B shape (32 query heads, 8 kv-heads, head
 * dimension 128) over {@code tokens} resident tokens: one query token, every kv-head, one thread.
 * Each call reads {@code tokens × 8 × 128 × 2} stored elements.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class DecodeAttentionBenchmark {

    @Param({"1024", "4096", "16384", "65536"})
    int tokens;

    @Param({"F32", "F16", "BF16"})
    DType dtype;

    private KvCache cache;
    private float[] query;
    private float[] out;

    @Setup(Level.Trial)
    public void setUp() {
        AttentionData data = AttentionData.generate(tokens);
        cache = data.newLayerCache(dtype);
        query = data.query;
        out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
    }

    /** One decode step's attention for one layer. */
    @Benchmark
    public float[] attend() {
        cache.attend(0, tokens - 1, query, out);
        return out;
    }
}
