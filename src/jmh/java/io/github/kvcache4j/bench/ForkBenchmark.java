package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.KvPool;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.policy.Rope;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
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
 * What a fork costs at 4096 tokens in a Llama-ish shape (4 layers x 8 kv-heads x 128, F16; 64 MiB
 * of rows): {@code sharedPool} forks a cache on a {@link KvPool}, which shares every block copy on
 * write (block tables, positions and key norms are copied; no row is), and {@code privatePool}
 * forks a cache on its private pool, which reserves a new pool and copies every block. Each
 * operation forks and closes the fork. The policy state is shared copy on write too: {@code full}
 * keeps none, {@code h2o} an accumulated score per slot, {@code knorm} a heap of key norms per
 * buffer, {@code snapkv} a ring of recent weights per slot, and {@code expected_attention} also
 * query statistics per buffer, which the fork copies. H2O updates every slot's score on every
 * query, so a fork's first decode step copies its state: {@code sharedPoolThenAttend} forks,
 * attends once per layer on the fork and closes it, against {@code attend}, the same step without
 * a fork.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class ForkBenchmark {

    static final int LAYERS = 4;
    static final int TOKENS = 4096;
    static final int CHUNK = 256;

    @Param({"full", "h2o", "knorm", "snapkv", "expected_attention"})
    public String policy;

    private KvPool pool;
    private KvCache shared;
    private KvCache alone;
    private final float[] queries = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];
    private final float[] out = new float[AttentionData.QUERY_HEADS * AttentionData.HEAD_DIM];

    @Setup
    public void setUp() {
        EvictionPolicy p = switch (policy) {
            case "h2o" -> Policies.h2o();
            case "knorm" -> Policies.knorm();
            case "snapkv" -> Policies.snapKv();
            case "expected_attention" -> Policies.expectedAttention(Rope.of(500000, AttentionData.HEAD_DIM, false));
            default -> Policies.full();
        };
        KvCacheConfig config = KvCacheConfig.builder().layers(LAYERS).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM).capacity(TOKENS)
                .dtype(DType.F16).policy(p).build();
        long blocks = 3L * LAYERS * AttentionData.KV_HEADS * TOKENS / KvPool.BLOCK_TOKENS;
        pool = KvPool.create(AttentionData.HEAD_DIM, DType.F16, blocks * KvPool.blockBytes(AttentionData.HEAD_DIM,
                DType.F16));
        shared = KvCache.create(config, pool);
        alone = KvCache.create(config);
        fill(shared, new SplittableRandom(1));
        fill(alone, new SplittableRandom(1));
        SplittableRandom r = new SplittableRandom(2);
        for (int i = 0; i < queries.length; i++) {
            queries[i] = (float) r.nextGaussian();
        }
    }

    /** Appends {@value #TOKENS} random tokens to every layer, in chunks. */
    static void fill(KvCache cache, SplittableRandom r) {
        int row = AttentionData.KV_HEADS * AttentionData.HEAD_DIM;
        float[] k = new float[CHUNK * row];
        float[] v = new float[CHUNK * row];
        for (int at = 0; at < TOKENS; at += CHUNK) {
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) r.nextGaussian();
                v[i] = (float) r.nextGaussian();
            }
            for (int l = 0; l < LAYERS; l++) {
                cache.append(l, at, CHUNK, k, v);
            }
        }
    }

    @TearDown
    public void tearDown() {
        shared.close();
        alone.close();
        pool.close();
    }

    /** Forks a cache on the shared pool (copy on write) and closes the fork. */
    @Benchmark
    public long sharedPool() {
        try (KvCache fork = shared.fork()) {
            return fork.stats().heldBytes();
        }
    }

    /** Forks a cache on its private pool (a new pool, every block copied) and closes the fork. */
    @Benchmark
    public long privatePool() {
        try (KvCache fork = alone.fork()) {
            return fork.stats().heldBytes();
        }
    }

    /** One decode query on every layer of the cache on the shared pool. */
    @Benchmark
    public float attend() {
        return attendEveryLayer(shared);
    }

    /**
     * Forks the cache on the shared pool, attends once on every layer of the fork (its first write,
     * which copies the policy state it shared) and closes the fork.
     */
    @Benchmark
    public float sharedPoolThenAttend() {
        try (KvCache fork = shared.fork()) {
            return attendEveryLayer(fork);
        }
    }

    private float attendEveryLayer(KvCache cache) {
        for (int l = 0; l < LAYERS; l++) {
            cache.attend(l, TOKENS - 1, queries, out);
        }
        return out[0];
    }
}
