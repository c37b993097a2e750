package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Decode steps (append with eviction, then attention) allocate nothing on the Java heap once
 * warm: the thread's allocated-bytes counter does not move over 2000 steps.
 */
class SteadyStateAllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @ParameterizedTest
    @ValueSource(strings = {"streaming_llm", "knorm", "h2o", "observed_attention", "snapkv", "tova", "corm", "keydiff",
        "expected_attention"})
    void decodeStepsAllocateNothing(String name) {
        EvictionPolicy policy = switch (name) {
            case "streaming_llm" -> Policies.streamingLlm();
            case "knorm" -> Policies.knorm();
            case "h2o" -> Policies.h2o();
            case "observed_attention" -> Policies.observedAttention();
            case "snapkv" -> Policies.snapKv();
            case "tova" -> Policies.tova();
            case "keydiff" -> Policies.keyDiff();
            case "expected_attention" -> Policies.expectedAttention(Rope.of(10000, 64, false));
            default -> Policies.corm();
        };
        SplittableRandom r = new SplittableRandom(Seeds.fresh("decodeStepsAllocateNothing " + name));
        int d = 64;
        for (DType dtype : DType.values()) {
            KvCacheConfig config = KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(8).headDim(d)
                    .capacity(96).dtype(dtype).policy(policy).build();
            try (KvCache cache = KvCache.create(config)) {
                float[] k = Seeds.uniform(r, 2 * d, 1);
                float[] v = Seeds.uniform(r, 2 * d, 1);
                float[] q = Seeds.uniform(r, 8 * d, 1);
                float[] out = new float[8 * d];
                int position = 0;
                // Past the capacity every step evicts. Steady state is reached once the JIT has
                // compiled the kernels (the Vector API allocates until then; on a busy machine that
                // takes a while): measure windows of 2000 steps until one allocates nothing, for at
                // most a minute. Code that allocates on every step never gets there.
                long allocated = -1;
                long deadline = System.nanoTime() + 30_000_000_000L;
                while (allocated != 0 && System.nanoTime() < deadline) {
                    long before = THREADS.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 2_000; i++, position++) {
                        step(cache, position, k, v, q, out);
                    }
                    allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
                }
                assertEquals(0, allocated, name + " " + dtype + ": bytes allocated over 2000 warm decode steps");
            }
        }
    }

    private static void step(KvCache cache, int position, float[] k, float[] v, float[] q, float[] out) {
        for (int layer = 0; layer < 2; layer++) {
            cache.append(layer, position, k, v);
            cache.attend(layer, position, q, out);
        }
    }
}
