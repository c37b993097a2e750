package io.github.kvcache4j.testutil;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the reference models, golden files and evaluation text in {@code ../shared}, beside the
 * project root (the nearest directory at or above the working directory that holds a pom.xml).
 */
public final class SharedFiles {

    private SharedFiles() {
    }

    /** Returns the project root. */
    public static Path projectRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("pom.xml"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no pom.xml above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }

    /** Returns {@code <project root>/../shared}. */
    public static Path shared() {
        return projectRoot().resolveSibling("shared");
    }

    /** Returns a model file in {@code ../shared/models}. */
    public static Path model(String name) {
        return shared().resolve("models").resolve(name);
    }

    /** Returns a golden file in {@code ../shared/models/golden}. */
    public static Path golden(String name) {
        return shared().resolve("models").resolve("golden").resolve(name);
    }

    /** Returns a text in {@code ../shared/data}. */
    public static Path data(String name) {
        return shared().resolve("data").resolve(name);
    }

    /** Returns a file of the project's bundled default data, {@code <project root>/data}. */
    public static Path bundled(String name) {
        return projectRoot().resolve("data").resolve(name);
    }
}
