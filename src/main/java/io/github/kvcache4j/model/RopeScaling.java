package io.github.kvcache4j.model;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Optional;

/**
 * RoPE frequency scaling as GGUF files describe it: a divisor per rotated pair, so that pair i
 * turns by {@code pos * base^(-2i/ropeDim) / factor[i]}. The divisors come from the
 * {@code rope_freqs.weight} tensor (how llama.cpp stores Llama 3.1/3.2 scaling), or from the
 * {@code <arch>.rope.scaling.*} keys: type {@code linear} divides every frequency by
 * {@code factor}; type {@code llama3} applies Meta's Llama 3.1 rule (with {@code factor},
 * {@code low_freq_factor} (default 1), {@code high_freq_factor} (default 4) and
 * {@code original_context_length}): pairs whose wavelength {@code 2π / freq} is shorter than
 * {@code original / high} keep their frequency, longer than {@code original / low} are divided by
 * {@code factor}, and in between the divisor is {@code 1 / ((1 - s) / factor + s)} with
 * {@code s = (original / wavelength - low) / (high - low)}.
 */
final class RopeScaling {

    /** The tensor of per-pair divisors written by llama.cpp's converter. */
    static final String FREQS_TENSOR = "rope_freqs.weight";

    private RopeScaling() {
    }

    /**
     * Returns the divisors a GGUF file asks for.
     *
     * @param gguf the file
     * @param arch the architecture, the prefix of the keys
     * @param ropeBase the frequency base
     * @param ropeDim the number of rotated elements per head
     * @return {@code ropeDim / 2} divisors, all 1 without scaling
     * @throws IllegalArgumentException if the tensor has the wrong shape or type, the scaling type
     *     is not supported, or a key is out of range
     */
    static float[] fromGguf(GgufFile gguf, String arch, double ropeBase, int ropeDim) {
        int pairs = ropeDim / 2;
        Optional<GgufTensorInfo> tensor = gguf.findTensor(FREQS_TENSOR);
        if (tensor.isPresent()) {
            GgufTensorInfo t = tensor.get();
            if (t.type() != GgmlType.F32 || !Arrays.equals(t.dims(), new long[] {pairs})) {
                throw new IllegalArgumentException("tensor '" + FREQS_TENSOR + "': " + t.type() + " "
                        + Arrays.toString(t.dims()) + " but RoPE scaling needs F32 [" + pairs + "]");
            }
            return gguf.tensorData(t).toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
        }
        String p = arch + ".rope.scaling.";
        String type = gguf.contains(p + "type") ? gguf.getString(p + "type") : "none";
        float[] factors = new float[pairs];
        Arrays.fill(factors, 1f);
        switch (type) {
            case "none" -> { }
            case "linear" -> Arrays.fill(factors, (float) factor(gguf, p + "factor"));
            case "llama3" -> {
                double factor = factor(gguf, p + "factor");
                double low = gguf.getDouble(p + "low_freq_factor", 1.0);
                double high = gguf.getDouble(p + "high_freq_factor", 4.0);
                int original = gguf.getInt(p + "original_context_length");
                if (!(low > 0 && high > low) || original <= 0) {
                    throw new IllegalArgumentException(p + "low_freq_factor/high_freq_factor/original_context_length: "
                            + low + "/" + high + "/" + original + " must satisfy 0 < low < high and original > 0");
                }
                return llama3(ropeBase, ropeDim, factor, low, high, original);
            }
            default -> throw new IllegalArgumentException(p + "type: '" + type
                    + "' is not supported (supported: none, linear, llama3, or a " + FREQS_TENSOR + " tensor)");
        }
        return factors;
    }

    private static double factor(GgufFile gguf, String key) {
        double f = gguf.getDouble(key, Double.NaN);
        if (!(f >= 1) || Double.isInfinite(f)) {
            throw new IllegalArgumentException(key + ": " + (gguf.contains(key) ? f : "missing")
                    + ", need a finite number >= 1");
        }
        return f;
    }

    /**
     * Returns the divisors of Meta's Llama 3.1 rule (see the class comment).
     *
     * @param ropeBase the frequency base
     * @param ropeDim the number of rotated elements per head
     * @param factor the divisor of the low frequencies
     * @param low the low-frequency factor
     * @param high the high-frequency factor
     * @param original the original context length
     * @return {@code ropeDim / 2} divisors
     */
    static float[] llama3(double ropeBase, int ropeDim, double factor, double low, double high, int original) {
        float[] factors = new float[ropeDim / 2];
        for (int i = 0; i < factors.length; i++) {
            double wavelength = 2 * Math.PI / Math.pow(ropeBase, -2.0 * i / ropeDim);
            double divisor;
            if (wavelength < original / high) {
                divisor = 1;
            } else if (wavelength > original / low) {
                divisor = factor;
            } else {
                double s = (original / wavelength - low) / (high - low);
                divisor = 1 / ((1 - s) / factor + s);
            }
            factors[i] = (float) divisor;
        }
        return factors;
    }
}
