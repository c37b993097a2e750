package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector decoders of ggml's block formats, dequantizing in registers: per block,
 * {@code paramsT} writes the float scale of every scale group to {@code p[g]} and its offset
 * (Q4_1/Q5_1 minimum, K-quant {@code -dmin * m}) to {@code p[16 + g]}; then {@code wT(m, blk, v, p)}
 * returns the {@code L} weights {@code v .. v + L - 1} of the block as a float vector, for any
 * {@code v} that is a multiple of {@code L}. The matrix kernels ({@link VectorQuantDots}) multiply
 * these vectors with the input; {@link VectorQuantDots#decode} stores them (the golden tests).
 *
 * <p>Each weight is {@code q * scale + offset} or {@code q * scale} for the small integer
 * {@code q} of the format, computed exactly as ggml's reference C code does (the products are
 * exact in float32, so a fused multiply-add gives the same bits). Groups are 16 or 32 values,
 * so a vector of {@code L <= 16} lanes never spans two of them.
 */
final class VectorQuants {

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** Byte vectors of L lanes (at least 8: below, one load feeds two float vectors). */
    private static final VectorSpecies<Byte> B =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
    private static final int BL = B.length();
    private static final IntVector IOTA = IntVector.zero(I).addIndex(1);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    /** Lookup tables for the non-linear 4-bit formats: levels 0..BL-1 and BL..2BL-1 (repeated when BL = 16). */
    private static final ByteVector IQ4_LO = table(QuantBlocks.IQ4_LEVELS, 0);
    private static final ByteVector IQ4_HI = table(QuantBlocks.IQ4_LEVELS, BL);
    private static final ByteVector FP4_LO = table(QuantBlocks.MXFP4_LEVELS, 0);
    private static final ByteVector FP4_HI = table(QuantBlocks.MXFP4_LEVELS, BL);

    /** Size of the parameter scratch {@code p}: 16 scales and 16 offsets. */
    static final int PARAMS = 32;
    private static final int OFF = 16;

    static {
        if (L > 16 || 32 % (2 * L) != 0) {
            throw new ExceptionInInitializerError("unsupported vector width: " + F.vectorBitSize() + " bits");
        }
    }

    private VectorQuants() {
    }

    private static ByteVector table(byte[] levels, int from) {
        byte[] t = new byte[BL];
        for (int i = 0; i < BL; i++) {
            t[i] = levels[(from + i) % 16];
        }
        return ByteVector.fromArray(B, t, 0);
    }

    /** Returns whether the decoders and kernels read {@code type}. */
    static boolean supports(GgmlType type) {
        return switch (type) {
            case Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4 -> true;
            default -> false;
        };
    }

    /**
     * The bytes {@code j .. j + L - 1} of a byte run starting at {@code run}, as a vector of
     * {@link #BL} lanes whose part {@link #part}{@code (j)} holds them (the run is at least BL long).
     */
    private static ByteVector bytes(MemorySegment m, long run, int j) {
        return ByteVector.fromMemorySegment(B, m, run + (j & -BL), LE);
    }

    private static int part(int j) {
        return (j & (BL - 1)) / L;
    }

    private static FloatVector floats(ByteVector q, int j) {
        return (FloatVector) q.convertShape(VectorOperators.B2F, F, part(j));
    }

    /** The four-bit field at {@code shift} (0 or 4) of each byte. */
    private static ByteVector nibble(ByteVector b, int shift) {
        return b.lanewise(VectorOperators.LSHR, shift).and((byte) 15);
    }

    /** Bits {@code v .. v + L - 1} of {@code qh}, each times 16, as int lanes. */
    private static IntVector fifthBit(int qh, int v) {
        return IntVector.broadcast(I, qh).lanewise(VectorOperators.LSHR, IOTA.add(v)).and(1).lanewise(VectorOperators.LSHL, 4);
    }

    // ---- 32-value blocks ----------------------------------------------------------------

    static void paramsQ8_0(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
    }

    /** {@code q * d}. */
    static FloatVector wQ8_0(MemorySegment m, long blk, int v, float[] p) {
        return floats(bytes(m, blk + 2, v), v).mul(p[0]);
    }

    static void paramsQ4_0(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
    }

