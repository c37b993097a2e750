package io.github.kvcache4j.sharing;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the shared reference models, golden files and text next to the project root. */
final class SharedFiles {

    private SharedFiles() {
    }

    /** Returns {@code <project root>/../shared}, the root being the nearest directory with a pom.xml. */
    static Path shared() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("pom.xml"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no pom.xml above " + Path.of("").toAbsolutePath());
        }
        return dir.resolveSibling("shared");
    }

    static Path model(String name) {
        return shared().resolve("models").resolve(name);
    }

    static Path golden(String name) {
        return shared().resolve("models").resolve("golden").resolve(name);
    }

    static Path data(String name) {
        return shared().resolve("data").resolve(name);
    }
}
