package io.github.kvcache4j.bench;

import io.github.kvcache4j.kernel.PanamaQuantizedRows;
import io.github.kvcache4j.kernel.QuantizedRows;
import io.github.kvcache4j.store.Q4;
import io.github.kvcache4j.store.Q8;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
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
 * The quantized-row kernels over 4096 rows of {@code headDim} 128 (one kv-head's keys or values
 * of a 4K context): one query's dot product with every row, and the weighted sum of every row,
 * for F32 rows (a vector loop over the floats, the baseline) and Q8 / Q4 rows (scalar and vector
 * twins).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx1g"})
public class QuantizedRowsBenchmark {

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int ROWS = 4096;
    private static final int D = 128;

    @Param({"f32", "q8-scalar", "q8-vector", "q4-scalar", "q4-vector"})
    String kernel;

    private Arena arena;
    private MemorySegment rows;
    private long rowBytes;
    private final float[] query = new float[D];
    private final float[] weights = new float[ROWS];
    private final float[] out = new float[D];

    @Setup(Level.Trial)
    public void setUp() {
        SplittableRandom r = new SplittableRandom(42);
        rowBytes = kernel.startsWith("q8") ? Q8.rowBytes(D) : kernel.startsWith("q4") ? Q4.rowBytes(D) : 4L * D;
        arena = Arena.ofShared();
        rows = arena.allocate(rowBytes * ROWS, 64);
        float[] row = new float[D];
        for (int t = 0; t < ROWS; t++) {
            for (int i = 0; i < D; i++) {
                row[i] = (float) r.nextGaussian();
            }
            long at = t * rowBytes;
            switch (kernel.substring(0, 2)) {
                case "q8" -> Q8.encode(row, 0, D, rows, at);
                case "q4" -> Q4.encode(row, 0, D, rows, at);
                default -> MemorySegment.copy(row, 0, rows, F32, at, D);
            }
            weights[t] = (float) r.nextDouble() / ROWS;
        }
        for (int i = 0; i < D; i++) {
            query[i] = (float) r.nextGaussian();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** One query against every row: the score pass of decode attention. */
    @Benchmark
    public float scores() {
        float s = 0;
        for (int t = 0; t < ROWS; t++) {
            long at = t * rowBytes;
            s += switch (kernel) {
                case "q8-scalar" -> QuantizedRows.dotQ8(query, 0, rows, at, D);
                case "q8-vector" -> PanamaQuantizedRows.dotQ8(query, 0, rows, at, D);
                case "q4-scalar" -> QuantizedRows.dotQ4(query, 0, rows, at, D);
                case "q4-vector" -> PanamaQuantizedRows.dotQ4(query, 0, rows, at, D);
                default -> dotF32(at);
            };
        }
        return s;
    }

    /** The weighted sum of every row: the value pass of decode attention. */
    @Benchmark
    public float[] values() {
        java.util.Arrays.fill(out, 0f);
        for (int t = 0; t < ROWS; t++) {
            long at = t * rowBytes;
            switch (kernel) {
                case "q8-scalar" -> QuantizedRows.accumulateQ8(weights[t], rows, at, out, 0, D);
                case "q8-vector" -> PanamaQuantizedRows.accumulateQ8(weights[t], rows, at, out, 0, D);
                case "q4-scalar" -> QuantizedRows.accumulateQ4(weights[t], rows, at, out, 0, D);
                case "q4-vector" -> PanamaQuantizedRows.accumulateQ4(weights[t], rows, at, out, 0, D);
                default -> accumulateF32(weights[t], at);
            }
        }
        return out;
    }

    private float dotF32(long at) {
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < D; i += F.length()) {
            acc = FloatVector.fromArray(F, query, i).fma(FloatVector.fromMemorySegment(F, rows, at + 4L * i,
                    ByteOrder.LITTLE_ENDIAN), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    private void accumulateF32(float w, long at) {
        FloatVector wv = FloatVector.broadcast(F, w);
        for (int i = 0; i < D; i += F.length()) {
            FloatVector.fromMemorySegment(F, rows, at + 4L * i, ByteOrder.LITTLE_ENDIAN).fma(wv,
                    FloatVector.fromArray(F, out, i)).intoArray(out, i);
        }
    }
}
