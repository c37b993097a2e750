package io.github.kvcache4j.sharing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.DType;
import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Sharing composed with eviction and half-precision storage: eviction happens at the source, a
 * sharing layer reads exactly what its source holds, and attention-based policies hear the
 * attention of every layer that reads a source.
 */
class SharingWithEvictionTest {

    private static final int KV_HEADS = 2;
    private static final int GROUP = 2;
    private static final int HEAD_DIM = 16;
    private static final int CAPACITY = 12;

    @ParameterizedTest
    @ValueSource(strings = {"h2o", "snapkv", "tova", "knorm", "streaming"})
    void evictsAtTheSourceAndSharingLayersReadItsTokensInF16(String policyName) {
        SplittableRandom r = new SplittableRandom(Seeds.fresh("evictsAtTheSource " + policyName));
        EvictionPolicy inner = switch (policyName) {
            case "h2o" -> Policies.h2o();
            case "snapkv" -> Policies.snapKv(4, 3);
            case "tova" -> Policies.tova();
            case "knorm" -> Policies.knorm();
            default -> Policies.streamingLlm(2);
        };
        Recording policy = new Recording(inner);
        SharingPlan plan = SharingPlan.parse("0_0_2_2");
        int row = KV_HEADS * HEAD_DIM;
        int qRow = KV_HEADS * GROUP * HEAD_DIM;
        int tokens = 40;
        double worst = 0;
        try (KvCache cache = KvCache.create(SharingPlanTest.config(4, CAPACITY, DType.F16).sharing(plan)
                .policy(policy).build())) {
            float[] out = new float[qRow];
            float[] keys = new float[CAPACITY * HEAD_DIM];
            float[] values = new float[CAPACITY * HEAD_DIM];
            for (int pos = 0; pos < tokens; pos++) {
                for (int layer = 0; layer < 4; layer++) {
                    if (plan.isSource(layer)) {
                        cache.append(layer, pos, Seeds.uniform(r, row, 2), Seeds.uniform(r, row, 2));
                    }
                    float[] q = Seeds.uniform(r, qRow, 2);
                    cache.attend(layer, pos, q, out);
                    for (int qh = 0; qh < KV_HEADS * GROUP; qh++) {
                        int h = qh / GROUP;
                        assertArrayEquals(cache.positions(plan.sourceOf(layer), h), cache.positions(layer, h));
                        int n = cache.read(layer, h, keys, values);
                        double[] expected = Reference.attention(q, qh * HEAD_DIM, keys, values, n, HEAD_DIM,
                                1 / Math.sqrt(HEAD_DIM), null);
                        worst = Math.max(worst, Reference.relativeError(out, qh * HEAD_DIM, expected));
                    }
                }
            }
            CacheStats stats = cache.stats();
            assertTrue(stats.evicted() > 0);
            for (int h = 0; h < KV_HEADS; h++) {
                assertEquals(stats.resident(0, h), stats.resident(1, h));
                assertEquals(stats.resident(2, h), stats.resident(3, h));
            }
            long slots = 0;
            for (int layer : new int[] {0, 2}) {
                for (int h = 0; h < KV_HEADS; h++) {
                    slots += stats.resident(layer, h);
                }
            }
            // Each stored row counted once: K and V of HEAD_DIM halves each.
            assertEquals(slots * 2 * HEAD_DIM * 2, stats.residentBytes());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> cache.append(3, tokens, new float[row], new float[row]));
            assertTrue(e.getMessage().contains("reads the KV of layer 2"), e.getMessage());

            cache.compress(0.5);
            for (int h = 0; h < KV_HEADS; h++) {
                assertArrayEquals(cache.positions(0, h), cache.positions(1, h));
                assertArrayEquals(cache.positions(2, h), cache.positions(3, h));
            }
        }
        System.out.printf("%s with sharing, F16: largest relative error against float64 %.2e%n", policyName, worst);
        assertTrue(worst < 1e-5, "relative error " + worst);
        if (!policy.attention.isEmpty()) {
            // Every attention call was reported against the source's slots, by its reading layer.
            for (int[] call : policy.attention) {
                assertEquals(plan.sourceOf(call[1]), call[0], "onAttention(layer, readingLayer)");
            }
            for (int reading = 0; reading < 4; reading++) {
                int l = reading;
                assertTrue(policy.attention.stream().anyMatch(c -> c[1] == l), "layer " + l + " was not reported");
            }
        }
    }

    /** Delegates to a policy and records (layer, readingLayer) of every attention report. */
    private static final class Recording implements EvictionPolicy {
        final EvictionPolicy inner;
        final List<int[]> attention = new ArrayList<>();

        Recording(EvictionPolicy inner) {
            this.inner = inner;
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public int protectedTokens() {
            return inner.protectedTokens();
        }

        @Override
        public Tracker newTracker(Shape shape) {
            Tracker t = inner.newTracker(shape);
            return new Tracker() {
                @Override
                public boolean wantsAttention(int layer) {
                    return t.wantsAttention(layer);
                }

                @Override
                public void onAppend(int buffer, BufferView view, int slot) {
                    t.onAppend(buffer, view, slot);
                }

                @Override
                public void onAttention(int buffer, BufferView view, AttentionWeights weights) {
                    attention.add(new int[] {view.layer(), weights.readingLayer()});
                    t.onAttention(buffer, view, weights);
                }

                @Override
                public int chooseVictims(int buffer, BufferView view, Reason reason, int count, int[] victims) {
                    return t.chooseVictims(buffer, view, reason, count, victims);
                }

                @Override
                public void onRemove(int buffer, int slot) {
                    t.onRemove(buffer, slot);
                }

                @Override
                public void onMove(int buffer, int from, int to) {
                    t.onMove(buffer, from, to);
                }

                @Override
                public void reset() {
                    t.reset();
                }
            };
        }
    }
}
