package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;

/**
 * The evaluator's command-line options.
 *
 * @param model the GGUF model
 * @param text the evaluation text (UTF-8)
 * @param start token index (in {@code [BOS] + encode(text)}) of the first window's first token
 * @param policies policy names, in report order; the full cache always runs as the baseline
 * @param ratios compression ratios, each in {@code [0, 1)}
 * @param windows continuation windows
 * @param window tokens per window; 0 for {@value ContinuationTask#WINDOW} or the model's context
 *     length if shorter
 * @param passkeySamples replayed passkey prompts (0: skip the task)
 * @param passkeyPrompts the list of replayed passkey prompts ({@link ReplayedPasskey})
 * @param copySamples copy prompts (0: skip the task)
 * @param threads matrix-product threads
 * @param dtype cache storage type
 * @param kvFormats the storage formats of the format sweep ({@link KvFormatSweep}), or empty for
 *     the ordinary run in {@code dtype}
 * @param lessMap the trained LESS feature map of the {@code +less_learned} policies
 * @param heatmap the needle-in-a-haystack grid, or null to skip it
 * @param heatmapRatio the compression ratio of the heatmaps
 * @param decodeTimeWindows windows of the decode-time memory-bound protocol (0: skip it)
 * @param out output directory
 * @param help whether to print the usage and stop
 */
