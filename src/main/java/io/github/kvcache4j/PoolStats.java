package io.github.kvcache4j;

/**
 * A snapshot of a {@link KvPool}'s occupancy, for a scheduler deciding whether one more sequence
 * fits.
 *
 * @param blocks blocks the pool reserved
 * @param usedBlocks blocks lent to caches now
 * @param peakBlocks most blocks lent at once since the pool was created
 * @param blockBytes bytes of one block
 */
public record PoolStats(int blocks, int usedBlocks, int peakBlocks, long blockBytes) {

    /** Returns the bytes the pool reserved. */
    public long reservedBytes() {
        return blocks * blockBytes;
    }

    /** Returns the bytes lent to caches now. */
    public long usedBytes() {
        return usedBlocks * blockBytes;
    }

    /** Returns the most bytes lent at once. */
    public long peakBytes() {
        return peakBlocks * blockBytes;
    }

    /** Returns the blocks free now. */
    public int freeBlocks() {
        return blocks - usedBlocks;
    }
}
