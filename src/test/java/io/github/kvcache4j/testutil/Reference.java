package io.github.kvcache4j.testutil;

/** Float64 reference computations the kernels and the cache are checked against. */
public final class Reference {

    private Reference() {
    }

    /**
     * Attention of one query over {@code n} rows: {@code softmax(q·kᵀ·scale)·V} in float64.
     * Rows are {@code keys[j*d..]}, {@code values[j*d..]}; only rows with {@code visible[j]} count
     * (null: all).
     */
    public static double[] attention(float[] q, int qOff, float[] keys, float[] values, int n, int d,
                                     double scale, boolean[] visible) {
        double[] s = new double[n];
        double m = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            if (visible != null && !visible[j]) {
                s[j] = Double.NEGATIVE_INFINITY;
                continue;
            }
            double dot = 0;
            for (int i = 0; i < d; i++) {
                dot += (double) q[qOff + i] * keys[j * d + i];
            }
            s[j] = dot * scale;
            m = Math.max(m, s[j]);
        }
        double l = 0;
        double[] out = new double[d];
        for (int j = 0; j < n; j++) {
            double p = Math.exp(s[j] - m);
            l += p;
            for (int i = 0; i < d; i++) {
                out[i] += p * values[j * d + i];
            }
        }
        for (int i = 0; i < d; i++) {
            out[i] /= l;
        }
        return out;
    }

    /** Returns {@code max|a-b| / max|b|} over the {@code d} elements at {@code off}. */
    public static double relativeError(float[] a, int off, double[] b) {
        double err = 0;
        double mag = 0;
        for (int i = 0; i < b.length; i++) {
            err = Math.max(err, Math.abs(a[off + i] - b[i]));
            mag = Math.max(mag, Math.abs(b[i]));
        }
        return err / Math.max(mag, Double.MIN_NORMAL);
    }
}
