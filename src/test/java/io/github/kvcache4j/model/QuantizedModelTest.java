package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A synthetic two-block Llama written in every weight type gives the logits of the same model
 * written in F32: exactly the F32 model of the dequantized weights up to float32 summation order,
 * and the original F32 model within the type's quantization error.
 */
class QuantizedModelTest {

    /** Rows of 256 so that every block size fits; 4 query heads of 64, 2 KV heads. */
    private static final SyntheticLlama.Shape SHAPE = new SyntheticLlama.Shape(256, 2, 4, 2, 512, 96, 64, false);
    private static final int TOKENS = 11;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4"})
    void quantizedModelGivesTheF32ModelsLogitsWithinQuantizationError(GgmlType type) throws IOException {
        long seed = Seeds.fresh("quantizedModel " + type);
        SplittableRandom r = new SplittableRandom(seed);
        int[] tokens = new int[TOKENS];
        for (int i = 0; i < TOKENS; i++) {
            tokens[i] = r.nextInt(SHAPE.vocab());
        }
        Path quant = dir.resolve("q.gguf");
        Path dequant = dir.resolve("dq.gguf");
        Path original = dir.resolve("f32.gguf");
        SyntheticLlama.write(quant, SHAPE, SyntheticLlama.all(type), false, seed, 0);
        SyntheticLlama.write(dequant, SHAPE, SyntheticLlama.all(type), true, seed, 0);
        SyntheticLlama.write(original, SHAPE, SyntheticLlama.all(GgmlType.F32), false, seed, 0);
        float[] q = logits(quant, tokens);
        float[] dq = logits(dequant, tokens);
        float[] f = logits(original, tokens);
        double maxDq = 0;
        double maxDiff = 0;
        double err = 0;
        double norm = 0;
        for (int i = 0; i < f.length; i++) {
            maxDq = Math.max(maxDq, Math.abs(dq[i]));
            maxDiff = Math.max(maxDiff, Math.abs(q[i] - dq[i]));
            err += (q[i] - f[i]) * (double) (q[i] - f[i]);
            norm += f[i] * (double) f[i];
        }
        double rel = Math.sqrt(err / norm);
        double weightError = weightError(type, seed);
        System.out.printf("%-6s seed %d: max |logit - logit(F32 of dequantized)| %.2e (max logit %.2f);"
                + " logit RMS error vs F32 %.4f, weight RMS error %.4f%n", type, seed, maxDiff, maxDq, rel, weightError);
        // Same weights, different summation order: float32 rounding only.
        assertTrue(maxDiff <= 1e-4 * maxDq, type + ": logits differ from the dequantized model's by " + maxDiff);
        // Quantization noise passes through two blocks and the output matrix: a few times the weights'.
        assertTrue(rel <= 4 * weightError, type + ": logit error " + rel + " vs weight error " + weightError);
        assertTrue(rel > 0, type + ": quantization left no trace");
    }

    /** The relative RMS error of the type's round trip on weights like the model's. */
    static double weightError(GgmlType type, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[256 * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        float[] back = TestQuantizer.roundTrip(type, v);
        double err = 0;
        double norm = 0;
        for (int i = 0; i < v.length; i++) {
            err += (back[i] - v[i]) * (double) (back[i] - v[i]);
            norm += v[i] * (double) v[i];
        }
        return Math.sqrt(err / norm);
    }

    private static float[] logits(Path file, int[] tokens) throws IOException {
        try (GgufFile gguf = GgufFile.open(file); LlamaModel model = LlamaModel.load(gguf)) {
            assertEquals(SHAPE.layers(), model.config().layers());
            ReferenceAttention attention = new ReferenceAttention(model.config());
            return model.forward(attention, tokens, 0, true);
        }
    }
}
