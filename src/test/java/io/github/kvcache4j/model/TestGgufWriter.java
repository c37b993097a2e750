package io.github.kvcache4j.model;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Writes small GGUF files for tests, including deliberately malformed ones. */
final class TestGgufWriter {

    int magic = 0x46554747;
    int version = 3;
    int alignment = 32;
    /** When set, written instead of the real tensor count. */
    Long tensorCountOverride;
    /** When set, written instead of the real metadata count. */
    Long kvCountOverride;

    private final List<byte[]> kvs = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();

    private record Tensor(String name, long[] dims, int type, Long offset, byte[] data) {
    }

    /** Adds a metadata entry whose value bytes (type tag included) are given raw. */
    TestGgufWriter kvRaw(String key, int type, byte[] value) {
        Buf b = new Buf();
        b.str(key);
        b.i32(type);
        b.bytes(value);
        kvs.add(b.toArray());
        return this;
    }

    TestGgufWriter kvU32(String key, int v) {
        return kvRaw(key, 4, new Buf().i32(v).toArray());
    }

    TestGgufWriter kvI32(String key, int v) {
        return kvRaw(key, 5, new Buf().i32(v).toArray());
    }

    TestGgufWriter kvF32(String key, float v) {
        return kvRaw(key, 6, new Buf().i32(Float.floatToIntBits(v)).toArray());
    }

    TestGgufWriter kvBool(String key, boolean v) {
        return kvRaw(key, 7, new byte[] {(byte) (v ? 1 : 0)});
    }

    TestGgufWriter kvString(String key, String v) {
        return kvRaw(key, 8, new Buf().str(v).toArray());
    }

    TestGgufWriter kvI32Array(String key, int... v) {
        Buf b = new Buf().i32(5).i64(v.length);
        for (int x : v) {
            b.i32(x);
        }
        return kvRaw(key, 9, b.toArray());
    }

    TestGgufWriter kvF32Array(String key, float... v) {
        Buf b = new Buf().i32(6).i64(v.length);
        for (float x : v) {
            b.i32(Float.floatToIntBits(x));
        }
        return kvRaw(key, 9, b.toArray());
    }

    TestGgufWriter kvStringArray(String key, String... v) {
        Buf b = new Buf().i32(8).i64(v.length);
        for (String x : v) {
            b.str(x);
        }
        return kvRaw(key, 9, b.toArray());
    }

    /** Adds a tensor placed after the previous one, aligned. */
    TestGgufWriter tensor(String name, int type, byte[] data, long... dims) {
        tensors.add(new Tensor(name, dims, type, null, data));
        return this;
    }

    /**
     * Adds a tensor of float values stored as {@code type}, placed after the previous one:
     * F32, F16, BF16 or any quantized type {@link TestQuantizer} encodes (Q4_0, Q4_1, Q5_0, Q5_1,
     * Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4). The values are row-major with
     * {@code dims[0]} values per row, which must be a multiple of the type's block size. A model
     * reads back {@link TestQuantizer#roundTrip}{@code (type, values)}.
     */
    TestGgufWriter tensor(String name, GgmlType type, float[] values, long... dims) {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        if (n != values.length) {
            throw new IllegalArgumentException(name + ": " + values.length + " values for dims "
                    + java.util.Arrays.toString(dims));
        }
        if (dims.length > 0 && dims[0] % type.blockSize() != 0) {
            throw new IllegalArgumentException(name + ": rows of " + dims[0] + " values are not a multiple of the "
                    + type + " block size " + type.blockSize());
        }
        return tensor(name, type.id(), TestQuantizer.quantize(type, values), dims);
    }

    /** Adds a tensor info with an explicit offset and no data of its own. */
    TestGgufWriter tensorAt(String name, int type, long offset, long... dims) {
        tensors.add(new Tensor(name, dims, type, offset, new byte[0]));
        return this;
    }

    byte[] build() {
        Buf b = new Buf();
        b.i32(magic).i32(version);
        b.i64(tensorCountOverride != null ? tensorCountOverride : tensors.size());
        b.i64(kvCountOverride != null ? kvCountOverride : kvs.size());
        for (byte[] kv : kvs) {
            b.bytes(kv);
        }
        long next = 0;
        long[] offsets = new long[tensors.size()];
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            offsets[i] = t.offset != null ? t.offset : next;
            if (t.offset == null) {
                next = align(next + t.data.length);
            }
            b.str(t.name).i32(t.dims.length);
            for (long d : t.dims) {
                b.i64(d);
            }
            b.i32(t.type).i64(offsets[i]);
        }
        while (b.size() % alignment != 0) {
            b.bytes(new byte[1]);
        }
        long dataStart = b.size();
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            if (t.offset == null) {
                while (b.size() < dataStart + offsets[i]) {
                    b.bytes(new byte[1]);
                }
                b.bytes(t.data);
            }
        }
        return b.toArray();
    }

    private long align(long v) {
        return (v + alignment - 1) / alignment * alignment;
    }

    /** Little-endian byte sink. */
    static final class Buf {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Buf i32(int v) {
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
            return this;
        }

        Buf i64(long v) {
            out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
            return this;
        }

        Buf str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            i64(b.length);
            out.writeBytes(b);
            return this;
        }

        Buf bytes(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        int size() {
            return out.size();
        }

        byte[] toArray() {
            return out.toByteArray();
        }
    }
}
