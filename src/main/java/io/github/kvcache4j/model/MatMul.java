package io.github.kvcache4j.model;

/**
 * The decoder's matrix products y = W x, on the Vector API kernels ({@link VectorMatMul}) when
 * the {@code jdk.incubator.vector} module is present, on their scalar twins
 * ({@link ScalarMatMul}) otherwise or when the system property {@code kvcache4j.kernels} is
 * {@code scalar}. This class refers to no Vector API type, so it loads without the module.
 */
final class MatMul {

    /** Whether the Vector API kernels run; chosen once per JVM. */
    static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !"scalar".equals(System.getProperty("kvcache4j.kernels"));

    private MatMul() {
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
        if (VECTOR) {
            VectorMatMul.matmul(w, x, tokens, out, r0, r1);
        } else {
            ScalarMatMul.matmul(w, x, tokens, out, r0, r1);
        }
    }

    /**
     * Copies row {@code row} of W, decoded to float, into {@code out[off .. off + cols)} (the
     * embedding lookup: one row per token, so the scalar decoders serve both paths).
     */
    static void row(Matrix w, int row, float[] out, int off) {
        QuantBlocks.decodeRun(w.type(), w.data(), row * w.rowBytes(), w.cols(), out, off);
    }
}
