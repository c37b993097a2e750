/** Public API of kvcache4j: {@link io.github.kvcache4j.KvCache} and its configuration. */
package io.github.kvcache4j;
