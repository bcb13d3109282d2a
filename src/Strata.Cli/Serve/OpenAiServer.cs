// `strata serve`: the OpenAI HTTP API (https://platform.openai.com/docs/api-reference: completions, chat completions,
// models) over one model, on Kestrel. Every request's sequences go to one ContinuousBatcher, which decodes all
// sequences in flight together; a request streams (server-sent events ending in "data: [DONE]") or waits for its
// whole answer. Errors are OpenAI's shape: a 4xx status and {"error": {"message", "type", "param", "code"}}.
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Strata.Composition;
using Strata.Generation;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Serve;

/// <summary>What `strata serve` was told.</summary>
internal sealed record ServeOptions
{
    public required string Checkpoint { get; init; }
    /// <summary>The model's id in the API (GET /v1/models, each request's "model").</summary>
    public required string ModelName { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8000;
    public string? ApiKey { get; init; }
    public int MaxBatch { get; init; } = 16;
    public int MaxQueue { get; init; } = 256;
    /// <summary>The most new tokens one request may ask for (the context length when null).</summary>
    public int? MaxTokens { get; init; }
    public long MaxBodyBytes { get; init; } = 1 << 20;
    /// <summary>How long a stop (SIGTERM) waits for requests in flight.</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Replaces the plan's chat template.</summary>
    public ChatTemplate? Chat { get; init; }
    public string Device { get; init; } = "cpu";
}

internal sealed class OpenAiServer : IAsyncDisposable
{
    private static readonly HashSet<string> KnownPaths = ["/health", "/metrics", "/v1/completions", "/v1/chat/completions"];
    private static readonly JsonSerializerOptions Compact = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never };
    private const long DrainBytes = 16 << 20;
    private readonly ServeOptions _o;
    private readonly CausalLMFile _file;
    private readonly ITokenizer _tokenizer;
    private readonly ChatTemplate? _chat;
    private readonly ContinuousBatcher _batcher;
    private readonly Thread _loop;
    private readonly ServerMetrics _metrics;
    private readonly TextWriter _log;
    private readonly int _maxTokens;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private WebApplication? _app;

    private OpenAiServer(ServeOptions o, CausalLMFile file, TextWriter log)
    {
        (_o, _file, _log) = (o, file, log);
        _tokenizer = Tokenizers.ByName(file.Tokenizer);
        _chat = o.Chat ?? file.Chat;
        int ctx = file.Model.Config.ContextLength;
        _maxTokens = Math.Min(o.MaxTokens ?? ctx, ctx);
        _batcher = new ContinuousBatcher(file.Model, _tokenizer, o.MaxBatch, o.MaxQueue);
        _metrics = new ServerMetrics(_batcher);
        _loop = new Thread(_batcher.Run) { Name = "strata-decode", IsBackground = true };
    }

