package io.github.kvcache4j;

import io.github.kvcache4j.kernel.QuantizedLayout;

/**
 * Storage type of cached keys and values. F32, F16 and BF16 store each element on its own; Q8 and
 * Q4 store a row of {@code headDim} elements (a multiple of {@value QuantizedLayout#GROUP}) as
 * groups of {@value QuantizedLayout#GROUP} integer codes with a float32 scale per group (Q4 also a
 * minimum), laid out as {@code docs/quantization.md} describes.
 */
public enum DType {
    /** IEEE 754 binary32. */
    F32(4),
    /** IEEE 754 binary16 (half precision), rounded to nearest even on store. */
    F16(2),
    /** bfloat16 (the upper half of a binary32), rounded to nearest even on store. */
    BF16(2),
    /**
     * 8-bit symmetric codes, one float32 scale per group of 32 elements of a row (ggml's
     * {@code q8_0}): 36 bytes per 32 elements, 144 per row of 128.
     */
    Q8(0),
    /**
     * 4-bit asymmetric codes, a float32 scale and minimum per group of 32 elements of a row
     * (ggml's {@code q4_1}, KIVI): 24 bytes per 32 elements, 96 per row of 128.
     */
    Q4(0);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /**
     * Returns the number of bytes one element occupies.
     *
     * @throws UnsupportedOperationException for {@link #Q8} and {@link #Q4}, whose elements share
     *     their group's scale: use {@link #rowBytes(int)}
     */
    public int bytes() {
        if (isQuantized()) {
            throw new UnsupportedOperationException(this + " has no size per element (its groups of "
                    + QuantizedLayout.GROUP + " share a scale): use rowBytes(headDim)");
        }
        return bytes;
    }

    /** Returns whether rows are stored as groups of integer codes with scales ({@link #Q8}, {@link #Q4}). */
    public boolean isQuantized() {
        return this == Q8 || this == Q4;
    }

    /**
     * Returns the bytes one stored row (the key or the value of one token in one kv-head) of
     * {@code headDim} elements occupies.
     *
     * @throws IllegalArgumentException if {@code headDim < 1}, or, for {@link #Q8} and
     *     {@link #Q4}, not a multiple of {@value QuantizedLayout#GROUP}
     */
    public long rowBytes(int headDim) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        }
        if (isQuantized() && headDim % QuantizedLayout.GROUP != 0) {
            throw new IllegalArgumentException("headDim must be a multiple of " + QuantizedLayout.GROUP + " for "
                    + this + ", got " + headDim);
        }
        return switch (this) {
            case F32, F16, BF16 -> (long) headDim * bytes;
            // Qualified: inside the enum, Q8 and Q4 name the constants, not the row formats.
            case Q8 -> io.github.kvcache4j.store.Q8.rowBytes(headDim);
            case Q4 -> io.github.kvcache4j.store.Q4.rowBytes(headDim);
        };
    }
}
