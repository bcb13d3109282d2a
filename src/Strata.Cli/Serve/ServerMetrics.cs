using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Strata.Generation;

namespace Strata.Cli.Serve;

/// <summary>Counters and latency histograms, written in Prometheus' text format at GET /metrics.</summary>
internal sealed class ServerMetrics(ContinuousBatcher batcher)
{
    private static readonly double[] Buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private readonly ConcurrentDictionary<(string Path, int Status), long> _requests = new();
    private readonly Histogram _latency = new(), _firstToken = new();
    private long _promptTokens, _completionTokens;

    public void Request(string path, int status, double seconds)
    {
        _requests.AddOrUpdate((path, status), 1, (_, n) => n + 1);
        _latency.Observe(seconds);
    }

    public void FirstToken(double seconds) => _firstToken.Observe(seconds);

    public void Tokens(int prompt, int completion)
    {
        Interlocked.Add(ref _promptTokens, prompt);
        Interlocked.Add(ref _completionTokens, completion);
    }

    public string Render()
    {
        var s = new StringBuilder();
        void Metric(string name, string type, string help) => s.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n");
        static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        Metric("strata_requests_total", "counter", "HTTP requests answered, by path and status");
        foreach (var ((path, status), n) in _requests.OrderBy(kv => kv.Key.Path, StringComparer.Ordinal).ThenBy(kv => kv.Key.Status))
            s.Append($"strata_requests_total{{path=\"{path}\",status=\"{status}\"}} {n}\n");
        Metric("strata_prompt_tokens_total", "counter", "prompt tokens read");
        s.Append($"strata_prompt_tokens_total {Interlocked.Read(ref _promptTokens)}\n");
        Metric("strata_completion_tokens_total", "counter", "tokens generated and returned");
        s.Append($"strata_completion_tokens_total {Interlocked.Read(ref _completionTokens)}\n");
        Metric("strata_decode_steps_total", "counter", "batched forward passes of the decoder");
        s.Append($"strata_decode_steps_total {batcher.Steps}\n");
        Metric("strata_decoder_seconds_total", "counter", "time of the decoding loop, by part: reading prompts, batched forward passes, choosing tokens");
        s.Append($"strata_decoder_seconds_total{{part=\"prefill\"}} {F(batcher.PrefillSeconds)}\n");
        s.Append($"strata_decoder_seconds_total{{part=\"forward\"}} {F(batcher.ForwardSeconds)}\n");
        s.Append($"strata_decoder_seconds_total{{part=\"choose\"}} {F(batcher.ChooseSeconds)}\n");
        Metric("strata_queue_length", "gauge", "sequences waiting for a row of the batch");
        s.Append($"strata_queue_length {batcher.Queued}\n");
        Metric("strata_active_sequences", "gauge", "sequences being decoded");
        s.Append($"strata_active_sequences {batcher.Active}\n");
        _latency.Render(s, "strata_request_duration_seconds", "time from a request's arrival to its last byte", F);
        _firstToken.Render(s, "strata_time_to_first_token_seconds", "time from a request's arrival to its first generated text", F);
        Metric("process_resident_memory_bytes", "gauge", "resident memory of the server process");
        s.Append($"process_resident_memory_bytes {Environment.WorkingSet}\n");
        return s.ToString();
    }

    private sealed class Histogram
    {
        private readonly long[] _counts = new long[Buckets.Length];
        private long _count;
        private double _sum;
        private readonly Lock _lock = new();

        public void Observe(double v)
        {
            lock (_lock)
            {
                for (int i = 0; i < Buckets.Length; i++) if (v <= Buckets[i]) _counts[i]++;
                _count++;
                _sum += v;
            }
        }

        public void Render(StringBuilder s, string name, string help, Func<double, string> f)
        {
            s.Append($"# HELP {name} {help}\n# TYPE {name} histogram\n");
            lock (_lock)
            {
                for (int i = 0; i < Buckets.Length; i++) s.Append($"{name}_bucket{{le=\"{f(Buckets[i])}\"}} {_counts[i]}\n");
                s.Append($"{name}_bucket{{le=\"+Inf\"}} {_count}\n{name}_sum {f(_sum)}\n{name}_count {_count}\n");
            }
        }
    }
}
