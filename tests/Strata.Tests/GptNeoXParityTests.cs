using Strata.Formats;
using System.Text.Json;
using Strata.Generation;
using Strata.Interop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The forward pass against transformers' GPTNeoXForCausalLM (TestData/hf-gpt-neox-tiny, written by
/// transformers 5.17 / torch 2.11): every convention (rotary pairing, qkv layout, GELU form, LayerNorm eps) is pinned here.</summary>
[Collection("torch")]
public class GptNeoXParityTests
{
    private static readonly string Dir = TestPaths.Data("hf-gpt-neox-tiny");

    [Fact]
    public void Logits_match_transformers_to_1e_4()
    {
        using var model = HfExport.Import(Dir, "codepoint").Model;
        model.eval();
        using var expected = new SafetensorsFile(Path.Combine(Dir, "expected.safetensors"));
        using var ids = expected.Read("input_ids");
        using var want = expected.Read("logits");
        using var _ = torch.no_grad();
        using var got = model.Forward(ids);
        Assert.Equal(want.shape, got.shape);
        using var diff = (got - want).abs();
        double max = diff.max().item<float>();
        Assert.True(max < 1e-4, $"max |logits - transformers| = {max:E3}; first pairs: " +
            string.Join(", ", Enumerable.Range(0, 5).Select(i => $"{got[0, 0, i].item<float>():F6}/{want[0, 0, i].item<float>():F6}")));
    }

    [Fact]
    public void Greedy_continuation_matches_transformers()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected_generation.json")));
        var prompt = doc.RootElement.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var want = doc.RootElement.GetProperty("greedy_continuation").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var model = HfExport.Import(Dir, "codepoint").Model;
        var got = TextGenerator.Generate(model, prompt, want.Length, SamplingOptions.Greedy).ToArray();
        Assert.Equal(want, got);
    }
}
