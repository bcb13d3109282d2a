using Strata.Data;

namespace Strata.Cli.Commands;

public static class DataCommand
{
    public static int Prepare(Args a, TextWriter output)
    {
        var o = new PrepareOptions
        {
            Inputs = a.Positionals.ToList(),
            OutDir = a.Require("out"),
            Pattern = a.Get("pattern") ?? "*.txt",
            Exclude = a.Get("exclude"),
            Tokenizer = a.Get("tokenizer") ?? Strata.Tokenization.Tokenizers.Default,
            ValidationFraction = a.Double("val-fraction", 0.1),
            ValidationMatch = a.Get("val-match"),
            Seed = a.Long("seed", 1337),
            StripAnsiColour = a.Flag("strip-ansi"),
        };
        a.RejectUnknown();
        var r = DataPreparer.Prepare(o);
        output.WriteLine($"{o.OutDir}: tokenizer {r.Tokenizer} (vocab {r.VocabSize:N0}); train {r.TrainTokens:N0} tokens from {r.TrainDocuments} documents, " +
                         $"validation {r.ValidationTokens:N0} tokens from {r.ValidationDocuments}");
        return 0;
    }
}
