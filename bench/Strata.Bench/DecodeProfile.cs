using System.Diagnostics;
using Strata.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using Vocabularies = Strata.Tokenization.Tokenizers;

namespace Strata.Bench;

/// <summary>
/// Where one decoding step of `strata serve` goes, on the serve benchmark's model (d 256 x 6 blocks, context 512,
/// 65,536 ids, f32) with one sequence (or --rows N) 80 positions in: the whole step as the continuous batcher runs it
/// (left-padded cache rows, the next token by argmax), the same forward on a plain cache, its parts (the attention
/// context, the blocks, the head's product, and beside it the same product as libtorch's linear computes it), choosing
/// a token (argmax, one call a row and all rows in one call; sampling, and torch.multinomial beside it), and decoding
/// the sequence's text. Each figure is the median of --steps timed steps, in milliseconds.
/// </summary>
public static class DecodeProfile
{
    public static void Run(string[] args)
    {
        int threads = args.SkipWhile(a => a != "--threads").Skip(1).Select(int.Parse).FirstOrDefault(Environment.ProcessorCount);
        int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(200);
        int n = args.SkipWhile(a => a != "--rows").Skip(1).Select(int.Parse).FirstOrDefault(1);
        torch.set_num_threads(threads);
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var dir = Directory.CreateTempSubdirectory("strata-decode-profile-").FullName;
        try
        {
            var file = Composition.CausalLMFile.Load(ServeThroughput.Model(home, dir, 256, 6), torch.CPU);
            var model = (LanguageModel)file.Model;
            var tokenizer = Vocabularies.ByName(file.Tokenizer);
            using var eval = model.EvalScope();
            using var noGrad = torch.no_grad();
            const int past = 80;
            using var cache = (KvCache)model.NewCache(n);
            using (var prompt = torch.randint(0, 65536, [n, past])) model.Logits(prompt, cache).Dispose();
            using Scalar a = 97L;                                         // the id of "a"
            using var token = torch.full([n, 1], a);
            using var padding = torch.zeros([n], dtype: ScalarType.Int64);
            using var hidden = torch.randn([n, 1, 256]);
            using var rowLogits = torch.randn([n, 65536]);
            using var logits = rowLogits[0];
            using var probs = logits.softmax(0);
            var sampled = new Generation.SamplingOptions { Temperature = 0.9 };
            using var generator = new torch.Generator(1, torch.CPU);
            var greedy = Enumerable.Repeat(Generation.SamplingOptions.Greedy, n).ToList();
            var generators = Enumerable.Repeat(generator, n).ToList();
            var ids = Enumerable.Range(0, 100).Select(i => 97 + i % 26).ToList();
            var parts = new (string Name, Action Body)[]
            {
                ("the batcher's step: padded rows, argmax", () =>
                {
                    using var rows = cache.Rows(n);
                    using var logits = model.Logits(token, rows, null, padding);
                    _ = Generation.TextGenerator.ChooseEach(logits.select(1, 0), greedy, generators);
                }),
                ("the same forward on a plain cache", () =>
                {
                    using var rows = cache.Rows(n);
                    model.Logits(token, rows).Dispose();
                }),
                ("attention context (padding)", () => AttentionContext.Create(past, 1, padding, model.Config, ScalarType.Float32, torch.CPU).Dispose()),
                ("blocks and final norm (padding)", () =>
                {
                    using var rows = (KvCache)cache.Rows(n);
                    model.Hidden(token, rows, padding).Dispose();
                }),
                ($"head product [{n}, 256] x [256, 65,536]", () => model.Head.call(hidden).Dispose()),
                ("the same product as libtorch's linear, x W^T", () => nn.functional.linear(hidden, model.Head.Weight).Dispose()),
                ("argmax over 65,536 logits", () => _ = logits.argmax().item<long>()),
                ($"argmax of {n} rows, one call a row", () =>
                {
                    for (int r = 0; r < n; r++) _ = rowLogits[r].argmax().item<long>();
                }),
                ($"argmax of {n} rows in one call", () => _ = Generation.TextGenerator.ChooseEach(rowLogits, greedy, generators)),
                ("sample at temperature 0.9 (seeded)", () => _ = Generation.TextGenerator.Choose(logits, sampled, generator)),
                ("softmax of 65,536 logits", () => logits.softmax(0).Dispose()),
                ("multinomial of 65,536 probabilities", () => torch.multinomial(probs, 1, false, generator).Dispose()),
                ("decode 100 ids to text", () => tokenizer.Decode(ids)),
            };
            Console.WriteLine($"decode step profile: d 256 x 6 blocks, 65,536 ids, f32, {threads} threads, {n} sequence(s) at {past} positions; " +
                $"median of {steps} steps, ms");
            // warm-up: the first hundred-odd steps of a process run slower (the JIT's tiers), so every part runs 200 times first
            foreach (var (_, body) in parts)
                for (int i = 0; i < 200; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    body();
                    cache.SetLength(past);
                }
            foreach (var (name, body) in parts)
            {
                var times = new List<double>();
                for (int i = 0; i < steps; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    var clock = Stopwatch.StartNew();
                    body();
                    times.Add(clock.Elapsed.TotalMilliseconds);
                    cache.SetLength(past);
                }
                Console.WriteLine($"| {name} | {Readings.Median(times):F3} |");
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
