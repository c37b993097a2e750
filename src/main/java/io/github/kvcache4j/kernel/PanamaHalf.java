package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaLanes.I;
import static io.github.kvcache4j.kernel.PanamaLanes.I16_LE;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaLanes.LE;
import static io.github.kvcache4j.kernel.PanamaLanes.S;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Half-precision loads of the Vector API kernels: widening in registers ({@link #loadHalf}) for the
 * shapes the register-blocked kernels cover, and widening into the workspace ({@link #widen}) for
 * the others. JDK 25 has no half-float vector type.
 */
final class PanamaHalf {

    /** The stored kind as an int, so that the attention loop tests it without an enum switch. */
    static final int KIND_F32 = 0;
    static final int KIND_F16 = 1;
    static final int KIND_BF16 = 2;

    private PanamaHalf() {
    }

    static int kind(DType dtype) {
        return switch (dtype) {
            case F32 -> KIND_F32;
            case F16 -> KIND_F16;
            case BF16 -> KIND_BF16;
            case Q8, Q4 -> throw new IllegalArgumentException(dtype + " rows are read by PanamaQuantAttention");
        };
    }

    /**
     * Loads {@code L} stored half-precision elements as floats, widened in registers:
     * {@code float(((int) h << shift) & mask) · rebias} with {@code h} sign-extended. For BF16
     * ({@code 16, 0xFFFF0000, 1}) that is the upper half of a float. For F16 ({@code 13, 0x8FFFE000,
     * 2^112}) sign, exponent and mantissa land in float position and the product rebiases the
     * exponent: exact for zero, subnormals and normal numbers; stored F16 elements are always finite
     * (the cache rejects values beyond ±65504), so exponent 31 needs no case. One formula with
     * run-time constants keeps the compiled loop the same for both dtypes: a branch per dtype inside
     * the loop grew past C2's inlining budget once both had run, and a vector returned from a call
     * that is not inlined is boxed on every step. The helpers stay under the always-inline size.
     */
    static FloatVector loadHalf(MemorySegment seg, long index, int shift, int mask, float rebias) {
        return shortsToInts(seg, index).lanewise(VectorOperators.LSHL, shift).and(mask)
                .reinterpretAsFloats().mul(rebias);
    }

    static int halfShift(boolean bf16) {
        return bf16 ? 16 : 13;
    }

    static int halfMask(boolean bf16) {
        return bf16 ? 0xFFFF0000 : 0x8FFFE000;
    }

    static float halfRebias(boolean bf16) {
        return bf16 ? 1f : 0x1p112f;
    }

    private static IntVector shortsToInts(MemorySegment seg, long index) {
        return (IntVector) ShortVector.fromMemorySegment(S, seg, index * 2, LE).convertShape(VectorOperators.S2I, I, 0);
    }

    /** {@link #loadHalf} of one vector into {@code dst} (for tests). */
    static void loadHalfForTest(MemorySegment seg, DType dtype, long index, float[] dst) {
        boolean bf16 = dtype == DType.BF16;
        loadHalf(seg, index, halfShift(bf16), halfMask(bf16), halfRebias(bf16)).intoArray(dst, 0);
    }

    /**
     * Widens {@code count} stored half-precision elements from element {@code first} into the
     * start of the workspace's floats and returns them as a segment. F16 goes through
     * {@link Float#float16ToFloat} in a plain loop, which C2 compiles to the hardware
     * conversion instruction; BF16 is a lane-wise shift.
     */
    static MemorySegment widen(MemorySegment src, int kind, long first, int count, Workspace ws) {
        float[] dst = ws.floats;
        if (kind == KIND_F16) {
            halvesToFloats(src, first * 2, dst, count);
        } else {
            int i = 0;
            for (; i <= count - L; i += L) {
                ((IntVector) ShortVector.fromMemorySegment(S, src, (first + i) * 2, LE)
                        .convertShape(VectorOperators.S2I, I, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, i);
            }
            for (; i < count; i++) {
                dst[i] = Float.intBitsToFloat(src.get(I16_LE, (first + i) * 2) << 16);
            }
        }
        return ws.floatSegment;
    }

    /** Kept apart so that C2 compiles the loop on its own, to the hardware conversion. */
    static void halvesToFloats(MemorySegment src, long byteOffset, float[] dst, int count) {
        for (int i = 0; i < count; i++) {
            dst[i] = Float.float16ToFloat(src.get(I16_LE, byteOffset + 2L * i));
        }
    }

    /** Widens stored elements {@code [index, index+count)} to floats at {@code dst[dOff..]} (for tests). */
    static void widenRow(MemorySegment seg, DType dtype, long index, int count, float[] dst, int dOff) {
        Workspace ws = new Workspace(1);
        for (int done = 0; done < count; ) {
            int chunk = Math.min(ws.floats.length, count - done);
            if (dtype == DType.F32) {
                MemorySegment.copy(seg, PanamaLanes.F32_LE, (index + done) * 4, dst, dOff + done, chunk);
            } else {
                widen(seg, kind(dtype), index + done, chunk, ws);
                System.arraycopy(ws.floats, 0, dst, dOff + done, chunk);
            }
            done += chunk;
        }
    }
}
