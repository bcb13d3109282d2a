using Strata.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class OptimizerTests
{
    [Fact]
    public void AdamW_matches_torch_optim_AdamW_with_decay_on_matrices_only()
    {
        torch.manual_seed(1);
        using var w0 = torch.randn(6, 4);
        using var b0 = torch.randn(4);
        var w = new Parameter(w0.clone()); var b = new Parameter(b0.clone());
        var wRef = new Parameter(w0.clone()); var bRef = new Parameter(b0.clone());
        using var ours = new Strata.Training.AdamW([("w", w), ("b", b)], 0.9, 0.95, 1e-8, 0.1);
        var refW = torch.optim.AdamW([wRef], 0.01, 0.9, 0.95, 1e-8, 0.1, false, false);
        var refB = torch.optim.AdamW([bRef], 0.01, 0.9, 0.95, 1e-8, 0.0, false, false);
        for (int step = 0; step < 5; step++)
        {
            using var gw = torch.randn(6, 4);
            using var gb = torch.randn(4);
            w.grad = gw.clone(); wRef.grad = gw.clone();
            b.grad = gb.clone(); bRef.grad = gb.clone();
            ours.Step(0.01);
            refW.step(); refB.step();
        }
        Assert.True((w - wRef).abs().max().item<float>() < 1e-6);
        Assert.True((b - bRef).abs().max().item<float>() < 1e-6);
        Assert.Equal(24, ours.DecayedCount);
        Assert.Equal(4, ours.UndecayedCount);
    }

    [Fact]
    public void Frozen_parameters_get_no_optimizer_state()
    {
        var trained = new Parameter(torch.ones(3, 3));
        var frozen = new Parameter(torch.ones(3, 3), requires_grad: false);
        using var opt = new Strata.Training.AdamW([("t", trained), ("f", frozen)], 0.9, 0.95, 1e-8, 0.1);
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
