package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy;
import java.util.Arrays;

/**
 * KeyDiff, "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in
 * Resource-Constrained Environments" (Park et al. 2025; kvpress
 * {@code KeyDiffPress}): keys that differ most from the others are kept. Per (layer, kv-head) the
 * anchor is the mean of the normalised resident keys, {@code a = (1/n) Σ_j k_j / ‖k_j‖}, and a
 * key scores {@code s_j = -cos(k_j, a) = -k_jᵀa / (‖k_j‖ ‖a‖)}, so the keys most aligned with the
 * anchor are evicted first. Query-agnostic: no attention weights are needed. The keys are the
 * stored rows ({@link BufferView#key}, after RoPE, as kvpress scores the cached keys); a zero key
 * (or anchor) scores 0.
 *
 * <p>Each request for victims reads every resident key twice (anchor, then scores): {@code O(n d)},
 * the cost of one attention call, on a decode step that needs room as well. No per-slot state.
 * Ties: the later position is evicted first.
 */
public final class KeyDiffPolicy implements EvictionPolicy {

    /** Norms below this count as zero (PyTorch's {@code F.normalize} epsilon). */
    private static final double TINY = 1e-12;

    /** Creates KeyDiff. */
    public KeyDiffPolicy() {
    }

    @Override
    public String name() {
        return "keydiff";
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return new KeyDiffTracker(shape);
    }

    private static final class KeyDiffTracker extends SlotTracker {
        private float[] key = new float[0];
        private double[] anchor = new double[0];

        KeyDiffTracker(Shape shape) {
            super(shape);
        }

        @Override
        protected void score(int buffer, BufferView view, int[] candidates, int n, double[] scores) {
            int d = view.headDim();
            if (key.length != d) {
                key = new float[d];
                anchor = new double[d];
            }
            Arrays.fill(anchor, 0.0);
            // The anchor is over every resident key; the candidates are all of them (no window).
            for (int slot = 0; slot < view.resident(); slot++) {
                view.key(slot, key, 0);
                double norm = RowMath.norm(key);
                if (norm > TINY) {
                    for (int i = 0; i < d; i++) {
                        anchor[i] += key[i] / norm;
                    }
                }
            }
            double anchorNorm = 0;
            for (double a : anchor) {
                anchorNorm += a * a;
            }
            anchorNorm = Math.sqrt(anchorNorm);
            for (int c = 0; c < n; c++) {
                view.key(candidates[c], key, 0);
                double norm = RowMath.norm(key);
                if (norm <= TINY || anchorNorm <= TINY) {
                    scores[c] = 0;
                    continue;
                }
                double dot = 0;
                for (int i = 0; i < d; i++) {
                    dot += key[i] * anchor[i];
                }
                scores[c] = -dot / (norm * anchorNorm);
            }
        }

        @Override
        protected SlotTracker blank() {
            return new KeyDiffTracker(shape());
        }
    }
}
