package io.github.kvcache4j.kernel;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Plain-loop kernels: the fallback when the Vector API is absent, and the twin the SIMD ones are
 * tested against. Quantized elements are dequantized one at a time, exactly as the row decoders of
 * the store do, so the scalar attention is the float32 attention over the dequantized rows.
 */
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
    public void attend(AttentionCall call) {
        assert call.violation() == null : call.violation();
        final MemorySegment[] keyBlocks = call.keyBlocks;
        final MemorySegment[] valueBlocks = call.valueBlocks;
        final DType dtype = call.dtype;
        final int n = call.n;
        final int headDim = call.headDim;
        final float[] q = call.queries;
        final int qOff = call.queryOffset;
        final int group = call.group;
        final float scale = call.scale;
        final int[] positions = call.positions;
        final int queryPosition = call.queryPosition;
        final float[] w = call.weights;
        final int stride = call.stride;
        final float[] maxAndSum = call.maxAndSum;
        final float[] out = call.out;
        final int outOff = call.outOffset;
        final boolean quantized = dtype.isQuantized();
        for (int j = 0; j < n; j++) {
            boolean masked = positions != null && positions[j] > queryPosition;
            MemorySegment keys = keyBlocks[j / KeyTiles.TILE];
            int inTile = j % KeyTiles.TILE;
            for (int g = 0; g < group; g++) {
                float s = 0f;
                if (!masked) {
                    int qg = qOff + g * headDim;
                    for (int i = 0; i < headDim; i++) {
                        s += q[qg + i] * element(keys, dtype, quantized ? (long) inTile * headDim + i
                                : KeyTiles.keyIndex(inTile, i, headDim), headDim);
                    }
                }
                w[g * stride + j] = masked ? Float.NEGATIVE_INFINITY : scale * s;
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
        Arrays.fill(out, outOff, outOff + group * headDim, 0f);
        for (int j = 0; j < n; j++) {
            MemorySegment values = valueBlocks[j / KeyTiles.TILE];
            long row = (long) (j % KeyTiles.TILE) * headDim;
            for (int i = 0; i < headDim; i++) {
                float v = element(values, dtype, row + i, headDim);
                for (int g = 0; g < group; g++) {
                    out[outOff + g * headDim + i] += w[g * stride + j] * v;
                }
            }
        }
    }

    /**
     * Decodes the stored element at element index {@code index}. Q8 and Q4 elements are addressed
     * as in rows of {@code headDim}: element {@code index % headDim} of row {@code index / headDim}.
     */
    static float element(MemorySegment seg, DType dtype, long index, int headDim) {
        return switch (dtype) {
            case F32 -> seg.get(F32, index * 4);
            case F16 -> Float.float16ToFloat(seg.get(I16, index * 2));
            case BF16 -> Float.intBitsToFloat(seg.get(I16, index * 2) << 16);
            case Q8 -> QuantizedRows.elementQ8(seg, index / headDim * dtype.rowBytes(headDim), (int) (index % headDim));
            case Q4 -> QuantizedRows.elementQ4(seg, index / headDim * dtype.rowBytes(headDim), (int) (index % headDim));
        };
    }
}
