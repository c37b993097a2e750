package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Seeds;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The split rules of byte-level BPE on hand-derived examples and random text, the merge order on
 * a tiny vocabulary, special tokens, and lossless round trips on random text with the real
 * Llama 3 and Llama 2 vocabularies.
 */
class BpeTokenizerTest {

    private static final String SAMPLE = "Hello world  123 abc's!?\n";
    /** Characters of every class the rules tell apart: letters, digits, marks, spaces, newlines, emoji. */
    private static final String[] ALPHABET = {"a", "Z", "é", "ß", "日", "ж", "1", "7", "½", "٣", " ", "  ", "\t",
        "\n", "\r\n", "\u00A0", "\u3000", "'", "'s", "'LL", ".", "!", "<", "|", "\u0301", "😀", "𝔘", "-", "_"};

    @TempDir
    Path dir;

    private static List<String> pieces(PreTokenizer rule, String text) {
        List<String> out = new ArrayList<>();
        rule.split(text, 0, text.length(), (s, e) -> out.add(text.substring(s, e)));
        return out;
    }

    @Test
    void splitsSampleAsEachRuleDefines() {
        assertEquals(List.of("Hello", " world", " ", " ", "123", " abc", "'s", "!?\n"), pieces(PreTokenizer.LLAMA3, SAMPLE));
        assertEquals(List.of("Hello", " world", " ", " ", "1", "2", "3", " abc", "'s", "!?\n"),
                pieces(PreTokenizer.QWEN2, SAMPLE));
        assertEquals(List.of("Hello", " world", " ", " 123", " abc", "'s", "!?", "\n"), pieces(PreTokenizer.GPT2, SAMPLE));
        assertEquals(List.of("Hello", " world", "  ", "1", "2", "3", " abc", "'s", "!?", "\n"),
                pieces(PreTokenizer.SMOLLM, SAMPLE));
        assertEquals(List.of("123", "456", "7"), pieces(PreTokenizer.LLAMA3, "1234567"));
        assertEquals(List.of("\u3000", "x"), pieces(PreTokenizer.GPT2, "\u3000x"), "U+3000 is white space");
    }

    @Test
    void everyRuleSplitsRandomTextIntoAPartition() {
        long seed = Seeds.fresh("partition");
        Random r = new Random(seed);
        for (int trial = 0; trial < 300; trial++) {
            String text = randomText(r, 1 + r.nextInt(40));
            for (PreTokenizer rule : PreTokenizer.values()) {
                List<String> p = pieces(rule, text);
                assertEquals(text, String.join("", p), rule + " on " + escape(text));
                assertTrue(p.stream().noneMatch(String::isEmpty), rule + " made an empty piece");
            }
        }
    }

    @Test
    void namesOfTheRulesAreGgufs() {
        assertEquals(PreTokenizer.LLAMA3, PreTokenizer.named("llama-bpe"));
        assertEquals(PreTokenizer.QWEN2, PreTokenizer.named("qwen2"));
        assertEquals(PreTokenizer.SMOLLM, PreTokenizer.named("smollm"));
        assertEquals(PreTokenizer.GPT2, PreTokenizer.named("gpt2"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PreTokenizer.named("deepseek-llm"));
        assertTrue(e.getMessage().startsWith("tokenizer.ggml.pre: 'deepseek-llm' is not supported (supported: llama-bpe"),
                e.getMessage());
    }

    private Tokenizer tiny(String pre) throws IOException {
        TestGgufWriter w = new TestGgufWriter();
        LayoutFiles.byteVocabulary(w, pre);
        try (GgufFile f = GgufFile.open(LayoutFiles.write(dir.resolve(pre + ".gguf"), w))) {
            return Tokenizer.fromGguf(f);
        }
    }

    /** The tiny vocabulary's id of an ASCII character: its byte value. */
    private static int byteId(char c) {
        return c;
    }

    @Test
    void mergesLowestRankFirstAndSplitsOutControlTokens() throws IOException {
        Tokenizer tok = tiny("gpt2");
        int gT = 256;
        int he = 257;
        int gThe = 258;
        // "the": h+e (rank 1) merges, "t he" is no merge. " the": Ġ+t (rank 0) before h+e, then Ġt+he.
        assertArrayEquals(new int[] {byteId('t'), he, gThe}, tok.encode("the the", false));
        assertEquals(gT, tok.encode(" t", false)[0]);
        int eot = tok.vocabSize() - 1;
        assertArrayEquals(new int[] {byteId('a'), eot, byteId('b')}, tok.encode("a<|endoftext|>b", false));
        assertEquals("a<|endoftext|>b", tok.decode(new int[] {byteId('a'), eot, byteId('b')}));
        assertEquals(eot, tok.bos());
        assertEquals(false, tok.addsBos());
        assertTrue(tok.startsWord(gThe));
        // A byte outside ASCII is its byte token: é is C3 A9.
        assertArrayEquals(new int[] {0xC3, 0xA9}, tok.encode("é", false));
        assertArrayEquals(new byte[] {(byte) 0xC3}, tok.decodeToken(tok.bos(), 0xC3));
    }

    @Test
    void rejectsVocabulariesItCannotUse() {
        String[] tokens = {"a", "b"};
        int[] types = {1, 1};
        IllegalArgumentException noBytes = assertThrows(IllegalArgumentException.class,
                () -> new BpeTokenizer(tokens, types, new String[0], PreTokenizer.GPT2, 0, 0, false));
        assertTrue(noBytes.getMessage().startsWith("tokenizer.ggml.tokens: no token for byte 0x0"), noBytes.getMessage());
        String[] bytes = new String[256];
        for (int b = 0; b < 256; b++) {
            bytes[b] = String.valueOf(ByteLevel.charOf(b));
        }
        IllegalArgumentException badMerge = assertThrows(IllegalArgumentException.class,
                () -> new BpeTokenizer(bytes, new int[256], new String[] {"ab"}, PreTokenizer.GPT2, 0, 0, false));
        assertEquals("tokenizer.ggml.merges[0]: 'ab' is not two tokens separated by a space", badMerge.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> new BpeTokenizer(bytes, new int[256], new String[] {"a b"}, PreTokenizer.GPT2, 0, 0, false));
        assertEquals("tokenizer.ggml.merges[0]: 'a b' names 'ab', which is not a token", unknown.getMessage());
    }

    @Test
    void randomTextRoundTripsThroughTheRealVocabularies() throws IOException {
        long seed = Seeds.fresh("round trip");
        Random r = new Random(seed);
        Tokenizer llama3 = TokenizerGoldenTest.load("llama3");
        Tokenizer llama2 = TokenizerGoldenTest.load("llama2");
        Tokenizer qwen2 = tiny("qwen2");
        for (int trial = 0; trial < 300; trial++) {
            String text = randomText(r, r.nextInt(60));
            for (Tokenizer tok : new Tokenizer[] {llama3, llama2, qwen2}) {
                assertEquals(text, tok.decode(tok.encode(text, false)), escape(text));
            }
        }
    }

    private static String randomText(Random r, int parts) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < parts; i++) {
            sb.append(ALPHABET[r.nextInt(ALPHABET.length)]);
        }
        return sb.toString();
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        s.codePoints().forEach(cp -> sb.append(cp < 0x20 || cp > 0x7E ? String.format("\\u{%X}", cp)
                : String.valueOf((char) cp)));
        return sb.toString();
    }
}
