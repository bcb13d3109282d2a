// Continuous batching: every sequence in flight advances by one token per forward pass, all of them in the same pass,
// and sequences join and leave between passes. The KV cache is one buffer of --max-batch rows over one position axis
// (ISlotCache): a sequence of n positions occupies the last n positions of its row and the positions before it are
// left padding, which no query sees and which do not count for the rotary positions. A newcomer's prompt is read in a
// pass of its own (newcomers that arrive together share it), and its keys and values are copied into a free row; when
// the axis is full, it shifts left by the padding every row has. Active sequences are kept in the first rows, so a pass
// runs over exactly as many rows as there are sequences.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Strata.Modeling;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Generation;

/// <summary>What one sequence asks for: a prompt's ids, how many tokens at most, how to choose them, where to stop.</summary>
internal sealed record GenerationRequest
{
    public required int[] Prompt { get; init; }
    public required int MaxNewTokens { get; init; }
    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;
    /// <summary>Strings that end the completion where they first appear (they are not part of it).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Log-probabilities to report per token: null for none, 0 for the chosen token's, k for it and the k most
    /// likely.</summary>
    public int? TopLogprobs { get; init; }
    public CancellationToken Cancel { get; init; }
}

/// <summary>A chosen token with its log-probability (under the model's distribution, before temperature and
/// truncation) and the most likely alternatives.</summary>
internal sealed record TokenLogprob(int Id, string Token, float Logprob, IReadOnlyList<(string Token, float Logprob)> Top);

/// <summary>What a requester receives as the sequence advances: text that is final (held back while it could still
/// become a stop string), the tokens chosen since the previous update, and at the end why it ended ("stop",
/// "length").</summary>
internal sealed record GenerationUpdate(string Text, IReadOnlyList<TokenLogprob> Tokens, string? FinishReason, int CompletionTokens);

/// <summary>The queue is at its bound.</summary>
internal sealed class QueueFullException(int bound) : InvalidOperationException($"the server is at capacity ({bound} requests waiting): retry later");

internal sealed class ContinuousBatcher : IDisposable
{
    private readonly ICausalLM _model;
    private readonly ITokenizer _tokenizer;
    private readonly int _maxBatch, _maxQueue;
    private readonly ConcurrentQueue<Sequence> _queue = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private readonly ISlotCache _cache;
    private readonly long[] _padding;
    private readonly List<Sequence> _rows = new();
    private volatile bool _completing;
    private long _tokens, _steps, _prefillTicks, _forwardTicks, _chooseTicks;

    public ContinuousBatcher(ICausalLM model, ITokenizer tokenizer, int maxBatch, int maxQueue)
    {
        if (maxBatch < 1) throw new StrataException($"--max-batch: must be at least 1, got {maxBatch}");
        (_model, _tokenizer, _maxBatch, _maxQueue) = (model, tokenizer, maxBatch, maxQueue);
        _cache = model.NewCache(maxBatch) as ISlotCache ?? throw new StrataException("this model's KV cache cannot hold independent sequences");
        _padding = new long[maxBatch];
    }

    public int Queued => _queue.Count;
    public int Active => Volatile.Read(ref _active);
    private int _active;
    public long TokensGenerated => Interlocked.Read(ref _tokens);
    public long Steps => Interlocked.Read(ref _steps);
    /// <summary>Seconds spent reading newcomers' prompts (their forward, first token and cache placement).</summary>
    public double PrefillSeconds => Interlocked.Read(ref _prefillTicks) / (double)Stopwatch.Frequency;
    /// <summary>Seconds spent in the batched decoding forward passes.</summary>
    public double ForwardSeconds => Interlocked.Read(ref _forwardTicks) / (double)Stopwatch.Frequency;
    /// <summary>Seconds spent choosing tokens after those passes and handing them to the requesters.</summary>
    public double ChooseSeconds => Interlocked.Read(ref _chooseTicks) / (double)Stopwatch.Frequency;
    /// <summary>Bytes of the KV cache (allocated at the first sequence).</summary>
    public long CacheBytes => _model.CacheBytesPerPosition * _model.Config.ContextLength * _maxBatch;

