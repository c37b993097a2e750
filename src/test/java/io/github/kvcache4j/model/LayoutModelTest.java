package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The layouts of the GGUF models people download, each as a small random model written by
 * {@link TestGgufWriter}, against the float64 forward pass of {@link SyntheticModel}: Llama 3
 * with the real 128K vocabulary, a {@code rope_freqs} tensor and an explicit head width; Qwen2
 * with q/k/v biases and NeoX-order RoPE; tied embeddings with the {@code llama3} scaling keys at
 * every head width the kernels run.
 *
 * <p>Tolerance: the decoder computes in float32 what the reference computes in float64; over two
 * blocks with logits of magnitude up to ~10 the rounding stays near 1e-5, so logits must agree to
 * {@value #TOLERANCE} (the printed differences show the margin). RoPE scaling is chosen to turn
 * most pairs within the first positions ({@link LayoutFiles#ORIGINAL_CONTEXT}), and the test
 * checks that ignoring it moves the logits by far more than the tolerance.
 */
class LayoutModelTest {

    private static final double TOLERANCE = 2e-4;
    @TempDir
    Path dir;

    private static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    private Path write(String name, TestGgufWriter w) throws IOException {
        return LayoutFiles.write(dir.resolve(name + ".gguf"), w);
    }

    /** Runs {@code tokens} through the file's model with a full F32 cache and returns every logit. */
    static float[] forward(GgufFile gguf, int[] tokens) throws IOException {
        try (LlamaModel model = LlamaModel.load(gguf);
             KvCache cache = KvCache.create(model.cacheConfig().capacity(tokens.length).dtype(DType.F32)
                     .policy(Policies.full()).build())) {
            return model.forward(cache, tokens, 0, true);
        }
    }

    /** Returns max |model - reference| over every logit of every position. */
    static double maxDiff(float[] logits, double[][] reference) {
        int vocab = reference[0].length;
        double max = 0;
        for (int t = 0; t < reference.length; t++) {
            for (int i = 0; i < vocab; i++) {
                max = Math.max(max, Math.abs(logits[t * vocab + i] - reference[t][i]));
            }
        }
        return max;
    }

    private static int[] randomTokens(long seed, int n, int vocab) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }

    private static void check(String name, float[] logits, double[][] reference, double[][] unscaled) {
        double diff = maxDiff(logits, reference);
        System.out.printf("%s: max |logit - float64 reference| = %.2e%s%n", name, diff,
                unscaled == null ? "" : String.format(", without RoPE scaling %.2e", maxDiff(logits, unscaled)));
        assertTrue(diff < TOLERANCE, name + ": " + diff);
        if (unscaled != null) {
            assertTrue(maxDiff(logits, unscaled) > 100 * TOLERANCE, name + ": RoPE scaling has no visible effect");
        }
    }

    @Test
    void llama3WithRealVocabularyRopeFreqsAndWideHeadsMatchesFloat64Reference() throws IOException {
        long seed = Seeds.fresh("llama3 layout");
        SyntheticModel m = LayoutFiles.llama3(seed);
        float[] factors = LayoutFiles.toFloat(LayoutFiles.llama3Factors(500000, 64));
        try (GgufFile gguf = GgufFile.open(write("llama3", LayoutFiles.llama3Writer(m)))) {
            Tokenizer tok = Tokenizer.fromGguf(gguf);
            String text = Files.readString(SharedFiles.data("persuasion.txt")).substring(5000, 5100);
            int[] tokens = tok.encode(text, tok.addsBos());
            assertEquals(128000, tokens[0]);
            LlamaConfig c = LlamaConfig.fromGguf(gguf);
            assertEquals(64, c.headDim());
            assertEquals(128, c.qDim());
            float[] logits = forward(gguf, tokens);
            check("llama3", logits, m.logits(tokens, widen(factors)), m.logits(tokens, null));
        }
    }

    @Test
    void qwen2WithBiasesAndNeoxRopeMatchesFloat64Reference() throws IOException {
        long seed = Seeds.fresh("qwen2 layout");
        SyntheticModel m = LayoutFiles.qwen2(seed);
        try (GgufFile gguf = GgufFile.open(LayoutFiles.writeQwen2(dir, seed))) {
            LlamaConfig c = LlamaConfig.fromGguf(gguf);
            assertTrue(c.ropeNeox());
            int[] tokens = randomTokens(seed, 24, m.spec.vocab());
            try (LlamaModel model = LlamaModel.load(gguf)) {
                assertFalse(model.tiedEmbeddings());
            }
            check("qwen2", forward(gguf, tokens), m.logits(tokens, null), null);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {64, 80, 96, 128})
    void tiedEmbeddingsWithLlama3ScalingKeysMatchFloat64ReferenceAtEveryHeadWidth(int headDim) throws IOException {
        long seed = Seeds.fresh("tied layout, head width " + headDim);
        SyntheticModel m = new SyntheticModel(
                new SyntheticModel.Spec("llama", 2 * headDim, 2, 2, 2, headDim, 64, 200, 10000, false, false, true), seed);
        TestGgufWriter w = m.writer();
        w.kvString("llama.rope.scaling.type", "llama3");
        w.kvF32("llama.rope.scaling.factor", (float) LayoutFiles.FACTOR);
        w.kvF32("llama.rope.scaling.low_freq_factor", (float) LayoutFiles.LOW);
        w.kvF32("llama.rope.scaling.high_freq_factor", (float) LayoutFiles.HIGH);
        w.kvU32("llama.rope.scaling.original_context_length", LayoutFiles.ORIGINAL_CONTEXT);
        try (GgufFile gguf = GgufFile.open(write("tied" + headDim, w))) {
            try (LlamaModel model = LlamaModel.load(gguf)) {
                assertTrue(model.tiedEmbeddings());
                assertEquals(headDim, model.config().headDim());
            }
            int[] tokens = randomTokens(seed, 24, 200);
            check("tied, head width " + headDim, forward(gguf, tokens),
                    m.logits(tokens, LayoutFiles.llama3Factors(10000, headDim)), m.logits(tokens, null));
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"Q8_0", "Q4_0", "Q5_1", "IQ4_NL"})
    void quantizedLayoutsMatchTheirDequantizedReferenceAndTheF32ModelWithinQuantizationError(GgmlType type)
            throws IOException {
        long seed = Seeds.fresh("quantized layouts, " + type);
        SyntheticModel.Spec qwen2 = LayoutFiles.qwen2(seed).spec;
        SyntheticModel.Spec tied = new SyntheticModel.Spec("llama", 128, 2, 2, 1, 64, 64, 200, 10000, false, false, true);
        for (SyntheticModel.Spec spec : new SyntheticModel.Spec[] {qwen2, tied}) {
            SyntheticModel quantized = new SyntheticModel(spec, seed, type);
            SyntheticModel original = new SyntheticModel(spec, seed);
            int[] tokens = randomTokens(seed, 16, spec.vocab());
            try (GgufFile gguf = GgufFile.open(write(spec.arch() + type, quantized.writer()))) {
                assertEquals(type, gguf.findTensor("blk.0.attn_q.weight").orElseThrow().type());
                float[] logits = forward(gguf, tokens);
                String name = spec.arch() + " in " + type;
                check(name, logits, quantized.logits(tokens, null), null);
                double rel = relativeRms(logits, original.logits(tokens, null));
                double weightError = QuantizedModelTest.weightError(type, seed);
                System.out.printf("%s: logit RMS error vs the F32 model %.4f, weight RMS error %.4f%n", name, rel,
                        weightError);
                // Quantization noise passes through two blocks and the output matrix: a few times the weights'.
                assertTrue(rel > 0 && rel <= 4 * weightError, name + ": " + rel + " vs weight error " + weightError);
            }
        }
    }

    private static double relativeRms(float[] logits, double[][] reference) {
        int vocab = reference[0].length;
        double err = 0;
        double norm = 0;
        for (int t = 0; t < reference.length; t++) {
            for (int i = 0; i < vocab; i++) {
                double d = logits[t * vocab + i] - reference[t][i];
                err += d * d;
                norm += reference[t][i] * reference[t][i];
            }
        }
        return Math.sqrt(err / norm);
    }

    @Test
    void rejectsArchitecturesAndRopeScalingOutsideTheSupportedSet() throws IOException {
        SyntheticModel.Spec spec = new SyntheticModel.Spec("phi3", 64, 1, 1, 1, 64, 32, 16, 10000, false, false, true);
        try (GgufFile gguf = GgufFile.open(write("phi3", new SyntheticModel(spec, 1).writer()))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(gguf));
            assertEquals("general.architecture: 'phi3' is not supported (supported: llama, qwen2)", e.getMessage());
        }
        SyntheticModel llama = new SyntheticModel(
                new SyntheticModel.Spec("llama", 64, 1, 1, 1, 64, 32, 16, 10000, false, false, true), 1);
        TestGgufWriter w = llama.writer();
        w.kvString("llama.rope.scaling.type", "yarn");
        try (GgufFile gguf = GgufFile.open(write("yarn", w))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(gguf));
            assertTrue(e.getMessage().startsWith("llama.rope.scaling.type: 'yarn' is not supported"), e.getMessage());
        }
        TestGgufWriter wrongFreqs = llama.writer();
        wrongFreqs.tensor(RopeScaling.FREQS_TENSOR, GgmlType.F32, new float[31], 31);
        try (GgufFile gguf = GgufFile.open(write("freqs", wrongFreqs))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(gguf));
            assertTrue(e.getMessage().contains("needs F32 [32]"), e.getMessage());
        }
    }
}
