package io.github.kvcache4j.sharing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaConfig;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Plan construction, parsing, validation messages, and memory reserved per source layer. */
class SharingPlanTest {

    @Test
    void parsesClaLayerTypes() {
        SharingPlan p = SharingPlan.parse("0_0_2_2");
        assertArrayEquals(new int[] {0, 0, 2, 2}, p.sources());
        assertEquals(2, p.sourceCount());
        assertEquals(2, p.sharedCount());
        assertTrue(p.isSource(2));
        assertFalse(p.isSource(3));
        assertEquals(2, p.sourceOf(3));
        assertFalse(p.readsLaterLayer());
        assertEquals("0_0_2_2", p.toLayerTypes());
        assertEquals(SharingPlan.of(0, 0, 2, 2), p);
    }

    @Test
    void parsesLckvTopLayerTypes() {
        // LCKV with warm-up layers 0 and 5: every middle layer reads the top layer 4.
        SharingPlan p = SharingPlan.parse("0_4_4_4_4_5");
        assertArrayEquals(new int[] {0, 4, 4, 4, 4, 5}, p.sources());
        assertTrue(p.readsLaterLayer());
        assertEquals(3, p.sourceCount());
    }

    @Test
    void identityReadsItself() {
        SharingPlan p = SharingPlan.identity(3);
        assertArrayEquals(new int[] {0, 1, 2}, p.sources());
        assertEquals(0, p.sharedCount());
        assertEquals("SharingPlan[0_1_2]", p.toString());
    }

    @Test
    void rejectsMalformedLayerTypes() {
        assertMessage("layer_types[1] = 'x' is not a layer index", () -> SharingPlan.parse("0_x_2"));
        assertMessage("layer_types[2] = '' is not a layer index", () -> SharingPlan.parse("0_0_"));
        assertMessage("layer_types[1] = '-1' is not a layer index", () -> SharingPlan.parse("0_-1"));
        assertMessage("layer_types[0] = '' is not a layer index", () -> SharingPlan.parse(""));
    }

    @Test
    void rejectsSourceOutOfRange() {
        assertMessage("layer_types[3] = 4 is outside [0, 4)", () -> SharingPlan.parse("0_0_2_4"));
        assertMessage("kvSourceLayers[1] = -1 is outside [0, 2)", () -> SharingPlan.of(0, -1));
        assertMessage("kvSourceLayers must have one entry per layer, got none", SharingPlan::of);
        assertMessage("layers must be >= 1, got 0", () -> SharingPlan.identity(0));
    }

    @Test
    void rejectsSourceThatDoesNotReadItself() {
        assertMessage("kvSourceLayers[2] = 1 is not a source layer: kvSourceLayers[1] = 0 (a source reads itself)",
                () -> SharingPlan.of(0, 0, 1));
        assertMessage("layer_types[0] = 1 is not a source layer: layer_types[1] = 2",
                () -> SharingPlan.parse("1_2_2"));
    }

    @Test
    void planIsACopy() {
        int[] s = {0, 0};
        SharingPlan p = SharingPlan.of(s);
        s[1] = 1;
        p.sources()[1] = 1;
        assertArrayEquals(new int[] {0, 0}, p.sources());
    }

    @Test
    void readsPlanFromGguf() throws IOException {
        try (GgufFile cla = GgufFile.open(SharedFiles.model("austen-cla-f16.gguf"));
             GgufFile base = GgufFile.open(SharedFiles.model("austen-base-f16.gguf"))) {
            assertEquals(SharingPlan.parse("0_0_2_2_4_4_6_6"), LlamaConfig.fromGguf(cla).sharingPlan());
            assertEquals(SharingPlan.identity(8), LlamaConfig.fromGguf(base).sharingPlan());
        }
    }

    @Test
    void builderTakesAPlanAndConfigReturnsIt() {
        SharingPlan p = SharingPlan.parse("0_0_2_2");
        KvCacheConfig c = config(4, 16, DType.F32).sharing(p).build();
        assertEquals(p, c.sharing());
        assertArrayEquals(p.sources(), c.kvSourceLayers());
        assertEquals(p, c.toBuilder().build().sharing());
        assertEquals(SharingPlan.identity(4), config(4, 16, DType.F32).sharing(null).build().sharing());
        assertMessage("kvSourceLayers has 2 entries, expected one per layer (4)",
                () -> config(4, 16, DType.F32).sharing(SharingPlan.of(0, 0)).build());
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void reservesMemoryForSourceLayersOnly(DType dtype) {
        int layers = 8;
        long identity = reserved(SharingPlan.identity(layers), dtype);
        assertTrue(identity > 0);
        for (String types : new String[] {"0_0_2_2_4_4_6_6", "0_0_0_0_4_4_4_4", "0_7_7_7_7_7_7_7",
                "0_1_2_3_4_5_6_6", "0_0_0_0_0_0_0_0"}) {
            SharingPlan p = SharingPlan.parse(types);
            assertEquals(identity / layers * p.sourceCount(), reserved(p, dtype), types);
        }
    }

    private static long reserved(SharingPlan plan, DType dtype) {
        try (KvCache cache = KvCache.create(config(plan.layers(), 64, dtype).sharing(plan).build())) {
            CacheStats s = cache.stats();
            assertEquals(0, s.residentBytes());
            return s.reservedBytes();
        }
    }

    static KvCacheConfig.Builder config(int layers, int capacity, DType dtype) {
        // Quantized rows hold whole groups of 32 elements.
        return KvCacheConfig.builder().layers(layers).kvHeads(2).queryHeads(4).headDim(dtype.isQuantized() ? 32 : 16)
                .capacity(capacity).dtype(dtype);
    }

    private static void assertMessage(String expectedStart, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(expectedStart), e.getMessage());
    }
}
