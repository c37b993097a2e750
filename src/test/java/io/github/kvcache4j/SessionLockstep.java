package io.github.kvcache4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.kvcache4j.testutil.Seeds;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Drives caches of one config through the same random operations (append chunks, attend,
 * compress, reset) and checks after each that they answered alike: bit-identical attention
 * outputs, the same exceptions, resident positions, stored rows and stats.
 */
final class SessionLockstep {

    private final KvCacheConfig config;
    private final SplittableRandom random;
    /** Per layer, the next position to append; -1 for a layer that stores no KV. */
    private final int[] next;
    private int succeeded;

    SessionLockstep(KvCacheConfig config, SplittableRandom random) {
        this.config = config;
        this.random = random;
        this.next = new int[config.layers()];
        for (int l = 0; l < next.length; l++) {
            next[l] = config.isSourceLayer(l) ? 0 : -1;
        }
    }

    /** Returns a driver continuing from this one's positions with its own random operations. */
    SessionLockstep branch(SplittableRandom r) {
        SessionLockstep b = new SessionLockstep(config, r);
        System.arraycopy(next, 0, b.next, 0, next.length);
        return b;
    }

    /** Returns how many operations succeeded on every cache. */
    int succeeded() {
        return succeeded;
    }

    /** Runs {@code steps} random operations on all {@code caches} and checks they agree after each. */
    void run(int steps, List<KvCache> caches) {
        for (int i = 0; i < steps; i++) {
            String op = step(caches);
            agree(caches, "after step " + i + " (" + op + ")");
        }
    }

    /** Runs one random operation on every cache; returns its description. */
    String step(List<KvCache> caches) {
        int kind = random.nextInt(100);
        List<Object> outcomes = new ArrayList<>();
        String op;
        if (kind < 50) {
            int layer = sourceLayer();
            int tokens = 1 + random.nextInt(6);
            int first = next[layer] + random.nextInt(2);
            int row = config.kvHeads() * config.headDim();
            float[] k = Seeds.uniform(random, tokens * row, 2.0);
            float[] v = Seeds.uniform(random, tokens * row, 2.0);
            op = "append layer " + layer + " at " + first + " x" + tokens;
            for (KvCache c : caches) {
                outcomes.add(outcome(() -> c.append(layer, first, tokens, k, v)));
            }
            if (outcomes.get(0) == null) {
                next[layer] = first + tokens;
            }
        } else if (kind < 85) {
            int layer = random.nextInt(config.layers());
            int source = config.sharing().sourceOf(layer);
            int tokens = 1 + random.nextInt(2);
            int first = Math.max(0, next[source] - 1);
            float[] q = Seeds.uniform(random, tokens * config.queryHeads() * config.headDim(), 2.0);
            op = "attend layer " + layer + " at " + first + " x" + tokens;
            for (KvCache c : caches) {
                float[] out = new float[q.length];
                Object failed = outcome(() -> c.attend(layer, first, tokens, q, out));
                outcomes.add(failed == null ? out : failed);
            }
        } else if (kind < 97) {
            boolean byRatio = random.nextBoolean();
            double ratio = random.nextDouble() * 0.6;
            int target = random.nextInt(config.capacity());
            op = byRatio ? "compress ratio " + ratio : "compress to " + target;
            for (KvCache c : caches) {
                outcomes.add(outcome(() -> {
                    if (byRatio) {
                        c.compress(ratio);
                    } else {
                        c.compress(target);
                    }
                }));
            }
        } else {
            op = "reset";
            for (KvCache c : caches) {
                outcomes.add(outcome(c::reset));
            }
            for (int l = 0; l < next.length; l++) {
                next[l] = next[l] < 0 ? -1 : 0;
            }
        }
        for (int i = 1; i < outcomes.size(); i++) {
            Object a = outcomes.get(0);
            Object b = outcomes.get(i);
            if (a instanceof float[] x && b instanceof float[] y) {
                assertArrayEquals(x, y, op + ": outputs of cache " + i + " differ");
            } else {
                assertEquals(a, b, op + ": cache " + i + " answered differently");
            }
        }
        if (outcomes.get(0) == null || outcomes.get(0) instanceof float[]) {
            succeeded++;
        }
        return op;
    }

    /** Checks that all caches hold the same positions, rows and stats. */
    void agree(List<KvCache> caches, String when) {
        KvCache first = caches.get(0);
        for (int i = 1; i < caches.size(); i++) {
            KvCache other = caches.get(i);
            assertEquals(first.stats(), other.stats(), when + ": stats of cache " + i);
            for (int l = 0; l < config.layers(); l++) {
                for (int h = 0; h < config.kvHeads(); h++) {
                    assertArrayEquals(contents(first, l, h), contents(other, l, h),
                            when + ": layer " + l + ", kv-head " + h + " of cache " + i);
                }
            }
        }
    }

    /** Returns positions, keys and values of one buffer as raw bits, in slot order. */
    static int[] contents(KvCache cache, int layer, int kvHead) {
        int d = cache.config().headDim();
        int[] pos = cache.positions(layer, kvHead);
        float[] k = new float[pos.length * d];
        float[] v = new float[pos.length * d];
        cache.read(layer, kvHead, k, v);
        int[] all = Arrays.copyOf(pos, pos.length + 2 * k.length);
        for (int i = 0; i < k.length; i++) {
            all[pos.length + i] = Float.floatToRawIntBits(k[i]);
            all[pos.length + k.length + i] = Float.floatToRawIntBits(v[i]);
        }
        return all;
    }

    private int sourceLayer() {
        int layer;
        do {
            layer = random.nextInt(config.layers());
        } while (!config.isSourceLayer(layer));
        return layer;
    }

    /** Returns null when {@code call} succeeds, else its exception's class and message. */
    private static Object outcome(Runnable call) {
        try {
            call.run();
            return null;
        } catch (RuntimeException e) {
            return e.getClass().getName() + ": " + e.getMessage();
        }
    }
}
