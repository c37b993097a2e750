package io.github.kvcache4j.model;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * SentencePiece BPE tokenizer with byte fallback, built from a GGUF "llama" vocabulary
 * ({@code tokenizer.ggml.tokens}, {@code .scores}, {@code .token_type}).
 *
 * <p>Encoding prepends one space, replaces every space with U+2581, starts from single code
 * points, and repeatedly merges the adjacent pair whose concatenation is a normal piece with the
 * highest score (ties: the leftmost pair). A symbol that is not a piece is written as the byte
 * tokens {@code <0xXX>} of its UTF-8 encoding. Merging uses a priority queue over a linked list
 * of symbols, so encoding is O(n log n) in the text length.
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class Tokenizer {

    /** Token type of a normal piece. */
    static final int TYPE_NORMAL = 1;
    /** Token type of the unknown piece. */
    static final int TYPE_UNKNOWN = 2;
    /** Token type of a control piece such as BOS. */
    static final int TYPE_CONTROL = 3;
    /** Token type of a user-defined piece. */
    static final int TYPE_USER_DEFINED = 4;
    /** Token type of a byte-fallback piece {@code <0xXX>}. */
    static final int TYPE_BYTE = 6;

    private static final char SPACE_MARK = '\u2581';

    private final String[] pieces;
    private final float[] scores;
    private final int[] types;
    private final Map<String, Integer> mergeable;
    private final int[] byteIds;
    private final int bos;
    private final int eos;
    private final int unk;

    /**
     * Creates a tokenizer from a vocabulary.
     *
     * @param pieces the piece of each id
     * @param scores the merge score of each id
     * @param types the SentencePiece type of each id (1 normal, 2 unknown, 3 control, 4 user, 6 byte)
     * @param bos the id of the beginning-of-sequence token
     * @param eos the id of the end-of-sequence token
     * @param unk the id of the unknown token
     * @throws IllegalArgumentException if the arrays differ in length or an id is out of range
     */
    public Tokenizer(String[] pieces, float[] scores, int[] types, int bos, int eos, int unk) {
        if (scores.length != pieces.length || types.length != pieces.length) {
            throw new IllegalArgumentException("scores/types: lengths " + scores.length + "/" + types.length
                    + " must equal the number of pieces " + pieces.length);
        }
        checkId("bos", bos, pieces.length);
        checkId("eos", eos, pieces.length);
        checkId("unk", unk, pieces.length);
        this.pieces = pieces.clone();
        this.scores = scores.clone();
        this.types = types.clone();
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.mergeable = new HashMap<>(pieces.length * 2);
        this.byteIds = new int[256];
        Arrays.fill(byteIds, -1);
        Map<String, Integer> byteNames = new HashMap<>();
        for (int b = 0; b < 256; b++) {
            byteNames.put(String.format("<0x%02X>", b), b);
        }
        for (int id = 0; id < pieces.length; id++) {
            if (types[id] == TYPE_NORMAL || types[id] == TYPE_USER_DEFINED) {
                mergeable.putIfAbsent(pieces[id], id);
            } else if (types[id] == TYPE_BYTE) {
                Integer b = byteNames.get(pieces[id]);
                if (b != null && byteIds[b] < 0) {
                    byteIds[b] = id;
                }
            }
        }
    }

    /**
     * Reads the vocabulary of a GGUF file ({@code tokenizer.ggml.*} keys).
     *
     * @param gguf the file
     * @return the tokenizer
     * @throws IllegalArgumentException if the vocabulary keys are missing or inconsistent
     */
    public static Tokenizer fromGguf(GgufFile gguf) {
        String model = gguf.contains("tokenizer.ggml.model") ? gguf.getString("tokenizer.ggml.model") : "llama";
        if (!model.equals("llama")) {
            throw new IllegalArgumentException("tokenizer.ggml.model: '" + model
                    + "' is not supported (only the SentencePiece 'llama' tokenizer)");
        }
        String[] tokens = gguf.getStringArray("tokenizer.ggml.tokens");
        float[] scores = gguf.contains("tokenizer.ggml.scores")
                ? gguf.getFloatArray("tokenizer.ggml.scores") : new float[tokens.length];
        int[] types;
        if (gguf.contains("tokenizer.ggml.token_type")) {
            types = gguf.getIntArray("tokenizer.ggml.token_type");
        } else {
            types = new int[tokens.length];
            Arrays.fill(types, TYPE_NORMAL);
        }
        return new Tokenizer(tokens, scores, types,
                gguf.getInt("tokenizer.ggml.bos_token_id", 1),
                gguf.getInt("tokenizer.ggml.eos_token_id", 2),
                gguf.getInt("tokenizer.ggml.unknown_token_id", 0));
    }

    private static void checkId(String name, int id, int size) {
        if (id < 0 || id >= size) {
            throw new IllegalArgumentException(name + ": id " + id + " is outside [0, " + size + ")");
        }
    }

    /** Returns the vocabulary size. */
    public int vocabSize() {
        return pieces.length;
    }

    /** Returns the beginning-of-sequence id. */
    public int bos() {
        return bos;
    }

    /** Returns the end-of-sequence id. */
    public int eos() {
        return eos;
    }

    /**
     * Returns the piece of a token, e.g. {@code "▁the"} or {@code "<0x0A>"}.
     *
     * @param id the token id
     * @return the piece
     * @throws IllegalArgumentException if the id is out of range
     */
    public String piece(int id) {
        checkId("id", id, pieces.length);
        return pieces[id];
    }

    /**
     * Encodes text.
     *
     * @param text the text (no normalization is applied)
     * @param addBos whether to start with the BOS token
     * @return the token ids
     */
    public int[] encode(String text, boolean addBos) {
        String s = (" " + text).replace(' ', SPACE_MARK);
        int n = s.codePointCount(0, s.length());
        // Symbols as a doubly linked list over code-point-sized slices of s.
        int[] start = new int[n];
        int[] end = new int[n];
        int[] prev = new int[n];
        int[] next = new int[n];
        int k = 0;
        for (int i = 0; i < s.length(); k++) {
            int j = s.offsetByCodePoints(i, 1);
            start[k] = i;
            end[k] = j;
            prev[k] = k - 1;
            next[k] = k + 1 < n ? k + 1 : -1;
            i = j;
        }
        PriorityQueue<Pair> queue = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offer(queue, s, start, end, i, i + 1);
        }
        while (!queue.isEmpty()) {
            Pair p = queue.poll();
            int l = p.left;
            int r = p.right;
            // Stale if either side was merged away or changed since the pair was queued.
            if (start[l] < 0 || start[r] < 0 || next[l] != r || end[l] != p.leftEnd || end[r] != p.rightEnd) {
                continue;
            }
            end[l] = end[r];
            start[r] = -1;
            next[l] = next[r];
            if (next[r] >= 0) {
                prev[next[r]] = l;
            }
            if (prev[l] >= 0) {
                offer(queue, s, start, end, prev[l], l);
            }
            if (next[l] >= 0) {
                offer(queue, s, start, end, l, next[l]);
            }
        }
        int[] out = new int[n + 1 + 4 * n];
        int len = 0;
        if (addBos) {
            out[len++] = bos;
        }
        for (int i = 0; i >= 0 && n > 0; i = next[i]) {
            String sym = s.substring(start[i], end[i]);
            Integer id = mergeable.get(sym);
            if (id != null) {
                out[len++] = id;
            } else {
                for (byte b : sym.getBytes(StandardCharsets.UTF_8)) {
                    int bid = byteIds[b & 0xFF];
                    out[len++] = bid >= 0 ? bid : unk;
                }
            }
        }
        return Arrays.copyOf(out, len);
    }

    private void offer(PriorityQueue<Pair> queue, String s, int[] start, int[] end, int l, int r) {
        Integer id = mergeable.get(s.substring(start[l], end[r]));
        if (id != null) {
            queue.add(new Pair(scores[id], start[l], l, r, end[l], end[r]));
        }
    }

    /** A candidate merge; ordered by score (high first), then by text position (left first). */
    private record Pair(float score, int position, int left, int right, int leftEnd, int rightEnd)
            implements Comparable<Pair> {
        @Override
        public int compareTo(Pair o) {
            int c = Float.compare(o.score, score);
            return c != 0 ? c : Integer.compare(position, o.position);
        }
    }

    /**
     * Decodes token ids to text: byte pieces become bytes, U+2581 becomes a space, control and
     * unknown tokens are skipped, and the dummy-prefix space of the first text token is removed.
     *
     * @param ids the token ids
     * @return the text (invalid UTF-8 byte sequences become U+FFFD)
     * @throws IllegalArgumentException if an id is out of range
     */
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int prev = bos;
        for (int id : ids) {
            out.writeBytes(decodeToken(prev, id));
            prev = id;
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /**
     * Decodes one token for streaming output. The bytes of consecutive tokens concatenate to
     * UTF-8 text (a character may span several byte tokens).
     *
     * @param prev the previous token id, or {@link #bos()} at the start; when it is BOS the
     *     leading space of this token's piece (the dummy prefix) is dropped
     * @param id the token id
     * @return the UTF-8 bytes this token contributes (empty for control and unknown tokens)
     * @throws IllegalArgumentException if an id is out of range
     */
    public byte[] decodeToken(int prev, int id) {
        checkId("prev", prev, pieces.length);
        checkId("id", id, pieces.length);
        int type = types[id];
        if (type == TYPE_CONTROL || type == TYPE_UNKNOWN) {
            return new byte[0];
        }
        if (type == TYPE_BYTE) {
            String p = pieces[id];
            if (p.length() == 6 && p.startsWith("<0x") && p.endsWith(">")) {
                return new byte[] {(byte) Integer.parseInt(p.substring(3, 5), 16)};
            }
        }
        String text = pieces[id].replace(SPACE_MARK, ' ');
        if (prev == bos && text.startsWith(" ")) {
            text = text.substring(1);
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
