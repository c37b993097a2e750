package io.github.kvcache4j;

import io.github.kvcache4j.layout.KeyTiles;
import io.github.kvcache4j.store.HeapBytes;
import io.github.kvcache4j.store.KvStore;
import io.github.kvcache4j.store.LessState;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Writes a cache in the format of {@link CacheFileFormat}, to a channel or atomically to a file.
 * Everything that can refuse (the policy's state, the storage type) is asked before the first
 * byte is written.
 */
final class CacheWriter {

    private static final int TILE = KeyTiles.TILE;

    private CacheWriter() {
    }

    /** Opens the temporary file a save writes; a seam for tests of a failing channel. */
    @FunctionalInterface
    interface Opener {
        /** Returns a channel writing {@code file}. */
        WritableByteChannel open(Path file) throws IOException;
    }

    /** Saves {@code cache} to {@code file} atomically (see {@link KvCache#save(Path)}). */
    static void saveAtomically(KvCache cache, Path file) throws IOException {
        saveAtomically(cache, file, f -> FileChannel.open(f, StandardOpenOption.WRITE));
    }

    /** Saves {@code cache} through a temporary file that {@code opener} opens, then renames it. */
    static void saveAtomically(KvCache cache, Path file, Opener opener) throws IOException {
        Path target = file.toAbsolutePath();
        Path temp = Files.createTempFile(target.getParent(), "." + target.getFileName() + ".", ".tmp");
        try {
            try (WritableByteChannel out = opener.open(temp)) {
                cache.save(out);
                if (out instanceof FileChannel f) {
                    f.force(true);
                }
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException | Error e) {
            try {
                Files.deleteIfExists(temp);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** Writes the cache whose state is {@code p} to {@code channel}. */
    static void write(CacheParts p, WritableByteChannel channel) throws IOException {
        KvCacheConfig config = p.config();
        ValueLayout element = CacheFileFormat.element(config.dtype());
        ConfigCodec.Saved saved = ConfigCodec.describe(config);
        HeapBytes policy = policyState(p.tracker());
        KvStore store = p.store();
        long tileBytes = TILE * config.dtype().rowBytes(config.headDim());
        SectionOut out = new SectionOut(channel, Math.toIntExact(tileBytes));
        out.header();
        out.begin(CacheFileFormat.TAG_CONFIG, ConfigCodec.bytes(saved));
        ConfigCodec.write(out, saved);
        out.end();
        int[] last = p.lastPosition();
        out.begin(CacheFileFormat.TAG_STATS, CacheFileFormat.statsBytes(last.length));
        out.putLong(p.eviction().evicted());
        out.putInt(last.length);
        for (int l : last) {
            out.putInt(l);
        }
        out.end();
        out.begin(CacheFileFormat.TAG_STORE, CacheFileFormat.storeBytes(store));
        for (int b = 0; b < store.buffers(); b++) {
            writeBuffer(out, p, b, element);
        }
        out.end();
        out.begin(CacheFileFormat.TAG_POLICY, policy.size());
        out.putBytes(policy.array(), policy.size());
        out.end();
        writeLess(out, p.less(), store.buffers());
        out.flush();
    }

    /** Returns the tracker's saved state; throws before anything is written if it has none. */
    private static HeapBytes policyState(EvictionPolicy.Tracker tracker) throws IOException {
        HeapBytes bytes = new HeapBytes();
        tracker.saveState(new DataOutputStream(bytes));
        return bytes;
    }

    /**
     * Writes one buffer: its size and flags, positions, key norms, then its blocks as stored (the
     * key tile dimension-major, or the key rows of a quantized dtype, then the value rows), unused
     * slots as zeros.
     */
    private static void writeBuffer(SectionOut out, CacheParts p, int b, ValueLayout element) throws IOException {
        KvStore store = p.store();
        int n = store.size(b);
        int headDim = store.headDim();
        out.putInt(n);
        out.putInt(store.ordered(b) ? CacheFileFormat.FLAG_ORDERED : 0);
        int[] positions = store.positions(b);
        for (int j = 0; j < n; j++) {
            out.putInt(positions[j]);
        }
        for (int j = 0; j < n; j++) {
            out.putFloat(p.view().storedNorm(b, j));
        }
        long size = element.byteSize();
        int row = CacheFileFormat.rowElements(store.dtype(), headDim);
        boolean keyRows = store.dtype().isQuantized();
        for (int i = 0; i < KvStore.blocksFor(n); i++) {
            int used = Math.min(TILE, n - i * TILE);
            MemorySegment keys = store.keyBlocks(b)[i];
            // rows, and a full tile, hold the used slots first: one run, then the zeros
            if (keyRows || used == TILE) {
                out.putElements(keys, element, 0, used * row, (TILE - used) * row);
            } else {
                for (int d = 0; d < headDim; d++) {
                    out.putElements(keys, element, (long) d * TILE * size, used, TILE - used);
                }
            }
            out.putElements(store.valueBlocks(b)[i], element, 0, used * row, (TILE - used) * row);
        }
    }

    private static void writeLess(SectionOut out, LessState less, int buffers) throws IOException {
        if (less == null) {
            out.begin(CacheFileFormat.TAG_LESS, 0);
            out.end();
            return;
        }
        float[] state = new float[less.stateFloats()];
        out.begin(CacheFileFormat.TAG_LESS, CacheFileFormat.lessBytes(buffers, state.length));
        for (int b = 0; b < buffers; b++) {
            out.putLong(less.absorbed(b));
            less.save(b, state);
            for (float f : state) {
                out.putFloat(f);
            }
        }
        out.end();
    }
}
