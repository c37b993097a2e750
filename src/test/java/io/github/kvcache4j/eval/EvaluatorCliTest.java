package io.github.kvcache4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The evaluator's command line: defaults, parsing, and clear rejection of bad options. */
class EvaluatorCliTest {

    private record Run(int status, String out, String err) {
    }

    private static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Evaluator.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static void assertRejected(String expectedMessage, String... args) {
        Run r = run(args);
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains(expectedMessage), "stderr: " + r.err());
        assertTrue(r.out().isEmpty(), "nothing on stdout: " + r.out());
    }

    @Test
    void defaultsMatchTheDocumentedRun() throws UsageException {
        EvalOptions o = EvalOptions.parse();
        assertEquals(Path.of("data", "austen-recall-f16.gguf"), o.model());
        assertEquals(Path.of("data", "persuasion.txt"), o.text());
        assertEquals(4096, o.start());
        assertEquals(List.copyOf(PolicyRegistry.names()), o.policies());
        assertArrayEquals(new double[] {0.25, 0.5, 0.75, 0.9}, o.ratios());
        assertEquals(4, o.windows());
        assertEquals(DType.F32, o.dtype());
        assertEquals(Path.of("target", "eval"), o.out());
        assertEquals(EvalOptions.DEFAULT_PASSKEY, o.passkeySamples());
        assertEquals(Path.of("data", "passkey-prompts.csv"), o.passkeyPrompts());
        assertEquals(Path.of("data", "austen-recall-less.bin"), o.lessMap());
    }

    @Test
    void parsesEveryOptionInBothForms() throws UsageException {
        EvalOptions o = EvalOptions.parse("--model", "m.gguf", "--text=t.txt", "--start", "10", "--policies",
                "KNORM, tova,knorm", "--ratios=0.5,0,0.5", "--windows", "16", "--passkey", "0", "--copy=1",
                "--threads", "3", "--dtype", "bf16", "--out", "o", "--passkey-prompts", "p.csv", "--less-map=m.bin");
        assertEquals(Path.of("m.gguf"), o.model());
        assertEquals(Path.of("t.txt"), o.text());
        assertEquals(10, o.start());
        assertEquals(List.of("knorm", "tova"), o.policies());
        assertArrayEquals(new double[] {0.5, 0.0}, o.ratios());
        assertEquals(16, o.windows());
        assertEquals(0, o.passkeySamples());
        assertEquals(1, o.copySamples());
        assertEquals(3, o.threads());
        assertEquals(DType.BF16, o.dtype());
        assertEquals(Path.of("o"), o.out());
        assertEquals(Path.of("p.csv"), o.passkeyPrompts());
        assertEquals(Path.of("m.bin"), o.lessMap());
    }

    @Test
    void parsesTheStorageFormatsOfTheSweep() throws UsageException {
        assertEquals(List.of(), EvalOptions.parse().kvFormats(), "no sweep by default");
        EvalOptions o = EvalOptions.parse("--dtypes", "f16, Q8,q4,Q4R,q4r", "--dtype", "q8");
        assertEquals(List.of(KvFormat.of(DType.F16), KvFormat.of(DType.Q8), KvFormat.of(DType.Q4),
                new KvFormat(DType.Q4, true)), o.kvFormats());
        assertEquals(List.of("F16", "Q8", "Q4", "Q4R"), o.kvFormats().stream().map(KvFormat::name).toList());
        assertEquals(DType.Q8, o.dtype());
        assertRejected("--dtypes: 'F16R' is not one of F32, F16, BF16, Q8, Q4, Q8R, Q4R", "--dtypes", "Q8,F16R");
        assertRejected("--dtypes: empty list", "--dtypes", ",");
    }

    @Test
    void helpListsOptionsAndPolicies() {
        Run r = run("--help");
        assertEquals(0, r.status());
        for (String s : new String[] {"--model", "--text", "--start", "--policies", "--ratios", "--windows",
            "--threads", "--out", "snapkv", "streaming_llm", "corm"}) {
            assertTrue(r.out().contains(s), s + " in " + r.out());
        }
    }

    @Test
    void rejectsRatiosOutsideZeroToOne() {
        assertRejected("--ratios: 1 is outside [0, 1)", "--ratios", "0.5,1");
        assertRejected("--ratios: -0.1 is outside [0, 1)", "--ratios=-0.1");
        assertRejected("--ratios: 'half' is not a number", "--ratios", "half");
        assertRejected("--ratios: NaN is outside [0, 1)", "--ratios", "NaN");
    }

    @Test
    void rejectsUnknownPoliciesNamingTheKnownOnes() {
        assertRejected("--policies: unknown policy 'lru'; known: full, streaming_llm, knorm, knorm_skip01, snapkv, h2o, tova, corm",
                "--policies", "knorm,lru");
        assertRejected("--policies: empty list", "--policies", ",");
    }

    @Test
    void rejectsBadNumbersAndUnknownOptions() {
        assertRejected("--windows: 0 must be at least 1", "--windows", "0");
        assertRejected("--threads: 'two' is not an integer", "--threads", "two");
        assertRejected("--start: -1 must be at least 0", "--start", "-1");
        assertRejected("--dtype: 'f8' is not one of f32, f16, bf16", "--dtype", "f8");
        assertRejected("--window: 3 must be at least 256", "--window", "3");
        assertRejected("unknown option '--widow'", "--widow", "3");
        assertRejected("--out: missing value", "--out");
        assertRejected("unexpected argument 'knorm'", "knorm");
    }

    @Test
    void rejectsMissingFiles(@TempDir Path dir) {
        assertRejected("--model: file not found: " + dir.resolve("none.gguf").toAbsolutePath(),
                "--model", dir.resolve("none.gguf").toString());
        assertRejected("--text: file not found: ", "--model", SharedFiles.bundled("austen-base-f16.gguf").toString(),
                "--text", dir.resolve("none.txt").toString());
    }

    @Test
    void rejectsWindowsBeyondTheText(@TempDir Path dir) throws Exception {
        Path text = Files.writeString(dir.resolve("short.txt"), "A short text. ".repeat(200));
        assertRejected("--start/--windows: 4 windows from token 4096 need 12288 tokens",
                "--model", SharedFiles.bundled("austen-base-f16.gguf").toString(), "--text", text.toString());
    }

    @Test
    void runsASmallEvaluationAndWritesTableCsvAndPlot(@TempDir Path dir) throws Exception {
        Path text = Files.writeString(dir.resolve("t.txt"),
                Evaluator.readText(SharedFiles.bundled("persuasion.txt")).substring(0, 40_000));
        Run r = run("--model", SharedFiles.bundled("austen-base-f16.gguf").toString(), "--text", text.toString(),
                "--start", "0", "--windows", "1", "--policies", "knorm", "--ratios", "0.5", "--passkey", "0",
                "--copy", "1", "--out", dir.resolve("out").toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().lines().anyMatch(l -> l.matches("knorm\\s+0\\.50\\s+768\\s+6\\.00\\s.*")), r.out());
        List<String> csv = Files.readAllLines(dir.resolve("out").resolve("results.csv"));
        assertEquals(3, csv.size(), "header, full, knorm 0.5");
        assertTrue(csv.get(0).startsWith("policy,ratio,kept_tokens,kv_bytes"), csv.get(0));
        assertTrue(csv.get(1).startsWith("full,0,1536,12582912,12582912,"), csv.get(1));
        assertTrue(csv.get(2).startsWith("knorm,0.5,768,6291456,6291456,"), csv.get(2));
        assertEquals(3, Files.readAllLines(dir.resolve("out").resolve("windows.csv")).size());
        byte[] png = Files.readAllBytes(dir.resolve("out").resolve("nll-vs-kv-memory.png"));
        assertEquals((byte) 0x89, png[0]);
        assertEquals('P', png[1]);
    }

    @Test
    void progressFormatsDurations() {
        assertEquals("42s", Progress.duration(42.2));
        assertEquals("3m05s", Progress.duration(185));
        assertEquals("1h02m", Progress.duration(3720));
    }

    @Test
    void progressRedrawsOneLineOnATerminalAndWritesLinesElsewhere() {
        long[] now = {0};
        for (boolean terminal : new boolean[] {true, false}) {
            now[0] = 0;
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), 100, terminal, () -> now[0]);
            p.advance(1);
            assertEquals("", bytes.toString(StandardCharsets.UTF_8), "silent for the first two seconds");
            // One report every 0.5 s for 30 s: a terminal redraws each, a pipe gets one per 10 s.
            for (int i = 0; i < 60; i++) {
                now[0] = 2_000_000_000L + i * 500_000_000L;
                p.advance(1);
            }
            p.finish();
            String s = bytes.toString(StandardCharsets.UTF_8);
            if (terminal) {
                assertEquals(61, s.chars().filter(c -> c == '\r').count(), s);
                assertEquals(1, s.chars().filter(c -> c == '\n').count(), "one line: " + s);
            } else {
                assertEquals(0, s.chars().filter(c -> c == '\r').count(), s);
                assertEquals(List.of("progress   2% 2s elapsed, ETA 1m38s", "progress  22% 12s elapsed, ETA 43s",
                        "progress  42% 22s elapsed, ETA 30s", "progress 100% 32s"), s.lines().toList());
            }
        }
    }

    @Test
    void unknownPolicyFromTheRegistryIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> PolicyRegistry.create("lru"));
    }
}
