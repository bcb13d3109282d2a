using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Interop;

/// <summary>A checkpoint's model as every export writes it: LoRA adapters merged into the weights (no format has a
/// place for them; what is exported computes what the adapted model computes), and the token interface as the
/// [V, C] matrix it computes (a frozen substrate's table lifted to d_model, or the trainable embedding).</summary>
internal sealed class ExportSource : IDisposable
{
    public LanguageModel Model { get; }
    public CheckpointInfo Info { get; }
    /// <summary>[V, C] float32: row t is what the substrate gives token t.</summary>
    public Tensor Embedding { get; }
    /// <summary>How many LoRA adapters were merged for the export (a checkpoint taken inside a LoRA phase, or
    /// adapters a stage kept with merge: false).</summary>
    public int MergedAdapters { get; }
    public ITokenizer Tokenizer { get; }

    private ExportSource(LanguageModel model, CheckpointInfo info, Tensor embedding, int merged, ITokenizer tokenizer) =>
        (Model, Info, Embedding, MergedAdapters, Tokenizer) = (model, info, embedding, merged, tokenizer);

    public static ExportSource Load(string checkpoint)
    {
        var (model, info) = Checkpoint.LoadModel(checkpoint);
        return From(model, info, checkpoint);
    }

    /// <summary>The export of <paramref name="model"/>, which the source owns from here (its adapters are merged into it).</summary>
    internal static ExportSource From(LanguageModel model, CheckpointInfo info, string origin = "the model")
    {
        try
        {
            if (model.Config.HeadBias) throw new StrataException(
                $"{origin}: the model's head has a bias, which GPT-NeoX exports (transformers, llama.cpp, ONNX as GPT-NeoX) have no place for");
            int adapters = model.Blocks.Sum(b => b.Projections.Count(p => p.HasAdapter));
            model.MergeLora();
            Tensor embedding;
            using (torch.no_grad())
            {
                if (model.Substrate is FrozenTableSubstrate frozen) embedding = frozen.Lifted();
                else
                {
                    using var ids = Scalars.Arange(0, model.Config.VocabSize, ScalarType.Int64, model.Device).view(1, -1);
                    using var rows = model.Substrate.call(ids);
                    embedding = rows[0].contiguous();
                }
            }
            return new ExportSource(model, info, embedding, adapters, Tokenizers.ByName(info.Tokenizer));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>A tensor of the model by its state-dict name.</summary>
    public Tensor Weight(string name) => Model.state_dict()[name];

    public void Dispose()
    {
        Embedding.Dispose();
        Model.Dispose();
    }
}
