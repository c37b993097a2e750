package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.KvPool;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.store.BlockPool;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What a block costs: one cache in the Llama-3-8B layer shape (8 kv-heads x 128, F16) on a shared
 * pool appends 64 tokens to every kv-head (one new block each, 8 blocks from the pool) and resets
 * (8 blocks back). Per operation: 8 block allocations, 8 releases and 512 token rows encoded; the
 * {@code rowsOnly} baseline appends the same 64 tokens into blocks the cache already holds, and
 * {@code poolOnly} takes and returns the 8 blocks from the pool itself, without any rows.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class PoolBlockBenchmark {

    private KvPool pool;
    private BlockPool blocks;
    private final int[] ids = new int[AttentionData.KV_HEADS];
    private KvCache cache;
    private KvCache holding;
    private float[] keys;
    private float[] values;
    private int position;

    @Setup
    public void setUp() {
        pool = KvPool.create(AttentionData.HEAD_DIM, DType.F16, 64L << 20);
        KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM).capacity(128)
                .dtype(DType.F16).policy(Policies.streamingLlm()).build();
        cache = KvCache.create(config, pool);
        blocks = new BlockPool((long) AttentionData.HEAD_DIM * 2, 1024);
        holding = KvCache.create(config, pool);
        AttentionData data = AttentionData.generate(64);
        keys = data.keys;
        values = data.values;
    }

    @TearDown
    public void tearDown() {
        cache.close();
        holding.close();
        pool.close();
        blocks.close();
    }

    /** Eight block allocations and eight releases on the pool alone. */
    @Benchmark
    public int poolOnly() {
        for (int i = 0; i < ids.length; i++) {
            ids[i] = blocks.allocate(-1);
        }
        int sum = 0;
        for (int i = ids.length - 1; i >= 0; i--) {
            sum += ids[i];
            blocks.release(ids[i]);
        }
        return sum;
    }

    /** Appends 64 tokens (8 new blocks) and resets (8 blocks released). */
    @Benchmark
    public void allocateAndRelease() {
        cache.append(0, 0, 64, keys, values);
        cache.reset();
    }

    /**
     * The same 64-token append with the blocks already held: a full 128-slot cache evicts 64
     * StreamingLLM victims and refills their slots, so no block moves between cache and pool.
     */
    @Benchmark
    public void rowsOnly() {
        holding.append(0, position, 64, keys, values);
        position += 64;
    }
}
