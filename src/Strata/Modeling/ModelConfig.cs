using Strata.Util;

namespace Strata.Modeling;

/// <summary>
/// The shape of a decoder-only model (Growing Transformers, arXiv 2507.07129). Depth is not part of it: a model starts with
/// the blocks its plan's stages add, and can grow later.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Width of the residual stream (C). The paper's models use 1024.</summary>
    public int DModel { get; init; } = 256;
    /// <summary>Attention heads (nh); head size hs = DModel / NHead. The paper uses 32 heads of 32.</summary>
    public int NHead { get; init; } = 8;
    /// <summary>Longest sequence the model attends over (the paper trains at 1024).</summary>
    public int ContextLength { get; init; } = 256;
    /// <summary>Rows of the LM head (V). bvv241-2-3 has 65,536 ids.</summary>
    public int VocabSize { get; init; } = 65536;
    /// <summary>MLP hidden width; null means 4 x DModel (the paper's counts need 4x).</summary>
    public int? FfnSize { get; init; }
    /// <summary>RoPE base; the papers do not state it, 10000 is the usual value (and GPT-NeoX's default).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>LayerNorm epsilon, as GPT-NeoX.</summary>
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>Bias on the LM head. Off by default: the paper's 247.6M / 269.7M totals fit without it (105.0M fits with it).</summary>
    public bool HeadBias { get; init; }

    public int HeadSize => DModel / NHead;
    public int Ffn => FfnSize ?? 4 * DModel;

    public ModelConfig Validate(string where = "model")
    {
        // bounds far beyond any model this code trains, so that a small file cannot make it allocate without end
        if (DModel is <= 0 or > 65536) throw new StrataException($"{where}.d_model: must be in 1..65536, got {DModel}");
        if (NHead <= 0 || DModel % NHead != 0) throw new StrataException($"{where}.n_head: must divide d_model ({DModel}), got {NHead}");
        if (HeadSize % 2 != 0) throw new StrataException($"{where}.n_head: head size d_model/n_head = {HeadSize} must be even for rotary embeddings");
        if (ContextLength is <= 0 or > 1 << 20) throw new StrataException($"{where}.context_length: must be in 1..1048576, got {ContextLength}");
        if (VocabSize is <= 1 or > 1 << 24) throw new StrataException($"{where}.vocab_size: must be in 2..16777216, got {VocabSize}");
        if (Ffn is <= 0 or > 1 << 20) throw new StrataException($"{where}.ffn_size: must be in 1..1048576, got {Ffn}");
        if (!(RopeTheta > 1 && double.IsFinite(RopeTheta))) throw new StrataException($"{where}.rope_theta: must be > 1 and finite, got {RopeTheta}");
        if (!(LayerNormEps is > 0 and < 1)) throw new StrataException($"{where}.layer_norm_eps: must be in (0, 1), got {LayerNormEps}");
        return this;
    }
}
