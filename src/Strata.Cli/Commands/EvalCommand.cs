using System.CommandLine;
using Strata.Composition;
using Strata.Evaluation;
using Strata.Generation;
using Strata.Runs;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class EvalCommand
{
    /// <summary>The options of eval and eval compare.</summary>
    private sealed class EvalOptions
    {
        public readonly Option<string?> Suite = Opt.Text("--suite", "suites (demo, ppl, quiz, paper) or single tasks, comma-separated", "S[,S...]");
        public readonly Option<string[]> Datasets = new("--dataset")
        {
            Description = "also measure loss, perplexity and bits per byte on the validation split of a prepared dataset (repeat it)",
            HelpName = "DIR", Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false,
        };
        public readonly Option<string> Protocols = Opt.Text("--protocols", string.Join(",", Protocol.MultipleChoice), "multiple-choice protocols", "P[,P...]");
        public readonly Option<int> Runs = Opt.Int("--runs", 1, "repeated generative runs (mean and 1.96·σ/√runs)");
        public readonly Option<double> Temperature = Opt.Double("--temperature", 0, "generative decoding temperature; 0 is greedy");
        public readonly Option<int> TopK = Opt.Int("--top-k", 0, "generative decoding: top-k (0: all)");
        public readonly Option<double> TopP = Opt.Double("--top-p", 1, "generative decoding: top-p");
        public readonly Option<long> Seed = Opt.Long("--seed", 1337, "seed of sampling, question selection and quiz distractors");
        public readonly Option<int?> Limit = Opt.OptionalInt("--limit", "at most this many questions per task");
        public readonly Option<long?> PplTokens = Opt.OptionalLong("--ppl-tokens", "perplexity tasks measure at most this many held-out tokens");
        public readonly Option<string?> Data = Opt.Text("--data", "where the public benchmark files are (default HOME/data/benchmarks)", "DIR");
        public readonly Option<string> Device = Opt.Device();

        public void AddTo(Command c) { foreach (var o in new Option[] { Suite, Datasets, Protocols, Runs, Temperature, TopK, TopP, Seed, Limit, PplTokens,
            Data, Device }) c.Add(o); }

        public (IReadOnlyList<EvalTask> Tasks, string Suite, EvalSettings Settings, TorchSharp.torch.Device Device) Read(ParseResult p, TextWriter output)
        {
            var datasets = p.GetValue(Datasets) ?? [];
            var suite = p.GetValue(Suite) ?? (datasets.Length > 0 ? "" : throw new StrataException("give --suite (demo, ppl, quiz, paper) or --dataset DIR"));
            var tasks = (suite.Length > 0 ? EvalSuites.Resolve(suite) : []).Concat(EvalSuites.Datasets(datasets)).ToList();
            suite = string.Join(",", new[] { suite }.Concat(datasets.Select(d => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(d)))))
                .Where(x => x.Length > 0));
            var protocols = p.GetValue(Protocols)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var name in protocols)
                if (!Protocol.MultipleChoice.Contains(name)) throw new StrataException(
                    $"--protocols: unknown '{name}' (known: {string.Join(", ", Protocol.MultipleChoice)})");
            if (p.GetValue(Runs) < 1) throw new StrataException($"--runs: at least 1, got {p.GetValue(Runs)}");
            if (p.GetValue(Limit) is < 1) throw new StrataException($"--limit: at least 1, got {p.GetValue(Limit)}");
            if (p.GetValue(PplTokens) is < 1) throw new StrataException($"--ppl-tokens: at least 1, got {p.GetValue(PplTokens)}");
            long seed = p.GetValue(Seed);
            var settings = new EvalSettings
            {
                Protocols = protocols,
                Runs = p.GetValue(Runs),
                Decoding = new SamplingOptions { Temperature = p.GetValue(Temperature), TopK = p.GetValue(TopK), TopP = p.GetValue(TopP), Seed = seed }
                    .Validate(int.MaxValue),
                Seed = seed,
                Limit = p.GetValue(Limit),
                PerplexityTokens = p.GetValue(PplTokens),
                DataDir = p.GetValue(Data),
                Log = output,
            };
            return (tasks, suite, settings, Devices.Parse(p.GetValue(Device)));
        }
    }

    public static Command Create(TextWriter output)
    {
        var options = new EvalOptions();
        var checkpoint = Opt.Text("--checkpoint", "a checkpoint, a stage-N.safetensors or an ensemble .json (required)", "CKPT|STAGE|ENSEMBLE.json");
        var outDir = Opt.Text("--out", "where eval.json and eval.md go (default: eval/NAME beside the model)", "DIR");
        var command = new Command("eval",
            "score a model by the paper's generative protocol and by log-likelihood, perplexity and bits per byte; eval.json and eval.md")
            { checkpoint, outDir, Compare(output) };
        options.AddTo(command);
        command.SetAction(p =>
        {
            var path = CheckpointPaths.Resolve(p.GetValue(checkpoint) ?? throw new StrataException("--checkpoint is required"));
            var (tasks, suite, settings, device) = options.Read(p, output);
            // each suite has its own folder: a second evaluation of other tasks does not replace the first one's report
            var dir = p.GetValue(outDir) ?? Path.Combine(RunDirectory.Of(path).Eval, $"{Path.GetFileNameWithoutExtension(path)}-{Slug(suite)}");
            var report = CausalLMFile.Evaluate(path, tasks, suite, settings, device);
            report.Save(dir);
            output.WriteLine();
            output.Write(report.Markdown());
            output.WriteLine($"\nwrote {Path.Combine(dir, EvalReport.JsonFile)} and {EvalReport.MarkdownFile}");
            return 0;
        });
        return command;
    }

    /// <summary>Checkpoints given directly, and every stage-N.safetensors (in order of N) of run folders.</summary>
    private static Command Compare(TextWriter output)
    {
        var options = new EvalOptions();
        var models = Opt.Many("MODEL", "checkpoints, ensembles, or run folders (each stands for its stage-N.safetensors)");
        var outDir = Opt.Required("--out", "where compare.md, compare.json and the depth figures go", "DIR");
        var command = new Command("compare",
            "several models (a run folder = its stages) side by side; compare.md and the metric-vs-depth figure depth.png") { models, outDir };
        options.AddTo(command);
        command.SetAction(p =>
        {
            var (tasks, suite, settings, device) = options.Read(p, output);
            var paths = new List<string>();
            foreach (var m in p.GetValue(models)!)
            {
                if (Directory.Exists(m))
                {
                    var stages = new RunDirectory(m).StageCheckpoints();
                    if (stages.Count == 0) throw new StrataException($"{m}: no stage-N.safetensors in this run folder");
                    paths.AddRange(stages);
                }
                else paths.Add(m);
            }
            var dir = p.GetValue(outDir)!;
            var reports = paths.Select(m => CausalLMFile.Evaluate(m, tasks, suite, settings, device)).ToList();
            EvalComparison.Save(dir, reports);
            output.WriteLine();
            output.Write(EvalComparison.Markdown(reports));
            output.WriteLine($"\nwrote {Path.Combine(dir, EvalComparison.MarkdownFile)}, {EvalComparison.JsonFile}" +
                             (reports.Any(r => r.Depth is not null)
                                 ? $" and the metric-vs-depth figures {EvalComparison.DepthPlotFile}, {EvalComparison.DepthBitsPlotFile}" : ""));
            return 0;
        });
        return command;
    }

    /// <summary>A folder-name form of a suite list: "ppl,quiz" -> "ppl+quiz".</summary>
    private static string Slug(string suite) =>
        new(suite.Replace(',', '+').Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '+' or '.' ? c : '_').Take(80).ToArray());
}
