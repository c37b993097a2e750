/**
 * Cross-layer KV sharing: {@link io.github.kvcache4j.sharing.SharingPlan} (which layer's KV each
 * layer reads, from code, LCKV {@code layer_types} or GGUF) and
 * {@link io.github.kvcache4j.sharing.SharingCalibration}, which chooses training-free plans for a
 * model trained without sharing. See {@code docs/sharing.md}.
 */
package io.github.kvcache4j.sharing;
