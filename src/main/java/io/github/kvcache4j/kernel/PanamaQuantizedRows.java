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
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API twins of {@link QuantizedRows}, with the same contracts. Codes are loaded as bytes
 * ({@code B} lanes, at least 64 bits), widened to floats in registers ({@code B2F}, in
 * {@code B / L} parts of {@code L} float lanes), and multiplied into {@code L}-lane accumulators;
 * a group's sum is scaled once by its {@code d}. Q4's two nibbles of a byte are split with a mask
 * and an unsigned shift. The accumulations round as the scalar ones do (a product, then a sum), so
 * both twins give the same bits; the dot products sum in a different order.
 */
public final class PanamaQuantizedRows {

    /** The preferred float species, capped at 512 bits: a Q8 group (32 values) is a whole number of vectors. */
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.vectorBitSize() > 512
            ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Bytes that widen to one or more float vectors: one per float lane, but no narrower than 64 bits. */
    private static final VectorSpecies<Byte> B =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
    private static final int PARTS = B.length() / L;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private PanamaQuantizedRows() {
    }

    private static FloatVector widen(ByteVector codes, int part) {
        return (FloatVector) codes.convertShape(VectorOperators.B2F, F, part);
    }

    /** Returns {@code Σ_g d_g·Σ_{i∈g} q_i·c_i}, as {@link QuantizedRows#dotQ8}. */
    public static float dotQ8(float[] q, int qOff, MemorySegment row, long rowOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        FloatVector total = FloatVector.zero(F);
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q8_GROUP_BYTES;
            int base = qOff + g * GROUP;
            FloatVector s = FloatVector.zero(F);
            for (int i = 0; i < GROUP; i += B.length()) {
                ByteVector codes = ByteVector.fromMemorySegment(B, row, at + Q8_CODES + i, LE);
                for (int p = 0; p < PARTS; p++) {
                    s = FloatVector.fromArray(F, q, base + i + p * L).fma(widen(codes, p), s);
                }
            }
            total = s.fma(FloatVector.broadcast(F, row.get(F32, at + Q8_SCALE)), total);
        }
        return total.reduceLanes(VectorOperators.ADD);
    }

    /** Returns {@code Σ_g (d_g·Σ_{i∈g} q_i·c_i + m_g·Σ_{i∈g} q_i)}, as {@link QuantizedRows#dotQ4}. */
    public static float dotQ4(float[] q, int qOff, MemorySegment row, long rowOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        FloatVector total = FloatVector.zero(F);
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q4_GROUP_BYTES;
            int base = qOff + g * GROUP;
            FloatVector coded = FloatVector.zero(F);
            FloatVector plain = FloatVector.zero(F);
            for (int j = 0; j < GROUP / 2; j += B.length()) {
                ByteVector packed = ByteVector.fromMemorySegment(B, row, at + Q4_CODES + j, LE);
                ByteVector low = packed.and((byte) 0xF);
                ByteVector high = packed.lanewise(VectorOperators.LSHR, 4);
                for (int p = 0; p < PARTS; p++) {
                    FloatVector qLow = FloatVector.fromArray(F, q, base + j + p * L);
                    FloatVector qHigh = FloatVector.fromArray(F, q, base + j + GROUP / 2 + p * L);
                    coded = qLow.fma(widen(low, p), coded);
                    coded = qHigh.fma(widen(high, p), coded);
                    plain = plain.add(qLow).add(qHigh);
                }
            }
            total = coded.fma(FloatVector.broadcast(F, row.get(F32, at + Q4_SCALE)), total);
            total = plain.fma(FloatVector.broadcast(F, row.get(F32, at + Q4_MIN)), total);
        }
        return total.reduceLanes(VectorOperators.ADD);
    }

    /** Adds {@code w·d_g·c_i} to {@code acc[accOff + i]}, as {@link QuantizedRows#accumulateQ8}. */
    public static void accumulateQ8(float w, MemorySegment row, long rowOff, float[] acc, int accOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q8_GROUP_BYTES;
            int base = accOff + g * GROUP;
            FloatVector wd = FloatVector.broadcast(F, w * row.get(F32, at + Q8_SCALE));
            for (int i = 0; i < GROUP; i += B.length()) {
                ByteVector codes = ByteVector.fromMemorySegment(B, row, at + Q8_CODES + i, LE);
                for (int p = 0; p < PARTS; p++) {
                    int k = base + i + p * L;
                    FloatVector.fromArray(F, acc, k).add(widen(codes, p).mul(wd)).intoArray(acc, k);
                }
            }
        }
    }

    /** Adds {@code w·(m_g + d_g·c_i)} to {@code acc[accOff + i]}, as {@link QuantizedRows#accumulateQ4}. */
    public static void accumulateQ4(float w, MemorySegment row, long rowOff, float[] acc, int accOff, int headDim) {
        assert headDim > 0 && headDim % GROUP == 0 : headDim;
        for (int g = 0; g < headDim / GROUP; g++) {
            long at = rowOff + (long) g * Q4_GROUP_BYTES;
            int base = accOff + g * GROUP;
            FloatVector wd = FloatVector.broadcast(F, w * row.get(F32, at + Q4_SCALE));
            FloatVector wm = FloatVector.broadcast(F, w * row.get(F32, at + Q4_MIN));
            for (int j = 0; j < GROUP / 2; j += B.length()) {
                ByteVector packed = ByteVector.fromMemorySegment(B, row, at + Q4_CODES + j, LE);
                ByteVector low = packed.and((byte) 0xF);
                ByteVector high = packed.lanewise(VectorOperators.LSHR, 4);
                for (int p = 0; p < PARTS; p++) {
                    int k = base + j + p * L;
                    FloatVector.fromArray(F, acc, k).add(widen(low, p).fma(wd, wm)).intoArray(acc, k);
                    k += GROUP / 2;
                    FloatVector.fromArray(F, acc, k).add(widen(high, p).fma(wd, wm)).intoArray(acc, k);
                }
            }
        }
    }
}
