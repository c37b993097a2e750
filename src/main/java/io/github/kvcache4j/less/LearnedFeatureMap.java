package io.github.kvcache4j.less;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Learned feature maps as in the LESS paper: per layer, one two-layer MLP per query head
 * ({@code φ}) and one per kv-head ({@code ψ}), {@code f(x) = out(W2·act(W1·x + b1) + b2)} with a
 * positive output activation {@code out}. The file format is described in {@code docs/less.md}.
 */
final class LearnedFeatureMap implements FeatureMap {

    /** The eight bytes every file starts with. */
    static final byte[] MAGIC = "KVLESS01".getBytes(StandardCharsets.US_ASCII);
    /** Bytes of the header: the magic and eight little-endian int32 fields. */
    static final int HEADER_BYTES = MAGIC.length + 8 * 4;
    private static final int MAX_DIMENSION = 1 << 16;
    /** The largest Java array, in elements. */
    private static final long MAX_ARRAY = Integer.MAX_VALUE - 8;
    /**
     * The largest weight magnitude a file may hold. Trained weights are orders of magnitude smaller;
     * the bound keeps the map exact over every input a model produces: with dimensions up to
     * {@code 2^16} and {@code |x_i| ≤ 2^62}, the hidden sums stay below {@code 2^95} and the outputs
     * below {@code 2^128}, inside the float range, so every feature equals the float64 evaluation
     * up to the float rounding of the hidden values and of the result.
     */
    static final float MAX_WEIGHT = 1 << 16;

    /** Activation of the hidden layer. */
    enum Hidden {
        IDENTITY, RELU, SILU, TANH, GELU
    }

    /** Positive activation of the output layer, applied in log form. */
    enum Output {
        EXP, SOFTPLUS, ELU_PLUS_ONE, SIGMOID
    }

    /** One MLP: {@code w1 [hidden][headDim]}, {@code b1 [hidden]}, {@code w2 [rank][hidden]}, {@code b2 [rank]}. */
    record Mlp(float[] w1, float[] b1, float[] w2, float[] b2) {
    }

    private final int layers;
    private final int queryHeads;
    private final int kvHeads;
    private final int headDim;
    private final int hidden;
    private final int rank;
    private final Hidden hiddenActivation;
    private final Output outputActivation;
    private final Mlp[][] queryMaps;
    private final Mlp[][] keyMaps;
    private final String source;

    LearnedFeatureMap(int headDim, int hidden, int rank, Hidden hiddenActivation, Output outputActivation,
                      Mlp[][] queryMaps, Mlp[][] keyMaps, String source) {
        this.layers = queryMaps.length;
        this.queryHeads = queryMaps[0].length;
        this.kvHeads = keyMaps[0].length;
        this.headDim = headDim;
        this.hidden = hidden;
        this.rank = rank;
        this.hiddenActivation = hiddenActivation;
        this.outputActivation = outputActivation;
        this.queryMaps = queryMaps;
        this.keyMaps = keyMaps;
        this.source = source;
    }

