using System.Diagnostics;
using System.Text;
using Strata.Data;
using Strata.Tokenization;

namespace Strata.Bench;

/// <summary>
/// Single-thread encode MB/s (UTF-8 bytes in) of Strata's bvv241 tokenizer and of the Hugging Face `tokenizers`
/// library (Tokenizers.DotNet, loading the tokenizer.json Strata writes), alternating in one run on English (State of
/// the Union), Russian (fortunes-ru) and Chinese (fortunes-zh) text; ids are checked equal. Then `data prepare`
/// throughput on all cores.
/// </summary>
public static class TokenizerThroughput
{
    public static void Run(string[] args)
    {
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var sotu = Path.Combine(home, "data", "raw", "sotu", "data");
        var corpora = new (string Lang, string[] Files)[]
        {
            ("English", Directory.GetFiles(sotu, "*.txt").Order(StringComparer.Ordinal).ToArray()),
            ("Russian", Directory.GetFiles("/usr/share/games/fortunes/ru").Where(f => !f.EndsWith(".dat") && !f.EndsWith(".u8")).Order(StringComparer.Ordinal).ToArray()),
            ("Chinese", new[] { "chinese", "tang300", "song100" }.Select(f => "/usr/share/games/fortunes/" + f).ToArray()),
        };
        Console.WriteLine("| vocabulary | text | MB | Strata MB/s | HF tokenizers MB/s | ratio | ids equal |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var name in new[] { Bvv241Builder.TwoThree, Bvv241Builder.Max })
        {
            var ours = Bvv241Builder.Get(name);
            var dir = Path.Combine(Path.GetTempPath(), "strata-bench-" + name);
            TokenizerJson.WriteDirectory(ours, dir);
            using var hf = new Tokenizers.DotNet.Tokenizer(Path.Combine(dir, TokenizerJson.FileName));
            foreach (var (lang, files) in corpora)
            {
                var texts = files.Select(Corpus.ReadText).ToArray();
                double mb = texts.Sum(t => Encoding.UTF8.GetByteCount(t)) / 1e6;
                bool equal = texts.All(t => ours.Encode(t).SequenceEqual(hf.Encode(t).Select(x => (int)x)));   // also warms both up
                double oursBest = 0, hfBest = 0;
                for (int rep = 0; rep < 3; rep++)
                {
                    var sw = Stopwatch.StartNew();
                    foreach (var t in texts) ours.Encode(t);
                    oursBest = Math.Max(oursBest, mb / sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    foreach (var t in texts) hf.Encode(t);
                    hfBest = Math.Max(hfBest, mb / sw.Elapsed.TotalSeconds);
                }
                Console.WriteLine($"| {name} | {lang} | {mb:F1} | {oursBest:F1} | {hfBest:F1} | {oursBest / hfBest:F1}x | {(equal ? "yes" : "NO")} |");
            }
        }
        var outDir = Path.Combine(Path.GetTempPath(), "strata-bench-prepare");
        var bytes = corpora[0].Files.Sum(f => new FileInfo(f).Length) / 1e6;
        var clock = Stopwatch.StartNew();
        DataPreparer.Prepare(new PrepareOptions { Inputs = [sotu], OutDir = outDir });
        Console.WriteLine($"\ndata prepare (bvv241-2-3, {Environment.ProcessorCount} cores, read + encode + write): {bytes:F1} MB of State of the Union in {clock.Elapsed.TotalSeconds:F2} s = {bytes / clock.Elapsed.TotalSeconds:F1} MB/s");
    }
}
