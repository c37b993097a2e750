package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaBlocks.accumulate1x4;
import static io.github.kvcache4j.kernel.PanamaBlocks.accumulate4x4;
import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.F32_LE;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaLanes.load;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/** The value pass of the Vector API attention over one block of F32 (stored or widened) value rows. */
final class PanamaValues {

    private PanamaValues() {
    }

    /**
     * {@code out_g += Σ_r w[g][j0+r]·v_r} over the {@code rows} value rows at element {@code first}
     * (one block, read from memory once; half-precision blocks were widened by the caller).
     */
    static void accumulate(MemorySegment src, long first, int rows, int d, int group,
                           float[] w, int j0, int stride, float[] out, int outOff) {
        int i = 0;
        for (; i + 8 * L <= d; i += 8 * L) {
            int g = 0;
            for (; g + 2 <= group; g += 2) {
                accumulate2x8(src, first + i, rows, d, w, g * stride + j0, stride, out, outOff + g * d + i);
            }
            for (; g < group; g++) {
                accumulate1x4(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
                accumulate1x4(src, first + i + 4 * L, rows, d, w, g * stride + j0, out, outOff + g * d + i + 4 * L);
            }
        }
        for (; i + 4 * L <= d; i += 4 * L) {
            int g = 0;
            for (; g + 4 <= group; g += 4) {
                accumulate4x4(src, first + i, rows, d, w, g * stride + j0, stride, out, outOff + g * d + i);
            }
            for (; g < group; g++) {
                accumulate1x4(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
            }
        }
        for (; i + L <= d; i += L) {
            for (int g = 0; g < group; g++) {
                accumulate1x1(src, first + i, rows, d, w, g * stride + j0, out, outOff + g * d + i);
            }
        }
        for (; i < d; i++) {
            for (int g = 0; g < group; g++) {
                float acc = out[outOff + g * d + i];
                for (int r = 0; r < rows; r++) {
                    acc += w[g * stride + j0 + r] * src.get(F32_LE, (first + (long) r * d + i) * 4);
                }
                out[outOff + g * d + i] = acc;
            }
        }
    }

    /** Two query heads × {@code 8L} dimensions: each value vector is loaded once for both heads. */
    private static void accumulate2x8(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, int stride, float[] out, int o) {
        int e = o + d;
        FloatVector c0 = FloatVector.fromArray(F, out, o);
        FloatVector c1 = FloatVector.fromArray(F, out, o + L);
        FloatVector c2 = FloatVector.fromArray(F, out, o + 2 * L);
        FloatVector c3 = FloatVector.fromArray(F, out, o + 3 * L);
        FloatVector c4 = FloatVector.fromArray(F, out, o + 4 * L);
        FloatVector c5 = FloatVector.fromArray(F, out, o + 5 * L);
        FloatVector c6 = FloatVector.fromArray(F, out, o + 6 * L);
        FloatVector c7 = FloatVector.fromArray(F, out, o + 7 * L);
        FloatVector e0 = FloatVector.fromArray(F, out, e);
        FloatVector e1 = FloatVector.fromArray(F, out, e + L);
        FloatVector e2 = FloatVector.fromArray(F, out, e + 2 * L);
        FloatVector e3 = FloatVector.fromArray(F, out, e + 3 * L);
        FloatVector e4 = FloatVector.fromArray(F, out, e + 4 * L);
        FloatVector e5 = FloatVector.fromArray(F, out, e + 5 * L);
        FloatVector e6 = FloatVector.fromArray(F, out, e + 6 * L);
        FloatVector e7 = FloatVector.fromArray(F, out, e + 7 * L);
        for (int r = 0; r < rows; r++) {
            long row = first + (long) r * d;
            FloatVector p = FloatVector.broadcast(F, w[wo + r]);
            FloatVector p2 = FloatVector.broadcast(F, w[wo + stride + r]);
            FloatVector v = load(values, row);
            c0 = v.fma(p, c0);
            e0 = v.fma(p2, e0);
            v = load(values, row + L);
            c1 = v.fma(p, c1);
            e1 = v.fma(p2, e1);
            v = load(values, row + 2 * L);
            c2 = v.fma(p, c2);
            e2 = v.fma(p2, e2);
            v = load(values, row + 3 * L);
            c3 = v.fma(p, c3);
            e3 = v.fma(p2, e3);
            v = load(values, row + 4 * L);
            c4 = v.fma(p, c4);
            e4 = v.fma(p2, e4);
            v = load(values, row + 5 * L);
            c5 = v.fma(p, c5);
            e5 = v.fma(p2, e5);
            v = load(values, row + 6 * L);
            c6 = v.fma(p, c6);
            e6 = v.fma(p2, e6);
            v = load(values, row + 7 * L);
            c7 = v.fma(p, c7);
            e7 = v.fma(p2, e7);
        }
        c0.intoArray(out, o);
        c1.intoArray(out, o + L);
        c2.intoArray(out, o + 2 * L);
        c3.intoArray(out, o + 3 * L);
        c4.intoArray(out, o + 4 * L);
        c5.intoArray(out, o + 5 * L);
        c6.intoArray(out, o + 6 * L);
        c7.intoArray(out, o + 7 * L);
        e0.intoArray(out, e);
        e1.intoArray(out, e + L);
        e2.intoArray(out, e + 2 * L);
        e3.intoArray(out, e + 3 * L);
        e4.intoArray(out, e + 4 * L);
        e5.intoArray(out, e + 5 * L);
        e6.intoArray(out, e + 6 * L);
        e7.intoArray(out, e + 7 * L);
    }

    /** One query head × {@code L} dimensions over a block of slots. */
    private static void accumulate1x1(MemorySegment values, long first, int rows, int d,
                                      float[] w, int wo, float[] out, int o) {
        FloatVector c = FloatVector.fromArray(F, out, o);
        for (int r = 0; r < rows; r++) {
            c = load(values, first + (long) r * d).fma(FloatVector.broadcast(F, w[wo + r]), c);
        }
        c.intoArray(out, o);
    }
}
