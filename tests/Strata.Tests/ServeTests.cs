using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Strata.Cli.Serve;
using Strata.Generation;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Training;
using Xunit;
using Xunit.Abstractions;

namespace Strata.Tests;

/// <summary>A small trained model with a chat template, served on a free loopback port for the tests of a class.</summary>
public sealed class ServedModel : IAsyncLifetime
{
    public static readonly ChatTemplate Chat = new() { User = "[USER]", Assistant = "[ASSISTANT]" };
    public const string Name = "sotu-tiny";
    public const long BodyLimit = 64 << 10;
    internal OpenAiServer Server { get; private set; } = null!;
    public string Checkpoint { get; private set; } = "";
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(60, context: 64, lr: 1e-2) with { Chat = Chat }, new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        Checkpoint = Path.Combine(dir, RunDirectory.CheckpointName);
        Server = await OpenAiServer.StartAsync(new ServeOptions
        {
            Checkpoint = Checkpoint, ModelName = Name, Port = 0, MaxBatch = 8, MaxQueue = 1024, MaxBodyBytes = BodyLimit,
        }, TextWriter.Null);
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromMinutes(5) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}

[Collection("torch")]
public class ServeTests(ServedModel served, ITestOutputHelper log) : IClassFixture<ServedModel>
{
    private const string Prompt = "The Congress";

    /// <summary>A model slow enough that 400 tokens are still being decoded when a client leaves or the signal comes
    /// (untrained, d_model 384, 65,536 ids).</summary>
    private static readonly Lazy<string> SlowModel = new(() => ExportModels.Untrained("codepoint", 65536, d: 384, blocks: 4, context: 512));

    private static string Greedy(string checkpoint, string prompt, int tokens)
    {
        var (code, output, err) = CliRunner.Run("generate", "--checkpoint", checkpoint, "--prompt", prompt, "--max-new-tokens", tokens.ToString(),
            "--temperature", "0");
        Assert.True(code == 0, err);
        return output.TrimEnd('\n')[prompt.Length..];
    }

