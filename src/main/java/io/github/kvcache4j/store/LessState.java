package io.github.kvcache4j.store;

import io.github.kvcache4j.less.FeatureMap;
import java.util.Arrays;
import java.util.Objects;

/**
 * The LESS residual of a cache: per buffer (one source layer and kv-head) an {@code R × d} matrix
 * {@code H} and a vector {@code z} of length {@code R} that sum, over every token the cache
 * evicted from that buffer, {@code ψ(k)·vᵀ} and {@code ψ(k)}. Internal to
 * {@link io.github.kvcache4j.KvCache}; users configure it through
 * {@link io.github.kvcache4j.KvCacheConfig.Builder#less}.
 *
 * <p><b>Overflow-safe representation.</b> Row {@code r} is kept as {@code H_true[r] = e^{c_r}·H[r]},
 * {@code z_true[r] = e^{c_r}·z[r]} with a per-row log-scale {@code c_r} equal to the largest
 * {@code log ψ_r(k)} absorbed so far ({@code −∞} while the row is empty). Every stored weight
 * {@code e^{log ψ_r(k) − c_r}} is at most 1, so {@code z[r] ∈ [1, evicted]} and
 * {@code |H[r][i]| ≤ evicted·max|v_i|}, whatever the magnitude of the keys. Attention combines the
 * residual with the softmax's running maximum in log space (see {@link #attend}).
 *
 * <p><b>Centring.</b> For a map that {@linkplain FeatureMap#estimatesExpKernel() estimates}
 * {@code e^{q·k/√d}} for any vectors, the state uses the exact identity
 * {@code e^{q·k/√d} = e^{q·μ/√d}·e^{q·(k−μ)/√d}} and applies the map only to the last factor:
 * {@code ψ'(k) = ψ(k−μ)}, {@code φ'(q) = e^{q·μ/√d}·φ(q)}. The key mean {@code μ} is the mean of
 * the keys resident at the buffer's first eviction and stays fixed afterwards. Random features have
 * a relative variance of about {@code e^{‖q+k‖²/√d}}; a trained model's keys share a large common
 * component, and removing it lowers that variance by orders of magnitude.
 *
 * <p>{@link #absorb} and {@link #anchor} are called by the thread that mutates the cache;
 * {@link #attend} may run for different buffers on different threads,
 * each with its own {@link Workspace}.
 */
public final class LessState {

    private final FeatureMap map;
    private final boolean centring;
    private final int rank;
    private final int headDim;
    private final float scale;
    private final float[][] h;
    private final float[][] z;
    private final float[][] logScale;
    private final long[] absorbed;
    private final float[][] keyMean;
    private final float[] centred;
    private final float[] keyFeatures;
    private final float[] keyScratch;

    /**
     * Creates an empty state for {@code buffers} buffers.
     *
     * @throws IllegalArgumentException if {@code buffers < 1}
     */
    public LessState(FeatureMap map, int buffers) {
        this.map = Objects.requireNonNull(map, "map");
        if (buffers < 1) {
            throw new IllegalArgumentException("buffers must be >= 1, got " + buffers);
        }
        this.centring = map.estimatesExpKernel();
        this.rank = map.rank();
        this.headDim = map.headDim();
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        this.h = new float[buffers][Math.multiplyExact(rank, headDim)];
        this.z = new float[buffers][rank];
        this.logScale = new float[buffers][rank];
        this.absorbed = new long[buffers];
        this.keyMean = new float[buffers][headDim];
        this.centred = new float[headDim];
        this.keyFeatures = new float[rank];
        this.keyScratch = new float[map.scratchFloats()];
        clear();
    }

    /** Returns the feature map. */
    public FeatureMap featureMap() {
        return map;
    }

    /** Returns whether keys are centred on their mean before the map (see the class comment). */
    public boolean centring() {
        return centring;
    }

    /**
     * Returns the bytes of the state: {@code H}, {@code z} and the log-scales, plus the key mean
     * when centring, 4 bytes per element.
     */
    public long bytes() {
        long perBuffer = (long) rank * headDim + 2L * rank + (centring ? headDim : 0);
        return h.length * perBuffer * Float.BYTES;
    }

