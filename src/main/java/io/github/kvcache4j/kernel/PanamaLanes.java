package io.github.kvcache4j.kernel;

import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/** The vector species every Vector API kernel uses, the F32 load, and the fixed-order lane sum. */
final class PanamaLanes {

    /**
     * The preferred float species, capped at 512 bits so that four vectors never exceed a key tile
     * row ({@value KeyTiles#TILE} floats): {@code TILE % (4·L) == 0} for 128, 256 and 512 bits.
     */
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.vectorBitSize() > 512
            ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I =
            VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
    /** Half as wide as {@link #F}: {@code L} stored 16-bit elements widen to one float vector. */
    static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** Floats per vector. */
    static final int L = F.length();
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    private PanamaLanes() {
    }

    /** Loads {@code L} floats starting at element {@code index}. */
    static FloatVector load(MemorySegment seg, long index) {
        return FloatVector.fromMemorySegment(F, seg, index * 4, LE);
    }

    /**
     * Lane sum in a fixed pairwise order (upper half onto lower half). {@code reduceLanes(ADD)}
     * may order the additions differently in compiled and interpreted code.
     */
    static float sum(FloatVector v) {
        FloatVector x = v;
        for (int half = L / 2; half >= 1; half /= 2) {
            x = x.add(x.slice(half));
        }
        return x.lane(0);
    }
}
