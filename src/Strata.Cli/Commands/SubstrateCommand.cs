using System.Diagnostics;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class SubstrateCommand
{
    public const string SpecOptions = "--kind visual|binary|random|file [--variant 2-3|max|abs] [--tokenizer bvv241-2-3] [--font FILE] [--bits 16] [--seed N] [--affine] [--float] [--from FILE.pt|embeddings.txt|FILE.safetensors] [--vocab 65536]";

    public static int Build(Args a, TextWriter output)
    {
        var (spec, vocab) = ReadSpec(a);
        var outPath = a.Get("out");
        a.RejectUnknown();
        var clock = Stopwatch.StartNew();
        using var file = SubstrateBuilder.Build(spec, vocab, log: output);
        output.WriteLine($"{spec.Describe()}: {file.Table.shape[0]:N0} x {file.Table.shape[1]:N0}, sha256:{file.Hash} ({clock.Elapsed.TotalSeconds:F1} s)");
        if (outPath is not null)
        {
            file.Save(outPath);
            output.WriteLine($"wrote {outPath}");
        }
        return 0;
    }

    public static int Show(Args a, TextWriter output)
    {
        var outDir = a.Require("out");
        var tokensArg = a.Get("tokens");
        SubstrateFile file;
        SubstrateSpec spec;
        if (a.Positionals.Count == 1)
        {
            file = SubstrateFile.Read(a.Positionals[0]);
            spec = file.Recipe.Spec;
        }
        else
        {
            (spec, var vocab) = ReadSpec(a);
            file = SubstrateBuilder.Build(spec, vocab, log: output);
        }
        a.RejectUnknown();
        using var _ = file;
        Directory.CreateDirectory(outDir);
        var tokenizer = Tokenizers.ByName(spec.Kind == SubstrateKind.Visual ? spec.Tokenizer : Tokenizers.Default);
        var strings = tokenizer is BpeTokenizer bpe ? bpe.Tokens : Enumerable.Range(0, tokenizer.VocabSize).Select(i => tokenizer.Decode([i])).ToList();
        var projection = Path.Combine(outDir, "projection.png");
        SubstrateViews.SaveProjection(projection, file.Table, strings, $"{spec.Describe()}, {file.Table.shape[0]:N0} x {file.Table.shape[1]:N0}");
        output.WriteLine($"wrote {projection}");
        if (spec.Kind == SubstrateKind.Visual)
        {
            var chosen = (tokensArg ?? "A,g,Ж,中,\u05B6,the,ing,ство").Split(',').Where(t => t.Length > 0).ToList();
            var variant = VisualVariant.Get(spec.Variant);
            using var glyphs = new UnicodeGlyphs(spec.Font ?? UnicodeGlyphs.DebianFont, variant.Size);
            var grid = Path.Combine(outDir, "glyphs.png");
            SubstrateViews.SaveGlyphGrid(grid, chosen, variant, glyphs);
            output.WriteLine($"wrote {grid} (per token: as drawn, after rotation/shift/noise, as {variant.Size}x{variant.Size})");
        }
        return 0;
    }

    private static (SubstrateSpec, int Vocab) ReadSpec(Args a)
    {
        var kind = (a.Get("kind") ?? "visual") switch
        {
            "visual" => SubstrateKind.Visual,
            "binary" => SubstrateKind.Binary,
            "random" => SubstrateKind.RandomCode,
            "file" => SubstrateKind.File,
            var k => throw new StrataException($"--kind: unknown '{k}' (visual, binary, random, file)"),
        };
        var from = a.Get("from");
        if (from is not null) kind = SubstrateKind.File;
        var spec = new SubstrateSpec
        {
            Kind = kind,
            Variant = a.Get("variant") ?? "2-3",
            Tokenizer = a.Get("tokenizer") ?? Tokenizers.Default,
            Font = a.Get("font"),
            Bits = a.Int("bits", 16),
            Seed = a.Long("seed", 0),
            Affine = a.Flag("affine"),
            Float = a.Flag("float"),
            Path = from is null ? null : Path.GetFullPath(from),
        };
        int vocab = a.Int("vocab", kind == SubstrateKind.Visual ? Tokenizers.ByName(spec.Tokenizer).VocabSize : 65536);
        if (kind == SubstrateKind.File && from is null) throw new StrataException("--kind file needs --from FILE");
        return (spec, vocab);
    }
}
