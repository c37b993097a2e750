package io.github.kvcache4j.policy;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A tracker's side of state that it shares with its forks until one of them writes. Shared state
 * is never written: a holder about to write ({@link #beforeWrite}) first makes its own copy while
 * another holder still reads the state, then leaves; the last holder writes in place. The count of
 * holders is atomic because a fork may live on another thread than the tracker it came from.
 */
final class CopyOnWrite {

    /** Gives the tracker state of its own, a copy of what it shares. */
    private final Runnable copy;
    /** The holders of the state this tracker shares; null while it shares nothing. */
    private AtomicInteger holders;

    /** @param copy replaces the tracker's shared state by a copy of its own */
    CopyOnWrite(Runnable copy) {
        this.copy = copy;
    }

    /** The tracker's state was handed to the fork owning {@code other}: both now share it. */
    void shareWith(CopyOnWrite other) {
        if (holders == null) {
            holders = new AtomicInteger(1);
        }
        holders.incrementAndGet();
        other.holders = holders;
    }

    /** Returns whether the tracker shares its state. */
    boolean isShared() {
        return holders != null;
    }

    /**
     * The tracker is about to write its state: copies it while another holder still reads it, then
     * leaves. Copying before leaving keeps the last holder from writing in place during the copy.
     */
    void beforeWrite() {
        AtomicInteger h = holders;
        if (h != null) {
            if (h.get() > 1) {
                copy.run();
            }
            h.decrementAndGet();
            holders = null;
        }
    }

    /** The tracker replaced its state or was closed: it holds the shared state no longer. */
    void release() {
        AtomicInteger h = holders;
        if (h != null) {
            holders = null;
            h.decrementAndGet();
        }
    }
}
