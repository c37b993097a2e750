package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/** How the passkey and copy prompts are built and scored, on the bundled model and text. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PromptsTest {

    private GgufFile gguf;
    private Tokenizer tok;
    private int[] tokens;

    @BeforeAll
    void load() throws IOException {
        gguf = GgufFile.open(SharedFiles.bundled("austen-base-f16.gguf"));
        tok = Tokenizer.fromGguf(gguf);
        tokens = tok.encode(Evaluator.readText(SharedFiles.bundled("persuasion.txt")), true);
    }

    @AfterAll
    void close() {
        gguf.close();
    }

    private int[] filler(int from, int length) {
        while (!tok.piece(tokens[from]).startsWith("\u2581")) {
            from++;
        }
        return Arrays.copyOfRange(tokens, from, from + length);
    }

    @Test
    void passkeyNeedleLandsAtRequestedDepthAndTokenizesAsExpected() {
        int[] filler = filler(70_000, 2100);
        int[] needle = tok.encode(PasskeyTask.needle("40729"), false);
        for (double depth : new double[] {0.0, 0.1, 0.5, 0.9, 1.0}) {
            PasskeyTask.Prompt p = PasskeyTask.build(tok, filler, 1984, depth, "40729");
            assertEquals(1984, p.context().length);
            assertEquals(tok.bos(), p.context()[0]);
            // Depth 1 puts the needle at the very end: it starts needle.length tokens before it.
            assertEquals(Math.min(depth, 1 - (double) needle.length / 1984), p.depth(), 0.01, "needle depth");
            assertArrayEquals(needle, Arrays.copyOfRange(p.context(), p.needleStart(), p.needleStart() + needle.length));
            // The needle is spliced in at a word start, so the whole context reads as text.
            String text = tok.decode(p.context());
            assertTrue(text.contains("The pass key is 40729. Remember it. 40729 is the pass key."), text);
            assertEquals(2, p.keyPositions().length, "two occurrences of the key");
            for (int[] run : p.keyPositions()) {
                StringBuilder digits = new StringBuilder();
                for (int pos : run) {
                    digits.append(tok.piece(p.context()[pos]).replace("\u2581", ""));
                }
                assertEquals("40729", digits.toString(), "the key's digit tokens");
            }
            assertEquals("40729", tok.decode(p.answer()));
            assertEquals(5, p.answer().length, "one token per digit");
            assertEquals(PasskeyTask.QUESTION + " ", tok.decode(p.question()), "the question ends in the key's space");
            // Filler after the needle continues where the filler before it stopped.
            int split = p.needleStart() - 1;
            assertArrayEquals(Arrays.copyOfRange(filler, 0, 1984 - 1 - needle.length),
                    concat(Arrays.copyOfRange(p.context(), 1, 1 + split),
                            Arrays.copyOfRange(p.context(), p.needleStart() + needle.length, 1984)));
        }
    }

    @Test
    void passkeyRejectsBadKeysAndDepths() {
        int[] filler = filler(70_000, 2100);
        assertThrows(IllegalArgumentException.class, () -> PasskeyTask.build(tok, filler, 1984, 0.5, "1234"));
        assertThrows(IllegalArgumentException.class, () -> PasskeyTask.build(tok, filler, 1984, 1.5, "12345"));
        assertThrows(IllegalArgumentException.class, () -> PasskeyTask.build(tok, filler, 4000, 0.5, "12345"));
    }

    @Test
    void passkeyKeyResidencyCountsBuffersHoldingAWholeOccurrence() throws IOException {
        try (LlamaModel model = LlamaModel.load(gguf, 1);
             KvCache cache = KvCache.create(model.cacheConfig().capacity(16).policy(Policies.full()).build())) {
            float[] kv = new float[model.config().kvDim()];
            for (int l = 0; l < model.config().layers(); l++) {
                for (int pos = 0; pos < 10; pos++) {
                    // Layer 0 misses position 3, so it keeps only the second occurrence {6, 7}.
                    if (l != 0 || pos != 3) {
                        cache.append(l, pos, kv, kv);
                    }
                }
            }
            assertEquals(1.0, PasskeyTask.keyResident(cache, new int[][] {{2, 3}, {6, 7}}));
            assertEquals(1.0 - 2.0 / 16, PasskeyTask.keyResident(cache, new int[][] {{2, 3}}));
            assertEquals(0.0, PasskeyTask.keyResident(cache, new int[][] {{12}}));
        }
    }

    @Test
    void passkeyScoresExactMatchOfTheDecodedKey() throws IOException {
        try (LlamaModel model = LlamaModel.load(gguf, 2)) {
            PasskeyTask task = new PasskeyTask(new EvalModel(model, tok, DType.F32, n -> { }, ContinuationTask.WINDOW));
            // A short context keeps the test fast; the needle sits in the middle.
            PasskeyTask.Prompt p = PasskeyTask.build(tok, filler(70_000, 300), 256, 0.5, "40729");
            PasskeyTask.Result r = task.run(p, CacheRecipe.of(Policies.full()), 0);
            assertEquals(1.0, r.keyResident(), "the full cache keeps the key");
            assertEquals(java.util.Arrays.equals(r.generated(), p.answer()), r.correct(), "exact match of '" + r.answer() + "'");
            assertEquals(r.answer().equals("40729"), r.correct(), "the digits decode to the key");
            PasskeyTask.Result knorm = task.run(p, CacheRecipe.of(Policies.knorm()), 0.9);
            assertTrue(knorm.keyResident() >= 0 && knorm.keyResident() <= 1);
        }
    }

    @Test
    void copySpanIsRepeatedFromEarlyInTheContext() {
        int[] text = filler(80_000, 1600);
        CopyTask.Prompt p = CopyTask.build(text, tok.bos(), 1536, 64, 64);
        assertEquals(1536, p.context().length);
        assertEquals(tok.bos(), p.context()[0]);
        assertArrayEquals(Arrays.copyOfRange(text, 63, 127), p.span());
        assertArrayEquals(p.span(), Arrays.copyOfRange(p.context(), 64, 128));
        assertThrows(IllegalArgumentException.class, () -> CopyTask.build(text, tok.bos(), 1536, 1500, 64));
        assertThrows(IllegalArgumentException.class, () -> CopyTask.build(text, tok.bos(), 1536, 0, 64));
    }

    @Test
    void copyScoresTheRepeatLikeOneFullCachePassAndSeesWhatWasEvicted() throws IOException {
        try (LlamaModel model = LlamaModel.load(gguf, 2)) {
            CopyTask task = new CopyTask(new EvalModel(model, tok, DType.F32, n -> { }, ContinuationTask.WINDOW));
            CopyTask.Prompt p = CopyTask.build(filler(80_000, 400), tok.bos(), 256, 8, 32);
            CopyTask.Result full = task.run(p, CacheRecipe.of(Policies.full()), 0);
            assertEquals(1.0, full.spanResident());
            assertEquals(31, full.tokens(), "repeat tokens fed after the prefill");
            int[] sequence = concat(p.context(), p.span());
            double sum = 0;
            int hits = 0;
            try (KvCache cache = KvCache.create(model.cacheConfig().capacity(sequence.length).build())) {
                float[] logits = model.forward(cache, sequence, 0, true);
                int vocab = model.config().vocabSize();
                for (int i = 256; i + 1 < sequence.length; i++) {
                    sum += Scoring.nll(logits, i, vocab, sequence[i + 1]);
                    hits += Scoring.argmax(logits, i, vocab) == sequence[i + 1] ? 1 : 0;
                }
            }
            assertEquals(sum / 31, full.meanNll(), 1e-4, "mean NLL of repeat tokens 1..31");
            assertEquals(hits / 31.0, full.top1(), 1e-9);
            // StreamingLLM at 0.9 keeps 4 sinks and the newest 21 tokens: none of the span.
            CopyTask.Result streaming = task.run(p, CacheRecipe.of(Policies.streamingLlm()), 0.9);
            assertEquals(0.0, streaming.spanResident());
        }
    }

    @Test
    void samplesSpreadTheReplayedPromptsAndTakeCopiesFromTheSecondHalf() throws IOException {
        List<PasskeyTask.Prompt> replayed = ReplayedPasskey.load(SharedFiles.bundled("passkey-prompts.csv"), tok, tokens);
        Evaluator.Samples s = Evaluator.Samples.of(tok, tokens, replayed, 3, 2, ContinuationTask.WINDOW);
        assertEquals(List.of(replayed.get(0), replayed.get(25), replayed.get(49)), s.passkey());
        assertEquals(2, s.copy().size());
        int[] firstCopy = Arrays.copyOfRange(s.copy().get(0).context(), 1, 65);
        int at = tokens.length / 2;
        while (!tok.piece(tokens[at]).startsWith("\u2581")) {
            at++;
        }
        assertArrayEquals(Arrays.copyOfRange(tokens, at, at + 64), firstCopy, "the first copy context starts mid-text");
        assertArrayEquals(new int[] {0, 12, 25, 37, 49}, Evaluator.Samples.spread(50, 5));
        assertThrows(IllegalArgumentException.class,
                () -> Evaluator.Samples.of(tok, tokens, replayed, 51, 0, ContinuationTask.WINDOW));
    }

    @Test
    void samplesBuiltForAShortWindowComeFromTheSecondHalfOfTheText() {
        int window = 1024;
        Evaluator.Samples s = Evaluator.Samples.of(tok, tokens, null, 3, 2, window);
        assertEquals(3, s.passkey().size());
        assertEquals(2, s.copy().size());
        assertTrue(s.passkey().stream().allMatch(p -> p.context().length == window - Evaluator.PASSKEY_ROOM));
        assertTrue(s.copy().stream().allMatch(p -> p.context().length == ContinuationTask.contextOf(window)));
        List<Double> depths = s.passkey().stream().map(PasskeyTask.Prompt::depth).toList();
        assertEquals(1.0 / 6, depths.get(0), 0.01);
        assertEquals(0.5, depths.get(1), 0.01);
        assertEquals(5.0 / 6, depths.get(2), 0.01);
        assertTrue(s.passkey().stream().map(PasskeyTask.Prompt::key).distinct().count() == 3, "distinct keys");
        assertThrows(IllegalArgumentException.class, () -> Evaluator.Samples.of(tok, tokens, null, 100, 0, window));
    }

    @Test
    void replayedPromptsRejectBadLinesNamingTheField() {
        IllegalArgumentException key = assertThrows(IllegalArgumentException.class,
                () -> ReplayedPasskey.build(tok, tokens, 1234, 1000, 10));
        assertEquals("key: 1234 is outside [10000, 99999]", key.getMessage());
        IllegalArgumentException start = assertThrows(IllegalArgumentException.class,
                () -> ReplayedPasskey.build(tok, tokens, 12345, tokens.length - 100, 10));
        assertTrue(start.getMessage().startsWith("filler_start: " + (tokens.length - 100) + " is outside [1, "),
                start.getMessage());
        IllegalArgumentException split = assertThrows(IllegalArgumentException.class,
                () -> ReplayedPasskey.build(tok, tokens, 12345, 1000, 0));
        assertEquals("key_sentence_start: 0 is outside [1, 1971]", split.getMessage());
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
