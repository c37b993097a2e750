package io.github.kvcache4j.store;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** What {@link Q8} and {@link Q4} share: the group of 32 values, the float32 field layout and the scale rounding. */
final class QuantGroups {

    /** Values per group: each group of a row has its own scale. */
    static final int GROUP = 32;
    /** A little-endian float32 at any byte offset. */
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private QuantGroups() {
    }

    /** Returns the groups of a row of {@code headDim} values. */
    static int groups(int headDim) {
        if (headDim <= 0 || headDim % GROUP != 0) {
            throw new IllegalArgumentException("headDim must be a positive multiple of " + GROUP + ", got " + headDim);
        }
        return headDim / GROUP;
    }

    /**
     * Returns the largest float not above {@code exact} (which is {@code >= 0}). A scale rounded
     * down keeps the largest decoded value at or below the largest input, so decoding a row that
     * reaches {@link Float#MAX_VALUE} cannot overflow; the codes of the extreme elements are clamped.
     */
    static float scaleAtMost(double exact) {
        float d = (float) exact;
        return d > exact ? Math.nextDown(d) : d;
    }
}
