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
            int maxNewTokens = p.GetValue(maxNew);
            if (maxNewTokens is < 0 or > 1_000_000) throw new Util.StrataException($"--max-new-tokens: must be in 0..1000000, got {maxNewTokens}");
            using var file = CausalLMFile.Load(CheckpointPaths.Resolve(p.GetValue(checkpoint)!), Devices.Parse(p.GetValue(device)));
            options.Validate(file.Model.Config.VocabSize);
            var tokenizer = Tokenizers.ByName(file.Tokenizer);
            options = options with { Vocabulary = tokenizer.VocabSize };
            var text = p.GetValue(prompt)!;
            // an empty prompt starts where every training document starts: after the document separator
            var ids = text.Length > 0 ? tokenizer.Encode(text) : tokenizer.EndOfText is { } eot ? [eot]
                : throw new Util.StrataException($"--prompt: empty, and the tokenizer {tokenizer.Name} has no document separator to start from");
            output.Write(text);
            foreach (var id in TextGenerator.Generate(file.Model, ids, maxNewTokens, options, tokenizer.EndOfText))
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
