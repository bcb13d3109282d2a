using System.Diagnostics;
using Strata.Modeling;
using Strata.Substrates;
using TorchSharp;
using static TorchSharp.torch;

int d = int.Parse(args[0]), L = int.Parse(args[1]), B = int.Parse(args[2]), T = int.Parse(args[3]);
Strata.Util.NativeAllocator.KeepFreedMemory();
var cfg = new ModelConfig { DModel = d, NHead = Math.Max(1, d / 32), ContextLength = T, VocabSize = 65536 };
var model = new LanguageModel(cfg, Substrate.Create(new SubstrateSpec(), cfg), L);
var x = torch.randint(0, 65536, [B, T + 1]);
for (int i = 0; i < 6; i++)
{
    var sw = Stopwatch.StartNew();
    using (var s = torch.NewDisposeScope())
    {
        var loss = model.Loss(x[.., ..^1], x[.., 1..]);
        var f = sw.Elapsed.TotalMilliseconds;
        loss.backward();
        model.zero_grad();
        Console.WriteLine($"fwd {f:F0} ms, total {sw.Elapsed.TotalMilliseconds:F0} ms, {B * T / sw.Elapsed.TotalSeconds:F0} tok/s");
    }
}
