using Strata.Data;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Training;

namespace Strata.Tests;

/// <summary>The State of the Union corpus (installed by scripts/bootstrap.sh), prepared once per test run with the
/// demo's split: 1790-2000 train, 2001-2021 held out. Character ids (the codepoint tokenizer) so that the tiny models
/// the tests can afford learn visibly in a few dozen steps.</summary>
internal static class SotuData
{
    private static readonly Lazy<string> Prepared = new(() =>
    {
        var corpus = Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data");
        if (!Directory.Exists(corpus)) throw new InvalidOperationException($"{corpus} is missing: run scripts/bootstrap.sh (scripts/test.sh does)");
        var dir = TestPaths.TempDir();
        DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = dir, ValidationMatch = HeldOutCorpus.Sotu.ValidationMatch, Tokenizer = "codepoint" });
        return dir;
    });

    public static string Dir => Prepared.Value;
    public static string Train => Path.Combine(Dir, PreparedData.TrainFile);
    public static string Validation => Path.Combine(Dir, PreparedData.ValidationFile);

    /// <summary>A small plan on the SOTU shards (a 16-bit frozen code unless said otherwise).</summary>
    public static GrowthPlan Plan(int steps, int d = 32, int blocks = 2, int context = 32, int batch = 4,
        SubstrateKind kind = SubstrateKind.Binary, double lr = 3e-3, int evalEvery = 1000, int checkpointEvery = 1000, int warmup = 2) => new GrowthPlan
    {
        Name = "test",
        Model = new ModelConfig { DModel = d, NHead = 4, ContextLength = context, VocabSize = 65536 },
        Substrate = new SubstrateSpec { Kind = kind, Bits = 16 },
        Data = new DataSpec { Train = Train, Validation = Validation },
        Training = new TrainingConfig
        {
            BatchSize = batch, LearningRate = lr, MinLearningRate = lr / 10, WarmupSteps = warmup, EvalEvery = evalEvery,
            EvalBatches = 4, CheckpointEvery = checkpointEvery, LogEvery = 1000, Seed = 5,
        },
        Stages = [new StageConfig { Name = "monolithic", AddBlocks = blocks, Steps = steps }],
    }.Validate("test plan");
}
