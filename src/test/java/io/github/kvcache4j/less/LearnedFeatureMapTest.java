package io.github.kvcache4j.less;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.io.IOException;
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

    @TempDir
    Path dir;

    /** Weights in file order: per layer, the query heads' MLPs then the kv-heads', each W1, b1, W2, b2. */
    private float[] weights;

    private Path writeDocumentedFile(SplittableRandom r, String magic, int hiddenActivation, int outputActivation,
                                     int dropBytes) throws IOException {
        int perMlp = HIDDEN * D + HIDDEN + RANK * HIDDEN + RANK;
        weights = Seeds.uniform(r, perMlp * LAYERS * (QUERY_HEADS + KV_HEADS), 0.5);
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

    /** Float64 {@code log softplus(W2·relu(W1·x + b1) + b2)} of the MLP starting at {@code base} in {@link #weights}. */
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
            out[k] = Math.log(Math.log1p(Math.exp(s)));
        }
        return out;
    }

    @Test
    void loadsTheDocumentedFormat() throws IOException {
        long seed = Seeds.fresh("loadsTheDocumentedFormat");
        SplittableRandom r = new SplittableRandom(seed);
        FeatureMap map = FeatureMap.load(writeDocumentedFile(r, "KVLESS01", RELU, SOFTPLUS, 0));
        assertEquals(D, map.headDim());
        assertEquals(RANK, map.rank());
        int perMlp = HIDDEN * D + HIDDEN + RANK * HIDDEN + RANK;
        float[] x = Seeds.uniform(r, D, 2.0);
        float[] got = new float[RANK];
        float[] scratch = new float[map.scratchFloats()];
        for (int l = 0; l < LAYERS; l++) {
            int layerBase = l * (QUERY_HEADS + KV_HEADS) * perMlp;
            for (int h = 0; h < QUERY_HEADS; h++) {
                map.logQueryFeatures(l, h, x, 0, got, scratch);
                double[] want = reference(layerBase + h * perMlp, x);
                for (int k = 0; k < RANK; k++) {
                    assertEquals(want[k], got[k], 1e-5, "query layer " + l + " head " + h + " feature " + k);
                }
            }
            for (int h = 0; h < KV_HEADS; h++) {
                map.logKeyFeatures(l, h, x, 0, got, scratch);
                double[] want = reference(layerBase + (QUERY_HEADS + h) * perMlp, x);
                for (int k = 0; k < RANK; k++) {
                    assertEquals(want[k], got[k], 1e-5, "key layer " + l + " head " + h + " feature " + k);
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
                float got = map.logOutput(y);
                assertTrue(Float.isFinite(got), out + "(" + y + ") = " + got);
                assertEquals(want, got, 1e-6 * Math.max(1, Math.abs(want)), out + "(" + y + ")");
            }
        }
    }
}
