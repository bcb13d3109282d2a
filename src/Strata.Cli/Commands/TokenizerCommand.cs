using System.CommandLine;
using Strata.Data;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class TokenizerCommand
{
    /// <summary>strata tokenizer mine CODE=PATH[,PATH...]... --out FILE [--n 2,3] [--top 1000]</summary>
    public static Command Mine(TextWriter output)
    {
        var langs = Opt.Many("CODE=PATH[,PATH...]", "one per language: its code and its text files or folders, e.g. en=data/raw/sotu/data");
        var outPath = Opt.Required("--out", "the n-gram list to write (the published format)", "FILE");
        var n = Opt.Text("--n", "2,3", "n-gram lengths", "N,N");
        var top = Opt.Int("--top", 1000, "n-grams kept per language and length");
        var pattern = Opt.Text("--pattern", PrepareOptions.AnyText, "file name patterns inside folders, comma-separated (e.g. '*' for fortune files)",
            "GLOB");
        var exclude = Opt.Text("--exclude", "skip relative paths matching this regular expression (e.g. '\\.(dat|u8)$')", "REGEX");
        var command = new Command("mine", "mine character n-grams per language (the bvv241 recipe) into the published list format")
            { langs, outPath, n, top, pattern, exclude };
        command.SetAction(p =>
        {
            var ns = p.GetValue(n)!.Split(',').Select(s => int.TryParse(s, out var k) && k > 1 ? k : throw new StrataException(
                $"--n: expected integers > 1, got '{s}'")).ToList();
            var corpora = p.GetValue(langs)!.Select(arg =>
            {
                var eq = arg.IndexOf('=');
                if (eq <= 0) throw new StrataException($"'{arg}': expected CODE=PATH[,PATH...]");
                var files = Corpus.Find(arg[(eq + 1)..].Split(','), p.GetValue(pattern)!, p.GetValue(exclude));
                return (arg[..eq], files.Select(f => Corpus.ReadText(f.Path)).ToList().AsEnumerable());
            }).ToList();
            var list = NgramMiner.Mine(corpora, ns, p.GetValue(top));
            var path = p.GetValue(outPath)!;
            AtomicFile.WriteAllText(path, list.ToPythonLiteral());
            foreach (var l in list.Languages)
                output.WriteLine($"{l.Lang}: " + string.Join(", ", l.TopNgrams.OrderBy(kv => kv.Key).Select(kv =>
                    $"{kv.Value.Count} {kv.Key}-grams (top: {string.Join(" ", kv.Value.Take(5).Select(g => g.Gram))})")));
            output.WriteLine($"wrote {path}");
            return 0;
        });
        return command;
    }

    /// <summary>strata tokenizer build (--vocab bvv241-2-3|bvv241-max | --ngrams FILE ...) --out DIR</summary>
    public static Command Build(TextWriter output)
    {
        var vocab = Opt.Text("--vocab", "a published vocabulary: bvv241-2-3 or bvv241-max", "NAME");
        var ngrams = Opt.Text("--ngrams", "or build from a mined n-gram list", "FILE");
        var n = Opt.Text("--n", "3,2", "n-gram lengths to take, in order of priority", "N,N");
        var top = Opt.Int("--top", 338, "n-grams taken per language and length");
        var intersection = Opt.Text("--intersection", "a list of strings shared across languages to add", "FILE");
        var size = Opt.Int("--vocab-size", 65536, "vocabulary size: 65536 or 131072");
        var name = Opt.Text("--name", "the tokenizer's name (default: the folder's name)", "NAME");
        var outDir = Opt.Required("--out", "the folder for tokenizer.json, tokenizer_config.json, special_tokens_map.json", "DIR");
        var command = new Command("build", "write tokenizer.json, tokenizer_config.json, special_tokens_map.json") { vocab, ngrams, n, top,
            intersection, size, name, outDir };
        command.SetAction(p =>
        {
            var dir = p.GetValue(outDir)!;
            BpeTokenizer t;
            if (p.GetValue(vocab) is { } published) t = Bvv241Builder.Get(published);
            else if (p.GetValue(ngrams) is { } list)
            {
                var ns = p.GetValue(n)!.Split(',').Select(s => int.TryParse(s, out var k) && k > 1 ? k : throw new StrataException(
                    $"--n: expected integers > 1, got '{s}'")).ToList();
                var candidates = Bvv241Builder.Candidates(NgramList.Load(list), ns, p.GetValue(top));
                if (p.GetValue(intersection) is { } shared) candidates.UnionWith(Bvv241Builder.IntersectionStrings(File.ReadAllText(shared)));
                var r = Bvv241Builder.Build(p.GetValue(name) ?? Path.GetFileName(Path.GetFullPath(dir)), candidates, p.GetValue(size));
                output.WriteLine($"{r.Placed:N0} n-grams placed, {r.Dropped:N0} dropped, {r.Merges:N0} merges, {r.Unreachable:N0} n-grams without a split");
                t = r.Tokenizer;
            }
            else throw new StrataException("give --vocab bvv241-2-3|bvv241-max or --ngrams FILE");
            TokenizerJson.WriteDirectory(t, dir);
            output.WriteLine($"{dir}: tokenizer.json ({t.VocabSize:N0} ids, {t.Merges.Count:N0} merges), tokenizer_config.json, special_tokens_map.json");
            return 0;
        });
        return command;
    }

    /// <summary>strata tokenizer train INPUT... --vocab-size N --out DIR</summary>
    public static Command Train(TextWriter output)
    {
        var inputs = Opt.Many("INPUT", "text, JSON-lines or Parquet files (plain or .gz / .zst), or folders of them");
        var size = Opt.Int("--vocab-size", 4096, "ids in all: 4 special tokens, the characters, the learnt merges");
        var minFrequency = Opt.Int("--min-frequency", 2, "a character or pair seen fewer times is not taken");
        var pattern = Opt.Text("--pattern", PrepareOptions.AnyText, "file name patterns inside folders, comma-separated; each also takes .gz and .zst files",
            "GLOB");
        var exclude = Opt.Text("--exclude", "skip relative paths matching this regular expression (keep held-out text out of the vocabulary)", "REGEX");
        var field = Opt.Text("--field", "text", "JSON-lines and Parquet: the field or column that holds the text", "NAME");
        var name = Opt.Text("--name", "the tokenizer's name (default: the folder's name)", "NAME");
        var outDir = Opt.Required("--out", "the folder for tokenizer.json, tokenizer_config.json, special_tokens_map.json", "DIR");
        var command = new Command("train", "learn a BPE vocabulary of a chosen size from a corpus (code-point base, Hugging Face BPE semantics)")
            { inputs, size, minFrequency, pattern, exclude, field, name, outDir };
        command.SetAction(p =>
        {
            var dir = p.GetValue(outDir)!;
            var words = new Dictionary<string, long>(StringComparer.Ordinal);
            var reader = new DocumentReader(new ReadOptions { Field = p.GetValue(field)! });
            var files = Corpus.Find(p.GetValue(inputs)!, p.GetValue(pattern)!, p.GetValue(exclude), s => output.WriteLine($"note: skipped {s}"));
            long chars = 0;
            for (int i = 0; i < files.Count; i++)
                foreach (var doc in reader.Read(i, files[i].Path, files[i].Name, canCutAtNewline: true))
                {
                    BpeTrainer.CountWords(doc.Text, words);
                    chars += doc.Text.Length;
                }
            var t = BpeTrainer.Train(p.GetValue(name) ?? Path.GetFileName(Path.GetFullPath(dir)), words, p.GetValue(size), p.GetValue(minFrequency));
            TokenizerJson.WriteDirectory(t, dir);
            output.WriteLine($"{dir}: tokenizer.json ({t.VocabSize:N0} ids: {BpeTrainer.SpecialTokens.Count} special, " +
                $"{t.VocabSize - BpeTrainer.SpecialTokens.Count - t.Merges.Count:N0} characters, " +
                             $"{t.Merges.Count:N0} merges) learnt from {chars:N0} characters in {files.Count} file(s), {words.Count:N0} distinct words");
            return 0;
        });
        return command;
    }

    /// <summary>strata tokenizer encode [--tokenizer NAME] TEXT...</summary>
    public static Command Encode(TextWriter output)
    {
        var tokenizer = Opt.Text("--tokenizer", Tokenizers.Default, "the tokenizer", "NAME|FILE.json");
        var text = Opt.Many("TEXT", "the text (words are joined by spaces)", atLeast: 0);
        var command = new Command("encode", "print ids and pieces") { tokenizer, text };
        command.SetAction(p =>
        {
            var t = Tokenizers.ByName(p.GetValue(tokenizer)!);
            var ids = t.Encode(string.Join(' ', p.GetValue(text) ?? []));
            output.WriteLine(string.Join(" ", ids));
            output.WriteLine(string.Join("|", ids.Select(id => t.Decode([id]).Replace("\n", "\\n"))));
            return 0;
        });
        return command;
    }
}
