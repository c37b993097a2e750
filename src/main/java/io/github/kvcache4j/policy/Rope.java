package io.github.kvcache4j.policy;

import java.util.Arrays;

/**
 * The rotary position embedding (RoPE, Su et al. 2021, arXiv 2104.09864) a model applies to its
 * queries and keys, as a policy that reasons about queries at other positions needs it: pair
 * {@code i} of a head turns by the angle {@code pos * frequency(i)}. The pairs are the elements
 * {@code (2i, 2i + 1)} (the interleaved order of GGUF "llama" models) or
 * {@code (i, i + pairs())} (GPT-NeoX order, the rotate-half form of Hugging Face models); the
 * elements past {@code 2 * pairs()} are not rotated.
 */
public final class Rope {

    private final double[] frequencies;
    private final boolean neox;

    private Rope(double[] frequencies, boolean neox) {
        this.frequencies = frequencies;
        this.neox = neox;
    }

    /**
     * Returns the standard RoPE over the first {@code dims} elements of a head: pair {@code i}
     * turns by {@code pos * base^(-2i / dims)}.
     *
     * @param base the frequency base (10000 for Llama 2, 500000 for Llama 3), finite and {@code > 1}
     * @param dims rotated elements per head, even and {@code >= 2}
     * @param neox whether the pairs are {@code (i, i + dims/2)} rather than {@code (2i, 2i + 1)}
     * @throws IllegalArgumentException if {@code base} or {@code dims} is out of range
     */
    public static Rope of(double base, int dims, boolean neox) {
        if (!(base > 1) || Double.isInfinite(base)) {
            throw new IllegalArgumentException("base must be finite and > 1, got " + base);
        }
        if (dims < 2 || dims % 2 != 0) {
            throw new IllegalArgumentException("dims must be even and >= 2, got " + dims);
        }
        double[] f = new double[dims / 2];
        for (int i = 0; i < f.length; i++) {
            f[i] = Math.pow(base, -2.0 * i / dims);
        }
        return new Rope(f, neox);
    }

    /**
     * Returns the RoPE whose pair {@code i} turns by {@code pos * frequencies[i]} (scaled RoPE
     * such as Llama 3.1's divides the standard frequencies by a factor per pair).
     *
     * @param frequencies angle per position of each pair, finite and {@code >= 0}, at least one (copied)
     * @param neox whether the pairs are {@code (i, i + frequencies.length)} rather than {@code (2i, 2i + 1)}
     * @throws IllegalArgumentException if {@code frequencies} is empty or holds a value out of range
     */
    public static Rope ofFrequencies(double[] frequencies, boolean neox) {
        if (frequencies.length == 0) {
            throw new IllegalArgumentException("frequencies must hold at least one pair, got 0");
        }
        for (int i = 0; i < frequencies.length; i++) {
            if (!(frequencies[i] >= 0) || Double.isInfinite(frequencies[i])) {
                throw new IllegalArgumentException("frequencies[" + i + "] must be finite and >= 0, got "
                        + frequencies[i]);
            }
        }
        return new Rope(frequencies.clone(), neox);
    }

    /** Returns the number of rotated pairs per head. */
    public int pairs() {
        return frequencies.length;
    }

    /** Returns the angle per position of pair {@code i}. */
    public double frequency(int i) {
        return frequencies[i];
    }

    /** Returns whether the pairs are {@code (i, i + pairs())} (GPT-NeoX order). */
    public boolean neox() {
        return neox;
    }

    /** Returns the index of the first element of pair {@code i} within a head. */
    public int first(int i) {
        return neox ? i : 2 * i;
    }

    /** Returns the index of the second element of pair {@code i} within a head. */
    public int second(int i) {
        return neox ? i + frequencies.length : 2 * i + 1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Rope r && neox == r.neox && Arrays.equals(frequencies, r.frequencies);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(frequencies) + Boolean.hashCode(neox);
    }

    @Override
    public String toString() {
        return "Rope[" + frequencies.length + " pairs, " + (neox ? "neox" : "interleaved") + "]";
    }
}
