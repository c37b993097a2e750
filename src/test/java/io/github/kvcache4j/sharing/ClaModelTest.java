package io.github.kvcache4j.sharing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaConfig;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The model trained with cross-layer attention, run with its own plan read from the GGUF file,
 * gives exactly its reference quality with half the KV memory of the model without sharing.
 */
class ClaModelTest {

    @Test
    void claModelWithItsPlanMatchesGoldenNllWithHalfTheKvBytes() throws IOException {
        Map<String, Object> golden = Json.read(SharedFiles.golden("austen-cla.persuasion512.json"));
        int[] ids = Json.ints(golden, "token_ids");
        double expected = Json.number(golden, "mean_nll");
        int n = ids.length;
        CacheStats claStats;
        CacheStats baseStats;
        double nll;
        try (GgufFile gguf = GgufFile.open(SharedFiles.model("austen-cla-f16.gguf"));
             LlamaModel model = LlamaModel.load(gguf)) {
            SharingPlan plan = LlamaConfig.fromGguf(gguf).sharingPlan();
            assertEquals(SharingPlan.parse("0_0_2_2_4_4_6_6"), plan);
            try (KvCache cache = KvCache.create(model.cacheConfig().sharing(plan).capacity(n)
                    .dtype(DType.F32).policy(Policies.full()).build())) {
                nll = TopLayerModeTest.meanNll(model.forward(cache, ids, 0, true), ids, n, model.config().vocabSize());
                claStats = cache.stats();
            }
        }
        try (GgufFile gguf = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"));
             LlamaModel model = LlamaModel.load(gguf);
             KvCache cache = KvCache.create(model.cacheConfig().sharing(LlamaConfig.fromGguf(gguf).sharingPlan()).capacity(n)
                     .dtype(DType.F32).policy(Policies.full()).build())) {
            model.forward(cache, ids, 0, false);
            baseStats = cache.stats();
        }
        System.out.printf("austen-cla with plan: mean NLL %.6f (golden %.6f); KV bytes resident %d vs base %d, "
                + "reserved %d vs %d%n", nll, expected, claStats.residentBytes(), baseStats.residentBytes(),
                claStats.reservedBytes(), baseStats.reservedBytes());
        assertEquals(expected, nll, 1e-3 * expected);
        assertTrue(claStats.residentBytes() > 0);
        assertEquals(baseStats.residentBytes(), 2 * claStats.residentBytes());
        assertEquals(baseStats.reservedBytes(), 2 * claStats.reservedBytes());
        assertEquals(baseStats.totalResident(), claStats.totalResident(), "every layer still sees every token");
    }
}
