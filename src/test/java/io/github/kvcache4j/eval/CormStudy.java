package io.github.kvcache4j.eval;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.model.GgufFile;
import io.github.kvcache4j.model.LlamaModel;
import io.github.kvcache4j.model.Tokenizer;
import io.github.kvcache4j.testutil.SharedFiles;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Separates what CORM's numbers on austen-recall owe to the method and what to its settings: the
 * default ({@code w = r = 32}, {@code alpha = 1}), longer windows, a longer protected recent
 * window, and {@code alpha} so small that no key is ever dropped voluntarily (then only the
 * ranking by recent maximum attention at {@code compress} acts), next to SnapKV and TOVA, the
 * other policies that rank by recent queries. Continuation NLL on the first windows of the
 * kvpress protocol and passkey on replayed kvpress prompts; prints one Markdown row per variant.
 * Arguments: windows, passkey prompts, ratios (comma list).
 */
final class CormStudy {

    private CormStudy() {
    }

    /** Runs the study; see the class comment for the arguments. */
    public static void main(String[] args) throws IOException {
        int windows = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int prompts = args.length > 1 ? Integer.parseInt(args[1]) : 4;
        String[] ratios = (args.length > 2 ? args[2] : "0.5,0.9").split(",");
        String[] names = {"corm w=32 r=32 a=1 (default)", "corm w=64 r=64 a=1", "corm w=32 r=128 a=1",
            "corm w=32 r=32 a=0.5", "corm w=32 r=32 a=1e-9 (no voluntary drops)", "snapkv", "tova"};
        try (GgufFile gguf = GgufFile.open(SharedFiles.bundled("austen-recall-f16.gguf"));
             LlamaModel model = LlamaModel.load(gguf, 2)) {
            Tokenizer tok = Tokenizer.fromGguf(gguf);
            int[] tokens = tok.encode(Evaluator.readText(SharedFiles.bundled("persuasion.txt")), true);
            List<PasskeyTask.Prompt> replayed = ReplayedPasskey.load(SharedFiles.bundled("passkey-prompts.csv"), tok,
                    tokens);
            EvalModel eval = new EvalModel(model, tok, DType.F32, n -> { });
            System.out.println("| variant | ratio | NLL | KV MiB after compress | passkey |");
            System.out.println("| --- | ---: | ---: | ---: | ---: |");
            for (String r : ratios) {
                double ratio = Double.parseDouble(r);
                List<SharedPrefill.Config> configs = new ArrayList<>();
                for (CacheRecipe recipe : recipes()) {
                    configs.add(new SharedPrefill.Config(recipe, ratio));
                }
                double[] nll = new double[configs.size()];
                double[] mib = new double[configs.size()];
                ContinuationTask task = new ContinuationTask(eval);
                for (int w = 0; w < windows; w++) {
                    List<ContinuationTask.Result> res = task.runAll(ContinuationTask.window(tokens, 4096, w, ContinuationTask.WINDOW), configs,
                            cache -> { });
                    for (int i = 0; i < nll.length; i++) {
                        nll[i] += res.get(i).meanNll() / windows;
                        mib[i] += res.get(i).bytesAfterCompress() / 1048576.0 / windows;
                    }
                }
                int[] correct = new int[configs.size()];
                PasskeyTask passkey = new PasskeyTask(eval);
                for (int i : Evaluator.Samples.spread(replayed.size(), prompts)) {
                    List<PasskeyTask.Result> res = passkey.runAll(replayed.get(i), configs);
                    for (int c = 0; c < correct.length; c++) {
                        correct[c] += res.get(c).correct() ? 1 : 0;
                    }
                }
                for (int i = 0; i < names.length; i++) {
                    System.out.printf(Locale.ROOT, "| %s | %.2f | %.4f | %.2f | %d/%d |%n", names[i], ratio, nll[i],
                            mib[i], correct[i], prompts);
                }
            }
        }
    }

    private static List<CacheRecipe> recipes() {
        return List.of(CacheRecipe.of(Policies.corm()), CacheRecipe.of(Policies.corm(64, 64, 1.0, true)),
                CacheRecipe.of(Policies.corm(32, 128, 1.0, true)), CacheRecipe.of(Policies.corm(32, 32, 0.5, true)),
                CacheRecipe.of(Policies.corm(32, 32, 1e-9, true)), CacheRecipe.of(Policies.snapKv()),
                CacheRecipe.of(Policies.tova()));
    }
}
