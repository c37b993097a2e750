package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Scalar decoders of ggml's block formats: one block in, its {@code blockSize()} float32 values
 * out. They are the decoder's scalar path (the fallback when the Vector API is absent, and the
 * embedding row lookup) and the reference the vector decoders of {@link VectorQuants} are tested
 * against.
 *
 * <p>Every value is computed in float32 with one rounding per operation, in the order of ggml's
 * reference C code ({@code dequantize_row_*} in {@code ggml-quants.c}), so the results equal
 * ggml's bit for bit, negative zeros included. Scales are IEEE half floats widened exactly.
 * Nothing here can fail on corrupt bytes: any bit pattern decodes to some float (possibly
 * infinite or NaN, when a scale is).
 */
final class QuantBlocks {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    /** IQ4_NL and IQ4_XS: the 16 non-linear levels. */
    static final byte[] IQ4_LEVELS = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    /** MXFP4: the FP4 (E2M1) values, doubled (ggml's {@code kvalues_mxfp4}). */
    static final byte[] MXFP4_LEVELS = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

    private QuantBlocks() {
    }

    /** Returns whether {@link #decode} reads {@code type}. */
    static boolean supports(GgmlType type) {
        return switch (type) {
            case F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
                 IQ4_NL, IQ4_XS, MXFP4 -> true;
            default -> false;
        };
    }

    /**
     * Decodes one block.
     *
     * @param type the block format, one {@link #supports} accepts
     * @param m the bytes
     * @param blk the offset of the block in {@code m}
     * @param out receives {@code type.blockSize()} values
     * @param o the first index written
     */
    static void decode(GgmlType type, MemorySegment m, long blk, float[] out, int o) {
        switch (type) {
            case F32 -> out[o] = m.get(F32, blk);
            case F16 -> out[o] = half(m, blk);
            case BF16 -> out[o] = Float.intBitsToFloat(m.get(I16, blk) << 16);
            case Q4_0 -> q4_0(m, blk, out, o);
            case Q4_1 -> q4_1(m, blk, out, o);
            case Q5_0 -> q5_0(m, blk, out, o);
            case Q5_1 -> q5_1(m, blk, out, o);
            case Q8_0 -> q8_0(m, blk, out, o);
            case Q2_K -> q2_k(m, blk, out, o);
            case Q3_K -> q3_k(m, blk, out, o);
            case Q4_K -> q4_k(m, blk, out, o);
            case Q5_K -> q5_k(m, blk, out, o);
            case Q6_K -> q6_k(m, blk, out, o);
            case IQ4_NL -> iq4_nl(m, blk, out, o);
            case IQ4_XS -> iq4_xs(m, blk, out, o);
            case MXFP4 -> mxfp4(m, blk, out, o);
            default -> throw new IllegalArgumentException("type " + type + " has no decoder");
        }
    }

