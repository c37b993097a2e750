package io.github.kvcache4j;

import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.store.KvStore;

/**
 * The argument checks of a cache, one path for both input kinds: every public call checks all
 * its arguments here before it changes anything, and each message names the argument and its
 * bound ({@code docs/errors.md} lists them).
 */
final class Arguments {

    /** Largest finite binary16 magnitude; larger keys or values would be stored as infinities. */
    static final float F16_MAX = 65504f;

    /**
     * Smallest magnitude that bfloat16 rounding (to nearest, ties to even) turns into infinity:
     * halfway between the largest finite bfloat16, {@code 0x7F7F}, and infinity.
     */
    static final float BF16_OVERFLOW = Float.intBitsToFloat(0x7F7F8000);

    private final int layers;
    private final int kvHeads;
    private final int capacity;
    private final DType dtype;
    private final SharingPlan plan;
    /**
     * With key rotation, the largest key magnitude, {@code Float.MAX_VALUE / √headDim} rounded
     * down: a rotated element is at most the row's norm, at most {@code √headDim} times its
     * largest element. Infinity without rotation.
     */
    private final float rotatedKeyMax;

    Arguments(KvCacheConfig config) {
        this.plan = config.sharing();
        this.layers = config.layers();
        this.kvHeads = config.kvHeads();
        this.capacity = config.capacity();
        this.dtype = config.dtype();
        this.rotatedKeyMax = config.keyRotationSeed().isPresent()
                ? Math.nextDown((float) (Float.MAX_VALUE / Math.sqrt(config.headDim()))) : Float.POSITIVE_INFINITY;
    }

    /** Rejects a query at {@code firstPosition} of {@code layer} that would see no resident token of {@code store}. */
    void checkVisible(KvStore store, int layer, int firstPosition) {
        if (plan.sourceOf(layer) > layer) {
            return; // top-layer mode: before the source's first token nothing is visible, by design
        }
        int base = plan.storageIndex(layer) * kvHeads;
        for (int h = 0; h < kvHeads; h++) {
            int b = base + h;
            int n = store.size(b);
            int[] pos = store.positions(b);
            int earliest = Integer.MAX_VALUE;
            if (store.ordered(b)) {
                earliest = n == 0 ? earliest : pos[0];
            } else {
                for (int j = 0; j < n; j++) {
                    earliest = Math.min(earliest, pos[j]);
                }
            }
            if (earliest > firstPosition) {
                throw new IllegalArgumentException("position " + firstPosition + " precedes every token "
                        + "resident in layer " + layer + ", kv-head " + h
                        + (n == 0 ? " (none is resident)" : " (earliest " + earliest + ")"));
            }
        }
    }

    void checkLayer(int layer) {
        checkIndex("layer", layer, layers);
    }

    void checkKvHead(int kvHead) {
        checkIndex("kvHead", kvHead, kvHeads);
    }

    static void checkIndex(String name, int value, int bound) {
        if (value < 0 || value >= bound) {
            throw new IllegalArgumentException(name + " must be in [0, " + bound + "), got " + value);
        }
    }

    void checkTokens(int tokens) {
        if (tokens < 1 || tokens > capacity) {
            throw new IllegalArgumentException("tokens must be in [1, " + capacity + "] (the capacity), got " + tokens);
        }
    }

    static void checkFirstPosition(int firstPosition, int tokens) {
        if (firstPosition < 0 || firstPosition > Integer.MAX_VALUE - tokens + 1) {
            throw new IllegalArgumentException("firstPosition must be in [0, " + (Integer.MAX_VALUE - tokens + 1)
                    + "] for " + tokens + " tokens, got " + firstPosition);
        }
    }

