package io.github.kvcache4j.sharing;

import java.util.Arrays;
import java.util.Objects;

/**
 * Cross-layer KV sharing: which layer's keys and values each layer reads. Entry {@code i} is the
 * source of layer {@code i}; a source reads itself and is the only kind of layer that stores KV.
 * Immutable.
 *
 * <p>A plan comes from code ({@link #of}, {@link #identity}), from the LCKV {@code layer_types}
 * string ({@link #parse}: {@code "0_0_2_2"} for CLA with pairs, {@code "0_3_3_3"} for LCKV with
 * one warm-up layer and every other layer reading the top one), or from a model file (the
 * reference decoder reads the GGUF key {@code llama.attention.kv_source_layers}).
 *
 * <p>A layer may read a source above it (LCKV's top-layer mode). In the forward order of a
 * decoder such a layer attends before its source has stored the current token, so it sees the
 * previous tokens only; see {@link #readsLaterLayer()}.
 */
public final class SharingPlan {

    private final int[] sources;
    /** Per layer, the index of its source among the source layers, in layer order. */
    private final int[] storageIndex;

    private SharingPlan(int[] sources) {
        this.sources = sources;
        this.storageIndex = new int[sources.length];
        int stored = 0;
        for (int l = 0; l < sources.length; l++) {
            if (sources[l] == l) {
                storageIndex[l] = stored++;
            }
        }
        for (int l = 0; l < sources.length; l++) {
            storageIndex[l] = storageIndex[sources[l]];
        }
    }

    /**
     * Returns the plan in which layer {@code i} reads layer {@code sources[i]}.
     *
     * @throws IllegalArgumentException if there is no entry, an entry is outside
     *     {@code [0, sources.length)}, or an entry names a layer that is not its own source
     */
    public static SharingPlan of(int... sources) {
        Objects.requireNonNull(sources, "sources");
        return new SharingPlan(validated("kvSourceLayers", sources.clone()));
    }

    /**
     * Returns the plan without sharing: every one of {@code layers} layers reads itself.
     *
     * @throws IllegalArgumentException if {@code layers < 1}
     */
    public static SharingPlan identity(int layers) {
        if (layers < 1) {
            throw new IllegalArgumentException("layers must be >= 1, got " + layers);
        }
        int[] s = new int[layers];
        Arrays.setAll(s, i -> i);
        return new SharingPlan(s);
    }

    /**
     * Parses an LCKV {@code layer_types} string: integers separated by {@code '_'}, entry
     * {@code i} the layer whose KV layer {@code i} reads (for example {@code "0_0_2_2"}).
     *
     * @throws IllegalArgumentException if an entry is not a non-negative integer or the plan is
     *     invalid (see {@link #of}); the message names the entry
     */
    public static SharingPlan parse(String layerTypes) {
        Objects.requireNonNull(layerTypes, "layerTypes");
        String[] parts = layerTypes.trim().split("_", -1);
        int[] s = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].trim();
            if (p.isEmpty() || !p.chars().allMatch(c -> c >= '0' && c <= '9') || p.length() > 9) {
                throw new IllegalArgumentException("layer_types[" + i + "] = '" + parts[i]
                        + "' is not a layer index (expected digits separated by '_', got '" + layerTypes + "')");
            }
            s[i] = Integer.parseInt(p);
        }
        return new SharingPlan(validated("layer_types", s));
    }

    private static int[] validated(String name, int[] s) {
        int n = s.length;
        if (n == 0) {
            throw new IllegalArgumentException(name + " must have one entry per layer, got none");
        }
        for (int i = 0; i < n; i++) {
            if (s[i] < 0 || s[i] >= n) {
                throw new IllegalArgumentException(name + "[" + i + "] = " + s[i] + " is outside [0, " + n + ")");
            }
        }
        for (int i = 0; i < n; i++) {
            if (s[s[i]] != s[i]) {
                throw new IllegalArgumentException(name + "[" + i + "] = " + s[i] + " is not a source layer: "
                        + name + "[" + s[i] + "] = " + s[s[i]] + " (a source reads itself)");
            }
        }
        return s;
    }

    /** Returns the number of layers. */
    public int layers() {
        return sources.length;
    }

    /**
     * Returns the layer whose KV {@code layer} reads.
     *
     * @throws IndexOutOfBoundsException if {@code layer} is outside {@code [0, layers())}
     */
    public int sourceOf(int layer) {
        return sources[layer];
    }

    /** Returns whether {@code layer} stores its own KV (reads itself). */
    public boolean isSource(int layer) {
        return sources[layer] == layer;
    }

    /**
     * Returns the index of {@code layer}'s source among the source layers in layer order, in
     * {@code [0, sourceCount())}: a cache stores the KV of source {@code i} in its {@code i}-th
     * group of buffers, and a layer that reads another layer reads that group.
     */
    public int storageIndex(int layer) {
        return storageIndex[layer];
    }

    /** Returns the number of layers that store KV; memory is reserved for these only. */
    public int sourceCount() {
        int n = 0;
        for (int i = 0; i < sources.length; i++) {
            n += sources[i] == i ? 1 : 0;
        }
        return n;
    }

    /** Returns the number of layers that read another layer's KV. */
    public int sharedCount() {
        return sources.length - sourceCount();
    }

    /**
     * Returns whether some layer reads a source above it (LCKV's top-layer mode). A decoder must
     * then run tokens one at a time: such a layer attends to the previous tokens of its source
     * only, and the KV of the current token exists after the source has run.
     */
    public boolean readsLaterLayer() {
        for (int i = 0; i < sources.length; i++) {
            if (sources[i] > i) {
                return true;
            }
        }
        return false;
    }

    /** Returns a copy of the sources, one per layer. */
    public int[] sources() {
        return sources.clone();
    }

    /** Returns the plan in LCKV {@code layer_types} form, for example {@code "0_0_2_2"}. */
    public String toLayerTypes() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < sources.length; i++) {
            b.append(i == 0 ? "" : "_").append(sources[i]);
        }
        return b.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SharingPlan p && Arrays.equals(sources, p.sources);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(sources);
    }

    /** Returns {@code SharingPlan[0_0_2_2]}. */
    @Override
    public String toString() {
        return "SharingPlan[" + toLayerTypes() + "]";
    }
}
