package io.github.kvcache4j.model;

/**
 * The token types of GGUF's {@code tokenizer.ggml.token_type} (llama.cpp's numbering), and the
 * id bound every tokenizer checks.
 */
final class TokenType {

    /** An ordinary piece of text. */
    static final int NORMAL = 1;
    /** The unknown token. */
    static final int UNKNOWN = 2;
    /** A control token such as BOS or {@code <|eot_id|>}. */
    static final int CONTROL = 3;
    /** A piece the user added to the vocabulary; matched as a whole. */
    static final int USER_DEFINED = 4;
    /** A SentencePiece byte-fallback piece {@code <0xXX>}. */
    static final int BYTE = 6;

    private TokenType() {
    }

    /**
     * Throws unless {@code id} is in {@code [0, size)}.
     *
     * @param name the argument's name, for the message
     * @param id the id
     * @param size the vocabulary size
     * @throws IllegalArgumentException if the id is out of range
     */
    static void checkId(String name, int id, int size) {
        if (id < 0 || id >= size) {
            throw new IllegalArgumentException(name + ": id " + id + " is outside [0, " + size + ")");
        }
    }
}
