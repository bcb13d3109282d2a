using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;
using Strata.Data;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Bench;

/// <summary>
/// `data prepare` at corpus scale: builds a corpus of real text (State of the Union paragraphs, Russian and Chinese
/// fortunes; every copy of a document has about one word in ten changed by a seeded letter substitution, so no two
/// copies tokenize from the same cache entries) as a third each of Parquet (row groups of 10,000 rows), JSON lines
/// compressed with zstd, and plain text files; then prepares it with bvv241-2-3 on all cores and reports MB/s of UTF-8
/// text end to end (read, decompress, parse, encode, write, hash), the cores it kept busy (CPU time / wall) and the
/// process's peak resident memory. The preparation runs in a process of its own that does nothing else first, so the
/// peak is the preparation's; the first documents of the result are checked against encoding each document alone.
/// The yardsticks are the tokenizer alone, on one core and on two threads (no reading or writing: the most two cores
/// can encode here), each measured in a process of its own just before every preparation and again just after it (this
/// machine's speed drifts by more than the differences measured), on the corpus's first 200 MB, with cold caches as
/// the preparation's threads start; the first of those processes also times reading alone (decompression, Parquet and
/// JSON parsing, UTF-8 checks; one thread). --rounds N alternates N preparations with those measurements.
/// With --read-threads N,M: reading alone and the preparation (with the code-point tokenizer, whose encoding costs
/// little, and with bvv241-2-3) on N and on M reading threads instead, alternating.
///   Strata.Bench data [--gb 1,5] [--rounds N] [--dir DIR] [--read-threads 1,2]
/// </summary>
public static class DataThroughput
{
    private sealed class Row
    {
        [JsonPropertyName("text")] public string? Text { get; set; }
    }

