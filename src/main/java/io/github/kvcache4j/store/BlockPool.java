package io.github.kvcache4j.store;

import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Off-heap memory in blocks of {@link KeyTiles#TILE} token slots of one (layer, kv-head) buffer:
 * a block is one key tile followed by the tile's value rows. All blocks are reserved at once,
 * 64-byte aligned, from one shared {@link Arena}; allocation and release hand out block ids from a
 * free stack. Thread-safe: many stores, on many threads, allocate from and release to one pool.
 *
 * <p>A block may be held by several stores at once (a forked cache shares its blocks with the
 * original until either writes): each block carries a reference count, {@link #share} adds a
 * holder and {@link #release} removes one, and the block goes back to the free stack when the
 * last holder releases it. {@link #usedBlocks()} counts a shared block once.
 */
public final class BlockPool implements AutoCloseable {

    private static final long ALIGN = 64;

    private final long tileBytes;
    private final long blockBytes;
    private final int blocks;
    private final Arena arena;
    private final MemorySegment[] keyTiles;
    private final MemorySegment[] valueTiles;
    private final int[] free;
    /** Holders of each block; 0 while it is free. */
    private final int[] refs;
    private int freeCount;
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
        this.blockBytes = (2 * tileBytes + ALIGN - 1) / ALIGN * ALIGN;
        long total;
        try {
            total = Math.multiplyExact(blockBytes, (long) blocks);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(blocks + " blocks of " + blockBytes + " bytes overflow 64 bits");
        }
        this.blocks = blocks;
        // Native memory first: a budget beyond the machine fails here, before any heap table.
        this.arena = Arena.ofShared();
        MemorySegment memory;
        try {
            memory = arena.allocate(total, ALIGN);
            this.free = new int[blocks];
            this.refs = new int[blocks];
            this.keyTiles = new MemorySegment[blocks];
            this.valueTiles = new MemorySegment[blocks];
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
        for (int i = 0; i < blocks; i++) {
            keyTiles[i] = memory.asSlice(i * blockBytes, tileBytes);
            valueTiles[i] = memory.asSlice(i * blockBytes + tileBytes, tileBytes);
            free[i] = blocks - 1 - i;
        }
        this.freeCount = blocks;
    }

    /** Returns the bytes of one block (a key tile and its value rows, aligned to 64). */
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

    /** Returns a free block's id and marks it used, or -1 when none is free. */
    public synchronized int allocate() {
        if (freeCount == 0 || !arena.scope().isAlive()) {
            return -1;
        }
        int id = free[--freeCount];
        refs[id] = 1;
        peak = Math.max(peak, blocks - freeCount);
        return id;
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
            free[freeCount++] = id;
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
