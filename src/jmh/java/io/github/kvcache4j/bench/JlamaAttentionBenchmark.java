package io.github.kvcache4j.bench;

import com.github.tjake.jlama.math.VectorMath;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.tensor.AbstractTensor;
import com.github.tjake.jlama.tensor.FloatBufferTensor;
import com.github.tjake.jlama.tensor.TensorCache;
import com.github.tjake.jlama.tensor.TensorShape;
import com.github.tjake.jlama.tensor.operations.TensorOperations;
import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 * Peer: Jlama 0.8.4's decode attention over the same keys, values and query as
 * {@link DecodeAttentionBenchmark} (Llama-3-8B layer: 32 query heads, 8 kv-heads, head dimension 128;
 * one decode query over {@code tokens} resident tokens; one thread).
 *
 * <h2>What Jlama does</h2>
 * In {@code com.github.tjake.jlama.model.CausalSelfAttention.forward(input, position, kvMem, ...)}
 * (read from the 0.8.4 bytecode), once the new token's key and value are copied into the
 * {@code KvBufferCache.KvBuffer}, the attention of one batch row is
 * <ol>
 *   <li>{@code kvMem.getKeyTensorsUptoPosition(layer, pos)} and {@code getValTensorsUptoPosition}:
 *       the KV pages, each a slice {@code page.slice(true, layerInPage, 0 | 1)} of a page tensor of
 *       shape {@code [layersPerPage, 2, contextLengthPerPage, kvLength]} in the model's working
 *       dtype ({@code KvBufferPage} supports only F32 ({@code FloatBufferTensor}) and BF16
 *       ({@code BFloat16BufferTensor}));</li>
 *   <li>if the key pages' dtype differs from the query's, {@code TensorOperations.quantize(query,
 *       keyDType, 0, kvLength)};</li>
 *   <li>{@code VectorMath.pfor(headStart, headEnd, h -> ...)} over the query heads, each head doing:
 *     <ul>
 *       <li>{@code attn = model.makeDenseTensor(1, pageRows × pages)} (a {@code TensorCache} tensor
 *           in the working dtype, closed at the end),</li>
 *       <li>per key page {@code i}: {@code ops.batchDotProduct(attn, query, keyPage[i],
 *           h × headSize, maybeMapToGroupHead(h) × headSize, headSize, i × pageRows, 0, rows)},</li>
 *       <li>{@code ops.scale(1 / sqrt(headSize), attn, 0, pos + 1)},</li>
 *       <li>{@code VectorMath.softMax(attn, 0, pos + 1)},</li>
 *       <li>per value page {@code i}: {@code ops.saxpy(attn, valPage[i], value,
 *           maybeMapToGroupHead(h) × headSize, h × headSize, headSize, i × pageRows, 0, rows)}.</li>
 *     </ul></li>
 * </ol>
 * {@code maybeMapToGroupHead(h)} is {@code floorDiv(h, headGroupSize)} for GQA, here {@code h / 4}.
 *
 * <h2>What this benchmark calls</h2>
 * Exactly that sequence of public Jlama calls, with {@code ops = TensorOperationsProvider.get()}
 * ({@code PanamaTensorOperations}; {@code -Djlama.force_panama_tensor_operations=true} skips the
 * absent native provider), {@code TensorCache.get}/{@code close} for {@code attn}, and one KV page
 * of shape {@code [1, 2, tokens, 1024]} holding all resident tokens (Jlama sizes pages so a
 * context of this size fits one page per layer group). Differences, all deliberate:
 * <ul>
 *   <li>the heads run in a plain loop on the benchmark thread instead of {@code VectorMath.pfor}
 *       (a parallel stream), to measure one thread as for kvcache4j;</li>
 *   <li>no model, {@code Config} or {@code KvBufferCache} is built (they need a model on disk); the
 *       page tensor is built directly with {@code AbstractTensor.make} and sliced as the KV buffer
 *       slices it; storing the new token's K/V, RoPE and the projections are outside the timing,
 *       as they are for kvcache4j;</li>
 *   <li>the output row is cleared every call ({@code makeDenseTensor} hands Jlama a cleared one).</li>
 * </ul>
 *
 * <h2>Dtypes</h2>
 * {@code F32}: query, pages, scores and output are {@code FloatBufferTensor}s (Jlama's default
 * working dtype). {@code BF16}: working dtype BF16, i.e. query, pages, scores and output are
 * {@code BFloat16BufferTensor}s, the pages converted from the F32 data by Jlama's own
 * {@code AbstractTensor.quantize(BF16, true)}. There is no F16 variant: Jlama's KV pages are F32 or BF16
 * only ("Only F32/BF16 is supported for now").
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g",
        "--enable-native-access=ALL-UNNAMED", "-Djlama.force_panama_tensor_operations=true"})
@SuppressWarnings("rawtypes") // Jlama's tensor API is used raw throughout
public class JlamaAttentionBenchmark {

