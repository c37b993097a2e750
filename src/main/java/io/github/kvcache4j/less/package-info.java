/**
 * LESS (Dong et al. 2024, arXiv 2402.09398): a constant-size residual state per (source layer,
 * kv-head) that remembers, through a low-rank feature map, what eviction dropped. Enable it with
 * {@link io.github.kvcache4j.KvCacheConfig.Builder#less}; {@link io.github.kvcache4j.less.FeatureMap}
 * creates the feature maps. The residual state itself is internal to the cache.
 */
package io.github.kvcache4j.less;
