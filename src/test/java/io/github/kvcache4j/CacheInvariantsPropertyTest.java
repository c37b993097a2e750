package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.spi.EveryKthPolicy;
import io.github.kvcache4j.testutil.Reference;
import io.github.kvcache4j.testutil.Seeds;
import io.github.kvcache4j.testutil.Snapshot;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.IntBinaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Random interleavings of append, attend, compress and reset over random shapes, storage types
 * (Q8 and Q4 with and without key rotation among them), policies and configuration variants; after every step the cache must satisfy its invariants:
 * capacity, protected tokens, unique and past positions, stable contents, attention equal to a
 * float64 reference over what {@link KvCache#read} returns, and {@link CacheStats} consistent with
 * {@link KvCache#positions}. A seed printed per policy replays a run ({@code -Dkvcache4j.seed=}).
 */
class CacheInvariantsPropertyTest {

    private static final int CASES = Integer.getInteger("kvcache4j.propertyCases", 1000);
    private static final int STEPS = 40;
    private static final int[] HEAD_DIMS = {16, 24, 64};
    /** Head dimensions of Q8 and Q4 cases: whole groups of 32. */
    private static final int[] QUANTIZED_HEAD_DIMS = {32, 64};
    private static final int[] GROUPS = {1, 2, 4};
    private static final ValueLayout.OfFloat NATIVE_FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.nativeOrder());

    /** Sets an optional feature on a builder of a config with the given number of layers. */
    @FunctionalInterface
    interface Feature {
        KvCacheConfig.Builder apply(KvCacheConfig.Builder b, int layers, SplittableRandom r);
    }

    /** A named configuration variant; the cases cycle through all of them. */
    record Variant(String name, int minLayers, Feature feature) {
    }

    /** Every configuration variant the properties run under; a new feature adds one line. */
    static final List<Variant> VARIANTS = List.of(
            new Variant("own KV per layer", 1, (b, layers, r) -> b),
            new Variant("cross-layer sharing", 2, (b, layers, r) -> b.kvSourceLayers(randomSharing(layers, r))));

    /**
     * What a policy promises never to evict: the first {@code sinks} tokens appended since the
     * last reset, and in every eviction step the newest {@code recent(residentBefore, evicted)}
     * tokens resident before the step.
     */
    record Protection(int sinks, IntBinaryOperator recent) {
        static final Protection NONE = new Protection(0, (n, gone) -> 0);

        static Protection newest(int r) {
            return new Protection(0, (n, gone) -> r);
        }
    }

    /** A policy instance for one case, its protection rule and whether appends beyond capacity fail. */
    record PolicyCase(EvictionPolicy policy, Protection protection, boolean neverEvictsOnAppend) {
    }

    @FunctionalInterface
    interface PolicyMaker {
        PolicyCase make(int capacity, SplittableRandom r);
    }

    /**
     * The policies of {@link Policies}, with random parameters that fit the capacity
     * (docs/policies.md), and a policy written against the public SPI ({@link EveryKthPolicy}).
     */
    static Stream<String> policies() {
        return Stream.of("full", "streamingLlm", "knorm", "corm", "h2o", "observedAttention", "snapKv", "tova",
                "keyDiff", "expectedAttention", "everyKth");
    }

    private static PolicyMaker maker(String name) {
        return switch (name) {
            case "full" -> (c, r) -> new PolicyCase(Policies.full(), Protection.NONE, true);
            case "streamingLlm" -> (c, r) -> {
                int sinks = c > Policies.DEFAULT_SINKS && r.nextBoolean() ? Policies.DEFAULT_SINKS : r.nextInt(c);
                EvictionPolicy p = sinks == Policies.DEFAULT_SINKS ? Policies.streamingLlm() : Policies.streamingLlm(sinks);
                return new PolicyCase(p, new Protection(sinks, (n, gone) -> 0), false);
            };
            case "knorm" -> (c, r) -> new PolicyCase(r.nextBoolean() ? Policies.knorm() : Policies.knorm(r.nextInt(4), 0),
                    Protection.NONE, false);
            case "corm" -> (c, r) -> {
                if (c > Policies.DEFAULT_CORM_RECENT && r.nextBoolean()) {
                    return new PolicyCase(Policies.corm(), Protection.newest(Policies.DEFAULT_CORM_RECENT), false);
                }
                int recent = r.nextInt(c);
                boolean hard = r.nextInt(4) != 0;
                EvictionPolicy p = Policies.corm(r.nextInt(1, 9), recent, new double[] {0.5, 1, 2}[r.nextInt(3)], hard);
                return new PolicyCase(p, Protection.newest(recent), !hard);
            };
            case "h2o" -> (c, r) -> {
                double f = r.nextBoolean() ? Policies.DEFAULT_H2O_RECENT_FRACTION : r.nextInt(10) / 10.0;
                EvictionPolicy p = f == Policies.DEFAULT_H2O_RECENT_FRACTION ? Policies.h2o() : Policies.h2o(f);
                return new PolicyCase(p, new Protection(0, (n, gone) -> (int) Math.floor(f * (n - gone))), false);
            };
            case "observedAttention" -> (c, r) -> new PolicyCase(Policies.observedAttention(), Protection.NONE, false);
            case "snapKv" -> (c, r) -> {
                if (c > Policies.DEFAULT_SNAPKV_WINDOW && r.nextBoolean()) {
                    return new PolicyCase(Policies.snapKv(), Protection.newest(Policies.DEFAULT_SNAPKV_WINDOW), false);
                }
                int window = r.nextInt(1, c);
                return new PolicyCase(Policies.snapKv(window, 2 * r.nextInt(3) + 1), Protection.newest(window), false);
            };
            case "tova" -> (c, r) -> new PolicyCase(Policies.tova(), Protection.newest(1), false);
            case "keyDiff" -> (c, r) -> new PolicyCase(Policies.keyDiff(), Protection.NONE, false);
            // One rotated pair fits every head dimension of the cases; the sinks rank first but
            // are not reserved, so no protection is asserted.
            case "expectedAttention" -> (c, r) -> new PolicyCase(Policies.expectedAttention(Rope.of(10000, 2,
                    r.nextBoolean()), r.nextInt(1, 600), r.nextInt(6), r.nextBoolean(), r.nextBoolean(),
                    r.nextInt(3) / 100.0), Protection.NONE, false);
            case "everyKth" -> (c, r) -> {
                int window = r.nextInt(c);
                return new PolicyCase(new EveryKthPolicy(r.nextInt(1, 5), window), Protection.newest(window), false);
            };
            default -> throw new IllegalArgumentException(name);
        };
    }

    static int[] randomSharing(int layers, SplittableRandom r) {
        int[] sources = new int[layers];
        List<Integer> sourceLayers = new ArrayList<>(List.of(0));
        for (int l = 1; l < layers; l++) {
            boolean share = l == layers - 1 && sourceLayers.size() == l || r.nextBoolean();
            sources[l] = share ? sourceLayers.get(r.nextInt(sourceLayers.size())) : l;
            if (!share) {
                sourceLayers.add(l);
            }
        }
        return sources;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("policies")
    void randomOperationSequencesKeepEveryInvariant(String policyName) {
        long seed = Seeds.fresh("randomOperationSequencesKeepEveryInvariant " + policyName);
        SplittableRandom master = new SplittableRandom(seed);
        PolicyMaker maker = maker(policyName);
        long start = System.nanoTime();
        long[] counts = new long[Count.values().length];
        for (int i = 0; i < CASES; i++) {
            long caseSeed = master.nextLong();
            Variant variant = VARIANTS.get(i % VARIANTS.size());
            DType dtype = DType.values()[(i / VARIANTS.size()) % DType.values().length];
            new Run(seed, i, caseSeed, variant, dtype, maker, counts).run();
        }
        System.out.printf("%s: %d cases in %.1f s; %s%n", policyName, CASES, (System.nanoTime() - start) / 1e9,
                Arrays.stream(Count.values()).map(c -> c + "=" + counts[c.ordinal()]).toList());
        assertTrue(counts[Count.EVICTED.ordinal()] > 0 || policyName.equals("full"), "no eviction exercised, seed " + seed);
        assertTrue(counts[Count.ATTENTION_CHECKS.ordinal()] > CASES, "too few attention checks, seed " + seed);
    }

    /** What the runs exercised, printed so a property that silently checks nothing shows up. */
    enum Count { STEPS, ATTENTION_CHECKS, EVICTED, REJECTED_APPENDS, BUDGETS, REJECTED_BUDGETS }

    /** One random case: a configuration and a sequence of operations with checks after each. */
    private static final class Run {
        private final SplittableRandom r;
        private final String where;
        private final KvCacheConfig config;
        private final PolicyCase policy;
        private final int layers;
        private final int kvHeads;
        private final int queryHeads;
        private final int d;
        private final int capacity;
        private final int[] sources;
        private final int[] last;
        /** Per source layer, the positions appended since the last reset, in order. */
        private final List<List<Integer>> appended = new ArrayList<>();
        /** Per source buffer (layer * kvHeads + head): the stored key and value rows by position. */
        private final List<Map<Integer, float[]>> stored = new ArrayList<>();
        private final float[] k;
        private final float[] v;
        private final long[] counts;
        private long evicted;
        private int step;
        private String op = "create";

        Run(long seed, int index, long caseSeed, Variant variant, DType dtype, PolicyMaker maker, long[] counts) {
            this.counts = counts;
            this.r = new SplittableRandom(caseSeed);
            this.layers = r.nextInt(Math.max(1, variant.minLayers()), 4);
            this.kvHeads = r.nextInt(1, 3);
            this.queryHeads = kvHeads * GROUPS[r.nextInt(GROUPS.length)];
            this.d = dtype.isQuantized() ? QUANTIZED_HEAD_DIMS[r.nextInt(QUANTIZED_HEAD_DIMS.length)]
                    : HEAD_DIMS[r.nextInt(HEAD_DIMS.length)];
            this.capacity = r.nextInt(7) == 0 ? r.nextInt(66, 73) : r.nextInt(2, 21);
            this.policy = maker.make(capacity, r);
            KvCacheConfig.Builder b = KvCacheConfig.builder().layers(layers).kvHeads(kvHeads).queryHeads(queryHeads)
                    .headDim(d).capacity(capacity).dtype(dtype).policy(policy.policy());
            if (dtype.isQuantized() && r.nextBoolean()) {
                b.keyRotation(r.nextLong());
            }
            this.config = variant.feature().apply(b, layers, r).build();
            this.sources = config.kvSourceLayers();
            this.last = new int[layers];
            for (int l = 0; l < layers; l++) {
                appended.add(new ArrayList<>());
                for (int h = 0; h < kvHeads; h++) {
                    stored.add(new HashMap<>());
                }
            }
            Arrays.fill(last, -1);
            this.k = new float[capacity * d];
            this.v = new float[capacity * d];
            this.where = "seed " + seed + " case " + index + " (" + variant.name() + ", " + config + ")";
        }

        private String at() {
            return where + " step " + step + " " + op;
        }

        void run() {
            KvCache cache = KvCache.create(config);
            long reserved = cache.stats().reservedBytes();
            assertTrue(reserved > 0, at());
            try (Arena arena = Arena.ofConfined()) {
                for (step = 0; step < STEPS; step++) {
                    int[][] before = residentPositions(cache);
                    int choice = r.nextInt(100);
                    if (choice < 30) {
                        append(cache, 1, null, before);
                    } else if (choice < 45) {
                        append(cache, r.nextInt(1, Math.min(capacity, 6) + 1), null, before);
                    } else if (choice < 55) {
                        append(cache, r.nextInt(1, Math.min(capacity, 6) + 1), arena, before);
                    } else if (choice < 75) {
                        attend(cache, 1, before);
                    } else if (choice < 87) {
                        attend(cache, r.nextInt(1, Math.min(capacity, 5) + 1), before);
                    } else if (choice < 92) {
                        double ratio = r.nextInt(4) == 0 ? 0.0 : r.nextDouble(0.0, 0.95);
                        if (r.nextBoolean()) {
                            Allocation a = randomAllocation();
                            budgetCompress(cache, before, "compress(" + ratio + ", " + a + ")",
                                    () -> cache.compress(ratio, a), Long.MAX_VALUE, Long.MAX_VALUE);
                        } else {
                            op = "compress(" + ratio + ")";
                            cache.compress(ratio);
                        }
                    } else if (choice < 97) {
                        int kind = r.nextInt(3);
                        Allocation a = randomAllocation();
                        CacheStats now = cache.stats();
                        if (kind == 0) {
                            int target = r.nextInt(capacity + 2);
                            op = "compress(" + target + ")";
                            cache.compress(target);
                        } else if (kind == 1) {
                            long tokens = r.nextLong(sourceResident(now) + 2);
                            budgetCompress(cache, before, "compressToTokens(" + tokens + ", " + a + ")",
                                    () -> cache.compressToTokens(tokens, a), tokens, Long.MAX_VALUE);
                        } else {
                            long bytes = r.nextLong(now.heldBytes() + now.stateBytes() + 2);
                            budgetCompress(cache, before, "compressToBytes(" + bytes + ", " + a + ")",
                                    () -> cache.compressToBytes(bytes, a), Long.MAX_VALUE, bytes);
                        }
                    } else {
                        op = "reset";
                        cache.reset();
                        evicted = 0;
                        Arrays.fill(last, -1);
                        appended.forEach(List::clear);
                        stored.forEach(Map::clear);
                        before = residentPositions(cache);
                    }
                    checkInvariants(cache, before, reserved);
                    counts[Count.STEPS.ordinal()]++;
                }
            } finally {
                cache.close();
            }
            assertEquals(0, cache.stats().reservedBytes(), at() + ": reservedBytes after close");
            cache.close();
        }

        private Allocation randomAllocation() {
            return switch (r.nextInt(3)) {
                case 0 -> Allocation.uniform();
                case 1 -> Allocation.pyramid(r.nextDouble(1, 20));
                default -> Allocation.adaptive(r.nextDouble(1, 4), r.nextDouble());
            };
        }

        private long sourceResident(CacheStats stats) {
            long n = 0;
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads && sources[l] == l; h++) {
                    n += stats.resident(l, h);
                }
            }
            return n;
        }

        /**
         * Runs a budgeted compress: a budget the cache cannot meet (below what the allocation keeps
         * at least, or a head-wise rule with a policy without keep scores) must be rejected with
         * the cache unchanged; a met budget must hold.
         */
        private void budgetCompress(KvCache cache, int[][] before, String name, Runnable call, long tokens, long bytes) {
            op = name;
            try {
                call.run();
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage().contains("below") || e.getMessage().contains("keepScores")
                                || e.getMessage().contains("protects the rest"),
                        at() + ": unexpected rejection " + e.getMessage());
                int[][] after = residentPositions(cache);
                for (int b = 0; b < before.length; b++) {
                    assertArrayEquals(before[b], after[b], at() + ": a rejected compress changed buffer " + b);
                }
                counts[Count.REJECTED_BUDGETS.ordinal()]++;
                return;
            }
            CacheStats stats = cache.stats();
            assertTrue(sourceResident(stats) <= tokens, at() + ": " + sourceResident(stats) + " tokens resident");
            assertTrue(stats.heldBytes() + stats.stateBytes() <= bytes, at() + ": " + stats + " over the budget");
            counts[Count.BUDGETS.ordinal()]++;
        }

        private int[][] residentPositions(KvCache cache) {
            int[][] p = new int[layers * kvHeads][];
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    p[l * kvHeads + h] = cache.positions(l, h);
                }
            }
            return p;
        }

        private int randomSourceLayer() {
            int l;
            do {
                l = r.nextInt(layers);
            } while (sources[l] != l);
            return l;
        }

        private void append(KvCache cache, int tokens, Arena arena, int[][] before) {
            int layer = randomSourceLayer();
            int first = last[layer] + 1 + (r.nextInt(4) == 0 ? r.nextInt(1, 5) : 0);
            int row = kvHeads * d;
            float[] keys = Seeds.uniform(r, tokens * row, 1);
            float[] values = Seeds.uniform(r, tokens * row, 1);
            op = (arena == null ? "append(float[])" : "append(MemorySegment)") + " layer " + layer
                    + " positions " + first + ".." + (first + tokens - 1);
            int fullest = 0;
            for (int h = 0; h < kvHeads; h++) {
                fullest = Math.max(fullest, before[layer * kvHeads + h].length);
            }
            boolean overflows = fullest + tokens > capacity;
            Runnable call;
            if (arena == null) {
                call = () -> cache.append(layer, first, tokens, keys, values);
            } else {
                MemorySegment ks = arena.allocate(keys.length * 4L);
                MemorySegment vs = arena.allocate(values.length * 4L);
                MemorySegment.copy(keys, 0, ks, NATIVE_FLOAT, 0, keys.length);
                MemorySegment.copy(values, 0, vs, NATIVE_FLOAT, 0, values.length);
                call = () -> cache.append(layer, first, tokens, ks, vs);
            }
            if (overflows && policy.neverEvictsOnAppend()) {
                Snapshot snapshot = Snapshot.of(cache);
                assertThrows(IllegalStateException.class, call::run, at() + ": must not fit");
                assertEquals(snapshot, Snapshot.of(cache), at() + ": cache changed by a rejected append");
                counts[Count.REJECTED_APPENDS.ordinal()]++;
                return;
            }
            if (overflows && tokens > capacity - policy.policy().protectedTokens()) {
                // The chunk may need protected slots: either it fits or it is rejected cleanly.
                Snapshot snapshot = Snapshot.of(cache);
                try {
                    call.run();
                } catch (IllegalStateException e) {
                    assertEquals(snapshot, Snapshot.of(cache), at() + ": cache changed by a rejected append");
                    counts[Count.REJECTED_APPENDS.ordinal()]++;
                    return;
                }
            } else {
                call.run();
            }
            last[layer] = first + tokens - 1;
            for (int t = 0; t < tokens; t++) {
                appended.get(layer).add(first + t);
            }
            for (int h = 0; h < kvHeads; h++) {
                int n = cache.read(layer, h, k, v);
                int[] pos = cache.positions(layer, h);
                Map<Integer, float[]> rows = stored.get(layer * kvHeads + h);
                for (int j = 0; j < n; j++) {
                    int t = pos[j] - first;
                    if (t >= 0) {
                        float[] kv = new float[2 * d];
                        System.arraycopy(k, j * d, kv, 0, d);
                        System.arraycopy(v, j * d, kv, d, d);
                        rows.put(pos[j], kv);
                        if (config.dtype() == DType.F32) {
                            assertArrayEquals(Arrays.copyOfRange(keys, t * row + h * d, t * row + h * d + d),
                                    Arrays.copyOfRange(kv, 0, d), at() + ": F32 key stored exactly");
                            assertArrayEquals(Arrays.copyOfRange(values, t * row + h * d, t * row + h * d + d),
                                    Arrays.copyOfRange(kv, d, 2 * d), at() + ": F32 value stored exactly");
                        }
                    }
                }
            }
        }

        private void attend(KvCache cache, int tokens, int[][] before) {
            int layer = r.nextInt(layers);
            int src = sources[layer];
            int earliest = -1;
            for (int h = 0; h < kvHeads; h++) {
                int[] pos = before[src * kvHeads + h];
                if (pos.length == 0) {
                    op = "attend skipped (empty)";
                    return;
                }
                earliest = Math.max(earliest, Arrays.stream(pos).min().getAsInt());
            }
            int first = r.nextInt(earliest, Math.max(earliest, last[src]) + 2);
            int row = queryHeads * d;
            float[] q = Seeds.uniform(r, tokens * row, r.nextBoolean() ? 1 : 4);
            float[] out = new float[tokens * row];
            op = "attend layer " + layer + " positions " + first + ".." + (first + tokens - 1);
            float[][] keys = new float[kvHeads][];
            float[][] values = new float[kvHeads][];
            int[][] pos = new int[kvHeads][];
            for (int h = 0; h < kvHeads; h++) {
                keys[h] = new float[capacity * d];
                values[h] = new float[capacity * d];
                cache.read(layer, h, keys[h], values[h]);
                pos[h] = cache.positions(layer, h);
            }
            cache.attend(layer, first, tokens, q, out);
            int group = queryHeads / kvHeads;
            for (int t = 0; t < tokens; t++) {
                int p = first + t;
                for (int h = 0; h < kvHeads; h++) {
                    int n = pos[h].length;
                    boolean[] visible = new boolean[n];
                    for (int j = 0; j < n; j++) {
                        visible[j] = pos[h][j] <= p;
                    }
                    for (int g = 0; g < group; g++) {
                        int off = t * row + (h * group + g) * d;
                        double[] ref = Reference.attention(q, off, keys[h], values[h], n, d, 1 / Math.sqrt(d), visible);
                        // 1e-5 for every dtype: the reference reads the stored (already rounded) halves
                        // back, so only the kernel's float arithmetic differs, as for F32.
                        double err = Reference.relativeError(out, off, ref);
                        assertTrue(err <= 1e-5, at() + ": query " + t + " head " + (h * group + g)
                                + " relative error " + err);
                        counts[Count.ATTENTION_CHECKS.ordinal()]++;
                    }
                }
            }
        }

        private void checkInvariants(KvCache cache, int[][] before, long reserved) {
            CacheStats stats = cache.stats();
            long residentSlots = 0;
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    int b = l * kvHeads + h;
                    int[] pos = cache.positions(l, h);
                    int n = cache.read(l, h, k, v);
                    assertEquals(n, pos.length, at() + ": read and positions disagree");
                    assertEquals(n, stats.resident(l, h), at() + ": stats.resident(" + l + ", " + h + ")");
                    assertTrue(n <= capacity, at() + ": " + n + " resident exceed capacity " + capacity);
                    if (sources[l] != l) {
                        assertArrayEquals(cache.positions(sources[l], h), pos, at() + ": layer " + l
                                + " must see the tokens of its source " + sources[l]);
                        continue;
                    }
                    residentSlots += n;
                    Set<Integer> unique = new HashSet<>();
                    for (int j = 0; j < n; j++) {
                        assertTrue(unique.add(pos[j]), at() + ": position " + pos[j] + " twice in " + l + "/" + h);
                        assertTrue(pos[j] <= last[l], at() + ": position " + pos[j] + " after the newest " + last[l]);
                        float[] kv = stored.get(b).get(pos[j]);
                        assertTrue(kv != null, at() + ": position " + pos[j] + " resident but never appended");
                        assertArrayEquals(Arrays.copyOfRange(kv, 0, d), Arrays.copyOfRange(k, j * d, j * d + d),
                                at() + ": key of position " + pos[j] + " changed");
                        assertArrayEquals(Arrays.copyOfRange(kv, d, 2 * d), Arrays.copyOfRange(v, j * d, j * d + d),
                                at() + ": value of position " + pos[j] + " changed");
                    }
                    checkProtected(l, h, before[b], unique);
                    int gone = 0;
                    for (int p : before[b]) {
                        gone += unique.contains(p) ? 0 : 1;
                    }
                    evicted += gone;
                    counts[Count.EVICTED.ordinal()] += gone;
                    for (int p : before[b]) {
                        if (!unique.contains(p)) {
                            stored.get(b).remove(p);
                        }
                    }
                }
            }
            assertEquals(evicted, stats.evicted(), at() + ": stats.evicted");
            assertEquals(residentSlots * 2L * config.dtype().rowBytes(d), stats.residentBytes(), at() + ": residentBytes");
            assertEquals(reserved, stats.reservedBytes(), at() + ": reservedBytes");
            assertTrue(stats.stateBytes() >= 0, at() + ": stateBytes");
        }

        private void checkProtected(int layer, int h, int[] before, Set<Integer> after) {
            List<Integer> gone = new ArrayList<>();
            for (int p : before) {
                if (!after.contains(p)) {
                    gone.add(p);
                }
            }
            if (gone.isEmpty()) {
                return;
            }
            if (policy.neverEvictsOnAppend() && policy.policy() == Policies.full()) {
                fail(at() + ": policy full evicted " + gone);
            }
            List<Integer> sinks = appended.get(layer).subList(0, Math.min(policy.protection().sinks(), appended.get(layer).size()));
            for (int p : sinks) {
                if (!after.contains(p)) {
                    fail(at() + ": sink position " + p + " of " + layer + "/" + h + " evicted");
                }
            }
            int recent = policy.protection().recent().applyAsInt(before.length, gone.size());
            int[] sorted = before.clone();
            Arrays.sort(sorted);
            for (int i = Math.max(0, sorted.length - recent); i < sorted.length; i++) {
                if (!after.contains(sorted[i])) {
                    fail(at() + ": position " + sorted[i] + " of " + layer + "/" + h + " is among the newest "
                            + recent + " of " + Arrays.toString(sorted) + " but was evicted");
                }
            }
        }
    }
}
