package io.github.kvcache4j.store;

import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Off-heap memory in blocks of {@link KeyTiles#TILE} token slots of one (layer, kv-head) buffer:
 * a block is one key tile and the tile's value rows. All blocks are reserved at once, 64-byte
 * aligned, from one shared {@link Arena}. Thread-safe: many stores, on many threads, allocate from
 * and release to one pool.
 *
 * <p><b>Extents.</b> The blocks are laid out in extents of {@value #EXTENT} ({@value #EXTENT}
 * · {@code TILE} = 1024 slots, one chunk of the attention kernels): an extent holds its
 * {@value #EXTENT} key tiles back to back, then its {@value #EXTENT} value tiles. A store asks for
 * the block after its last one ({@link #allocate(int)}); the pool hands out that block when it is
 * free, else the first block of an extent no block of which is in use, else any free block. A
 * buffer that grows while others grow beside it so gets its tiles as long runs: its keys are one
 * forward stream per extent instead of one per tile, which the hardware prefetchers follow. The
 * rule only chooses among free blocks; blocks are counted, held and returned one by one.
 *
 * <p>A block may be held by several stores at once (a forked cache shares its blocks with the
 * original until either writes): each block carries a reference count, {@link #share} adds a
 * holder and {@link #release} removes one, and the block goes back to the free blocks when the
 * last holder releases it. {@link #usedBlocks()} counts a shared block once.
 */
public final class BlockPool implements AutoCloseable {

    /** Blocks per extent: keys of consecutive blocks of an extent are adjacent in memory. */
    public static final int EXTENT = 16;

    private static final long ALIGN = 64;

    private final long tileBytes;
    private final long blockBytes;
    private final int blocks;
    private final Arena arena;
    private final MemorySegment[] keyTiles;
    private final MemorySegment[] valueTiles;
    /** Free block ids in {@code free[0 .. freeCount)}, any order. */
    private final int[] free;
    /** Index of each free block in {@link #free}; -1 for a used block. */
    private final int[] freeAt;
    /** Holders of each block; 0 while it is free. */
    private final int[] refs;
    /** Free blocks of each extent. */
    private final int[] extentFree;
    /** Extents with no block in use, in {@code open[0 .. openCount)}. */
    private final int[] open;
    /** Index of each wholly free extent in {@link #open}; -1 for one in use. */
    private final int[] openAt;
    private int freeCount;
    private int openCount;
    private int peak;

    /**
     * Reserves {@code blocks} blocks for rows of {@code rowBytes} bytes (one key or value of one
     * token).
     *
     * @throws IllegalArgumentException if a size is not positive or the total overflows
     */
    public BlockPool(long rowBytes, int blocks) {
        if (rowBytes <= 0 || blocks <= 0) {
            throw new IllegalArgumentException("rowBytes and blocks must be > 0, got " + rowBytes + " and " + blocks);
        }
        this.tileBytes = rowBytes * KeyTiles.TILE;
        this.blockBytes = blockBytes(rowBytes);
        long total;
        try {
            total = Math.multiplyExact(blockBytes, (long) blocks);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(blocks + " blocks of " + blockBytes + " bytes overflow 64 bits");
        }
        this.blocks = blocks;
        int extents = (blocks + EXTENT - 1) / EXTENT;
        // Native memory first: a budget beyond the machine fails here, before any heap table.
        this.arena = Arena.ofShared();
        MemorySegment memory;
        try {
            memory = arena.allocate(total, ALIGN);
            this.free = new int[blocks];
            this.freeAt = new int[blocks];
            this.refs = new int[blocks];
            this.keyTiles = new MemorySegment[blocks];
            this.valueTiles = new MemorySegment[blocks];
            this.extentFree = new int[extents];
            this.open = new int[extents];
            this.openAt = new int[extents];
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
        for (int i = 0; i < blocks; i++) {
            int e = i / EXTENT;
            long base = (long) e * EXTENT * blockBytes;
            int inExtent = extentSize(e);
            keyTiles[i] = memory.asSlice(base + (long) (i % EXTENT) * tileBytes, tileBytes);
            valueTiles[i] = memory.asSlice(base + (long) (inExtent + i % EXTENT) * tileBytes, tileBytes);
            free[i] = i;
            freeAt[i] = i;
        }
        for (int e = 0; e < extents; e++) {
            extentFree[e] = extentSize(e);
            open[e] = extents - 1 - e;
            openAt[extents - 1 - e] = e;
        }
        this.freeCount = blocks;
        this.openCount = extents;
    }

    /**
     * Returns the bytes of one block of rows of {@code rowBytes} bytes: a key tile and a value tile
     * of {@link KeyTiles#TILE} rows each. A tile is 64 rows, so a whole number of 64-byte lines,
     * and every tile of an extent stays aligned.
     */
    public static long blockBytes(long rowBytes) {
        return 2 * rowBytes * KeyTiles.TILE;
    }

    private int extentSize(int e) {
        return Math.min(EXTENT, blocks - e * EXTENT);
    }

    /** Returns the bytes of one block (a key tile and its value rows). */
    public long blockBytes() {
        return blockBytes;
    }

    /** Returns the bytes of one row times {@link KeyTiles#TILE}: the key part of a block. */
    public long tileBytes() {
        return tileBytes;
    }

    /** Returns the number of blocks. */
    public int blocks() {
        return blocks;
    }

    /** Returns the key tile of block {@code id}. */
    public MemorySegment keyTile(int id) {
        return keyTiles[id];
    }

    /** Returns the value rows of block {@code id}. */
    public MemorySegment valueTile(int id) {
        return valueTiles[id];
    }

    /**
     * Returns a free block's id and marks it used, or -1 when none is free: the block after
     * {@code after} when that one is free and in the same extent, else the first block of a wholly
     * free extent, else any free block.
     *
     * @param after the id of the block the caller holds last, or -1 for none
     */
    public synchronized int allocate(int after) {
        if (freeCount == 0 || !arena.scope().isAlive()) {
            return -1;
        }
        int id;
        int next = after + 1;
        if (after >= 0 && next < blocks && next % EXTENT != 0 && refs[next] == 0) {
            id = next;
        } else if (openCount > 0) {
            id = open[openCount - 1] * EXTENT;
        } else {
            id = free[freeCount - 1];
        }
        take(id);
        refs[id] = 1;
        peak = Math.max(peak, blocks - freeCount);
        return id;
    }

    /** Removes free block {@code id} from the free blocks and, if its extent was wholly free, the extent. */
    private void take(int id) {
        int at = freeAt[id];
        int last = free[--freeCount];
        free[at] = last;
        freeAt[last] = at;
        freeAt[id] = -1;
        int e = id / EXTENT;
        if (extentFree[e]-- == extentSize(e)) {
            int o = openAt[e];
            int top = open[--openCount];
            open[o] = top;
            openAt[top] = o;
            openAt[e] = -1;
        }
    }

    /**
     * Drops one holder of block {@code id}; the last holder's release returns it to the pool.
     *
     * @throws IllegalStateException if the block is free (released more often than held)
     */
    public synchronized void release(int id) {
        if (refs[id] == 0) {
            throw new IllegalStateException("block " + id + " released twice");
        }
        if (--refs[id] == 0) {
            freeAt[id] = freeCount;
            free[freeCount++] = id;
            int e = id / EXTENT;
            if (++extentFree[e] == extentSize(e)) {
                openAt[e] = openCount;
                open[openCount++] = e;
            }
        }
    }

    /**
     * Adds a holder to each of {@code ids[0 .. n)}, blocks some store holds already: they are then
     * shared and must be copied before either holder writes to one ({@link #isShared}). Either
     * every block gains a holder or, if one is free, none does.
     *
     * @throws IllegalStateException if one of the blocks is free
     */
    public synchronized void share(int[] ids, int n) {
        for (int i = 0; i < n; i++) {
            if (refs[ids[i]] == 0) {
                throw new IllegalStateException("block " + ids[i] + " is free and cannot be shared");
            }
        }
        for (int i = 0; i < n; i++) {
            refs[ids[i]]++;
        }
    }

    /** Returns whether block {@code id} has more than one holder. */
    public synchronized boolean isShared(int id) {
        return refs[id] > 1;
    }

    /** Returns the blocks in use now. */
    public synchronized int usedBlocks() {
        return blocks - freeCount;
    }

    /** Returns the most blocks in use at once since the pool was created. */
    public synchronized int peakBlocks() {
        return peak;
    }

    /** Returns whether the memory is still reserved. */
    public boolean isOpen() {
        return arena.scope().isAlive();
    }

    /** Releases the memory; idempotent. Blocks still in use become invalid. */
    @Override
    public synchronized void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
