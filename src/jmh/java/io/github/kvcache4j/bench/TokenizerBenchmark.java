package io.github.kvcache4j.bench;

import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * Encoding speed of the real tokenizer vocabularies of {@code ../shared/gguf-goldens}: the whole
 * of Persuasion (466,854 bytes) per call, with the Llama 3 byte-level BPE vocabulary (111,665
 * tokens) or the Llama 2 SentencePiece one (123,184). MB/s = 0.466854 / (seconds per call).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class TokenizerBenchmark {

    /** The vocabulary: {@code llama3} or {@code llama2}. */
    @Param({"llama3", "llama2"})
    String vocab;

    private Tokenizer tokenizer;
    private String text;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        try (GgufFile gguf = GgufFile.open(EndToEndDecodeBenchmark.find("../shared/gguf-goldens/" + vocab + "-vocab.gguf"))) {
            tokenizer = Tokenizer.fromGguf(gguf);
        }
        text = Files.readString(EndToEndDecodeBenchmark.find("data/persuasion.txt", "../shared/data/persuasion.txt"));
    }

    /** Encodes the whole text, without BOS. */
    @Benchmark
    public int[] encodePersuasion() {
        return tokenizer.encode(text, false);
    }
}
