package io.github.kvcache4j.model;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiFunction;

/**
 * Writes Llama GGUF files of any shape with seeded random weights, every matrix in a chosen type,
 * streamed to disk (a 1B-parameter file never sits in memory). The weights of a tensor are a
 * function of the seed and the tensor's name only, so files that differ in type hold the same
 * model up to quantization.
 *
 * <p>Matrices are Gaussian with standard deviation {@code 1/sqrt(cols)} (the embedding 1), norms
 * {@code 1 + 0.1 N(0, 1)}, F32. With {@code poolRows > 0} each matrix repeats {@code poolRows}
 * random rows (timing runs need the shape, not the randomness, and are written much faster).
 */
final class SyntheticLlama {

    /**
     * A model shape.
     *
     * @param dim embedding width
     * @param layers blocks
     * @param heads query heads
     * @param kvHeads key/value heads
     * @param ffn feed-forward width
     * @param vocab vocabulary size
     * @param context context length
     * @param tied whether the output matrix is the token embedding
     */
    record Shape(int dim, int layers, int heads, int kvHeads, int ffn, int vocab, int context, boolean tied) {

        /** Llama 3.2 1B: 1.24B parameters. */
        static final Shape LLAMA_1B = new Shape(2048, 16, 32, 8, 8192, 128256, 131072, true);
        /** A 0.5B shape: Qwen2.5-0.5B's widths in the Llama layout (no biases): 0.49B parameters. */
        static final Shape HALF_B = new Shape(896, 24, 14, 2, 4864, 151936, 32768, true);

        int kvDim() {
            return dim / heads * kvHeads;
        }

        /** Returns the number of weights. */
        long parameters() {
            long perLayer = 2L * dim * dim + 2L * kvDim() * dim + 3L * ffn * dim + 2L * dim;
            return layers * perLayer + (tied ? 1L : 2L) * vocab * dim + dim;
        }
    }

    /** Chooses the stored type of a matrix from its name and row length. */
    interface TypeChoice extends BiFunction<String, Integer, GgmlType> {
    }

    /** Every matrix in {@code type}. */
    static TypeChoice all(GgmlType type) {
        return (name, cols) -> type;
    }

    /**
     * {@code type} where the row length is a multiple of its block, else the type llama.cpp's
     * quantizer falls back to ({@code llama_tensor_get_type}): Q4_K to Q5_0, Q5_K to Q5_1, Q6_K
     * to Q8_0, Q2_K, Q3_K and IQ4_XS to IQ4_NL.
     */
    static TypeChoice withFallback(GgmlType type) {
        return (name, cols) -> {
            if (cols % type.blockSize() == 0) {
                return type;
            }
            return switch (type) {
                case Q4_K -> GgmlType.Q5_0;
                case Q5_K -> GgmlType.Q5_1;
                case Q6_K -> GgmlType.Q8_0;
                case Q2_K, Q3_K, IQ4_XS -> GgmlType.IQ4_NL;
                default -> throw new IllegalArgumentException(type + " has no fallback for rows of " + cols);
            };
        };
    }

    /**
     * llama.cpp's Q4_K_M mix ({@code llama_tensor_get_type}): Q6_K for the output matrix (the token
     * embedding when tied) and for {@code attn_v} and {@code ffn_down} of the first and last
     * eighth of the blocks and every third block between; Q4_K elsewhere; the fallbacks of
     * {@link #withFallback} for rows that are not a multiple of 256.
     *
     * @param layers the number of blocks
     */
    static TypeChoice q4KM(int layers) {
        return (name, cols) -> {
            boolean moreBits = false;
            if (name.endsWith("attn_v.weight") || name.endsWith("ffn_down.weight")) {
                int i = Integer.parseInt(name.split("\\.")[1]);
                moreBits = i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
            }
            boolean output = name.equals("output.weight") || name.equals("token_embd.weight");
            return withFallback(output || moreBits ? GgmlType.Q6_K : GgmlType.Q4_K).apply(name, cols);
        };
    }

    private record Tensor(String name, long rows, int cols, GgmlType type, boolean norm) {
        long bytes() {
            return norm ? 4L * cols : rows * (cols / type.blockSize()) * type.blockBytes();
        }
    }

    private SyntheticLlama() {
    }

