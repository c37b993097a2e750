package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.EvictionPolicy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Wraps a policy, records everything its tracker is told (by token position, so it survives slot
 * moves), and checks every victim list against a slow reference that recomputes the scores in
 * float64 from that record and fully sorts them.
 */
final class RecordingPolicy implements EvictionPolicy {

    /** One attention report: the weights of each query head of the group, by key position. */
    record Report(int layer, int kvHead, int queryPosition, int readingLayer, Map<Integer, double[]> weights) {
        /** Returns the number of keys the query saw. */
        int visible() {
            return weights.size();
        }
    }

    /** What the reference sees of one (layer, kv-head) when the policy is asked. */
    record View(int layer, int kvHead, int group, List<Integer> positions, List<Report> reports,
                RecordingPolicy all, Map<Integer, Double> norms) {
    }

    /** A reference: scores (lower evicted first) and the positions that must not be evicted. */
    interface Reference {
        /** Returns null when the policy must name no victim at all. */
        Map<Integer, Double> scores(View view, int count, boolean compress);

        default Set<Integer> protectedPositions(View view, int count, boolean compress) {
            return Set.of();
        }

        /** Returns the positions that must be dropped voluntarily, or null if not checked. */
        default Set<Integer> voluntary(View view) {
            return null;
        }
    }

    private final EvictionPolicy inner;
    private final Reference reference;
    private final String context;
    private final double tolerance;
    private int kvHeads;
    private int group;
    private int capacity;
    private int[][] slotPosition;
    private int[] resident;
    private List<List<Report>> reports;
    private List<Map<Integer, Double>> norms;
    long decisions;
    long victimsChecked;
    long keepScoresChecked;

