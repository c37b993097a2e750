package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.QuantizedLayout.F32;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_MIN;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_SCALE;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_SCALE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Scalar kernels that read Q8 and Q4 rows ({@link QuantizedLayout}) in place: a query's dot
 * product with a stored key row, and the weighted accumulation of a stored value row. Codes are
 * dequantized in registers; a group's scale multiplies the group's sum once. The reference for
 * {@link PanamaQuantizedRows}.
 *
 * <p>Preconditions, as {@code assert}: {@code headDim} a positive multiple of {@value QuantizedLayout#GROUP}
 * and every row inside its segment and array.
 */
public final class QuantizedRows {

    private QuantizedRows() {
    }

    /** Returns {@code d_g·c_i}, element {@code i} of the Q8 row at {@code rowOff}, as the row decoder gives it. */
    public static float elementQ8(MemorySegment row, long rowOff, int i) {
        long at = rowOff + (long) (i / GROUP) * Q8_GROUP_BYTES;
        return row.get(F32, at + Q8_SCALE) * row.get(ValueLayout.JAVA_BYTE, at + Q8_CODES + i % GROUP);
    }

    /** Returns {@code fma(d_g, c_i, m_g)}, element {@code i} of the Q4 row at {@code rowOff}, as the row decoder gives it. */
    public static float elementQ4(MemorySegment row, long rowOff, int i) {
        long at = rowOff + (long) (i / GROUP) * Q4_GROUP_BYTES;
        int j = i % GROUP;
        int packed = row.get(ValueLayout.JAVA_BYTE, at + Q4_CODES + j % (GROUP / 2));
        int code = j < GROUP / 2 ? packed & 0xF : (packed >> 4) & 0xF;
        return Math.fma(row.get(F32, at + Q4_SCALE), code, row.get(F32, at + Q4_MIN));
    }

    /** Returns {@code Σ_g d_g·Σ_{i∈g} q_i·c_i}, the dot product of {@code q} with the Q8 row at {@code rowOff}. */
    public static float dotQ8(float[] q, int qOff, MemorySegment row, long rowOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        float total = 0;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q8_GROUP_BYTES;
            int base = qOff + g * GROUP;
            float s = 0;
            for (int i = 0; i < GROUP; i++) {
                s += q[base + i] * row.get(ValueLayout.JAVA_BYTE, at + Q8_CODES + i);
            }
            total += row.get(F32, at + Q8_SCALE) * s;
        }
        return total;
    }

    /**
     * Returns {@code Σ_g (d_g·Σ_{i∈g} q_i·c_i + m_g·Σ_{i∈g} q_i)}, the dot product of {@code q}
     * with the Q4 row at {@code rowOff}.
     */
    public static float dotQ4(float[] q, int qOff, MemorySegment row, long rowOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        float total = 0;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q4_GROUP_BYTES;
            int base = qOff + g * GROUP;
            float coded = 0;
            float plain = 0;
            for (int j = 0; j < GROUP / 2; j++) {
                int packed = row.get(ValueLayout.JAVA_BYTE, at + Q4_CODES + j);
                float low = q[base + j];
                float high = q[base + j + GROUP / 2];
                coded += low * (packed & 0xF) + high * ((packed >> 4) & 0xF);
                plain += low + high;
            }
            total += row.get(F32, at + Q4_SCALE) * coded + row.get(F32, at + Q4_MIN) * plain;
        }
        return total;
    }

    /** Adds {@code w·d_g·c_i} to {@code acc[accOff + i]}: the Q8 row at {@code rowOff}, weighted. */
    public static void accumulateQ8(float w, MemorySegment row, long rowOff, float[] acc, int accOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q8_GROUP_BYTES;
            int base = accOff + g * GROUP;
            float wd = w * row.get(F32, at + Q8_SCALE);
            for (int i = 0; i < GROUP; i++) {
                acc[base + i] += wd * row.get(ValueLayout.JAVA_BYTE, at + Q8_CODES + i);
            }
        }
    }

    /** Adds {@code w·(m_g + d_g·c_i)} to {@code acc[accOff + i]}: the Q4 row at {@code rowOff}, weighted. */
    public static void accumulateQ4(float w, MemorySegment row, long rowOff, float[] acc, int accOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q4_GROUP_BYTES;
            int base = accOff + g * GROUP;
            float wd = w * row.get(F32, at + Q4_SCALE);
            float wm = w * row.get(F32, at + Q4_MIN);
            for (int j = 0; j < GROUP / 2; j++) {
                int packed = row.get(ValueLayout.JAVA_BYTE, at + Q4_CODES + j);
                acc[base + j] += Math.fma(wd, packed & 0xF, wm);
                acc[base + j + GROUP / 2] += Math.fma(wd, (packed >> 4) & 0xF, wm);
            }
        }
    }
}
