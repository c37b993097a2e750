package io.github.kvcache4j.eval;

import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.model.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Passkey retrieval (the L2-norm paper's long-range test in kvpress's query-agnostic setting): a
 * 5-digit key is hidden at a requested depth of natural text; the context is compressed before
 * the question is known, then the question (ending in the word-boundary piece that precedes the
 * key, as in kvpress's golden prompts) is fed uncompressed and five digits are decoded greedily.
 * The score is an exact match of the decoded tokens with the key's digit tokens. The evaluator also records whether the key's
 * tokens survived compression, which separates "the policy evicted the key" from "the model
 * cannot retrieve".
 */
final class PasskeyTask {

    /** The question, fed after compression. */
    static final String QUESTION = "What is the pass key? The pass key is";

    /**
     * A passkey prompt.
     *
     * @param context BOS, filler, needle, filler ({@code context.length} tokens)
     * @param question the question's tokens, ending in the word-boundary piece before the key
     * @param key the 5-digit key
     * @param answer the key's five digit tokens
     * @param keyPositions per occurrence of the key in the needle, the context positions of its
     *     digit tokens
     * @param needleStart the context position of the needle's first token
     */
    record Prompt(int[] context, int[] question, String key, int[] answer, int[][] keyPositions, int needleStart) {

        /** Returns the needle's depth: its first token's position as a fraction of the context. */
        double depth() {
            return (double) needleStart / context.length;
        }
    }

    /**
     * The outcome of one prompt.
     *
     * @param correct whether the decoded tokens were exactly the key's digit tokens
     * @param answer the decoded text
     * @param generated the decoded token ids
     * @param keyResident fraction of (layer, kv-head) buffers that still held every digit token of
     *     at least one occurrence of the key after compression
     * @param tokens tokens run through the model after the shared prefill
     */
    record Result(boolean correct, String answer, int[] generated, double keyResident, int tokens) {
    }

    private final EvalModel eval;
    private final SharedPrefill prefill;

    PasskeyTask(EvalModel eval) {
        this.eval = eval;
        this.prefill = new SharedPrefill(eval);
    }

    /** Returns the needle sentence for {@code key}. */
    static String needle(String key) {
        return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    }

    /**
     * Builds a prompt of {@code contextTokens} tokens: BOS, then filler tokens (natural text
     * starting at a word), with the needle inserted at the first word start at or after position
     * {@code depth * contextTokens} (at the end of the context when that leaves no room).
     *
     * @param filler token ids of natural text, starting at a word; at least {@code contextTokens} long
     * @param depth requested needle depth in {@code [0, 1]}
     * @param key five decimal digits
     * @throws IllegalArgumentException if an argument is out of range
     */
    static Prompt build(Tokenizer tok, int[] filler, int contextTokens, double depth, String key) {
        if (!key.matches("[0-9]{5}")) {
            throw new IllegalArgumentException("key: '" + key + "' is not five decimal digits");
        }
        if (!(depth >= 0 && depth <= 1)) {
            throw new IllegalArgumentException("depth: " + depth + " is outside [0, 1]");
        }
        // Needle, question and answer each follow a word of the text, so each starts with a space.
        int[] needle = tok.encodeContinuation(" " + needle(key));
        int fillerTokens = contextTokens - 1 - needle.length;
        if (fillerTokens < 1 || filler.length < fillerTokens + 1) {
            throw new IllegalArgumentException("contextTokens: " + contextTokens + " needs " + (fillerTokens + 1)
                    + " filler tokens and room for the " + needle.length + "-token needle; got " + filler.length);
        }
        int split = Math.min(fillerTokens, Math.max(0, (int) Math.round(depth * contextTokens) - 1));
        while (split < fillerTokens && !tok.startsWord(filler[split])) {
            split++;
        }
        int[] context = new int[contextTokens];
        context[0] = tok.bos();
        System.arraycopy(filler, 0, context, 1, split);
        System.arraycopy(needle, 0, context, 1 + split, needle.length);
        int rest = fillerTokens - split;
        System.arraycopy(filler, split, context, 1 + split + needle.length, rest);
        return of(tok, context, key, 1 + split);
    }

    /**
     * Returns the prompt for a context that holds {@link #needle} for {@code key} at
     * {@code needleStart}: the question is {@link #QUESTION} followed by the word-boundary piece
     * that starts {@code " " + key} (when the tokenizer has one), and the answer is the key's
     * digit tokens.
     */
    static Prompt of(Tokenizer tok, int[] context, String key, int needleStart) {
        // Needle, question and answer each follow a word of the text, so each starts with a space.
        int[] spacedKey = tok.encodeContinuation(" " + key);
        // SentencePiece gives the space a piece of its own before the digits (kvpress's golden
        // questions end in it); a byte-level BPE may fold the space into the first digits, and
        // then the whole key is the answer.
        int lead = spacedKey.length > 1 && tok.decode(new int[] {spacedKey[0]}).isBlank() ? 1 : 0;
        int[] question = tok.encodeContinuation(" " + QUESTION);
        question = Arrays.copyOf(question, question.length + lead);
        if (lead == 1) {
            question[question.length - 1] = spacedKey[0];
        }
        int[] needle = tok.encodeContinuation(" " + needle(key));
        return new Prompt(context, question, key, Arrays.copyOfRange(spacedKey, lead, spacedKey.length),
                digitRuns(tok, needle, needleStart), needleStart);
    }

    /** Positions of the runs of digit tokens in {@code needle}, offset by {@code start}. */
    private static int[][] digitRuns(Tokenizer tok, int[] needle, int start) {
        List<int[]> runs = new ArrayList<>();
        List<Integer> run = new ArrayList<>();
        for (int i = 0; i <= needle.length; i++) {
            boolean digit = i < needle.length && tok.decode(new int[] {needle[i]}).strip().matches("[0-9]+");
            if (digit) {
                run.add(start + i);
            } else if (!run.isEmpty()) {
                runs.add(run.stream().mapToInt(Integer::intValue).toArray());
                run.clear();
            }
        }
        return runs.toArray(int[][]::new);
    }

    /** Runs one prompt with {@code policy}, compressing the context at {@code ratio} (0 = none). */
    Result run(Prompt p, CacheRecipe policy, double ratio) {
        return runAll(p, List.of(new SharedPrefill.Config(policy, ratio))).getFirst();
    }

    /** Runs one prompt for every configuration, prefilling the context once for all of them. */
    List<Result> runAll(Prompt p, List<SharedPrefill.Config> configs) {
        int n = p.context().length;
        return prefill.map(configs, p.context(),
                n + p.question().length + p.answer().length, prefilled -> {
            KvCache cache = prefilled.cache();
            double resident = keyResident(cache, p.keyPositions());
            float[] logits = eval.prefill(cache, p.question(), 0, p.question().length, n);
            int[] out = decode(eval, cache, logits, n + p.question().length, p.answer().length, () -> { });
            return new Result(Arrays.equals(out, p.answer()), eval.tokenizer().decode(out), out, resident,
                    p.question().length + out.length - 1);
        });
    }

    /**
     * Decodes {@code length} tokens greedily, the first from {@code logits}, feeding each but the
     * last at positions {@code position ..}; {@code afterStep} runs after every decode step.
     */
    static int[] decode(EvalModel eval, KvCache cache, float[] logits, int position, int length, Runnable afterStep) {
        int[] out = new int[length];
        int pos = position;
        for (int i = 0; i < length; i++) {
            out[i] = Scoring.argmax(logits, 0, eval.vocab());
            if (i + 1 < length) {
                logits = eval.step(cache, out[i], pos++);
                afterStep.run();
            }
        }
        return out;
    }

    /**
     * Returns the fraction of (layer, kv-head) buffers holding every position of at least one of
     * {@code runs}.
     */
    static double keyResident(KvCache cache, int[][] runs) {
        int layers = cache.config().layers();
        int kvHeads = cache.config().kvHeads();
        int holding = 0;
        for (int l = 0; l < layers; l++) {
            for (int h = 0; h < kvHeads; h++) {
                int[] positions = cache.positions(l, h);
                Arrays.sort(positions);
                for (int[] run : runs) {
                    if (Arrays.stream(run).allMatch(x -> Arrays.binarySearch(positions, x) >= 0)) {
                        holding++;
                        break;
                    }
                }
            }
        }
        return (double) holding / (layers * kvHeads);
    }
}
