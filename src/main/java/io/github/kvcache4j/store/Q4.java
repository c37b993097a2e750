package io.github.kvcache4j.store;

import static io.github.kvcache4j.kernel.QuantizedLayout.F32;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_GROUP_BYTES;

import io.github.kvcache4j.kernel.QuantizedLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * 4-bit asymmetric quantization of a row, a scale and a minimum per group of 32 values (the scheme
 * of ggml's {@code q4_1} and of KIVI, with float32 scale and minimum).
 *
 * <p>Layout ({@link QuantizedLayout}) of a row of {@code headDim} values ({@code headDim} a multiple of 32): its
 * {@code headDim / 32} groups one after the other, {@value QuantizedLayout#Q4_GROUP_BYTES} bytes each,
 *
 * <pre>
 * offset 0   float32 (little-endian)  d: the scale
 * offset 4   float32 (little-endian)  m: the minimum
 * offset 8   uint8[16]                byte j: code of element j in bits 0..3, of element j + 16 in bits 4..7
 * </pre>
 *
 * <p>The value of element {@code i} with code {@code c_i ∈ [0, 15]} is {@code m + d·c_i}. Encoding
 * sets {@code m = min_i x_i}, {@code d = (max_i x_i − m) / 15} rounded down to a float, and
 * {@code c_i = clamp(round((x_i − m) / d), 0, 15)} (round half even; {@code c_i = 0} when
 * {@code d = 0}). Then {@code |x_i − (m + d·c_i)| ≤ d/2 + 15·ulp(d)}, and decoding, one fused
 * multiply-add, adds half an ulp of the result. A row of {@code headDim} 128 takes 96 bytes
 * (F32: 512).
 */
public final class Q4 {

    /** The largest code. */
    public static final int MAX_CODE = 15;

    private Q4() {
    }

    /**
     * Returns the bytes of one encoded row.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of 32
     */
    public static long rowBytes(int headDim) {
        return (long) QuantizedLayout.groups(headDim) * Q4_GROUP_BYTES;
    }

    /**
     * Encodes the finite values {@code src[srcOff .. srcOff + headDim)} into
     * {@link #rowBytes(int) rowBytes(headDim)} bytes of {@code dst} at {@code dstOff}.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of 32
     */
    public static void encode(float[] src, int srcOff, int headDim, MemorySegment dst, long dstOff) {
        int groups = QuantizedLayout.groups(headDim);
        for (int g = 0; g < groups; g++) {
            int base = srcOff + g * GROUP;
            long at = dstOff + (long) g * Q4_GROUP_BYTES;
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < GROUP; i++) {
                assert Float.isFinite(src[base + i]) : "src[" + (base + i) + "] = " + src[base + i];
                min = Math.min(min, src[base + i]);
                max = Math.max(max, src[base + i]);
            }
            // In double: max − min of two floats can exceed the float range.
            float d = QuantScale.scaleAtMost(((double) max - min) / MAX_CODE);
            double inverse = d == 0 ? 0 : 1.0 / d;
            dst.set(F32, at + QuantizedLayout.Q4_SCALE, d);
            dst.set(F32, at + QuantizedLayout.Q4_MIN, min);
            for (int j = 0; j < GROUP / 2; j++) {
                int low = code(src[base + j], min, inverse);
                int high = code(src[base + j + GROUP / 2], min, inverse);
                dst.set(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q4_CODES + j, (byte) (low | high << 4));
            }
        }
    }

    private static int code(float x, float min, double inverse) {
        return Math.clamp((long) Math.rint((x - (double) min) * inverse), 0, MAX_CODE);
    }

    /**
     * Decodes the row at {@code srcOff} into {@code dst[dstOff .. dstOff + headDim)}.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of 32
     */
    public static void decode(MemorySegment src, long srcOff, int headDim, float[] dst, int dstOff) {
        int groups = QuantizedLayout.groups(headDim);
        for (int g = 0; g < groups; g++) {
            long at = srcOff + (long) g * Q4_GROUP_BYTES;
            float d = src.get(F32, at + QuantizedLayout.Q4_SCALE);
            float min = src.get(F32, at + QuantizedLayout.Q4_MIN);
            int base = dstOff + g * GROUP;
            for (int j = 0; j < GROUP / 2; j++) {
                int packed = src.get(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q4_CODES + j);
                dst[base + j] = Math.fma(d, packed & 0xF, min);
                dst[base + j + GROUP / 2] = Math.fma(d, (packed >> 4) & 0xF, min);
            }
        }
    }

    /** Returns the scale {@code d} of group {@code group} of the row at {@code rowOff}. */
    public static float scale(MemorySegment src, long rowOff, int group) {
        return src.get(F32, rowOff + (long) group * Q4_GROUP_BYTES + QuantizedLayout.Q4_SCALE);
    }
}