    /**
     * Decodes {@code n} consecutive values starting at a block boundary.
     *
     * @param type the block format
     * @param m the bytes
     * @param off the byte offset of the first block
     * @param n the number of values, a multiple of {@code type.blockSize()}
     * @param out receives the values
     * @param o the first index written
     */
    static void decodeRun(GgmlType type, MemorySegment m, long off, int n, float[] out, int o) {
        int bs = type.blockSize();
        switch (type) {
            case F32 -> MemorySegment.copy(m, F32, off, out, o, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[o + i] = half(m, off + 2L * i);
                }
            }
            default -> {
                for (int b = 0; b < n / bs; b++) {
                    decode(type, m, off + (long) b * type.blockBytes(), out, o + b * bs);
                }
            }
        }
    }

    static float half(MemorySegment m, long off) {
        return Float.float16ToFloat(m.get(I16, off));
    }

    private static int u8(MemorySegment m, long off) {
        return m.get(ValueLayout.JAVA_BYTE, off) & 0xFF;
    }

    private static void q4_0(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 2 + j);
            out[o + j] = ((q & 15) - 8) * d;
            out[o + j + 16] = ((q >> 4) - 8) * d;
        }
    }

    private static void q4_1(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        float min = half(m, blk + 2);
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 4 + j);
            out[o + j] = (q & 15) * d + min;
            out[o + j + 16] = (q >> 4) * d + min;
        }
    }

    private static void q5_0(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        int qh = m.get(I32, blk + 2);
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 6 + j);
            int lo = (q & 15) | ((qh >>> j) & 1) << 4;
            int hi = (q >> 4) | ((qh >>> (j + 16)) & 1) << 4;
            out[o + j] = (lo - 16) * d;
            out[o + j + 16] = (hi - 16) * d;
        }
    }

    private static void q5_1(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        float min = half(m, blk + 2);
        int qh = m.get(I32, blk + 4);
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 8 + j);
            int lo = (q & 15) | ((qh >>> j) & 1) << 4;
            int hi = (q >> 4) | ((qh >>> (j + 16)) & 1) << 4;
            out[o + j] = lo * d + min;
            out[o + j + 16] = hi * d + min;
        }
    }

    private static void q8_0(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        for (int j = 0; j < 32; j++) {
            out[o + j] = m.get(ValueLayout.JAVA_BYTE, blk + 2 + j) * d;
        }
    }

    private static void q2_k(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk + 80);
        float dmin = half(m, blk + 82);
        for (int g = 0; g < 16; g++) {
            int sc = u8(m, blk + g);
            float dl = d * (sc & 15);
            float ml = dmin * (sc >> 4);
            int h = g >> 3;
            int shift = 2 * ((g & 7) >> 1);
            long qs = blk + 16 + 32 * h + 16 * (g & 1);
            for (int l = 0; l < 16; l++) {
                out[o + 16 * g + l] = dl * ((u8(m, qs + l) >> shift) & 3) - ml;
            }
        }
    }

    /** Q3_K's six-bit scale of group {@code g} (0..15), minus 32. */
    static int q3kScale(MemorySegment m, long blk, int g) {
        long s = blk + 96;
        int low = g < 8 ? u8(m, s + g) & 15 : u8(m, s + g - 8) >> 4;
        int high = (u8(m, s + 8 + (g & 3)) >> (2 * (g >> 2))) & 3;
        return (low | high << 4) - 32;
    }

    private static void q3_k(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk + 108);
        for (int g = 0; g < 16; g++) {
            float dl = d * q3kScale(m, blk, g);
            int h = g >> 3;
            int shift = 2 * ((g & 7) >> 1);
            int bit = 4 * h + (shift >> 1);
            for (int l = 0; l < 16; l++) {
                int i = 16 * (g & 1) + l;
                int q = ((u8(m, blk + 32 + 32 * h + i) >> shift) & 3) - (((u8(m, blk + i) >> bit) & 1) != 0 ? 0 : 4);
                out[o + 16 * g + l] = dl * q;
            }
        }
    }

    /** Q4_K/Q5_K: the six-bit scale of sub-block {@code j} (0..7); the 12 scale bytes start at {@code s}. */
    static int kScale(MemorySegment m, long s, int j) {
        return j < 4 ? u8(m, s + j) & 63 : (u8(m, s + j + 4) & 15) | (u8(m, s + j - 4) >> 6) << 4;
    }

    /** Q4_K/Q5_K: the six-bit minimum of sub-block {@code j} (0..7). */
    static int kMin(MemorySegment m, long s, int j) {
        return j < 4 ? u8(m, s + j + 4) & 63 : (u8(m, s + j + 4) >> 4) | (u8(m, s + j) >> 6) << 4;
    }

    private static void q4_k(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        float dmin = half(m, blk + 2);
        for (int j = 0; j < 8; j++) {
            float dl = d * kScale(m, blk + 4, j);
            float ml = dmin * kMin(m, blk + 4, j);
            long qs = blk + 16 + 32 * (j >> 1);
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++) {
                out[o + 32 * j + l] = dl * ((u8(m, qs + l) >> shift) & 15) - ml;
            }
        }
    }

    private static void q5_k(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        float dmin = half(m, blk + 2);
        for (int j = 0; j < 8; j++) {
            float dl = d * kScale(m, blk + 4, j);
            float ml = dmin * kMin(m, blk + 4, j);
            long qs = blk + 48 + 32 * (j >> 1);
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++) {
                int q = ((u8(m, qs + l) >> shift) & 15) | ((u8(m, blk + 16 + l) >> j) & 1) << 4;
                out[o + 32 * j + l] = dl * q - ml;
            }
        }
    }

    private static void q6_k(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk + 208);
        for (int i = 0; i < 256; i++) {
            int h = i >> 7;
            int u = (i >> 5) & 3;
            int l = i & 31;
            int ql = u8(m, blk + 64 * h + 32 * (u & 1) + l) >> (u >= 2 ? 4 : 0);
            int qh = u8(m, blk + 128 + 32 * h + l) >> (2 * u);
            int q = ((ql & 15) | (qh & 3) << 4) - 32;
            float dl = d * m.get(ValueLayout.JAVA_BYTE, blk + 192 + 8 * h + 2 * u + (l >> 4));
            out[o + i] = dl * q;
        }
    }

    private static void iq4_nl(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 2 + j);
            out[o + j] = d * IQ4_LEVELS[q & 15];
            out[o + j + 16] = d * IQ4_LEVELS[q >> 4];
        }
    }

    /** IQ4_XS: the six-bit scale of sub-block {@code b} (0..7), minus 32. */
    static int iq4xsScale(MemorySegment m, long blk, int b) {
        int high = (m.get(I16, blk + 2) >> (2 * b)) & 3;
        int low = (u8(m, blk + 4 + (b >> 1)) >> (4 * (b & 1))) & 15;
        return (low | high << 4) - 32;
    }

    private static void iq4_xs(MemorySegment m, long blk, float[] out, int o) {
        float d = half(m, blk);
        for (int b = 0; b < 8; b++) {
            float dl = d * iq4xsScale(m, blk, b);
            long qs = blk + 8 + 16 * b;
            for (int j = 0; j < 16; j++) {
                int q = u8(m, qs + j);
                out[o + 32 * b + j] = dl * IQ4_LEVELS[q & 15];
                out[o + 32 * b + j + 16] = dl * IQ4_LEVELS[q >> 4];
            }
        }
    }

    /** MXFP4: the scale 2^(e - 128) of the E8M0 exponent byte {@code e} (ggml's half of 2^(e - 127)). */
    static float e8m0Half(int e) {
        return Float.intBitsToFloat(e < 2 ? 0x0020_0000 << e : (e - 1) << 23);
    }

    private static void mxfp4(MemorySegment m, long blk, float[] out, int o) {
        float d = e8m0Half(u8(m, blk));
        for (int j = 0; j < 16; j++) {
            int q = u8(m, blk + 1 + j);
            out[o + j] = MXFP4_LEVELS[q & 15] * d;
            out[o + j + 16] = MXFP4_LEVELS[q >> 4] * d;
        }
    }
}
