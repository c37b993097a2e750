package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Test-side encoders for every type the decoder reads, so tests can write quantized GGUF files
 * ({@link TestGgufWriter#tensor(String, GgmlType, float[], long...)}).
 *
 * <p>Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 follow ggml's reference quantizers exactly (the same bytes as
 * {@code gguf-py}'s {@code quants.py}, checked against the goldens in {@code ../shared/gguf-goldens}).
 * MXFP4 follows {@code quants.py}. The K-quants, IQ4_NL and IQ4_XS use simple min/max scale choices (no search, no
 * importance weights): valid blocks of usual accuracy, not llama.cpp's bytes. F16 and BF16 round
 * to nearest even.
 */
final class TestQuantizer {

    private TestQuantizer() {
    }

    /**
     * Encodes values block by block.
     *
     * @param type the target type
     * @param values the values, a multiple of {@code type.blockSize()}
     * @return {@code values.length / blockSize * blockBytes} bytes
     */
    static byte[] quantize(GgmlType type, float[] values) {
        int bs = type.blockSize();
        if (values.length % bs != 0) {
            throw new IllegalArgumentException(values.length + " values are not a multiple of the "
                    + type + " block size " + bs);
        }
        ByteBuffer out = ByteBuffer.allocate(values.length / bs * type.blockBytes()).order(ByteOrder.LITTLE_ENDIAN);
        float[] x = new float[bs];
        for (int b = 0; b < values.length / bs; b++) {
            System.arraycopy(values, b * bs, x, 0, bs);
            int start = out.position();
            switch (type) {
                case F32 -> out.putFloat(x[0]);
                case F16 -> out.putShort(Float.floatToFloat16(x[0]));
                case BF16 -> out.putShort(bf16(x[0]));
                case Q8_0 -> q8_0(x, out);
                case Q4_0 -> q_0(x, out, 8);
                case Q4_1 -> q_1(x, out, 15);
                case Q5_0 -> q_0(x, out, 16);
                case Q5_1 -> q_1(x, out, 31);
                case Q2_K -> q2_k(x, out);
                case Q3_K -> q3_k(x, out);
                case Q4_K -> q45_k(x, out, false);
                case Q5_K -> q45_k(x, out, true);
                case Q6_K -> q6_k(x, out);
                case IQ4_NL -> iq4_nl(x, out);
                case IQ4_XS -> iq4_xs(x, out);
                case MXFP4 -> mxfp4(x, out);
                default -> throw new IllegalArgumentException("no test quantizer for " + type);
            }
            if (out.position() - start != type.blockBytes()) {
                throw new AssertionError(type + " wrote " + (out.position() - start) + " bytes");
            }
        }
        return out.array();
    }

    /** Decodes bytes with the decoder's scalar block decoders: the values a model reads. */
    static float[] dequantize(GgmlType type, byte[] data) {
        int n = data.length / type.blockBytes() * type.blockSize();
        float[] out = new float[n];
        QuantBlocks.decodeRun(type, MemorySegment.ofArray(data), 0, n, out, 0);
        return out;
    }

    /** Returns {@code dequantize(type, quantize(type, values))}. */
    static float[] roundTrip(GgmlType type, float[] values) {
        return dequantize(type, quantize(type, values));
    }

    static short bf16(float v) {
        int u = Float.floatToRawIntBits(v);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000) {
            u = (u & 0xFFFF_0000) | 64 << 16;
        }
        long r = ((u & 0xFFFF_FFFFL) + (0x7FFF + ((u >>> 16) & 1))) >>> 16;
        return (short) r;
    }

    /** C's roundf (half away from zero), exact for every float. */
    private static float roundf(float v) {
        float a = Math.abs(v);
        float f = (float) Math.floor(a);
        float b = f + (a - f >= 0.5f ? 1 : 0);
        return Math.copySign(b, v);
    }

    private static int nearest(double v) {
        return (int) Math.round(v);
    }

    private static int clamp(int v, int lo, int hi) {
        return Math.max(lo, Math.min(hi, v));
    }

    private static float half(float v) {
        return Float.float16ToFloat(Float.floatToFloat16(v));
    }

    /** The value of largest magnitude, with its sign (the first one on ties). */
    private static float signedMax(float[] x, int from, int to) {
        float amax = 0;
        float max = 0;
        for (int i = from; i < to; i++) {
            if (amax < Math.abs(x[i])) {
                amax = Math.abs(x[i]);
                max = x[i];
            }
        }
        return max;
    }

    private static void q8_0(float[] x, ByteBuffer out) {
        float amax = 0;
        for (float v : x) {
            amax = Math.max(amax, Math.abs(v));
        }
        float d = amax / 127;
        float id = d != 0 ? 1 / d : 0;
        out.putShort(Float.floatToFloat16(d));
        for (float v : x) {
            out.put((byte) roundf(v * id));
        }
    }

    /**
     * Q4_0 ({@code half} 8) and Q5_0 (16): {@code d = max / -half}, q = {@code trunc(x / d + half + 0.5)};
     * Q5_0 adds the fifth bits as a 32-bit mask.
     */
    private static void q_0(float[] x, ByteBuffer out, int half) {
        float d = signedMax(x, 0, 32) / -half;
        float id = d != 0 ? 1 / d : 0;
        int[] q = new int[32];
        for (int j = 0; j < 32; j++) {
            // quants.py: x * id + half + 0.5 in float64 (ggml's C contracts it to an FMA), then to float32.
            q[j] = Math.min(2 * half - 1, (int) (float) Math.fma((double) x[j], id, half + 0.5));
        }
        out.putShort(Float.floatToFloat16(d));
        putLowBits(q, half == 16, out);
    }

    /** Q4_1 ({@code top} 15) and Q5_1 (31): {@code d = (max - min) / top}, q = {@code trunc((x - min) / d + 0.5)}. */
    private static void q_1(float[] x, ByteBuffer out, int top) {
        float min = Float.MAX_VALUE;
        float max = -Float.MAX_VALUE;
        for (float v : x) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        float d = (max - min) / top;
        float id = d != 0 ? 1 / d : 0;
        int[] q = new int[32];
        for (int j = 0; j < 32; j++) {
            q[j] = Math.min(top, (int) ((x[j] - min) * id + 0.5f));
        }
        out.putShort(Float.floatToFloat16(d)).putShort(Float.floatToFloat16(min));
        putLowBits(q, top == 31, out);
    }

    /** The fifth bits as a 32-bit mask (if {@code fiveBits}), then 16 bytes of nibbles: j low, j + 16 high. */
    private static void putLowBits(int[] q, boolean fiveBits, ByteBuffer out) {
        if (fiveBits) {
            int qh = 0;
            for (int j = 0; j < 32; j++) {
                qh |= (q[j] >> 4) << j;
            }
            out.putInt(qh);
        }
        for (int j = 0; j < 16; j++) {
            out.put((byte) ((q[j] & 15) | (q[j + 16] & 15) << 4));
        }
    }

    /**
     * Asymmetric sub-blocks: per sub-block of {@code size} values a scale and a minimum of
     * {@code scaleBits} bits relative to the super-block's {@code d} and {@code dmin}, and
     * {@code levels} quantization levels. Returns the levels in {@code q}, the integer scales and
     * minimums in {@code ls} and {@code lm}, and {d, dmin} (as stored, float16) in the result.
     */
    private static float[] asymmetric(float[] x, int size, int levels, int scaleBits, int[] q, int[] ls, int[] lm) {
        int subs = x.length / size;
        float[] scale = new float[subs];
        float[] mins = new float[subs];
        float maxScale = 0;
        float maxMin = 0;
        for (int s = 0; s < subs; s++) {
            float lo = 0;
            float hi = -Float.MAX_VALUE;
            for (int i = s * size; i < (s + 1) * size; i++) {
                lo = Math.min(lo, x[i]);
                hi = Math.max(hi, x[i]);
            }
            scale[s] = (hi - lo) / (levels - 1);
            mins[s] = -lo;
            maxScale = Math.max(maxScale, scale[s]);
            maxMin = Math.max(maxMin, mins[s]);
        }
        int top = (1 << scaleBits) - 1;
        float d = half(maxScale / top);
        float dmin = half(maxMin / top);
        for (int s = 0; s < subs; s++) {
            ls[s] = d > 0 ? clamp(nearest(scale[s] / d), 0, top) : 0;
            lm[s] = dmin > 0 ? clamp(nearest(mins[s] / dmin), 0, top) : 0;
            float dl = d * ls[s];
            float ml = dmin * lm[s];
            for (int i = s * size; i < (s + 1) * size; i++) {
                q[i] = dl > 0 ? clamp(nearest((x[i] + ml) / dl), 0, levels - 1) : 0;
            }
        }
        return new float[] {d, dmin};
    }

    private static void q2_k(float[] x, ByteBuffer out) {
        int[] q = new int[256];
        int[] ls = new int[16];
        int[] lm = new int[16];
        float[] dd = asymmetric(x, 16, 4, 4, q, ls, lm);
        for (int g = 0; g < 16; g++) {
            out.put((byte) (ls[g] | lm[g] << 4));
        }
        byte[] qs = new byte[64];
        for (int g = 0; g < 16; g++) {
            int h = g >> 3;
            int shift = 2 * ((g & 7) >> 1);
            for (int l = 0; l < 16; l++) {
                qs[32 * h + 16 * (g & 1) + l] |= (byte) (q[16 * g + l] << shift);
            }
        }
        out.put(qs).putShort(Float.floatToFloat16(dd[0])).putShort(Float.floatToFloat16(dd[1]));
    }

    private static void q45_k(float[] x, ByteBuffer out, boolean five) {
        int[] q = new int[256];
        int[] ls = new int[8];
        int[] lm = new int[8];
        float[] dd = asymmetric(x, 32, five ? 32 : 16, 6, q, ls, lm);
        out.putShort(Float.floatToFloat16(dd[0])).putShort(Float.floatToFloat16(dd[1]));
        byte[] s = new byte[12];
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                s[j] = (byte) ls[j];
                s[j + 4] = (byte) lm[j];
            } else {
                s[j + 4] = (byte) ((ls[j] & 15) | (lm[j] & 15) << 4);
                s[j - 4] |= (byte) ((ls[j] >> 4) << 6);
                s[j] |= (byte) ((lm[j] >> 4) << 6);
            }
        }
        out.put(s);
        if (five) {
            byte[] qh = new byte[32];
            for (int j = 0; j < 8; j++) {
                for (int l = 0; l < 32; l++) {
                    qh[l] |= (byte) ((q[32 * j + l] >> 4) << j);
                }
            }
            out.put(qh);
        }
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                out.put((byte) ((q[64 * c + l] & 15) | (q[64 * c + 32 + l] & 15) << 4));
            }
        }
    }

    /**
     * Symmetric sub-blocks with signed integer scales: sub-block scale {@code max / qmin} (its
     * value of largest magnitude maps to {@code qmin}), stored as {@code round(scale / d)} in
     * {@code [smin, smax]} with {@code d = maxScale / smin} (the largest scale maps to
     * {@code smin}). Returns d as stored (float16).
     */
    private static float symmetric(float[] x, int size, int qmin, int qmax, int smin, int smax, int[] q, int[] sc) {
        int subs = x.length / size;
        float[] scale = new float[subs];
        for (int s = 0; s < subs; s++) {
            scale[s] = signedMax(x, s * size, (s + 1) * size) / qmin;
        }
        float d = half(signedMax(scale, 0, subs) / smin);
        for (int s = 0; s < subs; s++) {
            sc[s] = d != 0 ? clamp(nearest(scale[s] / d), smin, smax) : 0;
            float dl = d * sc[s];
            for (int i = s * size; i < (s + 1) * size; i++) {
                q[i] = dl != 0 ? clamp(nearest(x[i] / dl), qmin, qmax) : 0;
            }
        }
        return d;
    }

    private static void q3_k(float[] x, ByteBuffer out) {
        int[] q = new int[256];
        int[] sc = new int[16];
        float d = symmetric(x, 16, -4, 3, -32, 31, q, sc);
        byte[] hmask = new byte[32];
        byte[] qs = new byte[64];
        for (int g = 0; g < 16; g++) {
            int h = g >> 3;
            int shift = 2 * ((g & 7) >> 1);
            int bit = 4 * h + (shift >> 1);
            for (int l = 0; l < 16; l++) {
                int i = 16 * (g & 1) + l;
                int u = q[16 * g + l] + 4;
                qs[32 * h + i] |= (byte) ((u & 3) << shift);
                hmask[i] |= (byte) ((u >> 2) << bit);
            }
        }
        byte[] s = new byte[12];
        for (int g = 0; g < 16; g++) {
            int v = sc[g] + 32;
            if (g < 8) {
                s[g] |= (byte) (v & 15);
            } else {
                s[g - 8] |= (byte) ((v & 15) << 4);
            }
            s[8 + (g & 3)] |= (byte) ((v >> 4) << (2 * (g >> 2)));
        }
        out.put(hmask).put(qs).put(s).putShort(Float.floatToFloat16(d));
    }

    private static void q6_k(float[] x, ByteBuffer out) {
        int[] q = new int[256];
        int[] sc = new int[16];
        float d = symmetric(x, 16, -32, 31, -128, 127, q, sc);
        byte[] ql = new byte[128];
        byte[] qh = new byte[64];
        for (int i = 0; i < 256; i++) {
            int h = i >> 7;
            int u = (i >> 5) & 3;
            int l = i & 31;
            int v = q[i] + 32;
            ql[64 * h + 32 * (u & 1) + l] |= (byte) ((v & 15) << (u >= 2 ? 4 : 0));
            qh[32 * h + l] |= (byte) ((v >> 4) << (2 * u));
        }
        out.put(ql).put(qh);
        for (int s : sc) {
            out.put((byte) s);
        }
        out.putShort(Float.floatToFloat16(d));
    }

    /** The index of the level nearest to {@code v}. */
    private static int nearestLevel(byte[] levels, float v) {
        int best = 0;
        for (int k = 1; k < levels.length; k++) {
            if (Math.abs(levels[k] - v) < Math.abs(levels[best] - v)) {
                best = k;
            }
        }
        return best;
    }

    private static void putNibbles(byte[] levels, float[] x, int from, float d, ByteBuffer out) {
        for (int j = 0; j < 16; j++) {
            int lo = d != 0 ? nearestLevel(levels, x[from + j] / d) : nearestLevel(levels, 0);
            int hi = d != 0 ? nearestLevel(levels, x[from + j + 16] / d) : nearestLevel(levels, 0);
            out.put((byte) (lo | hi << 4));
        }
    }

    private static void iq4_nl(float[] x, ByteBuffer out) {
        float d = half(signedMax(x, 0, 32) / -127);
        out.putShort(Float.floatToFloat16(d));
        putNibbles(QuantBlocks.IQ4_LEVELS, x, 0, d, out);
    }

    private static void iq4_xs(float[] x, ByteBuffer out) {
        float[] scale = new float[8];
        for (int b = 0; b < 8; b++) {
            scale[b] = signedMax(x, 32 * b, 32 * b + 32) / -127;
        }
        float d = half(signedMax(scale, 0, 8) / -32);
        int[] ls = new int[8];
        int high = 0;
        byte[] low = new byte[4];
        for (int b = 0; b < 8; b++) {
            ls[b] = d != 0 ? clamp(nearest(scale[b] / d), -32, 31) : 0;
            int v = ls[b] + 32;
            low[b >> 1] |= (byte) ((v & 15) << (4 * (b & 1)));
            high |= (v >> 4) << (2 * b);
        }
        out.putShort(Float.floatToFloat16(d)).putShort((short) high).put(low);
        for (int b = 0; b < 8; b++) {
            putNibbles(QuantBlocks.IQ4_LEVELS, x, 32 * b, d * ls[b], out);
        }
    }

    private static void mxfp4(float[] x, ByteBuffer out) {
        float amax = 0;
        for (float v : x) {
            amax = Math.max(amax, Math.abs(v));
        }
        // quants.py: e = floor(log2(amax)) - 2 + 127 as uint8, the level nearest to each value.
        int e = amax > 0 ? (Math.getExponent(amax) - 2 + 127) & 0xFF : 0;
        out.put((byte) e);
        float d = QuantBlocks.e8m0Half(e);
        for (int j = 0; j < 16; j++) {
            out.put((byte) (mxfp4Level(x[j], d) | mxfp4Level(x[j + 16], d) << 4));
        }
    }

    private static int mxfp4Level(float v, float d) {
        int best = 0;
        float bestErr = Float.POSITIVE_INFINITY;
        for (int k = 0; k < 16; k++) {
            float err = Math.abs(d * QuantBlocks.MXFP4_LEVELS[k] - v);
            if (err < bestErr) {
                bestErr = err;
                best = k;
            }
        }
        return best;
    }
}
