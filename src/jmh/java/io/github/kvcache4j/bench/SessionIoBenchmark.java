package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Save and load throughput of a 4096-token cache of {@link ForkBenchmark}'s shape (H2O; F16, a
 * 64 MiB file, or Q8 with rotated keys, 36 MiB, or Q4 likewise, 24 MiB) in a temporary directory, against a plain copy of the same file: {@code save}
 * writes through a file channel (no fsync, as the copy), {@code saveAtomic} is
 * {@link KvCache#save(Path)} (temporary file, fsync, rename), {@code load} reads and checks the
 * file into a new cache and closes it, {@code fileCopy} is {@link Files#copy}. Divide the file's
 * size (printed at setup) by the time per operation for GB/s.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class SessionIoBenchmark {

    /** The storage type; Q8 and Q4 rotate their keys, so a load also rebuilds the rotation. */
    @Param({"F16", "Q8", "Q4"})
    public String dtype;

    private Path dir;
    private Path saved;
    private Path scratch;
    private KvCache cache;

    @Setup
    public void setUp() throws IOException {
        DType type = DType.valueOf(dtype);
        KvCacheConfig.Builder b = KvCacheConfig.builder().layers(ForkBenchmark.LAYERS).kvHeads(AttentionData.KV_HEADS)
                .queryHeads(AttentionData.QUERY_HEADS).headDim(AttentionData.HEAD_DIM)
                .capacity(ForkBenchmark.TOKENS).dtype(type).policy(Policies.h2o());
        KvCacheConfig config = (type.isQuantized() ? b.keyRotation(7) : b).build();
        cache = KvCache.create(config);
        ForkBenchmark.fill(cache, new SplittableRandom(1));
        dir = Files.createTempDirectory("kvcache4j-sessions");
        saved = dir.resolve("cache.kvc");
        scratch = dir.resolve("scratch.kvc");
        cache.save(saved);
        System.out.println("saved cache: " + Files.size(saved) + " bytes");
    }

    @TearDown
    public void tearDown() throws IOException {
        cache.close();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        Files.delete(dir);
    }

    /** Writes the cache through a file channel. */
    @Benchmark
    public long save() throws IOException {
        try (FileChannel out = FileChannel.open(scratch, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            cache.save(out);
            return out.size();
        }
    }

    /** Writes the cache atomically: temporary file, fsync, rename. */
    @Benchmark
    public void saveAtomic() throws IOException {
        cache.save(scratch);
    }

    /** Loads the saved file into a new cache (private pool) and closes it. */
    @Benchmark
    public long load() throws IOException {
        try (KvCache loaded = KvCache.load(saved)) {
            return loaded.stats().residentBytes();
        }
    }

    /** Copies the saved file: the baseline for moving the same bytes. */
    @Benchmark
    public Path fileCopy() throws IOException {
        return Files.copy(saved, scratch, StandardCopyOption.REPLACE_EXISTING);
    }
}
