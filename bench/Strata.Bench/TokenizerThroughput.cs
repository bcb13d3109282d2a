using System.Diagnostics;
using System.Text;
using Strata.Data;
using Strata.Tokenization;

namespace Strata.Bench;

/// <summary>
/// Single-thread encode MB/s (UTF-8 bytes in) of Strata's bvv241 tokenizer and of the Hugging Face `tokenizers`
/// library (Tokenizers.DotNet, loading the tokenizer.json Strata writes) on English (State of the Union), Russian
/// (fortunes-ru) and Chinese (fortunes-zh) text; ids are checked equal on every text first. Cold: Strata's piece cache
/// is emptied before each text (as a tokenizer just loaded); warm: each text is encoded once untimed and then timed
/// (Strata's cache then holds that text's pieces; the library gets the same untimed pass). The two libraries alternate
/// text by text, five rounds; each figure is the median of the five. Then `data prepare` throughput on all cores.
/// </summary>
public static class TokenizerThroughput
{
    private const int Rounds = 5;

    public static void Run(string[] args)
    {
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var sotu = Path.Combine(home, "data", "raw", "sotu", "data");
        var corpora = new (string Lang, string[] Files)[]
        {
            ("English", Directory.GetFiles(sotu, "*.txt").Order(StringComparer.Ordinal).ToArray()),
            ("Russian", Directory.GetFiles("/usr/share/games/fortunes/ru").Where(f => !f.EndsWith(".dat") && !f.EndsWith(".u8")).Order(
                StringComparer.Ordinal).ToArray()),
            ("Chinese", new[] { "chinese", "tang300", "song100" }.Select(f => "/usr/share/games/fortunes/" + f).ToArray()),
        };
        Console.WriteLine($"tokenizer throughput: MB/s on one thread, median of {Rounds} alternating rounds");
        Console.WriteLine("| vocabulary | text | MB | Strata cold | HF | cold ratio | Strata warm | HF (same pass) | warm ratio | ids equal |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
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
                bool equal = texts.All(t => ours.Encode(t).SequenceEqual(hf.Encode(t).Select(x => (int)x)));   // also loads both fully
                var seconds = new double[4, Rounds];                                          // ours cold, hf cold, ours warm, hf warm
                for (int round = 0; round < Rounds; round++)
                    foreach (var t in texts)
                    {
                        ours.ClearCache();
                        seconds[0, round] += Time(() => ours.Encode(t));
                        seconds[1, round] += Time(() => hf.Encode(t));
                        ours.Encode(t);
                        hf.Encode(t);
                        seconds[2, round] += Time(() => ours.Encode(t));
                        seconds[3, round] += Time(() => hf.Encode(t));
                    }
                double Speed(int k) => mb / Readings.Median(Enumerable.Range(0, Rounds).Select(r => seconds[k, r]));
                Console.WriteLine($"| {name} | {lang} | {mb:F1} | {Speed(0):F1} | {Speed(1):F1} | {Speed(0) / Speed(1):F2}x | {Speed(2):F1} | " +
                    $"{Speed(3):F1} | {Speed(2) / Speed(3):F1}x | {(equal ? "yes" : "NO")} |");
            }
        }
        var outDir = Path.Combine(Path.GetTempPath(), "strata-bench-prepare");
        var bytes = corpora[0].Files.Sum(f => new FileInfo(f).Length) / 1e6;
        var clock = Stopwatch.StartNew();
        DataPreparer.Prepare(new PrepareOptions { Inputs = [sotu], OutDir = outDir });
        Console.WriteLine($"\ndata prepare (bvv241-2-3, {Environment.ProcessorCount} cores, read + encode + write): {bytes:F1} MB of State of the " +
            $"Union in {clock.Elapsed.TotalSeconds:F2} s = {bytes / clock.Elapsed.TotalSeconds:F1} MB/s");
    }

    private static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }
}
