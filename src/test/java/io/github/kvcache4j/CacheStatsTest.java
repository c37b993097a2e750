package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import org.junit.jupiter.api.Test;

class CacheStatsTest {

    @Test
    void toStringShowsCountsNotArrayIdentities() {
        CacheStats s = new CacheStats(new int[][] {{3, 3}, {2, 5}}, 7, 640, 4096, 0);
        assertEquals("CacheStats[resident=13, evicted=7, residentBytes=640, reservedBytes=4096, stateBytes=0,"
                + " perLayer=[3, [2, 5]]]", s.toString());
        assertFalse(s.toString().contains("[I@"));
    }

    @Test
    void equalStatsAreEqualByValue() {
        CacheStats a = new CacheStats(new int[][] {{1, 2}}, 0, 8, 16, 4);
        CacheStats b = new CacheStats(new int[][] {{1, 2}}, 0, 8, 16, 4);
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertNotEquals(a, new CacheStats(new int[][] {{1, 3}}, 0, 8, 16, 4));
        assertNotEquals(a, new CacheStats(new int[][] {{1, 2}}, 1, 8, 16, 4));
    }
}
