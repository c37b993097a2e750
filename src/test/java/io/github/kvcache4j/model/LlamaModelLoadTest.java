package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link LlamaModel#load} on structurally valid GGUF files whose tensors or settings do not fit the model. */
class LlamaModelLoadTest {

    private static final int F32 = 0;
    private static final int F16 = 1;
    private static final int DIM = 8;
    private static final int FFN = 16;
    private static final int VOCAB = 4;

    @TempDir
    Path dir;

    /** A one-block llama of width 8; {@code change} may drop or reshape one tensor by name. */
    private static byte[] model(int blocks, String skip, String reshape, int normType, Consumer<TestGgufWriter> extra) {
        TestGgufWriter w = new TestGgufWriter();
        w.kvString("general.architecture", "llama");
        w.kvU32("llama.embedding_length", DIM);
        w.kvU32("llama.attention.head_count", 2);
        w.kvU32("llama.block_count", blocks);
        w.kvU32("llama.feed_forward_length", FFN);
        w.kvU32("llama.context_length", 64);
        w.kvU32("llama.vocab_size", VOCAB);
        extra.accept(w);
        addMatrix(w, "token_embd.weight", VOCAB, DIM, skip, reshape);
        addVector(w, "output_norm.weight", skip, reshape, normType);
        for (int l = 0; l < Math.min(blocks, 1); l++) {
            String p = "blk." + l + ".";
            addVector(w, p + "attn_norm.weight", skip, reshape, normType);
            for (String m : new String[] {"attn_q", "attn_k", "attn_v", "attn_output"}) {
                addMatrix(w, p + m + ".weight", DIM, DIM, skip, reshape);
            }
            addVector(w, p + "ffn_norm.weight", skip, reshape, normType);
            addMatrix(w, p + "ffn_gate.weight", FFN, DIM, skip, reshape);
            addMatrix(w, p + "ffn_up.weight", FFN, DIM, skip, reshape);
            addMatrix(w, p + "ffn_down.weight", DIM, FFN, skip, reshape);
        }
        return w.build();
    }

    private static void addMatrix(TestGgufWriter w, String name, int rows, int cols, String skip, String reshape) {
        if (name.equals(skip)) {
            return;
        }
        int c = name.equals(reshape) ? cols + 1 : cols;
        w.tensor(name, F32, new byte[rows * c * 4], c, rows);
    }

    private static void addVector(TestGgufWriter w, String name, String skip, String reshape, int type) {
        if (name.equals(skip)) {
            return;
        }
        int n = name.equals(reshape) ? DIM - 1 : DIM;
        w.tensor(name, type, new byte[n * (type == F32 ? 4 : 2)], n);
    }

    private Exception loadFails(byte[] bytes) throws IOException {
        Path file = Files.write(dir.resolve("m.gguf"), bytes);
        try (GgufFile f = GgufFile.open(file)) {
            return assertThrows(Exception.class, () -> LlamaModel.load(f).close());
        }
    }

    private static void assertMessage(Exception e, Class<?> type, String... parts) {
        assertTrue(type.isInstance(e), "expected " + type.getSimpleName() + " but got " + e);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "message '" + e.getMessage() + "' lacks '" + p + "'");
        }
    }

    @Test
    void loadsTheWellFormedTinyModel() throws IOException {
        Path file = Files.write(dir.resolve("ok.gguf"), model(1, "", "", F32, w -> { }));
        try (GgufFile f = GgufFile.open(file); LlamaModel m = LlamaModel.load(f)) {
            assertEquals(1, m.config().layers());
            assertTrue(m.tiedEmbeddings());
        }
    }

    @Test
    void rejectsMissingTensors() throws IOException {
        for (String name : new String[] {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight",
            "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.0.ffn_norm.weight"}) {
            assertMessage(loadFails(model(1, name, "", F32, w -> { })), GgufFormatException.class,
                    "tensor '" + name + "'", "missing");
        }
    }

    @Test
    void rejectsMisshapedTensors() throws IOException {
        for (String name : new String[] {"token_embd.weight", "blk.0.attn_v.weight", "blk.0.ffn_gate.weight",
            "blk.0.attn_norm.weight"}) {
            assertMessage(loadFails(model(1, "", name, F32, w -> { })), GgufFormatException.class,
                    "tensor '" + name + "'", "dims", "requires");
        }
    }

    @Test
    void rejectsWeightTypesTheDecoderDoesNotRead() throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        w.kvString("general.architecture", "llama");
        w.kvU32("llama.embedding_length", 32);
        w.kvU32("llama.attention.head_count", 2);
        w.kvU32("llama.block_count", 1);
        w.kvU32("llama.feed_forward_length", 32);
        w.kvU32("llama.context_length", 64);
        w.kvU32("llama.vocab_size", 2);
        w.tensor("token_embd.weight", 9, new byte[2 * 36], 32, 2); // Q8_1: 32-element blocks of 36 bytes
        assertMessage(loadFails(w.build()), GgufFormatException.class, "tensor 'token_embd.weight'", "Q8_1",
                "not supported by the decoder");
    }

    @Test
    void rejectsNormsThatAreNotF32() throws IOException {
        assertMessage(loadFails(model(1, "", "", F16, w -> { })), GgufFormatException.class,
                "tensor 'output_norm.weight'", "F16", "must be F32");
    }

    @Test
    void rejectsMoreBlocksThanTheFileHasTensorsForWithoutAllocating() throws IOException {
        assertMessage(loadFails(model(2, "", "", F32, w -> { })), GgufFormatException.class,
                "tensor 'blk.1.attn_norm.weight'", "missing");
        for (int blocks : new int[] {12, 1 << 20, 1 << 30, Integer.MAX_VALUE}) {
            assertMessage(loadFails(model(blocks, "", "", F32, w -> { })), IllegalArgumentException.class,
                    "llama.block_count: " + blocks + " blocks exceed the 11 tensors of the file");
        }
    }

    @Test
    void rejectsInconsistentSettings() throws IOException {
        assertMessage(loadFails(model(1, "", "", F32, w -> w.kvString("llama.rope.dimension_count", "x"))),
                IllegalArgumentException.class, "llama.rope.dimension_count");
        assertMessage(loadFails(model(1, "", "", F32, w -> w.kvU32("llama.attention.head_count_kv", 3))),
                IllegalArgumentException.class, "kvHeads: 3 does not divide heads 2");
        assertMessage(loadFails(model(1, "", "", F32, w -> w.kvI32Array("llama.attention.kv_source_layers", 0, 0))),
                IllegalArgumentException.class, "kvSourceLayers");
    }
}
