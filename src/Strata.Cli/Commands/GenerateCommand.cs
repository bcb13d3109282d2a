using Strata.Composition;
using Strata.Generation;
using Strata.Tokenization;

namespace Strata.Cli.Commands;

public static class GenerateCommand
{
    public static int Run(Args a, TextWriter output)
    {
        var path = a.Require("checkpoint");
        var prompt = a.Get("prompt") ?? "\n";
        int maxNew = a.Int("max-new-tokens", 200);
        var options = new SamplingOptions
        {
            Temperature = a.Double("temperature", 0.8),
            TopK = a.Int("top-k", 0),
            TopP = a.Double("top-p", 1.0),
            Seed = a.Long("seed", 1337),
            UseCache = !a.Flag("no-cache"),
        };
        var device = Devices.Parse(a.Get("device"));
        a.RejectUnknown();
        using var file = CausalLMFile.Load(path, device);
        var model = file.Model;
        var tokenizer = Tokenizers.ByName(file.Tokenizer);
        output.Write(prompt);
        foreach (var id in TextGenerator.Generate(model, tokenizer.Encode(prompt), maxNew, options, tokenizer.EndOfText))
        {
            output.Write(tokenizer.Decode([id]));
            output.Flush();
        }
        output.WriteLine();
        return 0;
    }
}
