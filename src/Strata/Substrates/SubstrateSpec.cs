using Strata.Util;

namespace Strata.Substrates;

public enum SubstrateKind
{
    /// <summary>The k-bit code of the token id (optionally affine-recoded over GF(2), optionally as PCA floats).</summary>
    Binary,
    /// <summary>An ordinary trainable embedding (the baseline).</summary>
    Trainable,
    /// <summary>Random collision-free k-bit codes, seeded (optionally as PCA floats).</summary>
    RandomCode,
    /// <summary>Rendered GNU Unifont glyphs of every vocabulary entry, PCA, L2 (Emergent Semantics, arXiv 2507.04886).</summary>
    Visual,
    /// <summary>A table read from a file: a Strata substrate file, a torch.save tensor, or embeddings.txt.</summary>
    File,
}

/// <summary>How a [V, k] table reaches d_model.</summary>
public enum SubstrateLift
{
    /// <summary>Dimension j carries column floor(j k / d): torch's repeat_interleave(d/k) when k divides d (the paper's
    /// lift); otherwise each column covers floor(d/k) or ceil(d/k) consecutive dimensions (a 12-bit code at d = 64).</summary>
    Interleave,
    /// <summary>tile: dimension j carries column j mod k.</summary>
    Tile,
    /// <summary>The first d_model columns, rows re-normalised: for PCA-ordered tables wider than the model.</summary>
    Truncate,
}

/// <summary>The recipe of a substrate, as plans and checkpoints record it.</summary>
public sealed record SubstrateSpec
{
    public SubstrateKind Kind { get; init; } = SubstrateKind.Binary;
    /// <summary>Code width k for Binary and RandomCode; 16 covers a 65,536-id vocabulary.</summary>
    public int Bits { get; init; } = 16;
    public SubstrateLift Lift { get; init; } = SubstrateLift.Interleave;
    /// <summary>Binary: c(t) = A·bin(t) xor b with A invertible over GF(2), from <see cref="Seed"/>.</summary>
    public bool Affine { get; init; }
    /// <summary>Binary and RandomCode: the code's full PCA with L2-normalised rows instead of 0/1 values.</summary>
    public bool Float { get; init; }
    /// <summary>Seed of RandomCode and of the affine map.</summary>
    public long Seed { get; init; }
    /// <summary>Visual: "2-3", "max" (32 px, 1,024 dims) or "abs" (64 px, 4,096 dims).</summary>
    public string Variant { get; init; } = "2-3";
    /// <summary>Visual: whose vocabulary strings are drawn (must be the data's tokenizer).</summary>
    public string Tokenizer { get; init; } = Strata.Tokenization.Tokenizers.Default;
    /// <summary>Visual: the font file (default Debian's fonts-unifont unifont.otf).</summary>
    public string? Font { get; init; }
    /// <summary>File: the table's path.</summary>
    public string? Path { get; init; }
    /// <summary>File: the content hash the table must have (optional).</summary>
    public string? Hash { get; init; }

    public bool IsFrozen => Kind != SubstrateKind.Trainable;

    /// <summary>The table's width before the lift, where the spec alone decides it.</summary>
    public int? TableWidth() => Kind switch
    {
        SubstrateKind.Binary or SubstrateKind.RandomCode => Bits,
        SubstrateKind.Visual => VisualVariant.Get(Variant).Bits,
        _ => null,
    };

    /// <summary>Short human description, e.g. "frozen 16-bit code (interleave)".</summary>
    public string Describe()
    {
        var lift = Lift.ToString().ToLowerInvariant();
        return Kind switch
        {
            SubstrateKind.Binary => $"frozen {Bits}-bit {(Affine ? "affine-recoded " : "")}code{(Float ? " as PCA floats" : "")} ({lift})",
            SubstrateKind.RandomCode => $"frozen random {Bits}-bit code{(Float ? " as PCA floats" : "")}, seed {Seed} ({lift})",
            SubstrateKind.Visual => $"frozen visual Unicode glyphs bvv241-{Variant} of {Tokenizer} ({lift})",
            SubstrateKind.File => $"frozen table from {System.IO.Path.GetFileName(Path)} ({lift})",
            _ => "trainable embedding",
        };
    }

    public SubstrateSpec Validate(int vocab, int dModel, string where = "substrate")
    {
        switch (Kind)
        {
            case SubstrateKind.Binary:
                if (Bits is < 1 or > 31) throw new StrataException($"{where}.bits: must be in 1..31, got {Bits}");
                if ((1L << Bits) < vocab)
                    throw new StrataException($"{where}.bits: {Bits} bits cannot give {vocab} ids distinct codes (need 2^bits >= vocab_size)");
                break;
            case SubstrateKind.RandomCode:
                if (Bits is < 1 or > 65536) throw new StrataException($"{where}.bits: must be in 1..65536, got {Bits}");
                if (Bits < 31 && (1L << Bits) < vocab)
                    throw new StrataException($"{where}.bits: {Bits} bits cannot give {vocab} ids distinct codes");
                if ((long)Bits * vocab > 1L << 31)
                    throw new StrataException($"{where}.bits: a {vocab:N0} x {Bits:N0} table is larger than the 2^31 entries Strata builds");
                break;
            case SubstrateKind.Visual:
                VisualVariant.Get(Variant);
                break;
            case SubstrateKind.File:
                if (string.IsNullOrEmpty(Path)) throw new StrataException($"{where}.path: a file substrate needs the path of its table");
                break;
        }
        if (TableWidth() is { } k) CheckLift(k, dModel, where);
        return this;
    }

    /// <summary>Refuses a table of <paramref name="width"/> columns that this spec's lift cannot bring to d_model.</summary>
    public void CheckLift(int width, int dModel, string where = "substrate")
    {
        if (Lift == SubstrateLift.Truncate && width < dModel)
            throw new StrataException($"{where}.lift: truncate keeps d_model = {dModel} columns but the table has only {width}");
        if (Lift != SubstrateLift.Truncate && width > dModel)
            throw new StrataException($"{where}: the table's {width} columns are more than d_model {dModel}, so it cannot be lifted" +
                                      " (use \"lift\": \"truncate\" to keep its first d_model columns)");
    }
}