record EvalOptions(Path model, Path text, int start, List<String> policies, double[] ratios, int windows,
                   int window, int passkeySamples, Path passkeyPrompts, int copySamples, int threads, DType dtype,
                   List<KvFormat> kvFormats, Path lessMap, NeedleHeatmap.Grid heatmap, double heatmapRatio, int decodeTimeWindows, Path out,
                   boolean help) {

    /** Replayed passkey prompts of the default run. */
    static final int DEFAULT_PASSKEY = 10;
    /** Copy prompts of the default run. */
    static final int DEFAULT_COPY = 1;
    /**
     * Smallest window: a copy prompt's 64-token span starts up to a quarter into its context
     * (three quarters of the window) after 64 tokens, and must end inside it.
     */
    static final int MIN_WINDOW = 256;

    /** The usage text printed by {@code --help}. */
    static final String USAGE = """
            Usage: Evaluator [options]
            Scores every eviction policy by quality against KV memory on a GGUF Llama model.

              --model PATH       GGUF model (default data/austen-recall-f16.gguf)
              --text PATH        evaluation text, UTF-8 (default data/persuasion.txt)
              --start N          first token of the first window, an index into [BOS] + encode(text)
                                 (default 4096, the kvpress golden file's first window)
              --policies LIST    comma list of %s
                                 (default: all); the full cache always runs as the baseline
              --ratios LIST      compression ratios in [0, 1), the fraction of the context removed
                                 (default 0.25,0.5,0.75,0.9)
              --windows N        continuation windows (default 4; 16 = the kvpress file)
              --window N         tokens per window, 3/4 context and 1/4 continuation; copy prompts
                                 scale with it (default 2048, or the model's context if shorter)
              --passkey N        replayed kvpress passkey prompts, spread over the depths
                                 (default %d of %d; 0 skips the task)
              --passkey-prompts PATH  the prompt list (default data/passkey-prompts.csv)
              --copy N           copy-retrieval prompts (default %d; 0 skips the task)
              --threads N        matrix-product threads (default: available processors)
              --dtype TYPE       cache storage: f32, f16, bf16, q8 or q4 (default f32)
              --dtypes LIST      run the storage-format sweep instead: every policy and ratio in each
                                 format of the comma list of F32, F16, BF16, Q8, Q4, Q8R, Q4R (R: keys
                                 rotated before quantizing); writes kv-formats.md/.csv and two plots
              --less-map PATH    trained LESS maps of the +less_learned policies
                                 (default data/austen-recall-less.bin)
              --heatmap GRID     needle-in-a-haystack heatmaps: small (3 lengths x 5 depths, default),
                                 full (lengths 256..2000 x depths 0..100%% by 10%%) or off
              --heatmap-ratio R  compression ratio of the heatmaps (default 0.5)
              --decode-time N    also run the decode-time memory bound (the cache never holds more than
                                 the budget) on N windows and the passkey prompts (default 0: skip)
              --out DIR          output directory for results.csv and the plot (default target/eval)
              --help             print this text
            """.formatted(String.join(", ", PolicyRegistry.names()), DEFAULT_PASSKEY, 50, DEFAULT_COPY);

    /**
     * Parses {@code args} ({@code --name value} or {@code --name=value}).
     *
     * @throws UsageException if an option is unknown, lacks its value, or its value is out of range
     */
    static EvalOptions parse(String... args) throws UsageException {
        Path model = Path.of("data", "austen-recall-f16.gguf");
        Path text = Path.of("data", "persuasion.txt");
        int start = 4096;
        List<String> policies = new ArrayList<>(PolicyRegistry.names());
        double[] ratios = {0.25, 0.5, 0.75, 0.9};
        int windows = 4;
        int window = 0;
        int passkey = DEFAULT_PASSKEY;
        Path passkeyPrompts = Path.of("data", "passkey-prompts.csv");
        int copy = DEFAULT_COPY;
        Path lessMap = Path.of("data", "austen-recall-less.bin");
        NeedleHeatmap.Grid heatmap = NeedleHeatmap.SMALL;
        double heatmapRatio = 0.5;
        int decodeTime = 0;
        int threads = Runtime.getRuntime().availableProcessors();
        DType dtype = DType.F32;
        List<KvFormat> kvFormats = List.of();
        Path out = Path.of("target", "eval");
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.isBlank()) {
                continue;
            }
            if (arg.equals("--help") || arg.equals("-h")) {
                return new EvalOptions(model, text, start, policies, ratios, windows, window, passkey, passkeyPrompts,
                        copy, threads, dtype, kvFormats, lessMap, heatmap, heatmapRatio, decodeTime, out, true);
            }
            if (!arg.startsWith("--")) {
                throw new UsageException("unexpected argument '" + arg + "' (options start with --; see --help)");
            }
            String name = arg;
            String value;
            int eq = arg.indexOf('=');
            if (eq >= 0) {
                name = arg.substring(0, eq);
                value = arg.substring(eq + 1);
            } else if (i + 1 < args.length) {
                value = args[++i];
            } else {
                throw new UsageException(name + ": missing value");
            }
            switch (name) {
                case "--model" -> model = Path.of(value);
                case "--text" -> text = Path.of(value);
                case "--start" -> start = integer(name, value, 0);
                case "--policies" -> policies = policies(value);
                case "--ratios" -> ratios = ratios(value, name);
                case "--windows" -> windows = integer(name, value, 1);
                case "--window" -> window = integer(name, value, MIN_WINDOW);
                case "--passkey" -> passkey = integer(name, value, 0);
                case "--passkey-prompts" -> passkeyPrompts = Path.of(value);
                case "--less-map" -> lessMap = Path.of(value);
                case "--heatmap" -> heatmap = grid(value);
                case "--decode-time" -> decodeTime = integer(name, value, 0);
                case "--heatmap-ratio" -> heatmapRatio = ratios(value, name)[0];
                case "--copy" -> copy = integer(name, value, 0);
                case "--threads" -> threads = integer(name, value, 1);
                case "--dtype" -> dtype = dtype(value);
                case "--dtypes" -> kvFormats = kvFormats(value);
                case "--out" -> out = Path.of(value);
                default -> throw new UsageException("unknown option '" + name + "' (see --help)");
            }
        }
        return new EvalOptions(model, text, start, policies, ratios, windows, window, passkey, passkeyPrompts, copy,
                threads, dtype, kvFormats, lessMap, heatmap, heatmapRatio, decodeTime, out, false);
    }

    private static int integer(String name, String value, int min) throws UsageException {
        int v;
        try {
            v = Integer.parseInt(value.strip());
        } catch (NumberFormatException e) {
            throw new UsageException(name + ": '" + value + "' is not an integer");
        }
        if (v < min) {
            throw new UsageException(name + ": " + v + " must be at least " + min);
        }
        return v;
    }

    private static List<String> policies(String value) throws UsageException {
        LinkedHashSet<String> names = new LinkedHashSet<>();
        for (String part : value.split(",")) {
            String name = part.strip().toLowerCase(Locale.ROOT);
            if (name.isEmpty()) {
                continue;
            }
            if (!PolicyRegistry.contains(name)) {
                throw new UsageException("--policies: unknown policy '" + part.strip() + "'; known: "
                        + String.join(", ", PolicyRegistry.names()));
            }
            names.add(name);
        }
        if (names.isEmpty()) {
            throw new UsageException("--policies: empty list; known: " + String.join(", ", PolicyRegistry.names()));
        }
        return List.copyOf(names);
    }

    private static NeedleHeatmap.Grid grid(String value) throws UsageException {
        return switch (value.strip().toLowerCase(Locale.ROOT)) {
            case "small" -> NeedleHeatmap.SMALL;
            case "full" -> NeedleHeatmap.FULL;
            case "off" -> null;
            default -> throw new UsageException("--heatmap: '" + value + "' is not one of small, full, off");
        };
    }

    private static double[] ratios(String value, String name) throws UsageException {
        List<Double> list = new ArrayList<>();
        for (String part : value.split(",")) {
            if (part.isBlank()) {
                continue;
            }
            double r;
            try {
                r = Double.parseDouble(part.strip());
            } catch (NumberFormatException e) {
                throw new UsageException(name + ": '" + part.strip() + "' is not a number");
            }
            if (!(r >= 0.0 && r < 1.0)) {
                throw new UsageException(name + ": " + part.strip()
                        + " is outside [0, 1) (the fraction of the context removed; 0 = no compression)");
            }
            if (!list.contains(r)) {
                list.add(r);
            }
        }
        if (list.isEmpty()) {
            throw new UsageException(name + ": empty list, give at least one ratio in [0, 1)");
        }
        return list.stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static DType dtype(String value) throws UsageException {
        try {
            return DType.valueOf(value.strip().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--dtype: '" + value + "' is not one of f32, f16, bf16, q8, q4");
        }
    }

    private static List<KvFormat> kvFormats(String value) throws UsageException {
        LinkedHashSet<KvFormat> formats = new LinkedHashSet<>();
        for (String part : value.split(",")) {
            if (!part.isBlank()) {
                formats.add(KvFormat.parse(part));
            }
        }
        if (formats.isEmpty()) {
            throw new UsageException("--dtypes: empty list, give at least one of F32, F16, BF16, Q8, Q4, Q8R, Q4R");
        }
        return List.copyOf(formats);
    }
}
