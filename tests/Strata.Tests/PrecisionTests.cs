using Strata.Formats;
using Strata.Modeling;
using Strata.Runs;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The chunked head + cross-entropy against the plain path, and bf16 training against fp32.</summary>
[Collection("torch")]
public class PrecisionTests
{
    // held through the calls (STRATA002)
    private static readonly Scalar PointThree = 0.3, Four = 4, Three = 3, Thousandth = 1e-3, Half = 0.5, Two = 2, BfStep = 256, Fall = -0.2f,
        HalfUlp = 1.0 / 256 + 1e-6;

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
        loss.mul(Scalars.One).backward();                                                               // an upstream gradient passes through
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
        var weight = torch.randn([997, 48], generator: g).mul_(PointThree);
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
    public void The_chunked_heads_gradients_add_up_over_micro_batches_and_backward_passes()
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(13);
        var hidden = torch.randn([61, 48], generator: g);
        var weight = torch.randn([997, 48], generator: g).mul_(PointThree);
        var bias = torch.randn([997], generator: g);
        var (first, second) = (torch.randint(0, 997, [61], generator: g), torch.randint(0, 997, [61], generator: g));
        // two micro-batches into the same parameters, the second loss halved: the first upstream gradient is 1, so the
        // prepared gradients go on as they are, the second is not
        (Tensor W, Tensor B) TwoLosses(Func<Tensor, Tensor, Tensor, Tensor, Tensor> loss)
        {
            using var w = weight.detach().requires_grad_(true);
            using var b = bias.detach().requires_grad_(true);
            using (var l = loss(hidden, w, b, first)) l.backward();
            using (var l = loss(hidden, w, b, second).mul(Half)) l.backward();
            return (w.grad!.clone(), b.grad!.clone());
        }
        var plain = TwoLosses((h, w, b, t) => nn.functional.cross_entropy(nn.functional.linear(h, w, b), t));
        var chunked = TwoLosses((h, w, b, t) => ChunkedCrossEntropy.Loss(h, w, b, t, 7));
        AssertClose(plain.W, chunked.W, 1e-6, "d weight, two losses");
        AssertClose(plain.B, chunked.B, 1e-6, "d bias, two losses");

