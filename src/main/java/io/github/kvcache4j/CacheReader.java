package io.github.kvcache4j;

import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.sharing.SharingPlan;
import io.github.kvcache4j.store.HeapBytes;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * Loads a cache saved in the format of {@link CacheFileFormat}. The configuration is read and
 * checked (its CRC, its fields, what it would reserve against {@code kvcache4j.load.maxBytes})
 * before the cache is allocated; then rows stream into the cache's blocks, each value checked as
 * it arrives. Any failure closes the half-loaded cache, so nothing stays allocated.
 */
final class CacheReader {

    private static final int TILE = KeyTiles.TILE;

    private CacheReader() {
    }

    /** Loads the cache {@code file} holds; the file must end where the cache does. */
    static KvCache read(Path file, KvCacheConfig config, KvPool pool) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            KvCache cache = read(channel, config, pool);
            if (channel.position() != channel.size()) {
                cache.close();
                throw new CacheFormatException("section end: the file holds " + (channel.size() - channel.position())
                        + " bytes after the saved cache");
            }
            return cache;
        }
    }

    /** Loads a cache from {@code channel}, reading exactly its bytes. */
    static KvCache read(ReadableByteChannel channel, KvCacheConfig config, KvPool pool) throws IOException {
        SectionIn in = new SectionIn(channel);
        in.header();
        in.begin("CONFIG", CacheFileFormat.TAG_CONFIG, CacheFileFormat.MAX_CONFIG_BYTES);
        ConfigCodec.Saved saved = ConfigCodec.read(in);
        in.end();
        KvCacheConfig cfg = config == null ? ConfigCodec.rebuild(saved) : matching(saved, config);
        ValueLayout element = CacheFileFormat.element(cfg.dtype());
        in.check(pool == null || pool.headDim() == cfg.headDim() && pool.dtype() == cfg.dtype(),
                "the file holds rows of " + cfg.headDim() + " " + cfg.dtype() + " elements, the pool's blocks "
                + (pool == null ? "" : pool.headDim() + " " + pool.dtype()));
        long reserve = CacheFileFormat.reserveBytes(cfg, pool == null);
        long max = CacheFileFormat.maxLoadBytes();
        in.check(reserve <= max, "a cache of " + cfg + " reserves about " + reserve + " bytes, more than "
                + CacheFileFormat.MAX_BYTES_PROPERTY + " (" + max + ")");
        in.begin("STATS", CacheFileFormat.TAG_STATS, CacheFileFormat.statsBytes(cfg.layers()));
        long evicted = in.getLong();
        in.check(evicted >= 0, "evicted count " + evicted + " is negative");
        int layers = in.getInt();
        in.check(layers == cfg.layers(), "holds " + layers + " layers, the config " + cfg.layers());
        int[] last = new int[layers];
        for (int l = 0; l < layers; l++) {
            last[l] = in.getInt();
            in.check(last[l] >= -1 && (cfg.isSourceLayer(l) || last[l] == -1), "last position " + last[l]
                    + " of layer " + l + " is outside [-1, " + Integer.MAX_VALUE + "] or on a layer storing no KV");
        }
        in.end();
        OffHeapKvCache cache;
        try {
            cache = new OffHeapKvCache(cfg, pool, null);
        } catch (IllegalArgumentException e) {
            throw new CacheFormatException("section CONFIG: " + e.getMessage(), e);
        }
        try {
            CacheParts p = cache.parts();
            readStore(in, p, element, last);
            readPolicy(in, p.tracker(), max);
            readLess(in, p.less(), p.store().buffers());
            p.eviction().evicted(evicted);
            System.arraycopy(last, 0, p.lastPosition(), 0, layers);
            return cache;
        } catch (IOException | RuntimeException | Error e) {
            cache.close();
            throw e;
        }
    }

    /** Returns {@code config} if the file's configuration equals it, else throws naming the field. */
    private static KvCacheConfig matching(ConfigCodec.Saved saved, KvCacheConfig config) throws CacheFormatException {
        String differs = saved.difference(ConfigCodec.describe(config));
        if (differs != null) {
            throw new CacheFormatException("section CONFIG: the file does not match the config given to load: "
                    + differs);
        }
        return config;
    }

    private static void readStore(SectionIn in, CacheParts p, ValueLayout element, int[] last) throws IOException {
        KvStore store = p.store();
        int capacity = store.capacity();
        long rowBytes = store.bytesPerSlot() / 2;
        in.begin("STORE", CacheFileFormat.TAG_STORE, store.buffers() * CacheFileFormat.bufferBytes(capacity, rowBytes));
        int[] layerOf = sourceLayers(p.config());
        int[] positions = new int[capacity];
        for (int b = 0; b < store.buffers(); b++) {
            String where = "buffer " + b;
            int n = in.count(where + " size", capacity, 2 * Integer.BYTES);
            int flags = in.getInt();
            in.check((flags & ~CacheFileFormat.FLAG_ORDERED) == 0, where + " flags " + flags + " are not 0 or 1");
            for (int j = 0; j < n; j++) {
                positions[j] = in.getInt();
                in.check(positions[j] >= 0 && positions[j] <= last[layerOf[b]], where + " position " + positions[j]
                        + " is outside [0, " + last[layerOf[b]] + "] (the last position of its layer)");
            }
            boolean ordered = (flags & CacheFileFormat.FLAG_ORDERED) != 0;
            checkDistinct(in, where, positions, n, ordered);
            for (int j = 0; j < n; j++) {
                float norm = in.getFloat();
                in.check(Float.isFinite(norm) && norm >= 0, where + " key norm " + norm + " is not finite and >= 0");
                p.view().keyNorm(b, j, norm);
            }
            if (!store.ensure(b, n)) {
                throw new PoolExhaustedException("loading " + n + " tokens into " + where + " needs "
                        + KvStore.blocksFor(n) + " blocks, but the pool of " + store.pool().blocks()
                        + " blocks has too few free");
            }
            for (int i = 0; i < KvStore.blocksFor(n); i++) {
                readTile(in, where + " block " + i + " keys", store.keyBlocks(b)[i], element, store);
                readTile(in, where + " block " + i + " values", store.valueBlocks(b)[i], element, store);
            }
            store.restore(b, positions, n, ordered);
        }
        in.end();
    }

    /** Rejects positions named twice, or out of increasing order where the flags say ordered. */
    private static void checkDistinct(SectionIn in, String where, int[] positions, int n, boolean ordered)
            throws IOException {
        int[] sorted = ordered ? positions : Arrays.copyOf(positions, n);
        if (!ordered) {
            Arrays.sort(sorted);
        }
        for (int j = 1; j < n; j++) {
            in.check(sorted[j] > sorted[j - 1], where + " position " + sorted[j] + (ordered
                    ? " does not increase on " + sorted[j - 1] + " although the buffer is ordered" : " is named twice"));
        }
    }

    /**
     * Reads one key tile or value rows into {@code tile} and checks what arrived: every element
     * finite, or every quantized row one the encoder can write (the padding's zero rows are such
     * rows).
     */
    private static void readTile(SectionIn in, String where, MemorySegment tile, ValueLayout element, KvStore store)
            throws IOException {
        DType dtype = store.dtype();
        int headDim = store.headDim();
        int row = CacheFileFormat.rowElements(dtype, headDim);
        in.getElements(tile, element, 0, TILE * row);
        if (!dtype.isQuantized()) {
            in.check(CacheFileFormat.allFinite(dtype, tile, 0, TILE * row), where + " hold a NaN or an infinity");
            return;
        }
        for (int s = 0; s < TILE; s++) {
            String invalid = CacheFileFormat.invalidQuantizedRow(dtype, headDim, tile, (long) s * row);
            if (invalid != null) {
                in.check(false, where + " row " + s + " " + invalid);
            }
        }
    }

    private static int[] sourceLayers(KvCacheConfig config) {
        SharingPlan plan = config.sharing();
        int kvHeads = config.kvHeads();
        int[] layerOf = new int[plan.sourceCount() * kvHeads];
        for (int l = 0; l < plan.layers(); l++) {
            if (plan.isSource(l)) {
                Arrays.fill(layerOf, plan.storageIndex(l) * kvHeads, (plan.storageIndex(l) + 1) * kvHeads, l);
            }
        }
        return layerOf;
    }

    private static void readPolicy(SectionIn in, EvictionPolicy.Tracker tracker, long max) throws IOException {
        in.begin("POLICY", CacheFileFormat.TAG_POLICY, Math.min(max, Integer.MAX_VALUE - 8));
        byte[] state = in.getRest();
        in.end();
        InputStream bytes = HeapBytes.reader(state, state.length);
        try {
            tracker.restoreState(new DataInputStream(bytes));
        } catch (IOException | RuntimeException e) {
            if (e instanceof UnsupportedOperationException u) {
                throw u;
            }
            throw new CacheFormatException("section POLICY: the policy's state does not restore: " + e.getMessage(), e);
        }
        in.check(bytes.available() == 0, bytes.available() + " bytes beyond the policy's state");
    }

    private static void readLess(SectionIn in, LessState less, int buffers) throws IOException {
        int floats = less == null ? 0 : less.stateFloats();
        long bytes = less == null ? 0 : CacheFileFormat.lessBytes(buffers, floats);
        in.check(in.begin("LESS", CacheFileFormat.TAG_LESS, bytes) == bytes, "length is not the " + bytes
                + " bytes of the configured residual");
        float[] state = new float[floats];
        int rowsEnd = state.length - 2 * (less == null ? 0 : less.featureMap().rank());
        for (int b = 0; less != null && b < buffers; b++) {
            long absorbed = in.getLong();
            in.check(absorbed >= 0, "buffer " + b + " absorbed count " + absorbed + " is negative");
            for (int i = 0; i < floats; i++) {
                float f = in.getFloat();
                boolean logScale = i >= rowsEnd + less.featureMap().rank();
                boolean z = i >= rowsEnd && !logScale;
                boolean ok = logScale ? !Float.isNaN(f) && f != Float.POSITIVE_INFINITY
                        : Float.isFinite(f) && (!z || f >= 0);
                in.check(ok, "buffer " + b + " state float " + i + " = " + f + " cannot occur");
                state[i] = f;
            }
            less.restore(b, absorbed, state);
        }
        in.end();
    }
}
