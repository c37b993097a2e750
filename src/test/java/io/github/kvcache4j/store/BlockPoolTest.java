package io.github.kvcache4j.store;

import static io.github.kvcache4j.store.BlockPool.EXTENT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class BlockPoolTest {

    private static final long ROW = 24;
    private static final long TILE_BYTES = ROW * KeyTiles.TILE;

    @Test
    void tilesOfAnExtentLieKeysFirstThenValuesAndNoTwoOverlap() {
        for (int blocks : new int[] {1, 5, EXTENT, EXTENT + 4, 3 * EXTENT - 1}) {
            try (BlockPool pool = new BlockPool(ROW, blocks)) {
                assertEquals(2 * TILE_BYTES, pool.blockBytes());
                long origin = pool.keyTile(0).address();
                assertEquals(0, origin % 64, "the pool is 64-byte aligned");
                long[] starts = new long[2 * blocks];
                for (int id = 0; id < blocks; id++) {
                    int extent = id / EXTENT;
                    int inExtent = Math.min(EXTENT, blocks - extent * EXTENT);
                    long base = origin + extent * EXTENT * pool.blockBytes();
                    MemorySegment key = pool.keyTile(id);
                    MemorySegment value = pool.valueTile(id);
                    assertEquals(TILE_BYTES, key.byteSize());
                    assertEquals(TILE_BYTES, value.byteSize());
                    assertEquals(base + id % EXTENT * TILE_BYTES, key.address(), blocks + " blocks: key of " + id);
                    assertEquals(base + (inExtent + id % EXTENT) * TILE_BYTES, value.address(),
                            blocks + " blocks: value of " + id);
                    starts[2 * id] = key.address() - origin;
                    starts[2 * id + 1] = value.address() - origin;
                }
                // The 2·blocks tiles tile the reserved bytes exactly: sorted starts are 0, T, 2T, ...
                Arrays.sort(starts);
                for (int i = 0; i < starts.length; i++) {
                    assertEquals(i * TILE_BYTES, starts[i], blocks + " blocks: tile " + i);
                }
            }
        }
    }

    @Test
    void buffersGrowingSideBySideEachGetOneRunPerExtent() {
        int buffers = 8;
        try (BlockPool pool = new BlockPool(ROW, buffers * 3 * EXTENT)) {
            List<List<Integer>> held = new ArrayList<>();
            for (int b = 0; b < buffers; b++) {
                held.add(new ArrayList<>());
            }
            for (int step = 0; step < 3 * EXTENT; step++) {
                for (List<Integer> ids : held) {
                    ids.add(pool.allocate(ids.isEmpty() ? -1 : ids.get(ids.size() - 1)));
                }
            }
            for (int b = 0; b < buffers; b++) {
                List<Integer> ids = held.get(b);
                for (int i = 0; i < ids.size(); i += EXTENT) {
                    int first = ids.get(i);
                    assertEquals(0, first % EXTENT, "buffer " + b + " starts extent run " + i / EXTENT + " at its first block");
                    for (int j = 1; j < EXTENT; j++) {
                        assertEquals(first + j, ids.get(i + j), "buffer " + b + ", block " + (i + j));
                        assertEquals(pool.keyTile(first + j - 1).address() + TILE_BYTES,
                                pool.keyTile(first + j).address(), "keys of a run are one stream");
                    }
                }
            }
            assertEquals(buffers * 3 * EXTENT, pool.usedBlocks());
            assertEquals(-1, pool.allocate(-1), "a full pool has nothing to give");
        }
    }

    /**
     * Random allocations (with random hints), shares and releases against a model of which blocks
     * are held how often: every answer follows the rule (the block after the hint, else the start
     * of a wholly free extent, else a free block; -1 only when none is free) and the counts agree.
     */
    @Test
    void allocationFollowsTheRuleAndCountsMatchAModel() {
        long seed = Seeds.fresh("allocationFollowsTheRuleAndCountsMatchAModel");
        SplittableRandom r = new SplittableRandom(seed);
        for (int round = 0; round < 20; round++) {
            int blocks = 1 + r.nextInt(5 * EXTENT);
            try (BlockPool pool = new BlockPool(ROW, blocks)) {
                int[] refs = new int[blocks];
                int peak = 0;
                for (int op = 0; op < 3000; op++) {
                    int used = used(refs);
                    int kind = r.nextInt(10);
                    if (kind < 5) {
                        int hint = r.nextInt(4) == 0 ? -1 : r.nextInt(blocks);
                        int id = pool.allocate(hint);
                        String at = "seed " + seed + ", round " + round + ", op " + op + ", hint " + hint;
                        if (used == blocks) {
                            assertEquals(-1, id, at);
                            continue;
                        }
                        assertTrue(id >= 0 && refs[id] == 0, at + ": got block " + id + ", which is not free");
                        int next = hint + 1;
                        if (hint >= 0 && next < blocks && next % EXTENT != 0 && refs[next] == 0) {
                            assertEquals(next, id, at + ": the block after the hint is free");
                        } else if (hasFreeExtent(refs)) {
                            assertTrue(id % EXTENT == 0 && extentFree(refs, id / EXTENT), at + ": got " + id
                                    + ", not the start of a wholly free extent");
                        }
                        refs[id] = 1;
                        peak = Math.max(peak, used + 1);
                    } else if (kind < 9) {
                        int id = r.nextInt(blocks);
                        if (refs[id] == 0) {
                            assertThrows(IllegalStateException.class, () -> pool.release(id));
                        } else {
                            pool.release(id);
                            refs[id]--;
                        }
                    } else {
                        int id = r.nextInt(blocks);
                        if (refs[id] == 0) {
                            assertThrows(IllegalStateException.class, () -> pool.share(new int[] {id}, 1));
                        } else {
                            pool.share(new int[] {id}, 1);
                            refs[id]++;
                            assertTrue(pool.isShared(id));
                        }
                    }
                    assertEquals(used(refs), pool.usedBlocks(), "seed " + seed + ", op " + op);
                    assertEquals(peak, pool.peakBlocks(), "seed " + seed + ", op " + op);
                }
            }
        }
    }

    private static int used(int[] refs) {
        int n = 0;
        for (int v : refs) {
            n += v > 0 ? 1 : 0;
        }
        return n;
    }

    private static boolean hasFreeExtent(int[] refs) {
        for (int e = 0; e * EXTENT < refs.length; e++) {
            if (extentFree(refs, e)) {
                return true;
            }
        }
        return false;
    }

    private static boolean extentFree(int[] refs, int e) {
        for (int id = e * EXTENT; id < Math.min(refs.length, (e + 1) * EXTENT); id++) {
            if (refs[id] > 0) {
                return false;
            }
        }
        return true;
    }
}
