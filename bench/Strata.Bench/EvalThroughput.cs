using System.Diagnostics;
using Strata.Evaluation;
using Strata.Generation;
using Strata.Modeling;
using Strata.Substrates;
using Strata.Tokenization;
using TorchSharp;

namespace Strata.Bench;

/// <summary>
/// Questions per second of the evaluation protocols on the demo's model shape (d 128, 4 blocks, context 128, bvv241-2-3,
/// the 16-bit code; random weights cost the same as trained ones) over the quiz-capitals questions: log-likelihood
/// cloze batched (every choice of many questions in one forward pass) against one sequence per pass, and the paper's
/// generative protocol (2 new tokens) batched across questions, one question at a time with the KV cache, and one at a
/// time recomputing the window; then 24-token generations batched (left padding, KV cache) against one at a time.
/// Alternated, best of two rounds.
/// </summary>
public static class EvalThroughput
{
    private const int LongTokens = 24;

    public static void Run(string[] args)
    {
        int questions = args.SkipWhile(a => a != "--questions").Skip(1).Select(int.Parse).FirstOrDefault(100);
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var plan = Strata.Runs.GrowthPlan.Load(Path.Combine(home, "plans", "demo.json"));
        torch.manual_seed(0);
        using var model = new LanguageModel(plan.Model, plan.Substrate, plan.Stages.Sum(s => s.AddBlocks));
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(Strata.Tokenization.Tokenizers.Default);
        var settings = new EvalSettings { Home = home, Limit = questions };
        var task = (MultipleChoiceTask)EvalSuites.Resolve("quiz-capitals").Single();
        int n = task.Items(settings).Count;
        Console.WriteLine($"eval throughput: {n} quiz-capitals questions (4 choices), model d {plan.Model.DModel} x " +
            $"{plan.Stages.Sum(s => s.AddBlocks)} blocks, vocab {plan.Model.VocabSize}, {torch.get_num_threads()} threads");

        var configs = new (string Name, Scorer Scorer, string Protocol, SamplingOptions Decoding)[]
        {
            ("loglik-cloze, batched", new Scorer(model, tokenizer), Protocol.LogLikelihoodCloze, SamplingOptions.Greedy),
            ("loglik-cloze, one sequence per pass", new Scorer(model, tokenizer) { MaxBatchRows = 1 }, Protocol.LogLikelihoodCloze, SamplingOptions.Greedy),
            ("generative, batched", new Scorer(model, tokenizer), Protocol.Generative, SamplingOptions.Greedy),
            ("generative, one question at a time, KV cache", new Scorer(model, tokenizer) { BatchGeneration = false }, Protocol.Generative,
                SamplingOptions.Greedy),
            ("generative, one question at a time, no cache", new Scorer(model, tokenizer) { BatchGeneration = false }, Protocol.Generative,
                SamplingOptions.Greedy with { UseCache = false }),
        };
        var best = new double[configs.Length];
        for (int round = 0; round < 2; round++)
            for (int c = 0; c < configs.Length; c++)
            {
                var s = settings with { Protocols = [configs[c].Protocol], Decoding = configs[c].Decoding };
                var clock = Stopwatch.StartNew();
                task.Run(configs[c].Scorer, s);
                best[c] = Math.Max(best[c], n / clock.Elapsed.TotalSeconds);
            }
        // long generations (SQuAD and translation generate more than 4 tokens): the questions as prompts, 24 new tokens
        var prompts = task.Items(settings).Select(i => $"Question: {i.Question}\nAnswer:").ToList();
        var greedy = prompts.Select(_ => SamplingOptions.Greedy).ToList();
        var longConfigs = new (string Name, Scorer Scorer)[]
        {
            ($"{LongTokens} new tokens, batched (left padding, KV cache)", new Scorer(model, tokenizer)),
            ($"{LongTokens} new tokens, one question at a time (KV cache)", new Scorer(model, tokenizer) { BatchGeneration = false }),
        };
        var longBest = new double[longConfigs.Length];
        for (int round = 0; round < 2; round++)
            for (int c = 0; c < longConfigs.Length; c++)
            {
                var clock = Stopwatch.StartNew();
                longConfigs[c].Scorer.ContinueAll(prompts, LongTokens, greedy);
                longBest[c] = Math.Max(longBest[c], n / clock.Elapsed.TotalSeconds);
            }
        Console.WriteLine("| protocol | questions/s | ratio |");
        Console.WriteLine("|---|---|---|");
        for (int c = 0; c < configs.Length; c++)
        {
            var baseline = c < 2 ? best[1] : best[4];
            Console.WriteLine($"| {configs[c].Name} | {best[c]:F1} | {best[c] / baseline:F2}x |");
        }
        for (int c = 0; c < longConfigs.Length; c++) Console.WriteLine($"| {longConfigs[c].Name} | {longBest[c]:F1} | {longBest[c] / longBest[1]:F2}x |");
    }
}
