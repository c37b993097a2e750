package io.github.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BenchmarkReportTest {

    /** A trimmed JMH JSON file: four results at 1024 tokens and one without byte counts. */
    private static final String SAMPLE = """
            [
              {"jmhVersion": "1.37", "benchmark": "io.github.kvcache4j.bench.DecodeAttentionBenchmark.attend",
               "mode": "avgt", "threads": 1, "forks": 1, "jvmArgs": ["-Xmx2g"],
               "params": {"tokens": "1024", "dtype": "F32"},
               "primaryMetric": {"score": 110.0, "scoreError": "NaN", "scoreConfidence": [100.0, 120.0],
                 "scorePercentiles": {"0.0": 90.0, "50.0": 100.0, "100.0": 140.0},
                 "scoreUnit": "us/op", "rawData": [[90.0, 100.0, 140.0]]},
               "secondaryMetrics": {}},
              {"benchmark": "io.github.kvcache4j.bench.StreamingReadBenchmark.read", "mode": "avgt",
               "params": {"tokens": "1024", "bytesPerElement": "4"},
               "primaryMetric": {"score": 50.0, "scoreError": 1.5,
                 "scorePercentiles": {"50.0": 50.0}, "scoreUnit": "us/op", "rawData": [[50.0]]}},
              {"benchmark": "io.github.kvcache4j.bench.JlamaAttentionBenchmark.attend", "mode": "avgt",
               "params": {"tokens": "1024", "dtype": "F32"},
               "primaryMetric": {"score": 1.0, "scoreError": 0.0,
                 "scorePercentiles": {"50.0": 1.0}, "scoreUnit": "ms/op", "rawData": [[1.0]]}},
              {"benchmark": "io.github.kvcache4j.bench.ScalarLoopAttentionBenchmark.attend", "mode": "thrpt",
               "params": {"tokens": "1024", "dtype": "F32"},
               "primaryMetric": {"score": 2500.0, "scoreError": 0.0,
                 "scorePercentiles": {"50.0": 2500.0}, "scoreUnit": "ops/s", "rawData": [[2500.0]]}},
              {"benchmark": "io.github.kvcache4j.bench.PolicyCostBenchmark.append", "mode": "avgt",
               "params": {"policy": "knorm \\"q\\"\\u0021"},
               "primaryMetric": {"score": 3.0, "scoreError": 0.1, "scoreUnit": "us/op", "rawData": [[3.0]]}}
            ]
            """;

    @Test
    void parsesTheResults() {
        List<BenchmarkReport.Result> results = BenchmarkReport.parse(SAMPLE);
        assertEquals(5, results.size());
        BenchmarkReport.Result decode = results.get(0);
        assertEquals("DecodeAttention", decode.benchmark());
        assertEquals(Map.of("tokens", "1024", "dtype", "F32"), decode.params());
        assertEquals(100.0, decode.median()); // the 50th percentile, not the mean score
        assertEquals(110.0, decode.score());
        assertTrue(Double.isNaN(decode.error()));
        assertEquals("PolicyCost.append", results.get(4).benchmark());
        assertEquals("knorm \"q\"!", results.get(4).params().get("policy"));
        assertEquals(3.0, results.get(4).median()); // no percentiles: the score
    }

    @Test
    void computesBandwidthFromTheBytesRead() {
        List<BenchmarkReport.Result> results = BenchmarkReport.parse(SAMPLE);
        assertEquals(1024L * 8 * 128 * 2 * 4, results.get(0).bytesRead());
        assertEquals(8_388_608 / 100e-6 / 1e9, results.get(0).gbPerSecond(), 1e-9);
        assertEquals(8_388_608 / 50e-6 / 1e9, results.get(1).gbPerSecond(), 1e-9);
        assertEquals(400e-6, results.get(3).secondsPerOp(), 1e-15); // 2500 ops/s
        assertTrue(Double.isNaN(results.get(4).gbPerSecond()));
    }

    @Test
    void tableRelatesAttentionToCeilingAndPeers() {
        String table = BenchmarkReport.markdown(BenchmarkReport.parse(SAMPLE));
        String decodeRow = table.lines().filter(l -> l.startsWith("| DecodeAttention |")).findFirst().orElseThrow();
        assertEquals("| DecodeAttention | tokens=1024 dtype=F32 | 100 | 110 | us/op | 83.9 | 50% | 10.00× | 4.00× |",
                decodeRow);
        String streamingRow = table.lines().filter(l -> l.startsWith("| StreamingRead |")).findFirst().orElseThrow();
        assertTrue(streamingRow.endsWith("| 168 |  |  |  |"), streamingRow);
        String jlamaRow = table.lines().filter(l -> l.startsWith("| JlamaAttention |")).findFirst().orElseThrow();
        assertTrue(jlamaRow.endsWith("| 8.39 | 5% |  | 0.40× |"), jlamaRow);
    }

    @Test
    void writesAPlot(@TempDir Path dir) throws Exception {
        Path png = dir.resolve("jmh.png");
        BenchmarkReport.plot(BenchmarkReport.parse(SAMPLE), png);
        byte[] bytes = Files.readAllBytes(png);
        assertTrue(bytes.length > 1000);
        assertEquals((byte) 0x89, bytes[0]);
        assertEquals('P', bytes[1]);
    }

    @Test
    void rejectsBrokenJson() {
        assertThrows(IllegalArgumentException.class, () -> BenchmarkReport.parse("[{\"a\": 1,]"));
        assertThrows(IllegalArgumentException.class, () -> BenchmarkReport.parse("[] x"));
    }
}
