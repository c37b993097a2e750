package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaBlocks.scores1x4;
import static io.github.kvcache4j.kernel.PanamaBlocks.scores2x4;
import static io.github.kvcache4j.kernel.PanamaBlocks.scores4x4;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.layout.KeyTiles.TILE;

import java.lang.foreign.MemorySegment;

/** The score pass of the Vector API attention over one key tile of F32 (stored or widened) keys. */
final class PanamaScores {

    private PanamaScores() {
    }

    /**
     * {@code w[g*stride + t0 + j] = scale·q_g·k_j} for the {@value io.github.kvcache4j.layout.KeyTiles#TILE}
     * keys of the tile at element {@code first}: four, two or one query heads at a time, {@code 4·L}
     * keys per step.
     */
    static void scoreTile(MemorySegment keys, long first, int d, float[] q, int qOff, int group,
                          float scale, float[] w, int t0, int stride) {
        for (int lane = 0; lane < TILE; lane += 4 * L) {
            int g = 0;
            for (; g + 4 <= group; g += 4) {
                scores4x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane, stride);
            }
            for (; g + 2 <= group; g += 2) {
                scores2x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane, stride);
            }
            for (; g < group; g++) {
                scores1x4(keys, first + lane, d, q, qOff + g * d, scale, w, g * stride + t0 + lane);
            }
        }
    }
}
