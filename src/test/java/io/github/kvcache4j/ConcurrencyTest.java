package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.testutil.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Caches used from many threads: independent caches give the same results as single-threaded
 * runs, attention fanned out over an executor is bit-identical, and a close racing a call fails
 * that call cleanly.
 */
class ConcurrencyTest {

    private static final int THREADS = 8;
    private static final int OPERATIONS = 100_000;
    private static final EvictionPolicy[] POLICIES = {Policies.streamingLlm(2), Policies.knorm(), Policies.h2o(),
        Policies.corm(4, 2, 1, true), Policies.snapKv(3, 3), Policies.tova(), Policies.observedAttention()};

    /** Runs {@code operations} random appends, attentions and compressions; returns a hash of every output. */
    private static long workload(long seed, int operations, java.util.concurrent.Executor executor) {
        SplittableRandom r = new SplittableRandom(seed);
        int kvHeads = r.nextInt(1, 3);
        int group = 1 << r.nextInt(3);
        int d = 16;
        KvCacheConfig config = KvCacheConfig.builder().layers(2).kvHeads(kvHeads).queryHeads(kvHeads * group).headDim(d)
                .capacity(r.nextInt(8, 17)).dtype(DType.values()[r.nextInt(3)])
                .policy(POLICIES[r.nextInt(POLICIES.length)]).executor(executor).build();
        long hash = 17;
        int position = 0;
        float[] keys = new float[kvHeads * d];
        float[] queries = new float[kvHeads * group * d];
        float[] out = new float[queries.length];
        try (KvCache cache = KvCache.create(config)) {
            for (int op = 0; op < operations; op++) {
                int choice = r.nextInt(10);
                if (choice < 5) {
                    fill(r, keys);
                    cache.append(0, position, keys, keys);
                    cache.append(1, position, keys, keys);
                    position++;
                } else if (choice < 9 && position > 0) {
                    fill(r, queries);
                    int layer = r.nextInt(2);
                    cache.attend(layer, position - 1, queries, out);
                    for (float f : out) {
                        hash = hash * 31 + Float.floatToIntBits(f);
                    }
                } else if (position > 0) {
                    cache.compress(r.nextInt(3, 8));
                }
            }
            for (int h = 0; h < kvHeads; h++) {
                for (int p : cache.positions(0, h)) {
                    hash = hash * 31 + p;
                }
            }
            hash = hash * 31 + cache.stats().evicted();
        }
        return hash;
    }

    private static void fill(SplittableRandom r, float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextDouble() * 2 - 1);
        }
    }

    @Test
    void threadsWithTheirOwnCachesMatchSingleThreadedRuns() throws Exception {
        long seed = Seeds.fresh("threadsWithTheirOwnCachesMatchSingleThreadedRuns");
        long[] seeds = new SplittableRandom(seed).longs(THREADS).toArray();
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
            List<Future<Long>> parallel = new ArrayList<>();
            for (long s : seeds) {
                parallel.add(pool.submit(() -> workload(s, OPERATIONS, null)));
            }
            for (int t = 0; t < THREADS; t++) {
                long serial = workload(seeds[t], OPERATIONS, null);
                assertEquals(serial, (long) parallel.get(t).get(2, TimeUnit.MINUTES), "thread " + t + ", seed " + seed);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void executorFanOutIsBitIdenticalForRandomConfigurations() {
        long seed = Seeds.fresh("executorFanOutIsBitIdenticalForRandomConfigurations");
        SplittableRandom r = new SplittableRandom(seed);
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            for (int i = 0; i < 200; i++) {
                long s = r.nextLong();
                assertEquals(workload(s, 300, null), workload(s, 300, pool), "case " + i + ", seed " + seed);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void closeFromAnotherThreadFailsTheCallInFlightCleanly() throws Exception {
        long seed = Seeds.fresh("closeFromAnotherThreadFailsTheCallInFlightCleanly");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 64;
        KvCacheConfig config = KvCacheConfig.builder().layers(1).kvHeads(2).queryHeads(4).headDim(d).capacity(256)
                .policy(Policies.h2o()).build();
        float[] chunk = new float[256 * 2 * d];
        fill(r, chunk);
        float[] token = java.util.Arrays.copyOf(chunk, 2 * d);
        ExecutorService caller = Executors.newSingleThreadExecutor();
        AtomicLong failedCleanly = new AtomicLong();
        AtomicLong insideMemoryAccess = new AtomicLong();
        try {
            for (int round = 0; round < 2000; round++) {
                KvCache cache = KvCache.create(config);
                cache.append(0, 0, 256, chunk, chunk);
                CountDownLatch started = new CountDownLatch(1);
                Future<?> calls = caller.submit(() -> {
                    float[] q = new float[4 * d];
                    float[] out = new float[4 * d];
                    started.countDown();
                    int p = 256;
                    try {
                        while (true) {
                            cache.attend(0, p - 1, q, out);
                            cache.append(0, p, token, token);
                            cache.compress(0.01);
                            p++;
                        }
                    } catch (IllegalStateException e) {
                        failedCleanly.incrementAndGet();
                        if (!"cache is closed".equals(e.getMessage())) {
                            insideMemoryAccess.incrementAndGet();
                        }
                    }
                });
                started.await();
                if (round % 2 == 1) {
                    Thread.onSpinWait();
                }
                cache.close();
                calls.get(30, TimeUnit.SECONDS);
                cache.close();
                assertEquals(0, cache.stats().reservedBytes(), "round " + round + ", seed " + seed);
            }
        } catch (java.util.concurrent.ExecutionException e) {
            fail("a call racing close failed with something other than IllegalStateException, seed " + seed, e.getCause());
        } finally {
            caller.shutdownNow();
        }
        System.out.println("close raced 2000 calls: " + insideMemoryAccess.get()
                + " failed inside a memory access (closed arena), the rest at the closed check");
        assertEquals(2000, failedCleanly.get());
    }

    @Test
    void closeIsIdempotentAcrossThreads() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            for (int round = 0; round < 500; round++) {
                KvCache cache = KvCache.create(KvCacheConfig.builder().layers(1).kvHeads(1).queryHeads(1).headDim(16)
                        .capacity(8).build());
                CountDownLatch go = new CountDownLatch(1);
                List<Future<?>> closes = new ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    closes.add(pool.submit(() -> {
                        go.await();
                        cache.close();
                        return null;
                    }));
                }
                go.countDown();
                for (Future<?> f : closes) {
                    f.get(10, TimeUnit.SECONDS);
                }
                assertEquals(0, cache.stats().reservedBytes());
                assertTrue(cache.stats().totalResident() == 0);
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
