package io.github.kvcache4j;

import io.github.kvcache4j.kernel.QuantizedLayout;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.sharing.SharingPlan;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.concurrent.Executor;

/**
 * The shape and behaviour of a {@link KvCache}: dimensions, capacity, storage type, eviction
 * policy, an optional key rotation (for the quantized storage types), optional cross-layer
 * sharing, an optional LESS residual and an optional executor for attention. Immutable; one
 * config can create many caches (one per sequence). Build with {@link #builder()}.
 */
public final class KvCacheConfig {

    private final int layers;
    private final int kvHeads;
    private final int queryHeads;
    private final int headDim;
    private final int capacity;
    private final DType dtype;
    private final Long keyRotationSeed;
    private final EvictionPolicy policy;
    private final Executor executor;
    private final KvPool.Exhaustion poolExhaustion;
    private final SharingPlan sharing;
    private final FeatureMap less;

    private KvCacheConfig(Builder b) {
        this.layers = positive("layers", b.layers);
        this.kvHeads = positive("kvHeads", b.kvHeads);
        this.queryHeads = positive("queryHeads", b.queryHeads);
        this.headDim = positive("headDim", b.headDim);
        this.capacity = positive("capacity", b.capacity);
        if (queryHeads % kvHeads != 0) {
            throw new IllegalArgumentException("queryHeads (" + queryHeads
                    + ") must be a multiple of kvHeads (" + kvHeads + ")");
        }
        checkAddressable(layers, kvHeads, queryHeads / kvHeads, headDim, capacity);
        this.dtype = Objects.requireNonNull(b.dtype, "dtype");
        if (dtype.isQuantized() && headDim % QuantizedLayout.GROUP != 0) {
            throw new IllegalArgumentException("headDim must be a multiple of " + QuantizedLayout.GROUP + " for dtype "
                    + dtype + " (its groups of " + QuantizedLayout.GROUP + " elements share a scale), got " + headDim);
        }
        this.keyRotationSeed = b.keyRotationSeed;
        if (keyRotationSeed != null && !dtype.isQuantized()) {
            throw new IllegalArgumentException("keyRotation applies to the quantized dtypes Q8 and Q4 only, "
                    + "got dtype " + dtype);
        }
        this.policy = Objects.requireNonNull(b.policy, "policy");
        if (policy.protectedTokens() >= capacity) {
            throw new IllegalArgumentException("capacity (" + capacity + ") must be > the "
                    + policy.protectedTokens() + " tokens policy " + policy.name() + " protects");
        }
        this.executor = b.executor;
        this.poolExhaustion = Objects.requireNonNull(b.poolExhaustion, "poolExhaustion");
        this.sharing = b.kvSourceLayers == null ? SharingPlan.identity(layers) : validSources(b.kvSourceLayers, layers);
        this.less = b.less;
        if (less != null) {
            if (less.headDim() != headDim) {
                throw new IllegalArgumentException("less: feature map " + less.name() + " has headDim "
                        + less.headDim() + ", but headDim is " + headDim);
            }
            less.checkShape(layers, queryHeads, kvHeads);
        }
    }

