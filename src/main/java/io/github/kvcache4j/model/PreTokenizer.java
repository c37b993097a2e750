package io.github.kvcache4j.model;

import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The rules that split text into the pieces byte-level BPE merges within, named as GGUF's
 * {@code tokenizer.ggml.pre} names them. Each rule is the regular expression of the model's
 * Hugging Face {@code tokenizer.json}; {@code \s} stands for Unicode White_Space, as in llama.cpp.
 * Text between two matches (none of these patterns leaves any) would be a piece of its own.
 */
enum PreTokenizer {

    /** Llama 3 ({@code llama-bpe}): digits in groups of up to three; pieces that are tokens skip merging. */
    LLAMA3(List.of("llama-bpe", "llama3", "llama-v3"), true, false,
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                    + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
    /** Qwen2: as Llama 3 but every digit alone. */
    QWEN2(List.of("qwen2"), false, false,
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                    + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
    /** GPT-2: a word, number or punctuation run with at most one leading space. */
    GPT2(List.of("gpt2", "gpt-2"), false, false,
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
    /** SmolLM: every digit alone first, then the GPT-2 rule on the text between digits. */
    SMOLLM(List.of("smollm"), false, true,
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");

    private static final String WHITE_SPACE = "\\p{IsWhite_Space}";

    private final List<String> names;
    private final boolean ignoreMerges;
    private final boolean digitsFirst;
    private final Pattern pattern;

    PreTokenizer(List<String> names, boolean ignoreMerges, boolean digitsFirst, String regex) {
        this.names = names;
        this.ignoreMerges = ignoreMerges;
        this.digitsFirst = digitsFirst;
        // Java's \s is ASCII-only; the tokenizers' is Unicode's (e.g. U+00A0, U+3000).
        this.pattern = Pattern.compile(regex.replace("\\s", WHITE_SPACE).replace("\\S", "\\P{IsWhite_Space}"));
    }

    /**
     * Returns the rule GGUF names {@code name}.
     *
     * @param name the value of {@code tokenizer.ggml.pre}
     * @return the rule
     * @throws IllegalArgumentException if the name is not one of the supported rules
     */
    static PreTokenizer named(String name) {
        for (PreTokenizer p : values()) {
            if (p.names.contains(name.toLowerCase(Locale.ROOT))) {
                return p;
            }
        }
        StringBuilder known = new StringBuilder();
        for (PreTokenizer p : values()) {
            known.append(known.isEmpty() ? "" : ", ").append(String.join(", ", p.names));
        }
        throw new IllegalArgumentException("tokenizer.ggml.pre: '" + name + "' is not supported (supported: "
                + known + ")");
    }

    /**
     * Tells whether a piece that is itself a token is taken whole instead of being merged from
     * bytes (Hugging Face's {@code ignore_merges}, set by Llama 3).
     */
    boolean ignoresMerges() {
        return ignoreMerges;
    }

    /**
     * Splits {@code text[from, to)} into pieces, in order.
     *
     * @param text the text
     * @param from the first char
     * @param to the end
     * @param piece receives each piece as {@code (start, end)} char offsets into {@code text}
     */
    void split(String text, int from, int to, PieceSink piece) {
        if (!digitsFirst) {
            splitByPattern(text, from, to, piece);
            return;
        }
        int segment = from;
        for (int i = from; i < to; ) {
            int cp = text.codePointAt(i);
            int next = i + Character.charCount(cp);
            if (isNumber(cp)) {
                splitByPattern(text, segment, i, piece);
                piece.accept(i, next);
                segment = next;
            }
            i = next;
        }
        splitByPattern(text, segment, to, piece);
    }

    /** Tells whether a code point is in {@code \p{N}}: a digit, a letter-like number (Ⅻ) or another number (½, ²). */
    private static boolean isNumber(int cp) {
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    private void splitByPattern(String text, int from, int to, PieceSink piece) {
        if (from >= to) {
            return;
        }
        Matcher m = pattern.matcher(text).region(from, to);
        // Lookahead must see only the region, as when the segment is split on its own.
        m.useTransparentBounds(false).useAnchoringBounds(false);
        int last = from;
        while (m.find()) {
            if (m.start() > last) {
                piece.accept(last, m.start());
            }
            piece.accept(m.start(), m.end());
            last = m.end();
        }
        if (last < to) {
            piece.accept(last, to);
        }
    }

    /** Receives the pieces of a split. */
    @FunctionalInterface
    interface PieceSink {
        /**
         * Takes one piece.
         *
         * @param start its first char offset
         * @param end its end offset
         */
        void accept(int start, int end);
    }
}
