package io.github.kvcache4j.store;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Off-heap slot storage for a set of (layer, kv-head) buffers. Each buffer holds up to
 * {@code capacity} resident tokens: a key and a value of {@code headDim} elements in the storage
 * {@link DType}, and the token's absolute position. Values are rows; keys are tiled as
 * {@link KeyTiles} describes. All memory is reserved once, 64-byte
 * aligned, from one shared {@link Arena} and released by {@link #close()}.
 *
 * <p>Slots {@code [0, size)} of a buffer are resident. Removing a slot moves the last resident
 * slot into its place (O(headDim)); {@link #retain} compacts in order. Not thread-safe for writes.
 */
public final class KvStore implements AutoCloseable {

    private static final long ALIGN = 64;

    private final int buffers;
    private final int headDim;
    private final int capacity;
    private final DType dtype;
    private final long rowBytes;
    private final long keyRegionBytes;
    private final long valueRegionBytes;
    private final Arena arena;
    private final MemorySegment memory;
    private final MemorySegment[] keys;
    private final MemorySegment[] values;
    private final int[][] positions;
    private final int[] size;
    /** Whether the resident slots of a buffer are in increasing position order. */
    private final boolean[] ordered;

    /**
     * Reserves storage for {@code buffers} buffers.
     *
     * @throws IllegalArgumentException if a dimension is not positive or the total overflows
     */
    public KvStore(int buffers, int headDim, int capacity, DType dtype) {
        if (buffers <= 0 || headDim <= 0 || capacity <= 0) {
            throw new IllegalArgumentException("buffers, headDim and capacity must be > 0, got "
                    + buffers + ", " + headDim + ", " + capacity);
        }
        this.buffers = buffers;
        this.headDim = headDim;
        this.capacity = capacity;
        this.dtype = dtype;
        this.rowBytes = (long) headDim * dtype.bytes();
        this.keyRegionBytes = alignUp(rowBytes * KeyTiles.roundToTiles(capacity));
        this.valueRegionBytes = alignUp(rowBytes * capacity);
        long total;
        try {
            total = Math.multiplyExact(keyRegionBytes + valueRegionBytes, (long) buffers);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("storage for " + buffers + " buffers of " + capacity
                    + " slots of " + headDim + " " + dtype + " elements overflows 64 bits");
        }
        this.arena = Arena.ofShared();
        this.memory = arena.allocate(total, ALIGN);
        this.keys = new MemorySegment[buffers];
        this.values = new MemorySegment[buffers];
        for (int b = 0; b < buffers; b++) {
            long base = b * (keyRegionBytes + valueRegionBytes);
            keys[b] = memory.asSlice(base, keyRegionBytes);
            values[b] = memory.asSlice(base + keyRegionBytes, valueRegionBytes);
        }
        this.positions = new int[buffers][capacity];
        this.size = new int[buffers];
        this.ordered = new boolean[buffers];
        Arrays.fill(ordered, true);
    }

    private static long alignUp(long bytes) {
        return (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }

    /** Returns the storage type. */
    public DType dtype() {
        return dtype;
    }

    /** Returns the elements per row. */
    public int headDim() {
        return headDim;
    }

    /** Returns the slots per buffer. */
    public int capacity() {
        return capacity;
    }

    /** Returns the number of buffers. */
    public int buffers() {
        return buffers;
    }

    /** Returns the resident slots of buffer {@code b}. */
    public int size(int b) {
        return size[b];
    }

    /** Returns the key tiles of buffer {@code b} (room for {@code capacity} keys; the first {@link #size} are resident). */
    public MemorySegment keys(int b) {
        return keys[b];
    }

    /** Returns the value rows of buffer {@code b}. */
    public MemorySegment values(int b) {
        return values[b];
    }

    /** Returns the slot positions of buffer {@code b}; entries {@code [0, size)} are resident. */
    public int[] positions(int b) {
        return positions[b];
    }

    /** Returns whether the resident slots of buffer {@code b} are in increasing position order. */
    public boolean ordered(int b) {
        return ordered[b];
    }

    /** Returns the bytes reserved for rows, 0 after close. */
    public long reservedBytes() {
        return arena.scope().isAlive() ? memory.byteSize() : 0;
    }

    /** Returns the bytes of one resident token in one buffer (key and value rows). */
    public long bytesPerSlot() {
        return 2 * rowBytes;
    }

    /**
     * Appends a token to buffer {@code b}: the key from {@code k[kOff..]}, the value from
     * {@code v[vOff..]}. Returns the slot it was written to.
     */
    public int append(int b, float[] k, int kOff, float[] v, int vOff, int position) {
        int slot = size[b];
        assert slot < capacity : "buffer " + b + " is full";
        Codec.encode(k, kOff, keys[b], dtype, KeyTiles.keyIndex(slot, 0, headDim), KeyTiles.TILE, headDim);
        Codec.encode(v, vOff, values[b], dtype, (long) slot * headDim, 1, headDim);
        positions[b][slot] = position;
        size[b] = slot + 1;
        return slot;
    }

    /** Decodes the key of slot {@code slot} of buffer {@code b} into {@code dst[off..]}. */
    public void readKey(int b, int slot, float[] dst, int off) {
        Codec.decode(keys[b], dtype, KeyTiles.keyIndex(slot, 0, headDim), KeyTiles.TILE, dst, off, headDim);
    }

    /** Decodes the value of slot {@code slot} of buffer {@code b} into {@code dst[off..]}. */
    public void readValue(int b, int slot, float[] dst, int off) {
        Codec.decode(values[b], dtype, (long) slot * headDim, 1, dst, off, headDim);
    }

    /**
     * Removes {@code slot} from buffer {@code b}: the last resident slot moves into its place.
     * Returns the slot that moved (equal to {@code slot} when it was the last).
     */
    public int removeSwap(int b, int slot) {
        int last = size[b] - 1;
        if (slot != last) {
            moveRow(b, last, slot);
            ordered[b] = false;
        }
        size[b] = last;
        return last;
    }

    /**
     * Keeps only the slots whose {@code keep} flag is set, in their current order. Calls
     * {@code moved.accept(from, to)} for every slot that changes place.
     */
    public void retain(int b, boolean[] keep, MoveListener moved) {
        int n = size[b];
        int to = 0;
        for (int from = 0; from < n; from++) {
            if (keep[from]) {
                if (from != to) {
                    moveRow(b, from, to);
                    moved.moved(from, to);
                }
                to++;
            }
        }
        size[b] = to;
    }

    /** Receives slot moves during a compaction. */
    @FunctionalInterface
    public interface MoveListener {
        /** Slot {@code from}'s content now lives in slot {@code to}. */
        void moved(int from, int to);
    }

    private void moveRow(int b, int from, int to) {
        long fromKey = KeyTiles.keyIndex(from, 0, headDim);
        long toKey = KeyTiles.keyIndex(to, 0, headDim);
        MemorySegment k = keys[b];
        if (dtype == DType.F32) {
            for (int i = 0; i < headDim; i++) {
                long step = (long) i * KeyTiles.TILE;
                k.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, toKey + step,
                        k.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, fromKey + step));
            }
        } else {
            for (int i = 0; i < headDim; i++) {
                long step = (long) i * KeyTiles.TILE;
                k.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, toKey + step,
                        k.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, fromKey + step));
            }
        }
        MemorySegment.copy(values[b], from * rowBytes, values[b], to * rowBytes, rowBytes);
        positions[b][to] = positions[b][from];
    }

    /** Empties every buffer. */
    public void clear() {
        Arrays.fill(size, 0);
        Arrays.fill(ordered, true);
    }

    /** Releases the off-heap memory; idempotent. */
    @Override
    public synchronized void close() {
        // synchronized: two threads closing at once must not both see the arena alive
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