    /** {@code (q - 8) * d}; value {@code j < 16} is the low nibble of byte j, j + 16 its high nibble. */
    static FloatVector wQ4_0(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        ByteVector q = nibble(bytes(m, blk + 2, j), (v >> 4) << 2).sub((byte) 8);
        return floats(q, j).mul(p[0]);
    }

    static void paramsQ4_1(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
        p[OFF] = QuantBlocks.half(m, blk + 2);
    }

    /** {@code q * d + m}. */
    static FloatVector wQ4_1(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        return floats(nibble(bytes(m, blk + 4, j), (v >> 4) << 2), j).fma(p[0], p[OFF]);
    }

    static void paramsQ5_0(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
    }

    /** {@code (q - 16) * d}; bit 4 of value j is bit j of {@code qh}. */
    static FloatVector wQ5_0(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        ByteVector lo = nibble(bytes(m, blk + 6, j), (v >> 4) << 2);
        IntVector q = ((IntVector) lo.convertShape(VectorOperators.B2I, I, part(j)))
                .or(fifthBit(m.get(I32, blk + 2), v)).sub(16);
        return ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(p[0]);
    }

    static void paramsQ5_1(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
        p[OFF] = QuantBlocks.half(m, blk + 2);
    }

    /** {@code q * d + m}. */
    static FloatVector wQ5_1(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        ByteVector lo = nibble(bytes(m, blk + 8, j), (v >> 4) << 2);
        IntVector q = ((IntVector) lo.convertShape(VectorOperators.B2I, I, part(j)))
                .or(fifthBit(m.get(I32, blk + 4), v));
        return ((FloatVector) q.convert(VectorOperators.I2F, 0)).fma(p[0], p[OFF]);
    }

    static void paramsIQ4_NL(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.half(m, blk);
    }

    /** {@code d * k[q]}. */
    static FloatVector wIQ4_NL(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        ByteVector k = nibble(bytes(m, blk + 2, j), (v >> 4) << 2).selectFrom(IQ4_LO, IQ4_HI);
        return floats(k, j).mul(p[0]);
    }

    static void paramsMXFP4(MemorySegment m, long blk, float[] p) {
        p[0] = QuantBlocks.e8m0Half(m.get(ValueLayout.JAVA_BYTE, blk) & 0xFF);
    }

    /** {@code k[q] * d}. */
    static FloatVector wMXFP4(MemorySegment m, long blk, int v, float[] p) {
        int j = v & 15;
        ByteVector k = nibble(bytes(m, blk + 1, j), (v >> 4) << 2).selectFrom(FP4_LO, FP4_HI);
        return floats(k, j).mul(p[0]);
    }

    // ---- 256-value super-blocks ----------------------------------------------------------

    static void paramsQ2_K(MemorySegment m, long blk, float[] p) {
        float d = QuantBlocks.half(m, blk + 80);
        float dmin = QuantBlocks.half(m, blk + 82);
        for (int g = 0; g < 16; g++) {
            int sc = m.get(ValueLayout.JAVA_BYTE, blk + g) & 0xFF;
            p[g] = d * (sc & 15);
            p[OFF + g] = -(dmin * (sc >> 4));
        }
    }

    /** {@code (d * sc) * q - dmin * m}; group g = v / 16 reads bits {@code 2((g % 8) / 2)} of its 16 bytes. */
    static FloatVector wQ2_K(MemorySegment m, long blk, int v, float[] p) {
        int g = v >> 4;
        int j = v & 15;
        long run = blk + 16 + 32 * (g >> 3) + 16 * (g & 1);
        ByteVector q = bytes(m, run, j).lanewise(VectorOperators.LSHR, 2 * ((g & 7) >> 1)).and((byte) 3);
        return floats(q, j).fma(p[g], p[OFF + g]);
    }

    static void paramsQ3_K(MemorySegment m, long blk, float[] p) {
        float d = QuantBlocks.half(m, blk + 108);
        for (int g = 0; g < 16; g++) {
            p[g] = d * QuantBlocks.q3kScale(m, blk, g);
        }
    }

