package io.github.kvcache4j.policy;

/** Arithmetic on the key and value rows policies read through their buffer views. */
final class RowMath {

    private RowMath() {
    }

    /** Returns the L2 norm of {@code v}, summed in double. */
    static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }
}
