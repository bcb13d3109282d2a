using System.CommandLine;
using Strata.Composition;
using Strata.Generation;
using Strata.Tokenization;

namespace Strata.Cli.Commands;

public static class GenerateCommand
{
    public static Command Create(TextWriter output)
    {
        var checkpoint = Opt.Required("--checkpoint", "a checkpoint, a stage-N.safetensors or an ensemble .json", "FILE");
        var prompt = Opt.Text("--prompt", "\n", "text to continue", "TEXT");
        var maxNew = Opt.Int("--max-new-tokens", 200, "tokens to generate");
        var temperature = Opt.Double("--temperature", 0.8, "sampling temperature; 0 is greedy");
        var topK = Opt.Int("--top-k", 0, "sample among the k most likely ids (0: all)");
        var topP = Opt.Double("--top-p", 1.0, "nucleus sampling: the smallest set of ids with this much probability");
        var seed = Opt.Long("--seed", 1337, "seed of the sampler");
        var noCache = Opt.Flag("--no-cache", "recompute every position instead of using the KV cache");
        var device = Opt.Device();
        var command = new Command("generate", "stream a continuation (temperature 0 = greedy)")
            { checkpoint, prompt, maxNew, temperature, topK, topP, seed, noCache, device };
        command.SetAction(p =>
        {
            var options = new SamplingOptions
            {
                Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed), UseCache =
                    !p.GetValue(noCache),
            };
            using var file = CausalLMFile.Load(p.GetValue(checkpoint)!, Devices.Parse(p.GetValue(device)));
            var tokenizer = Tokenizers.ByName(file.Tokenizer);
            var text = p.GetValue(prompt)!;
            output.Write(text);
            foreach (var id in TextGenerator.Generate(file.Model, tokenizer.Encode(text), p.GetValue(maxNew), options, tokenizer.EndOfText))
            {
                output.Write(tokenizer.Decode([id]));
                output.Flush();
            }
            output.WriteLine();
            return 0;
        });
        return command;
    }
}
