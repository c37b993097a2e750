package io.github.kvcache4j;

import java.io.IOException;

/**
 * Bytes that {@link KvCache#load} cannot load: not a saved cache, another format version, a
 * section whose CRC32C does not match, a truncated file, a size or count outside its bounds, a
 * value that cannot occur in a cache, or a configuration that does not match the caller's. The
 * message names the section and the field. Nothing a failed load allocated stays allocated.
 */
public final class CacheFormatException extends IOException {

    private static final long serialVersionUID = 1L;

    /** Creates the exception with its message. */
    public CacheFormatException(String message) {
        super(message);
    }

    /** Creates the exception with its message and the failure behind it. */
    public CacheFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
