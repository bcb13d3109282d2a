using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;
using Strata.Optim;

namespace Strata.Tests;

[Collection("torch")]
public class OptimizerTests
{
    private static readonly Scalar Three = 3, Four = 4;   // held through the calls (STRATA002)

    // 6 x 13 = 78 elements: the CPU kernel's SIMD lanes and its scalar tail both run
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AdamW_matches_torch_optim_AdamW_with_decay_on_matrices_only(bool cpuKernel)
    {
        torch.manual_seed(1);
        using var w0 = torch.randn(6, 13);
        using var b0 = torch.randn(13);
        var w = new Parameter(w0.clone()); var b = new Parameter(b0.clone());
        var wRef = new Parameter(w0.clone()); var bRef = new Parameter(b0.clone());
        using var ours = new Strata.Optim.AdamW([("w", w), ("b", b)], 0.9, 0.95, 1e-8, 0.1) { UseCpuKernel = cpuKernel };
        var refW = torch.optim.AdamW([wRef], 0.01, 0.9, 0.95, 1e-8, 0.1, false, false);
        var refB = torch.optim.AdamW([bRef], 0.01, 0.9, 0.95, 1e-8, 0.0, false, false);
        for (int step = 0; step < 5; step++)
        {
            using var gw = torch.randn(6, 13);
            using var gb = torch.randn(13);
            w.grad = gw.clone(); wRef.grad = gw.clone();
            b.grad = gb.clone(); bRef.grad = gb.clone();
            ours.Step(0.01);
            refW.step(); refB.step();
        }
        Assert.True((w - wRef).abs().max().item<float>() < 1e-6);
        Assert.True((b - bRef).abs().max().item<float>() < 1e-6);
        Assert.Equal(78, ours.DecayedCount);
        Assert.Equal(13, ours.UndecayedCount);
    }

    [Fact]
    public void The_cpu_kernel_and_the_tensor_operations_agree_over_a_large_parameter_with_clipping()
    {
        // 300,007 elements: several slices split between threads, and a tail
        torch.manual_seed(2);
        using var w0 = torch.randn(300007);
        var fused = new Parameter(w0.clone()); var plain = new Parameter(w0.clone());
        using var a = new Strata.Optim.AdamW([("w", fused)], 0.9, 0.95, 1e-8, 0.1);
        using var b = new Strata.Optim.AdamW([("w", plain)], 0.9, 0.95, 1e-8, 0.1) { UseCpuKernel = false };
        for (int step = 0; step < 4; step++)
        {
            using var g = torch.randn(300007).mul_(Three);
            fused.grad = g.clone(); plain.grad = g.clone();
            var (na, sa) = a.ClipScale(1.0);
            var (nb, sb) = b.ClipScale(1.0);
            Assert.Equal(na, nb);
            Assert.True(sa < 0.01);                                    // the clip applies
            a.Step(1e-2, sa); b.Step(1e-2, sb);
            Assert.True(fused.grad!.eq(g).all().item<bool>());          // the gradient itself is left as it was
        }
        Assert.True((fused - plain).abs().max().item<float>() < 1e-6);
        var sa2 = a.State().ToDictionary(x => x.Name, x => x.Tensor);
        foreach (var (name, t) in b.State()) Assert.True((sa2[name] - t).abs().max().item<float>() <= 1e-6 * (1 + t.abs().max().item<float>()), name);
    }

    [Fact]
    public void Clip_scale_is_the_factor_of_torch_clip_grad_norm()
    {
        torch.manual_seed(3);
        var p1 = new Parameter(torch.randn(5, 7)); var p2 = new Parameter(torch.randn(11));
        p1.grad = torch.randn(5, 7); p2.grad = torch.randn(11).mul_(Four);
        using var g1 = p1.grad.clone(); using var g2 = p2.grad.clone();
        using var opt = new Strata.Optim.AdamW([("a", p1), ("b", p2)], 0.9, 0.95, 1e-8, 0.1);
        var (norm, scale) = opt.ClipScale(0.5);
        double expected = nn.utils.clip_grad_norm_([p1, p2], 0.5);              // scales the gradients in place
        Assert.Equal(expected, norm, 5);
        using Scalar by = scale;
        Assert.True((g1.mul(by) - p1.grad!).abs().max().item<float>() < 1e-6);
        Assert.True((g2.mul(by) - p2.grad!).abs().max().item<float>() < 1e-6);
        Assert.Equal(1.0, opt.ClipScale(double.PositiveInfinity).Scale);
    }

    [Fact]
    public void Frozen_parameters_get_no_optimizer_state()
    {
        var trained = new Parameter(torch.ones(3, 3));
        var frozen = new Parameter(torch.ones(3, 3), requires_grad: false);
        using var opt = new Strata.Optim.AdamW([("t", trained), ("f", frozen)], 0.9, 0.95, 1e-8, 0.1);
        Assert.Single(opt.Parameters);
        trained.grad = torch.ones(3, 3);
        opt.Step(1e-3);
        Assert.Equal(new[] { "t.exp_avg", "t.exp_avg_sq" }, opt.State().Select(s => s.Name).ToArray());
    }

    [Fact]
    public void Schedule_warms_up_linearly_then_follows_a_cosine_to_the_minimum()
    {
        Assert.Equal(0.1, LrSchedule.At(0, 100, 10, 1.0, 0.1), 12);
        Assert.Equal(1.0, LrSchedule.At(9, 100, 10, 1.0, 0.1), 12);
        Assert.Equal(1.0, LrSchedule.At(10, 100, 10, 1.0, 0.1), 12);
        Assert.Equal(0.55, LrSchedule.At(55, 101, 10, 1.0, 0.1), 12);     // half-way through the cosine
        Assert.Equal(0.1, LrSchedule.At(100, 101, 10, 1.0, 0.1), 12);
    }
}
