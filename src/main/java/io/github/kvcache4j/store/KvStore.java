package io.github.kvcache4j.store;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Slot storage for a set of (layer, kv-head) buffers in blocks from a {@link BlockPool}. Each
 * buffer holds up to {@code capacity} resident tokens: a key and a value of {@code headDim}
 * elements in the storage {@link DType}, and the token's absolute position. A buffer is a block
 * table: slot {@code s} lives in block {@code s / TILE}, its key in the block's key tile
 * ({@link KeyTiles} layout), its value in the block's value rows. Quantized dtypes ({@link DType#Q8},
 * {@link DType#Q4}) keep keys as rows too, {@code [slot % TILE][rowBytes]} (a group's scale sits
 * with its codes, so a tile of dimension-major codes would not help), through a {@link QuantCodec}
 * that may rotate keys.
 *
 * <p>Slots {@code [0, size)} of a buffer are resident, so at most one block of a buffer is partly
 * used. A buffer gets blocks through {@link #ensure} before tokens are appended, and gives every
 * block beyond {@code ceil(size / TILE)} back with {@link #trim}. Removing a slot moves the last
 * resident slot into its place (O(headDim)); {@link #retain} compacts in order. Not thread-safe
 * for writes (the pool is).
 *
 * <p>Copy on write: {@link #forkFrom} makes a store hold the same blocks as another one of the same
 * pool (the pool counts their holders). A shared block is never written: before an append or an
 * eviction writes to a buffer, the caller makes the blocks it touches the store's own with
 * {@link #unshareTail} or {@link #unshareAll}, which copy a shared block into a free one.
 */
public final class KvStore implements AutoCloseable {

    private static final int TILE = KeyTiles.TILE;

    private final int buffers;
    private final int headDim;
    private final int capacity;
    private final DType dtype;
    private final long rowBytes;
    /** The row codec of a quantized dtype, else null. */
    private final QuantCodec quant;
    private final HadamardRotation rotation;
    private final BlockPool pool;
    private final boolean ownsPool;
    private final int[][] blockIds;
    private final MemorySegment[][] keyBlocks;
    private final MemorySegment[][] valueBlocks;
    private final int[] held;
    private final int[][] positions;
    private final int[] size;
    /** Whether the resident slots of a buffer are in increasing position order. */
    private final boolean[] ordered;
    private long heldTotal;
    private boolean closed;
    /**
     * Whether a block of this store may be held by another store too: set on both sides when a
     * fork shares blocks, never cleared. A store that never took part in a fork asks the pool
     * (a lock) about no block before it writes.
     */
    private boolean mayShare;

    /**
     * Creates {@code buffers} empty buffers whose blocks come from {@code pool}.
     *
     * @param ownsPool whether {@link #close()} closes the pool too (a pool private to one cache)
     * @throws IllegalArgumentException if a dimension is not positive or the pool's blocks do
     *     not hold rows of {@code headDim} {@code dtype} elements
     */
    public KvStore(int buffers, int headDim, int capacity, DType dtype, BlockPool pool, boolean ownsPool) {
        this(buffers, headDim, capacity, dtype, null, pool, ownsPool);
    }

    /**
     * Creates {@code buffers} empty buffers whose blocks come from {@code pool}, keys rotated by
     * {@code rotation} before they are quantized.
     *
     * @param rotation the keys' rotation (only for a quantized {@code dtype}), or null
     * @param ownsPool whether {@link #close()} closes the pool too (a pool private to one cache)
     * @throws IllegalArgumentException if a dimension is not positive, the pool's blocks do not
     *     hold rows of {@code headDim} {@code dtype} elements, or a rotation is given for an
     *     unquantized dtype or another head dimension
     */
    public KvStore(int buffers, int headDim, int capacity, DType dtype, HadamardRotation rotation, BlockPool pool,
                   boolean ownsPool) {
        if (buffers <= 0 || headDim <= 0 || capacity <= 0) {
            throw new IllegalArgumentException("buffers, headDim and capacity must be > 0, got "
                    + buffers + ", " + headDim + ", " + capacity);
        }
        if (rotation != null && (!dtype.isQuantized() || rotation.headDim() != headDim)) {
            throw new IllegalArgumentException("rotation: rows of " + rotation.headDim() + " elements for dtype "
                    + dtype + ", but a rotation needs a quantized dtype and headDim " + headDim);
        }
        this.rowBytes = dtype.rowBytes(headDim);
        if (pool.tileBytes() != rowBytes * TILE) {
            throw new IllegalArgumentException("the pool's blocks hold " + pool.tileBytes() / TILE
                    + "-byte rows, but rows of " + headDim + " " + dtype + " elements take " + rowBytes);
        }
        this.buffers = buffers;
        this.headDim = headDim;
        this.capacity = capacity;
        this.dtype = dtype;
        this.pool = pool;
        this.ownsPool = ownsPool;
        this.rotation = rotation;
        this.quant = dtype.isQuantized() ? new QuantCodec(dtype, headDim, rotation) : null;
        int maxBlocks = KeyTiles.roundToTiles(capacity) / TILE;
        this.blockIds = new int[buffers][maxBlocks];
        this.keyBlocks = new MemorySegment[buffers][maxBlocks];
        this.valueBlocks = new MemorySegment[buffers][maxBlocks];
        this.held = new int[buffers];
        this.positions = new int[buffers][capacity];
        this.size = new int[buffers];
        this.ordered = new boolean[buffers];
        Arrays.fill(ordered, true);
    }

    /** Returns the number of blocks that hold {@code slots} slots. */
    public static int blocksFor(int slots) {
        return (slots + TILE - 1) / TILE;
    }

    /** Returns the storage type. */
    public DType dtype() {
        return dtype;
    }

    /** Returns the rotation applied to keys before they are stored, or null; queries must be rotated alike. */
    public HadamardRotation keyRotation() {
        return rotation;
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

    /** Returns the pool the blocks come from. */
    public BlockPool pool() {
        return pool;
    }

    /** Returns the resident slots of buffer {@code b}. */
    public int size(int b) {
        return size[b];
    }

    /** Returns the block table of buffer {@code b}'s key tiles; entries {@code [0, heldBlocks(b))} are set. */
    public MemorySegment[] keyBlocks(int b) {
        return keyBlocks[b];
    }

    /** Returns the block table of buffer {@code b}'s value rows. */
    public MemorySegment[] valueBlocks(int b) {
        return valueBlocks[b];
    }

    /** Returns the blocks buffer {@code b} holds. */
    public int heldBlocks(int b) {
        return held[b];
    }

    /** Returns the slot positions of buffer {@code b}; entries {@code [0, size)} are resident. */
    public int[] positions(int b) {
        return positions[b];
    }

    /** Returns whether the resident slots of buffer {@code b} are in increasing position order. */
    public boolean ordered(int b) {
        return ordered[b];
    }

    /** Returns the bytes this store reserved off-heap itself: its private pool's, else 0; 0 after close. */
    public long reservedBytes() {
        return ownsPool && pool.isOpen() ? pool.blockBytes() * pool.blocks() : 0;
    }

    /** Returns the bytes of the pool blocks the buffers hold now. */
    public long heldBytes() {
        return heldTotal * pool.blockBytes();
    }

    /** Returns the bytes of one resident token in one buffer (key and value rows). */
    public long bytesPerSlot() {
        return 2 * rowBytes;
    }

    /**
     * Gives buffer {@code b} blocks for {@code slots} slots (at most its capacity), taking what
     * is missing from the pool. Returns false when the pool ran out first; the blocks taken so far
     * stay with the buffer until {@link #trim}.
     */
    public boolean ensure(int b, int slots) {
        int want = blocksFor(Math.min(slots, capacity));
        while (held[b] < want) {
            int id = pool.allocate(blockBefore(b, held[b]));
            if (id < 0) {
                return false;
            }
            int i = held[b]++;
            blockIds[b][i] = id;
            keyBlocks[b][i] = pool.keyTile(id);
            valueBlocks[b][i] = pool.valueTile(id);
            heldTotal++;
        }
        return true;
    }

    /** Returns the id of block {@code i − 1} of buffer {@code b}, the pool's hint for block {@code i}; -1 for the first. */
    private int blockBefore(int b, int i) {
        return i > 0 ? blockIds[b][i - 1] : -1;
    }

    /** Returns to the pool every block of buffer {@code b} beyond the {@code ceil(size / TILE)} it needs. */
    public void trim(int b) {
        int need = blocksFor(size[b]);
        while (held[b] > need) {
            int i = --held[b];
            pool.release(blockIds[b][i]);
            keyBlocks[b][i] = null;
            valueBlocks[b][i] = null;
            heldTotal--;
        }
    }

    /**
     * Appends a token to buffer {@code b}, which must hold a block for it ({@link #ensure}): the
     * key from {@code k[kOff..]}, the value from {@code v[vOff..]}. Returns the slot it went to.
     */
    public int append(int b, float[] k, int kOff, float[] v, int vOff, int position) {
        int slot = size[b];
        assert slot < capacity && slot < held[b] * TILE : "buffer " + b + " has no room for slot " + slot;
        assert !pool.isShared(blockIds[b][slot / TILE]) : "append to a shared block of buffer " + b;
        if (quant != null) {
            long row = (slot % TILE) * rowBytes;
            quant.encodeKey(k, kOff, keyBlocks[b][slot / TILE], row);
            quant.encodeValue(v, vOff, valueBlocks[b][slot / TILE], row);
        } else {
            Codec.encode(k, kOff, keyBlocks[b][slot / TILE], dtype, KeyTiles.keyIndex(slot % TILE, 0, headDim),
                    TILE, headDim);
            Codec.encode(v, vOff, valueBlocks[b][slot / TILE], dtype, (long) (slot % TILE) * headDim, 1, headDim);
        }
        positions[b][slot] = position;
        size[b] = slot + 1;
        return slot;
    }

    /**
     * Makes the block that the next {@link #append} to buffer {@code b} writes the buffer's own,
     * copying it if it is shared. Returns false when the pool has no free block for the copy
     * (the buffer is unchanged).
     */
    public boolean unshareTail(int b) {
        int i = size[b] / TILE;
        return !mayShare || i >= held[b] || unshare(b, i);
    }

    /**
     * Makes every block of buffer {@code b} its own, copying the shared ones: what an eviction
     * needs, since it moves rows between any of them. Returns false when the pool ran out; the
     * blocks copied so far stay copied (the contents are the same either way).
     */
    public boolean unshareAll(int b) {
        for (int i = 0; mayShare && i < held[b]; i++) {
            if (!unshare(b, i)) {
                return false;
            }
        }
        return true;
    }

    private boolean unshare(int b, int i) {
        int id = blockIds[b][i];
        if (!pool.isShared(id)) {
            return true;
        }
        int copy = pool.allocate(blockBefore(b, i));
        if (copy < 0) {
            return false;
        }
        MemorySegment.copy(pool.keyTile(id), 0, pool.keyTile(copy), 0, pool.tileBytes());
        MemorySegment.copy(pool.valueTile(id), 0, pool.valueTile(copy), 0, pool.tileBytes());
        pool.release(id);
        blockIds[b][i] = copy;
        keyBlocks[b][i] = pool.keyTile(copy);
        valueBlocks[b][i] = pool.valueTile(copy);
        return true;
    }

    /**
     * Makes this store, which must be empty and of the same shape, hold what {@code source}
     * holds: on the same pool it shares the source's blocks (copy on write, no row is copied); on
     * another pool it copies the rows into blocks of its own.
     *
     * @throws IllegalStateException if this pool has too few free blocks for the copy
     */
    public void forkFrom(KvStore source) {
        assert heldTotal == 0 && source.buffers == buffers && source.capacity == capacity
                && source.rowBytes == rowBytes : "fork into a store that is not empty or not of the same shape";
        boolean same = source.pool == pool;
        for (int b = 0; b < buffers; b++) {
            int blocks = blocksFor(source.size[b]);
            if (same) {
                // One lock per buffer rather than per block: a fork of a 4K-token cache shares
                // thousands of blocks.
                pool.share(source.blockIds[b], blocks);
                mayShare = true;
                source.mayShare = true;
            }
            for (int i = 0; i < blocks; i++) {
                int id = same ? source.blockIds[b][i] : pool.allocate(blockBefore(b, i));
                if (id < 0) {
                    throw new IllegalStateException("the pool has no free block to copy a forked buffer into");
                }
                if (!same) {
                    MemorySegment.copy(source.keyBlocks[b][i], 0, pool.keyTile(id), 0, pool.tileBytes());
                    MemorySegment.copy(source.valueBlocks[b][i], 0, pool.valueTile(id), 0, pool.tileBytes());
                }
                blockIds[b][i] = id;
                keyBlocks[b][i] = pool.keyTile(id);
                valueBlocks[b][i] = pool.valueTile(id);
                held[b]++;
                heldTotal++;
            }
            System.arraycopy(source.positions[b], 0, positions[b], 0, source.size[b]);
            size[b] = source.size[b];
            ordered[b] = source.ordered[b];
        }
    }

    /**
     * Makes buffer {@code b}, whose blocks for {@code n} slots ({@link #ensure}) were filled
     * directly (a loaded cache), hold {@code n} slots at {@code positions[0..n)}.
     */
    public void restore(int b, int[] positions, int n, boolean inOrder) {
        assert size[b] == 0 && held[b] >= blocksFor(n) : "restore into a buffer that is not empty or has no blocks";
        System.arraycopy(positions, 0, this.positions[b], 0, n);
        size[b] = n;
        ordered[b] = inOrder;
    }

    /** Decodes the key of slot {@code slot} of buffer {@code b} into {@code dst[off..]} (un-rotated). */
    public void readKey(int b, int slot, float[] dst, int off) {
        if (quant != null) {
            quant.decodeKey(keyBlocks[b][slot / TILE], (slot % TILE) * rowBytes, dst, off);
            return;
        }
        Codec.decode(keyBlocks[b][slot / TILE], dtype, KeyTiles.keyIndex(slot % TILE, 0, headDim), TILE,
                dst, off, headDim);
    }

    /** Decodes the value of slot {@code slot} of buffer {@code b} into {@code dst[off..]}. */
    public void readValue(int b, int slot, float[] dst, int off) {
        if (quant != null) {
            quant.decodeValue(valueBlocks[b][slot / TILE], (slot % TILE) * rowBytes, dst, off);
            return;
        }
        Codec.decode(valueBlocks[b][slot / TILE], dtype, (long) (slot % TILE) * headDim, 1, dst, off, headDim);
    }

    /**
     * Removes {@code slot} from buffer {@code b}: the last resident slot moves into its place.
     * Returns the slot that moved (equal to {@code slot} when it was the last). Blocks are kept
     * until {@link #trim}.
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
     * {@code moved.moved(from, to)} for every slot that changes place. Blocks are kept until
     * {@link #trim}.
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
        assert !pool.isShared(blockIds[b][to / TILE]) : "move into a shared block of buffer " + b;
        if (quant != null) {
            MemorySegment.copy(keyBlocks[b][from / TILE], (from % TILE) * rowBytes,
                    keyBlocks[b][to / TILE], (to % TILE) * rowBytes, rowBytes);
        } else {
            moveTiledKey(b, from, to);
        }
        MemorySegment.copy(valueBlocks[b][from / TILE], (from % TILE) * rowBytes,
                valueBlocks[b][to / TILE], (to % TILE) * rowBytes, rowBytes);
        positions[b][to] = positions[b][from];
    }

    private void moveTiledKey(int b, int from, int to) {
        MemorySegment kFrom = keyBlocks[b][from / TILE];
        MemorySegment kTo = keyBlocks[b][to / TILE];
        long fromKey = KeyTiles.keyIndex(from % TILE, 0, headDim);
        long toKey = KeyTiles.keyIndex(to % TILE, 0, headDim);
        if (dtype == DType.F32) {
            for (int i = 0; i < headDim; i++) {
                long step = (long) i * TILE;
                kTo.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, toKey + step,
                        kFrom.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, fromKey + step));
            }
        } else {
            for (int i = 0; i < headDim; i++) {
                long step = (long) i * TILE;
                kTo.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, toKey + step,
                        kFrom.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, fromKey + step));
            }
        }
    }

    /** Empties every buffer and returns all its blocks to the pool. */
    public void clear() {
        Arrays.fill(size, 0);
        Arrays.fill(ordered, true);
        for (int b = 0; b < buffers; b++) {
            trim(b);
        }
    }

    /** Returns every block to the pool (and closes a private pool); idempotent. */
    @Override
    public synchronized void close() {
        // synchronized: two threads closing at once must not both release the blocks
        if (closed) {
            return;
        }
        closed = true;
        if (ownsPool) {
            pool.close();
            return;
        }
        Arrays.fill(size, 0);
        for (int b = 0; b < buffers; b++) {
            trim(b);
        }
    }
}
