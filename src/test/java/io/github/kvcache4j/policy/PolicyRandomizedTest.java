package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.policy.RecordingPolicy.Reference;
import io.github.kvcache4j.policy.RecordingPolicy.Report;
import io.github.kvcache4j.policy.RecordingPolicy.View;
import io.github.kvcache4j.testutil.Seeds;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Random sequences through a real {@link KvCache}: decode steps, chunks and compressions, with
 * GQA groups 1, 2 and 4 and one or two layers and kv-heads. Every victim list a policy names is
 * checked against a float64 reference that recomputes the scores from the recorded attention and
 * fully sorts them ({@link RecordingPolicy}); the resident set never exceeds the capacity.
 */
class PolicyRandomizedTest {

    private static final int SEQUENCES = 200;
    private static final double TOLERANCE = 1e-5;

    private record Setup(EvictionPolicy policy, Reference reference) {
    }

    @Test
    void knormVictimsMatchFullSortOfNorms() {
        run("knormVictimsMatchFullSortOfNorms", r -> {
            int pruneAfter = r.nextInt(3) == 0 ? r.nextInt(12) : 0;
            int[] skip = r.nextBoolean() ? new int[] {0} : new int[0];
            Set<Integer> skipped = new HashSet<>();
            for (int l : skip) {
                skipped.add(l);
            }
            return new Setup(new KnormPolicy(pruneAfter, skip), (view, count, compress) -> {
                if (compress && (skipped.contains(view.layer()) || view.positions().size() < pruneAfter)) {
                    return null;
                }
                Map<Integer, Double> s = new HashMap<>();
                for (int p : view.positions()) {
                    s.put(p, -view.norms().get(p));
                }
                return s;
            });
        });
    }

    @Test
    void h2oVictimsMatchFullSortOfAccumulatedAttention() {
        run("h2oVictimsMatchFullSortOfAccumulatedAttention", r -> {
            double fraction = r.nextInt(4) == 0 ? r.nextDouble() * 0.9 : 0.5;
            return new Setup(new H2oPolicy(fraction, false), new Reference() {
                @Override
                public Map<Integer, Double> scores(View view, int count, boolean compress) {
                    return accumulated(view, false);
                }

                @Override
                public Set<Integer> protectedPositions(View view, int count, boolean compress) {
                    int kept = Math.max(0, view.positions().size() - count);
                    return RecordingPolicy.newest(view.positions(), (int) Math.floor(fraction * kept));
                }
            });
        });
    }

    @Test
    void observedAttentionVictimsMatchFullSortOfMeanAttention() {
        run("observedAttentionVictimsMatchFullSortOfMeanAttention",
                r -> new Setup(new H2oPolicy(0.0, true), (view, count, compress) -> accumulated(view, true)));
    }

    @Test
    void tovaVictimsMatchFullSortOfLastQueryAttention() {
        run("tovaVictimsMatchFullSortOfLastQueryAttention", r -> new Setup(new TovaPolicy(), new Reference() {
            @Override
            public Map<Integer, Double> scores(View view, int count, boolean compress) {
                List<Report> all = view.all().layerReports(view.layer());
                int latest = Integer.MIN_VALUE;
                for (Report rep : all) {
                    latest = Math.max(latest, rep.queryPosition());
                }
                Map<Integer, Double> s = new HashMap<>();
                int rows = 0;
                for (Report rep : all) {
                    if (rep.queryPosition() == latest) {
                        rows += view.group();
                    }
                }
                for (int p : view.positions()) {
                    double sum = 0.0;
                    for (Report rep : all) {
                        double[] w = rep.weights().get(p);
                        if (rep.queryPosition() == latest && w != null) {
                            for (double x : w) {
                                sum += x;
                            }
                        }
                    }
                    s.put(p, rows == 0 ? 0.0 : sum / rows);
                }
                return s;
            }

            @Override
            public Set<Integer> protectedPositions(View view, int count, boolean compress) {
                return RecordingPolicy.newest(view.positions(), 1);
            }
        }));
    }

