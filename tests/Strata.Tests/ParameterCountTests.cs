using Strata.Modeling;
using Strata.Substrates;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>Counts read off constructed modules (on the meta device: nothing is allocated) against the paper's
/// architecture (Growing Transformers, arXiv 2507.07129).</summary>
[Collection("torch")]
public class ParameterCountTests
{
    private static readonly ModelConfig Paper = new() { DModel = 1024, NHead = 32, ContextLength = 1024, VocabSize = 65536 };

    private static LanguageModel Build(SubstrateKind kind, int depth, bool frozenTable = true)
    {
        var substrate = SubstrateBuilder.Create(new SubstrateSpec { Kind = kind, Bits = 16 }, Paper.VocabSize, Paper.DModel, META);
        if (!frozenTable) return new LanguageModel(Paper, substrate, depth, META);
        foreach (var p in substrate.parameters()) p.requires_grad = false;
        return new LanguageModel(Paper, substrate, depth, META);
    }

    [Fact]
    public void One_block_at_d1024_has_12_596_224_parameters()
    {
        using var block = new DecoderBlock(Paper, META);
        Assert.Equal(12_596_224, ParameterBudget.Of(block).Total);
    }

    [Fact]
    public void Nine_layers_on_a_visual_size_frozen_table_total_247_585_792()
    {
        using var m = Build(SubstrateKind.Trainable, 9);     // a frozen 65,536 x 1024 table, the visual substrate's size
        var b = ParameterBudget.Of(m);
        Assert.Equal(247_585_792, b.Total);
        Assert.Equal(180_476_928, b.Active);                  // the paper's 180.5M monolithic-frozen trainable count
        Assert.Equal(65_536L * 1024, b.Frozen);
    }

    [Fact]
    public void Nine_layers_fully_trainable_total_247_585_792()
    {
        using var m = Build(SubstrateKind.Trainable, 9, frozenTable: false);
        Assert.Equal(247_585_792, ParameterBudget.Of(m).Active);
    }

    [Fact]
    public void Nine_layers_on_the_16_bit_code_total_181_525_504()
    {
        using var m = Build(SubstrateKind.Binary, 9);
        var b = ParameterBudget.Of(m);
        Assert.Equal(181_525_504, b.Total);
        Assert.Equal(65_536L * 16, b.Frozen);
    }

    [Fact]
    public void Sixteen_layers_on_the_16_bit_code_total_269_699_072()
    {
        using var m = Build(SubstrateKind.Binary, 16);
        Assert.Equal(269_699_072, ParameterBudget.Of(m).Total);
    }

    [Fact]
    public void Head_bias_adds_one_row_of_vocab()
    {
        using var m = new LanguageModel(Paper with { HeadBias = true }, SubstrateBuilder.Create(new SubstrateSpec(), Paper.VocabSize, Paper.DModel,
            META), 9, META);
        Assert.Equal(181_525_504 + 65_536, ParameterBudget.Of(m).Total);
    }

    [Fact]
    public void AddBlock_grows_parameters_and_state_dict_by_exactly_one_block()
    {
        var small = new ModelConfig { DModel = 32, NHead = 4, ContextLength = 16, VocabSize = 64 };
        using var m = new LanguageModel(small, SubstrateBuilder.Create(new SubstrateSpec { Bits = 8 }, small.VocabSize, small.DModel), 2);
        long before = ParameterBudget.Of(m).Total;
        int keys = m.state_dict().Count;
        using var one = new DecoderBlock(small);
        m.AddBlock(3);
        Assert.Equal(before + ParameterBudget.Of(one).Total, ParameterBudget.Of(m).Total);
        Assert.Equal(keys + one.state_dict().Count, m.state_dict().Count);
        Assert.Contains("layers.2.attention.query_key_value.weight", m.state_dict().Keys);
        Assert.Equal(3, m.Depth);
    }

    [Fact]
    public void State_dict_names_are_the_gpt_neox_names()
    {
        var small = new ModelConfig { DModel = 32, NHead = 4, ContextLength = 16, VocabSize = 64 };
        using var m = new LanguageModel(small, SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.Trainable }, small.VocabSize, small.DModel), 1);
        var names = m.state_dict().Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value.shape)}]").Order(StringComparer.Ordinal);
        Assert.Equal(
        [
            "embed_in.weight [64, 32]", "embed_out.weight [64, 32]", "final_layer_norm.bias [32]", "final_layer_norm.weight [32]",
            "layers.0.attention.dense.bias [32]", "layers.0.attention.dense.weight [32, 32]",
            "layers.0.attention.query_key_value.bias [96]", "layers.0.attention.query_key_value.weight [96, 32]",
            "layers.0.input_layernorm.bias [32]", "layers.0.input_layernorm.weight [32]",
            "layers.0.mlp.dense_4h_to_h.bias [32]", "layers.0.mlp.dense_4h_to_h.weight [32, 128]",
            "layers.0.mlp.dense_h_to_4h.bias [128]", "layers.0.mlp.dense_h_to_4h.weight [128, 32]",
            "layers.0.post_attention_layernorm.bias [32]", "layers.0.post_attention_layernorm.weight [32]",
        ], names);
    }
}
