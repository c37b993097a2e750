/**
 * Cross-layer KV sharing: {@link io.github.kvcache4j.sharing.SharingPlan}, which layer's KV each
 * layer reads (from code or an LCKV {@code layer_types} string; the reference decoder reads a
 * model's plan from its GGUF file, and the evaluator calibrates training-free plans for a model
 * trained without sharing). See {@code docs/sharing.md}.
 */
package io.github.kvcache4j.sharing;