    /**
     * Reads a map from {@code file}. The header's sizes are checked against the file's length
     * before anything is allocated; the weights are then read in chunks, each checked as it
     * arrives, so memory grows only with the weights actually read.
     */
    static LearnedFeatureMap read(Path file) throws IOException {
        String where = "LESS feature map " + file;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < HEADER_BYTES) {
                throw new IOException(where + ": " + size + " bytes, shorter than the " + HEADER_BYTES + "-byte header");
            }
            WeightReader in = new WeightReader(channel, where);
            for (byte b : MAGIC) {
                if (in.i8() != b) {
                    throw new IOException(where + ": does not start with the magic \"KVLESS01\"");
                }
            }
            int layers = dimension(where, "layers", in.i32());
            int queryHeads = dimension(where, "queryHeads", in.i32());
            int kvHeads = dimension(where, "kvHeads", in.i32());
            int headDim = dimension(where, "headDim", in.i32());
            int hidden = dimension(where, "hidden", in.i32());
            int rank = dimension(where, "rank", in.i32());
            Hidden act = code(where, "hiddenActivation", in.i32(), Hidden.values());
            Output out = code(where, "outputActivation", in.i32(), Output.values());
            String shape = "layers " + layers + ", queryHeads " + queryHeads + ", kvHeads " + kvHeads + ", headDim "
                    + headDim + ", hidden " + hidden + ", rank " + rank;
            long expected = fileBytes(layers, queryHeads, kvHeads, headDim, hidden, rank);
            if (expected < 0) {
                throw new IOException(where + ": " + size + " bytes, but the header (" + shape + ") needs more than "
                        + Long.MAX_VALUE);
            }
            if (size != expected) {
                throw new IOException(where + ": " + size + " bytes, but the header (" + shape + ") needs exactly "
                        + expected);
            }
            checkFitsArray(where, "W1", "hidden", hidden, "headDim", headDim);
            checkFitsArray(where, "W2", "rank", rank, "hidden", hidden);
            Mlp[][] q = new Mlp[layers][queryHeads];
            Mlp[][] k = new Mlp[layers][kvHeads];
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < queryHeads; h++) {
                    q[l][h] = in.mlp("layer " + l + ", query head " + h, headDim, hidden, rank);
                }
                for (int h = 0; h < kvHeads; h++) {
                    k[l][h] = in.mlp("layer " + l + ", kv-head " + h, headDim, hidden, rank);
                }
            }
            return new LearnedFeatureMap(headDim, hidden, rank, act, out, q, k, file.getFileName().toString());
        }
    }

    /**
     * Returns the exact file size the header describes, or -1 if it exceeds {@link Long#MAX_VALUE}
     * (a header of large dimensions; its product must not wrap around to a small size).
     */
    private static long fileBytes(int layers, int queryHeads, int kvHeads, int headDim, int hidden, int rank) {
        long perMlp = (long) hidden * headDim + hidden + (long) rank * hidden + rank;
        long mlps = (long) layers * (queryHeads + kvHeads);
        try {
            return Math.addExact(HEADER_BYTES, Math.multiplyExact(Math.multiplyExact(Float.BYTES, perMlp), mlps));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    private static void checkFitsArray(String where, String name, String rowsName, int rows, String colsName, int cols)
            throws IOException {
        long n = (long) rows * cols;
        if (n > MAX_ARRAY) {
            throw new IOException(where + ": " + name + " has " + rowsName + " (" + rows + ") times " + colsName + " ("
                    + cols + ") = " + n + " weights, more than one Java array holds (" + MAX_ARRAY + ")");
        }
    }

    /** Writes this map in the format {@link #read} accepts. */
    void write(Path file) throws IOException {
        long perMlp = (long) hidden * headDim + hidden + (long) rank * hidden + rank;
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(HEADER_BYTES + 4L * perMlp * layers * (queryHeads + kvHeads)))
                .order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC);
        out.putInt(layers).putInt(queryHeads).putInt(kvHeads).putInt(headDim).putInt(hidden).putInt(rank)
                .putInt(hiddenActivation.ordinal()).putInt(outputActivation.ordinal());
        for (int l = 0; l < layers; l++) {
            for (Mlp m : queryMaps[l]) {
                put(out, m);
            }
            for (Mlp m : keyMaps[l]) {
                put(out, m);
            }
        }
        Files.write(file, out.array());
    }

    private static void put(ByteBuffer out, Mlp m) {
        for (float[] a : new float[][] {m.w1, m.b1, m.w2, m.b2}) {
            for (float f : a) {
                out.putFloat(f);
            }
        }
    }

    private static int dimension(String where, String name, int value) throws IOException {
        if (value < 1 || value > MAX_DIMENSION) {
            throw new IOException(where + ": " + name + " must be in [1, " + MAX_DIMENSION + "], got " + value);
        }
        return value;
    }

    private static <E extends Enum<E>> E code(String where, String name, int value, E[] values) throws IOException {
        if (value < 0 || value >= values.length) {
            throw new IOException(where + ": " + name + " must be in [0, " + values.length + "), got " + value);
        }
        return values[value];
    }

    /** Reads the file in chunks: the header's fields, then the weights, each checked against {@link #MAX_WEIGHT}. */
    private static final class WeightReader {
        private final FileChannel channel;
        private final String where;
        private final ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        private long offset;

        WeightReader(FileChannel channel, String where) {
            this.channel = channel;
            this.where = where;
            buffer.limit(0);
        }

        private void need(int bytes) throws IOException {
            if (buffer.remaining() >= bytes) {
                return;
            }
            buffer.compact();
            while (buffer.position() < bytes) {
                if (channel.read(buffer) < 0) {
                    throw new IOException(where + ": the file ended at byte " + (offset + buffer.position())
                            + " while being read");
                }
            }
            buffer.flip();
        }

        byte i8() throws IOException {
            need(1);
            offset++;
            return buffer.get();
        }

        int i32() throws IOException {
            need(4);
            offset += 4;
            return buffer.getInt();
        }

        Mlp mlp(String owner, int headDim, int hidden, int rank) throws IOException {
            return new Mlp(floats(owner, "W1", hidden, headDim), floats(owner, "b1", hidden, 0),
                    floats(owner, "W2", rank, hidden), floats(owner, "b2", rank, 0));
        }

        /** Reads a {@code rows × cols} matrix, or a vector of {@code rows} when {@code cols} is 0. */
        private float[] floats(String owner, String tensor, int rows, int cols) throws IOException {
            float[] a = new float[cols == 0 ? rows : rows * cols];
            for (int i = 0; i < a.length; i++) {
                need(4);
                float w = buffer.getFloat();
                if (!(Math.abs(w) <= MAX_WEIGHT)) {
                    String index = cols == 0 ? "[" + i + "]" : "[" + i / cols + "][" + i % cols + "]";
                    throw new IOException(where + ": " + owner + ", " + tensor + index + " at byte " + offset + " is "
                            + w + ", outside [" + -MAX_WEIGHT + ", " + MAX_WEIGHT + "]");
                }
                a[i] = w;
                offset += 4;
            }
            return a;
        }
    }

    @Override
    public int headDim() {
        return headDim;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int scratchFloats() {
        return hidden;
    }

    @Override
    public void checkShape(int layers, int queryHeads, int kvHeads) {
        if (layers != this.layers || queryHeads != this.queryHeads || kvHeads != this.kvHeads) {
            throw new IllegalArgumentException("feature map " + name() + " covers layers/queryHeads/kvHeads "
                    + this.layers + "/" + this.queryHeads + "/" + this.kvHeads + ", but the cache has "
                    + layers + "/" + queryHeads + "/" + kvHeads);
        }
    }

    @Override
    public void logQueryFeatures(int layer, int queryHead, float[] query, int offset, float[] dst, float[] scratch) {
        apply(queryMaps[layer][queryHead], query, offset, dst, scratch);
    }

    @Override
    public void logKeyFeatures(int layer, int kvHead, float[] key, int offset, float[] dst, float[] scratch) {
        apply(keyMaps[layer][kvHead], key, offset, dst, scratch);
    }

    /**
     * Evaluates the MLP with double sums, which cannot overflow for finite inputs; hidden values
     * and log-features are then saturated to the float range, which changes them only for inputs
     * beyond {@code 2^62} (see {@link #MAX_WEIGHT}) and keeps every feature finite, so the cache's
     * log-space arithmetic never meets an infinity.
     */
    private void apply(Mlp m, float[] x, int offset, float[] dst, float[] h) {
        for (int j = 0; j < hidden; j++) {
            double s = m.b1[j];
            int row = j * headDim;
            for (int i = 0; i < headDim; i++) {
                s += (double) m.w1[row + i] * x[offset + i];
            }
            h[j] = saturate(hidden(s));
        }
        for (int r = 0; r < rank; r++) {
            double s = m.b2[r];
            int row = r * hidden;
            for (int j = 0; j < hidden; j++) {
                s += (double) m.w2[row + j] * h[j];
            }
            dst[r] = saturate(logOutput(s));
        }
    }

    private static float saturate(double v) {
        return (float) Math.clamp(v, -Float.MAX_VALUE, Float.MAX_VALUE);
    }

    private double hidden(double s) {
        return switch (hiddenActivation) {
            case IDENTITY -> s;
            case RELU -> Math.max(s, 0);
            case SILU -> s / (1.0 + Math.exp(-s));
            case TANH -> Math.tanh(s);
            case GELU -> 0.5 * s * (1.0 + Math.tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
        };
    }

    /** Returns {@code log out(y)}, computed without overflow. */
    double logOutput(double y) {
        return switch (outputActivation) {
            case EXP -> y;
            case SOFTPLUS -> logSoftplus(y);
            case ELU_PLUS_ONE -> y > 0 ? Math.log1p(y) : y;
            case SIGMOID -> -softplus(-y);
        };
    }

    private static double softplus(double y) {
        return y > 0 ? y + Math.log1p(Math.exp(-y)) : Math.log1p(Math.exp(y));
    }

    private static double logSoftplus(double y) {
        return y < -30 ? y : Math.log(softplus(y));
    }

    @Override
    public String name() {
        return "learned(" + source + ", rank=" + rank + ", hidden=" + hidden + ", " + hiddenActivation.name().toLowerCase()
                + "/" + outputActivation.name().toLowerCase() + ")";
    }

    @Override
    public String toString() {
        return name();
    }
}