    [Fact]
    public void The_official_openai_client_gets_strata_generate_s_greedy_text_whole_and_streamed()
    {
        using var result = JsonDocument.Parse(NodeScript.Run("openai-client.mjs", new Uri(served.Server.Address, "v1").ToString(), ServedModel.Name,
            Prompt));
        var r = result.RootElement;
        Assert.Equal([ServedModel.Name], r.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        var expected = Greedy(served.Checkpoint, Prompt, 24);
        Assert.Equal(expected, r.GetProperty("completion").GetProperty("text").GetString());
        Assert.Equal(expected, string.Concat(r.GetProperty("pieces").EnumerateArray().Select(p => p.GetString())));
        Assert.True(r.GetProperty("pieces").GetArrayLength() > 2, "streamed in pieces");
        var usage = r.GetProperty("completion").GetProperty("usage");
        Assert.Equal(Prompt.Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.Length, usage.GetProperty("completion_tokens").GetInt32());       // one character a token

        // chat: the template's prompt continued greedily, up to the next [USER]
        var chatPrompt = ServedModel.Chat.Render([("user", Prompt)]);
        var chatExpected = Greedy(served.Checkpoint, chatPrompt, 16);
        int stop = chatExpected.IndexOf(ServedModel.Chat.User, StringComparison.Ordinal);
        if (stop >= 0) chatExpected = chatExpected[..stop];
        Assert.Equal("assistant", r.GetProperty("chat").GetProperty("role").GetString());
        Assert.Equal(chatExpected, r.GetProperty("chat").GetProperty("text").GetString());
        Assert.Equal(chatExpected, string.Concat(r.GetProperty("chatPieces").EnumerateArray().Select(p => p.GetString())));
    }

    [Fact]
    public async Task A_base_model_refuses_chat_and_an_api_key_is_required_when_set()
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(2, context: 64), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        await using var server = await OpenAiServer.StartAsync(new ServeOptions
        {
            Checkpoint = Path.Combine(dir, RunDirectory.CheckpointName), ModelName = "base", Port = 0, ApiKey = "s3cret",
        }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address };
        var denied = await http.PostAsJsonAsync("v1/completions", new { model = "base", prompt = "x" });
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Equal("invalid_api_key", (await denied.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);                  // liveness needs no key

        using var result = JsonDocument.Parse(NodeScript.Run("openai-client.mjs", new Uri(server.Address, "v1").ToString(), "base", Prompt, "s3cret"));
        var error = result.RootElement.GetProperty("chatError");
        Assert.Equal(400, error.GetProperty("status").GetInt32());
        Assert.Equal("chat_template_missing", error.GetProperty("code").GetString());
        Assert.Equal(24, result.RootElement.GetProperty("completion").GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    public static TheoryData<string, int, string> BadRequests => new()
    {
        { "{\"model\": \"sotu-tiny\", \"prompt\": ", 400, "" },                                             // malformed JSON
        { "[1, 2]", 400, "" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": 7}", 400, "prompt" },                                   // wrong type
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"max_tokens\": \"9\"}", 400, "max_tokens" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"max_tokens\": 65}", 400, "max_tokens" },        // over the limit (the context)
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"temperature\": -0.5}", 400, "temperature" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"top_p\": 0}", 400, "top_p" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"n\": 0}", 400, "n" },
        { "{\"model\": \"gpt-4\", \"prompt\": \"x\"}", 404, "model" },                                     // unknown model
        { "{\"prompt\": \"x\"}", 400, "model" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"" + new string('a', 60) + "\", \"max_tokens\": 10}", 400, "prompt" },   // past the context
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"frequency_penalty\": 0.5}", 400, "frequency_penalty" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"bogus\": 1}", 400, "bogus" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": [70000]}", 400, "prompt" },                              // a token id past the vocabulary
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", 400, "stop" },
        { "{\"model\": \"sotu-tiny\", \"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", 400, "messages[0].role" },
        { "{\"model\": \"sotu-tiny\", \"prompt\": \"" + new string('a', (int)ServedModel.BodyLimit) + "\"}", 413, "" },   // over the body limit
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task A_bad_request_gets_an_openai_error_and_the_server_keeps_serving(string body, int status, string param)
    {
        var path = body.Contains("\"messages\"") ? "v1/chat/completions" : "v1/completions";
        using var response = await served.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        if (param.Length > 0) Assert.Equal(param, error.GetProperty("param").GetString());
        var ok = await served.Http.PostAsJsonAsync("v1/completions", new { model = ServedModel.Name, prompt = "We", max_tokens = 3 });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task A_client_that_leaves_mid_stream_frees_its_row()
    {
        await using var server = await OpenAiServer.StartAsync(new ServeOptions
        {
            Checkpoint = SlowModel.Value, ModelName = "m", Port = 0,
        }, TextWriter.Null);
        using var http = new HttpClient { BaseAddress = server.Address };
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = JsonContent.Create(new { model = "m", prompt = "We", max_tokens = 400, stream = true, temperature = 0.8 }),
        };
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: {", await reader.ReadLineAsync());
        }                                                                                   // the connection closes here, mid-stream
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var health = await http.GetFromJsonAsync<JsonElement>("health");
            if (health.GetProperty("active").GetInt32() == 0 && health.GetProperty("queued").GetInt32() == 0 &&
                (await http.GetStringAsync("metrics")).Contains("status=\"499\"")) break;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the abandoned sequence still decodes, or was not counted as 499");
            await Task.Delay(50);
        }
        var metrics = await http.GetStringAsync("metrics");
        var steps = long.Parse(metrics.Split('\n').Single(l => l.StartsWith("strata_decode_steps_total ", StringComparison.Ordinal)).Split(' ')[1]);
        Assert.True(steps < 400, $"{steps} decoding steps for a client that left after the first token");
        var ok = await http.PostAsJsonAsync("v1/completions", new { model = "m", prompt = "We", max_tokens = 3 });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Sixty_four_clients_with_four_requests_each_all_get_their_own_seeded_text()
    {
        var (model, info) = Checkpoint.LoadModel(served.Checkpoint);
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        string[] starts = ["The ", "We ", "Our ", "In ", "It ", "This ", "A ", "Let "];
        var expected = new string[64, 4];
        using (model)
            for (int c = 0; c < 64; c++)
                for (int k = 0; k < 4; k++)
                {
                    var (prompt, seed, tokens) = Ask(c, k);
                    var sampling = new SamplingOptions { Temperature = 0.9, TopK = 40, Seed = seed };
                    expected[c, k] = tokenizer.Decode(TextGenerator.Generate(model, tokenizer.Encode(prompt), tokens, sampling, tokenizer.EndOfText));
                }
        (string Prompt, long Seed, int Tokens) Ask(int client, int k) => (starts[client % 8] + new string('x', client / 8), 1000 * client + k, 8 + (
            client + k) % 9);

        var latencies = new List<double>();
        var clock = Stopwatch.StartNew();
        long generated = 0;
        var wrong = new List<string>();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(async c =>
        {
            for (int k = 0; k < 4; k++)
            {
                var (prompt, seed, tokens) = Ask(c, k);
                var started = Stopwatch.StartNew();
                var response = await served.Http.PostAsJsonAsync("v1/completions",
                    new { model = ServedModel.Name, prompt, max_tokens = tokens, temperature = 0.9, top_k = 40, seed });
                var body = await response.Content.ReadFromJsonAsync<JsonElement>();
                lock (latencies)
                {
                    latencies.Add(started.Elapsed.TotalSeconds);
                    if (response.StatusCode != HttpStatusCode.OK) { wrong.Add($"client {c} request {k}: {(int)response.StatusCode} {body}"); continue; }
                    generated += body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
                    var text = body.GetProperty("choices")[0].GetProperty("text").GetString();
                    if (text != expected[c, k]) wrong.Add($"client {c} request {k}: '{text}' where '{expected[c, k]}' was expected");
                }
            }
        }));
        latencies.Sort();
        log.WriteLine($"256 requests from 64 clients: {generated} tokens in {clock.Elapsed.TotalSeconds:F1} s " +
            $"({generated / clock.Elapsed.TotalSeconds:F0} tokens/s); " +
                      $"latency p50 {latencies[128]:F2} s, p95 {latencies[243]:F2} s");
        Assert.True(wrong.Count == 0, $"{wrong.Count} of 256 answers wrong:\n" + string.Join("\n", wrong.Take(5)));
    }

