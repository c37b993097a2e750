/**
 * Eviction policies behind {@link io.github.kvcache4j.EvictionPolicy}; create them through
 * {@link io.github.kvcache4j.Policies}. Internal: not exported by the module.
 */
package io.github.kvcache4j.policy;
