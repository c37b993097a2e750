package io.github.kvcache4j.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Splits the text of special tokens (control, user-defined and unknown tokens such as
 * {@code <|eot_id|>}) out of a text before the rest is tokenized, as llama.cpp does when it
 * parses special tokens: the tokens are tried longest first, and each one splits every text
 * fragment left over by the longer ones at each of its exact occurrences.
 *
 * <p>Instances are immutable and thread-safe.
 */
final class SpecialTokens {

    private final String[] texts;
    private final int[] ids;

    /**
     * Collects the special tokens of a vocabulary.
     *
     * @param tokens the text of each id
     * @param types the token type of each id ({@link TokenType#CONTROL} and so on)
     */
    SpecialTokens(String[] tokens, int[] types) {
        List<Integer> special = new ArrayList<>();
        for (int id = 0; id < tokens.length; id++) {
            int t = types[id];
            boolean isSpecial = t == TokenType.CONTROL || t == TokenType.USER_DEFINED
                    || t == TokenType.UNKNOWN;
            if (isSpecial && !tokens[id].isEmpty()) {
                special.add(id);
            }
        }
        special.sort(Comparator.comparingInt((Integer id) -> -tokens[id].length()).thenComparingInt(id -> id));
        ids = special.stream().mapToInt(Integer::intValue).toArray();
        texts = Arrays.stream(ids).mapToObj(id -> tokens[id]).toArray(String[]::new);
    }

    /** Receives the fragments of a split, in text order. */
    interface Sink {
        /**
         * Takes ordinary text.
         *
         * @param start its first char offset
         * @param end its end offset
         */
        void text(int start, int end);

        /**
         * Takes a special token.
         *
         * @param id its id
         */
        void token(int id);
    }

    /**
     * Splits a text.
     *
     * @param text the text
     * @param sink receives the fragments
     */
    void split(String text, Sink sink) {
        // Fragments as (start, end, id): id -1 is ordinary text.
        int[] frag = {0, text.length(), -1};
        int count = text.isEmpty() ? 0 : 1;
        for (int t = 0; t < texts.length; t++) {
            String s = texts[t];
            if (text.indexOf(s) < 0) {
                continue;
            }
            int[] out = new int[frag.length + 6];
            int outCount = 0;
            for (int f = 0; f < count; f++) {
                int start = frag[3 * f];
                int end = frag[3 * f + 1];
                int id = frag[3 * f + 2];
                if (id >= 0) {
                    out = put(out, outCount++, start, end, id);
                    continue;
                }
                int at = text.indexOf(s, start);
                while (at >= 0 && at + s.length() <= end) {
                    if (at > start) {
                        out = put(out, outCount++, start, at, -1);
                    }
                    out = put(out, outCount++, at, at + s.length(), ids[t]);
                    start = at + s.length();
                    at = text.indexOf(s, start);
                }
                if (start < end) {
                    out = put(out, outCount++, start, end, -1);
                }
            }
            frag = out;
            count = outCount;
        }
        for (int f = 0; f < count; f++) {
            if (frag[3 * f + 2] >= 0) {
                sink.token(frag[3 * f + 2]);
            } else {
                sink.text(frag[3 * f], frag[3 * f + 1]);
            }
        }
    }

    private static int[] put(int[] frag, int index, int start, int end, int id) {
        int[] a = 3 * index + 3 <= frag.length ? frag : Arrays.copyOf(frag, frag.length * 2 + 3);
        a[3 * index] = start;
        a[3 * index + 1] = end;
        a[3 * index + 2] = id;
        return a;
    }
}
