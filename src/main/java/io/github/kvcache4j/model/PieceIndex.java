package io.github.kvcache4j.model;

import java.util.Arrays;
import java.util.function.IntPredicate;

/**
 * Finds the id of a piece given as a slice of a longer string, without making the slice a
 * string: an open-addressing table keyed by the slice's {@link String#hashCode} value, compared
 * with {@link String#regionMatches}. A SentencePiece encoder asks it for every candidate pair, so
 * the lookups must not allocate.
 *
 * <p>Instances are immutable and thread-safe.
 */
final class PieceIndex {

    private final String[] keys;
    private final int[] ids;
    private final int mask;

    /**
     * Indexes the pieces accepted by {@code include}; a repeated piece keeps its lowest id.
     *
     * @param pieces the piece of each id
     * @param include whether an id takes part
     */
    PieceIndex(String[] pieces, IntPredicate include) {
        int capacity = Integer.highestOneBit(Math.max(4, pieces.length) * 2) * 2;
        keys = new String[capacity];
        ids = new int[capacity];
        Arrays.fill(ids, -1);
        mask = capacity - 1;
        for (int id = 0; id < pieces.length; id++) {
            if (!include.test(id)) {
                continue;
            }
            String p = pieces[id];
            int slot = slot(hash(p, 0, p.length()));
            while (keys[slot] != null && !keys[slot].equals(p)) {
                slot = (slot + 1) & mask;
            }
            if (keys[slot] == null) {
                keys[slot] = p;
                ids[slot] = id;
            }
        }
    }

    private static int hash(String s, int from, int to) {
        int h = 0;
        for (int i = from; i < to; i++) {
            h = 31 * h + s.charAt(i);
        }
        return h;
    }

    private int slot(int hash) {
        return (hash * 0x9E3779B9 >>> 8) & mask;
    }

    /**
     * Returns the id of {@code s[from, to)}, or -1 if it is not an indexed piece.
     *
     * @param s the string
     * @param from the first char of the slice
     * @param to the end of the slice
     * @return the id or -1
     */
    int get(String s, int from, int to) {
        int length = to - from;
        for (int slot = slot(hash(s, from, to)); ; slot = (slot + 1) & mask) {
            String k = keys[slot];
            if (k == null) {
                return -1;
            }
            if (k.length() == length && k.regionMatches(0, s, from, length)) {
                return ids[slot];
            }
        }
    }
}
