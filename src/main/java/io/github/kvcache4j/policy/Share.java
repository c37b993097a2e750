package io.github.kvcache4j.policy;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The holders of tracker state that a tracker and its forks share until one of them writes.
 * Shared state is never written: a holder about to write copies it while {@link #othersHold()
 * others hold it}, then {@link #leave() leaves}; the last holder writes in place. The count is
 * atomic because a fork may live on another thread than the tracker it came from.
 */
final class Share {

    private final AtomicInteger holders = new AtomicInteger(1);

    /** Returns this share with one more holder: a fork of the state. */
    Share join() {
        holders.incrementAndGet();
        return this;
    }

    /** Returns whether another holder still reads the state, so a writer must copy it first. */
    boolean othersHold() {
        return holders.get() > 1;
    }

    /** The caller holds the state no longer: it copied it, replaced it or was closed. */
    void leave() {
        holders.decrementAndGet();
    }
}