    /** Returns whether buffer {@code b} has absorbed no token yet. */
    public boolean isEmpty(int b) {
        return absorbed[b] == 0;
    }

    /** Returns the number of tokens buffer {@code b} has absorbed. */
    public long absorbed(int b) {
        return absorbed[b];
    }

    /** Forgets every absorbed token and the key means. */
    public void clear() {
        for (int b = 0; b < h.length; b++) {
            Arrays.fill(h[b], 0f);
            Arrays.fill(z[b], 0f);
            Arrays.fill(logScale[b], Float.NEGATIVE_INFINITY);
            Arrays.fill(keyMean[b], 0f);
        }
        Arrays.fill(absorbed, 0);
    }

    /**
     * Fixes the key mean of buffer {@code b} from {@code keyMean[offset..]}, before its first
     * {@link #absorb}. Without centring this does nothing.
     *
     * @throws IllegalStateException if the buffer has absorbed tokens already
     */
    public void anchor(int b, float[] keyMean, int offset) {
        if (absorbed[b] != 0) {
            throw new IllegalStateException("buffer " + b + " has absorbed " + absorbed[b] + " tokens; anchor it before");
        }
        if (!centring) {
            return;
        }
        System.arraycopy(keyMean, offset, this.keyMean[b], 0, headDim);
    }

    /**
     * Folds one evicted token into buffer {@code b}: {@code H += ψ'(k)·vᵀ}, {@code z += ψ'(k)}.
     *
     * @param layer the source layer of the buffer
     * @param kvHead the kv-head of the buffer
     */
    public void absorb(int b, int layer, int kvHead, float[] key, int keyOffset, float[] value, int valueOffset) {
        if (centring) {
            float[] mu = keyMean[b];
            for (int i = 0; i < headDim; i++) {
                centred[i] = key[keyOffset + i] - mu[i];
            }
            map.logKeyFeatures(layer, kvHead, centred, 0, keyFeatures, keyScratch);
        } else {
            map.logKeyFeatures(layer, kvHead, key, keyOffset, keyFeatures, keyScratch);
        }
        float[] hb = h[b];
        float[] zb = z[b];
        float[] cb = logScale[b];
        for (int r = 0; r < rank; r++) {
            float lf = keyFeatures[r];
            if (lf == Float.NEGATIVE_INFINITY) {
                continue;
            }
            int row = r * headDim;
            float c = cb[r];
            float w;
            if (lf > c) {
                float shrink = (float) Math.exp((double) c - lf);
                for (int i = 0; i < headDim; i++) {
                    hb[row + i] *= shrink;
                }
                zb[r] *= shrink;
                cb[r] = lf;
                w = 1f;
            } else {
                w = (float) Math.exp((double) lf - c);
            }
            for (int i = 0; i < headDim; i++) {
                hb[row + i] += w * value[valueOffset + i];
            }
            zb[r] += w;
        }
        absorbed[b]++;
    }

