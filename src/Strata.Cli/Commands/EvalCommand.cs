using Strata.Composition;
using Strata.Evaluation;
using Strata.Generation;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class EvalCommand
{
    public const string Options = "--suite S[,S...] [--protocols generative,loglik-letter,loglik-cloze] [--runs 1] [--temperature 0] [--top-k 0] [--top-p 1] [--seed 1337] [--limit N] [--ppl-tokens N] [--data DIR] [--device cpu|cuda]";

    public static int Run(Args a, TextWriter output)
    {
        var path = a.Require("checkpoint");
        var (tasks, suite, settings, device) = Read(a, output);
        var outDir = a.Get("out") ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "eval", Path.GetFileNameWithoutExtension(path));
        a.RejectUnknown();
        var report = Evaluate(path, tasks, suite, settings, device, output);
        report.Save(outDir);
        output.WriteLine();
        output.Write(report.Markdown());
        output.WriteLine($"\nwrote {Path.Combine(outDir, EvalReport.JsonFile)} and {EvalReport.MarkdownFile}");
        return 0;
    }

    /// <summary>Checkpoints given directly, and every stage-N.safetensors (in order of N) of run folders.</summary>
    public static int Compare(Args a, TextWriter output)
    {
        var (tasks, suite, settings, device) = Read(a, output);
        var outDir = a.Require("out");
        a.RejectUnknown();
        var models = new List<string>();
        foreach (var p in a.Positionals)
        {
            if (Directory.Exists(p))
            {
                var stages = Directory.GetFiles(p, "stage-*.safetensors").OrderBy(f => int.TryParse(Path.GetFileNameWithoutExtension(f)[6..], out var n) ? n : int.MaxValue).ToList();
                if (stages.Count == 0) throw new StrataException($"{p}: no stage-N.safetensors in this run folder");
                models.AddRange(stages);
            }
            else models.Add(p);
        }
        if (models.Count == 0) throw new StrataException("give checkpoints, ensembles or run folders to compare");
        var reports = models.Select(m => Evaluate(m, tasks, suite, settings, device, output)).ToList();
        EvalComparison.Save(outDir, reports);
        output.WriteLine();
        output.Write(EvalComparison.Markdown(reports));
        output.WriteLine($"\nwrote {Path.Combine(outDir, EvalComparison.MarkdownFile)}, {EvalComparison.JsonFile}" +
                         (reports.Any(r => r.Depth is not null) ? $" and the metric-vs-depth figures {EvalComparison.DepthPlotFile}, {EvalComparison.DepthBitsPlotFile}" : ""));
        return 0;
    }

    private static (IReadOnlyList<EvalTask>, string, EvalSettings, TorchSharp.torch.Device) Read(Args a, TextWriter output)
    {
        var suite = a.Require("suite");
        var tasks = EvalSuites.Resolve(suite);
        var protocols = (a.Get("protocols") ?? string.Join(",", Protocol.MultipleChoice)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var p in protocols)
            if (!Protocol.MultipleChoice.Contains(p)) throw new StrataException($"--protocols: unknown '{p}' (known: {string.Join(", ", Protocol.MultipleChoice)})");
        int runs = a.Int("runs", 1);
        if (runs < 1) throw new StrataException($"--runs: at least 1, got {runs}");
        int? limit = a.Get("limit") is null ? null : a.Int("limit", 0);
        if (limit is < 1) throw new StrataException($"--limit: at least 1, got {limit}");
        long? pplTokens = a.Get("ppl-tokens") is null ? null : a.Long("ppl-tokens", 0);
        if (pplTokens is < 1) throw new StrataException($"--ppl-tokens: at least 1, got {pplTokens}");
        long seed = a.Long("seed", 1337);
        var settings = new EvalSettings
        {
            Protocols = protocols,
            Runs = runs,
            Decoding = new SamplingOptions { Temperature = a.Double("temperature", 0), TopK = a.Int("top-k", 0), TopP = a.Double("top-p", 1), Seed = seed },
            Seed = seed,
            Limit = limit,
            PerplexityTokens = pplTokens,
            DataDir = a.Get("data"),
            Home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory(),
            Log = output,
        };
        return (tasks, suite, settings, Devices.Parse(a.Get("device")));
    }

    public static EvalReport Evaluate(string path, IReadOnlyList<EvalTask> tasks, string suite, EvalSettings settings, TorchSharp.torch.Device? device, TextWriter output)
    {
        using var file = CausalLMFile.Load(path, device);
        var tokenizer = Tokenizers.ByName(file.Tokenizer);
        if (tokenizer.VocabSize > file.Model.Config.VocabSize)
            throw new StrataException($"{path}: tokenizer '{file.Tokenizer}' has {tokenizer.VocabSize:N0} ids but the model's vocabulary is {file.Model.Config.VocabSize:N0}");
        output.WriteLine($"== evaluating {path}{(file.Depth is { } d ? $" (depth {d})" : "")} on '{suite}'");
        return EvalReport.Run(new Scorer(file.Model, tokenizer), path, file.Depth, suite, tasks, settings);
    }
}
