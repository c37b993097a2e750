package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.testutil.ForwardingTracker;
import io.github.kvcache4j.testutil.NamedPolicy;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * A fork and a saved-and-loaded copy of a cache continue exactly as the original: for every
 * built-in policy, storage type (Q8 and Q4 with and without key rotation) and with or without
 * LESS, on a private and on a shared pool, 200 random operations give bit-identical outputs,
 * rows, positions and stats; a fork and its original never change each other, also while they
 * share blocks and per-slot policy state, and on threads of their own.
 */
class SessionForkTest {

    /** The head dimension of the unquantized caches; Q8 and Q4 need whole groups of 32. */
    static final int HEAD_DIM = 16;
    static final int QUANTIZED_HEAD_DIM = 32;
    static final List<String> POLICIES = List.of("full", "streaming_llm", "knorm", "corm", "h2o",
            "observed_attention", "snapkv", "tova", "keydiff", "expected_attention");

    static EvictionPolicy policy(String name) {
        return switch (name) {
            case "full" -> Policies.full();
            case "streaming_llm" -> Policies.streamingLlm(3);
            case "knorm" -> Policies.knorm(5, 0);
            case "corm" -> Policies.corm(8, 6, 1.0, true);
            case "h2o" -> Policies.h2o(0.3);
            case "observed_attention" -> Policies.observedAttention();
            case "snapkv" -> Policies.snapKv(16, 5);
            case "tova" -> Policies.tova();
            case "keydiff" -> Policies.keyDiff();
            case "expected_attention" -> Policies.expectedAttention(Rope.of(10000, 16, false), 8, 2, true, true, 0.0);
            default -> throw new IllegalArgumentException(name);
        };
    }

    static int headDim(DType dtype) {
        return dtype.isQuantized() ? QUANTIZED_HEAD_DIM : HEAD_DIM;
    }

    /** Three layers (the last reads the second's KV), capacity over two blocks, optional LESS. */
    static KvCacheConfig config(EvictionPolicy policy, DType dtype, boolean less, long seed) {
        return config(policy, dtype, less, false, seed);
    }

    /** As {@link #config(EvictionPolicy, DType, boolean, long)}, keys rotated if {@code rotate} (Q8, Q4). */
    static KvCacheConfig config(EvictionPolicy policy, DType dtype, boolean less, boolean rotate, long seed) {
        int d = headDim(dtype);
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(3).kvSourceLayers(new int[] {0, 1, 1}).kvHeads(2)
                .queryHeads(4).headDim(d).capacity(150).dtype(dtype).policy(policy);
        if (rotate) {
            b.keyRotation(seed);
        }
        return (less ? b.less(FeatureMap.positiveRandom(d, 8, seed)) : b).build();
    }

    /**
     * Every policy with F32, F16 and BF16, with and without LESS; and with Q8 and Q4, each policy
     * in one of the four combinations of LESS and rotation (every combination twice per dtype),
     * which keeps the quantized cases to 16.
     */
    static Stream<Arguments> cases() {
        List<Arguments> all = new ArrayList<>();
        for (int i = 0; i < POLICIES.size(); i++) {
            String p = POLICIES.get(i);
            for (DType d : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                all.add(Arguments.of(p, d, false, false));
                all.add(Arguments.of(p, d, true, false));
            }
            all.add(Arguments.of(p, DType.Q8, i / 2 % 2 == 0, i % 2 == 0));
            all.add(Arguments.of(p, DType.Q4, i / 2 % 2 == 1, i % 2 == 1));
        }
        return all.stream();
    }

