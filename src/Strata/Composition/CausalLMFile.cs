using Strata.Evaluation;
using Strata.Modeling;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Util;
using static TorchSharp.torch;

namespace Strata.Composition;

/// <summary>A model file as the CLI takes it: a checkpoint (a run's checkpoint.safetensors or one of its
/// stage-N.safetensors) or an ensemble .json; with the tokenizer it was trained with, its depth and its plan's chat
/// template (a checkpoint's).</summary>
public sealed record CausalLMFile(ICausalLM Model, string Tokenizer, int? Depth, ChatTemplate? Chat = null) : IDisposable
{
    /// <summary>Loads a checkpoint, a run folder (its latest checkpoint) or an ensemble .json.</summary>
    public static CausalLMFile Load(string path, Device? device = null)
    {
        if (Directory.Exists(path)) path = new RunDirectory(path).Checkpoint;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var ensemble = LogitAveragingEnsemble.LoadFile(path, device);
            return new CausalLMFile(ensemble, ensemble.Tokenizer, null);
        }
        var (model, info) = Checkpoint.LoadModel(path, device);
        return new CausalLMFile(model, info.Tokenizer, info.Depth, info.Plan.Chat);
    }

    /// <summary>The text that continues <paramref name="prompt"/>: up to <paramref name="maxNewTokens"/> tokens, greedy
    /// unless <paramref name="sampling"/> says otherwise, ending early at the end-of-text token.</summary>
    public string Generate(string prompt, int maxNewTokens = 64, Generation.SamplingOptions? sampling = null)
    {
        var tokenizer = Tokenizers.ByName(Tokenizer);
        var ids = Generation.TextGenerator.Generate(Model, tokenizer.Encode(prompt), maxNewTokens,
            (sampling ?? Generation.SamplingOptions.Greedy) with { Vocabulary = tokenizer.VocabSize }, tokenizer.EndOfText);
        return tokenizer.Decode(ids.ToList());
    }

    /// <summary>Scores the model on <paramref name="tasks"/> (a report of every task, protocol and metric).</summary>
    public EvalReport Evaluate(string path, IReadOnlyList<EvalTask> tasks, string suite, EvalSettings settings)
    {
        var tokenizer = Tokenizers.ByName(Tokenizer);
        if (tokenizer.VocabSize > Model.Config.VocabSize)
            throw new StrataException(
                $"{path}: tokenizer '{Tokenizer}' has {tokenizer.VocabSize:N0} ids but the model's vocabulary is {Model.Config.VocabSize:N0}");
        settings.Log.WriteLine($"== evaluating {path}{(Depth is { } d ? $" (depth {d})" : "")} on '{suite}'");
        return EvalReport.Run(new Scorer(Model, tokenizer), path, Depth, suite, tasks, settings);
    }

    /// <summary>Loads <paramref name="path"/>, scores it and lets it go.</summary>
    public static EvalReport Evaluate(string path, IReadOnlyList<EvalTask> tasks, string suite, EvalSettings settings, Device? device = null)
    {
        using var file = Load(path, device);
        return file.Evaluate(path, tasks, suite, settings);
    }

    public void Dispose() => ((IDisposable)Model).Dispose();
}
