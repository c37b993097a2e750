package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving to a path is atomic, a load checks the caller's configuration against the file, a
 * policy that is not built in loads only with the caller's config, and a fork that must copy a
 * shared block on a full pool fails cleanly.
 */
class SessionFileTest {

    @TempDir
    Path dir;

    private static KvCache cacheWithHistory(KvCacheConfig config, SplittableRandom r, int steps) {
        KvCache cache = KvCache.create(config);
        new SessionLockstep(config, r).run(steps, List.of(cache));
        return cache;
    }

    /** A channel that writes {@code limit} bytes and then fails, as a full disk or a crash would. */
    private static WritableByteChannel failingAfter(FileChannel inner, long limit) {
        return new WritableByteChannel() {
            private long written;

            @Override
            public int write(ByteBuffer src) throws IOException {
                if (written + src.remaining() > limit) {
                    throw new IOException("device full after " + written + " bytes");
                }
                int n = inner.write(src);
                written += n;
                return n;
            }

            @Override
            public boolean isOpen() {
                return inner.isOpen();
            }

            @Override
            public void close() throws IOException {
                inner.close();
            }
        };
    }

    @Test
    void anInterruptedSaveLeavesTheOldFileIntact() throws IOException {
        long seed = Seeds.fresh("anInterruptedSaveLeavesTheOldFileIntact");
        SplittableRandom r = new SplittableRandom(seed);
        KvCacheConfig config = SessionForkTest.config(Policies.h2o(), DType.F16, true, seed);
        Path file = dir.resolve("session.kvc");
        try (KvCache old = cacheWithHistory(config, r, 80); KvCache next = cacheWithHistory(config, r, 120)) {
            old.save(file);
            byte[] before = Files.readAllBytes(file);
            long half = SessionForkTest.save(next).length / 2;
            IOException e = assertThrows(IOException.class, () -> CacheWriter.saveAtomically(next, file,
                    f -> failingAfter(FileChannel.open(f, StandardOpenOption.WRITE), half)));
            assertTrue(e.getMessage().contains("device full"), e.getMessage());
            assertArrayEquals(before, Files.readAllBytes(file), "the old file changed");
            try (Stream<Path> left = Files.list(dir)) {
                assertEquals(List.of(file), left.toList(), "the temporary file was not deleted");
            }
            try (KvCache loaded = KvCache.load(file)) {
                assertEquals(Snapshot.of(old), Snapshot.of(loaded));
            }
        }
    }

    @Test
    void savesToAPathAndLoadsBackWhatItSaved() throws IOException {
        long seed = Seeds.fresh("savesToAPathAndLoadsBackWhatItSaved");
        SplittableRandom r = new SplittableRandom(seed);
        KvCacheConfig config = SessionForkTest.config(Policies.corm(), DType.BF16, false, seed);
        Path file = dir.resolve("corm.kvc");
        try (KvCache cache = cacheWithHistory(config, r, 150)) {
            cache.save(file);
            cache.save(file);
            try (KvCache loaded = KvCache.load(file)) {
                assertEquals(Snapshot.of(cache), Snapshot.of(loaded));
                assertArrayEquals(Files.readAllBytes(file), SessionForkTest.save(loaded));
            }
            Files.write(file, new byte[] {0}, StandardOpenOption.APPEND);
            CacheFormatException e = assertThrows(CacheFormatException.class, () -> KvCache.load(file));
            assertTrue(e.getMessage().contains("1 bytes after the saved cache"), e.getMessage());
        }
    }

    @Test
    void aConfigThatDiffersFromTheFileIsRejected() throws IOException {
        long seed = Seeds.fresh("aConfigThatDiffersFromTheFileIsRejected");
        KvCacheConfig config = SessionForkTest.config(Policies.snapKv(16, 5), DType.F32, true, seed);
        try (KvCache cache = cacheWithHistory(config, new SplittableRandom(seed), 60)) {
            byte[] saved = SessionForkTest.save(cache);
            CacheFormatException capacity = assertThrows(CacheFormatException.class, () -> SessionForkTest.load(saved,
                    config.toBuilder().capacity(151).build(), null));
            assertTrue(capacity.getMessage().contains("capacity: the file holds 150, the config 151"),
                    capacity.getMessage());
            CacheFormatException policy = assertThrows(CacheFormatException.class, () -> SessionForkTest.load(saved,
                    config.toBuilder().policy(Policies.snapKv(16, 3)).build(), null));
            assertTrue(policy.getMessage().contains("policy parameters"), policy.getMessage());
            try (KvPool pool = SessionForkTest.pool(DType.F16, 8)) {
                CacheFormatException rows = assertThrows(CacheFormatException.class,
                        () -> SessionForkTest.load(saved, null, pool));
                assertTrue(rows.getMessage().contains("the pool's blocks 16 F16"), rows.getMessage());
                assertEquals(0, pool.stats().usedBlocks());
            }
        }
    }

