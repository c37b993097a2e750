package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.NamedPolicy;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving to a path is atomic, a load checks the caller's configuration (key rotation included)
 * against the file and every stored value behind a valid CRC, a policy that is not built in loads
 * only with the caller's config, and a fork that must copy a shared block on a full pool fails
 * cleanly.
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

    /** One corruption of a quantized group: what is written where, and the words of the rejection. */
    private record GroupDamage(int offset, int bits, int width, String says) {
    }

    /**
     * The values a Q8 or Q4 encoder never writes into a group, and that could decode to a NaN or an
     * infinity: a scale NaN, infinite, negative or so large that the largest code overflows; a Q4
     * minimum NaN or infinite; a Q8 code of -128.
     */
    private static List<GroupDamage> damages(DType dtype, SplittableRandom r) {
        List<GroupDamage> all = new ArrayList<>();
        int[] badScales = {0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, Float.floatToIntBits(-1f),
            Float.floatToIntBits(Float.MAX_VALUE)};
        for (int bits : badScales) {
            all.add(new GroupDamage(0, bits, 4, "scale " + Float.intBitsToFloat(bits)));
        }
        if (dtype == DType.Q8) {
            all.add(new GroupDamage(4 + r.nextInt(32), 0x80, 1, "code -128 cannot occur"));
        } else {
            for (int bits : new int[] {0x7FC0_0000, 0x7F80_0000, 0xFF80_0000}) {
                all.add(new GroupDamage(4, bits, 4, "minimum " + Float.intBitsToFloat(bits)));
            }
        }
        return all;
    }

    @Test
    void aQuantizedRowTheEncoderCannotWriteIsRejectedEvenWithAValidCrc() throws IOException {
        long seed = Seeds.fresh("aQuantizedRowTheEncoderCannotWriteIsRejectedEvenWithAValidCrc");
        SplittableRandom r = new SplittableRandom(seed);
        for (DType dtype : new DType[] {DType.Q8, DType.Q4}) {
            boolean rotate = r.nextBoolean();
            KvCacheConfig config = SessionForkTest.config(Policies.knorm(), dtype, false, rotate, seed);
            int d = config.headDim();
            int rowBytes = (int) dtype.rowBytes(d);
            try (KvCache cache = KvCache.create(config); KvPool pool = SessionForkTest.pool(dtype, 16)) {
                int row = config.kvHeads() * d;
                float[] values = Seeds.uniform(r, 10 * row, 3);
                // the encoder's extremes: a group reaching both ends of the float range still decodes
                for (int i = 0; i < 8; i++) {
                    values[r.nextInt(values.length)] = r.nextBoolean() ? Float.MAX_VALUE : -Float.MAX_VALUE;
                }
                cache.append(0, 0, 10, Seeds.uniform(r, 10 * row, 3), values);
                byte[] good = SessionForkTest.save(cache);
                try (KvCache loaded = SessionForkTest.load(good, config, pool)) {
                    assertArrayEquals(good, SessionForkTest.save(loaded), "the extremes of the range load as saved");
                }
                SessionCorruptionTest.Section store = SessionCorruptionTest.sections(good).get(2);
                int n = ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN).getInt(store.payload());
                assertEquals(10, n);
                int groupBytes = rowBytes / (d / 32);
                for (GroupDamage damage : damages(dtype, r)) {
                    boolean keys = r.nextBoolean();
                    int slot = r.nextInt(64);
                    int group = r.nextInt(d / 32);
                    int at = store.payload() + 8 + 8 * n + (keys ? 0 : 64 * rowBytes) + slot * rowBytes
                            + group * groupBytes + damage.offset();
                    byte[] bad = good.clone();
                    ByteBuffer w = ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN);
                    if (damage.width() == 4) {
                        w.putInt(at, damage.bits());
                    } else {
                        w.put(at, (byte) damage.bits());
                    }
                    SessionCorruptionTest.repairCrc(bad, store);
                    KvPool target = r.nextBoolean() ? pool : null;
                    CacheFormatException e = assertThrows(CacheFormatException.class,
                            () -> SessionForkTest.load(bad, null, target), dtype + " " + damage);
                    String where = "section STORE: buffer 0 block 0 " + (keys ? "keys" : "values") + " row " + slot
                            + " group " + group + ": ";
                    assertTrue(e.getMessage().startsWith(where) && e.getMessage().contains(damage.says()),
                            e.getMessage() + " should start with " + where + " and name " + damage.says());
                    assertEquals(0, pool.stats().usedBlocks(), "a rejected load left blocks in the pool");
                }
            }
        }
    }

    @Test
    void aKeyRotationThatDiffersFromTheFileIsRejected() throws IOException {
        long seed = Seeds.fresh("aKeyRotationThatDiffersFromTheFileIsRejected");
        SplittableRandom r = new SplittableRandom(seed);
        DType dtype = r.nextBoolean() ? DType.Q8 : DType.Q4;
        KvCacheConfig config = SessionForkTest.config(Policies.h2o(), dtype, false, true, seed);
        try (KvCache cache = cacheWithHistory(config, r, 60)) {
            byte[] saved = SessionForkTest.save(cache);
            try (KvCache loaded = SessionForkTest.load(saved, null, null)) {
                assertEquals(config.keyRotationSeed(), loaded.config().keyRotationSeed(), "the file's rotation seed");
            }
            CacheFormatException none = assertThrows(CacheFormatException.class, () -> SessionForkTest.load(saved,
                    config.toBuilder().noKeyRotation().build(), null));
            assertTrue(none.getMessage().contains("keyRotation: the file holds 1, the config 0"), none.getMessage());
            CacheFormatException other = assertThrows(CacheFormatException.class, () -> SessionForkTest.load(saved,
                    config.toBuilder().keyRotation(seed + 1).build(), null));
            assertTrue(other.getMessage().contains("keyRotation seed: the file holds " + seed + ", the config "
                    + (seed + 1)), other.getMessage());
            // the flag follows the dtype's name (an int32 count and its bytes) after the five dimensions
            SessionCorruptionTest.Section section = SessionCorruptionTest.sections(saved).get(0);
            int flag = section.payload() + 20 + 4 + dtype.name().length();
            for (int[] change : new int[][] {{flag, 2}, {flag, 0}}) {
                byte[] bad = saved.clone();
                ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN).putInt(change[0], change[1]);
                SessionCorruptionTest.repairCrc(bad, section);
                CacheFormatException e = assertThrows(CacheFormatException.class,
                        () -> SessionForkTest.load(bad, null, null));
                String says = change[1] == 2 ? "keyRotation flag must be 0 or 1, got 2"
                        : "differs in keyRotation seed: the file holds " + seed;
                assertTrue(e.getMessage().contains(says), e.getMessage());
            }
        }
    }

    @Test
    void aFileOfTheFirstFormatVersionIsRejectedNamingBothVersions() throws IOException {
        long seed = Seeds.fresh("aFileOfTheFirstFormatVersionIsRejectedNamingBothVersions");
        KvCacheConfig config = SessionForkTest.config(Policies.tova(), DType.F16, false, seed);
        try (KvCache cache = cacheWithHistory(config, new SplittableRandom(seed), 30)) {
            byte[] file = SessionForkTest.save(cache);
            ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).putInt(CacheFileFormat.MAGIC.length, 1);
            CacheFormatException e = assertThrows(CacheFormatException.class,
                    () -> SessionForkTest.load(file, null, null));
            assertEquals("section header: format version 1 is not supported (supported: " + CacheFileFormat.VERSION
                    + ")", e.getMessage());
        }
    }

    @Test
    void aPolicyThatIsNotBuiltInLoadsWithTheCallersConfig() throws IOException {
        long seed = Seeds.fresh("aPolicyThatIsNotBuiltInLoadsWithTheCallersConfig");
        SplittableRandom r = new SplittableRandom(seed);
        EvictionPolicy custom = NamedPolicy.of("custom_h2o", shape -> Policies.h2o().newTracker(shape));
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
