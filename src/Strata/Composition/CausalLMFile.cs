using Strata.Modeling;
using Strata.Training;
using static TorchSharp.torch;

namespace Strata.Composition;

/// <summary>A model file as the CLI takes it: a checkpoint (a run's checkpoint.safetensors or one of its
/// stage-N.safetensors) or an ensemble .json; with the tokenizer it was trained with and its depth.</summary>
public sealed record CausalLMFile(ICausalLM Model, string Tokenizer, int? Depth) : IDisposable
{
    public static CausalLMFile Load(string path, Device? device = null)
    {
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var ensemble = LogitAveragingEnsemble.LoadFile(path, device);
            return new CausalLMFile(ensemble, ensemble.Tokenizer, null);
        }
        var (model, info) = Checkpoint.LoadModel(path, device);
        return new CausalLMFile(model, info.Tokenizer, info.Depth);
    }

    public void Dispose() => ((IDisposable)Model).Dispose();
}
