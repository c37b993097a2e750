package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
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

    static final int QUERY_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;

    @Param({"1024", "4096", "16384", "65536"})
    int tokens;

    @Param({"F32", "F16", "BF16"})
    DType dtype;

    private KvCache cache;
    private float[] query;
    private float[] out;

    @Setup(Level.Trial)
    public void setUp() {
        cache = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                .headDim(HEAD_DIM).capacity(tokens).dtype(dtype).build());
        SplittableRandom random = new SplittableRandom(42);
        int chunk = 256;
        float[] keys = new float[chunk * KV_HEADS * HEAD_DIM];
        float[] values = new float[chunk * KV_HEADS * HEAD_DIM];
        for (int p = 0; p < tokens; p += chunk) {
            fill(random, keys);
            fill(random, values);
            cache.append(0, p, Math.min(chunk, tokens - p), sized(keys, tokens - p), sized(values, tokens - p));
        }
        query = new float[QUERY_HEADS * HEAD_DIM];
        fill(random, query);
        out = new float[QUERY_HEADS * HEAD_DIM];
    }

    private static float[] sized(float[] a, int remaining) {
        int rows = a.length / (KV_HEADS * HEAD_DIM);
        return remaining >= rows ? a : java.util.Arrays.copyOf(a, remaining * KV_HEADS * HEAD_DIM);
    }

    static void fill(SplittableRandom random, float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (random.nextGaussian() * 0.5);
        }
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
