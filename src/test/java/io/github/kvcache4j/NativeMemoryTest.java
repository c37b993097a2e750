package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Create/close cycles leave no off-heap memory behind, measured by the JVM's native memory
 * tracking in a child JVM (the memory of {@code Arena.allocate} is counted under "Other").
 */
class NativeMemoryTest {

    static final int CYCLES = 10_000;
    /** Bytes one cache of the probe's shape reserves; a leak of every cycle would be 10^4 times this. */
    static final KvCacheConfig CONFIG = KvCacheConfig.builder().layers(2).kvHeads(2).queryHeads(4).headDim(64)
            .capacity(64).policy(Policies.h2o()).build();

    @Test
    void createCloseCyclesLeaveNoNativeMemoryBehind() throws Exception {
        Path bin = Path.of(System.getProperty("java.home"), "bin");
        Process child = new ProcessBuilder(List.of(bin.resolve("java").toString(), "-XX:NativeMemoryTracking=summary",
                "-ea", "--add-modules", "jdk.incubator.vector", "-Xmx256m",
                "-cp", System.getProperty("java.class.path"), Probe.class.getName()))
                .redirectErrorStream(true).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream()));
             Writer in = new OutputStreamWriter(child.getOutputStream())) {
            String reserved = awaitLine(out, "warm ");
            long before = other(bin, child.pid());
            in.write("go\n");
            in.flush();
            awaitLine(out, "done");
            long after = other(bin, child.pid());
            in.write("exit\n");
            in.flush();
            assertTrue(child.waitFor(1, TimeUnit.MINUTES));
            long perCache = Long.parseLong(reserved.trim());
            System.out.println("NMT Other: " + before + " -> " + after + " bytes over " + CYCLES
                    + " create/close cycles of " + perCache + " bytes");
            // Allocator slack only: a leak of one cache in 300 cycles would exceed this (32 caches, 4 MiB).
            assertTrue(after - before < 32 * perCache, "native memory grew by " + (after - before)
                    + " bytes over " + CYCLES + " create/close cycles");
        } finally {
            child.destroyForcibly();
        }
    }

    static String awaitLine(BufferedReader out, String prefix) throws IOException {
        for (String line = out.readLine(); line != null; line = out.readLine()) {
            if (line.startsWith(prefix)) {
                return line.substring(prefix.length());
            }
        }
        throw new IOException("the probe JVM ended before printing '" + prefix + "'");
    }

    /** Returns the committed bytes of the "Other" category (where Arena memory is counted) of {@code pid}. */
    static long other(Path bin, long pid) throws Exception {
        Process jcmd = new ProcessBuilder(bin.resolve("jcmd").toString(), Long.toString(pid),
                "VM.native_memory", "summary").redirectErrorStream(true).start();
        String summary = new String(jcmd.getInputStream().readAllBytes());
        assertTrue(jcmd.waitFor(1, TimeUnit.MINUTES), summary);
        Matcher m = Pattern.compile("Other \\(reserved=(\\d+)KB, committed=(\\d+)KB\\)").matcher(summary);
        assertTrue(m.find(), "no 'Other' line in the native memory summary:\n" + summary);
        return Long.parseLong(m.group(2)) * 1024;
    }

    /** Runs in the child JVM: warms up, then runs the cycles when told to. */
    public static final class Probe {
        public static void main(String[] args) throws IOException {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            long reserved = 0;
            for (int i = 0; i < 200; i++) {
                reserved = cycle();
            }
            System.gc();
            System.out.println("warm " + reserved);
            in.readLine();
            for (int i = 0; i < CYCLES; i++) {
                cycle();
            }
            System.gc();
            System.out.println("done");
            in.readLine();
        }

        /** One cache used and closed, and one create the policy rejects; returns the bytes reserved. */
        private static long cycle() {
            long reserved;
            try (KvCache cache = KvCache.create(CONFIG)) {
                cache.append(0, 0, new float[2 * 64], new float[2 * 64]);
                reserved = cache.stats().reservedBytes();
            }
            try {
                KvCache.create(CONFIG.toBuilder().policy(Policies.knorm(0, 7)).build());
                throw new AssertionError("a knorm policy skipping layer 7 of 2 must be rejected");
            } catch (IllegalArgumentException expected) {
                // the rejected create must not have reserved memory
            }
            return reserved;
        }
    }
}
