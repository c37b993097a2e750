package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.util.SplittableRandom;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Callers that break the rules a friendly caller keeps: executors that refuse work, aliased arrays, extreme values. */
class HostileCallerTest {

    private static final int KV = 3;
    private static final int Q = 6;
    private static final int D = 64;

    private static KvCacheConfig.Builder shape() {
        return KvCacheConfig.builder().layers(1).kvHeads(KV).queryHeads(Q).headDim(D).capacity(16);
    }

    /** Attention of {@code q} over {@code tokens} random tokens, without an executor. */
    private static float[] plainAttention(long seed, int tokens, float[] q) {
        try (KvCache cache = KvCache.create(shape().build())) {
            fill(cache, seed, tokens);
            float[] out = new float[Q * D];
            cache.attend(0, tokens - 1, q, out);
            return out;
        }
    }

    private static void fill(KvCache cache, long seed, int tokens) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int p = 0; p < tokens; p++) {
            cache.append(0, p, Seeds.uniform(r, KV * D, 1.0), Seeds.uniform(r, KV * D, 1.0));
        }
    }

    /**
     * An executor that throws on its {@code rejectAt}-th task (1-based; 0: every task) and runs the
     * others late on threads of their own, as a slow pool would.
     */
    private static Executor rejecting(int rejectAt, AtomicInteger late) {
        AtomicInteger n = new AtomicInteger();
        return task -> {
            int i = n.incrementAndGet();
            if (rejectAt == 0 || i == rejectAt) {
                throw new RejectedExecutionException("task " + i + " rejected");
            }
            Thread t = new Thread(() -> {
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                task.run();
                late.incrementAndGet();
            });
            t.setDaemon(true);
            t.start();
        };
    }

    @Test
    void attentionIsExactWhenTheExecutorRejectsOneTaskAndNoTaskOutlivesTheCall() throws Exception {
        long seed = Seeds.fresh("attentionIsExactWhenTheExecutorRejectsOneTaskAndNoTaskOutlivesTheCall");
        float[] q = Seeds.uniform(new SplittableRandom(seed ^ 1), Q * D, 1.0);
        float[] expected = plainAttention(seed, 1, q);
        AtomicInteger late = new AtomicInteger();
        try (KvCache cache = KvCache.create(shape().executor(rejecting(2, late)).build())) {
            fill(cache, seed, 1);
            for (int trial = 0; trial < 20; trial++) {
                float[] out = new float[Q * D];
                cache.attend(0, 0, q, out);
                assertArrayEquals(expected, out, "trial " + trial + ", seed " + seed);
                float[] returned = out.clone();
                Thread.sleep(trial % 5 == 0 ? 120 : 0);
                assertArrayEquals(returned, out, "a task wrote out after attend returned, seed " + seed);
            }
        }
    }

    @Test
    void attentionRunsOnTheCallerWhenTheExecutorRejectsEverything() {
        long seed = Seeds.fresh("attentionRunsOnTheCallerWhenTheExecutorRejectsEverything");
        float[] q = Seeds.uniform(new SplittableRandom(seed ^ 1), Q * D, 1.0);
        float[] expected = plainAttention(seed, 5, q);
        try (KvCache cache = KvCache.create(shape().executor(rejecting(0, new AtomicInteger())).build())) {
            fill(cache, seed, 5);
            for (int trial = 0; trial < 50; trial++) {
                float[] out = new float[Q * D];
                cache.attend(0, 4, q, out);
                assertArrayEquals(expected, out, "trial " + trial + ", seed " + seed);
            }
        }
    }

    @Test
    void rejectsOutputThatIsTheQueriesArray() {
        long seed = Seeds.fresh("rejectsOutputThatIsTheQueriesArray");
        try (KvCache cache = KvCache.create(shape().build())) {
            fill(cache, seed, 3);
            float[] q = Seeds.uniform(new SplittableRandom(seed), Q * D, 1.0);
            float[] copy = q.clone();
            Snapshot before = Snapshot.of(cache);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.attend(0, 2, q, q));
            assertTrue(e.getMessage().startsWith("out must not be the queries array"), e.getMessage());
            assertArrayEquals(copy, q, "queries untouched");
            assertEquals(before, Snapshot.of(cache));
        }
    }

    @Test
    void bf16RejectsValuesThatRoundToInfinity() {
        try (KvCache cache = KvCache.create(shape().dtype(DType.BF16).build())) {
            float largestFinite = Float.intBitsToFloat(0x7F7F7FFF); // rounds down to 0x7F7F
            float[] k = new float[KV * D];
            float[] v = new float[KV * D];
            k[5] = largestFinite;
            v[7] = -largestFinite;
            cache.append(0, 0, k, v);
            float[] keys = new float[D];
            float[] values = new float[D];
            cache.read(0, 0, keys, values);
            assertTrue(Float.isFinite(keys[5]) && Float.isFinite(values[7]), "stored finite");

            Snapshot before = Snapshot.of(cache);
            for (float bad : new float[] {Float.MAX_VALUE, -Float.MAX_VALUE, Float.intBitsToFloat(0x7F7F8000)}) {
                float[] keysBad = new float[KV * D];
                keysBad[3] = bad;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> cache.append(0, 1, keysBad, new float[KV * D]));
                assertTrue(e.getMessage().startsWith("keys[3] = " + bad + " is outside the BF16 range"), e.getMessage());
                float[] valuesBad = new float[KV * D];
                valuesBad[KV * D - 1] = bad;
                assertThrows(IllegalArgumentException.class, () -> cache.append(0, 1, new float[KV * D], valuesBad));
            }
            assertEquals(before, Snapshot.of(cache), "rejected appends change nothing");
        }
    }
}
