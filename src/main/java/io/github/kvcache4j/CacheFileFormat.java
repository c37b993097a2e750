package io.github.kvcache4j;

import io.github.kvcache4j.kernel.QuantizedLayout;
import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.Q4;
import io.github.kvcache4j.store.Q8;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/**
 * The layout of a saved cache, version {@value #VERSION} ({@code docs/sessions.md} has the
 * table): the magic and version, then the sections CONFIG, STATS, STORE, POLICY and LESS in this
 * order, each a little-endian {@code int} tag, a {@code long} payload length, the payload and the
 * payload's CRC32C as an {@code int}. The sizes and limits every writer and reader uses are
 * computed here.
 */
final class CacheFileFormat {

    /** The first bytes of a saved cache. */
    static final byte[] MAGIC = "KVC4JSES".getBytes(StandardCharsets.US_ASCII);
    /** The format version this code writes and reads. */
    static final int VERSION = 2;
    /** A section's tag and payload length. */
    static final int SECTION_HEADER_BYTES = Integer.BYTES + Long.BYTES;

    static final int TAG_CONFIG = 1;
    static final int TAG_STATS = 2;
    static final int TAG_STORE = 3;
    static final int TAG_POLICY = 4;
    static final int TAG_LESS = 5;

    /** The staging buffer of reads and writes. */
    static final int IO_BUFFER_BYTES = 1 << 20;
    /** The most bytes a CONFIG section may hold: dimensions, the sharing plan and two names. */
    static final long MAX_CONFIG_BYTES = 1 << 20;
    /** The longest name (policy, storage type, feature map) in bytes. */
    static final int MAX_NAME_BYTES = 4096;
    /** The system property that bounds what a load may reserve, in bytes. */
    static final String MAX_BYTES_PROPERTY = "kvcache4j.load.maxBytes";
    /** What a load may reserve when {@value #MAX_BYTES_PROPERTY} is not set: 8 GiB. */
    static final long DEFAULT_MAX_BYTES = 8L << 30;
    /** Heap bytes per slot a cache and its tracker keep, an upper estimate for the load limit. */
    private static final int HEAP_BYTES_PER_SLOT = 64;
    /** Bit 0 of a buffer's flags: its slots are in increasing position order. */
    static final int FLAG_ORDERED = 1;

    private CacheFileFormat() {
    }

    /**
     * Returns the native-order layout of one saved element of {@code dtype}: a float's bits for
     * F32, F16 and BF16, one byte of a row for Q8 and Q4 (whose rows are little-endian bytes in
     * memory and in the file alike).
     */
    static ValueLayout element(DType dtype) {
        return switch (dtype) {
            case F32 -> ValueLayout.JAVA_INT_UNALIGNED;
            case F16, BF16 -> ValueLayout.JAVA_SHORT_UNALIGNED;
            case Q8, Q4 -> ValueLayout.JAVA_BYTE;
        };
    }

    /** Returns the {@link #element} count of one row of {@code headDim} elements of {@code dtype}. */
    static int rowElements(DType dtype, int headDim) {
        return dtype.isQuantized() ? Math.toIntExact(dtype.rowBytes(headDim)) : headDim;
    }

