using System.Runtime.CompilerServices;
using Strata.Data;
using Strata.Evaluation;
using Strata.Formats;
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class NativeAllocatorTests
{
    private const ulong MiB = 1 << 20;

    [Fact]
    public void The_heap_is_trimmed_once_it_has_grown_by_a_quarter_and_256_MiB()
    {
        Assert.False(NativeAllocator.Grown(800 * MiB, 800 * MiB));
        Assert.False(NativeAllocator.Grown(800 * MiB + 255 * MiB, 800 * MiB));                  // a quarter, not 256 MiB
        Assert.True(NativeAllocator.Grown(800 * MiB + 256 * MiB, 800 * MiB));
        Assert.False(NativeAllocator.Grown(2000 * MiB + 499 * MiB, 2000 * MiB));                // 256 MiB, not a quarter
        Assert.True(NativeAllocator.Grown(2500 * MiB, 2000 * MiB));
        // this process's heap, right after a look at it, has not grown: it is left as it is
        Assert.NotNull(NativeAllocator.HeapBytes());
        NativeAllocator.TrimIfGrown();
        Assert.False(NativeAllocator.TrimIfGrown());
    }

    [Fact]
    public void A_training_step_returns_after_the_finalizers_of_what_it_dropped_have_run()
    {
        // TorchSharp frees a Scalar's native block in its finalizer; a step must not leave such blocks to the collector's
        // own pace, where they pin the holes of the step's large blocks (Trainer.Step ends with FreeFinalizedObjects)
        var cfg = new ModelConfig { DModel = 64, NHead = 2, ContextLength = 16, VocabSize = 65536 };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), 1);
        using var opt = new AdamW(Trainer.TrainableParameters(model), 0.9, 0.95, 1e-8, 0.1);
        using var batch = torch.randint(0, 65536, [2, 17]);
        var finalized = new StrongBox<bool>();
        DropSentinel(finalized);
        Trainer.Step(model, opt, 1e-3, 1.0, [batch]);
        Assert.True(finalized.Value, "an object dropped before the step was still waiting for its finalizer after it");
    }

    [Fact]
    public void A_validation_pass_returns_after_the_finalizers_of_what_it_dropped_have_run()
    {
        // the same for held-out loss, batch after batch (ValidationLoss collects after each batch)
        var cfg = new ModelConfig { DModel = 64, NHead = 2, ContextLength = 16, VocabSize = 65536 };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), 1);
        var dir = TestPaths.TempDir();
        TokenShard.Write(Path.Combine(dir, "v.tokens"), 65536, Enumerable.Range(0, 2000).ToList());
        using var shard = TokenShard.Open(Path.Combine(dir, "v.tokens"));
        var finalized = new StrongBox<bool>();
        DropSentinel(finalized);
        ValidationLoss.Measure(model, new BatchSampler(shard, 2, 16, 1), 2);
        Assert.True(finalized.Value, "an object dropped before the validation pass was still waiting for its finalizer after it");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropSentinel(StrongBox<bool> finalized) => _ = new Sentinel(finalized);

    private sealed class Sentinel(StrongBox<bool> finalized)
    {
        ~Sentinel() => finalized.Value = true;
    }
}