    [Fact]
    public async Task Sigterm_stops_taking_requests_finishes_the_ones_in_flight_and_exits_zero()
    {
        var checkpoint = SlowModel.Value;
        var cli = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { cli, "serve", checkpoint, "--port", "0", "--model-name", "m", "--drain-seconds", "60" }) psi.ArgumentList.Add(a);
        psi.Environment["STRATA_HOME"] = TestPaths.RepoRoot;
        using var process = Process.Start(psi)!;
        var output = new StringBuilder();
        var started = new TaskCompletionSource<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { started.TrySetResult(""); return; }
            lock (output) output.AppendLine(e.Data);
            int at = e.Data.IndexOf(" on http://", StringComparison.Ordinal);
            if (at >= 0) started.TrySetResult(e.Data[(at + 4)..].Trim());
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var address = await Task.WhenAny(started.Task, Task.Delay(TimeSpan.FromSeconds(60))) == started.Task ? await started.Task : "";
        if (address.Length == 0)
        {
            if (!process.HasExited) process.Kill();
            Assert.Fail($"the server did not start within 60 s:\n{output}");
        }
        using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(2) };
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = JsonContent.Create(new { model = "m", prompt = "We", max_tokens = 400, temperature = 0.8, seed = 1, stream = true,
                stream_options = new { include_usage = true } }),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: {", await reader.ReadLineAsync());                         // decoding has begun
        using (var kill = Process.Start("bash", ["-c", $"kill -TERM {process.Id}"])) await kill.WaitForExitAsync();   // no /bin/kill on a minimal Debian
        await Task.Delay(300);
        using (var fresh = new HttpClient { BaseAddress = new Uri(address) })                 // no new connections
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => fresh.GetAsync("health"));
        var rest = await reader.ReadToEndAsync();
        Assert.EndsWith("data: [DONE]\n\n", rest);
        var usage = rest.Split("\n\n").Where(l => l.Contains("\"usage\"")).Single();
        Assert.Contains("\"completion_tokens\":400", usage);
        using (var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            await process.WaitForExitAsync(limit.Token);                                    // throws if still running 30 s after SIGTERM
        Assert.True(process.ExitCode == 0, output.ToString());
        Assert.Contains("stopping", output.ToString());
    }
}