    /// <summary>The address the server listens on (with the port chosen when --port 0).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Loads the model, starts the decoding loop and Kestrel.</summary>
    public static async Task<OpenAiServer> StartAsync(ServeOptions o, TextWriter log)
    {
        if (o.MaxTokens is < 1) throw new StrataException($"--max-tokens: must be at least 1, got {o.MaxTokens}");
        if (o.MaxQueue < 1) throw new StrataException($"--max-queue: must be at least 1, got {o.MaxQueue}");
        if (o.Port is < 0 or > 65535) throw new StrataException($"--port: must be in 0..65535, got {o.Port}");
        var address = o.Host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(o.Host, out var ip) ? ip : throw new StrataException($"--host: '{o.Host}' is not an IP address (or localhost)");
        var file = CausalLMFile.Load(o.Checkpoint, Devices.Parse(o.Device));
        var server = new OpenAiServer(o, file, log);
        try
        {
            server._loop.Start();
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = o.Drain);
            builder.Services.Configure<ConsoleLifetimeOptions>(c => c.SuppressStatusMessages = true);
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = o.MaxBodyBytes;
                k.Listen(address, o.Port);
            });
            var app = builder.Build();
            server.Map(app);
            await app.StartAsync();
            server._app = app;
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            server.Address = new Uri(bound.Replace("[::]", "localhost"));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public void Describe()
    {
        var c = _file.Model.Config;
        _log.WriteLine($"serving {_o.Checkpoint} as '{_o.ModelName}' on {Address}");
        _log.WriteLine($"  batch of up to {_o.MaxBatch} sequences (KV cache {_batcher.CacheBytes / 1e6:F1} MB), queue of {_o.MaxQueue}, " +
                       $"up to {_maxTokens} new tokens a request, context {c.ContextLength}, tokenizer {_tokenizer.Name}");
        _log.WriteLine($"  POST /v1/completions, POST /v1/chat/completions ({(_chat is null ? "no chat template: refused" : "chat template " +
            JsonSerializer.Serialize(_chat.User) + " / " + JsonSerializer.Serialize(_chat.Assistant))}), GET /v1/models, /health, /metrics" +
                       (_o.ApiKey is null ? "" : "; /v1 and /metrics need Authorization: Bearer <--api-key>"));
        _log.Flush();
    }

    /// <summary>Completes when the host stops (SIGTERM, SIGINT or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app!.WaitForShutdownAsync();

    /// <summary>Stops taking connections, lets the requests in flight finish (up to the drain time), then the decoder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }
        _batcher.Complete();
        if (_loop.IsAlive) _loop.Join();
        _batcher.Dispose();
        _file.Dispose();
    }

    private void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            var path = ctx.Request.Path.Value ?? "";
            var clock = Stopwatch.StartNew();
            if (_o.ApiKey is { } key && path != "/health" && ctx.Request.Headers.Authorization.ToString() != "Bearer " + key)
                await Error(ctx, new ApiError(401, "Incorrect API key provided: send 'Authorization: Bearer <key>' with the server's --api-key",
                    code: "invalid_api_key"));
            else
            {
                try { await next(ctx); }
                catch (ApiError e) { await Error(ctx, e); }
            }
            // 499: the client closed the connection before the answer (nginx's convention)
            _metrics.Request(path.StartsWith("/v1/models", StringComparison.Ordinal) ? "/v1/models" : KnownPaths.Contains(path) ? path : "other",
                ctx.RequestAborted.IsCancellationRequested ? 499 : ctx.Response.StatusCode, clock.Elapsed.TotalSeconds);
        });
        app.MapGet("/health", () => Results.Json(new { status = "ok", model = _o.ModelName, active = _batcher.Active, queued = _batcher.Queued }));
        app.MapGet("/metrics", () => Results.Text(_metrics.Render(), "text/plain; version=0.0.4"));
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { ModelCard() } }));
        app.MapGet("/v1/models/{id}", (string id) => id == _o.ModelName ? Results.Json(ModelCard())
            : throw new ApiError(404, $"The model '{id}' does not exist", "model", "model_not_found"));
        app.MapPost("/v1/completions", ctx => Complete(ctx, chat: false));
        app.MapPost("/v1/chat/completions", ctx => Complete(ctx, chat: true));
        app.MapFallback(ctx => throw new ApiError(404, $"Unknown request URL: {ctx.Request.Method} {ctx.Request.Path}", code: "unknown_url"));
    }

    private object ModelCard() => new { id = _o.ModelName, @object = "model", created = _created, owned_by = "strata" };

    private static async Task Error(HttpContext ctx, ApiError e)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.StatusCode = e.Status;
        await ctx.Response.WriteAsJsonAsync(e.Body, Compact);
    }

    /// <summary>One sequence of a request: its prompt (index) and choice, and what it receives.</summary>
    private sealed record Choice(int Index, int Prompt, ChannelReader<GenerationUpdate> Updates);

    private async Task Complete(HttpContext ctx, bool chat)
    {
        var clock = Stopwatch.StartNew();
        using var body = await ReadJson(ctx);
        var r = new RequestReader(body.RootElement);
        var model = r.String("model") ?? throw ApiError.Invalid("you must provide a model parameter", "model");
        if (model != _o.ModelName) throw new ApiError(404, $"The model '{model}' does not exist (this server has '{_o.ModelName}')", "model",
            "model_not_found");
        var (prompts, texts) = chat ? ChatPrompt(r) : CompletionPrompts(r);
        int limit = _maxTokens;
        long maxTokens = chat ? r.OptionalInteger("max_completion_tokens", 1, limit) ?? r.OptionalInteger("max_tokens", 1, limit) ?? 0
            : r.Integer("max_tokens", 16, 1, limit);
        double temperature = r.Number("temperature", 1.0, 0, 2);
        double topP = r.Number("top_p", 1.0, double.Epsilon, 1);
        int topK = (int)r.Integer("top_k", 0, 0, _file.Model.Config.VocabSize);
        long? seed = r.OptionalInteger("seed", long.MinValue, long.MaxValue);
        int n = (int)r.Integer("n", 1, 1, 16);
        var stop = (r.Strings("stop", 4) ?? []).Where(s => s.Length > 0).ToList();
        if (chat) stop.AddRange(_chat!.Stops);
        bool echo = !chat && r.Bool("echo", false);
        int? logprobs = chat ? r.Bool("logprobs", false) ? (int)r.Integer("top_logprobs", 0, 0, 20) : null
            : r.OptionalInteger("logprobs", 0, 5) is { } k ? (int)k : null;
        bool stream = r.Bool("stream", false);
        bool includeUsage = r.Raw("stream_options") is { } so && so.ValueKind == JsonValueKind.Object && so.TryGetProperty("include_usage", out var iu) &&
                            iu.ValueKind == JsonValueKind.True;
        r.Unsupported("presence_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0);
        r.Unsupported("frequency_penalty", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0);
        r.Unsupported("logit_bias", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any());
        r.Unsupported("best_of", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 1);
        r.Unsupported("suffix", _ => false);
        r.Unsupported("tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0);
        r.Unsupported("response_format", v => v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var t) && t.GetString() == "text");
        r.String("user");
        r.NothingElse();

        int ctxLength = _file.Model.Config.ContextLength;
        var choices = new List<Choice>();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        try
        {
            for (int p = 0; p < prompts.Count; p++)
            {
                var ids = prompts[p];
                long wanted = maxTokens > 0 ? maxTokens : ctxLength - ids.Length;           // chat without a limit: the rest of the context
                if (ids.Length == 0) throw ApiError.Invalid("the prompt is empty", chat ? "messages" : "prompt");
                if (ids.Length + wanted > ctxLength)
                    throw new ApiError(400, $"This model's maximum context length is {ctxLength} tokens. However, you requested " +
                                            $"{ids.Length + wanted} tokens ({ids.Length} in the {(chat ? "messages" : "prompt")}, {wanted} for the " +
                                                "completion). " +
                                            "Please reduce the prompt or the completion length.", chat ? "messages" : "prompt", "context_length_exceeded");
                for (int j = 0; j < n; j++)
                {
                    var sampling = new SamplingOptions
                        { Temperature = temperature, TopP = topP, TopK = topK, Seed = (seed ?? Random.Shared.NextInt64(1L << 53)) + j };
                    choices.Add(new Choice(choices.Count, p, _batcher.Submit(new GenerationRequest
                    {
                        Prompt = ids, MaxNewTokens = (int)wanted, Sampling = sampling, Stop = stop, TopLogprobs = logprobs, Cancel = cancel.Token,
                    })));
                }
            }
        }
        catch (Exception e) when (e is StrataException or QueueFullException)
        {
            cancel.Cancel();                                                                // the ones already queued leave
            throw e is QueueFullException ? new ApiError(429, e.Message, code: "queue_full", type: "server_error") : ApiError.Invalid(e.Message);
        }
        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        try
        {
            if (stream) await Stream(ctx, chat, id, model, choices, texts, echo, includeUsage, prompts, clock);
            else await Whole(ctx, chat, id, model, choices, texts, echo, prompts, clock);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && ctx.RequestAborted.IsCancellationRequested)
        {
            // the client left (counted as 499)
        }
        finally { cancel.Cancel(); }                                                        // sequences still decoding leave the batch
    }

    /// <summary>A completion's prompts: a string, a list of strings, a list of token ids or a list of such lists.</summary>
    private (List<int[]> Ids, List<string> Texts) CompletionPrompts(RequestReader r)
    {
        var raw = r.Raw("prompt") ?? throw ApiError.Invalid("you must provide a prompt", "prompt");
        var ids = new List<int[]>();
        var texts = new List<string>();
        void Add(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.String) { texts.Add(e.GetString()!); ids.Add(_tokenizer.Encode(texts[^1])); return; }
            if (e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number))
            {
                var tokens = e.EnumerateArray().Select(x => x.TryGetInt32(out var t) && t >= 0 && t < _file.Model.Config.VocabSize ? t
                    : throw ApiError.Invalid($"token ids must be in 0..{_file.Model.Config.VocabSize - 1}", "prompt")).ToArray();
                ids.Add(tokens);
                texts.Add(_tokenizer.Decode(tokens));
                return;
            }
            throw ApiError.Invalid("'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays", "prompt");
        }
        if (raw.ValueKind == JsonValueKind.Array && raw.GetArrayLength() > 0 && raw[0].ValueKind != JsonValueKind.Number)
        {
            if (raw.GetArrayLength() > 64) throw ApiError.Invalid($"'prompt' has {raw.GetArrayLength()} prompts; at most 64", "prompt");
            foreach (var e in raw.EnumerateArray()) Add(e);
        }
        else Add(raw);
        return (ids, texts);
    }

    private (List<int[]> Ids, List<string> Texts) ChatPrompt(RequestReader r)
    {
        if (_chat is null)
            throw new ApiError(400, $"'{_o.ModelName}' is a base model with no chat template (a plan's \"chat\" field, or strata serve --chat-template " +
                                    "FILE): use /v1/completions", "messages", "chat_template_missing");
        var raw = r.Raw("messages") ?? throw ApiError.Invalid("you must provide messages", "messages");
        if (raw.ValueKind != JsonValueKind.Array || raw.GetArrayLength() == 0) throw ApiError.Invalid("'messages' must be a non-empty array", "messages");
        var messages = new List<(string, string)>();
        int i = 0;
        foreach (var m in raw.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiError.Invalid($"'{at}' must be an object", at);
            var role = m.TryGetProperty("role", out var ro) && ro.ValueKind == JsonValueKind.String ? ro.GetString()!
                : throw ApiError.Invalid($"'{at}.role' must be a string", at + ".role");
            if (role is not ("system" or "developer" or "user" or "assistant"))
                throw ApiError.Invalid($"'{at}.role': '{role}' is not one of system, developer, user, assistant", at + ".role");
            if (!m.TryGetProperty("content", out var content)) throw ApiError.Invalid($"'{at}.content' is missing", at + ".content");
            messages.Add((role, content.ValueKind switch
            {
                JsonValueKind.String => content.GetString()!,
                JsonValueKind.Array => string.Concat(content.EnumerateArray().Select(part =>
                    part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.GetString() == "text" &&
                    part.TryGetProperty("text", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString()
                        : throw ApiError.Invalid($"'{at}.content': only text parts are supported", at + ".content"))),
                _ => throw ApiError.Invalid($"'{at}.content' must be a string or an array of text parts", at + ".content"),
            }));
        }
        var prompt = _chat.Render(messages);
        return ([_tokenizer.Encode(prompt)], [prompt]);
    }

    private async Task<JsonDocument> ReadJson(HttpContext ctx)
    {
        if (ctx.Request.ContentLength is { } length && length > _o.MaxBodyBytes)
        {
            // read what the client is still sending before answering (up to 16 MiB), so that it sees the 413 and not a
            // connection reset mid-upload
            var limit = ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>();
            if (length <= DrainBytes && limit is { IsReadOnly: false })
            {
                limit.MaxRequestBodySize = null;
                await ctx.Request.Body.CopyToAsync(System.IO.Stream.Null, ctx.RequestAborted);
            }
            throw new ApiError(413, $"the request body is {length:N0} bytes; at most {_o.MaxBodyBytes:N0}", code: "body_too_large");
        }
        try
        {
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body, ctx.RequestAborted);
            // the JSON reader checks structure, not the UTF-8 inside strings (which would fail later, reading them)
            if (!System.Text.Unicode.Utf8.IsValid(body.GetBuffer().AsSpan(0, (int)body.Length)))
                throw ApiError.Invalid("the request body is not valid UTF-8");
            return JsonDocument.Parse(body.GetBuffer().AsMemory(0, (int)body.Length), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw ApiError.Invalid($"We could not parse the JSON body of your request: {e.Message}");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            throw new ApiError(413, $"the request body is over {_o.MaxBodyBytes:N0} bytes", code: "body_too_large");
        }
    }

    private async Task Whole(HttpContext ctx, bool chat, string id, string model, List<Choice> choices, List<string> texts, bool echo,
        List<int[]> prompts, Stopwatch clock)
    {
        var results = await Task.WhenAll(choices.Select(async c =>
        {
            var text = new StringBuilder(echo ? texts[c.Prompt] : "");
            var tokens = new List<TokenLogprob>();
            string? finish = null;
            int count = 0;
            bool first = true;
            await foreach (var u in c.Updates.ReadAllAsync(ctx.RequestAborted))
            {
                if (first && u.Text.Length > 0) { _metrics.FirstToken(clock.Elapsed.TotalSeconds); first = false; }
                text.Append(u.Text);
                tokens.AddRange(u.Tokens);
                (finish, count) = (u.FinishReason ?? finish, u.CompletionTokens);
            }
            return (c, Text: text.ToString(), Tokens: tokens, Finish: finish ?? "stop", Count: count);
        }));
        int completion = results.Sum(x => x.Count), prompt = prompts.Sum(p => p.Length);
        _metrics.Tokens(prompt, completion);
        var usage = new { prompt_tokens = prompt, completion_tokens = completion, total_tokens = prompt + completion };
        object response = chat
            ? new
            {
                id, @object = "chat.completion", created = Now(), model,
                choices = results.Select(x => new
                {
                    index = x.c.Index, message = new { role = "assistant", content = x.Text }, logprobs = x.Tokens.Count > 0 ? ChatLogprobs(x.Tokens) : null,
                    finish_reason = x.Finish,
                }),
                usage, system_fingerprint = (string?)null,
            }
            : new
            {
                id, @object = "text_completion", created = Now(), model,
                choices = results.Select(x => new
                {
                    index = x.c.Index, text = x.Text, logprobs = x.Tokens.Count > 0 ? CompletionLogprobs(x.Tokens, echo ? texts[x.c.Prompt].Length : 0)
                        : null,
                    finish_reason = x.Finish,
                }),
                usage, system_fingerprint = (string?)null,
            };
        await ctx.Response.WriteAsJsonAsync(response, Compact, ctx.RequestAborted);
        _log.WriteLine($"{ctx.Request.Method} {ctx.Request.Path} 200: {choices.Count} choice(s), {prompt} prompt + {completion} completion tokens, " +
                       $"{clock.Elapsed.TotalSeconds:F2} s");
    }

    private async Task Stream(HttpContext ctx, bool chat, string id, string model, List<Choice> choices, List<string> texts, bool echo,
        bool includeUsage, List<int[]> prompts, Stopwatch clock)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var gate = new SemaphoreSlim(1);
        long created = Now();
        bool firstText = true;
        async Task Send(object chunk)
        {
            await gate.WaitAsync(ctx.RequestAborted);
            try
            {
                await ctx.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk, Compact) + "\n\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }
            finally { gate.Release(); }
        }
        object Chunk(Choice c, string text, IReadOnlyList<TokenLogprob> tokens, string? finish, int offset, bool firstOfChoice) => chat
            ? new
            {
                id, @object = "chat.completion.chunk", created, model, system_fingerprint = (string?)null,
                choices = new[]
                {
                    new
                    {
                        index = c.Index,
                        delta = (object)(firstOfChoice ? new { role = "assistant", content = text } : finish is not null && text.Length == 0 ? new { }
                            : new { content = text }),
                        logprobs = tokens.Count > 0 ? ChatLogprobs(tokens) : null, finish_reason = finish,
                    },
                },
            }
            : new
            {
                id, @object = "text_completion", created, model, system_fingerprint = (string?)null,
                choices = new[] { new { index = c.Index, text, logprobs = tokens.Count > 0 ? CompletionLogprobs(tokens, offset) : null,
                    finish_reason = finish } },
            };
        var counts = await Task.WhenAll(choices.Select(async c =>
        {
            int offset = 0, count = 0;
            if (echo) { await Send(Chunk(c, texts[c.Prompt], [], null, 0, false)); offset = texts[c.Prompt].Length; }
            if (chat) await Send(Chunk(c, "", [], null, 0, true));                          // the assistant's role first, as OpenAI sends it
            await foreach (var u in c.Updates.ReadAllAsync(ctx.RequestAborted))
            {
                if (u.Text.Length > 0 && firstText) { firstText = false; _metrics.FirstToken(clock.Elapsed.TotalSeconds); }
                if (u.Text.Length > 0 || u.Tokens.Count > 0 || (!chat && u.FinishReason is not null))
                    await Send(Chunk(c, u.Text, u.Tokens, chat ? null : u.FinishReason, offset, false));
                if (chat && u.FinishReason is not null) await Send(Chunk(c, "", [], u.FinishReason, offset, false));
                offset += u.Text.Length;
                count = u.CompletionTokens;
            }
            return count;
        }));
        int completion = counts.Sum(), prompt = prompts.Sum(p => p.Length);
        _metrics.Tokens(prompt, completion);
        if (includeUsage)
            await Send(new { id, @object = chat ? "chat.completion.chunk" : "text_completion", created, model, choices = Array.Empty<object>(),
                usage = new { prompt_tokens = prompt, completion_tokens = completion, total_tokens = prompt + completion } });
        await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
        _log.WriteLine($"{ctx.Request.Method} {ctx.Request.Path} 200 (stream): {choices.Count} choice(s), {prompt} prompt + {completion} completion " +
                       $"tokens, {clock.Elapsed.TotalSeconds:F2} s");
    }

    /// <summary>A completion's logprobs: tokens, their log-probabilities, the top alternatives and each token's
    /// character offset in the returned text.</summary>
    private static object CompletionLogprobs(IReadOnlyList<TokenLogprob> tokens, int offset)
    {
        var offsets = new List<int>();
        foreach (var t in tokens) { offsets.Add(offset); offset += t.Token.Length; }
        return new
        {
            tokens = tokens.Select(t => t.Token), token_logprobs = tokens.Select(t => t.Logprob),
            top_logprobs = tokens.Select(t => t.Top.GroupBy(a => a.Token).ToDictionary(g => g.Key, g => g.First().Logprob)), text_offset = offsets,
        };
    }

    private static object ChatLogprobs(IReadOnlyList<TokenLogprob> tokens) => new
    {
        content = tokens.Select(t => new
        {
            token = t.Token, logprob = t.Logprob, bytes = Encoding.UTF8.GetBytes(t.Token),
            top_logprobs = t.Top.Select(a => new { token = a.Token, logprob = a.Logprob, bytes = Encoding.UTF8.GetBytes(a.Token) }),
        }),
    };

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}
