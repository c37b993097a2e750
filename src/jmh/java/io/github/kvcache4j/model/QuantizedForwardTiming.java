package io.github.kvcache4j.model;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Wall time of the decoder's forward pass on a synthetic model of a real shape, as the
 * evaluator runs it: a prefill in chunks of 256 tokens, then one-token decode steps. Prints the
 * prefill time per token, the decode time per token, and the time of one evaluator window they
 * imply ({@value #CONTEXT} prefill tokens and {@value #STEPS} decode steps; attention over the
 * longer context adds a few percent there).
 *
 * <p>Arguments: {@code shape} ({@code 1b}: Llama 3.2 1B; {@code 0.5b}: Qwen2.5-0.5B's widths in
 * the Llama layout), {@code type} (the weight type, or {@code Q4_K_M} for llama.cpp's mix; rows
 * that are not a multiple of a type's block fall back as llama.cpp's quantizer does), {@code threads}, prefill tokens, decode steps, and
 * the directory of the synthetic files (written once, with 64 distinct rows per matrix).
 */
public final class QuantizedForwardTiming {

    private static final int CONTEXT = 1536;
    private static final int STEPS = 511;

    private QuantizedForwardTiming() {
    }

    /**
     * Runs one timing.
     *
     * @param args shape, type, threads (default 2), prefill tokens (default 1536), decode steps
     *     (default 32), directory (default {@code target/synthetic})
     * @throws IOException if the synthetic file cannot be written or read
     */
    public static void main(String[] args) throws IOException {
        SyntheticLlama.Shape shape = switch (args[0]) {
            case "1b" -> SyntheticLlama.Shape.LLAMA_1B;
            case "0.5b" -> SyntheticLlama.Shape.HALF_B;
            default -> throw new IllegalArgumentException("shape: '" + args[0] + "' is not 1b or 0.5b");
        };
        String type = args[1];
        SyntheticLlama.TypeChoice types = type.equals("Q4_K_M") ? SyntheticLlama.q4KM(shape.layers())
                : SyntheticLlama.withFallback(GgmlType.valueOf(type));
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int prefillTokens = args.length > 3 ? Integer.parseInt(args[3]) : CONTEXT;
        int steps = args.length > 4 ? Integer.parseInt(args[4]) : 32;
        Path dir = Path.of(args.length > 5 ? args[5] : "target/synthetic");
        Files.createDirectories(dir);
        Path file = dir.resolve("synthetic-" + args[0] + "-" + type + ".gguf");
        if (!Files.exists(file)) {
            long t0 = System.nanoTime();
            SyntheticLlama.write(file, shape, types, false, 1, 64);
            System.out.printf("wrote %s (%.2f GB) in %.0f s%n", file, Files.size(file) / 1e9, (System.nanoTime() - t0) / 1e9);
        }
        int[] tokens = new int[prefillTokens + steps];
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(shape.vocab());
        }
        long t0 = System.nanoTime();
        try (GgufFile gguf = GgufFile.open(file); LlamaModel model = LlamaModel.load(gguf, threads)) {
            double load = (System.nanoTime() - t0) / 1e9;
            System.out.printf("%s %s: %.2f B parameters, %.2f GB, loaded in %.2f s, %d threads, heap used %.0f MB%n",
                    args[0], type, shape.parameters() / 1e9, Files.size(file) / 1e9, load, threads,
                    (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / 1e6);
            try (KvCache warm = cache(model, 64)) {
                model.forward(warm, java.util.Arrays.copyOf(tokens, 32), 0, false);
                for (int p = 32; p < 36; p++) {
                    model.forward(warm, tokens[p], p);
                }
            }
            try (KvCache cache = cache(model, tokens.length)) {
                long p0 = System.nanoTime();
                model.forward(cache, java.util.Arrays.copyOf(tokens, prefillTokens), 0, false);
                double prefill = (System.nanoTime() - p0) / 1e9 / prefillTokens;
                long d0 = System.nanoTime();
                for (int p = prefillTokens; p < prefillTokens + steps; p++) {
                    model.forward(cache, tokens[p], p);
                }
                double decode = (System.nanoTime() - d0) / 1e9 / steps;
                System.out.printf("%s %s: prefill %.1f ms/token (%d tokens), decode %.0f ms/token (%d steps from"
                        + " position %d); one window (%d + %d) = %.0f s%n", args[0], type, prefill * 1e3, prefillTokens,
                        decode * 1e3, steps, prefillTokens, CONTEXT, STEPS, prefill * CONTEXT + decode * STEPS);
            }
        }
    }

    private static KvCache cache(LlamaModel model, int capacity) {
        return KvCache.create(model.cacheConfig().capacity(capacity).dtype(DType.F32).policy(Policies.full()).build());
    }
}
