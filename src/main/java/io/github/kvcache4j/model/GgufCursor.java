package io.github.kvcache4j.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Bounds-checked little-endian reader over a mapped GGUF file: every read checks the bytes left,
 * and every count is bounded by what the rest of the file can hold before anything is allocated.
 */
final class GgufCursor {

    private static final int MAX_ARRAY_NESTING = 16;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    // GGUF metadata value types.
    private static final int T_UINT8 = 0;
    private static final int T_INT8 = 1;
    private static final int T_UINT16 = 2;
    private static final int T_INT16 = 3;
    private static final int T_UINT32 = 4;
    private static final int T_INT32 = 5;
    private static final int T_FLOAT32 = 6;
    private static final int T_BOOL = 7;
    private static final int T_STRING = 8;
    private static final int T_ARRAY = 9;
    private static final int T_UINT64 = 10;
    private static final int T_INT64 = 11;
    private static final int T_FLOAT64 = 12;

    private final MemorySegment seg;
    private long pos;
    /** GGUF v1 stores counts, lengths and dimensions as 32-bit, later versions as 64-bit. */
    boolean narrowSizes;

    GgufCursor(MemorySegment seg) {
        this.seg = seg;
    }

    long position() {
        return pos;
    }

    long remaining() {
        return seg.byteSize() - pos;
    }

    private void need(long n, String field) throws GgufFormatException {
        if (n > remaining()) {
            throw new GgufFormatException("truncated file: " + field + " needs " + n + " bytes at offset "
                    + pos + " but the file ends at " + seg.byteSize());
        }
    }

    byte i8(String field) throws GgufFormatException {
        need(1, field);
        return seg.get(ValueLayout.JAVA_BYTE, pos++);
    }

    short i16(String field) throws GgufFormatException {
        need(2, field);
        short v = seg.get(I16, pos);
        pos += 2;
        return v;
    }

    int i32(String field) throws GgufFormatException {
        need(4, field);
        int v = seg.get(I32, pos);
        pos += 4;
        return v;
    }

    long i64(String field) throws GgufFormatException {
        need(8, field);
        long v = seg.get(I64, pos);
        pos += 8;
        return v;
    }

    int sizeBytes() {
        return narrowSizes ? 4 : 8;
    }

    /** Reads an unsigned count, length or dimension (32-bit in v1, else 64-bit). */
    long size(String field) throws GgufFormatException {
        return narrowSizes ? i32(field) & 0xFFFF_FFFFL : i64(field);
    }

    /** Reads a count of items that occupy at least {@code minItemBytes} each. */
    long count(String field, long minItemBytes) throws GgufFormatException {
        long n = size(field);
        checkCount(field, n, minItemBytes, "");
        return n;
    }

    /** Checks that the remaining bytes (described by {@code where}) hold {@code n} items of {@code minItemBytes}. */
    void checkCount(String field, long n, long minItemBytes, String where) throws GgufFormatException {
        long fit = remaining() / minItemBytes;
        if (n < 0 || n > fit) {
            throw new GgufFormatException(field + ": " + Long.toUnsignedString(n)
                    + " exceeds what the remaining " + remaining() + " bytes" + where + " can hold (at most " + fit
                    + " items of at least " + minItemBytes + " bytes; corrupt count or truncated file)");
        }
    }

