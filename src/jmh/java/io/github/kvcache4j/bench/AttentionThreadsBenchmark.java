package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
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
 * kvcache4j decode attention (as {@link DecodeAttentionBenchmark}: Llama-3-8B layer, one decode
 * query) at 16K resident tokens, on the calling thread alone ({@code threads = 1}: no executor) or
 * fanned out with {@link KvCacheConfig.Builder#executor} over a fixed pool of
 * {@code threads - 1} workers created in setup: the calling thread and the workers pull kv-heads
 * from a shared counter, so {@code threads} threads in all do the work.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class AttentionThreadsBenchmark {

    /** Resident tokens. */
    @Param({"16384"})
    int tokens;

    /** Storage type. */
    @Param({"F32", "F16"})
    DType dtype;

    /** Threads doing the work: the caller, and {@code threads - 1} pool workers. */
    @Param({"1", "2"})
    int threads;

    private ExecutorService pool;
    private KvCache cache;
    private float[] query;
    private float[] out;

    /** Creates the pool (if any) and fills the cache with {@link AttentionData}. */
    @Setup(Level.Trial)
    public void setUp() {
        KvCacheConfig.Builder builder = KvCacheConfig.builder().layers(1).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM).capacity(tokens)
                .dtype(dtype);
        if (threads > 1) {
            pool = Executors.newFixedThreadPool(threads - 1, r -> {
                Thread t = new Thread(r, "attention-worker");
                t.setDaemon(true);
                return t;
            });
            builder.executor(pool);
        }
        cache = KvCache.create(builder.build());
        AttentionData data = AttentionData.generate(tokens);
        data.appendTo(cache);
        query = data.query;
        out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
    }

    /** Closes the cache and shuts the pool down. */
    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        cache.close();
        if (pool != null) {
            pool.shutdown();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    /** One decode step's attention for one layer. */
    @Benchmark
    public float[] attend() {
        cache.attend(0, tokens - 1, query, out);
        return out;
    }
}
