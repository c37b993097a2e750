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
 * <p>Encoding prepends one space (the dummy prefix, unless {@code add_space_prefix} is false),
 * replaces every space with U+2581, starts from single code points, and repeatedly merges the
 * adjacent pair whose concatenation is a normal piece with the highest score (ties: the leftmost
 * pair). A symbol that is not a piece is written as the byte tokens {@code <0xXX>} of its UTF-8
 * encoding. Merging uses a priority queue over a linked list of symbols, so encoding is
 * O(n log n) in the text length. Control-token text such as {@code <s>} is ordinary text.
 */
final class SentencePieceTokenizer implements Tokenizer {

    private static final char SPACE_MARK = '\u2581';

    private final String[] pieces;
    private final float[] scores;
    private final int[] types;
    private final PieceIndex mergeable;
    private final int[] byteIds;
    private final int bos;
    private final int eos;
    private final int unk;
    private final boolean addSpacePrefix;
    private final boolean addBos;

    /**
     * Creates a tokenizer from a vocabulary.
     *
     * @param pieces the piece of each id
     * @param scores the merge score of each id
     * @param types the token type of each id (1 normal, 2 unknown, 3 control, 4 user, 6 byte)
     * @param bos the id of the beginning-of-sequence token
     * @param eos the id of the end-of-sequence token
     * @param unk the id of the unknown token
     * @param addSpacePrefix whether a text that starts a sequence gets one space prepended
     * @param addBos whether the vocabulary asks for BOS before a text
     * @throws IllegalArgumentException if the arrays differ in length or an id is out of range
     */
    SentencePieceTokenizer(String[] pieces, float[] scores, int[] types, int bos, int eos, int unk,
                           boolean addSpacePrefix, boolean addBos) {
        if (scores.length != pieces.length || types.length != pieces.length) {
            throw new IllegalArgumentException("scores/types: lengths " + scores.length + "/" + types.length
                    + " must equal the number of pieces " + pieces.length);
        }
        TokenType.checkId("bos", bos, pieces.length);
        TokenType.checkId("eos", eos, pieces.length);
        TokenType.checkId("unk", unk, pieces.length);
        this.pieces = pieces.clone();
        this.scores = scores.clone();
        this.types = types.clone();
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.addSpacePrefix = addSpacePrefix;
        this.addBos = addBos;
        this.byteIds = new int[256];
        Arrays.fill(byteIds, -1);
        Map<String, Integer> byteNames = new HashMap<>();
        for (int b = 0; b < 256; b++) {
            byteNames.put(String.format("<0x%02X>", b), b);
        }
        this.mergeable = new PieceIndex(this.pieces,
                id -> types[id] == TokenType.NORMAL || types[id] == TokenType.USER_DEFINED);
        for (int id = 0; id < pieces.length; id++) {
            if (types[id] == TokenType.BYTE) {
                Integer b = byteNames.get(pieces[id]);
                if (b != null && byteIds[b] < 0) {
                    byteIds[b] = id;
                }
            }
        }
    }

    @Override
    public int vocabSize() {
        return pieces.length;
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
        TokenType.checkId("id", id, pieces.length);
        return pieces[id];
    }

    @Override
    public int[] encode(String text, boolean addBos) {
        int[] ids = encodeRaw(addSpacePrefix && !text.isEmpty() ? " " + text : text);
        if (!addBos) {
            return ids;
        }
        int[] withBos = new int[ids.length + 1];
        withBos[0] = bos;
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        return withBos;
    }

    @Override
    public int[] encodeContinuation(String text) {
        return encodeRaw(text);
    }

    @Override
    public boolean startsWord(int id) {
        String p = piece(id);
        return !p.isEmpty() && p.charAt(0) == SPACE_MARK;
    }

    private int[] encodeRaw(String text) {
        String s = text.replace(' ', SPACE_MARK);
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
        int[] out = new int[4 * n];
        int len = 0;
        for (int i = 0; i >= 0 && n > 0; i = next[i]) {
            int id = mergeable.get(s, start[i], end[i]);
            if (id >= 0) {
                out[len++] = id;
            } else {
                for (byte b : s.substring(start[i], end[i]).getBytes(StandardCharsets.UTF_8)) {
                    int bid = byteIds[b & 0xFF];
                    out[len++] = bid >= 0 ? bid : unk;
                }
            }
        }
        return Arrays.copyOf(out, len);
    }

    private void offer(PriorityQueue<Pair> queue, String s, int[] start, int[] end, int l, int r) {
        int id = mergeable.get(s, start[l], end[r]);
        if (id >= 0) {
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
     * {@inheritDoc} Byte pieces become bytes, U+2581 becomes a space, control and unknown tokens
     * are skipped, and the dummy-prefix space of the first text token is removed.
     */
    @Override
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
     * {@inheritDoc} After BOS the leading space of the token's piece (the dummy prefix) is
     * dropped; control and unknown tokens contribute nothing.
     */
    @Override
    public byte[] decodeToken(int prev, int id) {
        TokenType.checkId("prev", prev, pieces.length);
        TokenType.checkId("id", id, pieces.length);
        int type = types[id];
        if (type == TokenType.CONTROL || type == TokenType.UNKNOWN) {
            return new byte[0];
        }
        if (type == TokenType.BYTE) {
            String p = pieces[id];
            if (p.length() == 6 && p.startsWith("<0x") && p.endsWith(">")) {
                return new byte[] {(byte) Integer.parseInt(p.substring(3, 5), 16)};
            }
        }
        String text = pieces[id].replace(SPACE_MARK, ' ');
        if (addSpacePrefix && prev == bos && text.startsWith(" ")) {
            text = text.substring(1);
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
