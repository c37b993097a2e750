package io.github.kvcache4j.layout;

/**
 * Layout of the stored keys of one (layer, kv-head) buffer. {@value #TILE} consecutive slots form
 * a tile stored dimension-major, {@code [slot / TILE][dim][slot % TILE]}, so that one vector load
 * brings the same dimension of {@value #TILE} keys and a score needs no horizontal reduction. A
 * key region therefore holds whole tiles: {@link #roundToTiles} slots of {@code headDim} elements.
 * Values are plain rows {@code [slot][headDim]} and need no descriptor.
 */
public final class KeyTiles {

    /**
     * Slots per key tile. A dimension row of a tile is 64 floats (256 bytes), four 512-bit vectors:
     * one broadcast of a query element feeds four FMAs, and a tile is one forward stream.
     */
    public static final int TILE = 64;

    private KeyTiles() {
    }

    /**
     * Returns the element index of dimension {@code dim} of the key in {@code slot}; the key's next
     * dimension is {@value #TILE} elements further on.
     */
    public static long keyIndex(int slot, int dim, int headDim) {
        return ((long) (slot / TILE) * headDim + dim) * TILE + slot % TILE;
    }

    /**
     * Returns {@code slots} rounded up to a whole number of key tiles. The count must leave room
     * for that in an int, as every capacity {@code KvCacheConfig} accepts does.
     */
    public static int roundToTiles(int slots) {
        assert slots <= Integer.MAX_VALUE - TILE + 1 : "slots " + slots + " round past Integer.MAX_VALUE";
        return (slots + TILE - 1) / TILE * TILE;
    }

    /** Returns {@code slots} rounded up to a whole number of key tiles, for sizes checked before they are used. */
    public static long roundToTiles(long slots) {
        return (slots + TILE - 1) / TILE * TILE;
    }
}
