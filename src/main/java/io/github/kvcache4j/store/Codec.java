package io.github.kvcache4j.store;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Scalar encoding and decoding of stored elements of the element-wise dtypes F32, F16 and BF16.
 * Encoding rounds to nearest even; zero, subnormals, infinities and NaN keep their class (a NaN
 * stays a NaN, quiet). Q8 and Q4 store whole rows ({@link Q8}, {@link Q4}, {@link QuantCodec}) and
 * are rejected here.
 */
public final class Codec {

    private static final ValueLayout.OfFloat F32 =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Codec() {
    }

    /** Returns the bfloat16 bits of {@code f}, rounded to nearest even. */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** Returns the float value of bfloat16 bits. */
    public static float bf16ToFloat(short h) {
        return Float.intBitsToFloat(h << 16);
    }

    /**
     * Writes {@code count} floats from {@code src[srcOff..]} as the elements at
     * {@code index, index + stride, ...}.
     *
     * @throws IllegalArgumentException for {@link DType#Q8} and {@link DType#Q4}
     */
    public static void encode(float[] src, int srcOff, MemorySegment dst, DType dtype, long index, int stride, int count) {
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(F32, (index + (long) i * stride) * 4, src[srcOff + i]);
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(I16, (index + (long) i * stride) * 2, Float.floatToFloat16(src[srcOff + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(I16, (index + (long) i * stride) * 2, floatToBf16(src[srcOff + i]));
                }
            }
            case Q8, Q4 -> throw rowWise(dtype);
        }
    }

    private static void checkElementwise(DType dtype) {
        if (dtype.isQuantized()) {
            throw rowWise(dtype);
        }
    }

    private static IllegalArgumentException rowWise(DType dtype) {
        return new IllegalArgumentException("dtype " + dtype + " stores whole rows, not elements: use "
                + dtype + ".encode and " + dtype + ".decode");
    }

    /** Writes {@code count} floats from {@code src[srcOff..]} as elements {@code [index, index+count)}. */
    public static void encode(float[] src, int srcOff, MemorySegment dst, DType dtype, long index, int count) {
        encode(src, srcOff, dst, dtype, index, 1, count);
    }

    /**
     * Reads the elements at {@code index, index + stride, ...} into {@code dst[dstOff..]} as
     * {@code count} floats.
     *
     * @throws IllegalArgumentException for {@link DType#Q8} and {@link DType#Q4}
     */
    public static void decode(MemorySegment src, DType dtype, long index, int stride, float[] dst, int dstOff, int count) {
        checkElementwise(dtype);
        for (int i = 0; i < count; i++) {
            long at = index + (long) i * stride;
            dst[dstOff + i] = switch (dtype) {
                case F32 -> src.get(F32, at * 4);
                case F16 -> Float.float16ToFloat(src.get(I16, at * 2));
                case BF16 -> bf16ToFloat(src.get(I16, at * 2));
                case Q8, Q4 -> throw rowWise(dtype);
            };
        }
    }

    /** Reads elements {@code [index, index+count)} into {@code dst[dstOff..]} as floats. */
    public static void decode(MemorySegment src, DType dtype, long index, float[] dst, int dstOff, int count) {
        decode(src, dtype, index, 1, dst, dstOff, count);
    }

    /**
     * Returns {@code f} after a round trip through {@code dtype}.
     *
     * @throws IllegalArgumentException for {@link DType#Q8} and {@link DType#Q4}, whose round trip
     *     depends on the whole group
     */
    public static float roundTrip(float f, DType dtype) {
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(f));
            case BF16 -> bf16ToFloat(floatToBf16(f));
            case Q8, Q4 -> throw rowWise(dtype);
        };
    }
}
