package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.eval.Scoring;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * End-to-end checks of the decoder against the golden files of {@code ../shared/models/golden}.
 *
 * <p>Tolerances: the golden numbers come from an independent float32 implementation on the same
 * weights; the README says independent float32 implementations agree to about 1e-4 nats per
 * token. The mean NLL over 511 tokens is checked to 1e-3 relative, every per-token NLL to 2e-4
 * absolute. Logits have magnitude ~10 and float32 carries ~7 digits, so summation-order
 * differences through 8 blocks stay near 1e-5; the probed logits are checked to 1e-4 absolute
 * (observed: ~1e-5 for both, printed by the tests).
 */
class LlamaModelTest {

    private static GgufFile base;
    private static GgufFile cla;
    private static GgufFile stories;

    @BeforeAll
    static void open() throws IOException {
        base = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"));
        cla = GgufFile.open(SharedFiles.model("austen-cla-f16.gguf"));
        stories = GgufFile.open(SharedFiles.model("stories260K-f32.gguf"));
    }

    @AfterAll
    static void close() {
        base.close();
        cla.close();
        stories.close();
    }

    private static KvCache fullCache(LlamaModel model, int capacity) {
        return KvCache.create(model.cacheConfig().capacity(capacity).dtype(DType.F32)
                .policy(Policies.full()).build());
    }

    @Test
    void greedyDecodingFromBosReproducesStoriesGoldenSample() throws IOException {
        Map<String, Object> golden = Json.read(SharedFiles.golden("stories260K.greedy.json"));
        int[] expected = Json.ints(golden, "token_ids");
        try (LlamaModel model = LlamaModel.load(stories); KvCache cache = fullCache(model, expected.length)) {
            assertEquals(512, model.config().vocabSize());
            int[] ids = new int[expected.length];
            ids[0] = expected[0];
            Sampler greedy = Sampler.greedy();
            for (int pos = 0; pos + 1 < ids.length; pos++) {
                ids[pos + 1] = greedy.sample(model.forward(cache, ids[pos], pos));
            }
            assertArrayEquals(expected, ids);
            Tokenizer tok = Tokenizer.fromGguf(stories);
            assertEquals(Json.string(golden, "text"), tok.decode(ids));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"austen-base", "austen-cla"})
    void tokenByTokenDecodeMatchesGoldenNllAndLogits(String name) throws IOException {
        Map<String, Object> golden = Json.read(SharedFiles.golden(name + ".persuasion512.json"));
        int[] ids = Json.ints(golden, "token_ids");
        int vocab;
        float[] logits;
        try (LlamaModel model = LlamaModel.load(file(name)); KvCache cache = fullCache(model, ids.length)) {
            vocab = model.config().vocabSize();
            logits = new float[ids.length * vocab];
            long t0 = System.nanoTime();
            for (int pos = 0; pos < ids.length; pos++) {
                System.arraycopy(model.forward(cache, ids[pos], pos), 0, logits, pos * vocab, vocab);
            }
            System.out.printf("%s: %d decode steps in %.2f s%n", name, ids.length, (System.nanoTime() - t0) / 1e9);
        }
        checkAgainstGolden(name + " decode", golden, ids, logits, vocab);
    }

    @ParameterizedTest
    @ValueSource(strings = {"austen-base", "austen-cla"})
    void chunkedPrefillMatchesGoldenNllAndLogits(String name) throws IOException {
        Map<String, Object> golden = Json.read(SharedFiles.golden(name + ".persuasion512.json"));
        int[] ids = Json.ints(golden, "token_ids");
        try (LlamaModel model = LlamaModel.load(file(name)); KvCache cache = fullCache(model, ids.length)) {
            long t0 = System.nanoTime();
            // Uneven chunks exercise chunk boundaries, the tile tails and the internal MAX_CHUNK split.
            float[] first = model.forward(cache, Arrays.copyOfRange(ids, 0, 7), 0, true);
            float[] rest = model.forward(cache, Arrays.copyOfRange(ids, 7, ids.length), 7, true);
            System.out.printf("%s: prefill of %d tokens in %.2f s%n", name, ids.length, (System.nanoTime() - t0) / 1e9);
            float[] logits = Arrays.copyOf(first, first.length + rest.length);
            System.arraycopy(rest, 0, logits, first.length, rest.length);
            checkAgainstGolden(name + " prefill", golden, ids, logits, model.config().vocabSize());
        }
    }

