using Strata.Data;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;

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
        DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = dir, ValidationMatch = HeldOutCorpus.Sotu.ValidationMatch, Tokenizer =
            "codepoint" });
        return dir;
    });

    /// <summary>The dataset folder.</summary>
    public static string Dir => Prepared.Value;

    /// <summary>The same corpus encoded with a 512-id BPE vocabulary learnt from its training years (the blocks, not
    /// the head, are then most of a small model's compute, as at the paper's proportions).</summary>
    private static readonly Lazy<string> SmallVocab = new(() =>
    {
        var corpus = Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data");
        var words = new Dictionary<string, long>();
        foreach (var f in Directory.EnumerateFiles(corpus, "1*.txt").Order(StringComparer.Ordinal)) Strata.Tokenization.BpeTrainer.CountWords(
            Corpora.Read(f), words);
        var tokenizer = Path.Combine(TestPaths.TempDir(), "bpe-512");
        Strata.Tokenization.TokenizerJson.WriteDirectory(Strata.Tokenization.BpeTrainer.Train("bpe-512", words, SmallVocabSize), tokenizer);
        var dir = TestPaths.TempDir();
        DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = dir, ValidationMatch = HeldOutCorpus.Sotu.ValidationMatch, Tokenizer =
            Path.Combine(tokenizer, "tokenizer.json") });
        return dir;
    });

    public const int SmallVocabSize = 512;
    /// <summary>The dataset of <see cref="SmallVocabSize"/> ids.</summary>
    public static string SmallVocabDir => SmallVocab.Value;

    /// <summary><see cref="Plan"/> on the 512-id dataset, with the frozen 9-bit code.</summary>
    public static GrowthPlan SmallVocabPlan(int steps, int d = 32, int blocks = 2, int evalEvery = 1000) => Plan(steps, d, blocks, evalEvery: evalEvery) with
    {
        Model = Plan(steps).Model with { DModel = d, VocabSize = SmallVocabSize },
        Substrate = new SubstrateSpec { Kind = SubstrateKind.Binary, Bits = 9 },
        Data = DataAt(SmallVocabDir),
    };
    /// <summary>Its (single) training and validation shards.</summary>
    public static string TrainShard => Shard(DatasetSplit.Train);
    public static string ValidationShard => Shard(DatasetSplit.Validation);

    private static string Shard(DatasetSplit split)
    {
        using var d = Dataset.Open(Dir);
        return d.Shards(split).Single().Path;
    }

    /// <summary>A plan's data: the one dataset in <paramref name="dir"/>.</summary>
    public static DataSpec DataAt(string dir, string name = "sotu") => new() { Datasets = new Dictionary<string, string> { [name] = dir } };

    /// <summary>A small plan on the SOTU shards (a 16-bit frozen code unless said otherwise).</summary>
    public static GrowthPlan Plan(int steps, int d = 32, int blocks = 2, int context = 32, int batch = 4,
        SubstrateKind kind = SubstrateKind.Binary, double lr = 3e-3, int evalEvery = 1000, int checkpointEvery = 1000, int warmup = 2) => new GrowthPlan
    {
        Name = "test",
        Model = new ModelConfig { DModel = d, NHead = 4, ContextLength = context, VocabSize = 65536 },
        Substrate = new SubstrateSpec { Kind = kind, Bits = 16 },
        Data = DataAt(Dir),
        Training = new TrainingConfig
        {
            BatchSize = batch, LearningRate = lr, MinLearningRate = lr / 10, WarmupSteps = warmup, EvalEvery = evalEvery,
            EvalBatches = 4, CheckpointEvery = checkpointEvery, LogEvery = 1000, Seed = 5,
        },
        Stages = [new StageConfig { Name = "monolithic", AddBlocks = blocks, Steps = steps }],
    }.Validate("test plan");
}

/// <summary>Datasets written directly (shards of given tokens and a manifest), for tests that need exact contents.</summary>
internal static class TestDatasets
{
    public static string Write(string dir, IReadOnlyList<int> train, IReadOnlyList<int> validation, string tokenizer = "codepoint", long validationBytes = 0)
    {
        Directory.CreateDirectory(dir);
        Strata.Formats.TokenShard.Write(Path.Combine(dir, "train-t-00000.tokens"), 65536, train);
        Strata.Formats.TokenShard.Write(Path.Combine(dir, "val-t-00000.tokens"), 65536, validation);
        var id = Strata.Tokenization.TokenizerIdentity.Of(tokenizer);
        var manifest = new DatasetManifest
        {
            Tokenizer = id.Name, TokenizerHash = id.Hash, VocabSize = 65536,
            Train = new SplitInfo(1, train.Count, train.Count, [new ShardInfo("train-t-00000.tokens", train.Count, null)]),
            Validation = new SplitInfo(1, validationBytes == 0 ? validation.Count : validationBytes, validation.Count, [new ShardInfo(
                "val-t-00000.tokens", validation.Count, null)]),
        };
        File.WriteAllText(Path.Combine(dir, DatasetManifest.FileName), Strata.Util.Json.Serialize(manifest));
        return dir;
    }
}