    @Test
    void snapKvVictimsMatchFullSortOfPooledWindowAttention() {
        run("snapKvVictimsMatchFullSortOfPooledWindowAttention", r -> {
            int window = 1 + r.nextInt(6);
            int kernel = 1 + 2 * r.nextInt(3);
            return new Setup(new SnapKvPolicy(window, kernel), new Reference() {
                @Override
                public Map<Integer, Double> scores(View view, int count, boolean compress) {
                    int latest = Integer.MIN_VALUE;
                    for (Report rep : view.reports()) {
                        latest = Math.max(latest, rep.queryPosition());
                    }
                    List<Report> rows = new ArrayList<>();
                    for (Report rep : view.reports()) {
                        if (rep.queryPosition() > latest - window) {
                            rows.add(rep);
                        }
                    }
                    Set<Integer> prot = protectedPositions(view, count, compress);
                    List<Integer> prefix = new ArrayList<>();
                    for (int p : view.positions()) {
                        if (!prot.contains(p)) {
                            prefix.add(p);
                        }
                    }
                    prefix.sort(null);
                    double[] mean = new double[prefix.size()];
                    double norm = rows.isEmpty() ? 1.0 : (double) rows.size() * view.group();
                    for (int i = 0; i < mean.length; i++) {
                        double sum = 0.0;
                        for (Report rep : rows) {
                            double[] w = rep.weights().get(prefix.get(i));
                            if (w != null) {
                                for (double x : w) {
                                    sum += x;
                                }
                            }
                        }
                        mean[i] = sum / norm;
                    }
                    Map<Integer, Double> s = new HashMap<>();
                    for (int i = 0; i < mean.length; i++) {
                        double pooled = 0.0;
                        for (int d = -kernel / 2; d <= kernel / 2; d++) {
                            if (i + d >= 0 && i + d < mean.length) {
                                pooled += mean[i + d];
                            }
                        }
                        s.put(prefix.get(i), pooled / kernel);
                    }
                    for (int p : prot) {
                        s.put(p, Double.POSITIVE_INFINITY);
                    }
                    return s;
                }

                @Override
                public Set<Integer> protectedPositions(View view, int count, boolean compress) {
                    return RecordingPolicy.newest(view.positions(), window);
                }
            });
        });
    }

    @Test
    void cormVoluntaryAndCapacityVictimsMatchRecomputedMasks() {
        run("cormVoluntaryAndCapacityVictimsMatchRecomputedMasks", r -> {
            int w = 1 + r.nextInt(8);
            int recent = r.nextInt(6);
            double alpha = r.nextInt(3) == 0 ? 0.5 + r.nextDouble() * 2 : 1.0;
            return new Setup(new CormPolicy(w, recent, alpha, true), new Reference() {
                @Override
                public Map<Integer, Double> scores(View view, int count, boolean compress) {
                    Map<Integer, Double> s = new HashMap<>();
                    for (int p : view.positions()) {
                        List<Double> maxima = maxima(view, p);
                        double m = 0.0;
                        for (int i = Math.max(0, maxima.size() - w); i < maxima.size(); i++) {
                            m = Math.max(m, maxima.get(i));
                        }
                        s.put(p, m);
                    }
                    return s;
                }

                @Override
                public Set<Integer> protectedPositions(View view, int count, boolean compress) {
                    return RecordingPolicy.newest(view.positions(), recent);
                }

                @Override
                public Set<Integer> voluntary(View view) {
                    Set<Integer> prot = RecordingPolicy.newest(view.positions(), recent);
                    Set<Integer> out = new HashSet<>();
                    for (int p : view.positions()) {
                        if (prot.contains(p)) {
                            continue;
                        }
                        List<Report> saw = new ArrayList<>();
                        for (Report rep : view.reports()) {
                            if (rep.weights().containsKey(p)) {
                                saw.add(rep);
                            }
                        }
                        if (saw.size() < w) {
                            continue;
                        }
                        boolean important = false;
                        for (Report rep : saw.subList(saw.size() - w, saw.size())) {
                            for (double x : rep.weights().get(p)) {
                                important |= x >= alpha / rep.visible();
                            }
                        }
                        if (!important) {
                            out.add(p);
                        }
                    }
                    return out;
                }
            });
        });
    }

    /** The maximum over the group of each recorded query that saw {@code p}, oldest first. */
    private static List<Double> maxima(View view, int p) {
        List<Double> out = new ArrayList<>();
        for (Report rep : view.reports()) {
            double[] w = rep.weights().get(p);
            if (w != null) {
                double m = Double.NEGATIVE_INFINITY;
                for (double x : w) {
                    m = Math.max(m, x);
                }
                out.add(m);
            }
        }
        return out;
    }