    /**
     * Returns whether all {@code count} elements of {@code dtype} at byte {@code offset} of
     * {@code seg} are finite. An element is NaN or infinite when its exponent bits are all set;
     * eight bytes are tested at once: with {@code y = (x & E) ^ E} per lane ({@code E} the
     * exponent mask), a lane is non-finite iff it is zero, and {@code (y - L) & ~y & H} (lowest and
     * highest lane bits) is non-zero iff some lane is.
     */
    static boolean allFinite(DType dtype, MemorySegment seg, long offset, int count) {
        boolean wide = dtype == DType.F32;
        long exponent = wide ? 0x7F80_0000_7F80_0000L : dtype == DType.F16 ? 0x7C00_7C00_7C00_7C00L
                : 0x7F80_7F80_7F80_7F80L;
        long low = wide ? 0x0000_0001_0000_0001L : 0x0001_0001_0001_0001L;
        long high = wide ? 0x8000_0000_8000_0000L : 0x8000_8000_8000_8000L;
        long bytes = (long) count * (wide ? 4 : 2);
        long end = offset + bytes / 8 * 8;
        long any = 0;
        for (long at = offset; at < end; at += 8) {
            long y = (seg.get(ValueLayout.JAVA_LONG_UNALIGNED, at) & exponent) ^ exponent;
            any |= (y - low) & ~y & high;
        }
        int mask = (int) exponent;
        for (long at = end; at < offset + bytes; at += wide ? 4 : 2) {
            int bits = wide ? seg.get(ValueLayout.JAVA_INT_UNALIGNED, at) : seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, at);
            any |= (bits & mask & (wide ? -1 : 0xFFFF)) == (mask & (wide ? -1 : 0xFFFF)) ? 1 : 0;
        }
        return any == 0;
    }

    /**
     * Returns why the {@link DType#Q8} or {@link DType#Q4} row of {@code headDim} elements at
     * byte {@code at} of {@code seg} cannot have been encoded, or null when it can. The encoder
     * rounds every scale down, so each of its groups decodes to finite values: a Q8 group has
     * {@code d >= 0}, {@code 127·d} finite and codes in [−127, 127]; a Q4 group has
     * {@code d >= 0}, a finite minimum {@code m} and {@code m + 15·d} finite (rounded once, as
     * decoding's fused multiply-add rounds it), which bounds every code's value {@code m + d·c}.
     * Any Q4 code byte is valid. Q8 codes are tested eight bytes at once: with
     * {@code y = x ^ H} ({@code H} the highest bit of every byte), a byte was −128 iff it is zero
     * in {@code y}, and {@code (y - L) & ~y & H} ({@code L} the lowest bits) is non-zero iff one is.
     */
    static String invalidQuantizedRow(DType dtype, int headDim, MemorySegment seg, long at) {
        int groups = QuantizedLayout.groups(headDim);
        for (int g = 0; g < groups; g++) {
            if (dtype == DType.Q8) {
                long group = at + (long) g * QuantizedLayout.Q8_GROUP_BYTES;
                float d = seg.get(QuantizedLayout.F32, group + QuantizedLayout.Q8_SCALE);
                if (!(d >= 0 && Float.isFinite(d * Q8.MAX_CODE))) {
                    return "group " + g + ": scale " + d + " cannot occur (a Q8 scale is >= 0 and "
                            + Q8.MAX_CODE + " * scale is finite)";
                }
                long any = 0;
                for (int i = 0; i < QuantizedLayout.GROUP; i += Long.BYTES) {
                    long y = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, group + QuantizedLayout.Q8_CODES + i)
                            ^ 0x8080_8080_8080_8080L;
                    any |= (y - 0x0101_0101_0101_0101L) & ~y & 0x8080_8080_8080_8080L;
                }
                if (any != 0) {
                    return "group " + g + ": code -128 cannot occur (Q8 codes are in [-" + Q8.MAX_CODE + ", "
                            + Q8.MAX_CODE + "])";
                }
            } else {
                long group = at + (long) g * QuantizedLayout.Q4_GROUP_BYTES;
                float d = seg.get(QuantizedLayout.F32, group + QuantizedLayout.Q4_SCALE);
                float m = seg.get(QuantizedLayout.F32, group + QuantizedLayout.Q4_MIN);
                if (!(d >= 0 && Float.isFinite(m) && Float.isFinite(Math.fma(d, Q4.MAX_CODE, m)))) {
                    return "group " + g + ": scale " + d + " and minimum " + m + " cannot occur (a Q4 scale is >= 0, "
                            + "the minimum finite and minimum + " + Q4.MAX_CODE + " * scale finite)";
                }
            }
        }
        return null;
    }

    /** Returns the STORE payload bytes of a buffer holding {@code size} slots of {@code rowBytes}-byte rows. */
    static long bufferBytes(int size, long rowBytes) {
        return 2L * Integer.BYTES + 2L * Integer.BYTES * size
                + (long) KvStore.blocksFor(size) * 2 * KeyTiles.TILE * rowBytes;
    }

    /** Returns the STORE payload bytes of {@code store}. */
    static long storeBytes(KvStore store) {
        long rowBytes = store.bytesPerSlot() / 2;
        long sum = 0;
        for (int b = 0; b < store.buffers(); b++) {
            sum += bufferBytes(store.size(b), rowBytes);
        }
        return sum;
    }

    /** Returns the STATS payload bytes of a cache of {@code layers} layers. */
    static long statsBytes(int layers) {
        return Long.BYTES + Integer.BYTES + (long) Integer.BYTES * layers;
    }

    /** Returns the LESS payload bytes of {@code buffers} buffers of {@code stateFloats} floats each. */
    static long lessBytes(int buffers, int stateFloats) {
        return (long) buffers * (Long.BYTES + (long) Float.BYTES * stateFloats);
    }

    /** Returns the number of store buffers of {@code config}: source layers times kv-heads. */
    static int buffers(KvCacheConfig config) {
        return config.sourceLayerCount() * config.kvHeads();
    }

    /**
     * Returns an upper estimate of the bytes a cache of {@code config} reserves: its private
     * pool's blocks unless it draws on a shared pool, its per-slot heap tables and a policy's
     * per-slot state (both may grow with the group size), and the attention weights of each
     * kv-head ({@code groupSize} floats per slot).
     */
    static long reserveBytes(KvCacheConfig config, boolean privatePool) {
        double tiles = KeyTiles.roundToTiles((long) config.capacity());
        double slots = buffers(config) * tiles;
        double rowBytes = config.dtype().rowBytes(config.headDim());
        double perSlot = HEAP_BYTES_PER_SLOT + 8.0 * config.groupSize() + (privatePool ? 2 * rowBytes : 0);
        double weights = (double) config.kvHeads() * config.groupSize() * tiles * Float.BYTES;
        double bytes = slots * perSlot + weights;
        return bytes > Long.MAX_VALUE ? Long.MAX_VALUE : (long) bytes;
    }

    /** Returns the most bytes a load may reserve: {@value #MAX_BYTES_PROPERTY}, else 8 GiB. */
    static long maxLoadBytes() {
        String v = System.getProperty(MAX_BYTES_PROPERTY);
        if (v == null) {
            return DEFAULT_MAX_BYTES;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalStateException("system property " + MAX_BYTES_PROPERTY + " must be a number of bytes, got "
                    + v, e);
        }
    }
}
