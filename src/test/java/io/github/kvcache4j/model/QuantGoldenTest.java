package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Dequantization against the reference values of {@code ../shared/gguf-goldens} (ggml's own
 * arithmetic, see its README), bit for bit, for every block type the decoder reads; and the
 * test-side quantizer against the reference quantizer's bytes.
 */
class QuantGoldenTest {

    private static final Path DIR = SharedFiles.shared().resolve("gguf-goldens");
    private static final int ROWS = 8;
    private static final int COLS = 512;

    /** A way of turning {@code n} encoded values at {@code off} into floats. */
    interface Decoder {
        void decode(GgmlType type, MemorySegment m, long off, int n, float[] out);
    }

    /** One golden pair: raw blocks and the reference values. */
    record Golden(GgmlType type, String file, byte[] raw, float[] expected, int rowBytes) {
    }

    /** Every {@code quants/T.*.bin} with its {@code .f32}, from {@code index.json}. */
    static List<Golden> quantGoldens() throws IOException {
        Map<String, Object> types = Json.object(Json.read(DIR.resolve("quants/index.json")), "types");
        List<Golden> all = new ArrayList<>();
        for (String name : types.keySet()) {
            @SuppressWarnings("unchecked")
            Map<String, Object> t = (Map<String, Object>) types.get(name);
            GgmlType type = GgmlType.valueOf(name);
            assertEquals(type.id(), (int) Json.number(t, "type_id"), name);
            assertEquals(type.blockSize(), (int) Json.number(t, "block_size"), name);
            assertEquals(type.blockBytes(), (int) Json.number(t, "type_size"), name);
            int rowBytes = (int) Json.number(t, "row_bytes");
            for (String kind : new String[] {"quantized", "random"}) {
                if (t.get(kind) instanceof Map<?, ?>) {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> f = (Map<String, Object>) t.get(kind);
                    byte[] raw = read(DIR.resolve("quants").resolve(Json.string(f, "file")), Json.string(f, "sha256"));
                    byte[] ref = read(DIR.resolve("quants").resolve(Json.string(f, "dequantized_file")),
                            Json.string(f, "dequantized_sha256"));
                    assertEquals(ROWS * rowBytes, raw.length, name + " " + kind);
                    all.add(new Golden(type, Json.string(f, "file"), raw, floats(ref), rowBytes));
                }
            }
        }
        return all;
    }

