package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The calibration statistics and both plan rules, on a short calibration sequence. */
class SharingCalibrationTest {

    private static GgufFile gguf;
    private static LlamaModel model;
    private static int[] ids;
    private static SharingCalibration cal;

    @BeforeAll
    static void calibrate() throws IOException {
        gguf = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"));
        model = LlamaModel.load(gguf);
        ids = Json.ints(Json.read(SharedFiles.golden("austen-base.persuasion512.json")), "token_ids");
        cal = SharingCalibration.collect(model, Arrays.copyOf(ids, 96));
    }

    @AfterAll
    static void close() {
        model.close();
        gguf.close();
    }

    @Test
    void statisticsAreSymmetricWithUnitDiagonal() {
        assertEquals(8, cal.layers());
        for (int a = 0; a < 8; a++) {
            assertEquals(1.0, cal.similarity(a, a));
            assertEquals(0.0, cal.distance(a, a));
            for (int b = 0; b < 8; b++) {
                assertEquals(cal.similarity(a, b), cal.similarity(b, a));
                assertEquals(cal.distance(a, b), cal.distance(b, a));
                assertTrue(Math.abs(cal.similarity(a, b)) <= 1.0 + 1e-12);
                assertTrue(a == b || cal.distance(a, b) > 0);
            }
        }
    }

    @Test
    void similarityRuleSharesContiguousGroupsOfTheMostSimilarLayers() {
        for (int shared = 0; shared < 8; shared++) {
            SharingPlan p = cal.similarityPlan(shared);
            assertEquals(shared, p.sharedCount(), p.toString());
            assertTrue(p.isSource(0));
            for (int l = 1; l < 8; l++) {
                // A shared layer reads the source of the layer just below it.
                assertTrue(p.isSource(l) || p.sourceOf(l) == p.sourceOf(l - 1), p.toString());
            }
        }
        SharingPlan one = cal.similarityPlan(1);
        int reader = Arrays.stream(new int[] {1, 2, 3, 4, 5, 6, 7}).filter(l -> !one.isSource(l)).findFirst().orElseThrow();
        for (int j = 1; j < 8; j++) {
            assertTrue(cal.similarity(j - 1, j) <= cal.similarity(reader - 1, reader), "layer " + j);
        }
    }

    @Test
    void dissimilarityRuleTakesTheMostDistantPairFirstAndChecksTheOutput() {
        int[] check = Arrays.copyOf(ids, 24);
        List<String> trace = new ArrayList<>();
        SharingPlan any = cal.dissimilarityPlan(model, check, 1, -1.0, trace::add);
        int bestI = 0;
        int bestJ = 1;
        for (int i = 0; i < 8; i++) {
            for (int j = i + 1; j < 8; j++) {
                if (cal.distance(i, j) > cal.distance(bestI, bestJ)) {
                    bestI = i;
                    bestJ = j;
                }
            }
        }
        assertEquals(bestI, any.sourceOf(bestJ), any + " " + trace);
        assertEquals(1, any.sharedCount());
        // An unreachable threshold rejects every candidate; the fallback still shares the count asked.
        trace.clear();
        SharingPlan strict = cal.dissimilarityPlan(model, check, 2, 1.5, trace::add);
        assertEquals(2, strict.sharedCount(), strict.toString());
        assertTrue(trace.stream().anyMatch(s -> s.contains("rejected")), trace.toString());
        for (int l = 0; l < 8; l++) {
            assertTrue(strict.sourceOf(l) <= l, "later layers read earlier ones: " + strict);
        }
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> cal.similarityPlan(8));
        assertThrows(IllegalArgumentException.class, () -> cal.similarityPlan(-1));
        assertThrows(IllegalArgumentException.class, () -> cal.dissimilarityPlan(model, new int[0], 1, 0.9));
        assertThrows(IllegalArgumentException.class, () -> SharingCalibration.collect(model, new int[0]));
    }
}