    @Test
    void decoderAgreesWithFloat64ReferenceAttention() throws IOException {
        int[] ids = Json.ints(Json.read(SharedFiles.golden("austen-cla.persuasion512.json")), "token_ids");
        int n = 40;
        try (LlamaModel model = LlamaModel.load(cla); KvCache cache = fullCache(model, n)) {
            float[] viaCache = model.forward(cache, Arrays.copyOf(ids, n), 0, true);
            float[] viaReference = model.forward(new ReferenceAttention(model.config()), Arrays.copyOf(ids, n), 0, true);
            double max = 0;
            for (int i = 0; i < viaCache.length; i++) {
                max = Math.max(max, Math.abs(viaCache[i] - viaReference[i]));
            }
            System.out.printf("max |logit(KvCache) - logit(reference)| = %.2e%n", max);
            assertTrue(max < 1e-3, "max logit difference " + max);
        }
    }

    @Test
    void prefillOf1536TokensOfAustenBaseIsFast() throws IOException {
        Tokenizer tok = Tokenizer.fromGguf(base);
        int[] ids = Arrays.copyOf(tok.encode(Files.readString(SharedFiles.data("persuasion.txt")).substring(0, 20000), true), 1536);
        try (LlamaModel model = LlamaModel.load(base)) {
            double best = Double.MAX_VALUE;
            for (int rep = 0; rep < 2; rep++) {
                try (KvCache cache = fullCache(model, ids.length)) {
                    long t0 = System.nanoTime();
                    float[] logits = model.forward(cache, ids, 0, false);
                    best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                    assertEquals(model.config().vocabSize(), logits.length);
                }
            }
            System.out.printf("austen-base: prefill of 1536 tokens in %.2f s (1 thread, best of 2)%n", best);
            assertTrue(best < 20, "prefill took " + best + " s");
        }
    }

    @Test
    void parallelMatmulsGiveTheSameLogits() throws IOException {
        int[] ids = Json.ints(Json.read(SharedFiles.golden("austen-base.persuasion512.json")), "token_ids");
        int n = 64;
        float[] one;
        float[] two;
        try (LlamaModel model = LlamaModel.load(base, 1); KvCache cache = fullCache(model, n)) {
            one = model.forward(cache, Arrays.copyOf(ids, n), 0, true);
        }
        try (LlamaModel model = LlamaModel.load(base, 2); KvCache cache = fullCache(model, n)) {
            assertEquals(2, model.threads());
            two = model.forward(cache, Arrays.copyOf(ids, n), 0, true);
        }
        assertArrayEquals(one, two);
    }