    public static void Run(string[] args)
    {
        var sizes = (args.SkipWhile(a => a != "--gb").Skip(1).FirstOrDefault() ?? "1,5").Split(',').Select(double.Parse).ToList();
        var root = args.SkipWhile(a => a != "--dir").Skip(1).FirstOrDefault() ?? Path.Combine(StrataHome.Root, "data", "bench-corpus");
        var child = args.SkipWhile(a => a != "--child").Skip(1).FirstOrDefault();
        var readThreads = args.SkipWhile(a => a != "--read-threads").Skip(1).FirstOrDefault()?.Split(',').Select(int.Parse).ToList();
        var tokenizer = args.SkipWhile(a => a != "--tokenizer").Skip(1).FirstOrDefault() ?? Bvv241Builder.TwoThree;
        if (child is not null)
        {
            var corpus = Path.Combine(root, $"{sizes[0]}gb");
            int n = readThreads?[0] ?? PrepareOptions.DefaultReadThreads;
            Console.WriteLine(child switch
            {
                "prepare" => Prepare(corpus, Path.Combine(root, $"{sizes[0]}gb-dataset"), tokenizer, n),
                "read" => ReadingRate(corpus, n) is var (mbs, cores) ? Line(mbs, cores) : "",
                "parts" => Parts(corpus, readAll: true),
                _ => Parts(corpus, readAll: false),
            });
            return;
        }
        int rounds = int.Parse(args.SkipWhile(a => a != "--rounds").Skip(1).FirstOrDefault() ?? "1");
        var fileCounts = sizes.Select(gb => Generate(Path.Combine(root, $"{gb}gb"), (long)(gb * 1e9))).ToList();      // once, kept for later runs
        if (readThreads is not null)
        {
            Reading(root, sizes[0], readThreads, rounds);
            return;
        }
        Console.WriteLine($"{Environment.ProcessorCount} cores; each preparation, and the tokenizer alone before and after it, in a process of its own");
        Console.WriteLine("| corpus | round | seconds | MB/s | cores busy | peak RSS (MiB) | tokenizer on one core, MB/s before / after | prepare / that " +
            "| tokenizer on two threads, MB/s before / after | prepare / that | first 2,000 documents equal to encoding each alone |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        var notes = new List<string>();
        foreach (var (gb, files) in sizes.Zip(fileCounts))
        {
            double[] Child(string what, out string last)
            {
                var fields = ChildFields(root, gb, what);
                last = fields[^1];
                return fields.SkipLast(what == "prepare" ? 1 : 0).Select(Number).ToArray();
            }
            var before = Child("parts", out _);
            double read = before[0];
            var ratios = new List<(double One, double Two)>();
            double mb = 0, tokens = 0;
            for (int r = 1; r <= rounds; r++)
            {
                var prepared = Child("prepare", out var exact);
                var after = Child("tokenizer", out _);
                (mb, tokens) = (prepared[0], prepared[4]);
                double rate = mb / prepared[1], one = rate / ((before[1] + after[1]) / 2), two = rate / ((before[2] + after[2]) / 2);
                ratios.Add((one, two));
                Console.WriteLine($"| {gb} GB | {r} | {prepared[1]:F0} | {rate:F1} | {prepared[2]:F2} | {prepared[3]:F0} | {before[1]:F1} / {after[1]:F1} | " +
                    $"{one:F2}x | {before[2]:F1} / {after[2]:F1} | {two:F2}x | {exact} |");
                before = after;
            }
            notes.Add($"{gb} GB: {files:N0} files, {mb:N0} MB of text, {tokens:N0} tokens; reading alone (one thread) {read:F0} MB/s; median over " +
                $"{rounds} round(s): {Readings.Median(ratios.Select(x => x.One)):F2}x the tokenizer on one core, " +
                $"{Readings.Median(ratios.Select(x => x.Two)):F2}x on two threads");
        }
        Console.WriteLine();
        foreach (var note in notes) Console.WriteLine(note);
    }

    /// <summary>Reading against the number of reading threads: for each count, in each round, reading alone (every
    /// document of the corpus handed on in order, as the preparation's reading threads hand them on) and the
    /// preparation with the code-point tokenizer (which costs little, so reading bounds it, as it bounds bvv241 on a
    /// machine of many cores) and with bvv241-2-3, each in a process of its own.</summary>
    private static void Reading(string root, double gb, List<int> counts, int rounds)
    {
        string[] Child(string what, int n, string tokenizer) =>
            ChildFields(root, gb, what, "--read-threads", n.ToString(CultureInfo.InvariantCulture), "--tokenizer", tokenizer);
        Console.WriteLine($"{Environment.ProcessorCount} cores, {gb} GB corpus; reading threads {string.Join(", ", counts)} alternating, each reading " +
            "in a process of its own");
        Console.WriteLine("| round | reading threads | reading alone: MB/s, cores busy | prepare with codepoint: MB/s, cores busy " +
            "| prepare with bvv241-2-3: MB/s, cores busy, peak RSS (MiB), first 2,000 documents equal |");
        Console.WriteLine("|---|---|---|---|---|");
        var rates = counts.ToDictionary(n => n, _ => new List<(double Read, double Codepoint, double Bvv)>());
        for (int r = 1; r <= rounds; r++)
            foreach (var n in counts)
            {
                var reading = Child("read", n, Bvv241Builder.TwoThree);
                double read = Number(reading[0]);
                var cp = Child("prepare", n, "codepoint");
                var bvv = Child("prepare", n, Bvv241Builder.TwoThree);
                double cpRate = Number(cp[0]) / Number(cp[1]), bvvRate = Number(bvv[0]) / Number(bvv[1]);
                rates[n].Add((read, cpRate, bvvRate));
                Console.WriteLine($"| {r} | {n} | {read:F1}, {Number(reading[1]):F2} | {cpRate:F1}, {Number(cp[2]):F2} | " +
                    $"{bvvRate:F1}, {Number(bvv[2]):F2}, {Number(bvv[3]):F0}, {bvv[^1]} |");
            }
        Console.WriteLine();
        int baseline = counts[0];
        foreach (var n in counts.Skip(1))
        {
            double Ratio(Func<(double Read, double Codepoint, double Bvv), double> part) =>
                Readings.Median(rates[n].Zip(rates[baseline], (a, b) => part(a) / part(b)));
            Console.WriteLine($"{n} reading threads against {baseline}, median of the rounds' ratios: reading alone {Ratio(x => x.Read):F2}x, " +
                $"prepare with codepoint {Ratio(x => x.Codepoint):F2}x, with bvv241-2-3 {Ratio(x => x.Bvv):F2}x");
        }
    }

    /// <summary>This benchmark again in a process of its own (<c>data --child WHAT</c> on the corpus of
    /// <paramref name="gb"/> GB): the fields of the last line it prints (a preparation may print a difference first).</summary>
    private static string[] ChildFields(string root, double gb, string what, params string[] extra)
    {
        var psi = ChildProcess.StartInfo(["data", "--child", what, "--gb", gb.ToString(CultureInfo.InvariantCulture), "--dir", root, .. extra]);
        psi.RedirectStandardOutput = true;
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"data --child {what} failed: {output}");
        return output.Split('\n')[^1].Split(' ');
    }

