using Strata.Formats;
using System.Globalization;
using System.Security.Cryptography;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

/// <summary>Makes substrates: the embed_in module a spec describes, and its table (from the cache when it was built before).</summary>
public static class SubstrateBuilder
{
    /// <summary>Builds the substrate a spec describes for <paramref name="vocab"/> ids and a residual stream of
    /// <paramref name="dModel"/>; with <paramref name="emptyWidth"/> a frozen table of that width is only allocated (its
    /// values come from a checkpoint next).</summary>
    public static Substrate Create(SubstrateSpec spec, int vocab, int dModel, Device? device = null, int? emptyWidth = null)
    {
        spec.Validate(vocab, dModel);
        if (spec.Kind == SubstrateKind.Trainable) return new TrainableSubstrate(spec, vocab, dModel, device);
        if (emptyWidth is not null || device?.type == DeviceType.META)
            return new FrozenTableSubstrate(spec, vocab, dModel, emptyWidth ?? spec.TableWidth() ?? dModel, null, device);
        using var file = Build(spec, vocab);
        return new FrozenTableSubstrate(spec, vocab, dModel, (int)file.Table.shape[1], file.Table, device);
    }

    public static string CacheDir(string? home = null) =>
        Path.Combine(home ?? StrataHome.Root, "data", "substrates");

    /// <summary>The full [V, k] table of a frozen spec for a vocabulary of <paramref name="vocab"/> ids.</summary>
    public static SubstrateFile Build(SubstrateSpec spec, int vocab, string? home = null, TextWriter? log = null)
    {
        switch (spec.Kind)
        {
            case SubstrateKind.Binary:
            {
                var code = spec.Affine ? SubstrateTables.AffineCode(vocab, spec.Bits, spec.Seed) : SubstrateTables.BinaryCode(vocab, spec.Bits);
                return Finish(spec, vocab, code);
            }
            case SubstrateKind.RandomCode:
                return Finish(spec, vocab, SubstrateTables.RandomCode(vocab, spec.Bits, spec.Seed));
            case SubstrateKind.Visual:
                return Cached(spec, vocab, home, log);
            case SubstrateKind.File:
            {
                var file = SubstrateFile.Read(spec.Path ?? throw new StrataException("substrate.path: a file substrate needs the path of its table"));
                if (spec.Hash is { } expected && expected != file.Hash)
                    throw new StrataException($"{spec.Path}: the table hashes to {file.Hash}, the plan expects {expected}");
                return file;
            }
            default:
                throw new StrataException($"substrate.kind: '{spec.Kind}' has no frozen table");
        }
    }

    private static SubstrateFile Finish(SubstrateSpec spec, int vocab, Tensor code)
    {
        if (spec.Float)
        {
            using var bits = code;
            code = SubstrateTables.PcaNormalized(bits);
        }
        return new SubstrateFile(code, new SubstrateRecipe(spec, vocab, (int)code.shape[1]), SubstrateTables.ContentHash(code));
    }

    /// <summary>The visual table, cached as data/substrates/visual-VARIANT-KEY.safetensors, where KEY hashes the recipe
    /// (spec, font file, tokenizer strings).</summary>
    private static SubstrateFile Cached(SubstrateSpec spec, int vocab, string? home, TextWriter? log)
    {
        var tokenizer = Tokenizers.ByName(spec.Tokenizer);
        if (tokenizer is not BpeTokenizer bpe) throw new StrataException($"substrate.tokenizer: '{spec.Tokenizer}' has no vocabulary strings to draw");
        if (bpe.VocabSize != vocab)
            throw new StrataException($"substrate: tokenizer '{spec.Tokenizer}' has {bpe.VocabSize:N0} entries but the model's vocabulary is {vocab:N0}");
        var variant = VisualVariant.Get(spec.Variant);
        using var glyphs = new UnicodeGlyphs(spec.Font ?? UnicodeGlyphs.DebianFont, variant.Size);
        var tokenizerHash = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\u0000", bpe.Tokens))));
        // only what decides the table (not how a model lifts it)
        var tableSpec = new SubstrateSpec { Kind = SubstrateKind.Visual, Variant = spec.Variant, Tokenizer = spec.Tokenizer, Font = spec.Font };
        var recipe = new SubstrateRecipe(tableSpec, vocab, variant.Bits, glyphs.FontHash, tokenizerHash);
        var key = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Json.Compact(recipe))))[..16];
        var path = Path.Combine(CacheDir(home), $"visual-{variant.Name}-{key}.safetensors");
        if (File.Exists(path)) return SubstrateFile.Load(path);
        log?.WriteLine($"== building the visual substrate ({variant.Name}, {vocab:N0} x {variant.Bits}) into {path}");
        var table = VisualUnicodeTable.Build(bpe.Tokens, variant, glyphs);
        var built = new SubstrateFile(table, recipe, SubstrateTables.ContentHash(table));
        built.Save(path);
        return built;
    }
}
