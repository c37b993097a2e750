package io.github.kvcache4j.model;

import java.util.Arrays;

/**
 * Turns text into token ids and back, as the vocabulary of a GGUF file prescribes: SentencePiece
 * BPE with byte fallback ({@code tokenizer.ggml.model = llama}: Llama 1/2, Mistral, TinyLlama) or
 * byte-level BPE ({@code gpt2}: Llama 3, Qwen2, SmolLM, with the split rule named by
 * {@code tokenizer.ggml.pre}).
 *
 * <p>Implementations are immutable and thread-safe.
 */
public sealed interface Tokenizer permits SentencePieceTokenizer, BpeTokenizer {

    /**
     * Reads the tokenizer of a GGUF file ({@code tokenizer.ggml.*} keys).
     *
     * @param gguf the file
     * @return the tokenizer
     * @throws IllegalArgumentException if the tokenizer model or split rule is not supported, or
     *     the vocabulary keys are missing or inconsistent
     */
    static Tokenizer fromGguf(GgufFile gguf) {
        String model = gguf.contains("tokenizer.ggml.model") ? gguf.getString("tokenizer.ggml.model") : "llama";
        String[] tokens = gguf.getStringArray("tokenizer.ggml.tokens");
        int[] types;
        if (gguf.contains("tokenizer.ggml.token_type")) {
            types = gguf.getIntArray("tokenizer.ggml.token_type");
        } else {
            types = new int[tokens.length];
            Arrays.fill(types, TokenType.NORMAL);
        }
        return switch (model) {
            case "llama" -> new SentencePieceTokenizer(tokens,
                    gguf.contains("tokenizer.ggml.scores")
                            ? gguf.getFloatArray("tokenizer.ggml.scores") : new float[tokens.length],
                    types,
                    gguf.getInt("tokenizer.ggml.bos_token_id", 1),
                    gguf.getInt("tokenizer.ggml.eos_token_id", 2),
                    gguf.getInt("tokenizer.ggml.unknown_token_id", 0),
                    flag(gguf, "tokenizer.ggml.add_space_prefix", true),
                    flag(gguf, "tokenizer.ggml.add_bos_token", true));
            case "gpt2" -> {
                if (!gguf.contains("tokenizer.ggml.pre")) {
                    throw new IllegalArgumentException("tokenizer.ggml.pre: missing; a byte-level BPE vocabulary "
                            + "needs its split rule (supported: llama-bpe, qwen2, smollm, gpt2)");
                }
                int eos = gguf.getInt("tokenizer.ggml.eos_token_id");
                yield new BpeTokenizer(tokens, types, gguf.getStringArray("tokenizer.ggml.merges"),
                        PreTokenizer.named(gguf.getString("tokenizer.ggml.pre")),
                        gguf.getInt("tokenizer.ggml.bos_token_id", eos), eos,
                        flag(gguf, "tokenizer.ggml.add_bos_token", false));
            }
            default -> throw new IllegalArgumentException("tokenizer.ggml.model: '" + model
                    + "' is not supported (supported: llama = SentencePiece, gpt2 = byte-level BPE)");
        };
    }

    private static boolean flag(GgufFile gguf, String key, boolean defaultValue) {
        Object v = gguf.metadata().get(key);
        if (v == null) {
            return defaultValue;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        throw new IllegalArgumentException("metadata '" + key + "': expected a bool but found "
                + v.getClass().getSimpleName());
    }

    /** Returns the vocabulary size. */
    int vocabSize();

    /** Returns the beginning-of-sequence id. */
    int bos();

    /** Returns the end-of-sequence id. */
    int eos();

    /** Returns whether the vocabulary asks for BOS before a text ({@code tokenizer.ggml.add_bos_token}). */
    boolean addsBos();

    /**
     * Returns the vocabulary's string of a token, e.g. {@code "▁the"}, {@code "<0x0A>"} or
     * {@code "Ġworld"}.
     *
     * @param id the token id
     * @return the piece
     * @throws IllegalArgumentException if the id is out of range
     */
    String piece(int id);

    /**
     * Encodes a text that starts a sequence (SentencePiece prepends its dummy-prefix space). The
     * empty text gives no tokens (BOS alone if asked for).
     *
     * @param text the text (no normalization is applied)
     * @param addBos whether to start with the BOS token
     * @return the token ids
     */
    int[] encode(String text, boolean addBos);

    /**
     * Encodes a text that continues a sequence at a token boundary: no BOS and no dummy prefix,
     * so {@code encodeContinuation(" " + s)} gives the tokens of {@code s} as a word in the
     * middle of a text.
     *
     * @param text the text
     * @return the token ids
     */
    int[] encodeContinuation(String text);

    /**
     * Decodes token ids to text, the inverse of {@link #encode}: {@code decode(encode(t, false)) = t}.
     * SentencePiece skips control tokens (so BOS decodes to nothing); byte-level BPE writes the
     * text of special tokens (so {@code <|eot_id|>} decodes to itself).
     *
     * @param ids the token ids
     * @return the text (invalid UTF-8 byte sequences become U+FFFD)
     * @throws IllegalArgumentException if an id is out of range
     */
    String decode(int[] ids);

    /**
     * Decodes one token for streaming output. The bytes of consecutive tokens concatenate to
     * UTF-8 text (a character may span several tokens).
     *
     * @param prev the previous token id, or {@link #bos()} at the start of a sequence
     * @param id the token id
     * @return the UTF-8 bytes this token contributes
     * @throws IllegalArgumentException if an id is out of range
     */
    byte[] decodeToken(int prev, int id);

    /**
     * Tells whether a token's text begins with a space, i.e. whether it starts a word in the
     * middle of a text.
     *
     * @param id the token id
     * @return whether its text starts with a space
     * @throws IllegalArgumentException if the id is out of range
     */
    boolean startsWord(int id);
}
