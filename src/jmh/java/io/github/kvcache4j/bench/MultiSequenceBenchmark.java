package io.github.kvcache4j.bench;

import io.github.kvcache4j.Allocation;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.KvPool;
import io.github.kvcache4j.Policies;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * A server's view: one 256 MiB pool, sequences with 4096-token prompts, each cache one
 * Llama-3-8B layer in F16 (8 kv-heads x 128: 16 MiB per full prompt). Sequences are admitted
 * while the pool can prefill one more prompt and still lend every admitted sequence one block per
 * kv-head for decoding; each prompt is compressed by {@code ratio} (L2-norm ranking, kvpress
 * semantics) right after its prefill, so its blocks go back before the next one is admitted:
 * {@code allocation = uniform} keeps {@code floor(4096 (1 - ratio))} tokens per kv-head,
 * {@code adakv} shares the same total among the kv-heads by Ada-KV's rule
 * ({@link Allocation#adaptive(double)}, safeguard 0.2) on the same L2-norm scores. The
 * benchmark then decodes one token (append and attention) for every admitted sequence per
 * operation, and every 64 steps compresses each sequence back to its budget (its blocks go back);
 * the {@code tokens} counter is the aggregate decode rate, and the setup prints how many
 * sequences fit.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g"})
public class MultiSequenceBenchmark {

    /** Prompt tokens per sequence. */
    static final int PROMPT = 4096;
    /** The pool's byte budget. */
    static final long BUDGET = 256L << 20;

    @Param({"0", "0.5", "0.9"})
    double ratio;

    /** How the budget is shared among the kv-heads: {@code uniform} or {@code adakv}. */
    @Param({"uniform", "adakv"})
    String allocation;

    /** Ada-KV's safeguard fraction, as the evaluator's {@code adakv_snapkv} row uses it. */
    static final double ADAKV_SAFEGUARD = 0.2;

    private KvPool pool;
    private final List<KvCache> caches = new ArrayList<>();
    private float[] key;
    private float[] value;
    private float[] query;
    private float[] out;
    private int position;
    /** Tokens per kv-head a sequence keeps: its compressed prompt. */
    private int budget;

    /** The aggregate decode rate: tokens decoded, one per sequence per operation. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Decoded {
        /** Tokens decoded. */
        public long tokens;
    }

    @Setup(Level.Trial)
    public void setUp() {
        pool = KvPool.create(AttentionData.HEAD_DIM, DType.F16, BUDGET);
        AttentionData data = AttentionData.generate(PROMPT);
        KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM).capacity(PROMPT + 1024)
                .dtype(DType.F16).policy(Policies.knorm()).build();
        int promptBlocks = AttentionData.KV_HEADS * PROMPT / KvPool.BLOCK_TOKENS;
        while (pool.stats().freeBlocks() >= promptBlocks + AttentionData.KV_HEADS * (caches.size() + 1)) {
            KvCache cache = KvCache.create(config, pool);
            appendPrompt(cache, data);
            if (ratio > 0) {
                cache.compress(ratio, share());
            }
            caches.add(cache);
        }
        budget = (int) Math.floor(PROMPT * (1 - ratio));
        key = java.util.Arrays.copyOf(data.keys, AttentionData.KV_DIM);
        value = java.util.Arrays.copyOf(data.values, AttentionData.KV_DIM);
        query = data.query;
        out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
        position = PROMPT;
        System.out.printf("%nratio %.2f %s: %d sequences fit, pool %d of %d blocks used%n", ratio, allocation, caches.size(),
                pool.stats().usedBlocks(), pool.stats().blocks());
    }

    private Allocation share() {
        return switch (allocation) {
            case "uniform" -> Allocation.uniform();
            case "adakv" -> Allocation.adaptive(ADAKV_SAFEGUARD);
            default -> throw new IllegalArgumentException("allocation: '" + allocation + "', expected uniform or adakv");
        };
    }

    /** Prefills the prompt in 256-token chunks. */
    private static void appendPrompt(KvCache cache, AttentionData data) {
        int chunk = 256;
        for (int p = 0; p < PROMPT; p += chunk) {
            cache.append(0, p, chunk, java.util.Arrays.copyOfRange(data.keys, p * AttentionData.KV_DIM,
                    (p + chunk) * AttentionData.KV_DIM), java.util.Arrays.copyOfRange(data.values,
                    p * AttentionData.KV_DIM, (p + chunk) * AttentionData.KV_DIM));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (KvCache cache : caches) {
            cache.close();
        }
        pool.close();
    }

    /** One decode step of every admitted sequence. */
    @Benchmark
    public float decodeAll(Decoded decoded) {
        if ((position - PROMPT) % KvPool.BLOCK_TOKENS == 0) {
            for (KvCache cache : caches) {
                cache.compressToTokens((long) budget * AttentionData.KV_HEADS, share());
            }
        }
        for (KvCache cache : caches) {
            cache.append(0, position, key, value);
            cache.attend(0, position, query, out);
        }
        position++;
        decoded.tokens += caches.size();
        return out[0];
    }
}
