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

    Matrix {
        if (!supports(type)) {
            throw new UnsupportedOperationException("tensor '" + name + "': type " + type
                    + " is not supported by the decoder (supported: F32, F16, BF16, Q8_0)");
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
        return type == GgmlType.F32 || type == GgmlType.F16 || type == GgmlType.BF16 || type == GgmlType.Q8_0;
    }

    /** Returns the number of bytes of one row. */
    long rowBytes() {
        return (long) (cols / type.blockSize()) * type.blockBytes();
    }
}
