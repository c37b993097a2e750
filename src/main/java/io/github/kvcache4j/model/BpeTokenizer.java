package io.github.kvcache4j.model;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Byte-level BPE, as GGUF stores it ({@code tokenizer.ggml.model = gpt2}; Llama 3, Qwen2,
 * SmolLM). Encoding splits out the text of special tokens ({@link SpecialTokens}), splits the
 * rest into pieces with the vocabulary's rule ({@link PreTokenizer}), writes each piece's UTF-8
 * bytes in GPT-2's byte alphabet ({@link ByteLevel}), and merges each piece from single bytes by
 * the ranked merge list ({@link BpeMerges}); under Llama 3's rule a piece that is itself a token
 * is taken whole. No space is prepended and nothing is normalized. Decoding concatenates the
 * tokens' bytes; special tokens decode to their text.
 */
final class BpeTokenizer implements Tokenizer {

    private final String[] tokens;
    private final byte[][] bytes;
    private final Map<String, Integer> ids;
    private final int[] byteToken;
    private final BpeMerges merges;
    private final PreTokenizer pre;
    private final SpecialTokens special;
    private final int bos;
    private final int eos;
    private final boolean addBos;

    /**
     * Creates a tokenizer from a vocabulary.
     *
     * @param tokens the text of each id, in GPT-2's byte alphabet
     * @param types the token type of each id (1 normal, 3 control, 4 user-defined, ...)
     * @param mergeList the merges in rank order, each {@code "left right"}
     * @param pre the split rule
     * @param bos the id of the beginning-of-sequence token
     * @param eos the id of the end-of-sequence token
     * @param addBos whether the vocabulary asks for BOS before a text
     * @throws IllegalArgumentException if the arrays differ in length, an id is out of range, a
     *     byte has no token, or a merge is malformed or names a string that is not a token
     */
    BpeTokenizer(String[] tokens, int[] types, String[] mergeList, PreTokenizer pre, int bos, int eos,
                 boolean addBos) {
        if (types.length != tokens.length) {
            throw new IllegalArgumentException("token_type: length " + types.length
                    + " must equal the number of tokens " + tokens.length);
        }
        TokenType.checkId("bos", bos, tokens.length);
        TokenType.checkId("eos", eos, tokens.length);
        this.tokens = tokens.clone();
        this.pre = pre;
        this.bos = bos;
        this.eos = eos;
        this.addBos = addBos;
        this.ids = new HashMap<>(tokens.length * 2);
        this.bytes = new byte[tokens.length][];
        for (int id = 0; id < tokens.length; id++) {
            ids.putIfAbsent(tokens[id], id);
            bytes[id] = toBytes(tokens[id]);
        }
        this.byteToken = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = ids.get(String.valueOf(ByteLevel.charOf(b)));
            if (id == null) {
                throw new IllegalArgumentException("tokenizer.ggml.tokens: no token for byte 0x"
                        + Integer.toHexString(b) + " ('" + ByteLevel.charOf(b) + "'), which byte-level BPE needs");
            }
            byteToken[b] = id;
        }
        this.merges = mergeTable(mergeList);
        this.special = new SpecialTokens(tokens, types);
    }

    /** Maps a token's characters back to bytes; a character outside the byte alphabet stays its UTF-8. */
    private static byte[] toBytes(String token) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length());
        for (int i = 0; i < token.length(); ) {
            int cp = token.codePointAt(i);
            int b = cp <= Character.MAX_VALUE ? ByteLevel.byteOf((char) cp) : -1;
            if (b >= 0) {
                out.write(b);
            } else {
                out.writeBytes(new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8));
            }
            i += Character.charCount(cp);
        }
        return out.toByteArray();
    }

    private BpeMerges mergeTable(String[] mergeList) {
        int n = mergeList.length;
        int[] left = new int[n];
        int[] right = new int[n];
        int[] result = new int[n];
        for (int r = 0; r < n; r++) {
            String m = mergeList[r];
            // Searching from 1 lets a left part that is a literal space (an added token) parse, as in llama.cpp.
            int space = m.indexOf(' ', 1);
            if (space < 0) {
                throw new IllegalArgumentException("tokenizer.ggml.merges[" + r + "]: '" + m
                        + "' is not two tokens separated by a space");
            }
            left[r] = tokenId(r, m, m.substring(0, space));
            right[r] = tokenId(r, m, m.substring(space + 1));
            result[r] = tokenId(r, m, m.substring(0, space) + m.substring(space + 1));
        }
        return new BpeMerges(left, right, result);
    }

    private int tokenId(int rank, String merge, String token) {
        Integer id = ids.get(token);
        if (id == null) {
            throw new IllegalArgumentException("tokenizer.ggml.merges[" + rank + "]: '" + merge + "' names '"
                    + token + "', which is not a token");
        }
        return id;
    }

    @Override
    public int vocabSize() {
        return tokens.length;
    }

    @Override
    public int bos() {
        return bos;
    }

    @Override
    public int eos() {
        return eos;
    }

    @Override
    public boolean addsBos() {
        return addBos;
    }

    @Override
    public String piece(int id) {
        TokenType.checkId("id", id, tokens.length);
        return tokens[id];
    }

    @Override
    public int[] encode(String text, boolean addBos) {
        IdList out = new IdList(text.length() / 3 + 8);
        if (addBos) {
            out.add(bos);
        }
        special.split(text, new SpecialTokens.Sink() {
            @Override
            public void text(int start, int end) {
                pre.split(text, start, end, (s, e) -> encodePiece(text.substring(s, e), out));
            }

            @Override
            public void token(int id) {
                out.add(id);
            }
        });
        return out.toArray();
    }

    @Override
    public int[] encodeContinuation(String text) {
        return encode(text, false);
    }

    private void encodePiece(String piece, IdList out) {
        byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
        if (pre.ignoresMerges() || utf8.length == 1) {
            Integer whole = utf8.length == 1 ? Integer.valueOf(byteToken[utf8[0] & 0xFF])
                    : ids.get(ByteLevel.encode(utf8));
            if (whole != null) {
                out.add(whole);
                return;
            }
        }
        int[] symbols = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            symbols[i] = byteToken[utf8[i] & 0xFF];
        }
        int n = merges.merge(symbols, symbols.length);
        for (int i = 0; i < n; i++) {
            out.add(symbols[i]);
        }
    }

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < ids.length; i++) {
            TokenType.checkId("ids[" + i + "]", ids[i], tokens.length);
            out.writeBytes(bytes[ids[i]]);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** {@inheritDoc} The bytes do not depend on {@code prev}, which is only checked. */
    @Override
    public byte[] decodeToken(int prev, int id) {
        TokenType.checkId("prev", prev, tokens.length);
        TokenType.checkId("id", id, tokens.length);
        return bytes[id].clone();
    }

    @Override
    public boolean startsWord(int id) {
        TokenType.checkId("id", id, tokens.length);
        return bytes[id].length > 0 && bytes[id][0] == ' ';
    }

    /** A growable list of ids. */
    private static final class IdList {
        private int[] a;
        private int size;

        IdList(int capacity) {
            a = new int[capacity];
        }

        void add(int id) {
            if (size == a.length) {
                a = Arrays.copyOf(a, a.length * 2);
            }
            a[size++] = id;
        }

        int[] toArray() {
            return Arrays.copyOf(a, size);
        }
    }
}
