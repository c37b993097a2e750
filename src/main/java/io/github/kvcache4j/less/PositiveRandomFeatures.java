package io.github.kvcache4j.less;

import io.github.kvcache4j.kernel.KernelProvider;
import io.github.kvcache4j.kernel.Kernels;
import java.util.SplittableRandom;

/**
 * Performer FAVOR+ positive random features, the same map for queries and keys:
 * {@code log φ_r(x) = ω_r·x/d^{1/4} − ‖x‖²/(2√d) − ½ log R}.
 */
final class PositiveRandomFeatures implements FeatureMap {

    private final int headDim;
    private final int rank;
    private final long seed;
    /** {@code Ω / d^{1/4}}, row-major {@code [rank][headDim]}. */
    private final float[] omega;
    private final float normScale;
    private final float logRankShift;
    private final Kernels kernels = KernelProvider.kernels();

    PositiveRandomFeatures(int headDim, int rank, long seed) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        }
        if (rank < 1) {
            throw new IllegalArgumentException("rank must be >= 1, got " + rank);
        }
        this.headDim = headDim;
        this.rank = rank;
        this.seed = seed;
        this.omega = new float[Math.multiplyExact(rank, headDim)];
        double quarter = Math.pow(headDim, -0.25);
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < omega.length; i++) {
            omega[i] = (float) (random.nextGaussian() * quarter);
        }
        this.normScale = (float) (0.5 / Math.sqrt(headDim));
        this.logRankShift = (float) (0.5 * Math.log(rank));
    }

    @Override
    public int headDim() {
        return headDim;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public void logQueryFeatures(int layer, int queryHead, float[] query, int offset, float[] dst, float[] scratch) {
        features(query, offset, dst);
    }

    @Override
    public void logKeyFeatures(int layer, int kvHead, float[] key, int offset, float[] dst, float[] scratch) {
        features(key, offset, dst);
    }

    private void features(float[] x, int offset, float[] dst) {
        float shift = kernels.dot(x, offset, x, offset, headDim) * normScale + logRankShift;
        for (int r = 0; r < rank; r++) {
            dst[r] = kernels.dot(omega, r * headDim, x, offset, headDim) - shift;
        }
    }

    @Override
    public boolean estimatesExpKernel() {
        return true;
    }

    @Override
    public String name() {
        return "favor+(rank=" + rank + ", seed=" + seed + ")";
    }

    @Override
    public String toString() {
        return name();
    }
}
