package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * One shared prefill gives every configuration exactly what its own prefill gives: the same kept
 * positions, the same logits and the same answers, for policies that observe every query (h2o),
 * only the last ones (snapkv, tova), none (knorm), and one that evicts during the prefill (corm).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SharedPrefillTest {

    private static final String[] POLICIES = {"full", "knorm", "snapkv", "tova", "h2o", "corm", "h2o+less_learned"};

    private GgufFile gguf;
    private LlamaModel model;
    private EvalModel eval;
    private int[] tokens;

    @BeforeAll
    void load() throws IOException {
        gguf = GgufFile.open(SharedFiles.bundled("austen-recall-f16.gguf"));
        model = LlamaModel.load(gguf, 2);
        Tokenizer tok = Tokenizer.fromGguf(gguf);
        tokens = tok.encode(Evaluator.readText(SharedFiles.bundled("persuasion.txt")), true);
        eval = new EvalModel(model, tok, DType.F32, n -> { }, FeatureMap.load(SharedFiles.bundled("austen-recall-less.bin")));
    }

    @AfterAll
    void close() {
        model.close();
        gguf.close();
    }

    private static List<SharedPrefill.Config> configs(double ratio) {
        List<SharedPrefill.Config> configs = new ArrayList<>();
        for (String p : POLICIES) {
            configs.add(new SharedPrefill.Config(PolicyRegistry.create(p), p.equals("full") ? 0 : ratio));
        }
        return configs;
    }

    @Test
    void sharedPrefillKeepsWhatEachOwnPrefillKeeps() {
        assertSharedEqualsOwn(configs(0.75));
    }

    @Test
    void aFirstCacheThatEvictsDoesNotDriveTheOthers() {
        List<SharedPrefill.Config> configs = new ArrayList<>(configs(0.5));
        // CORM drops keys during the prefill; first in the group, its attention would feed the model.
        configs.addFirst(configs.remove(List.of(POLICIES).indexOf("corm")));
        assertSharedEqualsOwn(configs);
    }

    @Test
    void oneRecipeAtSeveralRatiosIsPrefilledOnceAndForked() {
        List<SharedPrefill.Config> configs = atThreeRatios("h2o", "snapkv", "corm", "h2o+less_learned");
        assertSharedEqualsOwn(configs);
        // A sharing plan is prefilled on its own path and forked the same way; its forks are
        // checked against saved copies in SessionForkTest. Here only its prefill is counted:
        // comparing its logits bit for bit with a later prefill of its own is at the mercy of
        // the JIT compiling its cross-layer path in between.
        configs.addAll(atThreeRatios("share2"));
        // Corm (it evicts while prefilling) and share2 (cross-layer sharing) are prefilled on their
        // own: once per recipe, not once per ratio; the rest share one pass.
        long[] fed = new long[1];
        EvalModel counting = new EvalModel(model, eval.tokenizer(), DType.F32, false, n -> fed[0] += n,
                eval.learnedLess(), eval.window(), null);
        int[] context = Arrays.copyOfRange(tokens, 20_000, 20_300);
        SharedPrefill prefill = new SharedPrefill(counting);
        prefill.run(configs, context, 320).forEach(p -> p.cache().close());
        prefill.run(configs, context, 320).forEach(p -> p.cache().close());
        assertEquals(2L * 3 * context.length, fed[0], "per run: one shared pass, corm alone, share2 alone");
    }

    /** One recipe per policy, each at ratios 0.25, 0.5 and 0.9. */
    private static List<SharedPrefill.Config> atThreeRatios(String... policies) {
        List<SharedPrefill.Config> configs = new ArrayList<>();
        for (String p : policies) {
            CacheRecipe recipe = PolicyRegistry.create(p);
            for (double ratio : new double[] {0.25, 0.5, 0.9}) {
                configs.add(new SharedPrefill.Config(recipe, ratio));
            }
        }
        return configs;
    }

    @Test
    void budgetsSharedAmongHeadsKeepTheUniformTotal() {
        double[] ranking = NeedleHeads.rank(eval, tokens, 2, 512);
        int buffers = model.config().layers() * model.config().kvHeads();
        assertEquals(buffers, ranking.length);
        double mean = Arrays.stream(ranking).average().orElseThrow();
        double top = Arrays.stream(ranking).max().orElseThrow();
        for (double s : ranking) {
            assertTrue(s >= 0 && s <= 1, "a needle's share of the attention is a probability: " + Arrays.toString(ranking));
        }
        assertTrue(top > 2 * mean, "the retrieval model has heads that look at the needle: " + Arrays.toString(ranking));
        EvalModel ranked = new EvalModel(model, eval.tokenizer(), DType.F32, false, n -> { }, null, eval.window(), ranking);
        int[] context = Arrays.copyOfRange(tokens, 20_000, 20_300);
        context[0] = eval.tokenizer().bos();
        List<SharedPrefill.Config> configs = new ArrayList<>();
        for (String p : new String[] {"snapkv", "adakv_snapkv", "pyramidkv_snapkv", PolicyRegistry.DUO_SPLIT}) {
            configs.add(new SharedPrefill.Config(PolicyRegistry.create(p), 0.5));
        }
        List<SharedPrefill.Prefilled> caches = new SharedPrefill(ranked).run(configs, context, 320);
        try {
            long uniform = (long) buffers * ContinuationTask.kept(context.length, 0.5);
            for (int i = 0; i < caches.size(); i++) {
                CacheStats s = caches.get(i).cache().stats();
                assertEquals(uniform, s.totalResident(), configs.get(i).recipe() + " keeps the uniform total");
                long distinct = Arrays.stream(s.resident()).flatMapToInt(Arrays::stream).distinct().count();
                assertTrue(i == 0 ? distinct == 1 : distinct > 1, configs.get(i).recipe() + ": " + s);
            }
            int[][] duo = caches.get(3).cache().stats().resident();
            int best = 0;
            for (int b = 1; b < buffers; b++) {
                best = ranking[b] > ranking[best] ? b : best;
            }
            assertEquals(context.length, duo[best / model.config().kvHeads()][best % model.config().kvHeads()],
                    "the best-ranked head is a retrieval head");
        } finally {
            caches.forEach(p -> p.cache().close());
        }
    }

    private void assertSharedEqualsOwn(List<SharedPrefill.Config> configs) {
        int[] context = Arrays.copyOfRange(tokens, 20_000, 20_300);
        context[0] = eval.tokenizer().bos();
        // The Vector API kernels round the last bit differently before and after the JIT compiles
        // them, so one unchecked pass first: then shared and own prefills must agree bit for bit.
        new SharedPrefill(eval).run(configs, context, 320).forEach(p -> p.cache().close());
        List<SharedPrefill.Prefilled> shared = new SharedPrefill(eval).run(configs, context, 320);
        try {
            for (int i = 0; i < configs.size(); i++) {
                List<SharedPrefill.Prefilled> own = new SharedPrefill(eval).run(List.of(configs.get(i)), context, 320);

                try {
                    KvCache a = shared.get(i).cache();
                    KvCache b = own.getFirst().cache();
                    for (int l = 0; l < model.config().layers(); l++) {
                        for (int h = 0; h < model.config().kvHeads(); h++) {
                            int[] pa = a.positions(l, h);
                            int[] pb = b.positions(l, h);
                            Arrays.sort(pa);
                            Arrays.sort(pb);
                            assertArrayEquals(pb, pa, name(configs, i) + " layer " + l + " kv-head " + h);
                        }
                    }
                    assertArrayEquals(own.getFirst().lastLogits(), shared.get(i).lastLogits(), name(configs, i));
                    int[] next = {context[299]};
                    assertArrayEquals(model.forward(b, next, 300, false), model.forward(a, next, 300, false),
                            name(configs, i) + ": logits after compression");
                } finally {
                    own.forEach(p -> p.cache().close());
                }
            }
        } finally {
            shared.forEach(p -> p.cache().close());
        }
    }

    private static String name(List<SharedPrefill.Config> configs, int i) {
        return configs.get(i).recipe().policy().name() + " " + configs.get(i).recipe().less();
    }

    @Test
    void lockstepRejectsMismatchedArguments() {
        try (KvCache cache = eval.newCache(PolicyRegistry.create("full"), 16)) {
            IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                    () -> new LockstepCache(List.of(), new int[0]));
            assertEquals("caches: empty list, need at least one cache", empty.getMessage());
            IllegalArgumentException from = assertThrows(IllegalArgumentException.class,
                    () -> new LockstepCache(List.of(cache), new int[2]));
            assertEquals("observeFrom: 2 entries for 1 caches", from.getMessage());
        }
    }
}
