package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
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
 * Decode attention of one Llama-3-8B layer (32 query heads, 8 kv-heads, head dimension 128) over
 * {@code tokens} resident tokens stored as F32, F16, Q8 or Q4, one thread, next to the
 * streaming-read ceiling over the same bytes: {@code tokens × 8 × 2 × rowBytes(128)} (rows of 512,
 * 256, 144 and 96 bytes). Tokens per second is {@code 1 / time}, so the speed-up of a format over
 * F32 is the ratio of their times.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class QuantizedDecodeBenchmark {

    @Param({"16384"})
    int tokens;

    @Param({"F32", "F16", "Q8", "Q4"})
    DType dtype;

    private KvCache cache;
    private float[] query;
    private float[] out;
    private Arena arena;
    private MemorySegment bytes;
    private float[] weights;

    @Setup(Level.Trial)
    public void setUp() {
        AttentionData data = AttentionData.generate(tokens);
        cache = data.newLayerCache(dtype);
        query = data.query;
        out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
        long size = (long) tokens * AttentionData.KV_HEADS * 2 * dtype.rowBytes(AttentionData.HEAD_DIM);
        arena = Arena.ofShared();
        bytes = arena.allocate(size, 64);
        for (long i = 0; i + 4 <= size; i += 4) {
            bytes.set(ValueLayout.JAVA_FLOAT, i, (i % 1024) * 1e-3f);
        }
        weights = new float[FloatVector.SPECIES_PREFERRED.length() * 4];
        Arrays.fill(weights, 0.5f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
        arena.close();
    }

    /** One decode step's attention for one layer. */
    @Benchmark
    public float[] attend() {
        cache.attend(0, tokens - 1, query, out);
        return out;
    }

    /** The ceiling: one vectorised pass over as many bytes as {@link #attend} reads. */
    @Benchmark
    public float streamingRead() {
        return StreamingReadBenchmark.read(bytes, weights);
    }
}
