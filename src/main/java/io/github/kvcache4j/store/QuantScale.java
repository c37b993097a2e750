package io.github.kvcache4j.store;

/** The scale rounding that {@link Q8} and {@link Q4} share. */
final class QuantScale {

    private QuantScale() {
    }

    /**
     * Returns the largest float not above {@code exact} (which is {@code >= 0}). A scale rounded
     * down keeps the largest decoded value at or below the largest input, so decoding a row that
     * reaches {@link Float#MAX_VALUE} cannot overflow; the codes of the extreme elements are clamped.
     */
    static float scaleAtMost(double exact) {
        float d = (float) exact;
        return d > exact ? Math.nextDown(d) : d;
    }
}
