package io.github.kvcache4j;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The key/value cache of one sequence. An inference loop appends, per layer, the keys (after RoPE)
 * and values of each token, and asks for attention over what the cache holds; the cache keeps at
 * most {@link KvCacheConfig#capacity()} tokens per (layer, kv-head) and lets its
 * {@link EvictionPolicy} decide what to forget.
 *
 * <p>Layouts: one token's keys or values are {@code [kvHead][headDim]}; its queries and outputs
 * {@code [queryHead][headDim]}; a chunk of tokens stacks these, token-major. Query head {@code h}
 * reads kv-head {@code h / groupSize}.
 *
 * <p>Every call validates all its arguments before it changes anything: on an
 * {@link IllegalArgumentException} the cache is as it was. If a policy or LESS feature map
 * throws while the cache is changing, the cache is marked failed: that call and every later call
 * but {@link #stats()} and {@link #close()} throw {@link IllegalStateException} naming the
 * original failure. A policy callback that calls back into the cache gets an
 * {@link IllegalStateException}.
 *
 * <p>Not thread-safe: one thread at a time may call a cache (only {@link #close()} may come from
 * another thread, and then makes the call in flight fail cleanly); attention fans out over
 * kv-heads on the configured {@link java.util.concurrent.Executor}, if any.
 *
 * <p>With {@link KvCacheConfig.Builder#less} the cache also keeps a LESS residual: every token it
 * evicts, on any path, is folded into a constant-size state that attention reads
 * ({@code docs/less.md}).
 */
public interface KvCache extends AutoCloseable {

    /**
     * Creates a cache and reserves its off-heap memory.
     *
     * @throws NullPointerException if {@code config} is null
     * @throws IllegalArgumentException if the policy cannot serve the config's shape
     */
    static KvCache create(KvCacheConfig config) {
        return new OffHeapKvCache(Objects.requireNonNull(config, "config"), null);
    }

    /**
     * Creates a cache whose keys and values live in blocks of {@code pool}, shared with other
     * caches: it holds only the blocks its resident tokens need and gives every emptied block
     * back. What an append does when the pool has no free block is
     * {@link KvCacheConfig#poolExhaustion()}.
     *
     * @throws NullPointerException if an argument is null
     * @throws IllegalArgumentException if the pool's blocks are for another head dimension or
     *     storage type, or the policy cannot serve the config's shape
     */
    static KvCache create(KvCacheConfig config, KvPool pool) {
        return new OffHeapKvCache(Objects.requireNonNull(config, "config"), Objects.requireNonNull(pool, "pool"));
    }

    /** Returns the configuration this cache was created with. */
    KvCacheConfig config();

    /**
     * Appends one token's keys (already rotated) and values to {@code layer}.
     *
     * @param keys {@code kvHeads * headDim} floats
     * @param values {@code kvHeads * headDim} floats
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or failed, or the policy cannot make room
     * @throws PoolExhaustedException if a shared pool has no block for the token (the cache is
     *     unchanged)
     */
    default void append(int layer, int position, float[] keys, float[] values) {
        append(layer, position, 1, keys, values);
    }

    /**
     * Appends a chunk of {@code tokens} consecutive tokens at positions
     * {@code firstPosition .. firstPosition + tokens - 1}. Positions of a layer must increase.
     * When the chunk does not fit, the policy names victims among the tokens already resident.
     *
     * @param keys {@code tokens * kvHeads * headDim} floats, token-major
     * @param values {@code tokens * kvHeads * headDim} floats, token-major
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or failed, or the policy cannot make room
     * @throws PoolExhaustedException if a shared pool has no block for the chunk (the cache is
     *     unchanged)
     */
    void append(int layer, int firstPosition, int tokens, float[] keys, float[] values);

    /**
     * Appends a chunk from native memory: {@code keys} and {@code values} hold
     * {@code tokens * kvHeads * headDim} floats in native byte order, token-major.
     *
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or failed, or the policy cannot make room
     */
    void append(int layer, int firstPosition, int tokens, MemorySegment keys, MemorySegment values);

    /**
     * Attention of one query token at {@code position}: for every query head,
     * {@code softmax(q·Kᵀ/√d)·V} over the resident tokens of {@code layer}'s source whose position
     * is at most {@code position}. A layer that reads a later layer (LCKV's top-layer mode)
     * attends before its source has stored {@code position}, so it sees the previous tokens;
     * when it sees none (the first token) its output is zero. For every other layer a query that
     * sees no resident token is an error.
     *
     * @param queries {@code queryHeads * headDim} floats
     * @param out receives {@code queryHeads * headDim} floats; must not be {@code queries}
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or failed
     */
    default void attend(int layer, int position, float[] queries, float[] out) {
        attend(layer, position, 1, queries, out);
    }

    /**
     * Causal attention of a chunk of query tokens at positions {@code firstPosition ..}: query
     * {@code t} sees the resident tokens at positions up to {@code firstPosition + t}.
     *
     * @param queries {@code tokens * queryHeads * headDim} floats, token-major
     * @param out receives {@code tokens * queryHeads * headDim} floats; must not be {@code queries}
     * @throws IllegalArgumentException if an argument is out of range (the message names it)
     * @throws IllegalStateException if the cache is closed or failed
     */
    void attend(int layer, int firstPosition, int tokens, float[] queries, float[] out);

    /**
     * Compresses every (layer, kv-head) to {@code floor(n * (1 - ratio))} of its {@code n}
     * resident tokens (kvpress semantics: {@code ratio} is the fraction removed). The policy picks
     * the victims; a policy may keep more where it protects tokens.
     *
     * @throws IllegalArgumentException if {@code ratio} is not in {@code [0, 1)}
     * @throws IllegalStateException if the cache is closed or failed
     */
    void compress(double ratio);

    /**
     * Compresses every (layer, kv-head) to at most {@code targetTokens} resident tokens.
     *
     * @throws IllegalArgumentException if {@code targetTokens < 0}
     * @throws IllegalStateException if the cache is closed or failed
     */
    void compress(int targetTokens);

    /**
     * Compresses the cache to {@code sum over buffers of floor(n * (1 - ratio))} resident tokens
     * in total ({@code n} each buffer's resident count: what {@link #compress(double)} keeps), shared
     * among the (layer, kv-head) buffers by {@code allocation}; never below the fewest tokens the
     * allocation keeps (the tokens the policy protects, a head split's sinks and recent windows).
     *
     * @throws NullPointerException if {@code allocation} is null
     * @throws IllegalArgumentException if {@code ratio} is not in {@code [0, 1)}, or the allocation
     *     ranks tokens across heads and the policy gives no {@link EvictionPolicy.Tracker#keepScores}
     * @throws IllegalStateException if the cache is closed or failed
     */
    void compress(double ratio, Allocation allocation);

    /**
     * Compresses the cache to at most {@code totalTokens} resident tokens summed over its
     * (source layer, kv-head) buffers, shared among them by {@code allocation}.
     *
     * @throws NullPointerException if {@code allocation} is null
     * @throws IllegalArgumentException if {@code totalTokens} is negative or below the fewest tokens
     *     the allocation keeps (the message names both), or the allocation needs keep scores the
     *     policy does not give; the cache is then unchanged
     * @throws IllegalStateException if the cache is closed or failed
     */
    void compressToTokens(long totalTokens, Allocation allocation);

    /**
     * Compresses the cache so that what it costs its pool, the blocks it holds plus its LESS state
     * ({@link CacheStats#heldBytes()} {@code +} {@link CacheStats#stateBytes()}), is at most
     * {@code bytes}: the largest total token budget that fits, shared by {@code allocation}. The
     * emptied blocks go back to the pool.
     *
     * @throws NullPointerException if {@code allocation} is null
     * @throws IllegalArgumentException if {@code bytes} is negative or below what the fewest tokens
     *     the allocation keeps need (the message names both), or the allocation needs keep scores
     *     the policy does not give; the cache is then unchanged
     * @throws IllegalStateException if the cache is closed or failed
     */
    void compressToBytes(long bytes, Allocation allocation);

    /**
     * Forgets every token and all policy state, and clears a failure.
     *
     * @throws IllegalStateException if the cache is closed
     */
    void reset();

    /** Returns a snapshot of the occupancy; also after {@link #close()} (then with nothing resident). */
    CacheStats stats();

    /**
     * Returns the positions of the tokens resident in ({@code layer}, {@code kvHead}), in an
     * unspecified order that is the same as {@link #read}'s and stays the same until the next
     * mutating call.
     *
     * @throws IllegalArgumentException if {@code layer} or {@code kvHead} is out of range
     * @throws IllegalStateException if the cache is closed or failed
     */
    int[] positions(int layer, int kvHead);

    /**
     * Decodes the resident keys and values of ({@code layer}, {@code kvHead}) as stored, in the
     * order of {@link #positions}, into {@code keys} and {@code values} ({@code resident * headDim}
     * floats each, or more); returns the number of resident tokens.
     *
     * @throws IllegalArgumentException if an index is out of range or an array is too short
     * @throws IllegalStateException if the cache is closed or failed
     */
    int read(int layer, int kvHead, float[] keys, float[] values);

    /**
     * Releases the off-heap memory (a shared pool gets its blocks back). Idempotent; every later
     * call but this and stats fails. With a shared pool, close must not race a call of the same
     * cache on another thread.
     */
    @Override
    void close();
}
