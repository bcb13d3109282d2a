using Strata.Cli.Commands;
using Strata.Util;

namespace Strata.Cli;

/// <summary>One command per job; each is a thin file over library calls. The README's CLI reference lists the same
/// table (a test keeps them in step).</summary>
public static class Program
{
    public sealed record Command(string Name, string Usage, string Summary, IReadOnlySet<string> Flags, Func<Args, TextWriter, int> Run);

    public static IReadOnlyList<Command> Commands { get; } =
    [
        new("demo", "strata demo [--substrate binary|visual]", "prepare the data, grow the demo model (with a LoRA phase), report, plot, sample, evaluate each stage, then compose two experts", new HashSet<string>(), DemoCommand.Run),
        new("data prepare", "strata data prepare <files|folders>... --out DIR [--pattern *.txt] [--exclude REGEX] [--val-fraction 0.1] [--val-match REGEX] [--seed N] [--strip-ansi] [--tokenizer bvv241-2-3|bvv241-max|codepoint|FILE.json]",
            "text in, token shards (train.tokens, val.tokens, meta.json) out", new HashSet<string> { "strip-ansi" }, DataCommand.Prepare),
        new("tokenizer mine", "strata tokenizer mine CODE=PATH[,PATH...]... --out FILE [--n 2,3] [--top 1000]",
            "mine character n-grams per language (the bvv241 recipe) into the published list format", new HashSet<string>(), TokenizerCommand.Mine),
        new("tokenizer build", "strata tokenizer build (--vocab bvv241-2-3|bvv241-max | --ngrams FILE [--n 3,2] [--top 338] [--intersection FILE] [--vocab-size 65536|131072] [--name N]) --out DIR",
            "write tokenizer.json, tokenizer_config.json, special_tokens_map.json", new HashSet<string>(), TokenizerCommand.Build),
        new("tokenizer encode", "strata tokenizer encode [--tokenizer bvv241-2-3] TEXT...", "print ids and pieces", new HashSet<string>(), TokenizerCommand.Encode),
        new("substrate build", "strata substrate build " + SubstrateCommand.SpecOptions + " [--out FILE]",
            "build (or read) a frozen token interface: the table, its recipe and its sha256; visual tables are cached in data/substrates", new HashSet<string> { "affine", "float" }, SubstrateCommand.Build),
        new("substrate show", "strata substrate show (FILE | " + SubstrateCommand.SpecOptions + ") [--tokens A,中,the] --out DIR",
            "look at an interface: projection.png (first two principal axes, coloured by script) and, for visual ones, glyphs.png", new HashSet<string> { "affine", "float" }, SubstrateCommand.Show),
        new("train", "strata train --plan FILE --out DIR [--resume] [--init-from CKPT] [--stop-after STEPS] [--device cpu|cuda]",
            "run a plan's stages; checkpoints, metrics.jsonl, TensorBoard events, loss_curve.png", new HashSet<string> { "resume" }, TrainCommand.Run),
        new("grow", "strata grow --checkpoint CKPT --plan FILE --out DIR [--device cpu|cuda]",
            "continue a finished run (or a stage-N.safetensors) with the plan's stages: growth is open-ended", new HashSet<string>(), GrowCommand.Run),
        new("study", "strata study PLAN... --out DIR [--device cpu|cuda]",
            "train several regimes on identical data and protocol; report.md, report.json, loss_curves.png", new HashSet<string>(), StudyCommand.Run),
        new("generate", "strata generate --checkpoint FILE|ENSEMBLE.json [--prompt TEXT] [--max-new-tokens 200] [--temperature 0.8] [--top-k 0] [--top-p 1] [--seed N] [--no-cache] [--device cpu|cuda]",
            "stream a continuation (temperature 0 = greedy)", new HashSet<string> { "no-cache" }, GenerateCommand.Run),
        new("compose", "strata compose CKPT CKPT... --out ENSEMBLE.json [--eval SHARD[,SHARD]] [--eval-batches 8] [--batch-size 8] [--train-adapter SHARD] [--adapter-steps 100] [--adapter-lr 0.01] [--device cpu|cuda]",
            "a logit-averaging ensemble of models on one frozen interface; optionally each expert's and the ensemble's validation loss", new HashSet<string>(), ComposeCommand.Run),
        new("eval", "strata eval --checkpoint CKPT|STAGE|ENSEMBLE.json " + EvalCommand.Options + " [--out DIR]",
            "score a model by the paper's generative protocol and by log-likelihood, perplexity and bits per byte; eval.json and eval.md", new HashSet<string>(), EvalCommand.Run),
        new("eval compare", "strata eval compare CKPT|RUN_DIR... --out DIR " + EvalCommand.Options,
            "several models (a run folder = its stages) side by side; compare.md and the metric-vs-depth figure depth.png", new HashSet<string>(), EvalCommand.Compare),
        new("export", "strata export --checkpoint CKPT --format hf --out DIR", "a Hugging Face GPTNeoXForCausalLM directory (config.json, model.safetensors, tokenizer, strata.json)", new HashSet<string>(), InteropCommand.Export),
        new("import", "strata import DIR --out CKPT", "a GPT-NeoX directory (model.safetensors or pytorch_model.bin) as a Strata checkpoint", new HashSet<string>(), InteropCommand.Import),
        new("info", "strata info <checkpoint|plan>", "shape, depth, stages and parameter counts", new HashSet<string>(), InfoCommand.Run),
    ];

    public static int Main(string[] args)
    {
        NativeAllocator.KeepFreedMemory();
        return Run(args, Console.Out, Console.Error);
    }

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            output.WriteLine("Strata: grow Transformer language models layer by layer on a frozen token interface.\n\nCommands:");
            foreach (var c in Commands) output.WriteLine($"  {c.Usage}\n      {c.Summary}");
            return args.Length == 0 ? 2 : 0;
        }
        var command = Commands.Where(c => args.Take(c.Name.Split(' ').Length).SequenceEqual(c.Name.Split(' ')))
            .MaxBy(c => c.Name.Length);
        if (command is null)
        {
            error.WriteLine($"error: unknown command '{string.Join(' ', args.Take(2))}' (see 'strata --help')");
            return 2;
        }
        try
        {
            var parsed = new Args(args.Skip(command.Name.Split(' ').Length), command.Flags);
            return command.Run(parsed, output);
        }
        catch (StrataException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
