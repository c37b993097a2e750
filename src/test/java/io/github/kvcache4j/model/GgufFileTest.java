package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GgufFileTest {

    @TempDir
    Path tmp;

    private Path write(byte[] bytes) throws IOException {
        Path p = Files.createTempFile(tmp, "t", ".gguf");
        Files.write(p, bytes);
        return p;
    }

    private GgufFormatException rejects(byte[] bytes) throws IOException {
        Path p = write(bytes);
        GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(p).close());
        System.out.println("rejected: " + e.getMessage());
        return e;
    }

    private static void assertMessage(GgufFormatException e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "message '" + e.getMessage() + "' lacks '" + part + "'");
        }
    }

    private static byte[] realModel() throws IOException {
        return Files.readAllBytes(SharedFiles.model("austen-base-f16.gguf"));
    }

    @Test
    void readsHeaderMetadataAndTensorDirectoryOfAustenBase() throws IOException {
        try (GgufFile f = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"))) {
            assertEquals(3, f.version());
            assertEquals(32, f.alignment());
            assertEquals(0, f.dataOffset() % 32);
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(256, f.getInt("llama.embedding_length"));
            assertEquals(8, f.getInt("llama.block_count"));
            assertEquals(2048, f.getStringArray("tokenizer.ggml.tokens").length);
            assertEquals(2048, f.getFloatArray("tokenizer.ggml.scores").length);
            assertEquals(8 * 9 + 3, f.tensors().size());
            GgufTensorInfo emb = f.findTensor("token_embd.weight").orElseThrow();
            assertArrayEquals(new long[] {256, 2048}, emb.dims());
            assertEquals(GgmlType.F16, emb.type());
            assertEquals(256L * 2048 * 2, f.tensorData(emb).byteSize());
            GgufTensorInfo norm = f.findTensor("output_norm.weight").orElseThrow();
            assertEquals(GgmlType.F32, norm.type());
            assertFalse(f.contains("llama.attention.kv_source_layers"));
            long total = f.tensors().stream().mapToLong(GgufTensorInfo::byteSize).sum();
            assertTrue(f.dataOffset() + total <= Files.size(SharedFiles.model("austen-base-f16.gguf")));
        }
    }

    @Test
    void readsLegacyVersion1FileWith32BitSizes() throws IOException {
        try (GgufFile f = GgufFile.open(SharedFiles.model("stories260K-f32.gguf"))) {
            assertEquals(1, f.version());
            assertEquals("llama", f.getString("general.architecture"));
            assertEquals(512, f.getStringArray("tokenizer.ggml.tokens").length);
            GgufTensorInfo emb = f.findTensor("token_embd.weight").orElseThrow();
            assertEquals(GgmlType.F32, emb.type());
            assertEquals(512, emb.dim(1));
        }
    }

    @Test
    void readsKvSourceLayersOfClaModel() throws IOException {
        try (GgufFile f = GgufFile.open(SharedFiles.model("austen-cla-f16.gguf"))) {
            assertArrayEquals(new int[] {0, 0, 2, 2, 4, 4, 6, 6}, f.getIntArray("llama.attention.kv_source_layers"));
            assertTrue(f.findTensor("blk.0.attn_k.weight").isPresent());
            assertFalse(f.findTensor("blk.1.attn_k.weight").isPresent());
        }
    }

    @Test
    void readsEveryMetadataValueType() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvRaw("u8", 0, new byte[] {(byte) 200});
        w.kvRaw("i8", 1, new byte[] {(byte) -5});
        w.kvRaw("u16", 2, new byte[] {(byte) 0xFE, (byte) 0xFF});
        w.kvRaw("i16", 3, new byte[] {(byte) 0xFE, (byte) 0xFF});
        w.kvU32("u32", -1);
        w.kvI32("i32", -7);
        w.kvF32("f32", 1.5f);
        w.kvRaw("bool", 7, new byte[] {1});
        w.kvString("str", "héllo ▁");
        w.kvRaw("u64", 10, new TestGgufWriter.Buf().i64(1L << 40).toArray());
        w.kvRaw("i64", 11, new TestGgufWriter.Buf().i64(-3).toArray());
        w.kvRaw("f64", 12, new TestGgufWriter.Buf().i64(Double.doubleToLongBits(0.25)).toArray());
        w.kvI32Array("ints", 1, -2, 3);
        w.kvF32Array("floats", 0.5f, -1f);
        w.kvStringArray("strings", "a", "", "▁b");
        w.kvRaw("nested", 9, new TestGgufWriter.Buf().i32(9).i64(2)
                .i32(0).i64(2).bytes(new byte[] {1, (byte) 255})
                .i32(7).i64(1).bytes(new byte[] {0}).toArray());
        w.kvRaw("u32s", 9, new TestGgufWriter.Buf().i32(4).i64(1).i32(-1).toArray());
        w.tensor("w", GgmlType.F32.id(), new byte[16], 4);
        try (GgufFile f = GgufFile.open(write(w.build()))) {
            assertEquals(200, f.metadata().get("u8"));
            assertEquals(-5, f.metadata().get("i8"));
            assertEquals(0xFFFE, f.metadata().get("u16"));
            assertEquals(-2, f.metadata().get("i16"));
            assertEquals(0xFFFF_FFFFL, f.metadata().get("u32"));
            assertEquals(-7, f.getInt("i32"));
            assertEquals(1.5, f.getDouble("f32", 0), 0);
            assertEquals(true, f.metadata().get("bool"));
            assertEquals("héllo ▁", f.getString("str"));
            assertEquals(1L << 40, f.metadata().get("u64"));
            assertEquals(-3, f.getInt("i64"));
            assertEquals(0.25, f.getDouble("f64", 0), 0);
            assertArrayEquals(new int[] {1, -2, 3}, f.getIntArray("ints"));
            assertArrayEquals(new float[] {0.5f, -1f}, f.getFloatArray("floats"));
            assertArrayEquals(new String[] {"a", "", "▁b"}, f.getStringArray("strings"));
            Object[] nested = (Object[]) f.metadata().get("nested");
            assertArrayEquals(new int[] {1, 255}, (int[]) nested[0]);
            assertTrue(Arrays.equals(new boolean[] {false}, (boolean[]) nested[1]));
            assertArrayEquals(new long[] {0xFFFF_FFFFL}, (long[]) f.metadata().get("u32s"));
            assertEquals(7, f.getInt("missing", 7));
            assertThrows(IllegalArgumentException.class, () -> f.getString("i32"));
            assertThrows(IllegalArgumentException.class, () -> f.getInt("u64"));
            assertThrows(IllegalArgumentException.class, () -> f.getInt("missing"));
        }
    }

    @Test
    void honoursCustomAlignment() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.alignment = 64;
        w.kvU32("general.alignment", 64);
        float[] values = {1, 2, 3, 4, 5, 6};
        ByteBuffer bb = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            bb.putFloat(v);
        }
        w.tensor("a", GgmlType.F32.id(), new byte[40], 10);
        w.tensor("b", GgmlType.F32.id(), bb.array(), 3, 2);
        try (GgufFile f = GgufFile.open(write(w.build()))) {
            assertEquals(64, f.alignment());
            assertEquals(0, f.dataOffset() % 64);
            GgufTensorInfo b = f.findTensor("b").orElseThrow();
            assertEquals(64, b.offset());
            assertEquals(6, b.elementCount());
            assertArrayEquals(values, f.tensorData(b).toArray(
                    ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN)));
        }
    }

    @Test
    void rejectsWrongMagic() throws IOException {
        byte[] b = realModel();
        b[0] = 'X';
        assertMessage(rejects(b), "magic", "GGUF");
    }

    @Test
    void rejectsUnsupportedVersion() throws IOException {
        for (int v : new int[] {0, 4, -1}) {
            byte[] b = realModel();
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(4, v);
            assertMessage(rejects(b), "version", Integer.toUnsignedString(v), "supported");
        }
    }

    @Test
    void rejectsFilesTruncatedAnywhereBeforeTheLastTensorEnds() throws IOException {
        byte[] full = realModel();
        long dataOffset;
        try (GgufFile f = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"))) {
            dataOffset = f.dataOffset();
        }
        // Inside the header, the metadata, the tensor directory and the tensor data.
        for (int len : new int[] {0, 3, 10, 30, 1000, 60000, (int) dataOffset - 8, (int) dataOffset + 100,
                full.length - 1}) {
            GgufFormatException e = rejects(Arrays.copyOf(full, len));
            assertTrue(e.getMessage().contains("truncated") || e.getMessage().contains("past the end")
                    || e.getMessage().contains("remaining"), e.getMessage());
        }
    }

    @Test
    void rejectsAbsurdStringLengthWithoutAllocating() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvRaw("name", 8, new TestGgufWriter.Buf().i64(Long.MAX_VALUE - 3).bytes(new byte[] {'a'}).toArray());
        assertMessage(rejects(w.build()), "'name'", "string length", "exceeds the remaining");
        TestGgufWriter key = new TestGgufWriter();
        key.kvRaw("", 0, new byte[1]);
        byte[] b = key.build();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(24, 1L << 40);
        assertMessage(rejects(b), "metadata key #0", "string length 1099511627776");
    }

    @Test
    void rejectsAbsurdArrayLengthWithoutAllocating() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvRaw("tokens", 9, new TestGgufWriter.Buf().i32(8).i64(1L << 31).str("a").toArray());
        assertMessage(rejects(w.build()), "length of array 'tokens'", "2147483648", "remaining");
        TestGgufWriter f = new TestGgufWriter();
        f.kvRaw("scores", 9, new TestGgufWriter.Buf().i32(6).i64(-1).toArray());
        assertMessage(rejects(f.build()), "length of array 'scores'", "18446744073709551615");
    }

    @Test
    void rejectsAbsurdCounts() throws IOException {
        TestGgufWriter t = new TestGgufWriter();
        t.tensorCountOverride = 1L << 50;
        assertMessage(rejects(t.build()), "tensor_count", "remaining");
        TestGgufWriter k = new TestGgufWriter();
        k.kvCountOverride = 1000L;
        assertMessage(rejects(k.build()), "metadata_kv_count", "1000");
    }

    @Test
    void rejectsUnknownMetadataValueType() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvRaw("odd", 13, new byte[8]);
        assertMessage(rejects(w.build()), "'odd'", "unknown value type 13");
    }

    @Test
    void rejectsTensorOffsetPastTheEnd() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.tensor("a", GgmlType.F32.id(), new byte[64], 16);
        w.tensorAt("b", GgmlType.F32.id(), 1 << 20, 16);
        assertMessage(rejects(w.build()), "tensor 'b'", "past the end of the file");
        byte[] real = realModel();
        // The last tensor's data runs past the end once the file loses its final bytes.
        assertMessage(rejects(Arrays.copyOf(real, real.length - 32)), "past the end of the file");
    }

    @Test
    void rejectsOverlappingTensors() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.tensor("a", GgmlType.F32.id(), new byte[128], 32);
        w.tensorAt("b", GgmlType.F32.id(), 64, 16);
        assertMessage(rejects(w.build()), "overlaps", "'a'", "'b'");
    }

    @Test
    void rejectsMisalignedTensorOffset() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.tensor("a", GgmlType.F32.id(), new byte[128], 32);
        w.tensorAt("b", GgmlType.F32.id(), 8, 1);
        assertMessage(rejects(w.build()), "offset of tensor 'b'", "alignment 32");
    }

    @Test
    void rejectsUnknownTensorType() throws IOException {
        for (int type : new int[] {4, 31, 40, 1000, -1}) {
            TestGgufWriter w = new TestGgufWriter();
            w.tensor("x", type, new byte[32], 8);
            assertMessage(rejects(w.build()), "type of tensor 'x'", "unknown tensor type",
                    Integer.toUnsignedString(type));
        }
    }

    @Test
    void rejectsBadDimensions() throws IOException {
        TestGgufWriter many = new TestGgufWriter();
        many.tensor("x", 0, new byte[4], 1, 1, 1, 1, 1);
        assertMessage(rejects(many.build()), "n_dims of tensor 'x'", "5");
        TestGgufWriter block = new TestGgufWriter();
        block.tensor("q", GgmlType.Q8_0.id(), new byte[34], 16);
        assertMessage(rejects(block.build()), "dims[0] of tensor 'q'", "block size 32");
        TestGgufWriter huge = new TestGgufWriter();
        huge.tensor("h", 0, new byte[4], 1L << 40, 1L << 40);
        assertMessage(rejects(huge.build()), "tensor 'h'", "overflows");
    }

    @Test
    void rejectsBadAlignment() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvU32("general.alignment", 48);
        assertMessage(rejects(w.build()), "general.alignment", "48", "power of two");
    }

    @Test
    void acceptsFileWithoutTensors() throws IOException {
        try (GgufFile f = GgufFile.open(write(new TestGgufWriter().kvString("k", "v").build()))) {
            assertEquals(List.of(), f.tensors());
            assertEquals("v", f.getString("k"));
        }
    }

    @Test
    void rejectsTensorCountsOfALargeSparseFileWithoutAllocatingForThem() throws IOException {
        // Zero bytes after the header: each count fits the file's size, but no tensor info is valid.
        for (long count : new long[] {Integer.MAX_VALUE, 1_000_000_000L}) {
            Path p = tmp.resolve("sparse-" + count + ".gguf");
            try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                f.setLength(24 + 32 * count);
                f.write(new TestGgufWriter.Buf().i32(0x46554747).i32(3).i64(count).i64(0).toArray());
            }
            GgufFormatException e = assertThrows(GgufFormatException.class, () -> GgufFile.open(p).close());
            assertMessage(e, "n_dims of tensor ''", "outside [1, 4]");
        }
    }

    @Test
    void boundsTheTensorCountByTheBytesLeftAfterTheMetadata() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvString("padding", "x".repeat(3200));
        w.tensorCountOverride = 100L;
        assertMessage(rejects(w.build()), "tensor_count: 100 exceeds what the remaining", "after the metadata");
    }

    @Test
    void rejectsDuplicateMetadataKeys() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvU32("general.alignment", 32).kvString("k", "first").kvI32("other", 1).kvString("k", "second");
        assertMessage(rejects(w.build()), "metadata key #3 'k': appears twice (first as #1)");
    }

    @Test
    void closeIsIdempotentAlsoFromSeveralThreadsAtOnce() throws Exception {
        GgufFile f = GgufFile.open(SharedFiles.model("stories260K-f32.gguf"));
        GgufTensorInfo emb = f.findTensor("token_embd.weight").orElseThrow();
        f.close();
        f.close();
        assertThrows(IllegalStateException.class, () -> f.tensorData(emb).get(ValueLayout.JAVA_BYTE, 0));
        for (int round = 0; round < 20; round++) {
            GgufFile g = GgufFile.open(SharedFiles.model("stories260K-f32.gguf"));
            CyclicBarrier start = new CyclicBarrier(4);
            List<Callable<Void>> closers = Collections.nCopies(4, () -> {
                start.await();
                g.close();
                return null;
            });
            try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
                for (Future<Void> done : pool.invokeAll(closers)) {
                    done.get();
                }
            }
        }
    }
}
