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
public sealed record SubstrateRecipe(SubstrateSpec Spec, int VocabSize, int Width, string? FontSha256 = null, string? TokenizerSha256 = null,
    string? Source = null);

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
        if (!file.Metadata.TryGetValue("format", out var f) || f != Format || !file.Metadata.TryGetValue("recipe", out var recipeJson)
            || !file.Metadata.TryGetValue("sha256", out var recorded))
            throw new StrataException($"{path}: not a Strata substrate file (no format/recipe/sha256 metadata)");
        if (!file.Contains(TensorName)) throw new StrataException($"{path}: the tensor '{TensorName}' is missing");
        var recipe = Json.Parse<SubstrateRecipe>(recipeJson, path + " (recipe)");
        if (file.Entries[TensorName].Shape.Length != 2) throw new StrataException($"{path}: '{TensorName}' is not a [V, k] table");
        var table = file.Read(TensorName).to(ScalarType.Float32, disposeAfter: true);
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
            return FromTable(t.to(ScalarType.Float32, disposeAfter: true), path);
        }
        return Load(path);
    }

    private static SubstrateFile FromTable(Tensor table, string source)
    {
        RequireFinite(table, source);
        return new(table, new SubstrateRecipe(new SubstrateSpec { Kind = SubstrateKind.File, Path = Path.GetFullPath(source) }, (int)table.shape[0], (
            int)table.shape[1], Source: Path.GetFileName(source)),
            SubstrateTables.ContentHash(table));
    }

    /// <summary>A table with a NaN or an infinity would poison every model built on it: refused, naming the first bad row;
    /// so is a table without rows or columns.</summary>
    private static void RequireFinite(Tensor table, string source)
    {
        if (table.shape[0] == 0 || table.shape[1] == 0)
            throw new StrataException($"{source}: the table is {table.shape[0]} x {table.shape[1]}: a substrate needs a row per id and at least one column");
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
