package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Plain-loop kernels: the fallback when the Vector API is absent, and the twin the SIMD ones are tested against. */
final class ScalarKernels implements Kernels {

    static final ScalarKernels INSTANCE = new ScalarKernels();

    private static final ValueLayout.OfFloat F32 =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private ScalarKernels() {
    }

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s = 0f;
        for (int i = 0; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public float l2Norm(float[] a, int off, int n) {
        return (float) Math.sqrt(dot(a, off, a, off, n));
    }

    @Override
    public void attend(MemorySegment keys, MemorySegment values, DType dtype, int n, int headDim,
                       float[] q, int qOff, int group, float scale,
                       int[] positions, int queryPosition,
                       float[] w, int stride, float[] maxAndSum,
                       float[] out, int outOff, float[] scratch) {
        float[] row = scratch;
        for (int j = 0; j < n; j++) {
            load(keys, dtype, (long) j * headDim, headDim, row);
            boolean masked = positions != null && positions[j] > queryPosition;
            for (int g = 0; g < group; g++) {
                w[g * stride + j] = masked
                        ? Float.NEGATIVE_INFINITY
                        : scale * dot(q, qOff + g * headDim, row, 0, headDim);
            }
        }
        for (int g = 0; g < group; g++) {
            int base = g * stride;
            float m = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                m = Math.max(m, w[base + j]);
            }
            float l = 0f;
            for (int j = 0; j < n; j++) {
                float e = (float) Math.exp(w[base + j] - m);
                w[base + j] = e;
                l += e;
            }
            maxAndSum[2 * g] = m;
            maxAndSum[2 * g + 1] = l;
        }
        java.util.Arrays.fill(out, outOff, outOff + group * headDim, 0f);
        for (int j = 0; j < n; j++) {
            load(values, dtype, (long) j * headDim, headDim, row);
            for (int g = 0; g < group; g++) {
                float p = w[g * stride + j];
                int o = outOff + g * headDim;
                for (int i = 0; i < headDim; i++) {
                    out[o + i] += p * row[i];
                }
            }
        }
    }

    /** Decodes {@code count} stored elements starting at element {@code index} into {@code dst}. */
    static void load(MemorySegment seg, DType dtype, long index, int count, float[] dst) {
        for (int i = 0; i < count; i++) {
            dst[i] = element(seg, dtype, index + i);
        }
    }

    /** Decodes the stored element at element index {@code index}. */
    static float element(MemorySegment seg, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> seg.get(F32, index * 4);
            case F16 -> Float.float16ToFloat(seg.get(I16, index * 2));
            case BF16 -> Float.intBitsToFloat(seg.get(I16, index * 2) << 16);
        };
    }
}
