using Strata.Data;
using Strata.Evaluation;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Training;
using Xunit;

namespace Strata.Tests;

/// <summary>A printable-ASCII character vocabulary as a tokenizer.json (no merges): ~100 ids, so that the models the
/// tests train on facts are small and quick.</summary>
internal static class AsciiTokenizer
{
    public static readonly Lazy<string> Path = new(() =>
    {
        var tokens = new List<string> { "<unk>", "</s>", "\n" };
        tokens.AddRange(Enumerable.Range(0x20, 0x7F - 0x20).Select(c => ((char)c).ToString()));
        var t = new BpeTokenizer("ascii", tokens, [], ["<unk>", "</s>"], "<unk>", 1);
        var dir = TestPaths.TempDir();
        TokenizerJson.WriteDirectory(t, dir);
        return System.IO.Path.Combine(dir, TokenizerJson.FileName);
    });
}

[Collection("torch")]
public class KnowledgeTests(Xunit.Abstractions.ITestOutputHelper log)
{
    /// <summary>A model trained on the chemical-element facts (symbol -> name, in the evaluation's own question form)
    /// must score far above chance on them; the same model untrained must score at chance: inside the binomial 95%
    /// interval around 25% for the 103 questions (25 ± 8.4 points).</summary>
    [Fact]
    public void The_scorer_tells_knowledge_from_noise()
    {
        var home = TestPaths.TempDir();
        var set = QuizSets.Get("quiz-elements");
        var items = QuizSets.Load(set, home, seed: 3);
        var text = new System.Text.StringBuilder();
        var rng = new Strata.Util.SplitMix64(5);
        for (int pass = 0; pass < 30; pass++)
            foreach (var q in items.OrderBy(_ => rng.Next()))
                text.Append(PaperPrompts.Cloze(q)).Append(' ').Append(q.Choices[q.Answer]).Append("\n\n");
        var corpus = Path.Combine(home, "facts.txt");
        File.WriteAllText(corpus, text.ToString());
        var shards = Path.Combine(home, "shards");
        var tokenizer = AsciiTokenizer.Path.Value;
        DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = shards, Tokenizer = tokenizer, ValidationFraction = 0.02 });
        var plan = new GrowthPlan
        {
            Name = "facts",
            Model = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 64, VocabSize = 128 },
            Substrate = new SubstrateSpec { Kind = SubstrateKind.Binary, Bits = 16 },
            Data = SotuData.DataAt(shards, "elements"),
            Training = new TrainingConfig { BatchSize = 32, LearningRate = 5e-3, MinLearningRate = 5e-4, WarmupSteps = 20, EvalEvery = 1000,
                EvalBatches = 2, CheckpointEvery = 1000, LogEvery = 1000, Seed = 1 },
            Stages = [new StageConfig { Name = "monolithic", AddBlocks = 2, Steps = 1000 }],
        }.Validate("facts plan");
        TorchSharp.torch.manual_seed(1);
        using var fresh = new LanguageModel(plan.Model, plan.Substrate, 2);
        var untrained = Score(fresh, tokenizer, home);
        var run = Trainer.Run(plan, new TrainOptions { OutDir = Path.Combine(home, "run"), Log = TextWriter.Null });
        using var file = Strata.Composition.CausalLMFile.Load(run.Run.Checkpoint);
        var trained = Score(file.Model, file.Tokenizer, home);

        log.WriteLine($"quiz-elements, loglik-cloze: untrained {untrained.Value:F1}%, trained {trained.Value:F1}% ± {trained.Ci95:F1}");
        double halfWidth = 100 * 1.96 * Math.Sqrt(0.25 * 0.75 / items.Count);
        Assert.InRange(untrained.Value, 25 - halfWidth, 25 + halfWidth);
        Assert.Equal(25.0, untrained.Chance!.Value, 6);
        Assert.True(trained.Value > 70, $"trained on the facts: {trained.Value:F1}% (untrained {untrained.Value:F1}%)");
        Assert.True(trained.Value - trained.Ci95!.Value > 25 + halfWidth);
    }

    private static EvalScore Score(ICausalLM model, string tokenizer, string home)
    {
        var scorer = new Scorer(model, Strata.Tokenization.Tokenizers.ByName(tokenizer));
        var task = EvalSuites.Resolve("quiz-elements").Single();
        var settings = new EvalSettings { Home = home, Seed = 3, Protocols = [Protocol.LogLikelihoodCloze] };
        return task.Run(scorer, settings).Single(s => s.Metric == "accuracy");
    }
}
