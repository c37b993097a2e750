package io.github.kvcache4j;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
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

    /**
     * Loads a cache saved by {@link #save(Path)}, with the configuration the file holds (a
     * built-in policy and its parameters, a {@link io.github.kvcache4j.less.FeatureMap#positiveRandom}
     * LESS map), on a private pool. The cache continues exactly as the saved one would have.
     *
     * @throws CacheFormatException if the file is not a saved cache or is corrupt (nothing stays
     *     allocated), or it needs a configuration from the caller (a user policy or LESS map)
     * @throws IOException if the file cannot be read
     * @throws NullPointerException if {@code file} is null
     */
    static KvCache load(Path file) throws IOException {
        return load(file, null, null);
    }

    /**
     * Loads a cache saved by {@link #save(Path)}; see {@link #load(ReadableByteChannel, KvCacheConfig, KvPool)}.
     *
     * @throws CacheFormatException if the file is not a saved cache, is corrupt, or does not match
     *     {@code config} or {@code pool} (nothing stays allocated)
     * @throws IOException if the file cannot be read
     * @throws NullPointerException if {@code file} is null
     * @throws PoolExhaustedException if {@code pool} has too few free blocks for the rows
     */
    static KvCache load(Path file, KvCacheConfig config, KvPool pool) throws IOException {
        return CacheReader.read(Objects.requireNonNull(file, "file"), config, pool);
    }

    /**
     * Loads a cache that {@link #save(WritableByteChannel)} wrote, reading exactly its bytes from
     * {@code in} ({@code docs/sessions.md} gives the format). Everything is checked, sizes
     * against the configuration and the configuration against the limit
     * {@code kvcache4j.load.maxBytes} (a system property, bytes; default 8 GiB) on what the cache
     * would reserve, before it is allocated.
     *
     * @param config the configuration to load into, which must equal the file's in shape, dtype,
     *     sharing, policy (by name and parameters; a user policy by name) and LESS map (by name);
     *     its executor is used. Null: the file's configuration, which must then name a built-in
     *     policy and no LESS map or a positive-random one
     * @param pool the shared pool to load onto, or null for a private one
     * @throws CacheFormatException if the bytes are not a saved cache, are corrupt or truncated,
     *     or do not match {@code config} or hold rows {@code pool}'s blocks cannot (nothing stays
     *     allocated)
     * @throws IOException if {@code in} fails
     * @throws NullPointerException if {@code in} is null
     * @throws PoolExhaustedException if {@code pool} has too few free blocks for the rows
     */
    static KvCache load(ReadableByteChannel in, KvCacheConfig config, KvPool pool) throws IOException {
        return CacheReader.read(Objects.requireNonNull(in, "in"), config, pool);
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

    /**
     * Returns an independent cache with the same contents, policy state, LESS residual and
     * statistics: the fork and this cache then answer every call alike, and a call on one never
     * changes the other. On a shared {@link KvPool} the fork holds the same blocks, copy on write:
     * forking costs the block tables, and a cache copies a shared block before it first writes to
     * it (an append copies the block its rows go to; an eviction every shared block of its
     * kv-head), so those calls may throw {@link PoolExhaustedException} when the pool has no free
     * block for the copy. On a private pool the fork gets a private pool of its own. Close each.
     *
     * <p>The caches {@link #create} and {@link #load} return support it; by default another
     * implementation of this interface does not.
     *
     * @throws UnsupportedOperationException if the policy's tracker cannot be copied (its
     *     {@link EvictionPolicy.Tracker#copy()}), or the implementation cannot fork; this cache
     *     is unchanged
     * @throws IllegalStateException if the cache is closed or failed
     */
    default KvCache fork() {
        throw new UnsupportedOperationException(getClass().getName() + " does not support fork");
    }

    /**
     * Writes this cache to {@code out} in the format of {@code docs/sessions.md}: the
     * configuration, every resident row and position, the policy state, the LESS residual and the
     * statistics, each section with a CRC32C. The cache is unchanged.
     *
     * <p>The caches {@link #create} and {@link #load} return support it; by default another
     * implementation of this interface does not.
     *
     * @throws UnsupportedOperationException if the policy's tracker cannot save its state
     *     ({@link EvictionPolicy.Tracker#saveState}) or the implementation cannot save; nothing is
     *     written then
     * @throws IOException if {@code out} fails
     * @throws IllegalStateException if the cache is closed or failed
     */
    default void save(WritableByteChannel out) throws IOException {
        throw new UnsupportedOperationException(getClass().getName() + " does not support save");
    }

    /**
     * Writes this cache to {@code file} atomically: into a temporary file of the same directory,
     * forced to the device, then renamed over {@code file} ({@code ATOMIC_MOVE}). If anything
     * fails, {@code file} is as it was and the temporary file is deleted.
     *
     * @throws UnsupportedOperationException as {@link #save(WritableByteChannel)}
     * @throws IOException if writing or the rename fails
     * @throws IllegalStateException if the cache is closed or failed
     */
    default void save(Path file) throws IOException {
        CacheWriter.saveAtomically(this, Objects.requireNonNull(file, "file"));
    }

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
