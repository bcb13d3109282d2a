using System.CommandLine;
using Strata.Data;
using Strata.Tokenization;

namespace Strata.Cli.Commands;

public static class DataCommand
{
    public static Command Prepare(TextWriter output)
    {
        var inputs = Opt.Many("INPUT", "text files or folders (searched recursively)");
        var outDir = Opt.Required("--out", "the folder for train.tokens, val.tokens and meta.json", "DIR");
        var pattern = Opt.Text("--pattern", "*.txt", "file name pattern inside folders", "GLOB");
        var exclude = Opt.Text("--exclude", "skip relative paths matching this regular expression", "REGEX");
        var tokenizer = Opt.Text("--tokenizer", Tokenizers.Default, "bvv241-2-3, bvv241-max, codepoint, gpt2, cl100k_base or a tokenizer.json", "NAME|FILE.json");
        var valFraction = Opt.Double("--val-fraction", 0.1, "share of documents held out for validation (seeded)");
        var valMatch = Opt.Text("--val-match", "hold out the documents whose relative path matches (instead of a fraction)", "REGEX");
        var seed = Opt.Long("--seed", 1337, "seed of the validation draw");
        var stripAnsi = Opt.Flag("--strip-ansi", "remove ANSI colour escapes (some fortune files carry them)");
        var command = new Command("prepare", "text in, token shards (train.tokens, val.tokens, meta.json) out")
            { inputs, outDir, pattern, exclude, tokenizer, valFraction, valMatch, seed, stripAnsi };
        command.SetAction(p =>
        {
            var o = new PrepareOptions
            {
                Inputs = p.GetValue(inputs)!, OutDir = p.GetValue(outDir)!, Pattern = p.GetValue(pattern)!, Exclude = p.GetValue(exclude),
                Tokenizer = p.GetValue(tokenizer)!, ValidationFraction = p.GetValue(valFraction), ValidationMatch = p.GetValue(valMatch),
                Seed = p.GetValue(seed), StripAnsiColour = p.GetValue(stripAnsi),
            };
            var r = DataPreparer.Prepare(o);
            output.WriteLine($"{o.OutDir}: tokenizer {r.Tokenizer} (vocab {r.VocabSize:N0}); train {r.TrainTokens:N0} tokens from {r.TrainDocuments} documents, " +
                             $"validation {r.ValidationTokens:N0} tokens from {r.ValidationDocuments}");
            return 0;
        });
        return command;
    }
}
