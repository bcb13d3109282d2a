using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using Strata.Cli.Serve;
using Strata.Formats;
using Strata.Generation;
using Strata.Interop;
using Strata.Modeling;
using Strata.Runs;
using Vocabularies = Strata.Tokenization.Tokenizers;
using TorchSharp;

namespace Strata.Bench;

/// <summary>
/// `strata serve` under load and beside llama.cpp, on one model with random weights (the demo's plan at d 256 x 6
/// blocks, context 512, bvv241-2-3's 65,536 ids; random weights cost what trained ones cost).
/// 1. Decoding without HTTP: Strata's ContinuousBatcher against llama.cpp (LLamaSharp's CPU build, the same model
///    exported as f32 GGUF, llama.cpp's default context settings, the same thread count): one stream of 128 greedy
///    tokens after a 16-token prompt, then 8 such streams at once (one decode call per step in both), alternated, best
///    of --rounds after a round untimed.
/// 2. The HTTP server on loopback: one client asking 4 times for 32 seeded tokens, then 64 clients asking 4 times
///    each at once, three times over: every answer checked (200, 32 tokens, the text its seed gives alone), p50/p95
///    latency, total tokens/s and its ratio to one client's, the process's resident memory before and after each load.
/// </summary>
public static class ServeThroughput
{
    private const int PromptTokens = 16, StreamTokens = 128, Streams = 8, Clients = 64, RequestsEach = 4, RequestTokens = 32, Loads = 3;

