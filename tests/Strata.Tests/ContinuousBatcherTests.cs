using Strata.Generation;
using Strata.Modeling;
using Strata.Runs;
using Strata.Tokenization;
using Strata.Training;
using Xunit;

namespace Strata.Tests;

/// <summary>Sequences decoded together, joining and leaving between passes, produce what each produces alone.</summary>
[Collection("torch")]
public class ContinuousBatcherTests
{
    private static readonly Lazy<string> Trained = new(() =>
    {
        var dir = TestPaths.TempDir();
        Trainer.Run(SotuData.Plan(40, context: 32, lr: 1e-2), new TrainOptions { OutDir = dir, Log = TextWriter.Null });
        return Path.Combine(dir, RunDirectory.CheckpointName);
    });

    private static readonly string[] Texts =
    [
        "The Congress", "We", "Fellow citizens of the Senate and House", "In the year", "Our", "The state of the Union is strong and",
        "Mr. Speaker", "Tonight", "It is", "A", "Peace", "Let us work together so that every",
    ];

    /// <summary>Runs the batcher on its own thread while <paramref name="body"/> submits; returns once all is done.</summary>
    internal static void WithBatcher(ICausalLM model, ITokenizer tokenizer, int maxBatch, Action<ContinuousBatcher> body)
    {
        using var batcher = new ContinuousBatcher(model, tokenizer, maxBatch, maxQueue: 1000);
        var loop = new Thread(batcher.Run);
        loop.Start();
        try { body(batcher); }
        finally
        {
            batcher.Complete();
            loop.Join();
        }
    }

    internal static (string Text, string? Finish, int Tokens, int Updates) Drain(System.Threading.Channels.ChannelReader<GenerationUpdate> reader)
    {
        var text = new System.Text.StringBuilder();
        string? finish = null;
        int tokens = 0, updates = 0;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            while (reader.TryRead(out var u))
            {
                text.Append(u.Text);
                (finish, tokens, updates) = (u.FinishReason ?? finish, u.CompletionTokens, updates + 1);
            }
        return (text.ToString(), finish, tokens, updates);
    }

    [Fact]
    public void Sequences_joining_and_leaving_a_batch_get_what_each_gets_alone()
    {
        var (model, info) = Checkpoint.LoadModel(Trained.Value);
        using var _ = model;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        int ctx = model.Config.ContextLength;
        // prompts of 1 to 41 characters; the longest leave the batch at the context's end, so the position axis is
        // shifted left and right while others decode; half greedy, half sampled with their own seeds
        var requests = Texts.Select((t, i) =>
        {
            var prompt = tokenizer.Encode(t.Length < ctx ? t : t[..(ctx - 4)]);
            return new GenerationRequest
            {
                Prompt = prompt, MaxNewTokens = ctx - prompt.Length,
                Sampling = i % 2 == 0 ? SamplingOptions.Greedy : new SamplingOptions { Temperature = 0.9, TopK = 40, Seed = 100 + i },
            };
        }).ToList();
        var expected = requests.Select(r =>
        {
            var ids = TextGenerator.Generate(model, r.Prompt, r.MaxNewTokens, r.Sampling, tokenizer.EndOfText).ToList();
            return (Text: tokenizer.Decode(ids), Finish: ids.Count < r.MaxNewTokens ? "stop" : "length", Tokens: ids.Count);
        }).ToList();

        var results = new (string Text, string? Finish, int Tokens, int Updates)[requests.Count];
        WithBatcher(model, tokenizer, maxBatch: 4, batcher =>
        {
            var readers = new List<System.Threading.Channels.ChannelReader<GenerationUpdate>>();
            for (int i = 0; i < requests.Count; i++)
            {
                readers.Add(batcher.Submit(requests[i]));
                if (i % 3 == 2) Thread.Sleep(20);                                          // some arrive while others decode
            }
            Parallel.For(0, readers.Count, i => results[i] = Drain(readers[i]));
        });
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(expected[i].Text, results[i].Text);
            Assert.Equal(expected[i].Finish, results[i].Finish);
            Assert.Equal(expected[i].Tokens, results[i].Tokens);
        }
        Assert.Contains(results, r => r.Updates > 1);                                      // streamed, not delivered at the end
    }

    [Fact]
    public void A_stop_string_ends_the_text_before_it_and_is_never_streamed()
    {
        var (model, info) = Checkpoint.LoadModel(Trained.Value);
        using var _ = model;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        var prompt = tokenizer.Encode("The Congress");
        var full = tokenizer.Decode(TextGenerator.Generate(model, prompt, 16, SamplingOptions.Greedy, tokenizer.EndOfText));
        Assert.True(full.Length >= 6, full);
        var stop = full.Substring(3, 3);                                                    // appears after 3 characters
        var pieces = new List<string>();
        string? finish = null;
        WithBatcher(model, tokenizer, 2, batcher =>
        {
            var reader = batcher.Submit(new GenerationRequest { Prompt = prompt, MaxNewTokens = 16, Stop = ["zzz", stop] });
            while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                while (reader.TryRead(out var u)) { pieces.Add(u.Text); finish ??= u.FinishReason; }
        });
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], string.Concat(pieces));
        Assert.Equal("stop", finish);
        Assert.DoesNotContain(pieces, p => p.Contains(stop));
    }

    [Fact]
    public void A_cancelled_sequence_leaves_the_batch_and_the_others_finish()
    {
        var (model, info) = Checkpoint.LoadModel(Trained.Value);
        using var _ = model;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        WithBatcher(model, tokenizer, 4, batcher =>
        {
            // the cancel races the decoding loop: on a loaded machine the loop can write all 28 tokens before the cancel
            // lands, so the scenario runs again (at most 5 times) until the cancel reaches a sequence still decoding
            bool cancelled = false;
            for (int attempt = 0; attempt < 5 && !cancelled; attempt++)
            {
                using var cancel = new CancellationTokenSource();
                var gone = batcher.Submit(new GenerationRequest { Prompt = tokenizer.Encode("We"), MaxNewTokens = 28, Cancel = cancel.Token });
                var stays = batcher.Submit(new GenerationRequest { Prompt = tokenizer.Encode("It is"), MaxNewTokens = 20 });
                Assert.True(gone.WaitToReadAsync().AsTask().GetAwaiter().GetResult());
                cancel.Cancel();
                try { Drain(gone); }
                catch (OperationCanceledException) { cancelled = true; }
                var (_, finish, tokens, _) = Drain(stays);
                Assert.NotNull(finish);
                Assert.True(tokens > 0);
            }
            Assert.True(cancelled, "the cancelled sequence's updates never ended with OperationCanceledException");
        });
    }

    [Fact]
    public void A_prompt_past_the_context_is_refused_when_submitted()
    {
        var (model, info) = Checkpoint.LoadModel(Trained.Value);
        using var _ = model;
        var tokenizer = Strata.Tokenization.Tokenizers.ByName(info.Tokenizer);
        using var batcher = new ContinuousBatcher(model, tokenizer, 2, 10);
        var e = Assert.Throws<Util.StrataException>(() => batcher.Submit(new GenerationRequest { Prompt = new int[30], MaxNewTokens = 3 }));
        Assert.Contains("context of 32", e.Message);
    }
}
