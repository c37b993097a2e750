package io.github.kvcache4j.less;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

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

    /** Reads a map from {@code file}. */
    static LearnedFeatureMap read(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        String where = "LESS feature map " + file;
        if (bytes.length < HEADER_BYTES) {
            throw new IOException(where + ": " + bytes.length + " bytes, shorter than the "
                    + HEADER_BYTES + "-byte header");
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (bytes[i] != MAGIC[i]) {
                throw new IOException(where + ": does not start with the magic \"KVLESS01\"");
            }
        }
        ByteBuffer in = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        in.position(MAGIC.length);
        int layers = dimension(where, "layers", in.getInt());
        int queryHeads = dimension(where, "queryHeads", in.getInt());
        int kvHeads = dimension(where, "kvHeads", in.getInt());
        int headDim = dimension(where, "headDim", in.getInt());
        int hidden = dimension(where, "hidden", in.getInt());
        int rank = dimension(where, "rank", in.getInt());
        Hidden act = code(where, "hiddenActivation", in.getInt(), Hidden.values());
        Output out = code(where, "outputActivation", in.getInt(), Output.values());
        long perMlp = (long) hidden * headDim + hidden + (long) rank * hidden + rank;
        long expected = HEADER_BYTES + 4L * perMlp * layers * (queryHeads + kvHeads);
        if (bytes.length != expected) {
            throw new IOException(where + ": " + bytes.length + " bytes, but the header (layers " + layers
                    + ", queryHeads " + queryHeads + ", kvHeads " + kvHeads + ", headDim " + headDim
                    + ", hidden " + hidden + ", rank " + rank + ") needs exactly " + expected);
        }
        Mlp[][] q = new Mlp[layers][queryHeads];
        Mlp[][] k = new Mlp[layers][kvHeads];
        for (int l = 0; l < layers; l++) {
            for (int h = 0; h < queryHeads; h++) {
                q[l][h] = mlp(in, headDim, hidden, rank, where);
            }
            for (int h = 0; h < kvHeads; h++) {
                k[l][h] = mlp(in, headDim, hidden, rank, where);
            }
        }
        return new LearnedFeatureMap(headDim, hidden, rank, act, out, q, k, file.getFileName().toString());
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

    private static Mlp mlp(ByteBuffer in, int headDim, int hidden, int rank, String where) throws IOException {
        Mlp m = new Mlp(floats(in, hidden * headDim), floats(in, hidden), floats(in, rank * hidden), floats(in, rank));
        for (float[] a : new float[][] {m.w1, m.b1, m.w2, m.b2}) {
            for (float f : a) {
                if (!Float.isFinite(f)) {
                    throw new IOException(where + ": weight " + f + " is not finite");
                }
            }
        }
        return m;
    }

    private static float[] floats(ByteBuffer in, int n) {
        float[] a = new float[n];
        in.asFloatBuffer().get(a);
        in.position(in.position() + 4 * n);
        return a;
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

    private void apply(Mlp m, float[] x, int offset, float[] dst, float[] h) {
        for (int j = 0; j < hidden; j++) {
            float s = m.b1[j];
            int row = j * headDim;
            for (int i = 0; i < headDim; i++) {
                s += m.w1[row + i] * x[offset + i];
            }
            h[j] = hidden(s);
        }
        for (int r = 0; r < rank; r++) {
            float s = m.b2[r];
            int row = r * hidden;
            for (int j = 0; j < hidden; j++) {
                s += m.w2[row + j] * h[j];
            }
            dst[r] = logOutput(s);
        }
    }

    private float hidden(float s) {
        return switch (hiddenActivation) {
            case IDENTITY -> s;
            case RELU -> Math.max(s, 0f);
            case SILU -> (float) (s / (1.0 + Math.exp(-s)));
            case TANH -> (float) Math.tanh(s);
            case GELU -> (float) (0.5 * s * (1.0 + Math.tanh(0.7978845608028654 * (s + 0.044715 * s * s * s))));
        };
    }

    /** Returns {@code log out(y)}, computed without overflow. */
    float logOutput(float y) {
        return switch (outputActivation) {
            case EXP -> y;
            case SOFTPLUS -> (float) logSoftplus(y);
            case ELU_PLUS_ONE -> y > 0 ? (float) Math.log1p(y) : y;
            case SIGMOID -> (float) -softplus(-y);
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
