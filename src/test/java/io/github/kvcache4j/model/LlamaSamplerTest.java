package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LlamaSamplerTest {

    @Test
    void greedyPicksLargestLogitAndLowestIdOnTies() {
        Sampler s = Sampler.greedy();
        assertEquals(2, s.sample(new float[] {0, 1, 3, 2}));
        assertEquals(1, s.sample(new float[] {0, 5, 5, 5}));
        assertEquals(1, s.sample(new float[] {Float.NaN, 1, 0}));
        assertEquals(0, s.sample(new float[] {-1}));
    }

    @Test
    void temperatureSamplingIsReproducibleForASeed() {
        float[] logits = {1, 2, 0.5f, 1.5f};
        int[] a = draw(Sampler.temperature(1, 42), logits, 200);
        int[] b = draw(Sampler.temperature(1, 42), logits, 200);
        assertArrayEquals(a, b);
    }

    @Test
    void temperatureSamplingFollowsSoftmax() {
        long seed = System.nanoTime();
        System.out.println("seed " + seed);
        float[] logits = {0, 1, 2, (float) Math.log(0.5)};
        double t = 2;
        int n = 40000;
        int[] counts = new int[logits.length];
        for (int id : draw(Sampler.temperature(t, seed), logits, n)) {
            counts[id]++;
        }
        double z = 0;
        for (float l : logits) {
            z += Math.exp(l / t);
        }
        for (int i = 0; i < logits.length; i++) {
            double p = Math.exp(logits[i] / t) / z;
            double sd = Math.sqrt(n * p * (1 - p));
            assertEquals(n * p, counts[i], 5 * sd, "token " + i);
        }
    }

    @Test
    void veryLowTemperatureActsGreedily() {
        int[] ids = draw(Sampler.temperature(1e-3, 7), new float[] {0.1f, 0.3f, 0.2f}, 50);
        for (int id : ids) {
            assertEquals(1, id);
        }
    }

    @Test
    void rejectsBadTemperatureAndEmptyLogits() {
        assertThrows(IllegalArgumentException.class, () -> Sampler.temperature(0, 1));
        assertThrows(IllegalArgumentException.class, () -> Sampler.temperature(Double.NaN, 1));
        assertThrows(IllegalArgumentException.class, () -> Sampler.temperature(Double.POSITIVE_INFINITY, 1));
        assertThrows(IllegalArgumentException.class, () -> Sampler.greedy().sample(new float[0]));
    }

    private static int[] draw(Sampler s, float[] logits, int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = s.sample(logits);
        }
        return ids;
    }
}