    /// <summary>Queues a sequence; its updates arrive on the returned reader, which completes after the last one (or
    /// with the exception that stopped the pass).</summary>
    public ChannelReader<GenerationUpdate> Submit(GenerationRequest request)
    {
        int ctx = _model.Config.ContextLength;
        if (request.Prompt.Length == 0) throw new StrataException("the prompt has no tokens");
        if (request.Prompt.Length + Math.Max(request.MaxNewTokens, 1) > ctx)
            throw new StrataException($"the prompt's {request.Prompt.Length} tokens and {request.MaxNewTokens} new ones pass the context of {ctx}");
        if (_completing) throw new StrataException("the server is shutting down");
        if (_queue.Count >= _maxQueue) throw new QueueFullException(_maxQueue);
        var s = new Sequence(request, _model.Device);
        _queue.Enqueue(s);
        _arrived.Release();
        return s.Updates.Reader;
    }

    /// <summary>Stops taking requests; <see cref="Run"/> returns once the queued and active ones are done.</summary>
    public void Complete()
    {
        _completing = true;
        _arrived.Release();
    }

    /// <summary>The decoding loop (one thread): admits queued sequences, reads their prompts, advances every active
    /// sequence by one token per pass.</summary>
    public void Run()
    {
        using var eval = _model.EvalScope();
        using var noGrad = torch.no_grad();
        var newcomers = new List<Sequence>();
        while (true)
        {
            try
            {
                newcomers.Clear();
                while (_rows.Count + newcomers.Count < _maxBatch && _queue.TryDequeue(out var s))
                {
                    if (s.Request.Cancel.IsCancellationRequested) s.Cancelled();
                    else newcomers.Add(s);
                }
                long start = Stopwatch.GetTimestamp();
                if (newcomers.Count > 0) Prefill(newcomers);
                Interlocked.Add(ref _prefillTicks, Stopwatch.GetTimestamp() - start);
                if (_rows.Count > 0) Step();
                else if (_completing && _queue.IsEmpty) return;
                else _arrived.Wait(TimeSpan.FromMilliseconds(200));
            }
            catch (Exception e)
            {
                // a failed pass fails the sequences in it; the loop serves the next ones from an empty cache
                foreach (var s in _rows.Concat(newcomers)) s.Close(e);
                _rows.Clear();
                _cache.SetLength(0);
            }
            Volatile.Write(ref _active, _rows.Count);
        }
    }

    /// <summary>Reads the newcomers' prompts in one left-padded pass, chooses each one's first token, and copies the
    /// keys and values of those that go on into free rows.</summary>
    private void Prefill(List<Sequence> newcomers)
    {
        using var scope = torch.NewDisposeScope();
        int k = newcomers.Count, longest = newcomers.Max(s => s.Request.Prompt.Length);
        var ids = new long[k * longest];
        var pad = new long[k];
        for (int i = 0; i < k; i++)
        {
            var p = newcomers[i].Request.Prompt;
            pad[i] = longest - p.Length;
            for (int j = 0; j < p.Length; j++) ids[i * longest + pad[i] + j] = p[j];
        }
        using var prompts = (ISlotCache)_model.NewCache(k, longest);
        using Scalar lastPosition = longest - 1;
        var logits = _model.Logits(torch.tensor(ids, [k, longest], device: _model.Device), prompts,
            torch.full([k, 1], lastPosition, dtype: ScalarType.Int64, device: _model.Device), torch.tensor(pad, device: _model.Device));   // [k, 1, V]
        var choices = WithinTokenizer(logits);
        var chosen = Choose(newcomers, choices);
        var going = new List<int>();
        for (int i = 0; i < k; i++)
            if (!Advance(newcomers[i], choices[i], chosen[i])) going.Add(i);
        if (going.Count == 0) return;
        long length = _cache.Length, needed = going.Max(i => (long)newcomers[i].Request.Prompt.Length);
        if (needed > length)
        {
            _cache.Shift(needed - length);                                                  // room in front for the longest prompt
            for (int r = 0; r < _rows.Count; r++) _padding[r] += needed - length;
            length = needed;
        }
        foreach (var i in going)
        {
            var s = newcomers[i];
            int row = _rows.Count, n = s.Request.Prompt.Length;
            _cache.Place(row, prompts, i, pad[i], n, length - n);
            _padding[row] = length - n;
            _rows.Add(s);
        }
    }