    private static int positive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be > 0, got " + value);
        }
        return value;
    }

    /** The largest Java array; some VMs reserve a few header words. */
    private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

    /**
     * Rejects shapes whose per-head work arrays (capacity rounded up to whole key tiles, times the
     * head dimension or the group size), query row ({@code queryHeads × headDim}) or buffer count
     * would not fit a Java array or an int index.
     */
    private static void checkAddressable(int layers, int kvHeads, int groupSize, int headDim, int capacity) {
        long tiles = KeyTiles.roundToTiles((long) capacity);
        long floats = tiles * Math.max(headDim, groupSize);
        if (floats > MAX_ARRAY) {
            throw new IllegalArgumentException("capacity (" + capacity + ") rounded up to " + tiles
                    + " times max(headDim, queryHeads / kvHeads) (" + Math.max(headDim, groupSize)
                    + ") must be at most " + MAX_ARRAY + ", got " + floats);
        }
        // One query row of a layer is a single Java array; kvHeads <= queryHeads bounds the key row too.
        long queryRow = (long) groupSize * kvHeads * headDim;
        if (queryRow > MAX_ARRAY) {
            throw new IllegalArgumentException("queryHeads (" + (long) groupSize * kvHeads + ") times headDim ("
                    + headDim + ") must be at most " + MAX_ARRAY + ", got " + queryRow);
        }
        if ((long) layers * kvHeads > MAX_ARRAY) {
            throw new IllegalArgumentException("layers (" + layers + ") times kvHeads (" + kvHeads
                    + ") must be at most " + MAX_ARRAY);
        }
    }

    private static SharingPlan validSources(int[] sources, int layers) {
        if (sources.length != layers) {
            throw new IllegalArgumentException("kvSourceLayers has " + sources.length
                    + " entries, expected one per layer (" + layers + ")");
        }
        return SharingPlan.of(sources);
    }

    /** Returns a builder with dtype {@link DType#F32} and policy {@link Policies#full()}. */
    public static Builder builder() {
        return new Builder();
    }

    /** Returns a builder initialised from this config. */
    public Builder toBuilder() {
        Builder b = new Builder().layers(layers).kvHeads(kvHeads).queryHeads(queryHeads).headDim(headDim)
                .capacity(capacity).dtype(dtype).policy(policy).executor(executor).poolExhaustion(poolExhaustion)
                .sharing(sharing).less(less);
        b.keyRotationSeed = keyRotationSeed;
        return b;
    }

    /** Returns the number of transformer layers. */
    public int layers() {
        return layers;
    }

    /** Returns the key/value heads per layer. */
    public int kvHeads() {
        return kvHeads;
    }

    /** Returns the query heads per layer; query head {@code h} reads kv-head {@code h / groupSize()}. */
    public int queryHeads() {
        return queryHeads;
    }

    /** Returns the query heads per kv-head. */
    public int groupSize() {
        return queryHeads / kvHeads;
    }

    /** Returns the elements per head vector. */
    public int headDim() {
        return headDim;
    }

    /** Returns the most tokens resident per (layer, kv-head). */
    public int capacity() {
        return capacity;
    }

    /** Returns the storage type of keys and values. */
    public DType dtype() {
        return dtype;
    }

    /**
     * Returns the seed of the randomized Hadamard rotation applied to keys before they are
     * quantized, or empty when keys are stored as given.
     */
    public OptionalLong keyRotationSeed() {
        return keyRotationSeed == null ? OptionalLong.empty() : OptionalLong.of(keyRotationSeed);
    }

    /** Returns the eviction policy. */
    public EvictionPolicy policy() {
        return policy;
    }

    /** Returns what an append does when a shared {@link KvPool} has no free block. */
    public KvPool.Exhaustion poolExhaustion() {
        return poolExhaustion;
    }

    /** Returns the executor attention fans out on, or null to run on the calling thread. */
    public Executor executor() {
        return executor;
    }

    /** Returns, per layer, the layer whose KV it reads (itself when it stores its own). */
    public int[] kvSourceLayers() {
        return sharing.sources();
    }

    /** Returns the cross-layer sharing plan (the identity when no layer shares). */
    public SharingPlan sharing() {
        return sharing;
    }

    /** Returns the feature map of the LESS residual, or null when the cache keeps none. */
    public FeatureMap less() {
        return less;
    }

    /**
     * Returns whether {@code layer} stores its own KV.
     *
     * @throws IllegalArgumentException if {@code layer} is not in {@code [0, layers)}
     */
    public boolean isSourceLayer(int layer) {
        if (layer < 0 || layer >= layers) {
            throw new IllegalArgumentException("layer must be in [0, " + layers + "), got " + layer);
        }
        return sharing.isSource(layer);
    }

    /** Returns the number of layers that store KV. */
    public int sourceLayerCount() {
        return sharing.sourceCount();
    }

    @Override
    public String toString() {
        return "KvCacheConfig[layers=" + layers + ", kvHeads=" + kvHeads + ", queryHeads=" + queryHeads
                + ", headDim=" + headDim + ", capacity=" + capacity + ", dtype=" + dtype
                + (keyRotationSeed == null ? "" : ", keyRotation=" + keyRotationSeed)
                + ", policy=" + policy.name() + (less == null ? "" : ", less=" + less.name())
                + ", sharing=" + sharing.toLayerTypes() + "]";
    }

    /** Collects the settings of a {@link KvCacheConfig}; {@link #build()} validates them. */
    public static final class Builder {
        private int layers;
        private int kvHeads;
        private int queryHeads;
        private int headDim;
        private int capacity;
        private DType dtype = DType.F32;
        private Long keyRotationSeed;
        private EvictionPolicy policy = Policies.full();
        private Executor executor;
        private KvPool.Exhaustion poolExhaustion = KvPool.Exhaustion.THROW;
        private int[] kvSourceLayers;
        private FeatureMap less;

        private Builder() {
        }

        /** Sets the number of layers. */
        public Builder layers(int layers) {
            this.layers = layers;
            return this;
        }

        /** Sets the key/value heads per layer. */
        public Builder kvHeads(int kvHeads) {
            this.kvHeads = kvHeads;
            return this;
        }

        /** Sets the query heads per layer (a multiple of kvHeads). */
        public Builder queryHeads(int queryHeads) {
            this.queryHeads = queryHeads;
            return this;
        }

        /** Sets the elements per head vector. */
        public Builder headDim(int headDim) {
            this.headDim = headDim;
            return this;
        }

        /** Sets the most tokens resident per (layer, kv-head). */
        public Builder capacity(int capacity) {
            this.capacity = capacity;
            return this;
        }

        /**
         * Sets the storage type (default F32). {@link DType#Q8} and {@link DType#Q4} need a head
         * dimension that is a multiple of 32.
         */
        public Builder dtype(DType dtype) {
            this.dtype = dtype;
            return this;
        }

        /**
         * Rotates every key by a randomized Hadamard transform of the head dimension before it is
         * quantized, and every query alike before attention, so {@code q·k} is unchanged while an
         * outlier channel is spread over the whole row (QuaRot, Ashkboos et al. 2024; llama.cpp's
         * rotated KV cache). The signs of the transform come from {@code seed}. Only for dtypes
         * {@link DType#Q8} and {@link DType#Q4}; {@link KvCache#read} returns keys un-rotated. Off
         * by default. With rotation a key element must not exceed {@code Float.MAX_VALUE / √headDim}
         * in magnitude, so that every rotated element stays finite.
         */
        public Builder keyRotation(long seed) {
            this.keyRotationSeed = seed;
            return this;
        }

        /** Stores keys as given, without rotation (the default); undoes {@link #keyRotation(long)}. */
        public Builder noKeyRotation() {
            this.keyRotationSeed = null;
            return this;
        }

        /** Sets the eviction policy (default {@link Policies#full()}). */
        public Builder policy(EvictionPolicy policy) {
            this.policy = policy;
            return this;
        }

        /**
         * Sets what an append does when the cache's shared {@link KvPool} has no free block
         * (default {@link KvPool.Exhaustion#THROW}). A cache with a private pool never runs out.
         */
        public Builder poolExhaustion(KvPool.Exhaustion exhaustion) {
            this.poolExhaustion = exhaustion;
            return this;
        }

        /** Sets an executor that attention fans out on, one task per kv-head (default none). */
        public Builder executor(Executor executor) {
            this.executor = executor;
            return this;
        }

        /**
         * Sets cross-layer sharing: layer {@code i} reads the KV of layer {@code sources[i]};
         * source layers read themselves. Null (the default) means every layer stores its own.
         */
        public Builder kvSourceLayers(int[] sources) {
            this.kvSourceLayers = sources == null ? null : sources.clone();
            return this;
        }

        /**
         * Sets cross-layer sharing from a plan (the same as {@code kvSourceLayers(plan.sources())});
         * its layer count must equal {@link #layers}. Null means every layer stores its own.
         */
        public Builder sharing(SharingPlan plan) {
            this.kvSourceLayers = plan == null ? null : plan.sources();
            return this;
        }

        /**
         * Adds a LESS residual (Dong et al. 2024, arXiv 2402.09398) to the cache: every evicted
         * token is folded into a constant-size state per (source layer, kv-head) through
         * {@code featureMap}, and attention adds the state's estimate of the evicted tokens'
         * share. Works with every policy; null (the default) keeps no residual. Typical:
         * {@code less(FeatureMap.positiveRandom(headDim, 32, seed))}.
         */
        public Builder less(FeatureMap featureMap) {
            this.less = featureMap;
            return this;
        }

        /**
         * Returns the config.
         *
         * @throws IllegalArgumentException if a setting is missing or out of range
         */
        public KvCacheConfig build() {
            return new KvCacheConfig(this);
        }
    }
}
