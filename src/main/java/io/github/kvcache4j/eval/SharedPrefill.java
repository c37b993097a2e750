package io.github.kvcache4j.eval;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.policy.SnapKvPolicy;
import io.github.kvcache4j.policy.TovaPolicy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * Prefills one context into a cache per configuration and compresses each to its ratio. Under
 * the kvpress protocol nothing is evicted during the prefill, so every cache sees the same
 * keys, values and attention: the model runs once for all of them ({@link LockstepCache}) and
 * only attention runs per cache. Configurations that share one recipe (the same object: one
 * policy at several ratios) share one prefill too: the first is prefilled and the others are
 * {@linkplain KvCache#fork() forks} of it, taken before any compression, so a policy observes
 * the prefill's attention once however many ratios it is measured at. A cache that evicted
 * during that pass anyway (a policy with an adaptive budget, CORM) is prefilled again on its
 * own, since from its first eviction on its attention output differs from the others'; if it was
 * the first cache, whose output fed the model, the rest of the group is prefilled again too. Its
 * policy is remembered and prefilled alone from then on (by name).
 */
final class SharedPrefill {

    /**
     * One configuration: a cache recipe at a compression ratio.
     *
     * @param recipe how the cache is built
     * @param ratio fraction of the context removed after the prefill (0: none)
     */
    record Config(CacheRecipe recipe, double ratio) {
    }

    /**
     * A prefilled, compressed cache.
     *
     * @param cache the cache; the caller closes it
     * @param lastLogits the logits of the last context token (computed before compression)
     * @param bytesBeforeCompress resident KV bytes after the prefill, before compression
     */
    record Prefilled(KvCache cache, float[] lastLogits, long bytesBeforeCompress) {
    }

    /** Most caches prefilled in one pass; bounds the off-heap memory of a pass. */
    static final int MAX_GROUP = 32;

    private final EvalModel eval;
    private final Set<String> alonePolicies = new HashSet<>();

    SharedPrefill(EvalModel eval) {
        this.eval = eval;
    }

    /**
     * Prefills {@code context} (positions {@code 0 ..}) into a cache of {@code capacity} tokens per
     * configuration, then compresses each to {@code floor(context.length * (1 - ratio))} (per buffer,
     * or in total as the recipe's allocation shares it). Caches
     * are returned in the order of {@code configs}; on an exception every cache made is closed.
     */
    List<Prefilled> run(List<Config> configs, int[] context, int capacity) {
        Prefilled[] out = new Prefilled[configs.size()];
        try {
            List<Integer> shared = new ArrayList<>();
            Map<CacheRecipe, Integer> firstOf = new IdentityHashMap<>();
            int[] forkOf = new int[configs.size()];
            for (int i = 0; i < configs.size(); i++) {
                CacheRecipe recipe = configs.get(i).recipe();
                Integer first = firstOf.putIfAbsent(recipe, i);
                forkOf[i] = first == null ? -1 : first;
                if (first != null) {
                    continue;
                }
                if (recipe.sharing() != null || alonePolicies.contains(recipe.policy().name())) {
                    out[i] = alone(recipe, context, capacity);
                } else {
                    shared.add(i);
                }
            }
            for (int g = 0; g < shared.size(); g += MAX_GROUP) {
                lockstep(configs, shared.subList(g, Math.min(shared.size(), g + MAX_GROUP)), context, capacity, out);
            }
            for (int i = 0; i < out.length; i++) {
                if (forkOf[i] >= 0) {
                    Prefilled source = out[forkOf[i]];
                    out[i] = new Prefilled(source.cache().fork(), source.lastLogits(), 0);
                }
            }
            for (int i = 0; i < out.length; i++) {
                KvCache cache = out[i].cache();
                out[i] = new Prefilled(cache, out[i].lastLogits(), cache.stats().residentBytes());
                double ratio = configs.get(i).ratio();
                if (ratio > 0) {
                    configs.get(i).recipe().compress(cache, eval, context.length, ratio);
                }
            }
            return Arrays.asList(out);
        } catch (RuntimeException e) {
            for (Prefilled p : out) {
                if (p != null) {
                    p.cache().close();
                }
            }
            throw e;
        }
    }

    /**
     * Prefills as {@link #run} does, applies {@code task} to each cache in the order of
     * {@code configs}, closes the caches and returns the task's results.
     */
    <R> List<R> map(List<Config> configs, int[] context, int capacity, Function<Prefilled, R> task) {
        List<Prefilled> caches = run(configs, context, capacity);
        try {
            List<R> results = new ArrayList<>();
            for (Prefilled p : caches) {
                results.add(task.apply(p));
            }
            return results;
        } finally {
            caches.forEach(p -> p.cache().close());
        }
    }

    private void lockstep(List<Config> configs, List<Integer> group, int[] context, int capacity, Prefilled[] out) {
        List<KvCache> caches = new ArrayList<>();
        for (int i : group) {
            KvCache cache = eval.newCache(configs.get(i).recipe(), capacity);
            out[i] = new Prefilled(cache, null, 0);
            caches.add(cache);
        }
        int[] observeFrom = group.stream().mapToInt(i -> firstObserved(configs.get(i).recipe(), context.length)).toArray();
        float[] logits = eval.prefill(new LockstepCache(caches, observeFrom), context, 0, context.length, 0);
        if (caches.getFirst().stats().evicted() > 0) {
            // The first cache's attention drove the model, so every cache of the group holds keys
            // and values of a perturbed pass: prefill its policy alone and the rest again.
            int first = group.getFirst();
            alonePolicies.add(configs.get(first).recipe().policy().name());
            caches.forEach(KvCache::close);
            out[first] = alone(configs.get(first).recipe(), context, capacity);
            if (group.size() > 1) {
                lockstep(configs, group.subList(1, group.size()), context, capacity, out);
            }
            return;
        }
        for (int i : group) {
            if (out[i].cache().stats().evicted() > 0) {
                out[i].cache().close();
                CacheRecipe recipe = configs.get(i).recipe();
                alonePolicies.add(recipe.policy().name());
                out[i] = alone(recipe, context, capacity);
            } else {
                out[i] = new Prefilled(out[i].cache(), logits, 0);
            }
        }
    }

    /**
     * Returns the first query position of a {@code contextLength}-token prefill on which the
     * compression of {@code recipe}'s policy depends: SnapKV scores by its observation window
     * alone (its ring holds no older query), TOVA by the last query alone; other policies
     * accumulate over every query.
     */
    static int firstObserved(CacheRecipe recipe, int contextLength) {
        return switch (recipe.policy()) {
            case SnapKvPolicy snap -> Math.max(0, contextLength - snap.window());
            case TovaPolicy tova -> contextLength - 1;
            default -> 0;
        };
    }

    private Prefilled alone(CacheRecipe recipe, int[] context, int capacity) {
        KvCache cache = eval.newCache(recipe, capacity);
        try {
            return new Prefilled(cache, eval.prefill(cache, context, 0, context.length, 0), 0);
        } catch (RuntimeException e) {
            cache.close();
            throw e;
        }
    }
}
