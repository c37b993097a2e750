package io.github.kvcache4j.model;

/**
 * GPT-2's reversible map between bytes and printable characters, in which byte-level BPE
 * vocabularies are written: the printable Latin-1 bytes ({@code !..~}, {@code ¡..¬},
 * {@code ®..ÿ}) stand for themselves, and the other 68 bytes, in increasing order, for
 * U+0100, U+0101, ... (so a space is {@code Ġ}, U+0120, and a newline {@code Ċ}, U+010A).
 */
final class ByteLevel {

    private static final char[] CHAR_OF_BYTE = new char[256];
    private static final int[] BYTE_OF_CHAR = new int[512];

    static {
        java.util.Arrays.fill(BYTE_OF_CHAR, -1);
        int shifted = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE;
            char c = printable ? (char) b : (char) (256 + shifted++);
            CHAR_OF_BYTE[b] = c;
            BYTE_OF_CHAR[c] = b;
        }
    }

    private ByteLevel() {
    }

    /** Returns the character that stands for byte {@code b} (its low 8 bits). */
    static char charOf(int b) {
        return CHAR_OF_BYTE[b & 0xFF];
    }

    /** Returns the byte a character stands for, or -1 if it stands for none. */
    static int byteOf(char c) {
        return c < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[c] : -1;
    }

    /** Returns the characters that stand for {@code bytes}, one per byte. */
    static String encode(byte[] bytes) {
        char[] chars = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            chars[i] = CHAR_OF_BYTE[bytes[i] & 0xFF];
        }
        return new String(chars);
    }
}
