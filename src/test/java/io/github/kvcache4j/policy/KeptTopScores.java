package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;

/**
 * Checks a compressed buffer against float64 reference scores: it holds {@code kept} positions,
 * and no position it dropped scores above one it kept, up to a tolerance relative to the spread
 * of the scores (the cache scores in its own order of operations).
 */
final class KeptTopScores {

    private KeptTopScores() {
    }

    /**
     * Asserts that {@code resident} (positions) is a top-{@code kept} set of {@code reference}
     * (indexed by position) within {@code tolerance} of the scores' range; returns the number of
     * positions that differ from the exact float64 top-{@code kept} (ties broken to the earlier).
     */
    static int assertKeepsTop(int[] resident, double[] reference, int kept, double tolerance, String what) {
        assertEquals(kept, resident.length, what + ": kept tokens");
        boolean[] in = new boolean[reference.length];
        for (int p : resident) {
            in[p] = true;
        }
        double lowestKept = Double.POSITIVE_INFINITY;
        double highestDropped = Double.NEGATIVE_INFINITY;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (int p = 0; p < reference.length; p++) {
            min = Math.min(min, reference[p]);
            max = Math.max(max, reference[p]);
            if (in[p]) {
                lowestKept = Math.min(lowestKept, reference[p]);
            } else {
                highestDropped = Math.max(highestDropped, reference[p]);
            }
        }
        double slack = tolerance * Math.max(max - min, Double.MIN_NORMAL);
        assertTrue(lowestKept >= highestDropped - slack, what + ": a dropped token scores " + highestDropped
                + " against a kept one's " + lowestKept + " (slack " + slack + ")");
        Integer[] order = new Integer[reference.length];
        Arrays.setAll(order, i -> i);
        Arrays.sort(order, (a, b) -> reference[a] != reference[b] ? Double.compare(reference[b], reference[a])
                : Integer.compare(a, b));
        int differ = 0;
        for (int i = 0; i < kept; i++) {
            differ += in[order[i]] ? 0 : 1;
        }
        return differ;
    }
}
