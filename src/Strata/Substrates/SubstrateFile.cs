// A substrate is a file: the frozen table, the recipe it was built from, and the sha256 of its content. Built tables
// are cached under the Strata home (Util/StrataHome.cs) in data/substrates by recipe; the published formats (a torch.save tensor such as
// normalized_embeddings_weights.pt, the embeddings.txt bit table) are read into the same form.
using Strata.Formats;
using System.Globalization;
using System.Security.Cryptography;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

/// <summary>What a table was built from: the spec, its shape, and the hashes of the inputs that decide its content.</summary>
public sealed record SubstrateRecipe(SubstrateSpec Spec, int VocabSize, int Width, string? FontSha256 = null, string? TokenizerSha256 = null, string? Source = null);

public sealed record SubstrateFile(Tensor Table, SubstrateRecipe Recipe, string Hash) : IDisposable
{
    public const string Format = "strata-substrate", TensorName = "weight";

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafetensorsWriter.Write(path, [(TensorName, Table)], new Dictionary<string, string>
        {
            ["format"] = Format,
            ["recipe"] = Json.Compact(Recipe),
            ["sha256"] = Hash,
        });
    }

    /// <summary>Reads a substrate file and checks its content against the recorded hash.</summary>
    public static SubstrateFile Load(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: no such substrate file");
        using var file = new SafetensorsFile(path);
        if (!file.Metadata.TryGetValue("format", out var f) || f != Format || !file.Metadata.TryGetValue("recipe", out var recipeJson) || !file.Metadata.TryGetValue("sha256", out var recorded))
            throw new StrataException($"{path}: not a Strata substrate file (no format/recipe/sha256 metadata)");
        if (!file.Contains(TensorName)) throw new StrataException($"{path}: the tensor '{TensorName}' is missing");
        var recipe = Json.Parse<SubstrateRecipe>(recipeJson, path + " (recipe)");
        if (file.Entries[TensorName].Shape.Length != 2) throw new StrataException($"{path}: '{TensorName}' is not a [V, k] table");
        var table = file.Read(TensorName).to(ScalarType.Float32);
        var hash = SubstrateTables.ContentHash(table);
        if (hash != recorded)
        {
            table.Dispose();
            throw new StrataException($"{path}: corrupted substrate file: its content hashes to {hash}, the file records {recorded}");
        }
        RequireFinite(table, path);
        return new SubstrateFile(table, recipe, hash);
    }

    /// <summary>A substrate file, a torch.save tensor (.pt / .bin), or an embeddings.txt bit table.</summary>
    public static SubstrateFile Read(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: no such substrate file");
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)) return FromTable(ReadEmbeddingsTxt(path), path);
        if (path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            var t = PyTorchTensorFile.ReadTensor(path);
            if (t.dim() != 2) throw new StrataException($"{path}: expected a [V, k] table, got shape [{string.Join(", ", t.shape)}]");
            return FromTable(t.to(ScalarType.Float32), path);
        }
        return Load(path);
    }

    private static SubstrateFile FromTable(Tensor table, string source)
    {
        RequireFinite(table, source);
        return new(table, new SubstrateRecipe(new SubstrateSpec { Kind = SubstrateKind.File, Path = Path.GetFullPath(source) }, (int)table.shape[0], (int)table.shape[1], Source: Path.GetFileName(source)),
            SubstrateTables.ContentHash(table));
    }

    /// <summary>A table with a NaN or an infinity would poison every model built on it: refused, naming the first bad row.</summary>
    private static void RequireFinite(Tensor table, string source)
    {
        using var bad = table.isfinite().logical_not();
        if (!bad.any().item<bool>()) return;
        using var rows = bad.any(1).nonzero();
        table.Dispose();
        throw new StrataException($"{source}: the table has values that are not finite (NaN or infinity), first in row {rows[0, 0].item<long>()}");
    }

    /// <summary>The published embeddings.txt: alternating lines "{id}" and "[b0, b1, ...]", ids 0, 1, 2, ... in order.</summary>
    public static Tensor ReadEmbeddingsTxt(string path)
    {
        var rows = new List<float[]>();
        int line = 0, width = -1;
        string? idLine = null;
        foreach (var raw in File.ReadLines(path))
        {
            line++;
            var text = raw.Trim();
            if (text.Length == 0) continue;
            if (idLine is null)
            {
                if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) || id != rows.Count)
                    throw new StrataException($"{path}:{line}: expected the id {rows.Count} alone on the line");
                idLine = text;
                continue;
            }
            if (!text.StartsWith('[') || !text.EndsWith(']')) throw new StrataException($"{path}:{line}: expected a row [v0, v1, ...]");
            var parts = text[1..^1].Split(',', StringSplitOptions.TrimEntries);
            var row = new float[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out row[i]))
                    throw new StrataException($"{path}:{line}: value {i} is not a number");
            if (row.Any(v => !float.IsFinite(v))) throw new StrataException($"{path}:{line}: a value is not finite");
            if (width < 0) width = row.Length;
            else if (row.Length != width) throw new StrataException($"{path}:{line}: {row.Length} values, the rows before have {width}");
            rows.Add(row);
            idLine = null;
        }
        if (idLine is not null) throw new StrataException($"{path}:{line}: the id {rows.Count} has no row");
        if (rows.Count == 0) throw new StrataException($"{path}: no rows");
        return torch.tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, width]);
    }

    public void Dispose() => Table.Dispose();
}

/// <summary>Builds the table a spec describes, from the cache when it was built before.</summary>
public static class SubstrateBuilder
{
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