        // a second backward of the same graph finds the prepared gradients as they were
        using var w = weight.detach().requires_grad_(true);
        using var loss = ChunkedCrossEntropy.Loss(hidden, w, null, first, 7);
        loss.backward(retain_graph: true);
        using var once = w.grad!.clone();
        loss.backward();
        AssertClose(once.mul(Two), w.grad!, 1e-6, "d weight, two backward passes");
    }

    /// <summary>max |actual - expected| within <paramref name="tolerance"/> of max |expected|.</summary>
    private static void AssertRelative(Tensor expected, Tensor actual, double tolerance, string what)
    {
        double diff = (expected - actual.to(expected.dtype)).abs().max().item<float>(), scale = expected.abs().max().item<float>();
        Assert.True(scale > 0 && diff <= tolerance * scale, $"{what}: max difference {diff:E2} against a largest entry of {scale:E2}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bf16_chunked_loss_and_gradients_stay_close_to_the_plain_fp32_ones(bool withBias)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(12);
        var hidden = torch.randn([61, 48], generator: g).to(ScalarType.BFloat16);
        var weight = torch.randn([997, 48], generator: g).mul_(PointThree);
        var bias = withBias ? torch.randn([997], generator: g) : null;
        var targets = torch.randint(0, 997, [61], generator: g);
        var plain = Plain(hidden.to(ScalarType.Float32), weight, bias, targets);             // the same inputs, fp32 arithmetic
        var chunked = Chunked(hidden, weight, bias, targets, 7);
        Assert.True(Math.Abs(plain.Loss - chunked.Loss) <= 5e-3 * plain.Loss, $"loss {plain.Loss} vs {chunked.Loss}");
        Assert.Equal(ScalarType.BFloat16, chunked.DHidden.dtype);
        Assert.Equal(ScalarType.Float32, chunked.DWeight.dtype);
        AssertRelative(plain.DHidden, chunked.DHidden, 2e-2, "d hidden");
        AssertRelative(plain.DWeight, chunked.DWeight, 2e-2, "d weight");
        if (withBias) AssertRelative(plain.DBias!, chunked.DBias!, 2e-2, "d bias");
    }

    [Fact]
    public void The_row_softmax_kernel_gives_each_rows_max_sum_and_exponentials_as_libtorch()
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(5);
        // 13 rows (not a multiple of the threads) of 997 logits (not of the vector width: the tails too); row 3 falls
        // by 0.2 a logit, so most of its exponentials are below exp(-87.3) and one row has a NaN
        var x = torch.randn([13, 997], generator: g).mul_(Four).to(ScalarType.BFloat16);
        x[3].copy_(Scalars.Arange(0, 997, ScalarType.Int64).mul(Fall));
        var reference = x.to(ScalarType.Float32).clone();
        var max = reference.amax([1], keepdim: true);
        var e = reference.sub(max).exp_();
        var sum = e.sum(1, keepdim: true);
        var y = x.clone();
        var (m, s) = RowSoftmax.ExpInPlace(y);
        Assert.Equal(0f, (max - m).abs().max().item<float>());                                   // the rows' max, exactly
        Assert.True(((s - sum).abs() / sum).max().item<float>() <= 1e-5, "the rows' sums");
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        // within half a bf16 step of exp after rounding, and tiny where exp underflows
        var error = (y.to(ScalarType.Float32) - e).abs() - e.div(BfStep);
        Assert.True(error.max().item<float>() <= 2e-38, $"exponentials off by {error.max().item<float>():E2} beyond the tolerance");

        var withNaN = x.clone();
        withNaN[5, 400] = float.NaN;
        var (_, sums) = RowSoftmax.ExpInPlace(withNaN);
        Assert.True(float.IsNaN(sums[5, 0].item<float>()), "a NaN logit makes its row's sum NaN");
        Assert.Equal(13 - 1, (int)sums.isfinite().sum().item<long>());
    }

    [Fact]
    public void The_bf16_accumulation_kernel_adds_as_libtorch_adds_to_the_bit()
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(6);
        // 1,001 x 37 elements: not a multiple of the vector width nor of the threads, so the tail is taken too
        var sum = torch.randn([1001, 37], generator: g).mul_(Three);
        var addend = torch.randn([1001, 37], generator: g).mul_(Thousandth).to(ScalarType.BFloat16);
        // without 512-bit vectors the head keeps libtorch's add_
        Assert.Equal(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated, Bf16Accumulation.Applies(sum, addend));
        if (!Bf16Accumulation.Applies(sum, addend)) return;
        var expected = sum.clone().add_(addend, Scalars.One);
        Bf16Accumulation.AddInto(sum, addend);
        Assert.True(expected.eq(sum).all().item<bool>(), $"off by {(expected - sum).abs().max().item<float>():E2}");
        Assert.False(Bf16Accumulation.Applies(sum.t(), addend.t().contiguous()));             // a strided sum is left to libtorch
    }

    [Fact]
    public void Causal_attention_by_products_is_scaled_dot_product_attention_and_bf16_training_on_the_cpu_takes_it()
    {
        var config = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 1024, VocabSize = 65536 };
        bool Takes(long past, long T, ScalarType dtype)
        {
            using var attention = AttentionContext.Create(past, T, null, config, dtype, CPU);
            return attention.ByProducts;
        }
        bool vectors = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;          // the kernel needs them
        Assert.Equal(vectors, Takes(0, 256, ScalarType.BFloat16));
        Assert.Equal(vectors, Takes(0, AttentionContext.ProductsUpTo, ScalarType.BFloat16));
        Assert.False(Takes(0, AttentionContext.ProductsUpTo + 1, ScalarType.BFloat16));       // the fused kernel's memory stays linear in T
        Assert.False(Takes(0, 256, ScalarType.Float32));                                         // in fp32 the fused kernel is faster
        Assert.False(Takes(3, 5, ScalarType.BFloat16));                                          // after cached positions, a mask
        if (!vectors) return;

        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator(7);
        // 37 keys: a tail past the kernel's 32-wide blocks; 96: whole blocks, some after every key a query sees
        foreach (long T in new long[] { 37, 96 })
        {
            long[] shape = [2, 3, T, 16];
            var inputs = Enumerable.Range(0, 4).Select(_ => torch.randn(shape, generator: g)).ToArray();     // q, k, v, upstream gradient
            // the output and the gradients of q, k and v, in fp32
            Tensor[] Run(Func<Tensor, Tensor, Tensor, Tensor> attention, ScalarType dtype)
            {
                var leaves = inputs[..3].Select(t => t.to(dtype).clone().requires_grad_(true)).ToArray();
                var y = attention(leaves[0], leaves[1], leaves[2]);
                y.backward([inputs[3].to(dtype)]);
                return leaves.Select(l => l.grad!).Prepend(y.detach()).Select(t => t.to(ScalarType.Float32)).ToArray();
            }
            static Tensor Fused(Tensor q, Tensor k, Tensor v) => nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, true);
            // the same function by libtorch's own operations, rounding where the kernel rounds: scores and probabilities bf16
            Tensor Libtorch(Tensor q, Tensor k, Tensor v)
            {
                using Scalar scale = 1.0 / Math.Sqrt(shape[3]);
                var scores = torch.matmul(q.mul(scale), k.transpose(-2, -1));
                return torch.matmul(scores.masked_fill(torch.ones([T, T], dtype: ScalarType.Bool).triu(1), Scalars.NegativeInfinity).softmax(-1), v);
            }
            var reference = Run(Fused, ScalarType.Float32);
            var kernel = Run(CausalAttentionByProducts.Attend, ScalarType.BFloat16);
            var libtorch = Run(Libtorch, ScalarType.BFloat16);
            var fused = Run(Fused, ScalarType.BFloat16);
            string[] names = ["output", "dq", "dk", "dv"];
            for (int i = 0; i < 4; i++)
            {
                double Error(Tensor[] bf16) => (bf16[i] - reference[i]).abs().max().item<float>();
                float largest = reference[i].abs().max().item<float>();
                // libtorch's way with the same roundings: equal at T 37, within 6e-4 of the largest value at T 96
                double apart = (kernel[i] - libtorch[i]).abs().max().item<float>();
                Assert.True(apart <= 2e-3 * largest, $"T {T}, {names[i]}: {apart:E2} from libtorch's operations in bf16 (largest {largest:E2})");
                // in bf16 the scores are rounded to bf16 before the softmax (the fused kernel keeps them in fp32): a few ulps
                Assert.True(Error(kernel) <= 4 * Error(fused) + 1e-2 * largest,
                    $"T {T}, {names[i]}: by products {Error(kernel):E2} from fp32, fused {Error(fused):E2}");
            }
        }
    }

    [Fact]
    public void The_heads_made_and_rotated_in_one_pass_are_libtorchs_views_and_rotary_in_fp32_rounded_once()
    {
        const long B = 2, T = 7;
        const int nh = 3;
        using var scope = torch.NewDisposeScope();
        var (cos32, sin32) = Rotary.Tables(5, T, 64, 10000, CPU);
        Assert.False(RotaryHeads.Applies(torch.zeros([B, T, nh * 3 * 64]), cos32, sin32, 64));                       // fp32: libtorch's way
        var (cosPadded, sinPadded) = (cos32.to(ScalarType.BFloat16).expand(B, 1, T, 64), sin32.to(ScalarType.BFloat16).expand(B, 1, T, 64));
        Assert.False(RotaryHeads.Applies(torch.zeros([B, T, nh * 3 * 64], dtype: ScalarType.BFloat16), cosPadded, sinPadded, 64));   // per-row tables
        if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) return;
        var g = new torch.Generator(11);
        // 64: whole vectors of 16 in each half; 40: one vector and a tail of 4
        foreach (int hs in new[] { 64, 40 })
        {
            var (cos, sin) = Rotary.Tables(5, T, hs, 10000, CPU);
            (cos, sin) = (cos.to(ScalarType.BFloat16), sin.to(ScalarType.BFloat16));
            var qkv = torch.randn([B, T, nh * 3 * hs], generator: g).to(ScalarType.BFloat16).requires_grad_(true);
            var upstream = Enumerable.Range(0, 3).Select(_ => torch.randn([B, nh, T, hs], generator: g).to(ScalarType.BFloat16)).ToArray();
            Assert.True(RotaryHeads.Applies(qkv, cos, sin, hs));
            var (q, k, v) = RotaryHeads.Split(qkv, hs, cos, sin);
            torch.autograd.backward([q, k, v], upstream);
            // the reference: the views and Rotary.Apply of the model's other path, in fp32 on the same bf16 values
            var qkv32 = qkv.detach().to(ScalarType.Float32).requires_grad_(true);
            var parts = qkv32.view(B, T, nh, 3 * hs).chunk(3, dim: -1).Select(x => x.transpose(1, 2)).ToArray();
            var (cosF, sinF) = (cos.to(ScalarType.Float32), sin.to(ScalarType.Float32));
            Tensor[] reference = [Rotary.Apply(parts[0], cosF, sinF), Rotary.Apply(parts[1], cosF, sinF), parts[2]];
            torch.autograd.backward(reference, upstream.Select(u => u.to(ScalarType.Float32)).ToList());
            foreach (var (name, got, want) in new[] { ("q", q, reference[0]), ("k", k, reference[1]), ("v", v, reference[2]),
                ("dqkv", qkv.grad!, qkv32.grad!) })
            {
                Assert.Equal(want.shape, got.shape);
                Assert.True(got.is_contiguous(), name);
                var exact = want.to(ScalarType.BFloat16).to(ScalarType.Float32);
                var gotF = got.to(ScalarType.Float32);
                // rounded once: within half a bf16 ulp of the fp32 value (at most 2^-8 of it), mostly equal
                // to its rounding (the fp32 sums may differ in their last bit from the kernel's, on either side of a tie)
                var apart = (gotF - want).abs() - want.abs().mul(HalfUlp);
                Assert.True(apart.max().item<float>() <= 1e-30f, $"hs {hs}, {name}: {apart.max().item<float>():E2} past half an ulp");
                double equal = gotF.eq(exact).to(ScalarType.Float32).mean().item<float>();
                Assert.True(equal >= (name == "v" ? 1.0 : 0.99), $"hs {hs}, {name}: {equal:P2} equal to the fp32 value rounded to bf16");
            }
        }
    }

    /// <summary>A 2-block model on the 16-bit code, and random ids and targets [batch, context].</summary>
    private static (LanguageModel Model, Tensor Idx, Tensor Targets) SmallModel(int seed, int d, int context, int batch)
    {
        torch.manual_seed(seed);
        var config = new ModelConfig { DModel = d, NHead = 4, ContextLength = context, VocabSize = 65536 };
        var model = new LanguageModel(config, new Substrates.SubstrateSpec { Kind = Substrates.SubstrateKind.Binary, Bits = 16 }, 2);
        return (model, torch.randint(0, 65536, [batch, context]), torch.randint(0, 65536, [batch, context]));
    }

    /// <summary>The gradients that backward of <paramref name="loss"/> gives, by parameter name; the model's are cleared after.</summary>
    private static Dictionary<string, Tensor> Gradients(LanguageModel model, Tensor loss)
    {
        loss.backward();
        var grads = model.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();
        return grads;
    }

    [Fact]
    public void Bf16_gradients_of_a_model_stay_close_to_its_fp32_gradients()
    {
        using var scope = torch.NewDisposeScope();
        var (m, idx, targets) = SmallModel(5, d: 64, context: 32, batch: 2);
        using var model = m;
        var fp32 = Gradients(model, model.Loss(idx, targets));
        model.SetPrecision(Precision.Bf16);
        var bf16 = Gradients(model, model.Loss(idx, targets));
        Assert.Equal(fp32.Keys.Order(), bf16.Keys.Order());
        Assert.Contains("layers.0.attention.query_key_value.weight", fp32.Keys);              // the gradient through attention
        foreach (var (name, expected) in fp32)
        {
            Assert.Equal(ScalarType.Float32, bf16[name].dtype);
            AssertRelative(expected, bf16[name], 5e-2, name);
        }
    }

    [Fact]
    public void Model_loss_equals_cross_entropy_of_its_logits_with_the_same_gradients()
    {
        using var scope = torch.NewDisposeScope();
        var (m, idx, targets) = SmallModel(3, d: 32, context: 16, batch: 3);
        using var model = m;
        var plain = nn.functional.cross_entropy(model.Logits(idx).view(-1, 65536), targets.reshape(-1));
        var plainGrads = Gradients(model, plain);
        var chunked = model.Loss(idx, targets);
        var chunkedGrads = Gradients(model, chunked);
        Assert.True(Math.Abs(plain.item<float>() - chunked.item<float>()) <= 1e-6 * plain.item<float>());
        Assert.NotEmpty(plainGrads);
        Assert.Equal(plainGrads.Keys.Order(), chunkedGrads.Keys.Order());
        foreach (var (name, expected) in plainGrads) AssertClose(expected, chunkedGrads[name], 1e-5, name);
    }

    [Fact]
    public void Bf16_projections_stay_close_to_fp32_with_fp32_weights()
    {
        using var scope = torch.NewDisposeScope();
        var (m, idx, targets) = SmallModel(4, d: 64, context: 32, batch: 2);
        using var model = m;
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
