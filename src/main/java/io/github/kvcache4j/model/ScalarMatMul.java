package io.github.kvcache4j.model;

import java.util.Arrays;

/**
 * Scalar twins of the {@link VectorMatMul} kernels, for JVMs without the Vector API: each row is
 * decoded by {@link QuantBlocks} {@value #RUN} values at a time into a small buffer, which is
 * multiplied with every input vector; sums are kept in double.
 */
final class ScalarMatMul {

    /** Values decoded at a time: a multiple of every block size. */
    private static final int RUN = 256;

    private ScalarMatMul() {
    }

    /**
     * out[t][r] = sum_c W[r][c] * x[t][c] for rows {@code [r0, r1)} and all {@code tokens}.
     *
     * @param w the weights
     * @param x inputs, {@code [tokens][w.cols()]}
     * @param tokens the number of input vectors
     * @param out outputs, {@code [tokens][w.rows()]}
     * @param r0 first row
     * @param r1 end row (exclusive)
     */
    static void matmul(Matrix w, float[] x, int tokens, float[] out, int r0, int r1) {
        GgmlType type = w.type();
        int cols = w.cols();
        int rows = w.rows();
        long bytesPerRun = (long) RUN / type.blockSize() * type.blockBytes();
        float[] wv = new float[RUN];
        double[] acc = new double[tokens];
        for (int r = r0; r < r1; r++) {
            Arrays.fill(acc, 0);
            long base = r * w.rowBytes();
            for (int c0 = 0; c0 < cols; c0 += RUN) {
                int n = Math.min(RUN, cols - c0);
                QuantBlocks.decodeRun(type, w.data(), base + c0 / RUN * bytesPerRun, n, wv, 0);
                for (int t = 0; t < tokens; t++) {
                    int xo = t * cols + c0;
                    double s = 0;
                    for (int j = 0; j < n; j++) {
                        s += (double) wv[j] * x[xo + j];
                    }
                    acc[t] += s;
                }
            }
            for (int t = 0; t < tokens; t++) {
                out[t * rows + r] = (float) acc[t];
            }
        }
    }
}