    static byte[] save(KvCache cache) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        cache.save(Channels.newChannel(bytes));
        return bytes.toByteArray();
    }

    static KvCache load(byte[] bytes, KvCacheConfig config, KvPool pool) throws IOException {
        return KvCache.load(Channels.newChannel(new ByteArrayInputStream(bytes)), config, pool);
    }

    static KvPool pool(DType dtype, int blocks) {
        int d = headDim(dtype);
        return KvPool.create(d, dtype, KvPool.blockBytes(d, dtype) * blocks);
    }

    @ParameterizedTest(name = "{0} {1} less={2} rotation={3}")
    @MethodSource("cases")
    void forkAndLoadedCopyContinueBitIdentically(String policyName, DType dtype, boolean less, boolean rotate)
            throws IOException {
        long seed = Seeds.fresh("forkAndLoadedCopyContinueBitIdentically " + policyName + " " + dtype + " " + less
                + " " + rotate);
        SplittableRandom r = new SplittableRandom(seed);
        KvCacheConfig config = config(policy(policyName), dtype, less, rotate, seed);
        for (boolean shared : new boolean[] {false, true}) {
            KvPool pool = shared ? pool(dtype, 96) : null;
            List<KvCache> all = new ArrayList<>();
            try {
                KvCache original = shared ? KvCache.create(config, pool) : KvCache.create(config);
                all.add(original);
                SessionLockstep ops = new SessionLockstep(config, r);
                ops.run(60, all);
                int used = shared ? pool.stats().usedBlocks() : 0;
                all.add(original.fork());
                if (shared) {
                    assertEquals(used, pool.stats().usedBlocks(), "a fork on the pool shares every block");
                }
                byte[] saved = save(original);
                all.add(load(saved, null, pool));
                assertArrayEquals(saved, save(all.get(1)), "the fork saves the original's bytes");
                assertArrayEquals(saved, save(all.get(2)), "save -> load -> save gives identical bytes");
                ops.agree(all, "after fork and load");
                int before = ops.succeeded();
                ops.run(200, all);
                assertTrue(ops.succeeded() - before > 100, "only " + (ops.succeeded() - before)
                        + " of 200 operations succeeded");
            } finally {
                all.forEach(KvCache::close);
                if (pool != null) {
                    assertEquals(0, pool.stats().usedBlocks(), "closing every copy returns all blocks");
                    pool.close();
                }
            }
        }
    }

    static Stream<String> policies() {
        return POLICIES.stream();
    }

    @ParameterizedTest
    @MethodSource("policies")
    void forkAndOriginalNeverChangeEachOther(String policyName) throws IOException {
        long seed = Seeds.fresh("forkAndOriginalNeverChangeEachOther " + policyName);
        SplittableRandom r = new SplittableRandom(seed);
        DType dtype = DType.values()[r.nextInt(DType.values().length)];
        KvCacheConfig config = config(policy(policyName), dtype, r.nextBoolean(), dtype.isQuantized() && r.nextBoolean(),
                seed);
        KvPool pool = pool(dtype, 96);
        KvPool separate = pool(dtype, 64);
        try (KvCache original = KvCache.create(config, pool)) {
            SessionLockstep ops = new SessionLockstep(config, r);
            ops.run(60, List.of(original));
            int used = pool.stats().usedBlocks();
            byte[] before = save(original);
            try (KvCache fork = original.fork(); KvCache untouched = original.fork();
                 KvCache originalAlone = load(before, null, separate); KvCache forkAlone = load(before, null, separate)) {
                assertEquals(used, pool.stats().usedBlocks(), "two forks share every block");
                // Interleaved, so that a write through a shared block shows in the other cache at once;
                // each is compared with a loaded copy on another pool, which shares no block.
                SessionLockstep onOriginal = ops.branch(r.split());
                SessionLockstep onFork = ops.branch(r.split());
                for (int i = 0; i < 200; i++) {
                    if (r.nextBoolean()) {
                        onOriginal.run(1, List.of(original, originalAlone));
                    } else {
                        onFork.run(1, List.of(fork, forkAlone));
                    }
                    ops.agree(List.of(original, originalAlone), "original after step " + i);
                    ops.agree(List.of(fork, forkAlone), "fork after step " + i);
                }
                assertArrayEquals(before, save(untouched), "changing the original or a fork changed another fork");
                assertArrayEquals(save(originalAlone), save(original), "the original's state differs");
                assertArrayEquals(save(forkAlone), save(fork), "the fork's state differs");
                long held = original.stats().heldBytes() + fork.stats().heldBytes() + untouched.stats().heldBytes();
                assertTrue(pool.stats().usedBytes() <= held, "the pool counts a shared block once: uses "
                        + pool.stats().usedBytes() + " bytes, the caches hold " + held);
            }
        } finally {
            assertEquals(0, pool.stats().usedBlocks(), "closing every copy returns all blocks");
            pool.close();
            separate.close();
        }
    }

    /**
     * An original and two forks, each on a thread of its own, write through their shared blocks
     * and shared per-slot policy state at the same time; each must continue exactly as a loaded
     * copy on another pool, driven alongside it on the same thread.
     */
    @ParameterizedTest
    @MethodSource("policies")
    void forksOnThreadsOfTheirOwnContinueAsCopiesThatShareNothing(String policyName) throws Exception {
        long seed = Seeds.fresh("forksOnThreadsOfTheirOwnContinueAsCopiesThatShareNothing " + policyName);
        SplittableRandom r = new SplittableRandom(seed);
        DType dtype = DType.values()[r.nextInt(DType.values().length)];
        KvCacheConfig config = config(policy(policyName), dtype, r.nextBoolean(), false, seed);
        KvPool pool = pool(dtype, 160);
        KvPool separate = pool(dtype, 160);
        List<KvCache> all = new ArrayList<>();
        ExecutorService threads = Executors.newFixedThreadPool(3);
        try {
            KvCache original = KvCache.create(config, pool);
            all.add(original);
            SessionLockstep ops = new SessionLockstep(config, r);
            ops.run(60, List.of(original));
            all.add(original.fork());
            all.add(original.fork());
            byte[] saved = save(original);
            List<Future<?>> done = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                KvCache cache = all.get(i);
                KvCache alone = load(saved, null, separate);
                all.add(alone);
                SessionLockstep branch = ops.branch(r.split());
                done.add(threads.submit(() -> branch.run(150, List.of(cache, alone))));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            threads.shutdownNow();
            all.forEach(KvCache::close);
            assertEquals(0, pool.stats().usedBlocks(), "closing every copy returns all blocks");
            pool.close();
            separate.close();
        }
    }

    @Test
    void aPolicyWithoutCopyOrSaveLeavesTheCacheUnchanged() {
        long seed = Seeds.fresh("aPolicyWithoutCopyOrSaveLeavesTheCacheUnchanged");
        SplittableRandom r = new SplittableRandom(seed);
        EvictionPolicy opaque = NamedPolicy.of("opaque",
                shape -> new ForwardingTracker(Policies.streamingLlm(2).newTracker(shape)));
        KvCacheConfig config = config(opaque, DType.F32, false, seed);
        KvPool pool = pool(DType.F32, 32);
        try (KvCache cache = KvCache.create(config, pool)) {
            new SessionLockstep(config, r).run(40, List.of(cache));
            Snapshot before = Snapshot.of(cache);
            int used = pool.stats().usedBlocks();
            UnsupportedOperationException fork = assertThrows(UnsupportedOperationException.class, cache::fork);
            assertTrue(fork.getMessage().contains("does not support fork"), fork.getMessage());
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            UnsupportedOperationException save = assertThrows(UnsupportedOperationException.class,
                    () -> cache.save(Channels.newChannel(sink)));
            assertTrue(save.getMessage().contains("does not support save"), save.getMessage());
            assertEquals(0, sink.size(), "a refused save writes nothing");
            assertEquals(before, Snapshot.of(cache));
            assertEquals(used, pool.stats().usedBlocks());
        } finally {
            pool.close();
        }
    }
}
