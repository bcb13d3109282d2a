using System.CommandLine;
using Strata.Cli.Serve;
using Strata.Tokenization;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class ServeCommand
{
    /// <summary>strata serve CHECKPOINT|RUN|ENSEMBLE [--host] [--port] [--api-key] [--max-batch] [--max-queue] [--max-tokens] ...</summary>
    public static Command Create(TextWriter output)
    {
        var model = Opt.One("model", "a checkpoint, a run folder (its latest checkpoint) or an ensemble .json");
        var host = Opt.Text("--host", "127.0.0.1", "the address to listen on (loopback unless told otherwise; 0.0.0.0 for every interface)", "IP");
        var port = Opt.Int("--port", 8000, "the port (0: any free one, printed at start)");
        var apiKey = Opt.Text("--api-key", "require 'Authorization: Bearer KEY' on /v1 and /metrics (also read from STRATA_API_KEY)", "KEY");
        var maxBatch = Opt.Int("--max-batch", 16, "sequences decoded together in one forward pass");
        var maxQueue = Opt.Int("--max-queue", 256, "sequences waiting for a place in the batch before requests get 429");
        var maxTokens = Opt.OptionalInt("--max-tokens", "the most new tokens one request may ask for (default: the context length)");
        var name = Opt.Text("--model-name", "the model's id in the API (default: the run folder's or file's name)", "ID");
        var chat = Opt.Text("--chat-template", "a JSON file {\"user\": \"[USER]\", \"assistant\": \"[ASSISTANT]\"} for /v1/chat/completions " +
                                               "(replaces the plan's \"chat\")", "FILE");
        var drain = Opt.Int("--drain-seconds", 30, "on SIGTERM, how long requests in flight may take to finish");
        var device = Opt.Device();
        var command = new Command("serve", "an OpenAI-compatible HTTP server (completions, chat, streaming), sequences batched together (docs/SERVE.md)")
            { model, host, port, apiKey, maxBatch, maxQueue, maxTokens, name, chat, drain, device };
        command.SetAction(p =>
        {
            var given = p.GetValue(model)!;
            var checkpoint = given.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? given : CheckpointPaths.Resolve(given);
            var options = new ServeOptions
            {
                Checkpoint = checkpoint, ModelName = p.GetValue(name) ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(given)),
                Host = p.GetValue(host)!, Port = p.GetValue(port), ApiKey = p.GetValue(apiKey) ?? NonEmpty(Environment.GetEnvironmentVariable(
                    "STRATA_API_KEY")),
                MaxBatch = p.GetValue(maxBatch), MaxQueue = p.GetValue(maxQueue), MaxTokens = p.GetValue(maxTokens),
                Drain = TimeSpan.FromSeconds(p.GetValue(drain) is >= 0 and var d ? d : throw new StrataException(
                    $"--drain-seconds: must be >= 0, got {p.GetValue(drain)}")),
                Chat = p.GetValue(chat) is { } f ? LoadTemplate(f) : null, Device = p.GetValue(device)!,
            };
            var server = OpenAiServer.StartAsync(options, output).GetAwaiter().GetResult();
            server.Describe();
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            output.WriteLine("stopping: requests in flight finished");
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return 0;
        });
        return command;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static ChatTemplate LoadTemplate(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"--chat-template: {path}: file not found");
        return Json.Parse<ChatTemplate>(File.ReadAllText(path), path).Validate(path);
    }
}
