package io.github.kvcache4j.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
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
 * The machine's streaming-read ceiling: a plain vectorised dot product over as many off-heap bytes
 * as {@link DecodeAttentionBenchmark} reads at the same {@code tokens} and dtype (keys and values
 * of 8 kv-heads × 128 dimensions).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class StreamingReadBenchmark {

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    @Param({"1024", "4096", "16384", "65536"})
    int tokens;

    @Param({"4", "2"})
    int bytesPerElement;

    private Arena arena;
    private MemorySegment data;
    private float[] weights;

    @Setup(Level.Trial)
    public void setUp() {
        long bytes = (long) tokens * AttentionData.KV_DIM
                * 2 * bytesPerElement;
        arena = Arena.ofShared();
        data = arena.allocate(bytes, 64);
        for (long i = 0; i < bytes; i += 4) {
            data.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (i % 1024) * 1e-3f);
        }
        weights = new float[F.length() * 4];
        java.util.Arrays.fill(weights, 0.5f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** Reads every byte once: four independent FMA chains over 64-byte vectors. */
    @Benchmark
    public float read() {
        return read(data, weights);
    }

    /** Reads every byte of {@code data} once with {@code weights} of four float vectors; the ceiling of other benchmarks too. */
    static float read(MemorySegment data, float[] weights) {
        int l = F.length();
        long step = 4L * l * 4;
        FloatVector w = FloatVector.fromArray(F, weights, 0);
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        long end = data.byteSize() - step;
        ByteOrder le = ByteOrder.LITTLE_ENDIAN;
        for (long i = 0; i <= end; i += step) {
            a0 = FloatVector.fromMemorySegment(F, data, i, le).fma(w, a0);
            a1 = FloatVector.fromMemorySegment(F, data, i + 4L * l, le).fma(w, a1);
            a2 = FloatVector.fromMemorySegment(F, data, i + 8L * l, le).fma(w, a2);
            a3 = FloatVector.fromMemorySegment(F, data, i + 12L * l, le).fma(w, a3);
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }
}