    RecordingPolicy(EvictionPolicy inner, Reference reference, String context, double tolerance) {
        this.inner = inner;
        this.reference = reference;
        this.context = context;
        this.tolerance = tolerance;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public int protectedTokens() {
        return inner.protectedTokens();
    }

    /** Records the float64 norm of the key appended at {@code position}. */
    void norm(int layer, int kvHead, int position, double norm) {
        norms.get(layer * kvHeads + kvHead).put(position, norm);
    }

    /** Returns every report of {@code layer}, all kv-heads. */
    List<Report> layerReports(int layer) {
        List<Report> out = new ArrayList<>();
        for (int h = 0; h < kvHeads; h++) {
            out.addAll(reports.get(layer * kvHeads + h));
        }
        return out;
    }

    @Override
    public Tracker newTracker(Shape shape) {
        int buffers = shape.buffers();
        this.kvHeads = shape.kvHeads();
        this.group = shape.groupSize();
        this.capacity = shape.capacity();
        this.slotPosition = new int[buffers][capacity];
        this.resident = new int[buffers];
        this.reports = new ArrayList<>();
        this.norms = new ArrayList<>();
        for (int i = 0; i < buffers; i++) {
            reports.add(new ArrayList<>());
            norms.add(new HashMap<>());
        }
        Tracker t = inner.newTracker(shape);
        return new Tracker() {
            @Override
            public boolean wantsAttention(int layer) {
                return t.wantsAttention(layer);
            }

            @Override
            public void onAppend(int b, BufferView view, int slot) {
                assertEquals(shape.buffer(view.layer(), view.kvHead()), b, context + ": buffer id");
                assertEquals(resident[b], slot, context + ": append slot");
                slotPosition[b][slot] = view.position(slot);
                resident[b]++;
                assertEquals(resident[b], view.resident(), context + ": resident after append");
                assertTrue(resident[b] <= capacity, context + ": resident exceeds capacity");
                t.onAppend(b, view, slot);
            }

            @Override
            public void onAttention(int b, BufferView view, AttentionWeights weights) {
                Map<Integer, double[]> w = new HashMap<>();
                for (int j = 0; j < weights.visible(); j++) {
                    if (slotPosition[b][j] > weights.queryPosition()) {
                        continue;
                    }
                    double[] g = new double[group];
                    for (int k = 0; k < group; k++) {
                        g[k] = weights.weight(k, j);
                    }
                    w.put(slotPosition[b][j], g);
                }
                reports.get(b).add(new Report(view.layer(), view.kvHead(), weights.queryPosition(),
                        weights.readingLayer(), w));
                t.onAttention(b, view, weights);
            }

            @Override
            public int chooseVictims(int b, BufferView view, Reason reason, int count, int[] victims) {
                int layer = view.layer();
                int kvHead = view.kvHead();
                assertEquals(resident[b], view.resident(), context + ": resident");
                int chosen = t.chooseVictims(b, view, reason, count, victims);
                int[] again = new int[capacity];
                int chosenAgain = t.chooseVictims(b, view, reason, count, again);
                assertEquals(chosen, chosenAgain, context + ": chooseVictims is not repeatable");
                assertEquals(toSet(victims, chosen), toSet(again, chosenAgain), context + ": chooseVictims is not repeatable");
                if (reason == Reason.ADAPTIVE) {
                    checkVoluntary(layer, kvHead, victims, chosen);
                } else {
                    check(layer, kvHead, victims, chosen, count, reason == Reason.COMPRESS);
                }
                if (reason == Reason.COMPRESS) {
                    checkKeepScores(b, view, count, victims, chosen);
                }
                return chosen;
            }

            /**
             * The keep scores a head-wise allocation ranks by must order the tokens as the
             * policy's own victims do: every victim scores no higher than every kept token, and
             * when the policy names fewer than asked, every kept token is protected.
             */
            private void checkKeepScores(int b, BufferView view, int count, int[] victims, int chosen) {
                double[] s = new double[view.resident()];
                if (!t.keepScores(b, view, count, s)) {
                    return;
                }
                boolean[] victim = new boolean[s.length];
                double highestVictim = Double.NEGATIVE_INFINITY;
                for (int i = 0; i < chosen; i++) {
                    victim[victims[i]] = true;
                    assertTrue(Double.isFinite(s[victims[i]]), context + ": a victim is protected: " + s[victims[i]]);
                    highestVictim = Math.max(highestVictim, s[victims[i]]);
                }
                for (int j = 0; j < s.length; j++) {
                    if (!victim[j]) {
                        assertTrue(s[j] >= highestVictim, context + ": slot " + j + " is kept with keep score " + s[j]
                                + " below a victim's " + highestVictim);
                        assertTrue(chosen == count || s[j] == Double.POSITIVE_INFINITY,
                                context + ": " + chosen + " of " + count + " victims, yet slot " + j + " is not protected");
                    }
                }
                keepScoresChecked++;
            }

            private void checkVoluntary(int layer, int kvHead, int[] victims, int chosen) {
                View view = view(layer, kvHead);
                Set<Integer> expected = reference.voluntary(view);
                if (expected != null) {
                    Set<Integer> actual = new TreeSet<>();
                    int b = layer * kvHeads + kvHead;
                    for (int i = 0; i < chosen; i++) {
                        actual.add(slotPosition[b][victims[i]]);
                    }
                    assertEquals(new TreeSet<>(expected), actual, context + ": voluntary victims of layer "
                            + layer + ", kv-head " + kvHead);
                    victimsChecked += chosen;
                    decisions++;
                }
            }

            @Override
            public void onRemove(int b, int slot) {
                assertTrue(slotPosition[b][slot] >= 0, context + ": removed a free slot");
                slotPosition[b][slot] = -1;
                resident[b]--;
                t.onRemove(b, slot);
            }

            @Override
            public void onMove(int b, int from, int to) {
                assertEquals(-1, slotPosition[b][to], context + ": move onto a live slot");
                slotPosition[b][to] = slotPosition[b][from];
                slotPosition[b][from] = -1;
                t.onMove(b, from, to);
            }

            @Override
            public void reset() {
                t.reset();
            }
        };
    }

    private View view(int layer, int kvHead) {
        int b = layer * kvHeads + kvHead;
        List<Integer> pos = new ArrayList<>();
        for (int s = 0; s < resident[b]; s++) {
            pos.add(slotPosition[b][s]);
        }
        return new View(layer, kvHead, group, pos, reports.get(b), this, norms.get(b));
    }

    private static Set<Integer> toSet(int[] a, int n) {
        Set<Integer> s = new HashSet<>();
        for (int i = 0; i < n; i++) {
            s.add(a[i]);
        }
        return s;
    }

    private void check(int layer, int kvHead, int[] victims, int chosen, int count, boolean compress) {
        int b = layer * kvHeads + kvHead;
        View view = view(layer, kvHead);
        Map<Integer, Double> scores = reference.scores(view, count, compress);
        Set<Integer> prot = reference.protectedPositions(view, count, compress);
        Set<Integer> actual = new TreeSet<>();
        for (int i = 0; i < chosen; i++) {
            int p = slotPosition[b][victims[i]];
            assertTrue(p >= 0, context + ": named a free slot");
            assertTrue(actual.add(p), context + ": named a slot twice");
            assertTrue(!prot.contains(p), context + ": evicted protected position " + p);
        }
        decisions++;
        victimsChecked += chosen;
        String where = context + ", layer " + layer + ", kv-head " + kvHead + ", count " + count
                + (compress ? " (compress)" : " (append)");
        if (scores == null) {
            assertEquals(0, chosen, where + ": expected no victims");
            return;
        }
        List<Integer> candidates = new ArrayList<>();
        for (int p : view.positions()) {
            if (!prot.contains(p)) {
                candidates.add(p);
            }
        }
        candidates.sort((x, y) -> {
            int c = Double.compare(scores.get(x), scores.get(y));
            return c != 0 ? c : Integer.compare(y, x);
        });
        int k = Math.min(count, candidates.size());
        assertEquals(k, chosen, where + ": number of victims");
        Set<Integer> expected = new TreeSet<>(candidates.subList(0, k));
        if (expected.equals(actual)) {
            return;
        }
        double boundary = scores.get(candidates.get(k - 1));
        for (int p : symmetricDifference(expected, actual)) {
            if (Math.abs(scores.get(p) - boundary) > tolerance * Math.max(1e-3, Math.abs(boundary))) {
                fail(where + ": victims " + actual + " but the reference picks " + expected
                        + "; position " + p + " scores " + scores.get(p) + " vs boundary " + boundary
                        + "; scores " + new java.util.TreeMap<>(scores));
            }
        }
    }

    private static Set<Integer> symmetricDifference(Set<Integer> a, Set<Integer> b) {
        Set<Integer> d = new HashSet<>(a);
        d.addAll(b);
        Set<Integer> both = new HashSet<>(a);
        both.retainAll(b);
        d.removeAll(both);
        return d;
    }

    /** Returns the newest {@code k} of {@code positions}. */
    static Set<Integer> newest(List<Integer> positions, int k) {
        int[] sorted = positions.stream().mapToInt(Integer::intValue).sorted().toArray();
        Set<Integer> out = new HashSet<>();
        for (int i = Math.max(0, sorted.length - k); i < sorted.length; i++) {
            out.add(sorted[i]);
        }
        return out;
    }

    @Override
    public String toString() {
        return "RecordingPolicy[" + inner.name() + ", " + Arrays.toString(resident) + "]";
    }
}