    /** {@code (d * sc) * q}, q = two low bits at {@code 2((v / 32) % 4)}, minus 4 unless the hmask bit is set. */
    static FloatVector wQ3_K(MemorySegment m, long blk, int v, float[] p) {
        int i = v & 31;
        int c = v >> 5;
        ByteVector low = bytes(m, blk + 32 + 32 * (c >> 2), i).lanewise(VectorOperators.LSHR, 2 * (c & 3)).and((byte) 3);
        ByteVector high = bytes(m, blk, i).lanewise(VectorOperators.LSHR, c).and((byte) 1).lanewise(VectorOperators.LSHL, 2);
        return floats(low.or(high).sub((byte) 4), i).mul(p[v >> 4]);
    }

    private static void paramsQ45_K(MemorySegment m, long blk, float[] p) {
        float d = QuantBlocks.half(m, blk);
        float dmin = QuantBlocks.half(m, blk + 2);
        for (int g = 0; g < 8; g++) {
            p[g] = d * QuantBlocks.kScale(m, blk + 4, g);
            p[OFF + g] = -(dmin * QuantBlocks.kMin(m, blk + 4, g));
        }
    }

    static void paramsQ4_K(MemorySegment m, long blk, float[] p) {
        paramsQ45_K(m, blk, p);
    }

    /** {@code (d * sc) * q - dmin * m}; chunk v / 64: 32 low nibbles, then the same bytes' high nibbles. */
    static FloatVector wQ4_K(MemorySegment m, long blk, int v, float[] p) {
        int g = v >> 5;
        int j = v & 31;
        ByteVector q = nibble(bytes(m, blk + 16 + 32 * (g >> 1), j), (g & 1) << 2);
        return floats(q, j).fma(p[g], p[OFF + g]);
    }

    static void paramsQ5_K(MemorySegment m, long blk, float[] p) {
        paramsQ45_K(m, blk, p);
    }

    /** As Q4_K, plus 16 where bit g of {@code qh[v % 32]} is set. */
    static FloatVector wQ5_K(MemorySegment m, long blk, int v, float[] p) {
        int g = v >> 5;
        int j = v & 31;
        ByteVector lo = nibble(bytes(m, blk + 48 + 32 * (g >> 1), j), (g & 1) << 2);
        ByteVector hi = bytes(m, blk + 16, j).lanewise(VectorOperators.LSHR, g).and((byte) 1).lanewise(VectorOperators.LSHL, 4);
        return floats(lo.or(hi), j).fma(p[g], p[OFF + g]);
    }

    static void paramsQ6_K(MemorySegment m, long blk, float[] p) {
        float d = QuantBlocks.half(m, blk + 208);
        for (int g = 0; g < 16; g++) {
            p[g] = d * m.get(ValueLayout.JAVA_BYTE, blk + 192 + g);
        }
    }

    /** {@code (d * sc) * (q - 32)}: four bits from ql, two from qh, per half h = v / 128 and quarter u. */
    static FloatVector wQ6_K(MemorySegment m, long blk, int v, float[] p) {
        int h = v >> 7;
        int u = (v >> 5) & 3;
        int l = v & 31;
        ByteVector lo = nibble(bytes(m, blk + 64 * h + 32 * (u & 1), l), (u >> 1) << 2);
        ByteVector hi = bytes(m, blk + 128 + 32 * h, l).lanewise(VectorOperators.LSHR, 2 * u).and((byte) 3)
                .lanewise(VectorOperators.LSHL, 4);
        return floats(lo.or(hi).sub((byte) 32), l).mul(p[v >> 4]);
    }

    static void paramsIQ4_XS(MemorySegment m, long blk, float[] p) {
        float d = QuantBlocks.half(m, blk);
        for (int b = 0; b < 8; b++) {
            p[b] = d * QuantBlocks.iq4xsScale(m, blk, b);
        }
    }

    /** {@code (d * (ls - 32)) * k[q]}; sub-block v / 32 as an IQ4_NL block. */
    static FloatVector wIQ4_XS(MemorySegment m, long blk, int v, float[] p) {
        int b = v >> 5;
        int j = v & 15;
        ByteVector k = nibble(bytes(m, blk + 8 + 16 * b, j), ((v >> 4) & 1) << 2).selectFrom(IQ4_LO, IQ4_HI);
        return floats(k, j).mul(p[b]);
    }
}
