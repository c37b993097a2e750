package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TokenizerTest {

    private static Tokenizer load(String model) throws IOException {
        try (GgufFile f = GgufFile.open(SharedFiles.model(model))) {
            return Tokenizer.fromGguf(f);
        }
    }

    @Test
    void encodesStoriesExampleAndDecodesGreedySample() throws IOException {
        Tokenizer tok = load("stories260K-f32.gguf");
        Map<String, Object> golden = Json.read(SharedFiles.golden("stories260K.greedy.json"));
        Map<String, Object> example = Json.object(golden, "encode_example");
        assertArrayEquals(Json.ints(example, "token_ids_with_bos"), tok.encode(Json.string(example, "text"), true));
        assertEquals(Json.string(golden, "text"), tok.decode(Json.ints(golden, "token_ids")));
    }

    @ParameterizedTest
    @ValueSource(strings = {"austen-base", "austen-cla"})
    void encodesFirst511TokensOfPersuasionLikeSentencePiece(String model) throws IOException {
        Tokenizer tok = load(model + "-f16.gguf");
        int[] expected = Json.ints(Json.read(SharedFiles.golden(model + ".persuasion512.json")), "token_ids");
        String text = Files.readString(SharedFiles.data("persuasion.txt"));
        // 511 tokens need far fewer than 4000 characters; the prefix must not change them.
        int[] ids = tok.encode(text.substring(0, 4000), true);
        assertArrayEquals(expected, Arrays.copyOf(ids, expected.length));
        int[] full = tok.encode(text, true);
        assertArrayEquals(expected, Arrays.copyOf(full, expected.length));
    }

    @Test
    void encodesAndDecodesAllOfPersuasionLosslessly() throws IOException {
        // Speed is measured by the JMH TokenizerBenchmark, not here: this machine is shared.
        Tokenizer tok = load("austen-base-f16.gguf");
        String text = Files.readString(SharedFiles.data("persuasion.txt"));
        int[] ids = tok.encode(text, true);
        assertEquals(1, ids[0]);
        assertEquals(text, tok.decode(ids));
    }

    @Test
    void fallsBackToUtf8BytesForUnknownCharacters() throws IOException {
        Tokenizer tok = load("austen-base-f16.gguf");
        String text = "a\n€😀 b";
        int[] ids = tok.encode(text, false);
        assertEquals(text, tok.decode(ids));
        int newline = 3 + 0x0A;
        assertTrue(Arrays.stream(ids).anyMatch(i -> i == newline));
        // 😀 is F0 9F 98 80 in UTF-8: four byte tokens in a row.
        int[] emoji = {3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80};
        assertTrue(indexOf(ids, emoji) >= 0, Arrays.toString(ids));
        ByteArrayOutputStream streamed = new ByteArrayOutputStream();
        int prev = tok.bos();
        for (int id : ids) {
            streamed.writeBytes(tok.decodeToken(prev, id));
            prev = id;
        }
        assertEquals(text, streamed.toString(StandardCharsets.UTF_8));
    }

    @Test
    void mergesHighestScoringPairFirstAndLeftmostOnTies() {
        // Pieces: a b c, "ab" (score 1), "bc" (score 2), "▁" and "aa" (score 5).
        String[] pieces = {"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc", "aa"};
        float[] scores = {0, 0, 0, 0, 0, 0, 0, 1, 2, 5};
        int[] types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1};
        Tokenizer tok = new SentencePieceTokenizer(pieces, scores, types, 1, 2, 0, true, true);
        assertArrayEquals(new int[] {1, 3, 4, 8}, tok.encode("abc", true));
        assertArrayEquals(new int[] {3, 9, 4}, tok.encode("aaa", false));
        assertArrayEquals(new int[] {3, 9, 9}, tok.encode("aaaa", false));
        // No byte pieces: unknown characters become <unk>.
        assertArrayEquals(new int[] {3, 0, 0}, tok.encode("é", false));
        assertEquals("abc", tok.decode(new int[] {1, 3, 4, 8}));
    }

    @Test
    void encodesEmptyTextAsNoTokensWithoutDummyPrefix() throws IOException {
        Tokenizer tok = load("austen-base-f16.gguf");
        assertArrayEquals(new int[0], tok.encode("", false));
        assertArrayEquals(new int[] {1}, tok.encode("", true));
        assertEquals("", tok.decode(new int[] {1}));
    }

    @Test
    void rejectsInconsistentVocabulary() {
        assertThrows(IllegalArgumentException.class,
                () -> new SentencePieceTokenizer(new String[] {"a"}, new float[2], new int[1], 0, 0, 0, true, true));
        assertThrows(IllegalArgumentException.class,
                () -> new SentencePieceTokenizer(new String[] {"a"}, new float[1], new int[1], 1, 0, 0, true, true));
    }

    private static int indexOf(int[] a, int[] sub) {
        for (int i = 0; i + sub.length <= a.length; i++) {
            if (Arrays.equals(a, i, i + sub.length, sub, 0, sub.length)) {
                return i;
            }
        }
        return -1;
    }
}
