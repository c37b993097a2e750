/**
 * Attention and scoring kernels: a Vector API implementation and a scalar fallback behind
 * {@link io.github.kvcache4j.kernel.Kernels}, selected by
 * {@link io.github.kvcache4j.kernel.KernelProvider}. Internal: not exported by the module.
 */
package io.github.kvcache4j.kernel;
