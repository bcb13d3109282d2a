using Strata.Formats;
using Strata.Modeling;
using Strata.Runs;
using Strata.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The chunked head + cross-entropy against the plain path, and bf16 training against fp32.</summary>
[Collection("torch")]
public class PrecisionTests
{
    /// <summary>Loss and the gradients of hidden, weight and bias, via the plain [N, V] logits.</summary>
    private static (float Loss, Tensor DHidden, Tensor DWeight, Tensor? DBias) Plain(Tensor hidden, Tensor weight, Tensor? bias, Tensor targets)
    {
        using var h = hidden.detach().requires_grad_(true);
        using var w = weight.detach().requires_grad_(true);
        using var b = bias?.detach().requires_grad_(true);
        using var logits = nn.functional.linear(h, w, b);
        using var loss = nn.functional.cross_entropy(logits, targets);
        loss.backward();
        return (loss.item<float>(), h.grad!.clone(), w.grad!.clone(), b?.grad!.clone());
    }

    private static (float Loss, Tensor DHidden, Tensor DWeight, Tensor? DBias) Chunked(Tensor hidden, Tensor weight, Tensor? bias, Tensor targets, long? rows)
    {
        using var h = hidden.detach().requires_grad_(true);
        using var w = weight.detach().requires_grad_(true);
        using var b = bias?.detach().requires_grad_(true);
        using var loss = ChunkedCrossEntropy.Loss(h, w, b, targets, rows);
        (loss * 1).backward();                                                                 // an upstream gradient passes through
        return (loss.item<float>(), h.grad!.clone(), w.grad!.clone(), b?.grad!.clone());
    }

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        double diff = (expected - actual).abs().max().item<float>(), scale = Math.Max(1, expected.abs().max().item<float>());
        Assert.True(diff <= tolerance * scale, $"{what}: max difference {diff:E2} (scale {scale:E2})");
    }

    [Theory]
    [InlineData(true, 7L)]     // 61 rows in chunks of 7: the last one short
    [InlineData(false, 61L)]   // one chunk
    [InlineData(false, 1L)]    // a row at a time
    [InlineData(true, null)]   // the default chunk
    public void Chunked_loss_and_gradients_equal_the_plain_ones(bool withBias, long? rows)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(11);
        var hidden = torch.randn([61, 48], generator: g);
        var weight = torch.randn([997, 48], generator: g) * 0.3;
        var bias = withBias ? torch.randn([997], generator: g) : null;
        var targets = torch.randint(0, 997, [61], generator: g);
        var plain = Plain(hidden, weight, bias, targets);
        var chunked = Chunked(hidden, weight, bias, targets, rows);
        Assert.True(Math.Abs(plain.Loss - chunked.Loss) <= 1e-6 * plain.Loss, $"loss {plain.Loss} vs {chunked.Loss}");
        AssertClose(plain.DHidden, chunked.DHidden, 1e-6, "d hidden");
        AssertClose(plain.DWeight, chunked.DWeight, 1e-6, "d weight");
        if (withBias) AssertClose(plain.DBias!, chunked.DBias!, 1e-6, "d bias");
        else Assert.Null(chunked.DBias);
    }

    [Fact]
    public void Model_loss_equals_cross_entropy_of_its_logits_with_the_same_gradients()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var config = new ModelConfig { DModel = 32, NHead = 4, ContextLength = 16, VocabSize = 65536 };
        using var model = new LanguageModel(config, new Substrates.SubstrateSpec { Kind = Substrates.SubstrateKind.Binary, Bits = 16 }, 2);
        var idx = torch.randint(0, 65536, [3, 16]);
        var targets = torch.randint(0, 65536, [3, 16]);

        var plain = nn.functional.cross_entropy(model.Logits(idx).view(-1, 65536), targets.reshape(-1));
        plain.backward();
        var plainGrads = model.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();
        var chunked = model.Loss(idx, targets);
        chunked.backward();
        Assert.True(Math.Abs(plain.item<float>() - chunked.item<float>()) <= 1e-6 * plain.item<float>());
        Assert.NotEmpty(plainGrads);
        foreach (var (name, p) in model.named_parameters())
            if (plainGrads.TryGetValue(name, out var expected)) AssertClose(expected, p.grad!, 1e-5, name);
    }

    [Fact]
    public void Bf16_projections_stay_close_to_fp32_with_fp32_weights()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        var config = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 32, VocabSize = 65536 };
        using var model = new LanguageModel(config, new Substrates.SubstrateSpec { Kind = Substrates.SubstrateKind.Binary, Bits = 16 }, 2);
        var idx = torch.randint(0, 65536, [2, 32]);
        var targets = torch.randint(0, 65536, [2, 32]);
        float fp32 = model.Loss(idx, targets).item<float>();
        model.SetPrecision(Precision.Bf16);
        var logits = model.Logits(idx);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        float bf16 = model.Loss(idx, targets).item<float>();
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));      // master weights stay fp32
        Assert.True(Math.Abs(bf16 - fp32) < 0.02 * fp32, $"bf16 loss {bf16} vs fp32 {fp32}");
        Assert.NotEqual(fp32, bf16);                                                         // the products really ran in bf16
    }

    private static TrainResult Train(GrowthPlan plan, string dir, long? stopAfter = null, bool resume = false, Precision? precision = null) =>
        Trainer.Run(resume ? null : plan, new TrainOptions { OutDir = dir, StopAfterStep = stopAfter, Resume = resume, Log = TextWriter.Null,
            Precision = precision });

    [Fact]
    public void Bf16_training_lowers_the_loss_and_resumes_bit_identically()
    {
        var plan = SotuData.Plan(steps: 30, d: 64, blocks: 2, context: 32, batch: 8, lr: 8e-3, evalEvery: 10) with
        {
            Training = SotuData.Plan(30, lr: 8e-3, evalEvery: 10).Training with { BatchSize = 8, Precision = Precision.Bf16 },
        };
        string straight = TestPaths.TempDir(), split = TestPaths.TempDir();
        var full = Train(plan, straight);
        Assert.True(full.FinalValidationLoss < full.InitialValidationLoss - 1.0, $"{full.InitialValidationLoss} -> {full.FinalValidationLoss}");
        Assert.Equal(Precision.Bf16, Checkpoint.ReadInfo(full.Run.Checkpoint).Plan.Training.Precision);

        Train(plan, split, stopAfter: 13);
        var resumed = Train(plan, split, resume: true);
        Assert.Equal(full.FinalValidationLoss, resumed.FinalValidationLoss);
        using var fa = new SafetensorsFile(Path.Combine(straight, RunDirectory.CheckpointName));
        using var fb = new SafetensorsFile(Path.Combine(split, RunDirectory.CheckpointName));
        foreach (var (name, entry) in fa.Entries)
        {
            Assert.Equal("F32", entry.DType);                                                // checkpoints stay fp32
            Assert.Equal(fa.ReadBytes(name), fb.ReadBytes(name));
        }
    }

    [Fact]
    public void A_run_resumes_in_another_precision_from_its_fp32_checkpoint()
    {
        var plan = SotuData.Plan(steps: 6, d: 32);
        var dir = TestPaths.TempDir();
        Train(plan, dir, stopAfter: 3);
        var r = Train(plan, dir, resume: true, precision: Precision.Bf16);
        Assert.True(r.Completed);
        Assert.Equal(Precision.Bf16, Checkpoint.ReadInfo(r.Run.Checkpoint).Plan.Training.Precision);
    }
}