    private static double Number(string x) => double.Parse(x, CultureInfo.InvariantCulture);

    /// <summary>MB/s of reading every document of the corpus on <paramref name="threads"/> reading threads, handed on in
    /// order as the preparation's reading threads hand them on (decompression, Parquet and JSON parsing, UTF-8 checks),
    /// and the cores it kept busy.</summary>
    private static (double MBs, double Cores) ReadingRate(string corpus, int threads)
    {
        var files = Corpus.Find([corpus], "*");
        var reader = new DocumentReader(new ReadOptions());
        long bytes = 0;
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        foreach (var d in ReadAhead.InOrder(files.Count, i => reader.Read(i, files[i].Path, files[i].Name, true), threads))
            bytes += Encoding.UTF8.GetByteCount(d.Text);
        double seconds = clock.Elapsed.TotalSeconds;
        return (bytes / 1e6 / seconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / seconds);
    }

    /// <summary>Prepares the corpus; "MB seconds cores peak-MiB tokens exact" on one line.</summary>
    private static string Prepare(string corpus, string outDir, string tokenizer, int readThreads)
    {
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        PeakMemory.Reset();
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var m = DataPreparer.Prepare(new PrepareOptions { Inputs = [corpus], OutDir = outDir, Pattern = "*", ValidationFraction = 0.001,
            Tokenizer = tokenizer, ReadThreads = readThreads });
        double seconds = clock.Elapsed.TotalSeconds, peak = PeakMemory.Mib();
        double cores = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds / seconds;
        bool exact = FirstDocumentsExact(corpus, outDir, 2000, Strata.Tokenization.Tokenizers.ByName(tokenizer));
        Directory.Delete(outDir, recursive: true);
        return Line((m.Train.Bytes + m.Validation.Bytes) / 1e6, seconds, cores, peak, m.Train.Tokens + m.Validation.Tokens, exact ? "yes" : "NO");
    }

