using Strata.Generation;
using Strata.Modeling;
using Strata.Substrates;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class GenerationTests
{
    private static LanguageModel Model(int seed = 3)
    {
        torch.manual_seed(seed);
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 32, VocabSize = 300 };
        return new LanguageModel(cfg, SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.Trainable }, cfg.VocabSize, cfg.DModel), 3);
    }

    [Fact]
    public void Cached_and_uncached_logits_agree_to_1e_5()
    {
        using var model = Model();
        model.eval();
        using var _ = torch.no_grad();
        using var ids = torch.randint(0, 300, [2, 20]);
        using var full = model.Forward(ids);                                   // [2, 20, V]
        using var cache = new KvCache(2, 4, 32, 16, CPU, ScalarType.Float32);
        // prefill 5, then 3 at once (the masked path), then one at a time
        var pieces = new List<Tensor> { model.Forward(ids[.., ..5], cache), model.Forward(ids[.., 5..8], cache) };
        for (int i = 8; i < 20; i++) pieces.Add(model.Forward(ids[.., i..(i + 1)], cache));
        using var incremental = torch.cat(pieces, 1);
        double max = (incremental - full).abs().max().item<float>();
        Assert.True(max < 1e-5, $"max |cached - uncached| = {max:E3}");
        Assert.Equal(20, cache.Length);
    }

    [Fact]
    public void Generation_with_and_without_cache_gives_the_same_tokens_past_the_context()
    {
        using var model = Model();
        int[] prompt = [1, 2, 3, 4, 5];
        var cached = TextGenerator.Generate(model, prompt, 60, SamplingOptions.Greedy).ToArray();   // 65 > context 32
        var plain = TextGenerator.Generate(model, prompt, 28, SamplingOptions.Greedy with { UseCache = false }).ToArray();
        Assert.Equal(60, cached.Length);
        Assert.Equal(plain, cached[..28]);   // identical while the window fits the context
    }

    [Fact]
    public void Seeded_sampling_repeats_and_top_k_1_is_greedy()
    {
        using var model = Model();
        int[] prompt = [7, 8, 9];
        var o = new SamplingOptions { Temperature = 1.0, Seed = 11 };
        var a = TextGenerator.Generate(model, prompt, 20, o).ToArray();
        var b = TextGenerator.Generate(model, prompt, 20, o).ToArray();
        var c = TextGenerator.Generate(model, prompt, 20, o with { Seed = 12 }).ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        var greedy = TextGenerator.Generate(model, prompt, 20, SamplingOptions.Greedy).ToArray();
        Assert.Equal(greedy, TextGenerator.Generate(model, prompt, 20, o with { TopK = 1 }).ToArray());
        Assert.Equal(greedy, TextGenerator.Generate(model, prompt, 20, o with { TopP = 1e-9 }).ToArray());
    }

    [Fact]
    public void Top_p_keeps_the_smallest_set_reaching_p()
    {
        using var gen = new torch.Generator(5, CPU);
        // probabilities 0.5, 0.3, 0.15, 0.05: with p = 0.75 only ids 0 and 1 may come out
        using var logits = torch.tensor(new float[] { 0.5f, 0.3f, 0.15f, 0.05f }).log();
        var seen = new HashSet<int>();
        for (int i = 0; i < 300; i++) seen.Add(TextGenerator.Choose(logits, new SamplingOptions { TopP = 0.75 }, gen));
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void Sampling_draws_each_id_at_its_probability_and_never_one_of_probability_zero()
    {
        using var gen = new torch.Generator(9, CPU);
        // probabilities 0, 0.5, 0, 0.3, 0.2, 0: 20,000 draws; each frequency within 4 standard deviations of its probability
        using var logits = torch.tensor(new float[] { float.NegativeInfinity, 0.5f, float.NegativeInfinity, 0.3f, 0.2f, float.NegativeInfinity });
        using var scores = torch.where(logits.isinf(), logits, logits.log());
        var counts = new int[6];
        const int n = 20_000;
        for (int i = 0; i < n; i++) counts[TextGenerator.Choose(scores, new SamplingOptions(), gen)]++;
        Assert.Equal(0, counts[0] + counts[2] + counts[5]);
        foreach (var (id, p) in new[] { (1, 0.5), (3, 0.3), (4, 0.2) })
            Assert.InRange(counts[id] / (double)n, p - 4 * Math.Sqrt(p * (1 - p) / n), p + 4 * Math.Sqrt(p * (1 - p) / n));
    }

    [Fact]
    public void Choosing_for_every_row_gives_each_rows_own_choice_and_skips_the_finished_ones()
    {
        torch.manual_seed(3);
        using var logits = torch.randn([5, 50]);
        var options = new[]
        {
            SamplingOptions.Greedy, new SamplingOptions { Temperature = 0.8, Seed = 4 }, SamplingOptions.Greedy,
            SamplingOptions.Greedy with { Vocabulary = 10 }, new SamplingOptions { Temperature = 1.2, TopK = 5, Seed = 5 },
        };
        var ids = TextGenerator.ChooseEach(logits, options, options.Select(o => new torch.Generator((ulong)o.Seed, CPU)).ToList(),
            [false, false, true, false, false]);
        var alone = options.Select((o, r) => TextGenerator.Choose(logits[r], o, new torch.Generator((ulong)o.Seed, CPU))).ToArray();
        Assert.Equal([alone[0], alone[1], -1, alone[3], alone[4]], ids);
        Assert.Equal(logits[0].argmax().item<long>(), ids[0]);
        Assert.InRange(ids[3], 0, 9);                                       // the row's own vocabulary, not the widest
    }

    [Fact]
    public void Stop_id_ends_generation()
    {
        using var model = Model();
        var greedy = TextGenerator.Generate(model, [1, 2], 10, SamplingOptions.Greedy).ToArray();
        var stopped = TextGenerator.Generate(model, [1, 2], 10, SamplingOptions.Greedy, stopId: greedy[3]).ToArray();
        Assert.Equal(greedy[..Array.IndexOf(greedy, greedy[3])], stopped);
    }
}