    static byte[] read(Path file, String sha256) throws IOException {
        byte[] b = Files.readAllBytes(file);
        assertEquals(sha256, sha256(b), file + ": sha256");
        return b;
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    static float[] floats(byte[] b) {
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    /** Decodes every golden row by row with {@code decoder} and compares raw bits. */
    static void checkAll(String what, Decoder decoder) throws IOException {
        List<Golden> goldens = quantGoldens();
        assertTrue(goldens.size() >= 20, "only " + goldens.size() + " golden files");
        try (Arena arena = Arena.ofConfined()) {
            for (Golden g : goldens) {
                // Off-heap and exactly sized, as a mapped tensor is: a read past the end fails.
                MemorySegment m = arena.allocate(g.raw.length);
                m.copyFrom(MemorySegment.ofArray(g.raw));
                float[] got = new float[ROWS * COLS];
                float[] row = new float[COLS];
                for (int r = 0; r < ROWS; r++) {
                    decoder.decode(g.type, m, (long) r * g.rowBytes, COLS, row);
                    System.arraycopy(row, 0, got, r * COLS, COLS);
                }
                assertBits(what + " " + g.file, g.expected, got);
            }
        }
    }

    static void assertBits(String what, float[] expected, float[] got) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(got[i])) {
                fail(what + ": value " + i + " (row " + i / COLS + ", col " + i % COLS + ") is " + got[i]
                        + " (0x" + Integer.toHexString(Float.floatToRawIntBits(got[i])) + "), expected "
                        + expected[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i])) + ")");
            }
        }
    }

    @Test
    void scalarBlockDecodersReproduceEveryGolden() throws IOException {
        checkAll("scalar", (type, m, off, n, out) -> QuantBlocks.decodeRun(type, m, off, n, out, 0));
    }

    @Test
    void vectorBlockDecodersReproduceEveryGolden() throws IOException {
        float[] p = new float[VectorQuants.PARAMS];
        checkAll("vector L=" + VectorQuants.L, (type, m, off, n, out) -> {
            if (!VectorQuants.supports(type)) {
                QuantBlocks.decodeRun(type, m, off, n, out, 0);
                return;
            }
            for (int b = 0; b < n / type.blockSize(); b++) {
                VectorQuantDots.decode(type, m, off + (long) b * type.blockBytes(), p, out, b * type.blockSize());
            }
        });
    }

    /**
     * The matrix products themselves: W e_c (a one-hot input) is column c of W, exactly, since
     * every other product is zero. Zeros are compared by value (a sum of +0 and -0 is +0).
     */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void matrixProductsWithOneHotInputsReproduceEveryGolden(boolean vector) throws IOException {
        for (Golden g : quantGoldens()) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment m = arena.allocate(g.raw.length);
                m.copyFrom(MemorySegment.ofArray(g.raw));
                Matrix w = new Matrix(g.file, m, g.type, ROWS, COLS);
                // Four one-hot inputs at once go through the four-token kernel, one through the single one.
                int tokens = 5;
                float[] x = new float[tokens * COLS];
                float[] out = new float[tokens * ROWS];
                for (int c0 = 0; c0 < COLS; c0 += tokens) {
                    java.util.Arrays.fill(x, 0);
                    int k = Math.min(tokens, COLS - c0);
                    for (int t = 0; t < k; t++) {
                        x[t * COLS + c0 + t] = 1;
                    }
                    if (vector) {
                        VectorMatMul.matmul(w, x, tokens, out, 0, ROWS);
                    } else {
                        ScalarMatMul.matmul(w, x, tokens, out, 0, ROWS);
                    }
                    for (int t = 0; t < k; t++) {
                        for (int r = 0; r < ROWS; r++) {
                            float want = g.expected[r * COLS + c0 + t];
                            float got = out[t * ROWS + r];
                            if (!(want == got && (want != 0 || got == 0))) {
                                fail((vector ? "vector " : "scalar ") + g.file + ": W e_" + (c0 + t) + " row " + r
                                        + " is " + got + ", expected " + want);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void quantsTinyGgufTensorsDecodeToTheirGoldens() throws IOException {
        Map<String, Object> index = Json.read(DIR.resolve("quants-tiny.json"));
        Path file = DIR.resolve("quants-tiny.gguf");
        assertEquals(Json.string(index, "sha256"), sha256(Files.readAllBytes(file)));
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> tensors = (List<Map<String, Object>>) (List<?>) index.get("tensors");
        assertEquals(13, tensors.size());
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(13, gguf.tensors().size());
            for (Map<String, Object> t : tensors) {
                String name = Json.string(t, "name");
                GgufTensorInfo info = gguf.findTensor(name).orElseThrow();
                GgmlType type = GgmlType.valueOf(Json.string(t, "type"));
                assertEquals(type, info.type(), name);
                assertEquals((int) Json.number(t, "type_id"), info.type().id(), name);
                assertArrayEquals(new long[] {512, 4}, info.dims(), name);
                assertEquals((long) Json.number(t, "nbytes"), info.byteSize(), name);
                assertEquals(4L * 512 / type.blockSize() * type.blockBytes(), info.byteSize(), name);
                MemorySegment data = gguf.tensorData(info);
                assertEquals(Json.string(t, "sha256"), sha256(data.toArray(ValueLayout.JAVA_BYTE)), name);
                float[] expected = floats(read(DIR.resolve(Json.string(t, "dequantized_file")),
                        Json.string(t, "dequantized_sha256")));
                float[] got = new float[4 * 512];
                QuantBlocks.decodeRun(type, data, 0, got.length, got, 0);
                assertBits("quants-tiny " + name, expected, got);
            }
        }
    }

    @Test
    void testQuantizerWritesTheReferenceQuantizersBytes() throws IOException {
        float[] input = floats(Files.readAllBytes(DIR.resolve("quants/input.f32")));
        int checked = 0;
        for (Golden g : quantGoldens()) {
            if (g.file.endsWith(".quantized.bin")) {
                byte[] mine = TestQuantizer.quantize(g.type, input);
                for (int i = 0; i < mine.length; i++) {
                    if (mine[i] != g.raw[i]) {
                        int block = i / g.type.blockBytes();
                        fail(g.type + ": byte " + i + " (block " + block + ", byte " + i % g.type.blockBytes()
                                + ") is " + mine[i] + ", reference " + g.raw[i]);
                    }
                }
                checked++;
            }
        }
        // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16 and MXFP4 have reference-quantized goldens.
        assertTrue(checked >= 6, checked + " quantized goldens");
    }

    @Test
    void testQuantizerRoundTripsWithinItsTypesPrecision() throws IOException {
        float[] input = floats(Files.readAllBytes(DIR.resolve("quants/input.f32")));
        // Rows 0-3 (Gaussian, several scales): RMS error relative to the RMS value.
        float[] rows = java.util.Arrays.copyOf(input, 4 * COLS);
        Map<GgmlType, Double> bound = Map.ofEntries(Map.entry(GgmlType.F16, 1e-3), Map.entry(GgmlType.BF16, 5e-3),
                Map.entry(GgmlType.Q8_0, 0.01), Map.entry(GgmlType.Q6_K, 0.03), Map.entry(GgmlType.Q5_0, 0.06),
                Map.entry(GgmlType.Q5_1, 0.06), Map.entry(GgmlType.Q5_K, 0.06), Map.entry(GgmlType.Q4_0, 0.12),
                Map.entry(GgmlType.Q4_1, 0.12), Map.entry(GgmlType.Q4_K, 0.12), Map.entry(GgmlType.IQ4_NL, 0.12),
                Map.entry(GgmlType.IQ4_XS, 0.12), Map.entry(GgmlType.MXFP4, 0.2), Map.entry(GgmlType.Q3_K, 0.25),
                Map.entry(GgmlType.Q2_K, 0.45));
        for (Map.Entry<GgmlType, Double> e : bound.entrySet()) {
            float[] back = TestQuantizer.roundTrip(e.getKey(), rows);
            double err = 0;
            double sum = 0;
            for (int i = 0; i < rows.length; i++) {
                err += (back[i] - rows[i]) * (double) (back[i] - rows[i]);
                sum += rows[i] * (double) rows[i];
            }
            double rel = Math.sqrt(err / sum);
            System.out.printf("test quantizer %-6s relative RMS error %.4f%n", e.getKey(), rel);
            assertTrue(rel < e.getValue(), e.getKey() + ": relative RMS error " + rel);
        }
    }
}
