package io.github.kvcache4j.testutil;

import java.util.SplittableRandom;

/** Fresh random seeds for tests, printed so that a failure can be replayed with {@code -Dkvcache4j.seed=...}. */
public final class Seeds {

    private Seeds() {
    }

    /** Returns a new seed (or the one given by the system property) and prints it with the test's name. */
    public static long fresh(String test) {
        String fixed = System.getProperty("kvcache4j.seed");
        long seed = fixed != null ? Long.parseLong(fixed) : new SplittableRandom().nextLong();
        System.out.println(test + ": seed=" + seed);
        return seed;
    }

    /** Fills {@code a} with values uniform in {@code [-scale, scale)}. */
    public static float[] uniform(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return a;
    }
}
