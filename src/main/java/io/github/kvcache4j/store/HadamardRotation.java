package io.github.kvcache4j.store;

import java.util.SplittableRandom;

/**
 * A randomized Hadamard rotation of the head dimension, {@code y = H·D·x / √b}, applied in place
 * in {@code O(n log b)}: the rotation of QuaRot and QuIP#, which spreads an outlier channel over all
 * channels of its block before quantization.
 *
 * <p>{@code D} is the diagonal of signs {@code s_i}: {@code s_i = +1} if the {@code i}-th call of
 * {@code new SplittableRandom(seed).nextBoolean()} returns true, else {@code −1}. {@code H} is
 * block-diagonal: blocks of {@code b} rows, {@code b} the largest power of two dividing
 * {@code headDim} (the whole row for a power of two; 32 for 96, 16 for 80), each the Sylvester
 * Hadamard matrix {@code H_ij = (−1)^popcount(i & j)}. {@code H·D/√b} is orthogonal, so rotating
 * queries and keys alike keeps every score: {@code (Rq)·(Rk) = q·k}, to float rounding; rotated
 * values give the rotated output, which {@link #unrotate} maps back.
 *
 * <p>Each element after the rotation is at most {@code ‖x‖} in magnitude, and so, up to rounding,
 * is every intermediate sum ({@code 1/√b}, rounded down, is applied before the butterflies): rows up
 * to the float range rotate without overflow. Immutable; shareable between threads.
 */
public final class HadamardRotation {

    private final int headDim;
    private final int block;
    private final long seed;
    private final float[] signs;
    /** {@code 1/√b}, applied before the butterflies so that no partial sum exceeds {@code ‖x‖}. */
    private final float norm;

    /**
     * Creates the rotation of rows of {@code headDim} values with the signs drawn from {@code seed}.
     *
     * @throws IllegalArgumentException if {@code headDim < 1}
     */
    public HadamardRotation(int headDim, long seed) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be > 0, got " + headDim);
        }
        this.headDim = headDim;
        this.block = Integer.lowestOneBit(headDim);
        this.seed = seed;
        this.norm = (float) (1 / Math.sqrt(block));
        this.signs = new float[headDim];
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < headDim; i++) {
            signs[i] = random.nextBoolean() ? 1 : -1;
        }
    }

    /** Returns the length of a row. */
    public int headDim() {
        return headDim;
    }

    /** Returns {@code b}, the size of the Hadamard blocks. */
    public int blockSize() {
        return block;
    }

    /** Returns the seed of the signs. */
    public long seed() {
        return seed;
    }

    /** Replaces {@code x[offset .. offset + headDim)} by {@code H·D·x / √b}. */
    public void rotate(float[] x, int offset) {
        for (int i = 0; i < headDim; i++) {
            x[offset + i] *= signs[i] * norm;
        }
        transform(x, offset);
    }

    /** Replaces {@code y[offset .. offset + headDim)} by {@code D·H·y / √b}, the inverse of {@link #rotate}. */
    public void unrotate(float[] y, int offset) {
        for (int i = 0; i < headDim; i++) {
            y[offset + i] *= norm;
        }
        transform(y, offset);
        for (int i = 0; i < headDim; i++) {
            y[offset + i] *= signs[i];
        }
    }

    /** The fast Walsh–Hadamard transform {@code x ← H·x} of each block: {@code log2 b} butterfly passes. */
    private void transform(float[] x, int offset) {
        for (int start = offset; start < offset + headDim; start += block) {
            for (int half = 1; half < block; half <<= 1) {
                for (int i = start; i < start + block; i += half << 1) {
                    for (int j = i; j < i + half; j++) {
                        float a = x[j];
                        float c = x[j + half];
                        x[j] = a + c;
                        x[j + half] = a - c;
                    }
                }
            }
        }
    }
}
