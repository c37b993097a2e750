package io.github.kvcache4j.less;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Learned LESS feature maps: the file format of docs/less.md, written here byte by byte, and its checks. */
class LearnedFeatureMapTest {

    private static final int LAYERS = 2;
    private static final int QUERY_HEADS = 4;
    private static final int KV_HEADS = 2;
    private static final int D = 8;
    private static final int HIDDEN = 12;
    private static final int RANK = 3;
    private static final int RELU = 1;
    private static final int SOFTPLUS = 1;
    private static final int PER_MLP = HIDDEN * D + HIDDEN + RANK * HIDDEN + RANK;
    private static final float MAX_WEIGHT = 65536f;

    @TempDir
    Path dir;

    /** Weights in file order: per layer, the query heads' MLPs then the kv-heads', each W1, b1, W2, b2. */
    private float[] weights;

    private Path writeDocumentedFile(SplittableRandom r, String magic, int hiddenActivation, int outputActivation,
                                     int dropBytes) throws IOException {
        weights = Seeds.uniform(r, PER_MLP * LAYERS * (QUERY_HEADS + KV_HEADS), 0.5);
        return writeWeights(magic, hiddenActivation, outputActivation, dropBytes);
    }

    /** Writes {@link #weights} with the documented header of this test's shape. */
    private Path writeWeights(String magic, int hiddenActivation, int outputActivation, int dropBytes)
            throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + 8 * 4 + 4 * weights.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(magic.getBytes(StandardCharsets.US_ASCII));
        b.putInt(LAYERS).putInt(QUERY_HEADS).putInt(KV_HEADS).putInt(D).putInt(HIDDEN).putInt(RANK)
                .putInt(hiddenActivation).putInt(outputActivation);
        for (float w : weights) {
            b.putFloat(w);
        }
        Path file = dir.resolve("map-" + magic + hiddenActivation + outputActivation + dropBytes + ".bin");
        Files.write(file, Arrays.copyOf(b.array(), b.capacity() - dropBytes));
        return file;
    }

    /** Float64 {@code W2·relu(W1·x + b1) + b2} of the MLP starting at {@code base} in {@link #weights}. */
    private double[] reference(int base, float[] x) {
        double[] h = new double[HIDDEN];
        for (int j = 0; j < HIDDEN; j++) {
            double s = weights[base + HIDDEN * D + j];
            for (int i = 0; i < D; i++) {
                s += (double) weights[base + j * D + i] * x[i];
            }
            h[j] = Math.max(s, 0);
        }
        int w2 = base + HIDDEN * D + HIDDEN;
        double[] out = new double[RANK];
        for (int k = 0; k < RANK; k++) {
            double s = weights[w2 + RANK * HIDDEN + k];
            for (int j = 0; j < HIDDEN; j++) {
                s += weights[w2 + k * HIDDEN + j] * h[j];
            }
            out[k] = s;
        }
        return out;
    }

    private static double logSoftplus(double y) {
        return Math.log(Math.log1p(Math.exp(y)));
    }

    @Test
    void loadsTheDocumentedFormat() throws IOException {
        long seed = Seeds.fresh("loadsTheDocumentedFormat");
        SplittableRandom r = new SplittableRandom(seed);
        FeatureMap map = FeatureMap.load(writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 0));
        assertEquals(D, map.headDim());
        assertEquals(RANK, map.rank());
        float[] x = Seeds.uniform(r, D, 2.0);
        float[] got = new float[RANK];
        float[] scratch = new float[map.scratchFloats()];
        for (int l = 0; l < LAYERS; l++) {
            int layerBase = l * (QUERY_HEADS + KV_HEADS) * PER_MLP;
            for (int h = 0; h < QUERY_HEADS; h++) {
                map.logQueryFeatures(l, h, x, 0, got, scratch);
                double[] want = reference(layerBase + h * PER_MLP, x);
                for (int k = 0; k < RANK; k++) {
                    assertEquals(logSoftplus(want[k]), got[k], 1e-5, "query layer " + l + " head " + h + " feature " + k);
                }
            }
            for (int h = 0; h < KV_HEADS; h++) {
                map.logKeyFeatures(l, h, x, 0, got, scratch);
                double[] want = reference(layerBase + (QUERY_HEADS + h) * PER_MLP, x);
                for (int k = 0; k < RANK; k++) {
                    assertEquals(logSoftplus(want[k]), got[k], 1e-5, "key layer " + l + " head " + h + " feature " + k);
                }
            }
        }
        Path again = dir.resolve("again.bin");
        ((LearnedFeatureMap) map).write(again);
        assertEquals(-1, Files.mismatch(again, dir.resolve("map-KVLESS01" + RELU + SOFTPLUS + "0.bin")));
    }

    @Test
    void aCacheAttendsThroughALoadedMap() throws IOException {
        long seed = Seeds.fresh("aCacheAttendsThroughALoadedMap");
        SplittableRandom r = new SplittableRandom(seed);
        FeatureMap map = FeatureMap.load(writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 0));
        KvCacheConfig config = KvCacheConfig.builder().layers(LAYERS).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                .headDim(D).capacity(8).policy(Policies.knorm()).less(map).build();
        try (KvCache cache = KvCache.create(config)) {
            for (int pos = 0; pos < 20; pos++) {
                for (int l = 0; l < LAYERS; l++) {
                    cache.append(l, pos, Seeds.uniform(r, KV_HEADS * D, 1.0), Seeds.uniform(r, KV_HEADS * D, 1.0));
                    float[] out = new float[QUERY_HEADS * D];
                    cache.attend(l, pos, Seeds.uniform(r, QUERY_HEADS * D, 1.0), out);
                    for (float f : out) {
                        assertTrue(Float.isFinite(f) && Math.abs(f) <= 1.001f, "out " + f + ", seed " + seed);
                    }
                }
            }
            assertTrue(cache.stats().evicted() > 0);
        }
    }

    @Test
    void rejectsAMapOfAnotherShape() throws IOException {
        FeatureMap map = FeatureMap.load(writeDocumentedFile(new SplittableRandom(1), "KVLESS01", RELU, SOFTPLUS, 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KvCacheConfig.builder().layers(LAYERS + 1).kvHeads(KV_HEADS).queryHeads(QUERY_HEADS)
                        .headDim(D).capacity(8).less(map).build());
        assertTrue(e.getMessage().contains("layers"), e.getMessage());
    }

    @Test
    void rejectsMalformedFiles() throws IOException {
        SplittableRandom r = new SplittableRandom(2);
        IOException e = assertThrows(IOException.class,
                () -> FeatureMap.load(writeDocumentedFile(r, "KVLESS02", RELU, SOFTPLUS, 0)));
        assertTrue(e.getMessage().contains("magic"), e.getMessage());
        e = assertThrows(IOException.class, () -> FeatureMap.load(writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 4)));
        assertTrue(e.getMessage().contains("needs exactly"), e.getMessage());
        e = assertThrows(IOException.class, () -> FeatureMap.load(writeDocumentedFile(r, "KVLESS01", 9, SOFTPLUS, 0)));
        assertTrue(e.getMessage().contains("hiddenActivation"), e.getMessage());
        e = assertThrows(IOException.class, () -> FeatureMap.load(writeDocumentedFile(r, "KVLESS01", RELU, 7, 0)));
        assertTrue(e.getMessage().contains("outputActivation"), e.getMessage());
    }

    @Test
    void outputActivationsAreComputedInLogFormWithoutOverflow() {
        for (LearnedFeatureMap.Output out : LearnedFeatureMap.Output.values()) {
            LearnedFeatureMap map = new LearnedFeatureMap(1, 1, 1, LearnedFeatureMap.Hidden.IDENTITY, out,
                    new LearnedFeatureMap.Mlp[][] {{new LearnedFeatureMap.Mlp(new float[1], new float[1], new float[1], new float[1])}},
                    new LearnedFeatureMap.Mlp[][] {{new LearnedFeatureMap.Mlp(new float[1], new float[1], new float[1], new float[1])}},
                    "test");
            for (float y : new float[] {-1e4f, -50f, -1f, 0f, 1f, 50f, 1e4f}) {
                double want = switch (out) {
                    case EXP -> y;
                    case SOFTPLUS -> y < -30 ? y : Math.log(y > 30 ? y : Math.log1p(Math.exp(y)));
                    case ELU_PLUS_ONE -> y > 0 ? Math.log1p(y) : y;
                    case SIGMOID -> y > 30 ? 0 : -Math.log1p(Math.exp(-y));
                };
                double got = map.logOutput(y);
                assertTrue(Double.isFinite(got), out + "(" + y + ") = " + got);
                assertEquals(want, got, 1e-6 * Math.max(1, Math.abs(want)), out + "(" + y + ")");
            }
        }
    }

    /** Creates a sparse file of {@code size} bytes that starts with the magic, {@code header} and {@code leading} weights. */
    private Path sparseFile(String name, long size, int[] header, float... leading) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + 4 * header.length + 4 * leading.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put("KVLESS01".getBytes(StandardCharsets.US_ASCII));
        for (int h : header) {
            b.putInt(h);
        }
        for (float w : leading) {
            b.putFloat(w);
        }
        Path file = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(size);
            f.write(b.array());
        }
        return file;
    }

    @Test
    void rejectsAHeaderWhoseSizeOverflowsBeforeAllocating() throws IOException {
        // 4 * layers * (queryHeads + kvHeads) * (hidden * d + hidden + rank * hidden + rank) is 2^64: in
        // 64-bit arithmetic it wraps to 0, and the 40-byte file would match.
        Path file = sparseFile("overflow.bin", 40, new int[] {65536, 4096, 4096, 65534, 65536, 65536, RELU, SOFTPLUS});
        IOException e = assertThrows(IOException.class, () -> FeatureMap.load(file));
        assertTrue(e.getMessage().contains("40 bytes") && e.getMessage().contains("more than 9223372036854775807"),
                e.getMessage());
    }

    @Test
    void rejectsAMatrixLargerThanAJavaArrayBeforeAllocating() throws IOException {
        // W1 is hidden * d = 2^31 floats; the sparse file has exactly the size the header describes.
        int d = 32768;
        int hidden = 65536;
        long size = 40 + 4L * 2 * ((long) hidden * d + hidden + hidden + 1);
        Path file = sparseFile("matrix.bin", size, new int[] {1, 1, 1, d, hidden, 1, RELU, SOFTPLUS});
        IOException e = assertThrows(IOException.class, () -> FeatureMap.load(file));
        assertTrue(e.getMessage().contains("W1") && e.getMessage().contains("2147483648"), e.getMessage());
    }

    @Test
    void streamsALargeFileAndStopsAtTheFirstBadWeight() throws IOException {
        // 4096 layers of 24 MLPs of 8320 weights: 3.05 GiB, more than one Java array holds.
        int[] header = {4096, 16, 8, 64, 64, 64, RELU, SOFTPLUS};
        long size = 40 + 4L * 4096 * 24 * (64 * 64 + 64 + 64 * 64 + 64);
        Path file = sparseFile("large.bin", size, header, 0.25f, -0.5f, Float.NaN);
        IOException e = assertThrows(IOException.class, () -> FeatureMap.load(file));
        assertTrue(e.getMessage().contains("layer 0, query head 0, W1[0][2] at byte 48 is NaN"), e.getMessage());
    }

    /** Returns where weight {@code i} of {@link #weights} sits, as the loader names it. */
    private static String location(int i) {
        int mlp = i / PER_MLP;
        int head = mlp % (QUERY_HEADS + KV_HEADS);
        String owner = "layer " + mlp / (QUERY_HEADS + KV_HEADS) + ", "
                + (head < QUERY_HEADS ? "query head " + head : "kv-head " + (head - QUERY_HEADS));
        int w = i % PER_MLP;
        String tensor;
        if (w < HIDDEN * D) {
            tensor = "W1[" + w / D + "][" + w % D + "]";
        } else if (w < HIDDEN * D + HIDDEN) {
            tensor = "b1[" + (w - HIDDEN * D) + "]";
        } else if (w < HIDDEN * D + HIDDEN + RANK * HIDDEN) {
            int k = w - HIDDEN * D - HIDDEN;
            tensor = "W2[" + k / HIDDEN + "][" + k % HIDDEN + "]";
        } else {
            tensor = "b2[" + (w - HIDDEN * D - HIDDEN - RANK * HIDDEN) + "]";
        }
        return owner + ", " + tensor + " at byte " + (40 + 4L * i);
    }

    @Test
    void rejectsWeightsOutsideTheBoundNamingTheirPlace() throws IOException {
        long seed = Seeds.fresh("rejectsWeightsOutsideTheBoundNamingTheirPlace");
        SplittableRandom r = new SplittableRandom(seed);
        for (float bad : new float[] {1e30f, -Math.nextUp(MAX_WEIGHT), Float.NaN, Float.NEGATIVE_INFINITY}) {
            writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 0);
            int at = r.nextInt(weights.length);
            weights[at] = bad;
            Path file = writeWeights("KVLESS01", RELU, SOFTPLUS, 0);
            IOException e = assertThrows(IOException.class, () -> FeatureMap.load(file), "seed " + seed);
            assertTrue(e.getMessage().contains(location(at) + " is " + bad + ", outside [-65536.0, 65536.0]"),
                    e.getMessage() + ", seed " + seed);
        }
        writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 0);
        weights[r.nextInt(weights.length)] = MAX_WEIGHT;
        weights[r.nextInt(weights.length)] = -MAX_WEIGHT;
        assertEquals(RANK, FeatureMap.load(writeWeights("KVLESS01", RELU, SOFTPLUS, 0)).rank());
    }

    @Test
    void featuresAtTheWeightBoundAreExactUpTo2To62AndFiniteForEveryFloat() throws IOException {
        long seed = Seeds.fresh("featuresAtTheWeightBoundAreExactUpTo2To62AndFiniteForEveryFloat");
        SplittableRandom r = new SplittableRandom(seed);
        weights = new float[PER_MLP * LAYERS * (QUERY_HEADS + KV_HEADS)];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = r.nextBoolean() ? MAX_WEIGHT : -MAX_WEIGHT;
        }
        float[] got = new float[RANK];
        for (LearnedFeatureMap.Hidden act : LearnedFeatureMap.Hidden.values()) {
            for (LearnedFeatureMap.Output out : LearnedFeatureMap.Output.values()) {
                FeatureMap map = FeatureMap.load(writeWeights("KVLESS01", act.ordinal(), out.ordinal(), 0));
                float[] scratch = new float[map.scratchFloats()];
                for (float scale : new float[] {0x1p62f, Float.MAX_VALUE}) {
                    float[] x = Seeds.uniform(r, D, scale);
                    x[r.nextInt(D)] = r.nextBoolean() ? scale : -scale;
                    map.logKeyFeatures(1, KV_HEADS - 1, x, 0, got, scratch);
                    double[] want = reference((2 * (QUERY_HEADS + KV_HEADS) - 1) * PER_MLP, x);
                    for (int k = 0; k < RANK; k++) {
                        String what = act + "/" + out + " |x| <= " + scale + " feature " + k + ", seed " + seed;
                        assertTrue(Float.isFinite(got[k]), what + ": " + got[k]);
                        if (act == LearnedFeatureMap.Hidden.RELU && out == LearnedFeatureMap.Output.EXP
                                && scale == 0x1p62f) {
                            // Rounding each hidden value and the output to float errs by at most 2^-24 of the terms each.
                            assertEquals(want[k], got[k], 2.5e-7 * magnitude(want[k], x), what);
                        }
                    }
                }
            }
        }
    }

    /** An upper bound on the terms of {@code W2·relu(W1·x + b1) + b2} at the weight bound, for error tolerances. */
    private static double magnitude(double y, float[] x) {
        double sum = 0;
        for (float v : x) {
            sum += Math.abs(v);
        }
        return Math.max(Math.abs(y), MAX_WEIGHT * HIDDEN * (MAX_WEIGHT * sum + MAX_WEIGHT) + MAX_WEIGHT);
    }
}
