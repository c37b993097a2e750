package io.github.kvcache4j.eval;

import io.github.kvcache4j.model.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The passkey prompts of NVIDIA kvpress's golden file for austen-recall, rebuilt token for token
 * from the evaluation text. Each prompt is {@code [BOS]}, then {@value #FILLER} text tokens from
 * {@code filler_start}, with the key sentence inserted at {@code key_sentence_start}: a
 * {@value #CONTEXT}-token context. A CSV line ({@code key,filler_start,key_sentence_start}) is all
 * a prompt needs, so the evaluator replays the golden prompts without the golden file.
 */
final class ReplayedPasskey {

    /** Context tokens of a replayed prompt (BOS, filler and the key sentence). */
    static final int CONTEXT = 2000;
    /** Filler tokens of a replayed prompt. */
    static final int FILLER = 1970;

    private ReplayedPasskey() {
    }

    /**
     * Reads the prompt list {@code csv} and builds its prompts over {@code tokens}
     * ({@code [BOS] + encode(text)}).
     *
     * @throws IOException if the file cannot be read
     * @throws IllegalArgumentException if a line is malformed or indexes outside {@code tokens}
     */
    static List<PasskeyTask.Prompt> load(Path csv, Tokenizer tok, int[] tokens) throws IOException {
        List<String> lines = Files.readAllLines(csv);
        if (lines.isEmpty() || !lines.get(0).strip().equals("key,filler_start,key_sentence_start")) {
            throw new IllegalArgumentException(csv + ": the first line must be key,filler_start,key_sentence_start");
        }
        List<PasskeyTask.Prompt> prompts = new ArrayList<>();
        for (int i = 1; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) {
                continue;
            }
            String[] f = lines.get(i).split(",");
            if (f.length != 3) {
                throw new IllegalArgumentException(csv + " line " + (i + 1) + ": expected 3 fields, got " + f.length);
            }
            try {
                prompts.add(build(tok, tokens, Integer.parseInt(f[0].strip()), Integer.parseInt(f[1].strip()),
                        Integer.parseInt(f[2].strip())));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(csv + " line " + (i + 1) + ": not an integer: " + e.getMessage());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(csv + " line " + (i + 1) + ": " + e.getMessage());
            }
        }
        return List.copyOf(prompts);
    }

    /**
     * Builds one prompt: {@code [BOS] + tokens[fillerStart .. + split] + encode(needle) +
     * tokens[fillerStart + split .. + FILLER]} with {@code split = keySentenceStart - 1}.
     *
     * @throws IllegalArgumentException if the key is not five digits or an index is out of range
     */
    static PasskeyTask.Prompt build(Tokenizer tok, int[] tokens, int key, int fillerStart, int keySentenceStart) {
        if (key < 10000 || key > 99999) {
            throw new IllegalArgumentException("key: " + key + " is outside [10000, 99999]");
        }
        if (fillerStart < 1 || fillerStart > tokens.length - FILLER) {
            throw new IllegalArgumentException("filler_start: " + fillerStart + " is outside [1, "
                    + (tokens.length - FILLER) + "] for a text of " + tokens.length + " tokens");
        }
        String digits = String.format(Locale.ROOT, "%05d", key);
        int[] needle = tok.encode(PasskeyTask.needle(digits), false);
        if (needle.length != CONTEXT - 1 - FILLER) {
            throw new IllegalArgumentException("key: the key sentence for " + digits + " has " + needle.length
                    + " tokens, expected " + (CONTEXT - 1 - FILLER));
        }
        int split = keySentenceStart - 1;
        if (split < 0 || split > FILLER) {
            throw new IllegalArgumentException("key_sentence_start: " + keySentenceStart + " is outside [1, "
                    + (FILLER + 1) + "]");
        }
        int[] context = new int[CONTEXT];
        context[0] = tok.bos();
        System.arraycopy(tokens, fillerStart, context, 1, split);
        System.arraycopy(needle, 0, context, keySentenceStart, needle.length);
        System.arraycopy(tokens, fillerStart + split, context, keySentenceStart + needle.length, FILLER - split);
        return PasskeyTask.of(tok, context, digits, keySentenceStart);
    }
}
