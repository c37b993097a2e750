package io.github.kvcache4j.model;

import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Writes the synthetic models of {@link LayoutModelTest} as complete GGUF files (weights and
 * tokenizer), for the tests of other packages that run them end to end.
 */
public final class LayoutFiles {

    /** Llama 3.1's divisor of the lowest frequencies. */
    static final double FACTOR = 8;
    /** Llama 3.1's low-frequency factor. */
    static final double LOW = 1;
    /** Llama 3.1's high-frequency factor. */
    static final double HIGH = 4;
    /** An original context short enough that scaling turns most pairs within the first positions. */
    static final int ORIGINAL_CONTEXT = 32;

    /** The merges of {@link #byteVocabulary}, in rank order. */
    static final List<String> TINY_MERGES = List.of("Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ s", "Ġ w");

    private LayoutFiles() {
    }

    /** The Llama 3 layout: the real 128K vocabulary, a {@code rope_freqs} tensor, 64-wide heads on a 32-wide model. */
    static SyntheticModel llama3(long seed) {
        return new SyntheticModel(
                new SyntheticModel.Spec("llama", 32, 2, 2, 1, 64, 64, 128256, 500000, false, false, true), seed);
    }

    /** The Qwen2 layout: q/k/v biases, NeoX-order RoPE, an untied output, the tiny byte-level vocabulary. */
    static SyntheticModel qwen2(long seed) {
        return new SyntheticModel(new SyntheticModel.Spec("qwen2", 128, 2, 2, 1, 64, 96,
                256 + TINY_MERGES.size() + 1, 1000000, true, true, false), seed);
    }

    /**
     * Writes the Llama 3 layout with random weights from {@code seed}.
     *
     * @param dir the directory
     * @param seed the weights' seed
     * @return the file
     * @throws IOException if the file or the vocabulary cannot be read or written
     */
    public static Path writeLlama3(Path dir, long seed) throws IOException {
        return write(dir.resolve("llama3-layout.gguf"), llama3Writer(llama3(seed)));
    }

    /**
     * Writes the Qwen2 layout with random weights from {@code seed}.
     *
     * @param dir the directory
     * @param seed the weights' seed
     * @return the file
     * @throws IOException if the file cannot be written
     */
    public static Path writeQwen2(Path dir, long seed) throws IOException {
        TestGgufWriter w = qwen2(seed).writer();
        byteVocabulary(w, "qwen2");
        return write(dir.resolve("qwen2-layout.gguf"), w);
    }

    static Path write(Path file, TestGgufWriter w) throws IOException {
        Files.write(file, w.build());
        return file;
    }

    /** Returns the writer of a Llama 3 layout model with its rope_freqs tensor and the real vocabulary. */
    static TestGgufWriter llama3Writer(SyntheticModel m) throws IOException {
        TestGgufWriter w = m.writer();
        float[] factors = toFloat(llama3Factors(500000, 64));
        w.tensor(RopeScaling.FREQS_TENSOR, GgmlType.F32, factors, factors.length);
        try (GgufFile vocab = GgufFile.open(SharedFiles.shared().resolve("gguf-goldens/llama3-vocab.gguf"))) {
            for (Map.Entry<String, Object> e : vocab.metadata().entrySet()) {
                String k = e.getKey();
                if (!k.startsWith("tokenizer.")) {
                    continue;
                }
                switch (e.getValue()) {
                    case String s -> w.kvString(k, s);
                    case String[] a -> w.kvStringArray(k, a);
                    case int[] a -> w.kvI32Array(k, a);
                    case Integer i -> w.kvI32(k, i);
                    case Long l -> w.kvU32(k, Math.toIntExact(l));
                    case Boolean b -> w.kvBool(k, b);
                    default -> throw new IllegalArgumentException(k + ": cannot copy " + e.getValue().getClass());
                }
            }
        }
        return w;
    }

    /**
     * Adds a byte-level BPE vocabulary: the 256 byte tokens in byte order, the tokens of
     * {@link #TINY_MERGES}, and {@code <|endoftext|>} as a control token (BOS and EOS).
     */
    static void byteVocabulary(TestGgufWriter w, String pre) {
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(String.valueOf(ByteLevel.charOf(b)));
        }
        for (String m : TINY_MERGES) {
            tokens.add(m.replace(" ", ""));
        }
        tokens.add("<|endoftext|>");
        int[] types = new int[tokens.size()];
        Arrays.fill(types, TokenType.NORMAL);
        types[types.length - 1] = TokenType.CONTROL;
        w.kvString("tokenizer.ggml.model", "gpt2");
        w.kvString("tokenizer.ggml.pre", pre);
        w.kvStringArray("tokenizer.ggml.tokens", tokens.toArray(String[]::new));
        w.kvI32Array("tokenizer.ggml.token_type", types);
        w.kvStringArray("tokenizer.ggml.merges", TINY_MERGES.toArray(String[]::new));
        w.kvU32("tokenizer.ggml.bos_token_id", types.length - 1);
        w.kvU32("tokenizer.ggml.eos_token_id", types.length - 1);
        w.kvBool("tokenizer.ggml.add_bos_token", false);
    }

    /** Meta's Llama 3.1 frequency divisors, written here from the rule, in float64. */
    static double[] llama3Factors(double base, int headDim) {
        double[] f = new double[headDim / 2];
        for (int i = 0; i < f.length; i++) {
            double freq = Math.pow(base, -2.0 * i / headDim);
            double wavelength = 2 * Math.PI / freq;
            double scaled;
            if (wavelength < ORIGINAL_CONTEXT / HIGH) {
                scaled = freq;
            } else if (wavelength > ORIGINAL_CONTEXT / LOW) {
                scaled = freq / FACTOR;
            } else {
                double smooth = (ORIGINAL_CONTEXT / wavelength - LOW) / (HIGH - LOW);
                scaled = (1 - smooth) * freq / FACTOR + smooth * freq;
            }
            f[i] = freq / scaled;
        }
        return f;
    }

    static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }
}
