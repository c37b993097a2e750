package io.github.kvcache4j.kernel;

import io.github.kvcache4j.layout.KeyTiles;
import java.lang.foreign.MemorySegment;

/**
 * Working memory of one attention call at a time: half-precision key tiles and value blocks of
 * shapes without an in-register path are widened into {@code floats}, the score pass over
 * quantized rows keeps its row sums in {@code rowSums}, and lane sums are spilled to
 * {@code lanes}. Each {@link AttentionCall} owns one, so a thread that reuses its call reuses it.
 */
final class Workspace {

    /**
     * Value rows accumulated per block: 64 rows of 128 floats are 32 KiB, inside L1, and the
     * block's 64 weights per head are turned into exponentials just before.
     */
    static final int VALUE_BLOCK = 64;

    final float[] floats;
    final MemorySegment floatSegment;
    /** One vector's lanes (64 covers every species up to 2048 bits). */
    final float[] lanes = new float[64];
    /**
     * One vector per key row of a block and query head of a batch of four
     * ({@link PanamaQuantScores}): the float species is capped at 512 bits, 16 lanes.
     */
    final float[] rowSums = new float[4 * KeyTiles.TILE * 16];

    /** Creates the working memory for {@code headDim}-element heads. */
    Workspace(int headDim) {
        this.floats = new float[Math.max(KeyTiles.TILE, VALUE_BLOCK) * headDim];
        this.floatSegment = MemorySegment.ofArray(floats);
    }
}
