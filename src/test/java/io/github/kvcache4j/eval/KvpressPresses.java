package io.github.kvcache4j.eval;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The configurations of kvpress's golden files: the full cache, then five presses at four ratios;
 * and the two presses of the extra file on austen-recall.
 */
final class KvpressPresses {

    /** The compression ratios of the golden files. */
    static final double[] RATIOS = {0.25, 0.5, 0.75, 0.9};

    /**
     * One configuration.
     *
     * @param policy the evaluator's policy name
     * @param press the kvpress press name in the golden files
     * @param ratio the compression ratio (0 for the full cache)
     */
    record Entry(String policy, String press, double ratio) {

        /** Returns the golden file's key of the ratio ({@code "0.0"}, {@code "0.25"}, ...). */
        String ratioKey() {
            return Double.toString(ratio);
        }
    }

    private KvpressPresses() {
    }

    /** Returns the full cache ({@code no_press}) and every press at every ratio. */
    static List<Entry> entries() {
        List<Entry> entries = new ArrayList<>(List.of(new Entry(PolicyRegistry.FULL, "no_press", 0.0)));
        entries.addAll(atEveryRatio(new String[][] {{"knorm", "KnormPress"}, {"streaming_llm", "StreamingLLMPress"},
            {"snapkv", "SnapKVPress"}, {"h2o", "ObservedAttentionPress"}, {"tova", "TOVAPress"}}));
        return entries;
    }

    /** Returns the presses of {@code kvpress-recall-extra.json} at every ratio. */
    static List<Entry> extraEntries() {
        return atEveryRatio(new String[][] {{"expected_attention", "ExpectedAttentionPress"}, {"keydiff", "KeyDiffPress"}});
    }

    private static List<Entry> atEveryRatio(String[][] presses) {
        List<Entry> entries = new ArrayList<>();
        for (String[] p : presses) {
            for (double r : RATIOS) {
                entries.add(new Entry(p[0], p[1], r));
            }
        }
        return entries;
    }

    /**
     * Returns the evaluator configurations of {@code entries}, in order; the entries of one policy
     * share one recipe, so the evaluator prefills it once and forks it per ratio, as the main job
     * does.
     */
    static List<SharedPrefill.Config> configs(List<Entry> entries) {
        Map<String, CacheRecipe> recipes = new HashMap<>();
        return entries.stream()
                .map(e -> new SharedPrefill.Config(recipes.computeIfAbsent(e.policy(), PolicyRegistry::create), e.ratio()))
                .toList();
    }
}
