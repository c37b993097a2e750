package io.github.kvcache4j;

/** Storage type of cached keys and values. */
public enum DType {
    /** IEEE 754 binary32. */
    F32(4),
    /** IEEE 754 binary16 (half precision), rounded to nearest even on store. */
    F16(2),
    /** bfloat16 (the upper half of a binary32), rounded to nearest even on store. */
    BF16(2);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Returns the number of bytes one element occupies. */
    public int bytes() {
        return bytes;
    }
}
