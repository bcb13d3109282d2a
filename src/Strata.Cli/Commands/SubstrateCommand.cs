using System.CommandLine;
using System.Diagnostics;
using Strata.Substrates;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class SubstrateCommand
{
    /// <summary>The options that name a substrate recipe, shared by build and show.</summary>
    private sealed class SpecOptions
    {
        public readonly Option<string> Kind = Opt.Text("--kind", "visual", "visual, binary, random or file", "KIND");
        public readonly Option<string> Variant = Opt.Text("--variant", "2-3", "visual: 2-3, max or abs", "2-3|max|abs");
        public readonly Option<string> Tokenizer = Opt.Text("--tokenizer", Tokenizers.Default, "visual: whose vocabulary entries are drawn", "NAME|FILE.json");
        public readonly Option<string?> Font = Opt.Text("--font", "visual: the font (default Debian's fonts-unifont unifont.otf)", "FILE");
        public readonly Option<int> Bits = Opt.Int("--bits", 16, "binary and random: code width");
        public readonly Option<long> Seed = Opt.Long("--seed", 0, "random codes and the affine map: seed");
        public readonly Option<bool> Affine = Opt.Flag("--affine", "binary: recode the ids by an invertible affine map over GF(2)");
        public readonly Option<bool> Float = Opt.Flag("--float", "binary and random: the code's PCA floats, rows L2-normalised");
        public readonly Option<string?> From = Opt.Text("--from", "file: a substrate file, a torch.save tensor or embeddings.txt", "FILE");
        public readonly Option<int?> Vocab = Opt.OptionalInt("--vocab", "rows (default: the tokenizer's vocabulary for visual, else 65536)");

        public void AddTo(Command c) { foreach (var o in new Option[] { Kind, Variant, Tokenizer, Font, Bits, Seed, Affine, Float, From, Vocab }) c.Add(o); }

        public (SubstrateSpec Spec, int Vocab) Read(ParseResult p)
        {
            var from = p.GetValue(From);
            var kind = from is not null ? SubstrateKind.File : p.GetValue(Kind) switch
            {
                "visual" => SubstrateKind.Visual,
                "binary" => SubstrateKind.Binary,
                "random" => SubstrateKind.RandomCode,
                "file" => SubstrateKind.File,
                var k => throw new StrataException($"--kind: unknown '{k}' (visual, binary, random, file)"),
            };
            if (kind == SubstrateKind.File && from is null) throw new StrataException("--kind file needs --from FILE");
            var spec = new SubstrateSpec
            {
                Kind = kind, Variant = p.GetValue(Variant)!, Tokenizer = p.GetValue(Tokenizer)!, Font = p.GetValue(Font), Bits = p.GetValue(Bits),
                Seed = p.GetValue(Seed), Affine = p.GetValue(Affine), Float = p.GetValue(Float), Path = from is null ? null : Path.GetFullPath(from),
            };
            int vocab = p.GetValue(Vocab) ?? (kind == SubstrateKind.Visual ? Tokenizers.ByName(spec.Tokenizer).VocabSize : 65536);
            return (spec, vocab);
        }
    }

    public static Command Build(TextWriter output)
    {
        var spec = new SpecOptions();
        var outPath = Opt.Text("--out", "write a substrate file (table + recipe + hash)", "FILE");
        var command = new Command("build",
            "build (or read) a frozen token interface: the table, its recipe and its sha256; visual tables are cached under the Strata home") { outPath };
        spec.AddTo(command);
        command.SetAction(p =>
        {
            var (s, vocab) = spec.Read(p);
            var clock = Stopwatch.StartNew();
            using var file = SubstrateBuilder.Build(s, vocab, log: output);
            output.WriteLine($"{s.Describe()}: {file.Table.shape[0]:N0} x {file.Table.shape[1]:N0}, sha256:{file.Hash} ({clock.Elapsed.TotalSeconds:F1} s)");
            if (p.GetValue(outPath) is { } path)
            {
                file.Save(path);
                output.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
    }

    public static Command Show(TextWriter output)
    {
        var spec = new SpecOptions();
        var input = new Argument<string?>("FILE") { Description = "a substrate file (otherwise the recipe the options name)", Arity = ArgumentArity.ZeroOrOne };
        var tokens = Opt.Text("--tokens", "visual: the tokens to draw", "A,中,the");
        var outDir = Opt.Required("--out", "the folder for projection.png (and glyphs.png)", "DIR");
        var command = new Command("show",
            "look at an interface: projection.png (first two principal axes, coloured by script) and, for visual ones, glyphs.png") { input, tokens, outDir };
        spec.AddTo(command);
        command.SetAction(p =>
        {
            SubstrateFile file;
            SubstrateSpec s;
            if (p.GetValue(input) is { } path)
            {
                file = SubstrateFile.Read(path);
                s = file.Recipe.Spec;
            }
            else
            {
                (s, var vocab) = spec.Read(p);
                file = SubstrateBuilder.Build(s, vocab, log: output);
            }
            using var _ = file;
            var dir = p.GetValue(outDir)!;
            Directory.CreateDirectory(dir);
            var tokenizer = Tokenizers.ByName(s.Kind == SubstrateKind.Visual ? s.Tokenizer : Tokenizers.Default);
            var strings = tokenizer is BpeTokenizer bpe ? bpe.Tokens : Enumerable.Range(0, tokenizer.VocabSize).Select(i => tokenizer.Decode([i])).ToList();
            var projection = Path.Combine(dir, "projection.png");
            SubstrateViews.SaveProjection(projection, file.Table, strings, $"{s.Describe()}, {file.Table.shape[0]:N0} x {file.Table.shape[1]:N0}");
            output.WriteLine($"wrote {projection}");
            if (s.Kind == SubstrateKind.Visual)
            {
                var chosen = (p.GetValue(tokens) ?? "A,g,Ж,中,\u05B6,the,ing,ство").Split(',').Where(t => t.Length > 0).ToList();
                var variant = VisualVariant.Get(s.Variant);
                using var glyphs = new UnicodeGlyphs(s.Font ?? UnicodeGlyphs.DebianFont, variant.Size);
                var grid = Path.Combine(dir, "glyphs.png");
                SubstrateViews.SaveGlyphGrid(grid, chosen, variant, glyphs);
                output.WriteLine($"wrote {grid} (per token: as drawn, after rotation/shift/noise, as {variant.Size}x{variant.Size})");
            }
            return 0;
        });
        return command;
    }
}
