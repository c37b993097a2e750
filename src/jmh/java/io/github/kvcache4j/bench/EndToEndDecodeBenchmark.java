package io.github.kvcache4j.bench;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
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
 * End-to-end decode speed of the reference decoder on the bundled model ({@code austen-base},
 * 8 layers, F16 weights) at context 2048: one token per call, with the cache holding 2048 tokens
 * (the full context), or a budget of 50% or 25% of it kept by the L2-norm policy. Every call
 * evicts one token per (layer, kv-head), so the resident count stays constant. KV storage F32.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
public class EndToEndDecodeBenchmark {

    static final int CONTEXT = 2048;

    /** Resident tokens as a fraction of the context. */
    @Param({"1.0", "0.5", "0.25"})
    double budget;

    private GgufFile gguf;
    private LlamaModel model;
    private KvCache cache;
    private int[] text;
    private int position;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        gguf = GgufFile.open(find("data/austen-base-f16.gguf", "../shared/models/austen-base-f16.gguf"));
        model = LlamaModel.load(gguf);
        Tokenizer tokenizer = Tokenizer.fromGguf(gguf);
        String persuasion = Files.readString(find("data/persuasion.txt", "../shared/data/persuasion.txt"));
        text = tokenizer.encode(persuasion, true);
        int capacity = (int) (CONTEXT * budget);
        // The full context is a sliding window of 2048 tokens: same resident count, no growth.
        cache = KvCache.create(model.cacheConfig().capacity(capacity).dtype(DType.F32)
                .policy(budget == 1.0 ? Policies.streamingLlm() : Policies.knorm()).build());
        int[] prompt = java.util.Arrays.copyOfRange(text, 0, CONTEXT);
        model.forward(cache, java.util.Arrays.copyOf(prompt, capacity), 0, false);
        for (position = capacity; position < CONTEXT; position++) {
            model.forward(cache, prompt[position], position);
        }
    }

    /** Returns the first of the paths (relative to the project root) that exists. */
    static Path find(String... candidates) {
        for (String c : candidates) {
            Path p = Path.of(c);
            if (Files.exists(p)) {
                return p;
            }
        }
        throw new IllegalStateException("none of " + String.join(", ", candidates) + " exists (run from the project root)");
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cache.close();
        model.close();
        gguf.close();
    }

    /** One decode step: the next token of the text through all layers, logits out. */
    @Benchmark
    public float[] decodeToken() {
        float[] logits = model.forward(cache, text[position % text.length], position);
        position++;
        return logits;
    }
}
