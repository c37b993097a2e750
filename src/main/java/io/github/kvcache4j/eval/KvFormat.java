package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.KvCacheConfig;
import java.util.Locale;

/**
 * How the evaluated caches store keys and values: a storage type, and for Q8 and Q4 whether keys
 * are rotated before quantizing. Named as on the command line: {@code F32}, {@code F16},
 * {@code BF16}, {@code Q8}, {@code Q4}, and {@code Q8R}, {@code Q4R} for the rotated ones.
 *
 * @param dtype the storage type
 * @param rotated whether keys are rotated by the randomized Hadamard transform of seed {@link #SEED}
 */
record KvFormat(DType dtype, boolean rotated) {

    /** Seed of the rotation's signs: one fixed rotation, so that runs repeat. */
    static final long SEED = 0x5EED_0F_C0DEL;

    /** The format of {@code dtype} without rotation. */
    static KvFormat of(DType dtype) {
        return new KvFormat(dtype, false);
    }

    /**
     * Parses a name such as {@code q4r} (case-insensitive).
     *
     * @throws UsageException if it names no format
     */
    static KvFormat parse(String name) throws UsageException {
        String n = name.strip().toUpperCase(Locale.ROOT);
        boolean rotated = n.length() > 1 && n.endsWith("R") && n.startsWith("Q");
        try {
            DType dtype = DType.valueOf(rotated ? n.substring(0, n.length() - 1) : n);
            return new KvFormat(dtype, rotated);
        } catch (IllegalArgumentException e) {
            throw new UsageException("--dtypes: '" + name.strip() + "' is not one of F32, F16, BF16, Q8, Q4, Q8R, Q4R");
        }
    }

    /** Sets the storage type and rotation on {@code b}. */
    KvCacheConfig.Builder applyTo(KvCacheConfig.Builder b) {
        b.dtype(dtype);
        return rotated ? b.keyRotation(SEED) : b.noKeyRotation();
    }

    /** Returns the name, {@code Q4R} for rotated Q4. */
    String name() {
        return dtype + (rotated ? "R" : "");
    }
}
