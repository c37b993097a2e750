package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy.AttentionWeights;
import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * The running mean and covariance of the queries of every query head, before RoPE, per buffer
 * (the group of a kv-head), and their expected value over a window of future positions
 * (kvpress {@code ExpectedAttentionPress.get_query_statistics} and {@code apply_avg_rope}).
 *
 * <p>The cache reports queries after RoPE, so each is turned back by its own position first. Mean
 * and covariance follow Welford's update ({@code δ = q - μ; μ += δ / n; M2 += δ δᵀ (n - 1) / n}),
 * which needs no sum of squares that cancels against the mean; the covariance is {@code M2 / n}
 * (biased, as kvpress divides by the number of queries). {@code M2} is held as the upper triangle
 * in floats: a Llama-3-8B cache has 256 buffers of four 128 × 128 heads, 34 MB so, twice that in
 * doubles. The arrays of a buffer are allocated when its first query arrives.
 *
 * <p>A future query at position {@code t} is {@code R_t q}; averaged over
 * {@code t ∈ [a, a + F)} the rotation becomes {@code R̄}, per pair {@code [[c̄, -s̄], [s̄, c̄]]}
 * with {@code c̄ = mean cos(t f)}, {@code s̄ = mean sin(t f)}, so the expected query has mean
 * {@code R̄ μ} and covariance {@code R̄ Σ R̄ᵀ}. {@code a} is the position after the latest query.
 */
final class QueryStatistics {

    private final Rope rope;
    private final int group;
    private final int futurePositions;
    /** Per buffer: {@code [g * dim + i]}, the mean of head {@code g}. */
    private final double[][] mean;
    /** Per buffer: {@code [g * triangle + index(i, j)]}, {@code M2} of head {@code g}, {@code i <= j}. */
    private final float[][] m2;
    /** Per buffer: the queries counted per head. */
    private final long[] count;
    /** Per buffer: the highest query position counted, or {@link Integer#MIN_VALUE}. */
    private final int[] latest;
    private int dim;
    private float[] row = new float[0];
    private double[] delta = new double[0];
    private final double[] cosMean;
    private final double[] sinMean;
    /** The future window whose {@link #cosMean}, {@link #sinMean} are current. */
    private int averagedFrom = Integer.MIN_VALUE;

    QueryStatistics(Rope rope, int buffers, int group, int futurePositions) {
        this.rope = rope;
        this.group = group;
        this.futurePositions = futurePositions;
        this.mean = new double[buffers][];
        this.m2 = new float[buffers][];
        this.count = new long[buffers];
        this.latest = new int[buffers];
        this.cosMean = new double[rope.pairs()];
        this.sinMean = new double[rope.pairs()];
        Arrays.fill(latest, Integer.MIN_VALUE);
    }

    /** Returns the queries counted per head of {@code buffer}. */
    long count(int buffer) {
        return count[buffer];
    }

    /**
     * Counts the group's queries of {@code weights}, {@code dim} floats each, into {@code buffer}.
     *
     * @throws IllegalArgumentException if {@code dim} is smaller than the rotated elements or
     *     differs from the head dimension of earlier queries
     */
    void add(int buffer, int dim, AttentionWeights weights) {
        if (dim < 2 * rope.pairs() || this.dim != 0 && dim != this.dim) {
            throw new IllegalArgumentException("headDim " + dim + " must be >= " + 2 * rope.pairs()
                    + " (the rotated elements of " + rope + ")" + (this.dim == 0 ? "" : " and equal " + this.dim));
        }
        if (this.dim == 0) {
            this.dim = dim;
            row = new float[dim];
            delta = new double[dim];
        }
        if (mean[buffer] == null) {
            mean[buffer] = new double[group * dim];
            m2[buffer] = new float[group * triangle()];
        }
        long n = ++count[buffer];
        int position = weights.queryPosition();
        latest[buffer] = Math.max(latest[buffer], position);
        double shrink = (n - 1) / (double) n;
        for (int g = 0; g < group; g++) {
            weights.query(g, row, 0);
            for (int i = 0; i < dim; i++) {
                delta[i] = row[i];
            }
            unrotate(delta, position);
            double[] mu = mean[buffer];
            int base = g * dim;
            for (int i = 0; i < dim; i++) {
                delta[i] -= mu[base + i];
                mu[base + i] += delta[i] / n;
            }
            float[] m = m2[buffer];
            int at = g * triangle();
            for (int i = 0; i < dim; i++) {
                double di = delta[i] * shrink;
                for (int j = i; j < dim; j++) {
                    m[at++] += (float) (di * delta[j]);
                }
            }
        }
    }

    /** Turns {@code q} back from its rotation at {@code position}: {@code q ← R_{-position} q}. */
    private void unrotate(double[] q, int position) {
        for (int i = 0; i < rope.pairs(); i++) {
            double a = position * rope.frequency(i);
            double c = Math.cos(a);
            double s = Math.sin(a);
            int x = rope.first(i);
            int y = rope.second(i);
            double qx = q[x];
            double qy = q[y];
            q[x] = qx * c + qy * s;
            q[y] = qy * c - qx * s;
        }
    }

