package io.github.kvcache4j;

/**
 * Whether a cache broke: set when a policy or feature-map callback throws while the cache is
 * changing, so that its state may be half-updated. Every later call but {@code stats},
 * {@code reset} and {@code close} then fails and names the cause; {@code reset} clears it.
 */
final class Failure {

    private Throwable cause;

    /** Records {@code t} as the cause; the caller rethrows it. */
    void record(Throwable t) {
        cause = t;
    }

    /** Throws if the cache broke earlier. */
    void check() {
        if (cause != null) {
            throw new IllegalStateException("cache failed in an earlier call and must be reset: " + cause, cause);
        }
    }

    void clear() {
        cause = null;
    }
}
