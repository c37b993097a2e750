package io.github.kvcache4j;

import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.BlockPool;
import java.util.Objects;

/**
 * Off-heap memory shared by many caches (one per sequence) under one byte budget. The pool hands
 * out blocks of {@value #BLOCK_TOKENS} token slots of one (layer, kv-head): keys and values of
 * {@code headDim} elements in one storage type. A cache takes a block when a buffer's last block
 * is full and gives it back as soon as eviction, {@link KvCache#compress}, {@link KvCache#reset}
 * or {@link KvCache#close} empties it, so compressing a sequence lets the pool admit more.
 *
 * <p>The whole budget is reserved when the pool is created, as serving engines reserve their KV
 * memory. Thread-safe: caches on different threads allocate from and release to one pool (each
 * cache itself is still used by one thread at a time). Close the pool after its caches.
 */
public final class KvPool implements AutoCloseable {

    /** Token slots per block: one key tile of the kernels. */
    public static final int BLOCK_TOKENS = KeyTiles.TILE;

    /** What a cache does when the pool has no free block for an append. */
    public enum Exhaustion {
        /**
         * The append throws {@link PoolExhaustedException} and the cache is exactly as before
         * the call.
         */
        THROW,
        /**
         * The cache's policy evicts tokens of the buffer that needs room, as it does when the
         * buffer reaches its token capacity: decode-time eviction against a byte budget. The
         * append throws {@link PoolExhaustedException} only when even that cannot make room (a
         * chunk larger than the blocks the buffer holds and can get).
         */
        EVICT
    }

    private final int headDim;
    private final DType dtype;
    private final BlockPool blocks;

    private KvPool(int headDim, DType dtype, BlockPool blocks) {
        this.headDim = headDim;
        this.dtype = dtype;
        this.blocks = blocks;
    }

    /**
     * Reserves a pool of {@code floor(budgetBytes / blockBytes)} blocks for rows of
     * {@code headDim} elements of {@code dtype}.
     *
     * @throws IllegalArgumentException if {@code headDim < 1}, not a multiple of 32 for
     *     {@link DType#Q8} or {@link DType#Q4}, or the budget holds no block
     * @throws NullPointerException if {@code dtype} is null
     */
    public static KvPool create(int headDim, DType dtype, long budgetBytes) {
        Objects.requireNonNull(dtype, "dtype");
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        }
        long blockBytes = blockBytes(headDim, dtype);
        long count = budgetBytes / blockBytes;
        if (count < 1 || count > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("budgetBytes must hold 1 to " + (Integer.MAX_VALUE - 8)
                    + " blocks of " + blockBytes + " bytes, got " + budgetBytes);
        }
        return new KvPool(headDim, dtype, new BlockPool(dtype.rowBytes(headDim), (int) count));
    }

    /**
     * Returns the bytes of one block of {@code headDim}-element {@code dtype} rows.
     *
     * @throws IllegalArgumentException as {@link DType#rowBytes(int)}
     */
    public static long blockBytes(int headDim, DType dtype) {
        return BlockPool.blockBytes(dtype.rowBytes(headDim));
    }

    /** Returns the head dimension of the rows the blocks hold. */
    public int headDim() {
        return headDim;
    }

    /** Returns the storage type of the rows the blocks hold. */
    public DType dtype() {
        return dtype;
    }

    /** Returns a snapshot of the pool's occupancy. */
    public PoolStats stats() {
        return new PoolStats(blocks.blocks(), blocks.usedBlocks(), blocks.peakBlocks(), blocks.blockBytes());
    }

    /**
     * Releases the pool's memory; idempotent.
     *
     * @throws IllegalStateException if a cache still holds blocks (close the caches first)
     */
    @Override
    public void close() {
        int used = blocks.usedBlocks();
        if (used > 0 && blocks.isOpen()) {
            throw new IllegalStateException("pool still lends " + used + " blocks to open caches: close them first");
        }
        blocks.close();
    }

    BlockPool blocks() {
        return blocks;
    }
}
