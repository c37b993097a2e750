package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LayoutFiles;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The evaluator end to end on the synthetic layouts of the model tests (random weights, so only
 * the plumbing is judged, not the quality): a Llama 3 model with the real 128K byte-level BPE
 * vocabulary and a Qwen2 model with biases, windows sized by {@code --window}. The full cache's
 * continuation NLL must be the mean NLL of the window's last quarter computed directly from the
 * model's logits on the same tokens.
 */
class LayoutEvaluatorTest {

    private static final int WINDOW = 256;
    private static final int START = 4096;

    @TempDir
    Path dir;

    @Test
    void evaluatesLlama3LayoutWithItsOwnTokenizer() throws IOException {
        long seed = Seeds.fresh("llama3 layout evaluation");
        evaluate(LayoutFiles.writeLlama3(dir, seed));
    }

    @Test
    void evaluatesQwen2Layout() throws IOException {
        long seed = Seeds.fresh("qwen2 layout evaluation");
        evaluate(LayoutFiles.writeQwen2(dir, seed));
    }

    private void evaluate(Path model) throws IOException {
        Path text = SharedFiles.data("persuasion.txt");
        Path out = dir.resolve("out");
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        int status = Evaluator.run(new String[] {"--model", model.toString(), "--text", text.toString(),
            "--start", Integer.toString(START), "--windows", "1", "--window", Integer.toString(WINDOW),
            "--policies", "knorm", "--ratios", "0.5", "--passkey", "1", "--copy", "1", "--threads", "1",
            "--out", out.toString()},
                new PrintStream(stdout, true, StandardCharsets.UTF_8), new PrintStream(stderr, true, StandardCharsets.UTF_8));
        String printed = stdout.toString(StandardCharsets.UTF_8);
        System.out.print(printed);
        assertEquals(0, status, stderr.toString(StandardCharsets.UTF_8));
        assertTrue(printed.contains("1 windows of " + WINDOW + " from token " + START), printed);
        List<String> windows = Files.readAllLines(out.resolve("windows.csv"));
        assertEquals(3, windows.size(), "header, full, knorm 0.5");
        String[] full = windows.get(1).split(",");
        assertEquals("full", full[0]);
        assertEquals(Integer.toString(START), full[3]);
        double expected = directNll(model, text);
        assertEquals(expected, Double.parseDouble(full[4]), 1e-5 * expected, "full-cache continuation NLL");
        List<String> results = Files.readAllLines(out.resolve("results.csv"));
        int kept = ContinuationTask.kept(ContinuationTask.contextOf(WINDOW), 0.5);
        assertTrue(results.get(2).startsWith("knorm,0.5," + kept + ","), results.get(2));
    }

    /** The mean NLL of the window's continuation under the model, computed without the evaluator. */
    private static double directNll(Path model, Path text) throws IOException {
        try (GgufFile gguf = GgufFile.open(model); LlamaModel m = LlamaModel.load(gguf);
             KvCache cache = KvCache.create(m.cacheConfig().capacity(WINDOW).dtype(DType.F32)
                     .policy(Policies.full()).build())) {
            Tokenizer tok = Tokenizer.fromGguf(gguf);
            int[] tokens = tok.encode(Evaluator.readText(text), true);
            int[] window = Arrays.copyOfRange(tokens, START, START + WINDOW);
            float[] logits = m.forward(cache, window, 0, true);
            int vocab = m.config().vocabSize();
            int context = ContinuationTask.contextOf(WINDOW);
            double sum = 0;
            for (int t = context; t < WINDOW; t++) {
                sum += Scoring.nll(logits, t - 1, vocab, window[t]);
            }
            return sum / (WINDOW - context);
        }
    }
}
