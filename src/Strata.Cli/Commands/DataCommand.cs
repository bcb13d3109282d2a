using System.CommandLine;
using Strata.Data;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class DataCommand
{
    public static Command Prepare(TextWriter output)
    {
        var inputs = Opt.Many("INPUT", "text, JSON-lines (.jsonl) or Parquet (.parquet) files, plain or .gz / .zst, or folders of them (searched recursively)");
        var outDir = Opt.Required("--out", "the dataset folder: shards and manifest.json", "DIR");
        var pattern = Opt.Text("--pattern", PrepareOptions.AnyText, "file name patterns inside folders, comma-separated; each also takes .gz and .zst files",
            "GLOB");
        var exclude = Opt.Text("--exclude", "skip relative paths matching this regular expression", "REGEX");
        var tokenizer = Opt.Text("--tokenizer", Tokenizers.Default, "bvv241-2-3, bvv241-max, codepoint, gpt2, cl100k_base or a tokenizer.json",
            "NAME|FILE.json");
        var field = Opt.Text("--field", "text", "JSON-lines and Parquet: the field or column that holds the text", "NAME");
        var valFraction = Opt.Double("--val-fraction", 0.1,
            "share of documents held out for validation (a seeded hash per document; a single text file: its tail)");
        var valMatch = Opt.Text("--val-match", "hold out the documents of files whose relative path matches (instead of a fraction)", "REGEX");
        var seed = Opt.Long("--seed", 1337, "seed of the validation choice");
        var shardTokens = Opt.Long("--shard-tokens", 100_000_000, "tokens per shard");
        var stripBom = Opt.Flag("--strip-bom", "drop a leading byte-order mark (by default the text is exactly the file's)");
        var newlines = Opt.Text("--newlines", "keep", "keep: CR LF stays CR LF (the file's text); lf: CR LF and CR become LF", "keep|lf");
        newlines.AcceptOnlyFromAmong("keep", "lf");
        var replaceInvalid = Opt.Flag("--replace-invalid",
            "replace invalid UTF-8 by U+FFFD and count it in the manifest (by default it is refused, naming file and byte)");
        var stripAnsi = Opt.Flag("--strip-ansi", "remove ANSI colour escapes (some fortune files carry them)");
        var threads = Opt.Int("--threads", Environment.ProcessorCount, "cores used for encoding (the output does not depend on it)");
        var readThreads = Opt.Int("--read-threads", PrepareOptions.DefaultReadThreads,
            "threads reading files, several at once (one per three cores by default; the output does not depend on it)");
        var restart = Opt.Flag("--restart", "drop an interrupted preparation's progress instead of resuming it");
        var command = new Command("prepare", "text in, a dataset (shards and manifest.json) out, streaming; resumes after an interruption")
            { inputs, outDir, pattern, exclude, tokenizer, field, valFraction, valMatch, seed, shardTokens, stripBom, newlines, replaceInvalid,
                stripAnsi, threads, readThreads, restart };
        command.SetAction(p =>
        {
            var o = new PrepareOptions
            {
                Inputs = p.GetValue(inputs)!, OutDir = p.GetValue(outDir)!, Pattern = p.GetValue(pattern)!, Exclude = p.GetValue(exclude),
                Tokenizer = p.GetValue(tokenizer)!, ValidationFraction = p.GetValue(valFraction), ValidationMatch = p.GetValue(valMatch),
                Seed = p.GetValue(seed), ShardTokens = p.GetValue(shardTokens), Threads = p.GetValue(threads), ReadThreads = p.GetValue(readThreads),
                Restart = p.GetValue(restart), Log = output,
                Read = new ReadOptions
                {
                    Field = p.GetValue(field)!, StripBom = p.GetValue(stripBom), NewlinesToLf = p.GetValue(newlines) == "lf",
                    ReplaceInvalid = p.GetValue(replaceInvalid), StripAnsiColour = p.GetValue(stripAnsi),
                },
            };
            var m = DataPreparer.Prepare(o);
            output.WriteLine($"{o.OutDir}: tokenizer {m.Tokenizer} (vocab {m.VocabSize:N0}); train {m.Train.Tokens:N0} tokens from " +
                $"{m.Train.Documents:N0} documents in {m.Train.Shards.Count} shard(s), validation {m.Validation.Tokens:N0} tokens from " +
                $"{m.Validation.Documents:N0} documents" + (m.Replacements > 0 ? $"; {m.Replacements:N0} invalid UTF-8 sequences replaced" : ""));
            return 0;
        });
        return command;
    }

    public static Command Info(TextWriter output)
    {
        var dir = Opt.One("DATASET", "a dataset folder");
        var noVerify = Opt.Flag("--no-verify", "skip re-hashing the shards");
        var command = new Command("info", "a dataset's manifest: tokens per split, shards, tokenizer, sources; verifies every shard's hash") { dir, noVerify };
        command.SetAction(p =>
        {
            var path = p.GetValue(dir)!;
            using var d = Dataset.Open(path);
            var m = d.Manifest;
            output.WriteLine($"dataset {path}: tokenizer {d.Tokenizer}, vocab {m.VocabSize:N0}");
            foreach (var (name, split) in new[] { ("train", m.Train), ("validation", m.Validation) })
            {
                output.WriteLine($"  {name}: {split.Tokens:N0} tokens, {split.Documents:N0} documents, {split.Bytes:N0} UTF-8 bytes" +
                                 (split.Bytes > 0 ? $" ({(double)split.Tokens / split.Bytes:F3} tokens per byte)" : "") + $", {split.Shards.Count} shard(s)");
                foreach (var s in split.Shards) output.WriteLine($"    {s.File}: {s.Tokens:N0} tokens{(s.Sha256 is { } h ? $", sha256:{h}" : "")}");
            }
            if (m.Inputs.Count > 0)
            {
                output.WriteLine($"  from {m.Inputs.Count} file(s):");
                foreach (var i in m.Inputs.Take(20)) output.WriteLine(
                    $"    {i.Path} ({i.Kind}{(i.Compression == "none" ? "" : ", " + i.Compression)}{(i.Field is { } f ? $", field {f}" : "")}): " +
                        $"{i.Documents:N0} documents, {i.Bytes:N0} bytes");
                if (m.Inputs.Count > 20) output.WriteLine($"    ... and {m.Inputs.Count - 20} more");
            }
            if (m.Replacements > 0) output.WriteLine($"  {m.Replacements:N0} invalid UTF-8 sequences were replaced by U+FFFD");
            if (!p.GetValue(noVerify)) output.WriteLine($"  verified: {d.Verify().Shards} shard(s) match their sha256, every token id within the vocabulary");
            return 0;
        });
        return command;
    }
}
