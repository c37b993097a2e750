package io.github.kvcache4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.github.kvcache4j.testutil.Json;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The real Llama 3 (byte-level BPE, 128,256 tokens) and Llama 2 (SentencePiece, 32,000 pieces)
 * vocabularies of {@code ../shared/gguf-goldens} encode every golden case, and the whole of
 * Persuasion, to exactly the reference ids, and decode them back to the text.
 */
class TokenizerGoldenTest {

    private static Path goldens(String name) {
        return SharedFiles.shared().resolve("gguf-goldens").resolve(name);
    }

    static Tokenizer load(String vocab) throws IOException {
        try (GgufFile f = GgufFile.open(goldens(vocab + "-vocab.gguf"))) {
            return Tokenizer.fromGguf(f);
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> list(Map<String, Object> golden, String key) {
        return (List<Map<String, Object>>) golden.get(key);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "llama2"})
    void encodesEveryGoldenCaseToTheReferenceIdsAndDecodesItBack(String vocab) throws IOException {
        Tokenizer tok = load(vocab);
        List<Map<String, Object>> cases = list(Json.read(goldens(vocab + "-encodings.json")), "cases");
        assertEquals(45, cases.size());
        for (Map<String, Object> c : cases) {
            String text = Json.string(c, "text");
            int[] expected = Json.ints(c, "ids");
            String id = Json.string(c, "id");
            assertArrayEquals(expected, tok.encode(text, false), id);
            assertEquals(text, tok.decode(expected), id);
            // Streamed as a sampler emits it: token by token, characters split across tokens.
            ByteArrayOutputStream streamed = new ByteArrayOutputStream();
            int prev = tok.bos();
            for (int token : expected) {
                streamed.writeBytes(tok.decodeToken(prev, token));
                prev = token;
            }
            assertEquals(text, streamed.toString(StandardCharsets.UTF_8), id);
            int[] withBos = tok.encode(text, true);
            assertEquals(tok.bos(), withBos[0], id);
            assertArrayEquals(expected, Arrays.copyOfRange(withBos, 1, withBos.length), id);
            if (c.containsKey("ids_no_dummy_prefix")) {
                assertArrayEquals(Json.ints(c, "ids_no_dummy_prefix"), tok.encodeContinuation(text), id);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "llama2"})
    void encodesAllOfPersuasionToTheReferenceIdsByCountAndHash(String vocab) throws IOException, NoSuchAlgorithmException {
        Tokenizer tok = load(vocab);
        Map<String, Object> golden = list(Json.read(goldens(vocab + "-encodings.json")), "long_cases").get(0);
        String text = Files.readString(SharedFiles.data("persuasion.txt"), StandardCharsets.UTF_8);
        assertEquals((int) Json.number(golden, "n_chars"), text.length());
        long t0 = System.nanoTime();
        int[] ids = tok.encode(text, false);
        System.out.printf("%s: %d chars into %d tokens in %.3f s%n", vocab, text.length(), ids.length,
                (System.nanoTime() - t0) / 1e9);
        assertEquals((int) Json.number(golden, "n_tokens"), ids.length);
        assertArrayEquals(Json.ints(golden, "first_100"), Arrays.copyOf(ids, 100));
        assertArrayEquals(Json.ints(golden, "last_100"), Arrays.copyOfRange(ids, ids.length - 100, ids.length));
        String joined = Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(","));
        byte[] hash = MessageDigest.getInstance("SHA-256").digest(joined.getBytes(StandardCharsets.US_ASCII));
        assertEquals(Json.string(golden, "sha256_of_ids"), HexFormat.of().formatHex(hash));
        assertEquals(text, tok.decode(ids));
    }

    @Test
    void readsTheKindAndSpecialIdsOfEachVocabulary() throws IOException {
        Tokenizer llama3 = load("llama3");
        assertInstanceOf(BpeTokenizer.class, llama3);
        assertEquals(128256, llama3.vocabSize());
        assertEquals(128000, llama3.bos());
        assertEquals(128001, llama3.eos());
        assertEquals(true, llama3.addsBos());
        Tokenizer llama2 = load("llama2");
        assertInstanceOf(SentencePieceTokenizer.class, llama2);
        assertEquals(32000, llama2.vocabSize());
        assertEquals(1, llama2.bos());
        assertEquals(2, llama2.eos());
    }
}
