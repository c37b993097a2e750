package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.testutil.Seeds;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A synthetic model holding a tensor of every supported weight type, with random bytes flipped
 * in its header or its quantized data, either loads and runs a forward pass (corrupt blocks
 * decode to some floats, possibly NaN) or fails with a {@link GgufFormatException} or an
 * {@link IllegalArgumentException}: never another exception, an {@link OutOfMemoryError} or a hang.
 */
class GgufQuantFuzzTest {

    private static final int CASES = Integer.getInteger("kvcache4j.fuzzCases", 10_000);
    private static final SyntheticLlama.Shape SHAPE = new SyntheticLlama.Shape(256, 2, 4, 2, 512, 64, 64, false);
    /** One type per matrix, cycling, so that all 16 appear among the 16 matrices. */
    private static final GgmlType[] TYPES = {GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
        GgmlType.Q8_0, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL,
        GgmlType.IQ4_XS, GgmlType.MXFP4, GgmlType.F16, GgmlType.BF16, GgmlType.F32};

    @TempDir
    Path dir;

    @Test
    void flippedBytesInQuantizedFilesFailCleanlyOrRun() {
        long seed = Seeds.fresh("flippedBytesInQuantizedFilesFailCleanlyOrRun");
        assertTimeoutPreemptively(Duration.ofMinutes(4), () -> fuzz(seed), "seed " + seed);
    }

    private void fuzz(long seed) throws IOException {
        Path file = dir.resolve("mixed.gguf");
        int[] next = {0};
        java.util.Map<String, GgmlType> chosen = new java.util.HashMap<>();
        SyntheticLlama.write(file, SHAPE, (name, cols) -> chosen.computeIfAbsent(name, n -> TYPES[next[0]++ % TYPES.length]),
                false, seed, 0);
        assertTrue(chosen.values().containsAll(Arrays.asList(TYPES)), "types used: " + chosen.values());
        long headerEnd;
        try (GgufFile f = GgufFile.open(file)) {
            headerEnd = f.dataOffset();
        }
        long size = Files.size(file);
        SplittableRandom r = new SplittableRandom(seed);
        int[] outcomes = new int[3];
        long slowest = 0;
        long start = System.nanoTime();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            for (int i = 0; i < CASES; i++) {
                int flips = r.nextInt(1, 9);
                long[] at = new long[flips];
                byte[] original = new byte[flips];
                boolean inData = r.nextBoolean();
                for (int k = 0; k < flips; k++) {
                    at[k] = inData ? r.nextLong(headerEnd, size) : r.nextLong(headerEnd);
                    ByteBuffer one = ByteBuffer.allocate(1);
                    ch.read(one, at[k]);
                    original[k] = one.get(0);
                    ch.write(ByteBuffer.wrap(new byte[] {(byte) (original[k] ^ (1 + r.nextInt(255)))}), at[k]);
                }
                String where = "seed " + seed + ", case " + i + ", flipped bytes at " + Arrays.toString(at);
                long t0 = System.nanoTime();
                outcomes[run(file, where)]++;
                slowest = Math.max(slowest, System.nanoTime() - t0);
                for (int k = flips - 1; k >= 0; k--) {
                    ch.write(ByteBuffer.wrap(new byte[] {original[k]}), at[k]);
                }
            }
        }
        System.out.printf("quantized GGUF fuzz: %d cases in %.1f s: %d ran, %d GgufFormatException,"
                + " %d IllegalArgumentException; slowest %.1f ms%n", CASES, (System.nanoTime() - start) / 1e9,
                outcomes[0], outcomes[1], outcomes[2], slowest / 1e6);
        assertTrue(outcomes[0] > 0 && outcomes[1] > 0, "seed " + seed + ": outcomes " + Arrays.toString(outcomes));
    }

    /** Returns 0 when the model loaded and ran, 1 for a format exception, 2 for an illegal argument. */
    private static int run(Path file, String where) {
        try (GgufFile f = GgufFile.open(file); LlamaModel model = LlamaModel.load(f)) {
            float[] logits = model.forward(new ReferenceAttention(model.config()), new int[] {1, 2, 3}, 0, false);
            assertTrue(logits.length == model.config().vocabSize(), where);
            return 0;
        } catch (GgufFormatException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), where + ": empty message");
            return 1;
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), where + ": empty message");
            return 2;
        } catch (Throwable e) {
            fail(where + ": " + e, e);
            return -1;
        }
    }
}
