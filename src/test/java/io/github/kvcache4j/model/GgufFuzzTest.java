package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bundled models with random bytes flipped parse to a model or fail with a
 * {@link GgufFormatException} or {@link IllegalArgumentException}: never another exception, an
 * {@link OutOfMemoryError} or a hang.
 */
class GgufFuzzTest {

    private static final int CASES = Integer.getInteger("kvcache4j.fuzzCases", 10_000);
    private static final String[] MODELS = {"stories260K-f32.gguf", "austen-base-f16.gguf", "austen-cla-f16.gguf"};
    /** Share of the cases per model: the austen models take four times longer to parse. */
    private static final double[] SHARE = {0.7, 0.15, 0.15};

    @TempDir
    Path dir;

    @Test
    void flippedBytesFailCleanlyOrLoad() {
        long seed = Seeds.fresh("flippedBytesFailCleanlyOrLoad");
        assertTimeoutPreemptively(Duration.ofMinutes(4), () -> fuzz(seed), "seed " + seed);
    }

    private void fuzz(long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        int[] outcomes = new int[3];
        long slowest = 0;
        for (int m = 0; m < MODELS.length; m++) {
            Path copy = dir.resolve(MODELS[m]);
            Files.copy(SharedFiles.model(MODELS[m]), copy);
            long headerEnd;
            try (GgufFile f = GgufFile.open(copy)) {
                headerEnd = f.dataOffset();
            }
            long size = Files.size(copy);
            int cases = m == 0 ? CASES - (int) (CASES * SHARE[1]) - (int) (CASES * SHARE[2]) : (int) (CASES * SHARE[m]);
            long modelStart = System.nanoTime();
            try (FileChannel ch = FileChannel.open(copy, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                for (int i = 0; i < cases; i++) {
                    int flips = r.nextInt(1, 9);
                    long[] at = new long[flips];
                    byte[] original = new byte[flips];
                    for (int k = 0; k < flips; k++) {
                        at[k] = r.nextInt(10) == 0 ? r.nextLong(size) : r.nextLong(headerEnd);
                        ByteBuffer one = ByteBuffer.allocate(1);
                        ch.read(one, at[k]);
                        original[k] = one.get(0);
                        ch.write(ByteBuffer.wrap(new byte[] {(byte) (original[k] ^ (1 + r.nextInt(255)))}), at[k]);
                    }
                    String where = "seed " + seed + ", " + MODELS[m] + " case " + i + ", flipped bytes at "
                            + java.util.Arrays.toString(at);
                    long start = System.nanoTime();
                    outcomes[parse(copy, where)]++;
                    slowest = Math.max(slowest, System.nanoTime() - start);
                    for (int k = flips - 1; k >= 0; k--) {
                        ch.write(ByteBuffer.wrap(new byte[] {original[k]}), at[k]);
                    }
                }
            }
            System.out.printf("GGUF fuzz: %s, %d cases in %.1f s%n", MODELS[m], cases, (System.nanoTime() - modelStart) / 1e9);
        }
        System.out.printf("GGUF fuzz: %d loaded, %d GgufFormatException, %d IllegalArgumentException; slowest %.1f ms%n",
                outcomes[0], outcomes[1], outcomes[2], slowest / 1e6);
        assertTrue(outcomes[1] > 0, "no corruption was detected at all, seed " + seed);
    }

    /** Returns 0 when the model loaded, 1 for a format exception, 2 for an illegal argument. */
    private static int parse(Path file, String where) {
        try (GgufFile f = GgufFile.open(file); LlamaModel model = LlamaModel.load(f)) {
            model.config();
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
