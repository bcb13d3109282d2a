using System.Collections.Concurrent;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Training;

namespace Strata.Tests;

/// <summary>The checkpoints the export tests take to other runtimes, each trained once per test run on the SOTU
/// characters (context 128, so that a prompt and 32 generated tokens fit without the cache restarting).</summary>
internal static class ExportModels
{
    /// <summary>The models an export must carry: every token interface, LoRA merged at a stage's end and kept unmerged
    /// (merged by the export), and a bf16-trained one.</summary>
    public static readonly string[] Kinds = ["frozen-16bit", "visual", "trainable", "lora-merged", "lora-kept", "bf16"];

    private static readonly ConcurrentDictionary<string, Lazy<string>> Trained = new();

    /// <summary>The final checkpoint of the run for <paramref name="kind"/>.</summary>
    public static string Checkpoint(string kind) => Trained.GetOrAdd(kind, k => new Lazy<string>(() => Train(k))).Value;

    private static readonly Lazy<string> Bvv241Sotu = new(() =>
    {
        var dir = TestPaths.TempDir();
        Data.DataPreparer.Prepare(new Data.PrepareOptions
        {
            Inputs = [Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data")], OutDir = dir,
            ValidationMatch = Data.HeldOutCorpus.Sotu.ValidationMatch, Tokenizer = Bvv241Builder.TwoThree,
        });
        return dir;
    });

    private static string Train(string kind)
    {
        var plan = SotuData.Plan(40, context: 128, lr: 1e-2);
        plan = kind switch
        {
            "frozen-16bit" => plan,
            // the glyphs are drawn from the vocabulary's strings: the corpus in bvv241-2-3's ids
            "visual" => plan with
            {
                Substrate = new SubstrateSpec { Kind = SubstrateKind.Visual, Lift = SubstrateLift.Truncate }, Data = SotuData.DataAt(Bvv241Sotu.Value),
            },
            "trainable" => SotuData.Plan(40, context: 128, lr: 1e-2, kind: SubstrateKind.Trainable),
            "lora-merged" or "lora-kept" => plan with
            {
                Stages =
                [
                    new StageConfig { Name = "two blocks", AddBlocks = 2, Steps = 30 },
                    new StageConfig { Name = "third block + lora", AddBlocks = 1, Steps = 20, Lora = new LoraConfig
                        { Rank = 2, Alpha = 4, Targets = [LoraTarget.Qkv, LoraTarget.Fc1, LoraTarget.Fc2], Merge = kind == "lora-merged" } },
                ],
            },
            "bf16" => plan with { Training = plan.Training with { Precision = Precision.Bf16 } },
            _ => throw new ArgumentException(kind),
        };
        var dir = TestPaths.TempDir();
        Trainer.Run(plan.Validate(kind), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return Path.Combine(dir, RunDirectory.CheckpointName);
    }

    /// <summary>An untrained checkpoint of a small model over <paramref name="tokenizer"/>'s vocabulary (for what
    /// depends on the vocabulary only: tokenization).</summary>
    public static string Untrained(string tokenizer, int vocab, int d = 32, int blocks = 2, int context = 32)
    {
        var plan = SotuData.Plan(1, d: d, blocks: blocks, context: context);
        plan = plan with { Model = plan.Model with { VocabSize = vocab } };
        plan = plan with { Substrate = new SubstrateSpec { Kind = SubstrateKind.Binary, Bits = (int)Math.Ceiling(Math.Log2(vocab)) } };
        using var model = GrowthStage.Build(plan, 0, stageFinished: true);
        var path = Path.Combine(TestPaths.TempDir(), "untrained.safetensors");
        Runs.Checkpoint.Save(path, model, null, new CheckpointInfo
        {
            Plan = plan, Tokenizer = tokenizer, TokenizerHash = Strata.Tokenization.Tokenizers.ContentHash(Strata.Tokenization.Tokenizers.ByName(
                tokenizer)), Depth = model.Depth,
            StageStep = plan.Stages[0].Steps, Completed = true,
        });
        return path;
    }
}