    String string(String field) throws GgufFormatException {
        long len = size("length of " + field);
        if (len < 0 || len > remaining()) {
            throw new GgufFormatException("length of " + field + ": string length "
                    + Long.toUnsignedString(len) + " exceeds the remaining " + remaining() + " bytes");
        }
        if (len > Integer.MAX_VALUE - 8) {
            throw new GgufFormatException("length of " + field + ": string length " + len
                    + " exceeds the maximum Java array size");
        }
        byte[] b = seg.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE);
        pos += len;
        return new String(b, StandardCharsets.UTF_8);
    }

    Object value(int type, String key) throws GgufFormatException {
        String f = "value of '" + key + "'";
        return switch (type) {
            case T_UINT8 -> i8(f) & 0xFF;
            case T_INT8 -> (int) i8(f);
            case T_UINT16 -> i16(f) & 0xFFFF;
            case T_INT16 -> (int) i16(f);
            case T_UINT32 -> i32(f) & 0xFFFF_FFFFL;
            case T_INT32 -> i32(f);
            case T_FLOAT32 -> Float.intBitsToFloat(i32(f));
            case T_BOOL -> bool(f);
            case T_STRING -> string(f);
            case T_ARRAY -> array(key, 0);
            case T_UINT64, T_INT64 -> i64(f);
            case T_FLOAT64 -> Double.longBitsToDouble(i64(f));
            default -> throw new GgufFormatException("type of metadata '" + key + "': unknown value type "
                    + Integer.toUnsignedString(type) + " (valid: 0..12)");
        };
    }

    private boolean bool(String field) throws GgufFormatException {
        byte b = i8(field);
        if (b != 0 && b != 1) {
            throw new GgufFormatException(field + ": bool byte " + b + " is neither 0 nor 1");
        }
        return b == 1;
    }

    private long elementBytes(int type) {
        return switch (type) {
            case T_UINT8, T_INT8, T_BOOL -> 1;
            case T_UINT16, T_INT16 -> 2;
            case T_UINT32, T_INT32, T_FLOAT32 -> 4;
            case T_UINT64, T_INT64, T_FLOAT64 -> 8;
            case T_STRING -> sizeBytes(); // a string is at least its length
            case T_ARRAY -> 4 + sizeBytes(); // element type + count
            default -> -1;
        };
    }

    private Object array(String key, int depth) throws GgufFormatException {
        if (depth > MAX_ARRAY_NESTING) {
            throw new GgufFormatException("array '" + key + "': nesting depth exceeds " + MAX_ARRAY_NESTING);
        }
        int type = i32("element type of array '" + key + "'");
        long minBytes = elementBytes(type);
        if (minBytes < 0) {
            throw new GgufFormatException("element type of array '" + key + "': unknown value type "
                    + Integer.toUnsignedString(type) + " (valid: 0..12)");
        }
        long n = size("length of array '" + key + "'");
        long fit = remaining() / minBytes;
        if (n < 0 || n > fit) {
            throw new GgufFormatException("length of array '" + key + "': " + Long.toUnsignedString(n)
                    + " elements exceed the remaining " + remaining() + " bytes (at most " + fit
                    + " elements of at least " + minBytes + " bytes)");
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new GgufFormatException("length of array '" + key + "': " + n
                    + " exceeds the maximum Java array size");
        }
        int len = (int) n;
        String f = "element of array '" + key + "'";
        switch (type) {
            case T_UINT8, T_INT8, T_UINT16, T_INT16, T_INT32 -> {
                int[] a = new int[len];
                for (int i = 0; i < len; i++) {
                    a[i] = switch (type) {
                        case T_UINT8 -> i8(f) & 0xFF;
                        case T_INT8 -> i8(f);
                        case T_UINT16 -> i16(f) & 0xFFFF;
                        case T_INT16 -> i16(f);
                        default -> i32(f);
                    };
                }
                return a;
            }
            case T_UINT32, T_UINT64, T_INT64 -> {
                long[] a = new long[len];
                for (int i = 0; i < len; i++) {
                    a[i] = type == T_UINT32 ? i32(f) & 0xFFFF_FFFFL : i64(f);
                }
                return a;
            }
            case T_FLOAT32 -> {
                float[] a = new float[len];
                for (int i = 0; i < len; i++) {
                    a[i] = Float.intBitsToFloat(i32(f));
                }
                return a;
            }
            case T_FLOAT64 -> {
                double[] a = new double[len];
                for (int i = 0; i < len; i++) {
                    a[i] = Double.longBitsToDouble(i64(f));
                }
                return a;
            }
            case T_BOOL -> {
                boolean[] a = new boolean[len];
                for (int i = 0; i < len; i++) {
                    a[i] = bool(f);
                }
                return a;
            }
            case T_STRING -> {
                String[] a = new String[len];
                for (int i = 0; i < len; i++) {
                    a[i] = string("element " + i + " of array '" + key + "'");
                }
                return a;
            }
            default -> {
                Object[] a = new Object[len];
                for (int i = 0; i < len; i++) {
                    a[i] = array(key + "[" + i + "]", depth + 1);
                }
                return a;
            }
        }
    }
}
