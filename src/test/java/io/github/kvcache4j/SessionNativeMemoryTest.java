package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Failed loads onto private pools leave no off-heap memory behind, measured by the JVM's native
 * memory tracking in a child JVM as {@link NativeMemoryTest} does: thousands of corrupt files,
 * many of which fail after their cache (and its pool) was allocated.
 */
class SessionNativeMemoryTest {

    static final int LOADS = 2000;

    @Test
    void failedLoadsLeaveNoNativeMemoryBehind() throws Exception {
        long seed = Seeds.fresh("failedLoadsLeaveNoNativeMemoryBehind");
        Path bin = Path.of(System.getProperty("java.home"), "bin");
        Process child = new ProcessBuilder(List.of(bin.resolve("java").toString(), "-XX:NativeMemoryTracking=summary",
                "-ea", "--add-modules", "jdk.incubator.vector", "-Xmx512m",
                "-D" + CacheFileFormat.MAX_BYTES_PROPERTY + "=" + SessionCorruptionTest.MAX_BYTES,
                "-cp", System.getProperty("java.class.path"), Probe.class.getName(), Long.toString(seed)))
                .redirectErrorStream(true).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream()));
             Writer in = new OutputStreamWriter(child.getOutputStream())) {
            String reserved = NativeMemoryTest.awaitLine(out, "warm ");
            long before = NativeMemoryTest.other(bin, child.pid());
            in.write("go\n");
            in.flush();
            String failed = NativeMemoryTest.awaitLine(out, "done ");
            long after = NativeMemoryTest.other(bin, child.pid());
            in.write("exit\n");
            in.flush();
            assertTrue(child.waitFor(1, TimeUnit.MINUTES));
            long perCache = Long.parseLong(reserved.trim());
            System.out.println("NMT Other: " + before + " -> " + after + " bytes over " + LOADS + " corrupt loads ("
                    + failed.trim() + " failed after allocating a cache of " + perCache + " bytes)");
            assertTrue(Long.parseLong(failed.trim()) > LOADS / 10, "too few loads failed after allocating");
            assertTrue(after - before < 32 * perCache, "native memory grew by " + (after - before)
                    + " bytes over " + LOADS + " corrupt loads");
        } finally {
            child.destroyForcibly();
        }
    }

    /** Runs in the child JVM: loads corrupt files onto private pools when told to. */
    public static final class Probe {
        public static void main(String[] args) throws IOException {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            SplittableRandom r = new SplittableRandom(Long.parseLong(args[0]));
            List<byte[]> files = SessionCorruptionTest.savedCaches(r);
            long reserved;
            try (KvCache cache = SessionForkTest.load(files.get(0), null, null)) {
                reserved = cache.stats().reservedBytes();
            }
            loads(files, r, 200);
            System.gc();
            System.out.println("warm " + reserved);
            in.readLine();
            int failed = loads(files, r, LOADS);
            System.gc();
            System.out.println("done " + failed);
            in.readLine();
        }

        /** Loads {@code count} corrupt files; returns how many failed after their cache was allocated. */
        private static int loads(List<byte[]> files, SplittableRandom r, int count) throws IOException {
            int late = 0;
            for (int i = 0; i < count; i++) {
                byte[] bad = SessionCorruptionTest.corrupt(files.get(r.nextInt(files.size())), r.nextInt(7), r);
                if (bad == null) {
                    continue;
                }
                try {
                    SessionForkTest.load(bad, null, null).close();
                } catch (CacheFormatException e) {
                    String m = e.getMessage();
                    late += m.startsWith("section STORE") || m.startsWith("section POLICY")
                            || m.startsWith("section LESS") ? 1 : 0;
                }
            }
            return late;
        }
    }
}
