package io.github.kvcache4j.testutil;

import io.github.kvcache4j.EvictionPolicy;
import java.util.function.Function;

/** A user policy (not a built-in class) with a name and a tracker factory: what a caller of the SPI writes. */
public final class NamedPolicy implements EvictionPolicy {

    private final String name;
    private final Function<Shape, Tracker> trackers;

    private NamedPolicy(String name, Function<Shape, Tracker> trackers) {
        this.name = name;
        this.trackers = trackers;
    }

    /** Returns a policy called {@code name} whose trackers {@code trackers} makes. */
    public static EvictionPolicy of(String name, Function<Shape, Tracker> trackers) {
        return new NamedPolicy(name, trackers);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Tracker newTracker(Shape shape) {
        return trackers.apply(shape);
    }
}