    /** Checks an append's target: a source layer, a chunk size, positions after the layer's last. */
    void checkAppend(int layer, int source, int firstPosition, int tokens, int lastPosition) {
        checkLayer(layer);
        if (source != layer) {
            throw new IllegalArgumentException("layer " + layer + " reads the KV of layer " + source
                    + " and stores none: append to layer " + source);
        }
        checkTokens(tokens);
        checkFirstPosition(firstPosition, tokens);
        if (firstPosition <= lastPosition) {
            throw new IllegalArgumentException("position must be > " + lastPosition
                    + " (the last position appended to layer " + layer + "), got " + firstPosition);
        }
    }

    /** Checks the size of an input, then that every element is finite. */
    static void checkFinite(FloatRows in, long expectedFloats) {
        checkSize(in, expectedFloats);
        for (long i = 0; i < expectedFloats; i++) {
            float f = in.get(i);
            if (!Float.isFinite(f)) {
                throw new IllegalArgumentException(in.name() + "[" + i + "] must be finite, got " + f);
            }
        }
    }

    /**
     * Checks the size of keys or values to be stored, then that every element is finite and stays
     * finite in the storage type.
     */
    void checkStorable(FloatRows in, long expectedFloats) {
        checkFinite(in, expectedFloats);
        float limit = switch (dtype) {
            // Q8 and Q4 scale each group by a float32, so every finite row fits.
            case F32, Q8, Q4 -> Float.POSITIVE_INFINITY;
            case F16 -> Math.nextUp(F16_MAX);
            case BF16 -> BF16_OVERFLOW;
        };
        if (limit == Float.POSITIVE_INFINITY) {
            return;
        }
        for (long i = 0; i < expectedFloats; i++) {
            float f = in.get(i);
            if (Math.abs(f) >= limit) {
                throw new IllegalArgumentException(in.name() + "[" + i + "] = " + f + " is outside the "
                        + dtype + " range " + rangeOf(dtype));
            }
        }
    }

    /** Checks keys as {@link #checkStorable} does, and, with key rotation, their magnitude bound. */
    void checkStorableKeys(FloatRows in, long expectedFloats) {
        checkStorable(in, expectedFloats);
        if (rotatedKeyMax == Float.POSITIVE_INFINITY) {
            return;
        }
        for (long i = 0; i < expectedFloats; i++) {
            float f = in.get(i);
            if (Math.abs(f) > rotatedKeyMax) {
                throw new IllegalArgumentException(in.name() + "[" + i + "] = " + f + " exceeds " + rotatedKeyMax
                        + " (Float.MAX_VALUE / sqrt(headDim)), the largest key a rotated cache stores");
            }
        }
    }

    private static String rangeOf(DType dtype) {
        return dtype == DType.F16 ? "[-65504, 65504]"
                : "(-" + BF16_OVERFLOW + ", " + BF16_OVERFLOW + ") (larger magnitudes round to infinity)";
    }

    private static void checkSize(FloatRows in, long expectedFloats) {
        boolean ok = in instanceof FloatRows.OfSegment s
                ? s.wholeFloats() && s.size() == expectedFloats
                : in.size() == expectedFloats;
        if (!ok) {
            long got = in instanceof FloatRows.OfSegment s ? s.bytes() : in.size();
            throw new IllegalArgumentException(in.name() + " must have " + in.describeSize(expectedFloats)
                    + ", got " + got);
        }
    }

    /** Rejects an output array that is also the queries: the kernels read queries while they write. */
    static void checkNotAliased(float[] queries, float[] out) {
        if (queries == out) {
            throw new IllegalArgumentException("out must not be the queries array (attention reads the queries "
                    + "while it writes the output)");
        }
    }

    static void checkRatio(double ratio) {
        if (!(ratio >= 0.0 && ratio < 1.0)) {
            throw new IllegalArgumentException("ratio must be in [0, 1), got " + ratio);
        }
    }

    static void checkTarget(int targetTokens) {
        if (targetTokens < 0) {
            throw new IllegalArgumentException("targetTokens must be >= 0, got " + targetTokens);
        }
    }
}
