package io.github.kvcache4j.kernel;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Selects the kernel implementation once per JVM: the Vector API kernels when the
 * {@code jdk.incubator.vector} module is present, the scalar ones otherwise. The system property
 * {@code kvcache4j.kernels} ({@code panama} or {@code scalar}) overrides the choice.
 */
public final class KernelProvider {

    private static final Logger LOG = LoggerFactory.getLogger(KernelProvider.class);
    private static final Kernels KERNELS = select();

    private KernelProvider() {
    }

    /** Returns the kernels this JVM uses. */
    public static Kernels kernels() {
        return KERNELS;
    }

    /** Returns the scalar kernels, whatever the JVM supports (for tests and benchmarks). */
    public static Kernels scalar() {
        return ScalarKernels.INSTANCE;
    }

    /**
     * Returns the Vector API kernels.
     *
     * @throws UnsupportedOperationException if {@code jdk.incubator.vector} is not present
     */
    public static Kernels panama() {
        if (!vectorModulePresent()) {
            throw new UnsupportedOperationException(
                    "jdk.incubator.vector is not present: run with --add-modules jdk.incubator.vector");
        }
        return loadPanama();
    }

    private static Kernels select() {
        String forced = System.getProperty("kvcache4j.kernels", "");
        if (forced.equals("scalar")) {
            return ScalarKernels.INSTANCE;
        }
        if (!vectorModulePresent()) {
            LOG.warn("jdk.incubator.vector is not present; using scalar kernels. "
                    + "Add --add-modules jdk.incubator.vector to the java command for SIMD kernels.");
            return ScalarKernels.INSTANCE;
        }
        return loadPanama();
    }

    private static boolean vectorModulePresent() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    private static Kernels loadPanama() {
        try {
            Class<?> c = Class.forName("io.github.kvcache4j.kernel.PanamaKernels");
            return (Kernels) c.getDeclaredField("INSTANCE").get(null);
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new IllegalStateException("cannot load the Vector API kernels", e);
        }
    }
}