    /**
     * Finishes the attention of one query head over buffer {@code b}: given the kernel's
     * unnormalised output {@code U = Σ_j e^{s_j − m}·v_j} (in {@code out}), its maximum score
     * {@code m} and sum {@code l = Σ_j e^{s_j − m}}, writes
     * {@code (U + e^{−m}·φ'(q)ᵀH) / (l + e^{−m}·φ'(q)ᵀz)}. With {@code t_r = log φ'_r(q) + c_r}
     * and {@code M = max(m, max_r t_r)} it computes
     * {@code (e^{m−M}·U + Σ_r e^{t_r−M}·H[r]) / (e^{m−M}·l + Σ_r e^{t_r−M}·z[r])}: every factor
     * is at most 1 and the denominator at least 1, so nothing overflows or divides by zero.
     *
     * @param readingLayer the layer whose query this is
     * @param queryHead the query head (its index in the layer)
     * @param query {@code headDim} floats at {@code queryOffset}
     * @param m the maximum score of the resident tokens
     * @param l the sum of {@code e^{s_j − m}} over the resident tokens
     * @param out the unnormalised output at {@code outOffset}; replaced by the normalised one
     */
    public void attend(int b, int readingLayer, int queryHead, float[] query, int queryOffset,
                       float m, float l, float[] out, int outOffset, Workspace workspace) {
        float[] t = workspace.features;
        map.logQueryFeatures(readingLayer, queryHead, query, queryOffset, t, workspace.scratch);
        double shift = 0;
        if (centring) {
            float[] mu = keyMean[b];
            for (int i = 0; i < headDim; i++) {
                shift += (double) query[queryOffset + i] * mu[i];
            }
            shift *= scale;
        }
        float[] cb = logScale[b];
        double[] logWeights = workspace.logWeights;
        double top = m;
        for (int r = 0; r < rank; r++) {
            double tr = (double) t[r] + cb[r] + shift;
            logWeights[r] = tr;
            top = Math.max(top, tr);
        }
        float alpha = (float) Math.exp(m - top);
        float den = alpha * l;
        for (int i = 0; i < headDim; i++) {
            out[outOffset + i] *= alpha;
        }
        float[] hb = h[b];
        float[] zb = z[b];
        for (int r = 0; r < rank; r++) {
            float beta = (float) Math.exp(logWeights[r] - top);
            if (beta == 0f) {
                continue;
            }
            den += beta * zb[r];
            int row = r * headDim;
            for (int i = 0; i < headDim; i++) {
                out[outOffset + i] += beta * hb[row + i];
            }
        }
        float inv = 1f / den;
        for (int i = 0; i < headDim; i++) {
            out[outOffset + i] *= inv;
        }
    }

    /**
     * Returns the floats of one buffer's state as {@link #save} writes it:
     * {@code headDim + rank·headDim + 2·rank}.
     */
    public int stateFloats() {
        return headDim + rank * headDim + 2 * rank;
    }

    /**
     * Writes buffer {@code b}'s state into {@code dst[0..stateFloats())}: the key mean {@code μ},
     * then {@code H} row-major, {@code z} and the log-scales {@code c}.
     */
    public void save(int b, float[] dst) {
        System.arraycopy(keyMean[b], 0, dst, 0, headDim);
        System.arraycopy(h[b], 0, dst, headDim, h[b].length);
        System.arraycopy(z[b], 0, dst, headDim + h[b].length, rank);
        System.arraycopy(logScale[b], 0, dst, headDim + h[b].length + rank, rank);
    }

    /**
     * Replaces buffer {@code b}'s state with what {@link #save} wrote and the count of tokens it
     * absorbed. The caller has checked the values ({@code docs/sessions.md}).
     */
    public void restore(int b, long absorbedTokens, float[] src) {
        System.arraycopy(src, 0, keyMean[b], 0, headDim);
        System.arraycopy(src, headDim, h[b], 0, h[b].length);
        System.arraycopy(src, headDim + h[b].length, z[b], 0, rank);
        System.arraycopy(src, headDim + h[b].length + rank, logScale[b], 0, rank);
        absorbed[b] = absorbedTokens;
    }

    /** Returns working memory for {@link #attend}, for one thread. */
    public Workspace newWorkspace() {
        return new Workspace(rank, map.scratchFloats());
    }

    /** Copies the scaled row sums of buffer {@code b}: {@code H}, {@code z} and the log-scales {@code c}. */
    void copy(int b, float[] hDst, float[] zDst, float[] logScaleDst) {
        System.arraycopy(h[b], 0, hDst, 0, h[b].length);
        System.arraycopy(z[b], 0, zDst, 0, rank);
        System.arraycopy(logScale[b], 0, logScaleDst, 0, rank);
    }

    /** Returns a copy of buffer {@code b}'s key mean {@code μ}. */
    float[] keyMean(int b) {
        return keyMean[b].clone();
    }

    /** Working memory of {@link #attend}: the query's log-features and the map's scratch. */
    public static final class Workspace {
        private final float[] features;
        private final double[] logWeights;
        private final float[] scratch;

        private Workspace(int rank, int scratchFloats) {
            this.features = new float[rank];
            this.logWeights = new double[rank];
            this.scratch = new float[scratchFloats];
        }
    }
}