    /// <summary>One pass over the active rows: each feeds its last token and chooses the next.</summary>
    private void Step()
    {
        using var scope = torch.NewDisposeScope();
        if (_cache.Length + 1 > _model.Config.ContextLength)
        {
            // every row is shorter than the context (Submit's check), so every row has padding to drop
            long drop = _rows.Select((_, r) => _padding[r]).Min();
            _cache.Shift(-drop);
            for (int r = 0; r < _rows.Count; r++) _padding[r] -= drop;
        }
        int k = _rows.Count;
        var input = torch.tensor(_rows.Select(s => (long)s.Next).ToArray(), [k, 1], device: _model.Device);
        var padding = torch.tensor(_padding.AsSpan(0, k).ToArray(), device: _model.Device);
        Tensor logits;
        long start = Stopwatch.GetTimestamp();
        using (var rows = _cache.Rows(k))
        {
            logits = _model.Logits(input, rows, null, padding);                              // [k, 1, V]
            _cache.SetLength(rows.Length);
        }
        Interlocked.Increment(ref _steps);
        long forward = Stopwatch.GetTimestamp();
        Interlocked.Add(ref _forwardTicks, forward - start);
        var choices = WithinTokenizer(logits);
        var chosen = Choose(_rows, choices);
        var finished = new List<int>();
        for (int r = 0; r < k; r++)
            if (Advance(_rows[r], choices[r], chosen[r])) finished.Add(r);
        Interlocked.Add(ref _chooseTicks, Stopwatch.GetTimestamp() - forward);
        // the last active row moves into each freed one: the active rows stay the first ones
        for (int f = finished.Count - 1; f >= 0; f--)
        {
            int row = finished[f], last = _rows.Count - 1;
            if (row != last)
            {
                _cache.Place(row, _cache, last, _padding[last], _cache.Length - _padding[last], _padding[last]);
                _padding[row] = _padding[last];
                _rows[row] = _rows[last];
            }
            _rows.RemoveAt(last);
        }
        if (_rows.Count == 0) _cache.SetLength(0);
    }

    /// <summary>The logits [k, 1, V] as [k, V'] within the tokenizer's ids: a head with more rows than the tokenizer
    /// has ids has no text for the extra rows, so neither sampling nor the log-probabilities may reach them.</summary>
    private Tensor WithinTokenizer(Tensor logits)
    {
        var last = logits.select(1, 0);
        return last.shape[1] > _tokenizer.VocabSize ? last.narrow(1, 0, _tokenizer.VocabSize) : last;
    }

    /// <summary>Every row's next id from <paramref name="logits"/> [k, V] (none for a row whose requester has gone).</summary>
    private static int[] Choose(List<Sequence> rows, Tensor logits) => TextGenerator.ChooseEach(logits,
        rows.Select(s => s.Request.Sampling).ToList(), rows.Select(s => s.Generator).ToList(),
        rows.Select(s => s.Request.Cancel.IsCancellationRequested).ToList());

