package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaLanes.LE;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Dequantization of stored Q8 and Q4 codes ({@link QuantizedLayout}) in registers, {@code L}
 * codes per float vector: the codes are loaded as {@code L} bytes, widened with {@code B2F}, and
 * turned into the values the row decoders give, {@code d·c} (Q8) and {@code fma(d, c, m)} (Q4),
 * rounded the same way. The attention kernels then compute on the stored values themselves, so
 * the group scale costs one operation per {@code L} codes however many heads share them.
 */
final class PanamaCodes {

    /** {@code L} bytes: the codes that widen to one float vector. */
    static final VectorSpecies<Byte> B = L >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * L)) : null;

    private PanamaCodes() {
    }

    /** Returns the {@code L} bytes at byte offset {@code at} of {@code seg}. */
    static ByteVector bytes(MemorySegment seg, long at) {
        return ByteVector.fromMemorySegment(B, seg, at, LE);
    }

    /** Returns {@code d·c_i} of the {@code L} Q8 codes at byte offset {@code at}. */
    static FloatVector q8(MemorySegment seg, long at, float d) {
        return widen(bytes(seg, at)).mul(d);
    }

    /**
     * Returns {@code fma(d, c_i, m)} of the nibbles at bit {@code shift} of {@code packed}: 0 gives
     * the low nibbles (Q4 elements {@code j}), 4 the high ones (elements {@code j + 16}). The shift
     * runs on 32-bit lanes, as x86 has no byte shift; the mask drops the bits it moves across bytes.
     */
    static FloatVector q4(ByteVector packed, int shift, float d, float m) {
        ByteVector codes = packed.reinterpretAsInts().lanewise(VectorOperators.LSHR, shift).reinterpretAsBytes();
        return widen(codes.and((byte) 0xF)).fma(d, m);
    }

    private static FloatVector widen(ByteVector codes) {
        return (FloatVector) codes.convertShape(VectorOperators.B2F, F, 0);
    }
}
