package io.github.kvcache4j.kernel;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The byte layout of the quantized row formats Q8 and Q4 ({@code docs/quantization.md}), owned here
 * so that the encoders of the store and the kernels that read the rows share one definition.
 *
 * <p>A row of {@code headDim} values is {@code headDim / }{@value #GROUP} groups one after the
 * other. A Q8 group is a float32 scale {@code d} at {@value #Q8_SCALE} and 32 int8 codes from
 * {@value #Q8_CODES}: value {@code d·q_i}. A Q4 group is a float32 scale {@code d} at
 * {@value #Q4_SCALE}, a float32 minimum {@code m} at {@value #Q4_MIN} and 16 bytes from
 * {@value #Q4_CODES}, byte {@code j} holding the 4-bit code of element {@code j} in its low and of
 * element {@code j + 16} in its high nibble: value {@code m + d·c_i}. All little-endian.
 */
public final class QuantizedLayout {

    /** Values per group; each group has its own scale. */
    public static final int GROUP = 32;
    /** Byte offset of a Q8 group's scale. */
    public static final int Q8_SCALE = 0;
    /** Byte offset of a Q8 group's 32 int8 codes. */
    public static final int Q8_CODES = 4;
    /** Bytes of a Q8 group. */
    public static final int Q8_GROUP_BYTES = Q8_CODES + GROUP;
    /** Byte offset of a Q4 group's scale. */
    public static final int Q4_SCALE = 0;
    /** Byte offset of a Q4 group's minimum. */
    public static final int Q4_MIN = 4;
    /** Byte offset of a Q4 group's 16 bytes of codes. */
    public static final int Q4_CODES = 8;
    /** Bytes of a Q4 group. */
    public static final int Q4_GROUP_BYTES = Q4_CODES + GROUP / 2;
    /** A little-endian float32 at any byte offset: the scales and minima. */
    public static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private QuantizedLayout() {
    }

    /**
     * Returns the groups of a row of {@code headDim} values.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of {@value #GROUP}
     */
    public static int groups(int headDim) {
        if (headDim <= 0 || headDim % GROUP != 0) {
            throw new IllegalArgumentException("headDim must be a positive multiple of " + GROUP + ", got " + headDim);
        }
        return headDim / GROUP;
    }
}
