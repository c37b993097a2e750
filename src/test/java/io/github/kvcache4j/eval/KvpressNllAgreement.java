package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
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
 * Cross-implementation check: the evaluator's continuation NLL, per window, against NVIDIA
 * kvpress on the same model and windows (a golden file in {@code ../shared/models/golden}).
 * The first {@code defaultWindows} windows by default ({@code -Dkvpress.windows=16} checks all of
 * them). Every
 * configuration of a window shares one model pass over its context ({@link SharedPrefill}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class KvpressNllAgreement {

    /** Largest accepted per-window NLL difference (nats); kvpress vs its reference differ by 9e-5. */
    private static final double TOLERANCE = 0.002;

    private final String goldenFile;
    private final String extraFile;
    private final String modelFile;
    private final int windows;
    private Map<String, Object> golden;
    private Map<String, Object> extra;
    private GgufFile gguf;
    private LlamaModel model;
    private int[] tokens;
    private ContinuationTask task;
    private final Map<String, double[]> ours = new HashMap<>();

    /**
     * Compares the evaluator on the bundled {@code modelFile} with {@code goldenFile}, on
     * {@code defaultWindows} windows unless {@code -Dkvpress.windows} says otherwise; with
     * {@code extraFile} (or null) also the presses of that file ({@link KvpressPresses#extraEntries}),
     * whose protocol is {@code goldenFile}'s.
     */
    KvpressNllAgreement(String goldenFile, String extraFile, String modelFile, int defaultWindows) {
        this.goldenFile = goldenFile;
        this.extraFile = extraFile;
        this.modelFile = modelFile;
        this.windows = Integer.getInteger("kvpress.windows", defaultWindows);
    }

    /** Returns the configurations compared: those of the golden file, then the extra file's. */
    private List<KvpressPresses.Entry> entries() {
        List<KvpressPresses.Entry> entries = new ArrayList<>(KvpressPresses.entries());
        if (extraFile != null) {
            entries.addAll(KvpressPresses.extraEntries());
        }
        return entries;
    }

    @BeforeAll
    void load() throws IOException {
        golden = Json.read(SharedFiles.golden(goldenFile));
        extra = extraFile == null ? Map.of() : Json.read(SharedFiles.golden(extraFile));
        gguf = GgufFile.open(SharedFiles.bundled(modelFile));
        model = LlamaModel.load(gguf, 2);
        Tokenizer tok = Tokenizer.fromGguf(gguf);
        tokens = tok.encode(Evaluator.readText(SharedFiles.bundled("persuasion.txt")), true);
        task = new ContinuationTask(new EvalModel(model, tok, DType.F32, n -> { }));
        List<KvpressPresses.Entry> entries = entries();
        entries.forEach(e -> ours.put(e.policy() + "@" + e.ratio(), new double[windows]));
        for (int w = 0; w < windows; w++) {
            List<ContinuationTask.Result> results = task.runAll(ContinuationTask.window(tokens, 4096, w, ContinuationTask.WINDOW),
                    KvpressPresses.configs(entries), cache -> { });
            for (int i = 0; i < entries.size(); i++) {
                ours.get(entries.get(i).policy() + "@" + entries.get(i).ratio())[w] = results.get(i).meanNll();
            }
        }
    }

    @AfterAll
    void close() {
        model.close();
        gguf.close();
    }

    @Test
    void windowTokenIdsEqualKvpress() {
        List<?> expected = (List<?>) golden.get("window_token_ids");
        int[] starts = Json.ints(Json.object(golden, "protocol"), "window_starts");
        for (int w = 0; w < expected.size(); w++) {
            int[] ids = ((List<?>) expected.get(w)).stream().mapToInt(x -> ((Double) x).intValue()).toArray();
            assertEquals(4096 + w * ContinuationTask.WINDOW, starts[w], "window start " + w);
            assertArrayEquals(ids, ContinuationTask.window(tokens, 4096, w, ContinuationTask.WINDOW), "window " + w);
        }
    }

    @Test
    void fullCacheMatchesKvpressPerWindow() {
        double[] expected = perWindow("no_press", "0.0");
        for (int w = 0; w < windows; w++) {
            assertEquals(expected[w], ours.get(PolicyRegistry.FULL + "@0.0")[w], TOLERANCE, "full cache, window " + w);
        }
    }

    Stream<Arguments> pressesAndRatios() {
        return entries().stream().skip(1).map(e -> Arguments.of(e.policy(), e.press(), e.ratio()));
    }

    @ParameterizedTest(name = "{0} ({1}) at {2}")
    @MethodSource("pressesAndRatios")
    void policyMatchesKvpressPerWindow(String policy, String press, double ratio) {
        double[] expected = perWindow(press, Double.toString(ratio));
        for (int w = 0; w < windows; w++) {
            double nll = ours.get(policy + "@" + ratio)[w];
            System.out.printf(Locale.ROOT, "%s %.2f window %d: ours %.6f kvpress %.6f diff %+.6f%n",
                    policy, ratio, w, nll, expected[w], nll - expected[w]);
            assertEquals(expected[w], nll, TOLERANCE, policy + " at " + ratio + ", window " + w);
        }
    }

    @Test
    void knormKeepsKvpressIndicesAtHalfInWindowZero() {
        Map<String, Object> kept = Json.object(golden, "knorm_kept_indices");
        List<?> indices = (List<?>) kept.get("indices");
        long[] common = new long[2];
        task.run(ContinuationTask.window(tokens, 4096, 0, ContinuationTask.WINDOW), PolicyRegistry.create("knorm"), 0.5, cache -> {
            for (int l = 0; l < indices.size(); l++) {
                List<?> heads = (List<?>) indices.get(l);
                for (int h = 0; h < heads.size(); h++) {
                    int[] expected = ((List<?>) heads.get(h)).stream().mapToInt(x -> ((Double) x).intValue()).toArray();
                    common[0] += overlap(cache, l, h, expected);
                    common[1] += expected.length;
                }
            }
        });
        System.out.printf("knorm ratio 0.5 window 0: %d of %d kept (layer, kv-head, position) entries as kvpress%n",
                common[0], common[1]);
    }

    /** Asserts that at least 99% of the kept positions are kvpress's; returns how many are. */
    private static long overlap(KvCache cache, int layer, int kvHead, int[] expected) {
        int[] ours = cache.positions(layer, kvHead);
        assertEquals(expected.length, ours.length, "kept tokens of " + layer + "/" + kvHead);
        Arrays.sort(ours);
        long common = Arrays.stream(expected).filter(p -> Arrays.binarySearch(ours, p) >= 0).count();
        assertTrue(common >= 0.99 * expected.length, "layer " + layer + " kv-head " + kvHead + ": " + common + " of "
                + expected.length + " kept positions agree with kvpress");
        return common;
    }

    /** The press's per-window NLL from the golden file, or from the extra file if it has the press. */
    private double[] perWindow(String press, String ratio) {
        Map<String, Object> presses = Json.object(golden, "presses");
        if (!presses.containsKey(press)) {
            presses = Json.object(extra, "presses");
        }
        Map<String, Object> results = Json.object(Json.object(presses, press), "results");
        return Json.doubles(Json.object(results, ratio), "per_window_nll");
    }
}