    private static final int QUERY_HEADS = AttentionData.QUERY_HEADS;
    private static final int HEAD_DIM = AttentionData.HEAD_DIM;
    private static final int KV_DIM = AttentionData.KV_DIM;
    private static final int GROUP = QUERY_HEADS / AttentionData.KV_HEADS;

    /** Resident tokens. */
    @Param({"1024", "4096", "16384"})
    int tokens;

    /** Jlama working dtype of the KV pages, query, scores and output: F32 or BF16. */
    @Param({"F32", "BF16"})
    String dtype;

    private DType workingDType;
    private TensorOperations ops;
    private TensorCache tensorCache;
    private AbstractTensor page;
    private AbstractTensor[] keyPages;
    private AbstractTensor[] valuePages;
    private AbstractTensor query;
    private AbstractTensor out;
    private float attentionScale;
    private int position;

    /** Builds the Jlama tensors from {@link AttentionData} and checks the result once. */
    @Setup(Level.Trial)
    public void setUp() {
        workingDType = DType.valueOf(dtype);
        ops = TensorOperationsProvider.get();
        AttentionData data = AttentionData.generate(tokens);
        position = tokens - 1;
        attentionScale = (float) (1.0 / StrictMath.sqrt(HEAD_DIM));

        FloatBufferTensor f32Page = new FloatBufferTensor(1, 2, tokens, KV_DIM);
        MemorySegment segment = f32Page.getMemorySegment();
        long half = (long) tokens * KV_DIM;
        MemorySegment.copy(data.keys, 0, segment, ValueLayout.JAVA_FLOAT, f32Page.getOffset(0, 0, 0, 0) * 4L,
                (int) half);
        MemorySegment.copy(data.values, 0, segment, ValueLayout.JAVA_FLOAT, f32Page.getOffset(0, 1, 0, 0) * 4L,
                (int) half);
        FloatBufferTensor f32Query = new FloatBufferTensor(1, QUERY_HEADS * HEAD_DIM);
        for (int i = 0; i < data.query.length; i++) {
            f32Query.set(data.query[i], 0, i);
        }
        // quantize(dtype) leaves tensors whose first dimension is 1 alone: force the conversion.
        page = workingDType == DType.F32 ? f32Page : f32Page.quantize(workingDType, true);
        query = workingDType == DType.F32 ? f32Query : f32Query.quantize(workingDType, true);
        if (page.dType() != workingDType || query.dType() != workingDType) {
            throw new IllegalStateException("Jlama did not convert to " + workingDType);
        }
        // KvBuffer.getTensorsUptoPosition: page.getTensor().slice(true, layerInPage, 0 | 1).
        keyPages = new AbstractTensor[] {page.slice(true, 0, 0)};
        valuePages = new AbstractTensor[] {page.slice(true, 0, 1)};
        out = AbstractTensor.make(workingDType, TensorShape.of(1, QUERY_HEADS * HEAD_DIM));
        long scratchBytes = (long) tokens * 4 * 4 + (1L << 20);
        tensorCache = new TensorCache(scratchBytes);
        attend();
        float[] expected = ScalarLoopAttentionBenchmark.attention(data.keys, data.values, data.query, tokens);
        double tolerance = workingDType == DType.F32 ? 1e-4 : 5e-2;
        for (int i = 0; i < expected.length; i++) {
            float got = out.get(0, i);
            if (!(Math.abs(got - expected[i]) <= tolerance * (1 + Math.abs(expected[i])))) {
                throw new IllegalStateException("Jlama attention differs at " + i + ": " + got + " vs "
                        + expected[i]);
            }
        }
    }

    /** Releases the page tensor. */
    @TearDown(Level.Trial)
    public void tearDown() {
        page.close();
    }

    /** One decode step's attention for one layer, as CausalSelfAttention computes it. */
    @Benchmark
    public AbstractTensor attend() {
        AbstractTensor q = query;
        if (keyPages[0].dType() != q.dType()) {
            q = ops.quantize(q, keyPages[0].dType(), 0, KV_DIM);
        }
        out.clear();
        int pageRows = keyPages[0].shape().first();
        for (int h = 0; h < QUERY_HEADS; h++) {
            int kvOffset = Math.floorDiv(h, GROUP) * HEAD_DIM;
            int qOffset = h * HEAD_DIM;
            try (AbstractTensor attn = tensorCache.get(workingDType, TensorShape.of(1, pageRows * keyPages.length))) {
                for (int i = 0; i < keyPages.length; i++) {
                    int start = i * pageRows;
                    int rows = i == keyPages.length - 1 ? position + 1 - start : pageRows;
                    ops.batchDotProduct(attn, q, keyPages[i], qOffset, kvOffset, HEAD_DIM, start, 0, rows);
                }
                ops.scale(attentionScale, attn, 0, position + 1);
                VectorMath.softMax(attn, 0, position + 1);
                for (int i = 0; i < valuePages.length; i++) {
                    int start = i * pageRows;
                    int rows = i == valuePages.length - 1 ? position + 1 - start : pageRows;
                    ops.saxpy(attn, valuePages[i], out, kvOffset, qOffset, HEAD_DIM, start, 0, rows);
                }
            }
        }
        return out;
    }
}
