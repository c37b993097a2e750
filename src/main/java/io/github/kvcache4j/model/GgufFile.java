package io.github.kvcache4j.model;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A memory-mapped GGUF file (version 2 or 3, and the legacy version 1 with 32-bit sizes): its metadata and tensor directory, and zero-copy
 * views of the tensor data.
 *
 * <p>Every count, length and offset read from the file is checked against the bytes that remain
 * before anything is allocated, so a corrupt file fails with a {@link GgufFormatException} that
 * names the field and the bound, never with an {@link OutOfMemoryError}; the tensor directory grows
 * entry by entry as it is read, so memory follows the bytes parsed, not a declared count. A
 * metadata key that appears twice is rejected.
 *
 * <p>Metadata values are exposed as Java objects: signed integers up to 32 bits and
 * {@code UINT8}/{@code UINT16} as {@link Integer}; {@code UINT32}, {@code INT64} and {@code UINT64}
 * as {@link Long} ({@code UINT64} above {@link Long#MAX_VALUE} wraps); {@code FLOAT32} as
 * {@link Float}; {@code FLOAT64} as {@link Double}; {@code BOOL} as {@link Boolean}; strings as
 * {@link String}. Arrays become {@code int[]} (8-, 16- and 32-bit signed elements, 8- and 16-bit
 * unsigned), {@code long[]} ({@code UINT32}, 64-bit), {@code float[]}, {@code double[]},
 * {@code boolean[]}, {@code String[]}, or {@code Object[]} for arrays of arrays.
 *
 * <p>The mapping lives in a shared arena owned by this object: tensor views stay valid until
 * {@link #close()}, and may be read from any thread.
 */
public final class GgufFile implements AutoCloseable {

    /** {@code "GGUF"} read as a little-endian 32-bit integer. */
    private static final int MAGIC = 0x46554747;
    private static final int DEFAULT_ALIGNMENT = 32;
    private static final int MAX_DIMS = 4;

    private final Path path;
    private final Arena arena;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final MemorySegment file;
    private final int version;
    private final long alignment;
    private final long dataOffset;
    private final Map<String, Object> metadata;
    private final Map<String, GgufTensorInfo> tensors;

    private GgufFile(Path path, Arena arena, MemorySegment file) throws GgufFormatException {
        this.path = path;
        this.arena = arena;
        this.file = file;
        GgufCursor in = new GgufCursor(file);
        int magic = in.i32("magic");
        if (magic != MAGIC) {
            throw new GgufFormatException(String.format(
                    "magic: expected 0x%08X (\"GGUF\") but found 0x%08X", MAGIC, magic));
        }
        version = in.i32("version");
        if (version < 1 || version > 3) {
            throw new GgufFormatException("version: " + Integer.toUnsignedString(version)
                    + " is not supported (supported: 1, 2, 3)");
        }
        in.narrowSizes = version == 1;
        int sz = in.sizeBytes();
        // Smallest tensor info: name length, n_dims, one dim, type, offset; smallest KV: key length, type, a byte.
        long tensorInfoBytes = sz + 4 + sz + 4 + 8;
        long tensorCount = in.count("tensor_count", tensorInfoBytes);
        long kvCount = in.count("metadata_kv_count", sz + 4 + 1);
        Map<String, Object> kv = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = in.string("metadata key #" + i);
            if (kv.containsKey(key)) {
                throw new GgufFormatException("metadata key #" + i + " '" + key + "': appears twice (first as #"
                        + List.copyOf(kv.keySet()).indexOf(key) + ")");
            }
            int type = in.i32("type of metadata '" + key + "'");
            kv.put(key, in.value(type, key));
        }
        metadata = Collections.unmodifiableMap(kv);
        alignment = readAlignment(kv);

        in.checkCount("tensor_count", tensorCount, tensorInfoBytes, " after the metadata");
        // Grown as infos are read, never sized by the count: a sparse file can make any count fit.
        List<GgufTensorInfo> infos = new ArrayList<>();
        for (long i = 0; i < tensorCount; i++) {
            infos.add(readTensorInfo(in, i));
        }
        long start = in.position();
        dataOffset = (start + alignment - 1) / alignment * alignment;
        if (dataOffset > file.byteSize() && tensorCount > 0) {
            throw new GgufFormatException("data section: starts at " + dataOffset
                    + " which is past the end of the file (" + file.byteSize() + " bytes)");
        }
        tensors = Collections.unmodifiableMap(checkTensorLayout(infos));
    }

    /**
     * Maps and parses a GGUF file.
     *
     * @param path the file
     * @return the open file; close it to unmap
     * @throws GgufFormatException if the file is malformed
     * @throws IOException if the file cannot be read
     */
    public static GgufFile open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            return new GgufFile(path, arena, seg);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static long readAlignment(Map<String, Object> kv) throws GgufFormatException {
        Object a = kv.get("general.alignment");
        if (a == null) {
            return DEFAULT_ALIGNMENT;
        }
        if (!(a instanceof Integer || a instanceof Long)) {
            throw new GgufFormatException("general.alignment: expected an integer but found "
                    + a.getClass().getSimpleName());
        }
        long v = ((Number) a).longValue();
        if (v <= 0 || v > (1 << 20) || Long.bitCount(v) != 1) {
            throw new GgufFormatException("general.alignment: " + v
                    + " is not a power of two in [1, 1048576]");
        }
        return v;
    }

    private GgufTensorInfo readTensorInfo(GgufCursor in, long index) throws GgufFormatException {
        String name = in.string("name of tensor #" + index);
        int nDims = in.i32("n_dims of tensor '" + name + "'");
        if (nDims < 1 || nDims > MAX_DIMS) {
            throw new GgufFormatException("n_dims of tensor '" + name + "': " + nDims
                    + " is outside [1, " + MAX_DIMS + "]");
        }
        long[] dims = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++) {
            dims[d] = in.size("dims[" + d + "] of tensor '" + name + "'");
            if (dims[d] < 0) {
                throw new GgufFormatException("dims[" + d + "] of tensor '" + name + "': "
                        + Long.toUnsignedString(dims[d]) + " exceeds " + Long.MAX_VALUE);
            }
            try {
                elements = Math.multiplyExact(elements, dims[d]);
            } catch (ArithmeticException e) {
                throw new GgufFormatException("dims of tensor '" + name + "': element count overflows 64 bits");
            }
        }
        int typeId = in.i32("type of tensor '" + name + "'");
        GgmlType type = GgmlType.byId(typeId);
        if (type == null) {
            throw new GgufFormatException("type of tensor '" + name + "': unknown tensor type id "
                    + Integer.toUnsignedString(typeId));
        }
        if (dims[0] % type.blockSize() != 0) {
            throw new GgufFormatException("dims[0] of tensor '" + name + "': " + dims[0]
                    + " is not a multiple of the " + type + " block size " + type.blockSize());
        }
        long offset = in.i64("offset of tensor '" + name + "'");
        if (offset < 0 || offset % alignment != 0) {
            throw new GgufFormatException("offset of tensor '" + name + "': "
                    + Long.toUnsignedString(offset) + " is not a non-negative multiple of the alignment "
                    + alignment);
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(elements / type.blockSize(), (long) type.blockBytes());
        } catch (ArithmeticException e) {
            throw new GgufFormatException("size of tensor '" + name + "' overflows 64 bits");
        }
        return new GgufTensorInfo(name, dims, type, offset, bytes);
    }

    private Map<String, GgufTensorInfo> checkTensorLayout(List<GgufTensorInfo> infos) throws GgufFormatException {
        long dataSize = file.byteSize() - dataOffset;
        Map<String, GgufTensorInfo> byName = new LinkedHashMap<>();
        for (GgufTensorInfo t : infos) {
            if (t.offset() > dataSize || t.byteSize() > dataSize - t.offset()) {
                throw new GgufFormatException("tensor '" + t.name() + "': data [" + t.offset() + ", "
                        + (t.offset() + t.byteSize()) + ") relative to the data section at " + dataOffset
                        + " extends past the end of the file (data section has " + dataSize + " bytes)");
            }
            if (byName.put(t.name(), t) != null) {
                throw new GgufFormatException("tensor '" + t.name() + "': name appears twice");
            }
        }
        List<GgufTensorInfo> sorted = new ArrayList<>(infos);
        sorted.sort(Comparator.comparingLong(GgufTensorInfo::offset));
        for (int i = 1; i < sorted.size(); i++) {
            GgufTensorInfo a = sorted.get(i - 1);
            GgufTensorInfo b = sorted.get(i);
            if (a.byteSize() > 0 && b.byteSize() > 0 && a.offset() + a.byteSize() > b.offset()) {
                throw new GgufFormatException("tensor '" + b.name() + "': data at offset " + b.offset()
                        + " overlaps tensor '" + a.name() + "' which ends at " + (a.offset() + a.byteSize()));
            }
        }
        return byName;
    }

    /** Returns the path this file was opened from. */
    public Path path() {
        return path;
    }

    /** Returns the GGUF version (1, 2 or 3). */
    public int version() {
        return version;
    }

    /** Returns the data alignment ({@code general.alignment}, default 32). */
    public long alignment() {
        return alignment;
    }

    /** Returns the absolute file offset of the tensor data section. */
    public long dataOffset() {
        return dataOffset;
    }

    /** Returns all metadata, in file order, as an unmodifiable map (see the class javadoc for value types). */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** Returns all tensor infos, in file order. */
    public List<GgufTensorInfo> tensors() {
        return List.copyOf(tensors.values());
    }

    /**
     * Looks up a tensor.
     *
     * @param name the tensor name
     * @return its info, or empty when the file has no such tensor
     */
    public Optional<GgufTensorInfo> findTensor(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    /**
     * Returns a read-only view of a tensor's bytes inside the mapping (no copy).
     *
     * @param tensor a tensor of this file
     * @return the data, valid until {@link #close()}
     * @throws IllegalArgumentException if the tensor does not belong to this file
     */
    public MemorySegment tensorData(GgufTensorInfo tensor) {
        if (tensors.get(tensor.name()) != tensor && !tensor.equals(tensors.get(tensor.name()))) {
            throw new IllegalArgumentException("tensor: '" + tensor.name() + "' is not a tensor of " + path);
        }
        return file.asSlice(dataOffset + tensor.offset(), tensor.byteSize()).asReadOnly();
    }

    /**
     * Returns a string metadata value.
     *
     * @param key the metadata key
     * @return the value
     * @throws IllegalArgumentException if the key is missing or not a string
     */
    public String getString(String key) {
        return typed(key, String.class);
    }

    /**
     * Returns an integer metadata value of any integer type that fits in an {@code int}.
     *
     * @param key the metadata key
     * @return the value
     * @throws IllegalArgumentException if the key is missing, not an integer, or out of int range
     */
    public int getInt(String key) {
        Object v = require(key);
        if (v instanceof Integer i) {
            return i;
        }
        if (v instanceof Long l && l == (int) (long) l) {
            return (int) (long) l;
        }
        throw new IllegalArgumentException("metadata '" + key + "': expected an int but found " + describe(v));
    }

    /**
     * Returns an integer metadata value, or a default when the key is absent.
     *
     * @param key the metadata key
     * @param defaultValue returned when the key is absent
     * @return the value
     */
    public int getInt(String key, int defaultValue) {
        return metadata.containsKey(key) ? getInt(key) : defaultValue;
    }

    /**
     * Returns a floating-point metadata value ({@code FLOAT32} or {@code FLOAT64}), or a default.
     *
     * @param key the metadata key
     * @param defaultValue returned when the key is absent
     * @return the value
     * @throws IllegalArgumentException if the value is not a floating-point number
     */
    public double getDouble(String key, double defaultValue) {
        Object v = metadata.get(key);
        if (v == null) {
            return defaultValue;
        }
        if (v instanceof Float f) {
            return f;
        }
        if (v instanceof Double d) {
            return d;
        }
        throw new IllegalArgumentException("metadata '" + key + "': expected a float but found " + describe(v));
    }

    /**
     * Returns an integer array metadata value (any integer element type that fits in an int).
     *
     * @param key the metadata key
     * @return a copy of the array
     * @throws IllegalArgumentException if the key is missing or not such an array
     */
    public int[] getIntArray(String key) {
        Object v = require(key);
        if (v instanceof int[] a) {
            return a.clone();
        }
        if (v instanceof long[] a) {
            int[] r = new int[a.length];
            for (int i = 0; i < a.length; i++) {
                if (a[i] != (int) a[i]) {
                    throw new IllegalArgumentException("metadata '" + key + "'[" + i + "]: " + a[i]
                            + " is outside the int range");
                }
                r[i] = (int) a[i];
            }
            return r;
        }
        throw new IllegalArgumentException("metadata '" + key + "': expected an integer array but found "
                + describe(v));
    }

    /**
     * Returns a {@code FLOAT32} array metadata value.
     *
     * @param key the metadata key
     * @return a copy of the array
     * @throws IllegalArgumentException if the key is missing or not a float array
     */
    public float[] getFloatArray(String key) {
        return typed(key, float[].class).clone();
    }

    /**
     * Returns a string array metadata value.
     *
     * @param key the metadata key
     * @return a copy of the array
     * @throws IllegalArgumentException if the key is missing or not a string array
     */
    public String[] getStringArray(String key) {
        return typed(key, String[].class).clone();
    }

    /**
     * Tells whether a metadata key is present.
     *
     * @param key the metadata key
     * @return whether it is present
     */
    public boolean contains(String key) {
        return metadata.containsKey(key);
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new IllegalArgumentException("metadata '" + key + "': missing in " + path);
        }
        return v;
    }

    private <T> T typed(String key, Class<T> type) {
        Object v = require(key);
        if (!type.isInstance(v)) {
            throw new IllegalArgumentException("metadata '" + key + "': expected " + type.getSimpleName()
                    + " but found " + describe(v));
        }
        return type.cast(v);
    }

    private static String describe(Object v) {
        return v.getClass().getSimpleName();
    }

    /**
     * Unmaps the file; tensor views become inaccessible. Idempotent, also when several threads
     * call it at once; a read racing with it fails with {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

}
