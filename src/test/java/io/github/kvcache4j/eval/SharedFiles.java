package io.github.kvcache4j.eval;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the project root and the shared golden files next to it ({@code ../shared}). */
final class SharedFiles {

    private SharedFiles() {
    }

    /** Returns the nearest directory at or above the working directory that holds a pom.xml. */
    static Path projectRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("pom.xml"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no pom.xml above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }

    /** Returns {@code <project root>/../shared/models/golden/<name>}. */
    static Path golden(String name) {
        return projectRoot().resolveSibling("shared").resolve("models").resolve("golden").resolve(name);
    }

    /** Returns {@code <project root>/data/<name>}, the bundled default data. */
    static Path data(String name) {
        return projectRoot().resolve("data").resolve(name);
    }
}
