package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.testutil.Seeds;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/**
 * Corrupt saved caches are rejected with {@link CacheFormatException} and leave nothing
 * allocated: 10^4 mutations (bit flips with and without a repaired CRC, truncations, wrong
 * section lengths, huge counts, wrong CRCs) of a few small saved caches, generated in memory.
 */
class SessionCorruptionTest {

    static final int FILES = Integer.getInteger("kvcache4j.corruptFiles", 10_000);
    /** The load limit during the test: a corrupt capacity must fail on it, not reserve gigabytes. */
    static final long MAX_BYTES = 64L << 20;

    /** A section of a saved file: where its tag, payload and CRC lie. */
    record Section(int header, int payload, int length) {
        int crc() {
            return payload + length;
        }
    }

    static List<Section> sections(byte[] file) {
        List<Section> all = new ArrayList<>();
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        for (int at = CacheFileFormat.MAGIC.length + Integer.BYTES; at < file.length; ) {
            int length = (int) b.getLong(at + Integer.BYTES);
            all.add(new Section(at, at + CacheFileFormat.SECTION_HEADER_BYTES, length));
            at += CacheFileFormat.SECTION_HEADER_BYTES + length + Integer.BYTES;
        }
        return all;
    }

    /** Rewrites the CRC32C of {@code s}, so that only the semantic checks can catch a change. */
    static void repairCrc(byte[] file, Section s) {
        CRC32C crc = new CRC32C();
        crc.update(file, s.payload(), s.length());
        ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).putInt(s.crc(), (int) crc.getValue());
    }

    /**
     * Saved caches of different policies, dtypes (Q4 with rotated keys among them), sharing and
     * LESS, with evictions behind them.
     */
    static List<byte[]> savedCaches(SplittableRandom r) throws IOException {
        List<byte[]> files = new ArrayList<>();
        String[] policies = {"h2o", "corm", "snapkv", "knorm", "tova"};
        DType[] dtypes = {DType.F16, DType.BF16, DType.F32, DType.F32, DType.Q4};
        for (int i = 0; i < policies.length; i++) {
            KvCacheConfig config = SessionForkTest.config(SessionForkTest.policy(policies[i]), dtypes[i], i % 2 == 0,
                    dtypes[i].isQuantized(), r.nextLong());
            try (KvCache cache = KvCache.create(config)) {
                new SessionLockstep(config, r).run(40 + 30 * i, List.of(cache));
                files.add(SessionForkTest.save(cache));
            }
        }
        return files;
    }

    @Test
    void everyCorruptFileIsRejectedAndLeavesNothingAllocated() throws IOException {
        long seed = Seeds.fresh("everyCorruptFileIsRejectedAndLeavesNothingAllocated");
        SplittableRandom r = new SplittableRandom(seed);
        List<byte[]> files = savedCaches(r);
        String before = System.getProperty(CacheFileFormat.MAX_BYTES_PROPERTY);
        System.setProperty(CacheFileFormat.MAX_BYTES_PROPERTY, Long.toString(MAX_BYTES));
        int[] kinds = new int[7];
        int wellFormed = 0;
        int repairedRejected = 0;
        long start = System.nanoTime();
        try {
            for (byte[] good : files) {
                DType dtype;
                try (KvCache c = SessionForkTest.load(good, null, null)) {
                    dtype = c.config().dtype();
                }
                try (KvPool pool = SessionForkTest.pool(dtype, 64)) {
                    for (int i = 0; i < FILES / files.size(); i++) {
                        int kind = r.nextInt(kinds.length);
                        kinds[kind]++;
                        byte[] bad = corrupt(good, kind, r);
                        if (bad == null) {
                            continue;
                        }
                        KvPool target = r.nextBoolean() ? pool : null;
                        try {
                            KvCache loaded = SessionForkTest.load(bad, null, target);
                            loaded.close();
                            // A repaired CRC may leave a valid cache (a flipped bit of a row, a norm):
                            // such a file is well-formed, and only then may it load.
                            if (kind != 1 && kind != 4) {
                                fail("mutation " + kind + " of case " + i + " loaded");
                            }
                            wellFormed++;
                        } catch (CacheFormatException expected) {
                            assertTrue(expected.getMessage().startsWith("section "), expected.getMessage());
                            repairedRejected += kind == 1 || kind == 4 ? 1 : 0;
                        }
                        assertEquals(0, pool.stats().usedBlocks(), "a failed load left blocks in the pool");
                    }
                }
            }
        } finally {
            if (before == null) {
                System.clearProperty(CacheFileFormat.MAX_BYTES_PROPERTY);
            } else {
                System.setProperty(CacheFileFormat.MAX_BYTES_PROPERTY, before);
            }
        }
        System.out.println("mutations by kind " + Arrays.toString(kinds) + ", " + wellFormed
                + " well-formed after a CRC repair, in " + (System.nanoTime() - start) / 1_000_000 + " ms");
        assertTrue(repairedRejected > FILES / 50, "only " + repairedRejected
                + " mutations with a repaired CRC were rejected: the checks behind the CRC miss too much");
    }

    /**
     * Returns a corrupt copy of {@code good}, or null when the mutation happened to change
     * nothing. Kinds: 0 a bit flip; 1 a bit flip with the section's CRC repaired; 2 a
     * truncation; 3 a wrong section length; 4 a huge or negative count with the CRC repaired;
     * 5 a wrong CRC; 6 a byte of the header.
     */
    static byte[] corrupt(byte[] good, int kind, SplittableRandom r) {
        byte[] bad = good.clone();
        List<Section> sections = sections(good);
        Section s = sections.get(r.nextInt(sections.size()));
        ByteBuffer b = ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN);
        switch (kind) {
            case 0 -> flip(bad, r.nextInt(bad.length), r);
            case 1 -> {
                if (s.length() == 0) {
                    return null;
                }
                flip(bad, s.payload() + r.nextInt(s.length()), r);
                repairCrc(bad, s);
            }
            case 2 -> bad = Arrays.copyOf(good, r.nextInt(good.length));
            case 3 -> {
                long[] lengths = {s.length() + 1, s.length() - 1, s.length() + 4, Math.max(0, s.length() - 4),
                    Long.MAX_VALUE, -1, Integer.MAX_VALUE, 1L << 40, r.nextLong()};
                b.putLong(s.header() + Integer.BYTES, lengths[r.nextInt(lengths.length)]);
            }
            case 4 -> {
                if (s.length() < 4) {
                    return null;
                }
                int[] huge = {Integer.MAX_VALUE, Integer.MIN_VALUE, -1, 1 << 30, 1 << 20, 65536, 151};
                b.putInt(s.payload() + 4 * r.nextInt(s.length() / 4), huge[r.nextInt(huge.length)]);
                repairCrc(bad, s);
            }
            case 5 -> b.putInt(s.crc(), b.getInt(s.crc()) ^ (1 << r.nextInt(32)));
            default -> flip(bad, r.nextInt(CacheFileFormat.MAGIC.length + Integer.BYTES), r);
        }
        return Arrays.equals(bad, good) ? null : bad;
    }

    private static void flip(byte[] bytes, int at, SplittableRandom r) {
        bytes[at] ^= (byte) (1 << r.nextInt(8));
    }

    @Test
    void anUntouchedFileLoadsAndSavesToTheSameBytes() throws IOException {
        long seed = Seeds.fresh("anUntouchedFileLoadsAndSavesToTheSameBytes");
        for (byte[] good : savedCaches(new SplittableRandom(seed))) {
            try (KvCache loaded = KvCache.load(Channels.newChannel(new ByteArrayInputStream(good)), null, null)) {
                assertArrayEquals(good, SessionForkTest.save(loaded));
            }
        }
    }
}
