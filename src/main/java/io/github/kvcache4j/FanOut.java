package io.github.kvcache4j;

import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs a fixed set of tasks on an executor and waits for them, without allocating per round: the
 * caller runs the first task itself, the executor the others. Package-private helper of
 * {@link KvCache}.
 */
final class FanOut {

    private final Executor executor;
    private final Runnable[] tasks;
    private final Runnable[] wrapped;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile Thread waiter;
    private volatile Throwable failure;

    FanOut(Executor executor, Runnable[] tasks) {
        this.executor = executor;
        this.tasks = tasks.clone();
        this.wrapped = new Runnable[tasks.length];
        for (int i = 1; i < tasks.length; i++) {
            Runnable task = tasks[i];
            wrapped[i] = () -> {
                try {
                    task.run();
                } catch (Throwable t) {
                    failure = t;
                } finally {
                    if (pending.decrementAndGet() == 0) {
                        LockSupport.unpark(waiter);
                    }
                }
            };
        }
    }

    /** Runs every task once and returns when all are done; rethrows the first failure. */
    void runAll() {
        failure = null;
        waiter = Thread.currentThread();
        pending.set(tasks.length - 1);
        for (int i = 1; i < tasks.length; i++) {
            executor.execute(wrapped[i]);
        }
        Throwable own = null;
        try {
            tasks[0].run();
        } catch (Throwable t) {
            own = t;
        }
        while (pending.get() > 0) {
            LockSupport.park(this);
        }
        Throwable t = own != null ? own : failure;
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error e) {
            throw e;
        }
    }
}