    public static void Run(string[] args)
    {
        int threads = Arg(args, "--threads", Environment.ProcessorCount), rounds = Arg(args, "--rounds", 2);
        int d = Arg(args, "--d", 256), blocks = Arg(args, "--blocks", 6);
        torch.set_num_threads(threads);
        var home = Environment.GetEnvironmentVariable("STRATA_HOME") ?? Directory.GetCurrentDirectory();
        var dir = Directory.CreateTempSubdirectory("strata-serve-bench-").FullName;
        try
        {
            var checkpoint = Model(home, dir, d, blocks);
            var gguf = Path.Combine(dir, "model.gguf");
            GgufExport.Export(checkpoint, gguf, GgmlType.F32);
            Console.WriteLine($"serve throughput: d {d} x {blocks} blocks, context 512, vocab 65,536, f32, {threads} threads; " +
                $"GGUF {new FileInfo(gguf).Length / 1e6:F1} MB");
            Decoding(checkpoint, gguf, threads, rounds);
            Http(checkpoint).GetAwaiter().GetResult();
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static int Arg(string[] args, string name, int fallback) => args.SkipWhile(a => a != name).Skip(1).Select(int.Parse).FirstOrDefault(fallback);

    internal static string Model(string home, string dir, int d, int blocks)
    {
        var plan = GrowthPlan.Load(Path.Combine(home, "plans", "demo.json"));
        plan = plan with
        {
            Model = plan.Model with { DModel = d, NHead = d / 32, ContextLength = 512 },
            Stages = [plan.Stages[0] with { AddBlocks = blocks }],
        };
        torch.manual_seed(0);
        using var model = GrowthStage.Build(plan, 0, stageFinished: true);
        var path = Path.Combine(dir, "model.safetensors");
        Checkpoint.Save(path, model, null, new CheckpointInfo
        {
            Plan = plan, Tokenizer = Vocabularies.Default, TokenizerHash = Vocabularies.ContentHash(Vocabularies.ByName(Vocabularies.Default)),
            Depth = model.Depth,
            StageStep = plan.Stages[0].Steps, Completed = true,
        });
        return path;
    }

    private static int[] Prompt(int stream) => Enumerable.Range(0, PromptTokens).Select(i => 'a' + (i * 7 + stream * 3) % 26).ToArray();

    private static void Decoding(string checkpoint, string gguf, int threads, int rounds)
    {
        var file = Composition.CausalLMFile.Load(checkpoint, torch.CPU);
        var tokenizer = Vocabularies.ByName(file.Tokenizer);
        using var batcher = new ContinuousBatcher(file.Model, tokenizer, Streams, 64);
        var loop = new Thread(batcher.Run) { IsBackground = true };
        loop.Start();
        var p = new ModelParams(gguf) { GpuLayerCount = 0, ContextSize = (uint)(Streams * 512), SeqMax = Streams, Threads = threads, BatchThreads = threads };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);

        // a round untimed first: a process's first few hundred decoding steps run slower while the .NET JIT promotes
        // the loop (a cold first round read 10.6 ms a step, the warm ones 6-8 ms)
        StrataRate(batcher, 1);
        StrataRate(batcher, Streams);
        LlamaRate(context, 1);
        LlamaRate(context, Streams);
        double strataOne = 0, strataMany = 0, llamaOne = 0, llamaMany = 0;
        for (int round = 0; round < rounds; round++)
        {
            strataOne = Math.Max(strataOne, StrataRate(batcher, 1));
            llamaOne = Math.Max(llamaOne, LlamaRate(context, 1));
            strataMany = Math.Max(strataMany, StrataRate(batcher, Streams));
            llamaMany = Math.Max(llamaMany, LlamaRate(context, Streams));
        }
        batcher.Complete();
        loop.Join();
        Console.WriteLine($"| decoding, {PromptTokens}-token prompt + {StreamTokens} greedy tokens | Strata tokens/s | llama.cpp tokens/s | " +
            "Strata / llama.cpp |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| 1 stream | {strataOne:F0} | {llamaOne:F0} | {strataOne / llamaOne:F2}x |");
        Console.WriteLine($"| {Streams} streams at once (total) | {strataMany:F0} | {llamaMany:F0} | {strataMany / llamaMany:F2}x |");
        Console.WriteLine($"batching gain (8 streams / 1): Strata {strataMany / strataOne:F2}x, llama.cpp {llamaMany / llamaOne:F2}x");
    }

    /// <summary>Tokens per second of <paramref name="streams"/> greedy streams submitted together.</summary>
    private static double StrataRate(ContinuousBatcher batcher, int streams)
    {
        var clock = Stopwatch.StartNew();
        var readers = Enumerable.Range(0, streams)
            .Select(s => batcher.Submit(new GenerationRequest { Prompt = Prompt(s), MaxNewTokens = StreamTokens })).ToList();
        int tokens = 0;
        foreach (var r in readers)
        {
            GenerationUpdate? last = null;
            while (r.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                while (r.TryRead(out var u)) last = u;
            tokens += last!.CompletionTokens;
        }
        return tokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>The same with llama.cpp: one batch holding every stream's prompt, then one decode of one token per stream a step.</summary>
    private static double LlamaRate(LLamaContext context, int streams)
    {
        context.NativeHandle.MemoryClear(true);
        var clock = Stopwatch.StartNew();
        var batch = new LLamaBatch();
        var last = new int[streams];
        for (int s = 0; s < streams; s++)
        {
            var prompt = Prompt(s);
            for (int i = 0; i < prompt.Length; i++) last[s] = batch.Add(prompt[i], i, (LLamaSeqId)s, i == prompt.Length - 1);
        }
        Decode(context, batch);
        for (int step = 0; step < StreamTokens; step++)
        {
            var next = new int[streams];
            for (int s = 0; s < streams; s++) next[s] = ArgMax(context.NativeHandle.GetLogitsIth(last[s]));
            if (step == StreamTokens - 1) break;
            batch.Clear();
            for (int s = 0; s < streams; s++) last[s] = batch.Add(next[s], PromptTokens + step, (LLamaSeqId)s, true);
            Decode(context, batch);
        }
        return streams * StreamTokens / clock.Elapsed.TotalSeconds;
    }

    private static void Decode(LLamaContext context, LLamaBatch batch)
    {
        var result = context.NativeHandle.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    private static async Task Http(string checkpoint)
    {
        await using var server = await OpenAiServer.StartAsync(new ServeOptions
        {
            Checkpoint = checkpoint, ModelName = "bench", Port = 0, MaxBatch = 16, MaxQueue = 1024,
        }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(10) };
        http.DefaultRequestHeaders.ConnectionClose = false;

        async Task<(string Text, double Seconds)> Ask(int client, int request)
        {
            var clock = Stopwatch.StartNew();
            using var response = await http.PostAsJsonAsync("v1/completions", new
            {
                model = "bench", prompt = $"Request {client}.{request}:", max_tokens = RequestTokens, temperature = 0.9, seed = client * 100 + request,
            });
            var body = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)response.StatusCode}: {body}");
            using var json = JsonDocument.Parse(body);
            var r = json.RootElement;
            int n = r.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            var text = r.GetProperty("choices")[0].GetProperty("text").GetString()!;
            if (n != RequestTokens && r.GetProperty("choices")[0].GetProperty("finish_reason").GetString() != "stop")
                throw new InvalidOperationException($"{n} tokens");
            return (text, clock.Elapsed.TotalSeconds);
        }

        await Ask(0, 0);                                                                      // warm up
        GC.Collect();
        double rssBefore = Process.GetCurrentProcess().WorkingSet64 / 1048576.0;
        // one client, requests one after another; its texts are the reference the load must reproduce
        var expected = new Dictionary<(int, int), string>();
        var one = Stopwatch.StartNew();
        int oneTokens = 0;
        for (int r = 0; r < RequestsEach; r++)
        {
            var (text, _) = await Ask(1, r);
            expected[(1, r)] = text;
            oneTokens += RequestTokens;
        }
        double single = oneTokens / one.Elapsed.TotalSeconds;

        Console.WriteLine($"| HTTP, {RequestTokens} seeded tokens a request | requests | tokens/s (total) | p50 latency | p95 latency |");
        Console.WriteLine("|---|---|---|---|---|");
        Console.WriteLine($"| 1 client, one request after another | {RequestsEach} | {single:F0} | | |");
        // the same load three times: resident memory after each shows whether the process settles or keeps growing
        var resident = new List<double>();
        string? loop = null;
        double firstTotal = 0;
        for (int load = 1; load <= Loads; load++)
        {
            var before = await Decoder(http);
            var all = Stopwatch.StartNew();
            var results = await Task.WhenAll(Enumerable.Range(1, Clients).Select(async c =>
            {
                var latencies = new List<(int Request, string Text, double Seconds)>();
                for (int r = 0; r < RequestsEach; r++)
                {
                    var (text, seconds) = await Ask(c, r);
                    latencies.Add((r, text, seconds));
                }
                return (Client: c, latencies);
            }));
            double wall = all.Elapsed.TotalSeconds, total = Clients * RequestsEach * RequestTokens / wall;
            var after = await Decoder(http);
            GC.Collect();
            resident.Add(Process.GetCurrentProcess().WorkingSet64 / 1048576.0);
            var seconds = results.SelectMany(r => r.latencies.Select(l => l.Seconds)).Order().ToArray();
            int mismatched = results.Where(r => r.Client == 1).SelectMany(r => r.latencies).Count(l => l.Text != expected[(1, l.Request)]);
            if (mismatched > 0) throw new InvalidOperationException($"load {load}: {mismatched} of client 1's texts differ from its texts alone");
            Console.WriteLine($"| {Clients} clients x {RequestsEach} requests at once, load {load} | {seconds.Length} | {total:F0} | " +
                $"{seconds[seconds.Length / 2]:F2} s | {seconds[(int)(seconds.Length * 0.95)]:F2} s |");
            if (load == 1)
            {
                firstTotal = total;
                loop = $"the decoding loop under load 1 ({wall:F1} s, /metrics): " + string.Join(", ", after.Keys.Where(k => k != "steps").Select(k =>
                    $"{k} {after[k] - before[k]:F1} s")) + $"; {after["steps"] - before["steps"]:F0} batched steps";
            }
        }
        Console.WriteLine($"batching gain over HTTP (load 1): {firstTotal / single:F2}x; client 1's texts under every load equal its texts alone");
        Console.WriteLine($"resident memory: {rssBefore:F0} MiB before the loads, after each: {string.Join(", ", resident.Select(r => $"{r:F0}"))} MiB");
        Console.WriteLine(loop);
    }

    /// <summary>The decoder's counters from /metrics: seconds by part, and steps.</summary>
    private static async Task<Dictionary<string, double>> Decoder(HttpClient http)
    {
        var text = await http.GetStringAsync("metrics");
        var values = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            var m = System.Text.RegularExpressions.Regex.Match(line, "^strata_decoder_seconds_total\\{part=\"(\\w+)\"\\} (\\S+)$");
            if (m.Success) values[m.Groups[1].Value] = double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (line.StartsWith("strata_decode_steps_total ", StringComparison.Ordinal))
                values["steps"] = double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        return values;
    }
}
