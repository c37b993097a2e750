package io.github.kvcache4j.bench;

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
import org.openjdk.jmh.annotations.Warmup;

/**
 * Peer: the plain scalar attention loop of llama3.java-style inference code over on-heap caches,
 * with the same keys, values and query as {@link DecodeAttentionBenchmark} (32 query heads, 8
 * kv-heads, head dimension 128, one decode query over {@code tokens} resident tokens, one thread).
 *
 * <p>Per query head {@code h} (kv-head {@code h / 4}): a score per position from a scalar dot
 * product of the head's query with that position's key row, scaled by {@code 1/√128}; a
 * max-subtracted softmax; then the score-weighted sum of the value rows. The caches are one
 * layer's {@code [position * kvDim + kvHead * headDim + i]} arrays: {@code float[]} for F32, and
 * {@code short[]} of F16 bits widened with {@link Float#float16ToFloat} for F16.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class ScalarLoopAttentionBenchmark {

    private static final int QUERY_HEADS = AttentionData.QUERY_HEADS;
    private static final int HEAD_DIM = AttentionData.HEAD_DIM;
    private static final int KV_DIM = AttentionData.KV_DIM;
    private static final int GROUP = QUERY_HEADS / AttentionData.KV_HEADS;

    /** Resident tokens. */
    @Param({"1024", "4096", "16384"})
    int tokens;

    /** Cache element type: F32 ({@code float[]}) or F16 ({@code short[]} bits). */
    @Param({"F32", "F16"})
    String dtype;

    private float[] keys;
    private float[] values;
    private short[] keys16;
    private short[] values16;
    private float[] query;
    private float[] scores;
    private float[] out;

    /** Generates the caches. */
    @Setup(Level.Trial)
    public void setUp() {
        AttentionData data = AttentionData.generate(tokens);
        query = data.query;
        if (dtype.equals("F16")) {
            keys16 = AttentionData.toF16(data.keys);
            values16 = AttentionData.toF16(data.values);
        } else if (dtype.equals("F32")) {
            keys = data.keys;
            values = data.values;
        } else {
            throw new IllegalArgumentException("dtype " + dtype);
        }
        scores = new float[tokens];
        out = new float[QUERY_HEADS * HEAD_DIM];
    }

    /** One decode step's attention for one layer. */
    @Benchmark
    public float[] attend() {
        if (keys != null) {
            attention(keys, values, query, tokens, scores, out);
        } else {
            attentionF16(keys16, values16, query, tokens, scores, out);
        }
        return out;
    }

    /**
     * Scalar attention of one decode query over {@code tokens} positions of F32 caches.
     *
     * @return a new array of {@code 32 × 128} outputs
     */
    static float[] attention(float[] keys, float[] values, float[] query, int tokens) {
        float[] out = new float[QUERY_HEADS * HEAD_DIM];
        attention(keys, values, query, tokens, new float[tokens], out);
        return out;
    }

    private static void attention(float[] keys, float[] values, float[] query, int tokens, float[] att,
            float[] out) {
        float scale = (float) (1.0 / Math.sqrt(HEAD_DIM));
        for (int h = 0; h < QUERY_HEADS; h++) {
            int qOffset = h * HEAD_DIM;
            int kvOffset = (h / GROUP) * HEAD_DIM;
            for (int t = 0; t < tokens; t++) {
                int kOffset = t * KV_DIM + kvOffset;
                float score = 0f;
                for (int i = 0; i < HEAD_DIM; i++) {
                    score += query[qOffset + i] * keys[kOffset + i];
                }
                att[t] = score * scale;
            }
            softmax(att, tokens);
            java.util.Arrays.fill(out, qOffset, qOffset + HEAD_DIM, 0f);
            for (int t = 0; t < tokens; t++) {
                int vOffset = t * KV_DIM + kvOffset;
                float a = att[t];
                for (int i = 0; i < HEAD_DIM; i++) {
                    out[qOffset + i] += a * values[vOffset + i];
                }
            }
        }
    }

    private static void attentionF16(short[] keys, short[] values, float[] query, int tokens, float[] att,
            float[] out) {
        float scale = (float) (1.0 / Math.sqrt(HEAD_DIM));
        for (int h = 0; h < QUERY_HEADS; h++) {
            int qOffset = h * HEAD_DIM;
            int kvOffset = (h / GROUP) * HEAD_DIM;
            for (int t = 0; t < tokens; t++) {
                int kOffset = t * KV_DIM + kvOffset;
                float score = 0f;
                for (int i = 0; i < HEAD_DIM; i++) {
                    score += query[qOffset + i] * Float.float16ToFloat(keys[kOffset + i]);
                }
                att[t] = score * scale;
            }
            softmax(att, tokens);
            java.util.Arrays.fill(out, qOffset, qOffset + HEAD_DIM, 0f);
            for (int t = 0; t < tokens; t++) {
                int vOffset = t * KV_DIM + kvOffset;
                float a = att[t];
                for (int i = 0; i < HEAD_DIM; i++) {
                    out[qOffset + i] += a * Float.float16ToFloat(values[vOffset + i]);
                }
            }
        }
    }

    private static void softmax(float[] x, int size) {
        float max = x[0];
        for (int i = 1; i < size; i++) {
            max = Math.max(max, x[i]);
        }
        float sum = 0f;
        for (int i = 0; i < size; i++) {
            x[i] = (float) Math.exp(x[i] - max);
            sum += x[i];
        }
        for (int i = 0; i < size; i++) {
            x[i] /= sum;
        }
    }
}
