package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix viewed in place: {@code rows} rows of {@code cols} elements of {@code type},
 * row-major, inside a mapped GGUF file (y = W x with W[rows][cols]).
 *
 * @param name the tensor name, for messages
 * @param data the bytes, exactly {@code rows * rowBytes()}
 * @param type the element type
 * @param rows the number of rows (output size)
 * @param cols the number of columns (input size)
 */
record Matrix(String name, MemorySegment data, GgmlType type, int rows, int cols) {

    /** The weight types the decoder's matrix products read, for messages. */
    static final String SUPPORTED = "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,"
            + " IQ4_NL, IQ4_XS, MXFP4";

    Matrix {
        if (!supports(type)) {
            throw new UnsupportedOperationException("tensor '" + name + "': type " + type
                    + " is not supported by the decoder (supported: " + SUPPORTED + ")");
        }
        if (cols % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "': cols " + cols
                    + " is not a multiple of the " + type + " block size " + type.blockSize());
        }
        long expected = (long) rows * (cols / type.blockSize()) * type.blockBytes();
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + data.byteSize()
                    + " bytes, expected " + expected + " for " + rows + "x" + cols + " " + type);
        }
    }

    /** Returns whether the decoder's matrix products read {@code type}. */
    static boolean supports(GgmlType type) {
        return QuantBlocks.supports(type);
    }

    /** Returns the number of bytes of one row. */
    long rowBytes() {
        return (long) (cols / type.blockSize()) * type.blockBytes();
    }
}
