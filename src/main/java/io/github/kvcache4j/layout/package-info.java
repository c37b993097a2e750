/**
 * The memory layout of stored keys, shared by the kernels that read it, the store that writes it
 * and the config that sizes it. It depends on nothing else in the project. Internal: not exported
 * by the module.
 */
package io.github.kvcache4j.layout;
