package io.github.kvcache4j.sharing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.eval.Scoring;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * LCKV's top-layer mode: a layer that reads a layer above it attends, in forward order, before
 * the source has stored the current token, so it sees exactly the previous tokens (the diagonal
 * is masked); on the first token it sees nothing and its output is zero.
 */
class TopLayerModeTest {

    private static final int KV_HEADS = 2;
    private static final int GROUP = 2;
    private static final int HEAD_DIM = 16;

    @Test
    void layerReadingTopLayerSeesExactlyThePreviousTokens() {
        SplittableRandom r = new SplittableRandom(Seeds.fresh("layerReadingTopLayerSeesExactlyThePreviousTokens"));
        int tokens = 24;
        int row = KV_HEADS * HEAD_DIM;
        int qRow = KV_HEADS * GROUP * HEAD_DIM;
        SharingPlan plan = SharingPlan.parse("2_2_2");
        float[][] keys = new float[KV_HEADS][tokens * HEAD_DIM];
        float[][] values = new float[KV_HEADS][tokens * HEAD_DIM];
        double scale = 1 / Math.sqrt(HEAD_DIM);
        double worst = 0;
        try (KvCache cache = KvCache.create(SharingPlanTest.config(3, tokens, DType.F32).sharing(plan).build())) {
            float[] out = new float[qRow];
            for (int pos = 0; pos < tokens; pos++) {
                for (int layer = 0; layer < 3; layer++) {
                    if (layer == 2) {
                        float[] k = Seeds.uniform(r, row, 1);
                        float[] v = Seeds.uniform(r, row, 1);
                        cache.append(2, pos, k, v);
                        for (int h = 0; h < KV_HEADS; h++) {
                            System.arraycopy(k, h * HEAD_DIM, keys[h], pos * HEAD_DIM, HEAD_DIM);
                            System.arraycopy(v, h * HEAD_DIM, values[h], pos * HEAD_DIM, HEAD_DIM);
                        }
                    }
                    float[] q = Seeds.uniform(r, qRow, 1);
                    cache.attend(layer, pos, q, out);
                    // Layers 0 and 1 attend before layer 2 stored pos: tokens 0..pos-1; layer 2 sees 0..pos.
                    int seen = layer == 2 ? pos + 1 : pos;
                    for (int qh = 0; qh < KV_HEADS * GROUP; qh++) {
                        int h = qh / GROUP;
                        if (seen == 0) {
                            assertArrayEquals(new float[HEAD_DIM],
                                    Arrays.copyOfRange(out, qh * HEAD_DIM, (qh + 1) * HEAD_DIM),
                                    "first token, layer " + layer + ": nothing is visible, output zero");
                            continue;
                        }
                        double[] expected = Reference.attention(q, qh * HEAD_DIM, keys[h], values[h], seen,
                                HEAD_DIM, scale, null);
                        worst = Math.max(worst, Reference.relativeError(out, qh * HEAD_DIM, expected));
                    }
                }
            }
        }
        System.out.printf("top-layer mode: largest relative error against float64 %.2e%n", worst);
        assertTrue(worst < 1e-5, "relative error " + worst);
    }

    @Test
    void decoderRunsTopLayerPlanTokenByTokenAlsoInPrefill() throws IOException {
        int[] ids = Json.ints(Json.read(SharedFiles.golden("austen-base.persuasion512.json")), "token_ids");
        int n = 48;
        SharingPlan lckv = SharingPlan.parse("0_7_7_7_7_7_7_7");
        try (GgufFile gguf = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"));
             LlamaModel model = LlamaModel.load(gguf)) {
            int vocab = model.config().vocabSize();
            float[] prefill;
            float[] decode = new float[n * vocab];
            try (KvCache cache = cache(model, lckv, n)) {
                prefill = model.forward(cache, Arrays.copyOf(ids, n), 0, true);
            }
            try (KvCache cache = cache(model, lckv, n)) {
                for (int pos = 0; pos < n; pos++) {
                    System.arraycopy(model.forward(cache, ids[pos], pos), 0, decode, pos * vocab, vocab);
                }
            }
            // Chunked, the lower layers would miss the chunk's earlier tokens and the logits would
            // differ; the tolerance only absorbs matrix-product summation order.
            double diff = 0;
            for (int i = 0; i < prefill.length; i++) {
                diff = Math.max(diff, Math.abs(prefill[i] - decode[i]));
            }
            assertTrue(diff < 1e-3, "prefill differs from token-by-token decode by " + diff);
            for (float f : prefill) {
                assertTrue(Float.isFinite(f));
            }
            double nll = meanNll(prefill, ids, n, vocab);
            double full;
            try (KvCache cache = cache(model, SharingPlan.identity(8), n)) {
                full = meanNll(model.forward(cache, Arrays.copyOf(ids, n), 0, true), ids, n, vocab);
            }
            System.out.printf("austen-base, first %d tokens: NLL full %.4f, training-free LCKV plan %s %.4f%n",
                    n, full, lckv.toLayerTypes(), nll);
            assertTrue(nll > full, "a model trained without sharing loses quality");
        }
    }

    private static KvCache cache(LlamaModel model, SharingPlan plan, int capacity) {
        return KvCache.create(model.cacheConfig().sharing(plan).capacity(capacity).dtype(DType.F32)
                .policy(Policies.full()).build());
    }

    static double meanNll(float[] logits, int[] ids, int n, int vocab) {
        double sum = 0;
        for (int t = 0; t + 1 < n; t++) {
            sum += Scoring.nll(logits, t, vocab, ids[t + 1]);
        }
        return sum / (n - 1);
    }
}
