package io.github.kvcache4j;

/**
 * An append needed blocks the {@link KvPool} could not lend. The cache is exactly as it was before
 * the call; the message names the pool's size, what it lends and what the call asked for.
 */
public final class PoolExhaustedException extends IllegalStateException {

    private static final long serialVersionUID = 1L;

    /** Creates the exception with its message. */
    public PoolExhaustedException(String message) {
        super(message);
    }
}
