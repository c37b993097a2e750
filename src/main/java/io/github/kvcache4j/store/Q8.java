package io.github.kvcache4j.store;

import static io.github.kvcache4j.kernel.QuantizedLayout.F32;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_GROUP_BYTES;

import io.github.kvcache4j.kernel.QuantizedLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * 8-bit symmetric quantization of a row, one scale per group of 32 values (the scheme of ggml's
 * {@code q8_0}, with a float32 scale).
 *
 * <p>Layout ({@link QuantizedLayout}) of a row of {@code headDim} values ({@code headDim} a multiple of 32): its
 * {@code headDim / 32} groups one after the other, {@value QuantizedLayout#Q8_GROUP_BYTES} bytes each,
 *
 * <pre>
 * offset 0   float32 (little-endian)  d: the scale
 * offset 4   int8[32]                 q_i, in [-127, 127]
 * </pre>
 *
 * <p>The value of element {@code i} is {@code d·q_i}. Encoding sets {@code d} to
 * {@code max_i |x_i| / 127} rounded down to a float, and {@code q_i = clamp(round(x_i / d), ±127)}
 * (round half even; {@code q_i = 0} when {@code d = 0}). Then
 * {@code |x_i − d·q_i| ≤ d/2 + 127·ulp(d)}, and decoding, one float product, adds half an ulp of
 * the result. A row of {@code headDim} 128 takes 144 bytes (F32: 512).
 */
public final class Q8 {

    /** The largest code magnitude. */
    public static final int MAX_CODE = 127;

    private Q8() {
    }

    /**
     * Returns the bytes of one encoded row.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of 32
     */
    public static long rowBytes(int headDim) {
        return (long) QuantizedLayout.groups(headDim) * Q8_GROUP_BYTES;
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
            long at = dstOff + (long) g * Q8_GROUP_BYTES;
            float amax = 0;
            for (int i = 0; i < GROUP; i++) {
                assert Float.isFinite(src[base + i]) : "src[" + (base + i) + "] = " + src[base + i];
                amax = Math.max(amax, Math.abs(src[base + i]));
            }
            float d = QuantScale.scaleAtMost(amax / (double) MAX_CODE);
            double inverse = d == 0 ? 0 : 1.0 / d;
            dst.set(F32, at + QuantizedLayout.Q8_SCALE, d);
            for (int i = 0; i < GROUP; i++) {
                int q = Math.clamp((long) Math.rint(src[base + i] * inverse), -MAX_CODE, MAX_CODE);
                dst.set(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q8_CODES + i, (byte) q);
            }
        }
    }

    /**
     * Decodes the row at {@code srcOff} into {@code dst[dstOff .. dstOff + headDim)}.
     *
     * @throws IllegalArgumentException if {@code headDim} is not a positive multiple of 32
     */
    public static void decode(MemorySegment src, long srcOff, int headDim, float[] dst, int dstOff) {
        int groups = QuantizedLayout.groups(headDim);
        for (int g = 0; g < groups; g++) {
            long at = srcOff + (long) g * Q8_GROUP_BYTES;
            float d = src.get(F32, at + QuantizedLayout.Q8_SCALE);
            int base = dstOff + g * GROUP;
            for (int i = 0; i < GROUP; i++) {
                dst[base + i] = d * src.get(ValueLayout.JAVA_BYTE, at + QuantizedLayout.Q8_CODES + i);
            }
        }
    }

    /** Returns the scale {@code d} of group {@code group} of the row at {@code rowOff}. */
    public static float scale(MemorySegment src, long rowOff, int group) {
        return src.get(F32, rowOff + (long) group * Q8_GROUP_BYTES + QuantizedLayout.Q8_SCALE);
    }
}