    /// <summary>Gives <paramref name="s"/> its next token <paramref name="id"/>, chosen from <paramref name="logits"/>
    /// [V], and tells the requester; true when the sequence has ended (or its requester has gone).</summary>
    private bool Advance(Sequence s, Tensor logits, int id)
    {
        if (s.Request.Cancel.IsCancellationRequested)
        {
            s.Cancelled();
            return true;
        }
        Interlocked.Increment(ref _tokens);
        if (id == _tokenizer.EndOfText) return s.End("stop", null, _tokenizer.Decode(s.Generated));
        TokenLogprob? logprob = s.Request.TopLogprobs is { } top ? Logprob(logits, id, top) : null;
        s.Generated.Add(id);
        s.Next = id;
        var text = _tokenizer.Decode(s.Generated);
        foreach (var stop in s.Request.Stop)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0) return s.End("stop", logprob, text[..at]);
        }
        if (s.Generated.Count >= s.Request.MaxNewTokens) return s.End("length", logprob, text);
        s.Send(text, Held(text, s.Request.Stop), logprob);
        return false;
    }

    /// <summary>Characters at the end of <paramref name="text"/> not yet final: the longest end that begins a stop
    /// string, or an incomplete character (U+FFFD from a byte-level vocabulary's partial UTF-8).</summary>
    private static int Held(string text, IReadOnlyList<string> stops)
    {
        int held = text.EndsWith('\uFFFD') ? 1 : 0;
        foreach (var stop in stops)
            for (int n = Math.Min(stop.Length - 1, text.Length); n > held; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(stop.AsSpan(0, n))) { held = n; break; }
        return held;
    }

    private TokenLogprob Logprob(Tensor logits, int id, int top)
    {
        using var scope = torch.NewDisposeScope();
        var lp = logits.to(ScalarType.Float32).log_softmax(0);
        var alternatives = new List<(string, float)>();
        if (top > 0)
        {
            var (values, indices) = lp.topk(top);
            var v = values.data<float>().ToArray();
            var i = indices.data<long>().ToArray();
            for (int j = 0; j < v.Length; j++) alternatives.Add((_tokenizer.Decode([(int)i[j]]), v[j]));
        }
        return new TokenLogprob(id, _tokenizer.Decode([id]), lp[id].item<float>(), alternatives);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _arrived.Dispose();
    }

    /// <summary>One sequence in the batcher: its request, its sampler, what it has chosen, what it has sent.</summary>
    private sealed class Sequence(GenerationRequest request, Device device)
    {
        public GenerationRequest Request { get; } = request;
        public torch.Generator Generator { get; } = new((ulong)request.Sampling.Seed, device);
        public List<int> Generated { get; } = new();
        public int Next { get; set; }
        public Channel<GenerationUpdate> Updates { get; } = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true });
        private int _sent;                                                                  // characters of the text already sent
        private readonly List<TokenLogprob> _pending = new();

        public void Send(string text, int held, TokenLogprob? logprob)
        {
            if (logprob is not null) _pending.Add(logprob);
            int final = text.Length - held;
            if (final <= _sent) return;
            Updates.Writer.TryWrite(new GenerationUpdate(text[_sent..final], _pending.ToList(), null, Generated.Count));
            _pending.Clear();
            _sent = final;
        }

        /// <summary>The last update: the rest of <paramref name="text"/> and why the sequence ended.</summary>
        public bool End(string reason, TokenLogprob? logprob, string text)
        {
            if (logprob is not null) _pending.Add(logprob);
            Updates.Writer.TryWrite(new GenerationUpdate(text.Length > _sent ? text[_sent..] : "", _pending.ToList(), reason, Generated.Count));
            Close(null);
            return true;
        }

        public void Cancelled() => Close(new OperationCanceledException(Request.Cancel));

        /// <summary>Ends the updates (with <paramref name="error"/>, if any) and frees the sampler; only the first call counts.</summary>
        public void Close(Exception? error)
        {
            if (!Updates.Writer.TryComplete(error)) return;
            Generator.Dispose();
        }
    }
}
