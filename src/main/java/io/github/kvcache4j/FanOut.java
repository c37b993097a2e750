package io.github.kvcache4j;

import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs a fixed set of tasks on an executor and waits for them, without allocating per round.
 * The caller and the executor's threads pull tasks from a shared counter until none is left, so
 * the work balances itself whatever the executor's size. An executor that rejects a puller
 * (throws from {@code execute}) only leaves more tasks to the caller, and the call returns only
 * after every task of its round has finished, so no task outlives the call. A puller that starts
 * after its round has ended finds no task. Package-private helper of {@link KvCache}.
 */
final class FanOut {

    private final Executor executor;
    private final Runnable[] tasks;
    private final Runnable puller = this::pull;
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicInteger done = new AtomicInteger();
    private volatile Thread waiter;
    private volatile Throwable failure;

    FanOut(Executor executor, Runnable[] tasks) {
        this.executor = executor;
        this.tasks = tasks.clone();
    }

    /** Runs every task once and returns when all are done; rethrows a failure. */
    void runAll() {
        failure = null;
        waiter = Thread.currentThread();
        done.set(0);
        next.set(0);
        for (int i = 1; i < tasks.length; i++) {
            try {
                executor.execute(puller);
            } catch (RuntimeException rejected) {
                // RejectedExecutionException or any other refusal: the caller pulls the rest.
                break;
            }
        }
        pull();
        while (done.get() < tasks.length) {
            LockSupport.park(this);
        }
        Throwable t = failure;
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error e) {
            throw e;
        }
    }

    /** Runs tasks until the counter passes the last one; a puller that starts late finds none. */
    private void pull() {
        int i;
        while ((i = next.getAndIncrement()) < tasks.length) {
            try {
                tasks[i].run();
            } catch (Throwable t) {
                failure = t;
            } finally {
                if (done.incrementAndGet() == tasks.length) {
                    LockSupport.unpark(waiter);
                }
            }
        }
    }
}
