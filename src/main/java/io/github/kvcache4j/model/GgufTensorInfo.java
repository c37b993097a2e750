package io.github.kvcache4j.model;

import java.util.Arrays;

/**
 * One tensor described in a GGUF file.
 *
 * @param name the tensor name, e.g. {@code blk.0.attn_q.weight}
 * @param dims the dimensions in GGUF order: {@code dims[0]} is the innermost (contiguous) one, so
 *     a matrix {@code [in, out]} is stored as {@code out} rows of {@code in} values
 * @param type the element type
 * @param offset the byte offset of the data, relative to the start of the data section
 * @param byteSize the number of data bytes
 */
public record GgufTensorInfo(String name, long[] dims, GgmlType type, long offset, long byteSize) {

    /** Copies {@code dims} so the record stays immutable. */
    public GgufTensorInfo {
        dims = dims.clone();
    }

    /** Returns a copy of the dimensions. */
    @Override
    public long[] dims() {
        return dims.clone();
    }

    /** Returns the number of elements (product of the dimensions). */
    public long elementCount() {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return n;
    }

    /** Returns the number of dimensions. */
    public int rank() {
        return dims.length;
    }

    /**
     * Returns one dimension.
     *
     * @param i the index, {@code 0 <= i < rank()}
     * @return {@code dims[i]}
     */
    public long dim(int i) {
        return dims[i];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && name.equals(t.name) && Arrays.equals(dims, t.dims)
                && type == t.type && offset == t.offset && byteSize == t.byteSize;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        return name + Arrays.toString(dims) + " " + type + " @" + offset + " (" + byteSize + " bytes)";
    }
}