    @Test
    void claModelHasNoKvWeightsInSharedLayers() throws IOException {
        try (LlamaModel model = LlamaModel.load(cla)) {
            LlamaConfig c = model.config();
            assertArrayEquals(new int[] {0, 0, 2, 2, 4, 4, 6, 6}, c.kvSourceLayers());
            assertTrue(c.isKvSource(2));
            assertFalse(c.isKvSource(3));
            assertEquals(64, c.headDim());
            assertEquals(128, c.kvDim());
            assertFalse(model.tiedEmbeddings());
            // A cache whose plan ignores the model's sharing cannot serve it.
            try (KvCache cache = KvCache.create(model.cacheConfig().kvSourceLayers(null).capacity(8)
                    .dtype(DType.F32).policy(Policies.full()).build())) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> model.forward(cache, 1, 0));
                assertTrue(e.getMessage().contains("kvSourceLayers[1]"), e.getMessage());
            }
        }
    }

    @Test
    void lossyCrossLayerSharingOnBaseModelRunsAndCostsQuality() throws IOException {
        int[] ids = Json.ints(Json.read(SharedFiles.golden("austen-base.persuasion512.json")), "token_ids");
        int n = 128;
        try (LlamaModel model = LlamaModel.load(base);
             KvCache full = fullCache(model, n);
             KvCache shared = KvCache.create(model.cacheConfig().kvSourceLayers(new int[] {0, 0, 2, 2, 4, 4, 6, 6})
                     .capacity(n).dtype(DType.F32).policy(Policies.full()).build())) {
            int[] prefix = Arrays.copyOf(ids, n);
            double nllFull = meanNll(model.forward(full, prefix, 0, true), prefix, model.config().vocabSize());
            double nllShared = meanNll(model.forward(shared, prefix, 0, true), prefix, model.config().vocabSize());
            System.out.printf("austen-base first %d tokens: NLL full %.4f, CLA-style sharing %.4f%n", n, nllFull, nllShared);
            assertTrue(nllShared > nllFull);
        }
    }

    @Test
    void rejectsBadArguments() throws IOException {
        try (LlamaModel model = LlamaModel.load(stories); KvCache cache = fullCache(model, 8)) {
            assertThrows(IllegalArgumentException.class, () -> model.forward(cache, 512, 0));
            assertThrows(IllegalArgumentException.class, () -> model.forward(cache, -1, 0));
            assertThrows(IllegalArgumentException.class, () -> model.forward(cache, new int[0], 0, true));
            assertThrows(IllegalArgumentException.class, () -> model.forward(cache, 1, -1));
            assertThrows(IllegalArgumentException.class, () -> LlamaModel.load(stories, 0));
        }
        try (LlamaModel model = LlamaModel.load(base);
             KvCache wrong = KvCache.create(io.github.kvcache4j.KvCacheConfig.builder().layers(5).kvHeads(4)
                     .queryHeads(8).headDim(8).capacity(8).dtype(DType.F32).policy(Policies.full()).build())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.forward(wrong, 1, 0));
            assertTrue(e.getMessage().startsWith("cache:"), e.getMessage());
        }
    }

    private static GgufFile file(String name) {
        return name.equals("austen-base") ? base : cla;
    }

    private static double meanNll(float[] logits, int[] ids, int vocab) {
        double sum = 0;
        for (int pos = 0; pos + 1 < ids.length; pos++) {
            sum += Scoring.nll(logits, pos, vocab, ids[pos + 1]);
        }
        return sum / (ids.length - 1);
    }

    private static void checkAgainstGolden(String what, Map<String, Object> golden, int[] ids, float[] logits, int vocab) {
        double[] perToken = Json.doubles(golden, "per_token_nll");
        double goldenMean = Json.number(golden, "mean_nll");
        double sum = 0;
        double maxTokenDiff = 0;
        for (int pos = 0; pos + 1 < ids.length; pos++) {
            double v = Scoring.nll(logits, pos, vocab, ids[pos + 1]);
            sum += v;
            maxTokenDiff = Math.max(maxTokenDiff, Math.abs(v - perToken[pos]));
        }
        double mean = sum / (ids.length - 1);
        Map<String, Object> probe = Json.object(golden, "logits_probe");
        double maxLogitDiff = 0;
        for (String key : probe.keySet()) {
            int pos = Integer.parseInt(key);
            double[] expected = Json.doubles(probe, key);
            for (int i = 0; i < expected.length; i++) {
                maxLogitDiff = Math.max(maxLogitDiff, Math.abs(logits[pos * vocab + i] - expected[i]));
            }
        }
        System.out.printf("%s: mean NLL %.6f (golden %.6f, diff %.1e), max per-token NLL diff %.1e,"
                + " max probe logit diff %.1e%n", what, mean, goldenMean, mean - goldenMean, maxTokenDiff, maxLogitDiff);
        assertEquals(goldenMean, mean, 1e-3 * goldenMean, what + " mean NLL");
        assertTrue(maxTokenDiff < 2e-4, what + ": per-token NLL differs by " + maxTokenDiff);
        assertTrue(maxLogitDiff < 1e-4, what + ": probe logits differ by " + maxLogitDiff);
    }
}