    @Test
    void aStoredNanOrInfinityIsRejectedEvenWithAValidCrc() throws IOException {
        long seed = Seeds.fresh("aStoredNanOrInfinityIsRejectedEvenWithAValidCrc");
        SplittableRandom r = new SplittableRandom(seed);
        int[][] specials = {{0x7F80_0000, 0x7FC0_0000, 0xFF80_0000}, {0x7C00, 0x7E00, 0xFC00}, {0x7F80, 0x7FC0, 0xFF80}};
        DType[] dtypes = {DType.F32, DType.F16, DType.BF16};
        for (int t = 0; t < dtypes.length; t++) {
            KvCacheConfig config = SessionForkTest.config(Policies.knorm(), dtypes[t], false, seed);
            try (KvCache cache = KvCache.create(config)) {
                int row = config.kvHeads() * config.headDim();
                cache.append(0, 0, 10, Seeds.uniform(r, 10 * row, 3), Seeds.uniform(r, 10 * row, 3));
                byte[] good = SessionForkTest.save(cache);
                try (KvCache loaded = SessionForkTest.load(good, null, null)) {
                    assertArrayEquals(good, SessionForkTest.save(loaded));
                }
                SessionCorruptionTest.Section store = SessionCorruptionTest.sections(good).get(2);
                // the first buffer's size, then (after flags, positions and norms) its first key element
                ByteBuffer b = ByteBuffer.wrap(good).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                int n = b.getInt(store.payload());
                assertEquals(10, n);
                int element = store.payload() + 8 + 8 * n + dtypes[t].bytes() * r.nextInt(64 * config.headDim());
                for (int special : specials[t]) {
                    byte[] bad = good.clone();
                    ByteBuffer w = ByteBuffer.wrap(bad).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    if (dtypes[t] == DType.F32) {
                        w.putInt(element, special);
                    } else {
                        w.putShort(element, (short) special);
                    }
                    SessionCorruptionTest.repairCrc(bad, store);
                    CacheFormatException e = assertThrows(CacheFormatException.class,
                            () -> SessionForkTest.load(bad, null, null));
                    assertTrue(e.getMessage().contains("hold a NaN or an infinity"), e.getMessage());
                }
            }
        }
    }

    @Test
    void aPolicyThatIsNotBuiltInLoadsWithTheCallersConfig() throws IOException {
        long seed = Seeds.fresh("aPolicyThatIsNotBuiltInLoadsWithTheCallersConfig");
        SplittableRandom r = new SplittableRandom(seed);
        EvictionPolicy custom = new EvictionPolicy() {
            @Override
            public String name() {
                return "custom_h2o";
            }

            @Override
            public Tracker newTracker(Shape shape) {
                return Policies.h2o().newTracker(shape);
            }
        };
        KvCacheConfig config = SessionForkTest.config(custom, DType.F32, false, seed);
        try (KvCache cache = KvCache.create(config)) {
            SessionLockstep ops = new SessionLockstep(config, r);
            ops.run(80, List.of(cache));
            byte[] saved = SessionForkTest.save(cache);
            CacheFormatException e = assertThrows(CacheFormatException.class, () -> SessionForkTest.load(saved, null,
                    null));
            assertTrue(e.getMessage().contains("custom_h2o is not built in"), e.getMessage());
            try (KvCache loaded = SessionForkTest.load(saved, config, null)) {
                ops.run(100, List.of(cache, loaded));
            }
        }
    }

    @Test
    void aForkThatMustCopyABlockOnAFullPoolFailsAndChangesNothing() {
        long seed = Seeds.fresh("aForkThatMustCopyABlockOnAFullPoolFailsAndChangesNothing");
        SplittableRandom r = new SplittableRandom(seed);
        KvCacheConfig config = SessionForkTest.config(Policies.streamingLlm(2), DType.F16, false, seed);
        int row = config.kvHeads() * config.headDim();
        // 70 tokens per source layer: a full block and a shared tail block of 6 tokens per buffer
        KvPool pool = SessionForkTest.pool(DType.F16, 8);
        try (KvCache original = KvCache.create(config, pool)) {
            for (int layer = 0; layer < 2; layer++) {
                original.append(layer, 0, 70, Seeds.uniform(r, 70 * row, 1), Seeds.uniform(r, 70 * row, 1));
            }
            assertEquals(8, pool.stats().usedBlocks());
            KvCache fork = original.fork();
            try {
                Snapshot before = Snapshot.of(fork);
                assertThrows(PoolExhaustedException.class, () -> fork.append(0, 70, Seeds.uniform(r, row, 1),
                        Seeds.uniform(r, row, 1)));
                assertThrows(PoolExhaustedException.class, () -> fork.compress(0.5));
                assertEquals(before, Snapshot.of(fork));
                assertEquals(before, Snapshot.of(original));
                assertEquals(8, pool.stats().usedBlocks());
                original.close();
                fork.append(0, 70, Seeds.uniform(r, row, 1), Seeds.uniform(r, row, 1));
                fork.compress(0.5);
                assertEquals(35, fork.stats().resident(0, 0));
            } finally {
                fork.close();
            }
            assertEquals(0, pool.stats().usedBlocks());
        } finally {
            pool.close();
        }
    }
}
