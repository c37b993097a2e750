package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Passkey retrieval against NVIDIA kvpress on austen-recall
 * ({@code kvpress-recall-passkey.json}, and the expected-attention and KeyDiff presses of
 * {@code kvpress-recall-extra.json} on the same prompts): the replayed prompts are the golden
 * file's token for token, and each policy's per-prompt correctness agrees with its press's at
 * every ratio. Three
 * prompts spread over the depths by default ({@code -Dkvpress.prompts=50} replays all of them);
 * of {@code k} prompts at most {@code ceil(2k / 50)} may disagree (48 of 50).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KvpressPasskeyAgreementTest {

    private static final int PROMPTS = Integer.getInteger("kvpress.prompts", 3);

    private Map<String, Object> golden;
    private Map<String, Object> extra;
    private GgufFile gguf;
    private LlamaModel model;
    private List<PasskeyTask.Prompt> prompts;
    private int[] checked;
    private final Map<String, boolean[]> ours = new LinkedHashMap<>();

    @BeforeAll
    void load() throws IOException {
        golden = Json.read(SharedFiles.golden("kvpress-recall-passkey.json"));
        extra = Json.read(SharedFiles.golden("kvpress-recall-extra.json"));
        gguf = GgufFile.open(SharedFiles.bundled("austen-recall-f16.gguf"));
        model = LlamaModel.load(gguf, 2);
        Tokenizer tok = Tokenizer.fromGguf(gguf);
        int[] tokens = tok.encode(Evaluator.readText(SharedFiles.bundled("persuasion.txt")), true);
        prompts = ReplayedPasskey.load(SharedFiles.bundled("passkey-prompts.csv"), tok, tokens);
        checked = Evaluator.Samples.spread(prompts.size(), Math.min(PROMPTS, prompts.size()));
        List<KvpressPresses.Entry> entries = entries();
        entries.forEach(e -> ours.put(e.press() + "@" + e.ratio(), new boolean[checked.length]));
        PasskeyTask task = new PasskeyTask(new EvalModel(model, tok, DType.F32, n -> { }));
        for (int i = 0; i < checked.length; i++) {
            List<PasskeyTask.Result> results = task.runAll(prompts.get(checked[i]), KvpressPresses.configs(entries));
            for (int c = 0; c < entries.size(); c++) {
                ours.get(entries.get(c).press() + "@" + entries.get(c).ratio())[i] = results.get(c).correct();
            }
        }
    }

    @AfterAll
    void close() {
        model.close();
        gguf.close();
    }

    @Test
    void replayedPromptsEqualTheGoldenTokenIds() {
        List<?> expected = (List<?>) golden.get("prompts");
        int[] question = Json.ints(Json.object(golden, "protocol"), "question_token_ids");
        assertEquals(expected.size(), prompts.size(), "prompts");
        for (int i = 0; i < prompts.size(); i++) {
            @SuppressWarnings("unchecked")
            Map<String, Object> g = (Map<String, Object>) expected.get(i);
            PasskeyTask.Prompt p = prompts.get(i);
            assertArrayEquals(Json.ints(g, "context_token_ids"), p.context(), "context of prompt " + i);
            assertArrayEquals(Json.ints(g, "answer_token_ids"), p.answer(), "answer of prompt " + i);
            assertArrayEquals(question, p.question(), "question of prompt " + i);
            assertEquals(((Double) g.get("key_sentence_start")).intValue(), p.needleStart(), "key sentence " + i);
        }
    }

    /** The presses of the passkey file, then those of the extra file (same prompts and protocol). */
    private static List<KvpressPresses.Entry> entries() {
        List<KvpressPresses.Entry> entries = new ArrayList<>(KvpressPresses.entries());
        entries.addAll(KvpressPresses.extraEntries());
        return entries;
    }

    Stream<Arguments> pressesAndRatios() {
        return entries().stream().map(e -> Arguments.of(e.press(), e.ratio()));
    }

    /** The golden per-prompt correctness of {@code press} at {@code ratio}, from whichever file has it. */
    private int[] goldenCorrect(String press, double ratio) {
        Map<String, Object> presses = Json.object(golden, "presses");
        String field = "per_prompt_correct";
        if (!presses.containsKey(press)) {
            presses = Json.object(extra, "presses");
            field = "passkey_per_prompt_correct";
        }
        return Json.ints(Json.object(Json.object(Json.object(presses, press), "results"), Double.toString(ratio)), field);
    }

    @ParameterizedTest(name = "{0} at {1}")
    @MethodSource("pressesAndRatios")
    void perPromptCorrectnessAgreesWithKvpress(String press, double ratio) {
        int[] expected = goldenCorrect(press, ratio);
        boolean[] mine = ours.get(press + "@" + ratio);
        int agree = 0;
        int correct = 0;
        int goldenCorrect = 0;
        for (int i = 0; i < checked.length; i++) {
            agree += mine[i] == (expected[checked[i]] == 1) ? 1 : 0;
            correct += mine[i] ? 1 : 0;
            goldenCorrect += expected[checked[i]];
        }
        System.out.printf(Locale.ROOT, "passkey %s %.2f: agreement %d/%d, accuracy ours %.2f kvpress %.2f%n", press,
                ratio, agree, checked.length, (double) correct / checked.length, (double) goldenCorrect / checked.length);
        int allowed = (int) Math.ceil(2.0 * checked.length / 50);
        assertTrue(agree >= checked.length - allowed, press + " at " + ratio + ": " + agree + " of " + checked.length
                + " prompts agree with kvpress, at most " + allowed + " may differ");
    }
}