    /**
     * Writes the expected future query of head {@code g} of {@code buffer}: its mean times
     * {@code meanScale} to {@code mu[0 .. dim)} and, if {@code cov} is not null, its covariance
     * times {@code covScale} to {@code cov[r * dim + c]}. A buffer without queries has mean and
     * covariance zero.
     */
    void expected(int buffer, int g, double meanScale, double[] mu, double covScale, double[] cov) {
        if (count[buffer] == 0) {
            Arrays.fill(mu, 0, dim, 0.0);
            if (cov != null) {
                Arrays.fill(cov, 0, dim * dim, 0.0);
            }
            return;
        }
        average(latest[buffer] + 1);
        System.arraycopy(mean[buffer], g * dim, mu, 0, dim);
        for (int i = 0; i < rope.pairs(); i++) {
            rotatePair(mu, rope.first(i), rope.second(i), i);
        }
        for (int i = 0; i < dim; i++) {
            mu[i] *= meanScale;
        }
        if (cov == null) {
            return;
        }
        float[] m = m2[buffer];
        double scale = covScale / count[buffer];
        int at = g * triangle();
        for (int i = 0; i < dim; i++) {
            for (int j = i; j < dim; j++) {
                double v = m[at++] * scale;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        // R̄ Σ R̄ᵀ: the pairs of every column, then the pairs of every row.
        for (int i = 0; i < rope.pairs(); i++) {
            int x = rope.first(i);
            int y = rope.second(i);
            for (int c = 0; c < dim; c++) {
                double a = cov[x * dim + c];
                double b = cov[y * dim + c];
                cov[x * dim + c] = cosMean[i] * a - sinMean[i] * b;
                cov[y * dim + c] = sinMean[i] * a + cosMean[i] * b;
            }
            for (int r = 0; r < dim; r++) {
                rotatePair(cov, r * dim + x, r * dim + y, i);
            }
        }
    }

    /** {@code (v[x], v[y]) ← [[c̄, -s̄], [s̄, c̄]] (v[x], v[y])} of pair {@code i}. */
    private void rotatePair(double[] v, int x, int y, int i) {
        double a = v[x];
        double b = v[y];
        v[x] = cosMean[i] * a - sinMean[i] * b;
        v[y] = sinMean[i] * a + cosMean[i] * b;
    }

    /** Makes {@link #cosMean}, {@link #sinMean} the means over {@code [from, from + F)}. */
    private void average(int from) {
        if (from == averagedFrom) {
            return;
        }
        for (int i = 0; i < rope.pairs(); i++) {
            double f = rope.frequency(i);
            double c = 0;
            double s = 0;
            for (int t = 0; t < futurePositions; t++) {
                double a = ((long) from + t) * f;
                c += Math.cos(a);
                s += Math.sin(a);
            }
            cosMean[i] = c / futurePositions;
            sinMean[i] = s / futurePositions;
        }
        averagedFrom = from;
    }

    private int triangle() {
        return dim * (dim + 1) / 2;
    }

    /** Forgets every query. */
    void clear() {
        for (int b = 0; b < count.length; b++) {
            if (mean[b] != null) {
                Arrays.fill(mean[b], 0.0);
                Arrays.fill(m2[b], 0f);
            }
        }
        Arrays.fill(count, 0);
        Arrays.fill(latest, Integer.MIN_VALUE);
    }

    /** Writes the head dimension, then per buffer the count, the latest position and the moments. */
    void write(DataOutput out) throws IOException {
        out.writeInt(dim);
        for (int b = 0; b < count.length; b++) {
            out.writeLong(count[b]);
            out.writeInt(latest[b]);
            if (count[b] > 0) {
                for (double v : mean[b]) {
                    out.writeDouble(v);
                }
                for (float v : m2[b]) {
                    out.writeFloat(v);
                }
            }
        }
    }

    /**
     * Reads and checks what {@link #write} wrote, without changing this object, and returns the
     * action that installs it.
     *
     * @throws IOException if the head dimension, a count or a moment is out of range
     */
    Runnable read(DataInput in) throws IOException {
        int d = in.readInt();
        StateFormat.check(d == 0 || d >= 2 * rope.pairs() && d <= 1 << 14, "query head dimension " + d
                + " must be 0 or in [" + 2 * rope.pairs() + ", 16384]");
        long[] readCount = new long[count.length];
        int[] readLatest = new int[count.length];
        double[][] readMean = new double[count.length][];
        float[][] readM2 = new float[count.length][];
        for (int b = 0; b < count.length; b++) {
            readCount[b] = in.readLong();
            readLatest[b] = in.readInt();
            StateFormat.check(readCount[b] >= 0 && (readCount[b] == 0 || d > 0),
                    "query count " + readCount[b] + " of buffer " + b + " must be >= 0 (and 0 without a head dimension)");
            if (readCount[b] > 0) {
                readMean[b] = new double[group * d];
                readM2[b] = new float[group * d * (d + 1) / 2];
                for (int i = 0; i < readMean[b].length; i++) {
                    readMean[b][i] = in.readDouble();
                    StateFormat.check(Double.isFinite(readMean[b][i]), "query mean " + readMean[b][i] + " is not finite");
                }
                for (int i = 0; i < readM2[b].length; i++) {
                    readM2[b][i] = in.readFloat();
                    StateFormat.check(Float.isFinite(readM2[b][i]), "query moment " + readM2[b][i] + " is not finite");
                }
            }
        }
        return () -> {
            dim = d;
            row = new float[d];
            delta = new double[d];
            for (int b = 0; b < count.length; b++) {
                count[b] = readCount[b];
                latest[b] = readLatest[b];
                mean[b] = readMean[b];
                m2[b] = readM2[b];
            }
        };
    }
}
