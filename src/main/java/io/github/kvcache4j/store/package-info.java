/** Off-heap slot storage and the F32/F16/BF16 codecs. Internal: not exported by the module. */
package io.github.kvcache4j.store;