    /**
     * Writes the model.
     *
     * @param file the file to create or replace
     * @param s the shape
     * @param types the type of each matrix
     * @param roundTrip write F32 values equal to what {@code types} would store (the
     *     dequantized weights), instead of the types themselves
     * @param seed the weights' seed
     * @param poolRows 0 for independent rows, else the number of distinct rows per matrix
     */
    static void write(Path file, Shape s, TypeChoice types, boolean roundTrip, long seed, int poolRows)
            throws IOException {
        List<Tensor> tensors = new ArrayList<>();
        tensors.add(matrix("token_embd.weight", s.vocab(), s.dim(), types));
        tensors.add(new Tensor("output_norm.weight", 1, s.dim(), GgmlType.F32, true));
        if (!s.tied()) {
            tensors.add(matrix("output.weight", s.vocab(), s.dim(), types));
        }
        for (int l = 0; l < s.layers(); l++) {
            String p = "blk." + l + ".";
            tensors.add(new Tensor(p + "attn_norm.weight", 1, s.dim(), GgmlType.F32, true));
            tensors.add(matrix(p + "attn_q.weight", s.dim(), s.dim(), types));
            tensors.add(matrix(p + "attn_k.weight", s.kvDim(), s.dim(), types));
            tensors.add(matrix(p + "attn_v.weight", s.kvDim(), s.dim(), types));
            tensors.add(matrix(p + "attn_output.weight", s.dim(), s.dim(), types));
            tensors.add(new Tensor(p + "ffn_norm.weight", 1, s.dim(), GgmlType.F32, true));
            tensors.add(matrix(p + "ffn_gate.weight", s.ffn(), s.dim(), types));
            tensors.add(matrix(p + "ffn_up.weight", s.ffn(), s.dim(), types));
            tensors.add(matrix(p + "ffn_down.weight", s.dim(), s.ffn(), types));
        }
        TestGgufWriter w = new TestGgufWriter();
        w.kvString("general.architecture", "llama");
        w.kvU32("llama.embedding_length", s.dim());
        w.kvU32("llama.attention.head_count", s.heads());
        w.kvU32("llama.attention.head_count_kv", s.kvHeads());
        w.kvU32("llama.block_count", s.layers());
        w.kvU32("llama.feed_forward_length", s.ffn());
        w.kvU32("llama.context_length", s.context());
        w.kvU32("llama.vocab_size", s.vocab());
        w.kvF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        long offset = 0;
        long[] offsets = new long[tensors.size()];
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            offsets[i] = offset;
            GgmlType stored = roundTrip && !t.norm ? GgmlType.F32 : t.type;
            long[] dims = t.norm ? new long[] {t.cols} : new long[] {t.cols, t.rows};
            w.tensorAt(t.name, stored.id(), offset, dims);
            Tensor st = new Tensor(t.name, t.rows, t.cols, stored, t.norm);
            offset = (offset + st.bytes() + w.alignment - 1) / w.alignment * w.alignment;
        }
        byte[] header = w.build();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.write(ByteBuffer.wrap(header));
            for (int i = 0; i < tensors.size(); i++) {
                Tensor t = tensors.get(i);
                ch.position(header.length + offsets[i]);
                writeTensor(ch, t, roundTrip, seed, poolRows);
            }
            // The last tensor's padding: a reader may expect the aligned end.
            ch.write(ByteBuffer.allocate((int) (header.length + offset - ch.position())));
        }
    }

    private static Tensor matrix(String name, long rows, int cols, TypeChoice types) {
        GgmlType t = types.apply(name, cols);
        if (cols % t.blockSize() != 0) {
            throw new IllegalArgumentException(name + ": rows of " + cols + " values do not fit " + t);
        }
        return new Tensor(name, rows, cols, t, false);
    }

    private static void writeTensor(FileChannel ch, Tensor t, boolean roundTrip, long seed, int poolRows)
            throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed ^ t.name.hashCode() * 0x9E3779B97F4A7C15L);
        if (t.norm) {
            float[] v = new float[t.cols];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (1 + 0.1 * rnd.nextGaussian());
            }
            ch.write(ByteBuffer.wrap(TestQuantizer.quantize(GgmlType.F32, v)));
            return;
        }
        double sd = t.name.equals("token_embd.weight") ? 1 : 1 / Math.sqrt(t.cols);
        int distinct = poolRows > 0 ? (int) Math.min(poolRows, t.rows) : -1;
        byte[][] pool = distinct > 0 ? new byte[distinct][] : null;
        int batchRows = Math.max(1, (1 << 22) / t.cols);
        ByteBuffer batch = ByteBuffer.allocate(0);
        for (long r = 0; r < t.rows; r++) {
            byte[] row;
            if (pool != null && r >= distinct) {
                row = pool[(int) (r % distinct)];
            } else {
                float[] v = new float[t.cols];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) (sd * rnd.nextGaussian());
                }
                row = roundTrip
                        ? TestQuantizer.quantize(GgmlType.F32, TestQuantizer.roundTrip(t.type, v))
                        : TestQuantizer.quantize(t.type, v);
                if (pool != null) {
                    pool[(int) r] = row;
                }
            }
            if (batch.capacity() == 0) {
                batch = ByteBuffer.allocate(row.length * batchRows).order(ByteOrder.LITTLE_ENDIAN);
            }
            batch.put(row);
            if (!batch.hasRemaining()) {
                batch.flip();
                while (batch.hasRemaining()) {
                    ch.write(batch);
                }
                batch.clear();
            }
        }
        batch.flip();
        while (batch.hasRemaining()) {
            ch.write(batch);
        }
    }
}