    /// <summary>The preparation's parts alone: reading every document of the corpus on one thread (decompression,
    /// Parquet and JSON parsing, UTF-8 checks; only with <paramref name="readAll"/>, else 0), and the tokenizer encoding
    /// the corpus's first 200 MB of documents (read into memory first), on one thread and then on two (every other
    /// document each), appending to one list per thread as the preparation's threads call it. "read-MB/s
    /// one-thread-MB/s two-thread-MB/s" on one line.</summary>
    private static string Parts(string corpus, bool readAll)
    {
        var files = Corpus.Find([corpus], "*");
        var reader = new DocumentReader(new ReadOptions());
        var sample = new List<string>();
        long bytes = 0, sampleBytes = 0;
        var clock = Stopwatch.StartNew();
        foreach (var (path, name) in files)
        {
            foreach (var d in reader.Read(0, path, name, true))
            {
                long n = Encoding.UTF8.GetByteCount(d.Text);
                bytes += n;
                if (sampleBytes < 200_000_000) { sample.Add(d.Text); sampleBytes += n; }
                else if (!readAll) break;
            }
            if (!readAll && sampleBytes >= 200_000_000) break;
        }
        double read = readAll ? bytes / 1e6 / clock.Elapsed.TotalSeconds : 0;
        ITokenizer tokenizer = Bvv241Builder.Get(Bvv241Builder.TwoThree);
        double EncodeRate(int threads)
        {
            var encoders = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                var ids = new List<int>();
                for (int i = t; i < sample.Count; i += threads)
                {
                    ids.Clear();
                    tokenizer.Encode(sample[i], ids);
                }
            })).ToList();
            clock.Restart();
            encoders.ForEach(e => e.Start());
            encoders.ForEach(e => e.Join());
            return sampleBytes / 1e6 / clock.Elapsed.TotalSeconds;
        }
        return Line(read, EncodeRate(1), EncodeRate(2));                                     // new threads: each starts with a cold cache
    }

    /// <summary>A child's answer to the parent: values apart by spaces, numbers as the invariant culture writes them.</summary>
    private static string Line(params object[] values) => string.Join(' ', values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)));

    /// <summary>Paragraphs of the State of the Union, Russian fortunes, Chinese fortunes and poems.</summary>
    private static List<string> BaseDocuments()
    {
        var docs = new List<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(StrataHome.Root, "data", "raw", "sotu", "data"), "*.txt").Order(StringComparer.Ordinal))
            docs.AddRange(Corpus.ReadText(f).Split("\n\n").Where(p => p.Length > 40));
        foreach (var f in Directory.GetFiles("/usr/share/games/fortunes/ru").Where(f => !f.EndsWith(".dat") && !f.EndsWith(".u8")).Order(
            StringComparer.Ordinal))
            docs.AddRange(Corpus.ReadText(f).Split("\n%\n").Where(p => p.Length > 20));
        foreach (var f in new[] { "chinese", "tang300", "song100" })
            docs.AddRange(Corpus.StripAnsiColour(Corpus.ReadText("/usr/share/games/fortunes/" + f)).Split("\n%\n").Where(p => p.Length > 10));
        return docs;
    }

    /// <summary>Copy <paramref name="copy"/> of a document: about one word in ten has one letter replaced by a letter of
    /// the same script, seeded by (copy, document).</summary>
    private static string Vary(string doc, int copy, int index)
    {
        if (copy == 0) return doc;
        var rng = SplitMix64.For(copy, 11, index);
        var chars = doc.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            char c = chars[i];
            bool wordStart = char.IsLetter(c) && (i == 0 || !char.IsLetter(chars[i - 1]));
            if (!wordStart || rng.NextBelow(10) != 0) continue;
            int len = 0;
            while (i + len < chars.Length && char.IsLetter(chars[i + len])) len++;
            int at = i + (int)rng.NextBelow(len);
            char x = chars[at];
            chars[at] = x switch
            {
                >= 'a' and <= 'z' => (char)('a' + rng.NextBelow(26)),
                >= 'A' and <= 'Z' => (char)('A' + rng.NextBelow(26)),
                >= 'а' and <= 'я' => (char)('а' + rng.NextBelow(32)),
                >= '\u4E00' and <= '\u9FFF' => (char)('\u4E00' + rng.NextBelow(0x5200)),
                _ => x,
            };
        }
        return new string(chars);
    }

    /// <summary>Writes the corpus once (kept for later runs): files of about 64 MB of text, in turn Parquet, JSONL.zst, text.</summary>
    private static int Generate(string dir, long bytes)
    {
        var done = dir + ".complete";                                                    // beside the corpus, not in it
        if (File.Exists(done)) return Directory.GetFiles(dir).Length;
        var baseDocs = BaseDocuments();
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var clock = Stopwatch.StartNew();
        long written = 0;
        int file = 0, copy = 0, next = 0;
        IEnumerable<string> Docs()
        {
            for (; ; copy++)
                for (int i = 0; i < baseDocs.Count; i++) yield return Vary(baseDocs[i], copy, i);
        }
        using var docs = Docs().GetEnumerator();
        while (written < bytes)
        {
            var batch = new List<string>();
            long size = 0;
            while (size < 64_000_000 && written + size < bytes && docs.MoveNext()) { batch.Add(docs.Current); size += Encoding.UTF8.GetByteCount(
                docs.Current); }
            var name = Path.Combine(dir, $"part-{file:D4}");
            switch (next++ % 3)
            {
                case 0:
                    Parquet.Serialization.ParquetSerializer.SerializeAsync(batch.Select(t => new Row { Text = t }), name + ".parquet",
                        new Parquet.ParquetOptions { RowGroupSize = 10_000 }).GetAwaiter().GetResult();
                    break;
                case 1:
                    using (var f = File.Create(name + ".jsonl.zst"))
                    using (var z = new ZstdSharp.CompressionStream(f, 3))
                    using (var w = new StreamWriter(z, new UTF8Encoding(false)))
                        foreach (var t in batch) w.Write(System.Text.Json.JsonSerializer.Serialize(new Row { Text = t }) + "\n");
                    break;
                default:
                    // text files are documents: a few hundred documents per file
                    for (int k = 0; k < batch.Count; k += 400)
                        File.WriteAllText($"{name}-{k / 400:D4}.txt", string.Join("\n\n", batch.Skip(k).Take(400)), new UTF8Encoding(false));
                    break;
            }
            written += size;
            file++;
        }
        File.WriteAllText(done, "");
        Console.WriteLine($"generated {dir}: {written / 1e9:F2} GB of text in {Directory.GetFiles(dir).Length} files, {clock.Elapsed.TotalSeconds:F0} s");
        return Directory.GetFiles(dir).Length;
    }

    /// <summary>The training stream's first documents against encoding each of them alone (in reading order; documents
    /// held out for validation are skipped as the preparation skipped them).</summary>
    private static bool FirstDocumentsExact(string corpus, string datasetDir, int count, ITokenizer tokenizer)
    {
        var files = Corpus.Find([corpus], "*");
        var reader = new DocumentReader(new ReadOptions());
        var expected = new List<int>();
        int taken = 0;
        bool first = true;
        foreach (var (path, name) in files)
        {
            foreach (var d in reader.Read(0, path, name, tokenizer.NeverMergesAcross('\n')))
            {
                if (DataPreparer.HeldOut(1337, d.Source, d.Index, 0.001)) continue;
                if (!first && !d.Continues && tokenizer.EndOfText is { } separator) expected.Add(separator);
                first = false;
                expected.AddRange(tokenizer.Encode(d.Text));
                if (!d.Continues && ++taken >= count) break;
            }
            if (taken >= count) break;
        }
        using var dataset = Dataset.Open(datasetDir);
        var stream = new List<int>();
        foreach (var shard in dataset.Shards(DatasetSplit.Train))
        {
            var n = (int)Math.Min(shard.Count, expected.Count - stream.Count);
            var part = new long[n];
            shard.Read(0, part);
            stream.AddRange(part.Select(x => (int)x));
            if (stream.Count >= expected.Count) break;
        }
        int at = Enumerable.Range(0, Math.Min(stream.Count, expected.Count)).FirstOrDefault(i => stream[i] != expected[i], -1);
        if (at >= 0 || stream.Count != expected.Count)
            Console.WriteLine($"  first difference at token {at} of {expected.Count} (stream has {stream.Count}): dataset " +
                $"{string.Join(",", stream.Skip(Math.Max(0, at - 3)).Take(8))} vs alone {string.Join(",", expected.Skip(Math.Max(0, at - 3)).Take(8))}");
        return stream.SequenceEqual(expected);
    }
}
