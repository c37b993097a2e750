package io.github.kvcache4j.model;

import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedily (argmax) or by temperature sampling with a seeded
 * random generator. A temperature sampler carries its generator state, so it is not thread-safe.
 */
public final class Sampler {

    private final double temperature;
    private final SplittableRandom random;

    private Sampler(double temperature, SplittableRandom random) {
        this.temperature = temperature;
        this.random = random;
    }

    /**
     * Returns a greedy sampler: the id with the largest logit, ties to the lowest id.
     *
     * @return the sampler
     */
    public static Sampler greedy() {
        return new Sampler(0, null);
    }

    /**
     * Returns a sampler that draws from softmax(logits / temperature).
     *
     * @param temperature the temperature, positive and finite
     * @param seed the seed of the random generator (same seed, same draws)
     * @return the sampler
     * @throws IllegalArgumentException if the temperature is not positive and finite
     */
    public static Sampler temperature(double temperature, long seed) {
        if (!(temperature > 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature: " + temperature + " must be positive and finite");
        }
        return new Sampler(temperature, new SplittableRandom(seed));
    }

    /**
     * Picks a token.
     *
     * @param logits the logits of every token of the vocabulary
     * @return the chosen id
     * @throws IllegalArgumentException if {@code logits} is empty
     */
    public int sample(float[] logits) {
        if (logits.length == 0) {
            throw new IllegalArgumentException("logits: length 0, need at least one logit");
        }
        int best = argmax(logits);
        if (random == null) {
            return best;
        }
        double max = logits[best];
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp((l - max) / temperature);
        }
        double u = random.nextDouble() * sum;
        double acc = 0;
        for (int i = 0; i < logits.length; i++) {
            acc += Math.exp((logits[i] - max) / temperature);
            if (u < acc) {
                return i;
            }
        }
        return best;
    }

    /**
     * Returns the index of the largest value, the lowest index among ties; NaN is never chosen
     * unless every value is NaN.
     *
     * @param values the values, not empty
     * @return the index
     */
    public static int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best] || Float.isNaN(values[best]) && !Float.isNaN(values[i])) {
                best = i;
            }
        }
        return best;
    }
}
