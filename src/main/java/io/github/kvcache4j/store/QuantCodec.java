package io.github.kvcache4j.store;

import io.github.kvcache4j.DType;
import java.lang.foreign.MemorySegment;

/**
 * The row codec of a store whose dtype is {@link DType#Q8} or {@link DType#Q4}: encodes a key or
 * a value row into its {@link Q8} or {@link Q4} bytes, rotating keys first when the store has a
 * {@link HadamardRotation}, and decodes rows back, keys un-rotated. Its scratch row makes it
 * single-threaded, as the writes of a {@link KvStore} are.
 */
final class QuantCodec {

    private final DType dtype;
    private final int headDim;
    private final HadamardRotation rotation;
    /** The rotated copy of the key being encoded: the caller's row stays as given. */
    private final float[] rotated;

    /**
     * Creates the codec of {@code headDim}-element rows of {@code dtype}.
     *
     * @param rotation the keys' rotation, or null to store keys as given
     */
    QuantCodec(DType dtype, int headDim, HadamardRotation rotation) {
        assert dtype.isQuantized() : dtype;
        assert rotation == null || rotation.headDim() == headDim : "rotation of " + rotation.headDim();
        this.dtype = dtype;
        this.headDim = headDim;
        this.rotation = rotation;
        this.rotated = rotation == null ? null : new float[headDim];
    }

    /** Encodes the key {@code src[off..]}, rotated if the store rotates keys, at byte {@code at} of {@code dst}. */
    void encodeKey(float[] src, int off, MemorySegment dst, long at) {
        if (rotation == null) {
            encode(src, off, dst, at);
            return;
        }
        System.arraycopy(src, off, rotated, 0, headDim);
        rotation.rotate(rotated, 0);
        encode(rotated, 0, dst, at);
    }

    /** Encodes the value {@code src[off..]} at byte {@code at} of {@code dst}. */
    void encodeValue(float[] src, int off, MemorySegment dst, long at) {
        encode(src, off, dst, at);
    }

    /** Decodes the key row at byte {@code at} of {@code src} into {@code dst[off..]}, un-rotated. */
    void decodeKey(MemorySegment src, long at, float[] dst, int off) {
        decodeValue(src, at, dst, off);
        if (rotation != null) {
            rotation.unrotate(dst, off);
        }
    }

    /** Decodes the value row at byte {@code at} of {@code src} into {@code dst[off..]}. */
    void decodeValue(MemorySegment src, long at, float[] dst, int off) {
        if (dtype == DType.Q8) {
            Q8.decode(src, at, headDim, dst, off);
        } else {
            Q4.decode(src, at, headDim, dst, off);
        }
    }

    private void encode(float[] src, int off, MemorySegment dst, long at) {
        if (dtype == DType.Q8) {
            Q8.encode(src, off, headDim, dst, at);
        } else {
            Q4.encode(src, off, headDim, dst, at);
        }
    }
}
