package io.github.kvcache4j.eval;

import io.github.kvcache4j.model.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Needle in a haystack: passkey accuracy of every policy over a grid of context lengths and
 * needle depths at one compression ratio. Cell (length, depth) is one prompt: BOS and
 * {@code length - 1} tokens of natural text from the evaluation text with the passkey sentence at
 * the requested depth ({@link PasskeyTask#build}), a key drawn from the cell's index; the context
 * is compressed to the ratio before the question, as in the passkey task. All policies share the
 * prefill of a cell ({@link SharedPrefill}).
 */
final class NeedleHeatmap {

    /**
     * Tokens a prompt needs after its context for the question and the decoded key (13 and 5 with
     * SentencePiece), so the longest default row, 2,000, fits the default window of 2,048.
     */
    static final int QUESTION_ROOM = 32;
    /** The grid of the default run: three lengths by five depths. */
    static final Grid SMALL = new Grid(new int[] {500, 1250, 2000}, new double[] {0, 0.25, 0.5, 0.75, 1});
    /** The full grid: lengths 256..2000, depths 0..100% in steps of 10%. */
    static final Grid FULL = new Grid(new int[] {256, 512, 768, 1024, 1280, 1536, 1792, 2000},
            new double[] {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1});

    /**
     * Context lengths (rows) and needle depths (columns) of a heatmap.
     *
     * @param lengths context tokens of each row, increasing
     * @param depths needle depth of each column, in {@code [0, 1]}
     */
    record Grid(int[] lengths, double[] depths) {
    }

    /**
     * Returns {@code grid} without the lengths whose prompt (context, question and answer) would
     * not fit in a window of {@code window} tokens, or null when none fits (no heatmap).
     */
    static Grid fitting(Grid grid, int window) {
        int[] lengths = java.util.Arrays.stream(grid.lengths()).filter(l -> l + QUESTION_ROOM <= window).toArray();
        return lengths.length == 0 ? null : new Grid(lengths, grid.depths());
    }

    /**
     * One policy's heatmap.
     *
     * @param policy the policy name
     * @param ratio the compression ratio
     * @param correct {@code correct[row][column]}: whether the key was decoded exactly
     */
    record Map(String policy, double ratio, boolean[][] correct) {

        /** Returns the fraction of cells answered correctly. */
        double accuracy() {
            int hits = 0;
            int cells = 0;
            for (boolean[] row : correct) {
                for (boolean c : row) {
                    hits += c ? 1 : 0;
                    cells++;
                }
            }
            return (double) hits / cells;
        }
    }

    private NeedleHeatmap() {
    }

    /**
     * Runs the grid for every policy in {@code names} (the full cache included, uncompressed);
     * filler text starts at the first word at or after {@code tokens[fillerFrom]}.
     *
     * @throws IllegalArgumentException if the text is too short for the longest context
     */
    static List<Map> run(EvalModel eval, Grid grid, List<String> names, double ratio, int[] tokens, int fillerFrom) {
        Tokenizer tok = eval.tokenizer();
        List<SharedPrefill.Config> configs = new ArrayList<>();
        for (String name : names) {
            configs.add(new SharedPrefill.Config(PolicyRegistry.create(name), name.equals(PolicyRegistry.FULL) ? 0 : ratio));
        }
        boolean[][][] correct = new boolean[names.size()][grid.lengths().length][grid.depths().length];
        PasskeyTask task = new PasskeyTask(eval);
        for (int r = 0; r < grid.lengths().length; r++) {
            int length = grid.lengths()[r];
            int[] filler = Evaluator.Samples.textAt(tok, tokens, fillerFrom, length + 64);
            for (int c = 0; c < grid.depths().length; c++) {
                int cell = r * grid.depths().length + c;
                String key = String.format(Locale.ROOT, "%05d", 10000 + new Random(cell).nextInt(90000));
                PasskeyTask.Prompt p = PasskeyTask.build(tok, filler, length, grid.depths()[c], key);
                List<PasskeyTask.Result> results = task.runAll(p, configs);
                for (int i = 0; i < names.size(); i++) {
                    correct[i][r][c] = results.get(i).correct();
                }
            }
        }
        List<Map> maps = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            maps.add(new Map(names.get(i), configs.get(i).ratio(), correct[i]));
        }
        return maps;
    }

    /** Returns the tokens the model runs for the grid with {@code configs} configurations (progress). */
    static long work(Grid grid, int configs) {
        long passes = (configs + SharedPrefill.MAX_GROUP - 1) / SharedPrefill.MAX_GROUP;
        long sum = 0;
        for (int length : grid.lengths()) {
            sum += grid.depths().length * (passes * length + configs * 17L);
        }
        return sum;
    }

    /** Returns the heatmaps as CSV: policy, ratio, context length, depth, correct (0 or 1). */
    static String csv(Grid grid, List<Map> maps) {
        StringBuilder sb = new StringBuilder("policy,ratio,context_tokens,depth,correct\n");
        for (Map m : maps) {
            for (int r = 0; r < grid.lengths().length; r++) {
                for (int c = 0; c < grid.depths().length; c++) {
                    sb.append(String.format(Locale.ROOT, "%s,%s,%d,%s,%d%n", m.policy(), m.ratio(), grid.lengths()[r],
                            grid.depths()[c], m.correct()[r][c] ? 1 : 0));
                }
            }
        }
        return sb.toString();
    }
}