    private static Map<Integer, Double> accumulated(View view, boolean perQuery) {
        Map<Integer, Double> s = new HashMap<>();
        for (int p : view.positions()) {
            double sum = 0.0;
            int n = 0;
            for (Report rep : view.reports()) {
                double[] w = rep.weights().get(p);
                if (w != null) {
                    double g = 0.0;
                    for (double x : w) {
                        g += x;
                    }
                    sum += g / w.length;
                    n++;
                }
            }
            s.put(p, perQuery ? (n == 0 ? 0.0 : sum / n) : sum);
        }
        return s;
    }

    private static void run(String test, Function<SplittableRandom, Setup> setups) {
        long seed = Seeds.fresh(test);
        SplittableRandom random = new SplittableRandom(seed);
        long decisions = 0;
        long victims = 0;
        long keepScores = 0;
        for (int sequence = 0; sequence < SEQUENCES; sequence++) {
            String context = test + " seed=" + seed + " sequence=" + sequence;
            Setup setup = setups.apply(random);
            RecordingPolicy rec = new RecordingPolicy(setup.policy(), setup.reference(), context, TOLERANCE);
            int layers = 1 + random.nextInt(2);
            int kvHeads = 1 + random.nextInt(2);
            int group = new int[] {1, 2, 4}[random.nextInt(3)];
            int headDim = random.nextBoolean() ? 4 : 8;
            int capacity = rec.protectedTokens() + 4 + random.nextInt(12);
            KvCacheConfig config = KvCacheConfig.builder().layers(layers).kvHeads(kvHeads)
                    .queryHeads(kvHeads * group).headDim(headDim).capacity(capacity).policy(rec).build();
            try (KvCache cache = KvCache.create(config)) {
                drive(cache, rec, random, context);
            }
            decisions += rec.decisions;
            victims += rec.victimsChecked;
            keepScores += rec.keepScoresChecked;
        }
        System.out.println(test + ": " + decisions + " decisions, " + victims + " victims checked, " + keepScores
                + " keep-score rankings checked");
        assertTrue(decisions > SEQUENCES, "seed=" + seed + ": too few decisions were checked: " + decisions);
    }

    private static void drive(KvCache cache, RecordingPolicy rec, SplittableRandom random, String context) {
        KvCacheConfig c = cache.config();
        int layers = c.layers();
        int kvHeads = c.kvHeads();
        int headDim = c.headDim();
        int row = kvHeads * headDim;
        int steps = 2 * c.capacity() + random.nextInt(2 * c.capacity());
        double scale = new double[] {0.5, 2.0, 4.0}[random.nextInt(3)];
        List<float[]> earlier = new ArrayList<>();
        int position = 0;
        for (int step = 0; step < steps; step++) {
            int tokens = random.nextInt(7) == 0 ? 2 + random.nextInt(2) : 1;
            for (int layer = 0; layer < layers; layer++) {
                float[] keys = new float[tokens * row];
                for (int t = 0; t < tokens; t++) {
                    float[] k = !earlier.isEmpty() && random.nextInt(5) == 0
                            ? earlier.get(random.nextInt(earlier.size()))
                            : Seeds.uniform(random, row, scale);
                    earlier.add(k);
                    System.arraycopy(k, 0, keys, t * row, row);
                    for (int h = 0; h < kvHeads; h++) {
                        double n = 0.0;
                        for (int i = 0; i < headDim; i++) {
                            double x = k[h * headDim + i];
                            n += x * x;
                        }
                        rec.norm(layer, h, position + t, Math.sqrt(n));
                    }
                }
                cache.append(layer, position, tokens, keys, Seeds.uniform(random, tokens * row, 1.0));
                int qRow = c.queryHeads() * headDim;
                cache.attend(layer, position, tokens, Seeds.uniform(random, tokens * qRow, scale),
                        new float[tokens * qRow]);
            }
            position += tokens;
            if (random.nextInt(12) == 0) {
                cache.compress(random.nextDouble() * 0.8);
            }
            for (int layer = 0; layer < layers; layer++) {
                for (int h = 0; h < kvHeads; h++) {
                    int n = cache.stats().resident(layer, h);
                    assertTrue(n <= c.capacity(), context + ": " + n + " resident > capacity " + c.capacity());
                }
            }
        }
    }
}
